"""Devices that keep readings and indicate them once a gateway subscribes (BP cuffs, scales)."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, SupportsBytes, TypeVar, cast

from bumble.device import Connection
from bumble.gatt import Characteristic

from lab.emulation._peripheral import DEVICE_CLOCK_RESET, Cccd, EmulatedPeripheral

__all__ = ["StoredReadingsDevice"]

logger = logging.getLogger(__name__)

_R = TypeVar("_R")


class StoredReadingsDevice(EmulatedPeripheral, Generic[_R]):
    """Keeps readings; delivers them by indication, oldest first, once indications are enabled.

    A reading is removed from the store when its indication is confirmed. A reading is either a
    structured reading (encoded by the device, faults applied) or a ready-made payload with
    ``__bytes__`` (sent as is, apart from ``wrong_length``).
    """

    def __init__(
        self,
        *args: Any,
        reading_type: type[_R],
        readings: Sequence[_R | SupportsBytes] = (),
        disconnect_when_done: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._reading_type = reading_type
        self.disconnect_when_done = disconnect_when_done
        self._store: deque[bytes] = deque()
        self.delivered: list[bytes] = []
        self._measurements_taken = 0
        self._delivering = False
        self._wake = asyncio.Event()
        for reading in readings:
            self._store.append(self._packet(reading))

    # ---------------------------------------------------------------- subclass hooks

    @property
    @abc.abstractmethod
    def measurement_characteristic(self) -> Characteristic[Any]:
        """The characteristic the readings are indicated on."""

    @abc.abstractmethod
    def encode_reading(self, reading: _R, index: int) -> bytes:
        """Encode a structured reading (the ``index``-th taken by this device)."""

    # ---------------------------------------------------------------- behaviour

    def _packet(self, reading: _R | SupportsBytes) -> bytes:
        index = self._measurements_taken
        self._measurements_taken += 1
        if isinstance(reading, self._reading_type):
            packet = self.encode_reading(reading, index)
        else:  # a ready-made payload
            packet = bytes(cast(SupportsBytes, reading))
        return self.faults.mangle(packet)

    def reset_clock_time(self, index: int) -> datetime:
        """The time stamp of the ``index``-th reading of a device whose clock was reset."""
        return DEVICE_CLOCK_RESET + timedelta(minutes=index)

    @property
    def stored(self) -> list[bytes]:
        """Packets still waiting for delivery."""
        return list(self._store)

    def has_pending_data(self) -> bool:
        return bool(self._store)

    async def measure(self, reading: _R | SupportsBytes) -> bytes:
        """Take a new measurement: stored, then delivered now if a gateway is subscribed."""
        packet = self._packet(reading)
        await self.before_delivery(packet)
        self._store.append(packet)
        self._wake.set()
        if self.faults.connect_window is not None:
            await self.open_connect_window()
        return packet

    async def before_delivery(self, packet: bytes) -> None:
        """Hook: e.g. intermediate cuff pressure notifications during a live measurement."""

    def companion_packets(self, packet: bytes) -> list[tuple[Characteristic[Any], bytes]]:
        """Hook: packets indicated right after ``packet`` (e.g. body composition)."""
        return []

    async def on_connected(self, connection: Connection) -> None:
        characteristic = self.measurement_characteristic

        def on_subscription(bearer: object, _notify_enabled: bool, indicate_enabled: bool) -> None:
            if bearer is connection and indicate_enabled and not self._delivering:
                self.spawn(self._deliver(connection))

        characteristic.on(characteristic.EVENT_SUBSCRIPTION, on_subscription)
        connection.on(
            connection.EVENT_DISCONNECTION,
            lambda _reason: characteristic.remove_listener(
                characteristic.EVENT_SUBSCRIPTION, on_subscription
            ),
        )

    async def _deliver(self, connection: Connection) -> None:
        self._delivering = True
        try:
            while self._connection is connection:
                if not self._store:
                    if self.disconnect_when_done:
                        await asyncio.sleep(0.05)
                        await self.disconnect_link(connection)
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if Cccd.INDICATION not in self.cccd(connection, self.measurement_characteristic):
                    return
                packet = self._store[0]
                copies = 2 if self.faults.duplicate_records else 1
                for _ in range(copies):
                    if not await self.indicate(connection, self.measurement_characteristic, packet):
                        return
                    for characteristic, extra in self.companion_packets(packet):
                        if Cccd.INDICATION in self.cccd(connection, characteristic) and not (
                            await self.indicate(connection, characteristic, extra)
                        ):
                            return
                self._store.popleft()
                self.delivered.append(packet)
                if self.should_drop_now():
                    logger.debug("fault: dropping the connection mid-transfer")
                    await self.disconnect_link(connection)
                    return
        finally:
            self._delivering = False
