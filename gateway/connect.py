"""Connecting to a device as Home Assistant does: bleak-retry-connector, one attempt at a time.

``establish_connection`` (bleak-retry-connector 4.7, declared for bleak ≥ 3.0.2, so compatible
with the pinned bleak 3.1.0) retries the transient BlueZ failures (``le-connection-abort-by-
local``, "Software caused connection abort", a stale service cache) with short backoffs,
waits for BlueZ to see a failed link down before trying again, and lets BlueZ reuse its GATT
cache when it is still valid (``BleakClientWithServiceCache``: the services cache). On other
backends (the emulated one, macOS) it only retries.

BlueZ controllers handle one LE connection attempt at a time (a second "Create Connection"
fails with "Command Disallowed" / ``InProgress``), and some adapters cannot scan while they
initiate a connection: :class:`AdapterGate` serialises attempts per adapter and, if told to,
pauses scanning around each attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak_retry_connector import BleakClientWithServiceCache, establish_connection

__all__ = ["MAX_ATTEMPTS", "AdapterGate", "connect"]

#: connection attempts within one advertisement window (a cuff accepts one for a few seconds)
MAX_ATTEMPTS = 2


class AdapterGate:
    """One connection attempt at a time on one adapter (``hci0``, a USB dongle …).

    ``pause_scanning`` / ``resume_scanning``: called around each attempt when the adapter
    cannot scan while connecting. ``attempts_running`` is never above 1 (tests read
    ``most_at_once``).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        pause_scanning: Callable[[], Awaitable[None]] | None = None,
        resume_scanning: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self._lock = asyncio.Lock()
        self._pause = pause_scanning
        self._resume = resume_scanning
        self.attempts_running = 0
        self.most_at_once = 0
        self.attempts = 0

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        async with self._lock:
            self.attempts += 1
            self.attempts_running += 1
            self.most_at_once = max(self.most_at_once, self.attempts_running)
            paused = False
            try:
                if self._pause is not None:
                    await self._pause()
                    paused = True
                yield
            finally:
                self.attempts_running -= 1
                if paused and self._resume is not None:
                    await self._resume()

    @property
    def scanner_args(self) -> dict[str, Any]:
        """bleak's BlueZ scanner arguments: this adapter, and every advertisement reported
        (bleak's default ``DuplicateData=False`` lets BlueZ drop repeats of an unchanged
        advertisement, e.g. a cuff advertising again after a measurement)."""
        bluez: dict[str, Any] = {"filters": {"DuplicateData": True}}
        if self.name is not None:
            bluez["adapter"] = self.name
        return {"bluez": bluez}

    @property
    def client_args(self) -> dict[str, Any]:
        """bleak's per-backend arguments that select this adapter."""
        return {} if self.name is None else {"bluez": {"adapter": self.name}}


async def connect(
    device: BLEDevice,
    gate: AdapterGate,
    *,
    name: str,
    connect_timeout: float,
    disconnected_callback: Callable[[BleakClient], None] | None = None,
    backend: type[Any] | None = None,
    pair: bool = False,
) -> BleakClient:
    """A connected client (the caller disconnects it); the attempt holds the adapter's gate.

    ``name`` appears in bleak-retry-connector's debug logs only: pass a device id, never a
    BLE name or address.
    """
    async with gate.attempt():
        client: BleakClient = await establish_connection(
            BleakClientWithServiceCache,
            device,
            name,
            disconnected_callback=disconnected_callback,
            max_attempts=MAX_ATTEMPTS,
            pair=pair,
            timeout=connect_timeout,
            backend=backend,
            **gate.client_args,
        )
    return client
