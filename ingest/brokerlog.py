"""Publishes the broker refused, counted from its log (issue 17).

A gateway's MQTT 3.1.1 publish to a topic its ACL denies is acknowledged by Mosquitto and
dropped: the gateway forgets the reading and ingest never sees it. Mosquitto logs each one
(``Denied PUBLISH from <client> … '<topic>'``, at the ``debug`` level, which the project's broker
configuration turns on). With ``CAREBEACON_MQTT_LOG_FILE`` set to that log, ingest follows it
from its end (earlier lines were counted by an earlier run, or are history) and counts each
denial in ``carebeacon_broker_denied_publishes_total`` (no gateway label: the log line, with
the gateway's id and the topic, goes to ingest's log at WARNING). A rotated or truncated log is
followed from its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from prometheus_client import Counter

from carebeacon.broker import denied_publishes

__all__ = ["DENIED", "follow_denials", "log_file"]

logger = logging.getLogger(__name__)

DENIED = Counter(
    "carebeacon_broker_denied_publishes_total",
    "Publishes the broker's ACL refused (MQTT 3.1.1 clients are acknowledged and not told),"
    " read from the broker's log",
)


#: what a denial's line holds (``carebeacon.broker``); a chunk without it is not parsed (at
#: the debug level the broker logs every packet: nearly all of the log is something else)
_MARKER = "Denied PUBLISH"
#: at most this much of the log is read at once: a burst of the broker's lines (a backlog's
#: delivery, logged packet by packet) is taken in steps, and ingest's memory stays flat
CHUNK_BYTES = 1 << 20


class _Follower:
    """The lines appended to a file since the last :meth:`read` that may name a denied publish
    (blocking I/O: run in a thread)."""

    def __init__(self, path: Path, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.inode: int | None = None
        self.position = 0
        self.partial = b""
        self.first = True

    def read(self) -> tuple[list[str], bool]:
        """The complete lines with a denial's marker in the next ``chunk_bytes`` of the file,
        and whether that reached its end."""
        try:
            stat = self.path.stat()
        except OSError:
            self.first = False  # not there yet (or rotated away): all of the next one is new
            return [], True
        if self.inode != stat.st_ino or stat.st_size < self.position:
            # a new file (rotation) or a truncated one: from its start, except at our own
            # start, where what is there already is history
            self.position = stat.st_size if self.first else 0
            self.inode, self.partial = stat.st_ino, b""
        self.first = False
        if stat.st_size <= self.position:
            return [], True
        with self.path.open("rb") as fh:
            fh.seek(self.position)
            chunk = fh.read(min(self.chunk_bytes, stat.st_size - self.position))
        self.position += len(chunk)
        data = self.partial + chunk
        cut = data.rfind(b"\n") + 1
        complete, self.partial = data[:cut], data[cut:]
        if len(self.partial) > self.chunk_bytes:
            self.partial = b""  # no line of the broker's is that long
        lines: list[str] = []
        if _MARKER.encode() in complete:
            text = complete.decode("utf-8", errors="replace")
            lines = [line for line in text.split("\n") if _MARKER in line]
        return lines, self.position >= stat.st_size


async def follow_denials(path: Path, stop: asyncio.Event, poll_seconds: float = 2.0) -> None:
    """Count the denied publishes written to ``path`` from now until ``stop`` is set."""
    follower = _Follower(path)
    while not stop.is_set():
        lines, caught_up = await asyncio.to_thread(follower.read)
        for denied in denied_publishes(lines):
            DENIED.inc()
            logger.warning(
                "the broker refused a publish from %s to %s (%d bytes); an MQTT 3.1.1 client"
                " is not told, so the message is lost unless it is sent again",
                denied.client_id,
                denied.topic,
                denied.payload_bytes,
            )
        if not caught_up:
            continue  # the rest of a burst, at once
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_seconds)


def log_file(setting: str) -> Path | None:
    """``CAREBEACON_MQTT_LOG_FILE`` as a path (``None``: not set)."""
    return Path(os.path.expanduser(setting)) if setting else None
