"""A real ``$NOTIFY_SOCKET``: an AF_UNIX datagram socket that records what a service sends,
with the monotonic time each datagram arrived (read by a thread, so it keeps receiving while
the service's event loop is blocked)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

__all__ = ["NotifySocket"]


class NotifySocket:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        self._sock.settimeout(0.05)
        self.received: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> NotifySocket:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closed.set()
        self._thread.join()
        self._sock.close()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            lines = dict(line.split("=", 1) for line in data.decode().splitlines())
            with self._lock:
                self.received.append((time.monotonic(), lines))

    def messages(self) -> list[dict[str, str]]:
        with self._lock:
            return [message for _, message in self.received]

    def times(self, key: str) -> list[float]:
        with self._lock:
            return [at for at, message in self.received if key in message]

    def wait_for(
        self, key: str, value: str | None = None, *, count: int = 1, timeout: float = 30.0
    ) -> dict[str, str]:
        """The ``count``-th datagram with ``key`` (= ``value``); blocks this thread (call via
        ``asyncio.to_thread`` from a test's event loop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [
                message
                for message in self.messages()
                if key in message and (value is None or message[key] == value)
            ]
            if len(found) >= count:
                return found[count - 1]
            time.sleep(0.01)
        raise AssertionError(f"no {key} notification within {timeout} s: {self.messages()}")
