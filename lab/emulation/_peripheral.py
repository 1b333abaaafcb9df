"""What every emulated peripheral shares: identity, faults, clock, advertising, connections."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, IntFlag
from typing import Any, ClassVar

from bumble import gatt
from bumble.att import ATT_Error, AttributeValueV2, Bearer
from bumble.core import UUID
from bumble.device import AdvertisingType, Connection, Device
from bumble.gatt import (
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    Characteristic,
    CharacteristicValue,
    Descriptor,
)
from bumble.pairing import PairingConfig, PairingDelegate

from devices.date_time import CurrentTime
from devices.device_information import BatteryLevel, DeviceInformationString
from devices.uuids import GattCharacteristic, GattService
from lab.emulation._encoding import decode_current_time, encode_current_time

__all__ = [
    "Cccd",
    "DeviceClock",
    "EmulatedPeripheral",
    "Faults",
    "Pairing",
    "PairingMethod",
    "PeripheralIdentity",
    "Protection",
]

logger = logging.getLogger(__name__)

DEVICE_CLOCK_RESET = datetime(2000, 1, 1)  # noqa: DTZ001 - device clocks are naive

_AD_FLAGS = 0x01
_AD_UUID16_COMPLETE = 0x03
_AD_LOCAL_NAME_COMPLETE = 0x09
_AD_SERVICE_DATA_UUID16 = 0x16
_AD_MANUFACTURER_DATA = 0xFF
_AD_FLAG_LE_GENERAL_DISCOVERABLE_BR_EDR_NOT_SUPPORTED = 0x06

_ATT_READ_NOT_PERMITTED = 0x02
_ATT_WRITE_NOT_PERMITTED = 0x03
_ATT_INVALID_ATTRIBUTE_LENGTH = 0x0D
_ATT_VALUE_NOT_ALLOWED = 0x13
_C = GattCharacteristic


class Cccd(IntFlag):
    """Client Characteristic Configuration (descriptor 0x2902) bits (Core Specification,
    Vol 3, Part G, 3.3.3.3)."""

    NONE = 0
    NOTIFICATION = 1 << 0
    INDICATION = 1 << 1


@dataclass(frozen=True, slots=True)
class PeripheralIdentity:
    """What an emulated peripheral says about itself: the content of its Device Information
    service (manufacturer, model, serial, firmware, hardware, system id) and how it shows up on
    the air (local name, address, RSSI, manufacturer data).

    Not the gateway's :class:`devices.DeviceIdentity` (the identity a canonical reading carries,
    which the gateway derives from what it reads here). ``serial`` is the stable device
    identity. ``address`` is a random static address (``"C0:…"``); when omitted, the air assigns
    one derived from the serial, so it is also stable.
    """

    serial: str
    manufacturer: str = "CareBeacon Emulated"
    model: str = ""
    firmware: str = "1.0.0"
    hardware: str = "A"
    local_name: str | None = None
    address: str | None = None
    system_id: bytes | None = None
    rssi: int = -60
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)

    def effective_system_id(self) -> bytes:
        """System ID (0x2A23, 8 bytes): explicit, or derived from the serial."""
        if self.system_id is not None:
            return self.system_id
        return hashlib.sha256(self.serial.encode()).digest()[:8]

    def effective_address(self) -> str:
        if self.address is not None:
            return self.address.upper()
        digest = hashlib.sha256(b"carebeacon-emulated:" + self.serial.encode()).digest()
        octets = bytes([0xC0 | (digest[0] & 0x3F)]) + digest[1:6]
        return ":".join(f"{b:02X}" for b in octets)


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviours seen in real devices. All off by default.

    - ``clock_reset``: the device clock restarts at 2000-01-01 00:00:00 when powered on; readings
      without an explicit time, and every reading of a device whose clock was reset, carry
      device-clock times near 2000-01-01 (one minute apart). Writing Current Time fixes the clock
      for later readings.
    - ``kpa_units``: blood pressure is sent in kPa.
    - ``nres_values``: mean arterial pressure and pulse (BP), the concentration (glucose) or the
      weight (scales) are sent as NRes / "measurement unsuccessful".
    - ``duplicate_records``: each stored record is sent twice.
    - ``restart_sequence_at``: glucose sequence numbers start again at ``first_sequence`` from the
      record with this index (0-based) on, as after a meter reset.
    - ``drop_after_records``: the device drops the connection after sending this many records;
      applies to the first ``drop_connections`` connections only.
    - ``wrong_length``: bytes added (> 0, zero bytes) to or removed (< 0) from every
      measurement packet.
    - ``connect_window``: the device advertises and accepts a connection only for this many
      seconds after a measurement (and after power-on when it holds stored readings).
    """

    clock_reset: bool = False
    kpa_units: bool = False
    nres_values: bool = False
    duplicate_records: bool = False
    restart_sequence_at: int | None = None
    drop_after_records: int | None = None
    drop_connections: int = 1
    wrong_length: int = 0
    connect_window: float | None = None

    def mangle(self, packet: bytes) -> bytes:
        """Apply ``wrong_length`` to a measurement packet."""
        if self.wrong_length > 0:
            return packet + bytes(self.wrong_length)
        if self.wrong_length < 0:
            return packet[: max(0, len(packet) + self.wrong_length)]
        return packet


class PairingMethod(Enum):
    """How a device pairs (Core Specification Vol 3, Part H, 2.3.5.1: the association model
    follows from both sides' IO capabilities; the gateway's agent is KeyboardDisplay)."""

    #: no display, no keys (NoInputNoOutput): Just Works
    JUST_WORKS = "just_works"
    #: the device shows a 6-digit code, the installer types it at the gateway (DisplayOnly)
    PASSKEY_ENTRY = "passkey_entry"
    #: both sides show a number and confirm it matches (DisplayYesNo, LE Secure Connections)
    NUMERIC_COMPARISON = "numeric_comparison"


class Protection(Enum):
    """What the device's profile characteristics (values and CCCDs) demand before use."""

    #: an encrypted link (ATT error 0x0F Insufficient Encryption otherwise)
    ENCRYPTION = "encryption"
    #: an encrypted link with an authenticated (MITM-protected) key (ATT error 0x05)
    AUTHENTICATION = "authentication"


@dataclass(frozen=True, slots=True)
class Pairing:
    """A device that needs a bond: its profile service refuses reads, writes and
    subscriptions on a link without one; bonds are kept until :meth:`EmulatedPeripheral.
    forget_bonds` (battery change, factory reset).

    - ``passkey``: the code the device displays (``PASSKEY_ENTRY``).
    - ``secure_connections``: LE Secure Connections (else LE legacy pairing).
    - ``pairing_mode``: whether the device accepts a new pairing (button held, "Pr" shown).
    """

    method: PairingMethod = PairingMethod.JUST_WORKS
    protection: Protection = Protection.ENCRYPTION
    passkey: int = 123456
    secure_connections: bool = True
    pairing_mode: bool = True


class _DeviceSide(PairingDelegate):
    """The device's half of SMP: what its display and buttons can do."""

    _IO: ClassVar[dict[PairingMethod, PairingDelegate.IoCapability]] = {
        PairingMethod.JUST_WORKS: PairingDelegate.NO_OUTPUT_NO_INPUT,
        PairingMethod.PASSKEY_ENTRY: PairingDelegate.DISPLAY_OUTPUT_ONLY,
        PairingMethod.NUMERIC_COMPARISON: PairingDelegate.DISPLAY_OUTPUT_AND_YES_NO_INPUT,
    }

    def __init__(self, peripheral: EmulatedPeripheral, pairing: Pairing) -> None:
        super().__init__(io_capability=self._IO[pairing.method])
        self._peripheral = peripheral
        self._pairing = pairing

    async def accept(self) -> bool:
        return self._pairing.pairing_mode

    async def confirm(self, auto: bool = False) -> bool:
        return self._pairing.pairing_mode

    async def compare_numbers(self, number: int, digits: int) -> bool:
        self._peripheral.displayed.append(number)
        return self._pairing.pairing_mode

    async def generate_passkey(self) -> int:
        return self._pairing.passkey

    async def display_number(self, number: int, digits: int) -> None:
        self._peripheral.displayed.append(number)


class DeviceClock:
    """A naive device clock that runs from a start value; the gateway may set it."""

    def __init__(self, start: datetime | None = None, *, reset: bool = False) -> None:
        if reset:
            start = DEVICE_CLOCK_RESET
        elif start is None:
            start = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self._start = start
        self._started_at = time.monotonic()
        self.was_set = False

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._started_at)

    def set(self, value: datetime) -> None:
        self._start = value.replace(tzinfo=None)
        self._started_at = time.monotonic()
        self.was_set = True


def _ad(ad_type: int, data: bytes) -> bytes:
    return bytes([len(data) + 1, ad_type]) + data


class EmulatedPeripheral(abc.ABC):
    """Base of the emulated devices: a bumble GATT server on its own controller.

    Create the device, then ``await air.add(device)``. Subclasses provide their GATT services
    and what they advertise; every device also serves Device Information (0x180A: manufacturer,
    model, serial, firmware, hardware, system id), Battery (0x180F, readable and notified by
    :meth:`set_battery_level`) and, unless ``current_time_service=False``, Current Time
    (0x1805 / 0x2A2B, writable unless ``current_time_writable=False``; writes set
    :attr:`clock` and are recorded in :attr:`clock_writes`).
    """

    #: advertising interval in milliseconds (bounds connect latency on the emulated link)
    advertising_interval_ms: float = 50.0
    #: whether a central may connect
    connectable: bool = True

    def __init__(
        self,
        identity: PeripheralIdentity,
        *,
        faults: Faults | None = None,
        battery_level: int = 87,
        clock: datetime | None = None,
        current_time_writable: bool = True,
        current_time_service: bool = True,
        pairing: Pairing | None = None,
    ) -> None:
        self.identity = identity
        self.pairing = pairing
        #: numbers the device showed on its display while pairing (passkey, comparison)
        self.displayed: list[int] = []
        self.faults = faults or Faults()
        self.battery_level = battery_level
        self.clock = DeviceClock(clock, reset=self.faults.clock_reset)
        self.current_time_writable = current_time_writable
        self.current_time_service = current_time_service
        self.address = identity.effective_address()
        self.connection_count = 0
        self.clock_writes: list[datetime] = []
        self._device: Device | None = None
        self._powered = False
        self._connection: Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._hci_tasks: set[asyncio.Task[None]] = set()
        self._hci_lock = asyncio.Lock()
        self._advertising = False
        self._window_ends: float | None = None
        self._window_task: asyncio.Task[None] | None = None
        self._connected_event = asyncio.Event()
        self._disconnected_event = asyncio.Event()
        self._disconnected_event.set()
        self._records_sent_this_connection = 0
        self._battery_characteristic: Characteristic[bytes] | None = None

    # ---------------------------------------------------------------- what subclasses define

    @property
    @abc.abstractmethod
    def advertised_service_uuids(self) -> Sequence[int]:
        """16-bit service UUIDs in the advertisement."""

    @abc.abstractmethod
    def profile_services(self) -> list[gatt.Service]:
        """The device's own GATT services (DIS, Battery, Current Time are added by the base)."""

    def advertised_service_data(self) -> dict[int, bytes]:
        """16-bit service UUID → service data in the advertisement."""
        return {}

    def has_pending_data(self) -> bool:
        """Whether the device holds readings it wants to deliver (opens the connect window)."""
        return False

    async def on_connected(self, connection: Connection) -> None:  # noqa: B027
        """Called for every new connection."""

    def on_disconnected(self) -> None:  # noqa: B027
        """Called when the connection drops, from either side."""

    # ---------------------------------------------------------------- lifecycle (used by the air)

    @property
    def device(self) -> Device:
        if self._device is None:
            raise RuntimeError("the device is not on an EmulatedAir yet")
        return self._device

    @property
    def local_name(self) -> str | None:
        return self.identity.local_name

    async def power_on(self, device: Device) -> None:
        """Attach to a powered-on bumble device: build the GATT database and start advertising."""
        self._device = device
        self._powered = True
        pairing = self.pairing
        if pairing is not None:
            device.pairing_config_factory = lambda _connection: PairingConfig(
                sc=pairing.secure_connections,
                mitm=pairing.method is not PairingMethod.JUST_WORKS,
                bonding=True,
                delegate=_DeviceSide(self, pairing),
                # keys are stored under the address the gateway connects to
                identity_address_type=PairingConfig.AddressType.RANDOM,
            )
        device.add_services(self._all_services())
        device.on(device.EVENT_CONNECTION, self._on_connection)
        if self.faults.connect_window is None or self.has_pending_data():
            await self.open_connect_window()

    async def power_off(self) -> None:
        self._powered = False
        for task in list(self._tasks):
            task.cancel()
        if self._window_task is not None:
            self._window_task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._hci_tasks, return_exceptions=True)
        if self._device is not None:
            with contextlib.suppress(Exception):
                await self._stop_advertising()

    async def set_battery_level(self, level: int) -> None:
        """Change the battery level; notified to a subscribed gateway."""
        self.battery_level = level
        connection = self._connection
        if connection is not None and self._battery_characteristic is not None:
            await self.notify(connection, self._battery_characteristic, bytes([level]))

    async def bonded_peers(self) -> list[str]:
        """Addresses of the centrals this device holds bond keys for."""
        keystore = self.device.keystore
        return [] if keystore is None else [name for name, _ in await keystore.get_all()]

    async def forget_bonds(self) -> None:
        """Lose every bond (battery change, factory reset); a bonded central that tries to
        encrypt with its old keys gets "PIN or Key Missing"."""
        keystore = self.device.keystore
        if keystore is not None:
            for name, _ in await keystore.get_all():
                await keystore.delete(name)

    # ---------------------------------------------------------------- state for tests

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    @property
    def is_advertising(self) -> bool:
        return self._advertising

    async def wait_connected(self) -> None:
        await self._connected_event.wait()

    async def wait_disconnected(self) -> None:
        await self._disconnected_event.wait()

    async def drop_connection(self) -> None:
        """Drop the connection from the device side (the central sees an unsolicited disconnect)."""
        connection = self._connection
        if connection is not None:
            await self.disconnect_link(connection)

    async def disconnect_link(self, connection: Connection) -> None:
        """Disconnect from the device side; never raises."""

        async def disconnect() -> None:
            with contextlib.suppress(Exception):
                await connection.disconnect()

        await self._hci(disconnect)

    # ---------------------------------------------------------------- advertising

    def advertising_data(self) -> bytes:
        data = _ad(_AD_FLAGS, bytes([_AD_FLAG_LE_GENERAL_DISCOVERABLE_BR_EDR_NOT_SUPPORTED]))
        uuids = self.advertised_service_uuids
        if uuids:
            data += _ad(_AD_UUID16_COMPLETE, b"".join(struct.pack("<H", u) for u in uuids))
        for uuid16, payload in self.advertised_service_data().items():
            data += _ad(_AD_SERVICE_DATA_UUID16, struct.pack("<H", uuid16) + payload)
        for company, payload in self.identity.manufacturer_data.items():
            data += _ad(_AD_MANUFACTURER_DATA, struct.pack("<H", company) + payload)
        if self.local_name:
            data += _ad(_AD_LOCAL_NAME_COMPLETE, self.local_name.encode())
        return data

    async def open_connect_window(self) -> None:
        """Advertise: for ever, or for ``faults.connect_window`` seconds."""
        window = self.faults.connect_window
        if window is not None:
            self._window_ends = time.monotonic() + window
            if self._window_task is not None:
                self._window_task.cancel()
            self._window_task = asyncio.get_running_loop().create_task(self._close_window(window))
        if not self.is_connected:
            await self._start_advertising()

    async def refresh_advertising(self) -> None:
        """Re-send the advertising data (after it changed) if advertising."""
        if self._advertising:
            await self._start_advertising()

    def _window_open(self) -> bool:
        return self._window_ends is None or time.monotonic() < self._window_ends

    async def _close_window(self, window: float) -> None:
        await asyncio.sleep(window)
        await self._stop_advertising()

    async def _start_advertising(self) -> None:
        async def start() -> None:
            await self.device.start_advertising(
                advertising_type=(
                    AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
                    if self.connectable
                    else AdvertisingType.UNDIRECTED
                ),
                advertising_data=self.advertising_data(),
                advertising_interval_min=self.advertising_interval_ms,
                advertising_interval_max=self.advertising_interval_ms,
                auto_restart=False,
            )
            self._advertising = True

        await self._hci(start)

    async def _stop_advertising(self) -> None:
        async def stop() -> None:
            if self._advertising:
                self._advertising = False
                await self.device.stop_advertising()

        await self._hci(stop)

    async def _hci(self, operation: Callable[[], Awaitable[None]]) -> None:
        """Run HCI commands one at a time, to completion even if the caller is cancelled
        (a command cancelled half-way leaves bumble's host waiting for a stale response)."""

        async def locked() -> None:
            async with self._hci_lock:
                await operation()

        task = asyncio.get_running_loop().create_task(locked())
        self._hci_tasks.add(task)
        task.add_done_callback(self._hci_tasks.discard)
        await asyncio.shield(task)

    # ---------------------------------------------------------------- connections

    def _on_connection(self, connection: Connection) -> None:
        self._advertising = False  # the controller stops advertising on connect
        if not self.connectable:
            self.spawn(self.disconnect_link(connection))
            return
        self._connection = connection
        self.connection_count += 1
        self._records_sent_this_connection = 0
        self._disconnected_event.clear()
        self._connected_event.set()
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        logger.debug("emulated device connected (connection %d)", self.connection_count)
        self.spawn(self.on_connected(connection))

    def _on_disconnection(self, reason: int) -> None:
        logger.debug("emulated device disconnected (reason %d)", reason)
        self._connection = None
        self._connected_event.clear()
        self._disconnected_event.set()
        self.on_disconnected()
        if self._powered and (self.faults.connect_window is None or self._window_open()):
            self.spawn(self._start_advertising())

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.warning("emulated device task failed: %s", type(error).__name__)

    # ---------------------------------------------------------------- record delivery helpers

    def should_drop_now(self) -> bool:
        """Count one record sent; whether the ``drop_after_records`` fault fires now."""
        self._records_sent_this_connection += 1
        limit = self.faults.drop_after_records
        return (
            limit is not None
            and self.connection_count <= self.faults.drop_connections
            and self._records_sent_this_connection >= limit
        )

    def cccd(self, connection: Connection, characteristic: Characteristic[Any]) -> Cccd:
        """The client's CCCD value for ``characteristic`` on ``connection``."""
        value = self.device.gatt_server.read_cccd(connection, characteristic)
        return Cccd(int.from_bytes(value[:2], "little") if value else 0)

    async def notify(
        self, connection: Connection, characteristic: Characteristic[Any], value: bytes
    ) -> None:
        await self.device.notify_subscriber(connection, characteristic, value)

    async def indicate(
        self, connection: Connection, characteristic: Characteristic[Any], value: bytes
    ) -> bool:
        """Indicate and wait for the confirmation; ``False`` when the connection dropped first."""
        indication = asyncio.ensure_future(
            self.device.indicate_subscriber(connection, characteristic, value)
        )
        dropped = asyncio.ensure_future(self._disconnected_event.wait())
        try:
            await asyncio.wait({indication, dropped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dropped.cancel()
        for _ in range(5):  # a confirmation that arrived just before the drop still counts
            if indication.done():
                break
            await asyncio.sleep(0)
        if not indication.done():
            indication.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await indication
            return False
        indication.result()
        return True

    # ---------------------------------------------------------------- common services

    def _all_services(self) -> list[gatt.Service]:
        profile = self.profile_services()
        if self.pairing is not None:
            for profile_service in profile:
                for item in profile_service.characteristics:
                    self._protect(item, self.pairing.protection)
        services = [
            *profile,
            self._device_information_service(),
            self._battery_service(),
        ]
        if self.current_time_service:
            services.append(self._current_time_service())
        return services

    def _protect(self, item: Characteristic[Any], protection: Protection) -> None:
        """Demand the bond for the value and, through its own CCCD, for subscribing."""
        if protection is Protection.ENCRYPTION:
            read, write = (
                Characteristic.Permissions.READ_REQUIRES_ENCRYPTION,
                Characteristic.Permissions.WRITE_REQUIRES_ENCRYPTION,
            )
        else:
            read, write = (
                Characteristic.Permissions.READ_REQUIRES_AUTHENTICATION,
                Characteristic.Permissions.WRITE_REQUIRES_AUTHENTICATION,
            )
        if item.permissions & Characteristic.Permissions.READABLE:
            item.permissions |= read
        if item.permissions & Characteristic.Permissions.WRITEABLE:
            item.permissions |= write
        if not item.properties & (
            Characteristic.Properties.NOTIFY | Characteristic.Properties.INDICATE
        ):
            return

        def read_cccd(bearer: Bearer) -> bytes:
            return self.device.gatt_server.read_cccd(bearer, item)

        def write_cccd(bearer: Bearer, value: bytes) -> None:
            self.device.gatt_server.write_cccd(bearer, item, value)

        # bumble's own CCCD asks for nothing: this one (added first, so bumble adds none)
        # refuses subscriptions on a link without the bond
        item.descriptors = [
            *item.descriptors,
            Descriptor(
                GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                Descriptor.Permissions.READABLE | Descriptor.Permissions.WRITEABLE | write,
                AttributeValueV2(read=read_cccd, write=write_cccd),
            ),
        ]

    def _device_information_service(self) -> gatt.Service:
        identity = self.identity
        strings = {
            _C.MANUFACTURER_NAME: identity.manufacturer,
            _C.MODEL_NUMBER: identity.model,
            _C.SERIAL_NUMBER: identity.serial,
            _C.FIRMWARE_REVISION: identity.firmware,
            _C.HARDWARE_REVISION: identity.hardware,
        }
        characteristics: list[Characteristic[Any]] = [
            readable(uuid, bytes(DeviceInformationString(uuid.short, text)))
            for uuid, text in strings.items()
        ]
        characteristics.append(readable(_C.SYSTEM_ID, identity.effective_system_id()))
        return service(GattService.DEVICE_INFORMATION, characteristics)

    def _battery_service(self) -> gatt.Service:
        self._battery_characteristic = characteristic(
            _C.BATTERY_LEVEL,
            Characteristic.Properties.READ | Characteristic.Properties.NOTIFY,
            read=lambda: bytes(BatteryLevel(self.battery_level)),
        )
        return service(GattService.BATTERY, [self._battery_characteristic])

    def _current_time_service(self) -> gatt.Service:
        properties = Characteristic.Properties.READ | Characteristic.Properties.NOTIFY
        if self.current_time_writable:
            properties |= Characteristic.Properties.WRITE
        current_time = characteristic(
            _C.CURRENT_TIME,
            properties,
            read=lambda: encode_current_time(self.clock.now()),
            write=self._write_current_time if self.current_time_writable else None,
        )
        return service(GattService.CURRENT_TIME, [current_time])

    def _write_current_time(self, _connection: Connection, value: bytes) -> None:
        if len(value) != CurrentTime.SIZE:
            raise ATT_Error(_ATT_INVALID_ATTRIBUTE_LENGTH)
        try:
            new_time = decode_current_time(bytes(value))
        except ValueError as error:
            raise ATT_Error(_ATT_VALUE_NOT_ALLOWED) from error
        self.clock.set(new_time)
        self.clock_writes.append(new_time)


def service(uuid: GattService, characteristics: Sequence[Characteristic[Any]]) -> gatt.Service:
    """A primary service with the SIG UUID ``uuid``."""
    return gatt.Service(UUID.from_16_bits(uuid), characteristics)


def characteristic(
    uuid: GattCharacteristic,
    properties: Characteristic.Properties,
    *,
    read: Callable[[], bytes] | None = None,
    write: Callable[[Connection, bytes], None] | None = None,
) -> Characteristic[bytes]:
    """A characteristic served by callables. Without ``read`` (``write``), a read (write)
    gets ATT error 0x02 (0x03) as from a real device; bumble itself does not check."""
    permissions = Characteristic.Permissions(0)
    if read is not None:
        permissions |= Characteristic.Permissions.READABLE
    if write is not None:
        permissions |= Characteristic.Permissions.WRITEABLE

    def read_value(_connection: Connection) -> bytes:
        if read is None:
            raise ATT_Error(_ATT_READ_NOT_PERMITTED)
        return read()

    def write_value(connection: Connection, value: bytes) -> None:
        if write is None:
            raise ATT_Error(_ATT_WRITE_NOT_PERMITTED)
        write(connection, value)

    return Characteristic(
        UUID.from_16_bits(uuid),
        properties,
        permissions,
        CharacteristicValue(read=read_value, write=write_value),
    )


def readable(uuid: GattCharacteristic, value: bytes) -> Characteristic[bytes]:
    """A read-only characteristic with a fixed value."""
    return characteristic(uuid, Characteristic.Properties.READ, read=lambda: value)
