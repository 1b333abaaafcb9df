"""Publishes the broker refused, read from its log.

Over MQTT 3.1.1 a publish that the ACL denies is acknowledged like any other (3.1.1's PUBACK
has no reason code) and dropped: the gateway deletes the reading, ingest never sees it. The
only trace is Mosquitto's log line ``Denied PUBLISH from <client> (d0, q1, r0, m1, '<topic>',
... (<n> bytes))``, which Mosquitto 2.0.11 and 2.0.21 write at the ``debug`` level only; the
project's broker configuration therefore logs ``debug`` (``deploy/mosquitto/``; measured
~260 bytes of log per message delivered). On the gateway listener the client id is the
gateway's username (``use_username_as_clientid``), so ``client_id`` names the gateway.

``carebeacon services denials`` prints them grouped by client and topic; ingest counts them
as they come (``CAREBEACON_MQTT_LOG_FILE``; ingest/brokerlog.py).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

from carebeacon.broker import DeniedPublish, denied_publishes

__all__ = ["DeniedPublish", "denied_publishes", "summary"]  # the parser: carebeacon.broker


def summary(log: Path) -> str:
    """One line per client and topic: how many publishes were denied, the last one's time."""
    counts: Counter[tuple[str, str]] = Counter()
    last: dict[tuple[str, str], datetime] = {}
    with log.open(encoding="utf-8", errors="replace") as fh:
        for denied in denied_publishes(fh):
            key = (denied.client_id, denied.topic)
            counts[key] += 1
            last[key] = denied.at
    if not counts:
        return f"no denied publishes in {log}\n"
    return "".join(
        f"{n:6d}  {client}  {topic}  last {last[(client, topic)].isoformat()}\n"
        for (client, topic), n in sorted(counts.items())
    )
