"""The one place where ingest reaches into aiomqtt's private parts (aiomqtt 2.5.1, pinned).

aiomqtt has no public manual-acknowledgement API (aiomqtt#345) and no flow control: its paho
client reads every packet the broker sends into an unbounded queue. Ingest needs both:

* **manual acknowledgement** — PUBACK only after the commit (paho's ``manual_ack_set`` and
  ``ack`` on ``client._client``);
* **a bounded receive window** — ingest asks for MQTT 5 Receive Maximum, but Mosquitto before
  2.0.13 does not keep to it once acknowledgements flow (``db__message_delete_outgoing`` counts
  only the in-flight messages before the acknowledged one, so each PUBACK lets up to a window
  more in; fixed by "Various fixes around inflight quota management", mosquitto#2306). So
  ingest also stops reading the socket while its window is full: what the broker sends then
  waits in the broker (and TCP), not in ingest's memory. Resuming registers a reader that does
  what aiomqtt's own does (``Client._on_socket_open``): ``loop_read`` until the SSL buffer is
  empty, and a failure ends the connection through ``client._disconnected``.

And one race of aiomqtt's is closed: it registers the socket for writing with the descriptor
taken when paho asks, in a callback run later (``call_soon_threadsafe``); a connection that
breaks in between (a broker restart) leaves it registering a closed descriptor, which asyncio
logs as an error. The adapter's registration (paho's public ``on_socket_register_write``) checks,
when it runs, that the socket is still the client's and open, and writes as aiomqtt's does.

``tests/ingest/test_mqtt_adapter.py`` pins every private name used here.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiomqtt

__all__ = ["PahoAdapter"]


class Inbox(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's queue of incoming messages, through its public ``queue_type`` parameter: kept
    so that ingest takes a burst of messages without aiomqtt's task and wait per message."""


class PahoAdapter:
    """Manual acks and read pausing for one :class:`aiomqtt.Client`, made by :meth:`client`."""

    def __init__(self, client: aiomqtt.Client, inbox: Inbox) -> None:
        self._client = client
        self._paho = client._client
        self._inbox = inbox
        self._paused: int | None = None  # the socket's fd while reading is paused
        self._loop = asyncio.get_running_loop()
        self._paho.on_socket_register_write = self._register_write

    @classmethod
    def client(cls, **options: Any) -> tuple[aiomqtt.Client, PahoAdapter]:
        """An :class:`aiomqtt.Client` made with ``options``, and its adapter."""
        made: list[Inbox] = []

        class _Inbox(Inbox):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                made.append(self)

        client = aiomqtt.Client(queue_type=_Inbox, **options)
        (inbox,) = made
        return client, cls(client, inbox)

    def take_nowait(self) -> aiomqtt.Message | None:
        """The next message already read, if any (after one from ``client.messages``)."""
        try:
            return self._inbox.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def manual_ack(self) -> None:
        """Acknowledge only through :meth:`ack` (call before connecting: messages queued for a
        persistent session are covered too)."""
        self._paho.manual_ack_set(True)

    def ack(self, mid: int, qos: int) -> None:
        self._paho.ack(mid, qos)

    def queued(self) -> int:
        """Messages read from the broker and not yet taken."""
        return self._inbox.qsize()

    @property
    def paused(self) -> bool:
        return self._paused is not None

    def pause_reading(self) -> None:
        """Read nothing more from the broker until :meth:`resume_reading`."""
        sock = self._paho.socket()
        if self._paused is not None or sock is None:
            return
        fd = sock.fileno()
        if fd < 0:
            return
        asyncio.get_running_loop().remove_reader(fd)
        self._paused = fd

    def resume_reading(self) -> None:
        fd, self._paused = self._paused, None
        sock = self._paho.socket()
        if fd is None or sock is None or sock.fileno() != fd:
            return  # the connection is gone meanwhile: nothing to resume
        asyncio.get_running_loop().add_reader(fd, self._read)
        self._read()  # what arrived while paused may sit in an SSL buffer, unseen by select

    def _read(self) -> None:
        try:
            while True:
                self._paho.loop_read()
                sock: Any = self._paho.socket()
                if isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
                    continue  # decoded bytes select cannot see
                break
        except Exception as exc:  # as aiomqtt's reader: a broken connection ends the session
            self._end(exc)

    def _register_write(self, _paho: Any, _userdata: Any, sock: Any) -> None:
        # paho may call this from the thread aiomqtt connects in: the loop does the rest
        self._loop.call_soon_threadsafe(self._add_writer, sock)

    def _add_writer(self, sock: Any) -> None:
        fd = sock.fileno()
        if fd < 0 or self._paho.socket() is not sock:
            return  # that connection is gone (a broker restart): nothing to write to
        self._loop.add_writer(fd, self._write)

    def _write(self) -> None:
        try:
            self._paho.loop_write()
        except Exception as exc:  # as aiomqtt's writer: a broken connection ends the session
            self._end(exc)

    def _end(self, exc: Exception) -> None:
        disconnected = self._client._disconnected
        if not disconnected.done():
            disconnected.set_exception(exc)
