"""The emulated-BLE tests' helpers: finding a peripheral, collecting notifications, SIG UUIDs,
naive device times."""

from __future__ import annotations

import asyncio
from datetime import datetime

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice

from devices.uuids import uuid128
from lab.emulation import BumbleScanner, EmulatedPeripheral

__all__ = ["Inbox", "device_time", "find", "subscribe"]


class Inbox:
    """Collects notification / indication payloads per characteristic UUID, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def __call__(self, characteristic: BleakGATTCharacteristic, data: bytearray) -> None:
        self.queue.put_nowait((characteristic.uuid, bytes(data)))

    async def take(self, within: float = 3.0) -> tuple[str, bytes]:
        async with asyncio.timeout(within):
            return await self.queue.get()

    async def take_many(self, count: int, within: float = 3.0) -> list[tuple[str, bytes]]:
        return [await self.take(within) for _ in range(count)]

    def drain(self) -> list[tuple[str, bytes]]:
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items


async def find(peripheral: EmulatedPeripheral, within: float = 5.0) -> BLEDevice:
    device = await BleakScanner.find_device_by_address(
        peripheral.address, timeout=within, backend=BumbleScanner
    )
    assert device is not None
    return device


async def subscribe(client: BleakClient, uuid: int, inbox: Inbox) -> None:
    await client.start_notify(uuid128(uuid), inbox)


def device_time(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A naive device-clock time (devices have no time zone)."""
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001
