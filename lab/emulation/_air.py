"""The emulated radio: one bumble link, a central for the gateway, and emulated peripherals."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar

from bleak.exc import BleakError
from bumble.controller import Controller
from bumble.device import Advertisement, Connection, Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from devices.uuids import BASE_UUID_SUFFIX, uuid128
from lab.emulation._bluez import AgentRefused, PrivateBluez, device_path
from lab.emulation._peripheral import EmulatedPeripheral

if TYPE_CHECKING:
    from lab.emulation._client import BumbleClient
    from lab.emulation._scanner import BumbleScanner

__all__ = ["Advert", "EmulatedAir", "current_air"]

logger = logging.getLogger(__name__)

_P = TypeVar("_P", bound=EmulatedPeripheral)

CENTRAL_ADDRESS = "C0:CB:00:00:00:01"

_current: contextvars.ContextVar[EmulatedAir | None] = contextvars.ContextVar(
    "carebeacon_emulated_air", default=None
)
_active: list[EmulatedAir] = []


def current_air() -> EmulatedAir:
    """The air the backend classes use: the one entered in this context, else the latest one."""
    air = _current.get()
    if air is not None and air.is_open:
        return air
    if _active:
        return _active[-1]
    raise BleakError("no emulated Bluetooth: enter `async with EmulatedAir()` first")


def _uuid128_to_str(data: bytes) -> str:
    text = data[::-1].hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True)
class Advert:
    """One decoded advertisement, as a scanner backend needs it."""

    address: str
    rssi: int
    local_name: str | None = None
    service_uuids: list[str] = field(default_factory=list)
    service_data: dict[str, bytes] = field(default_factory=dict)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    tx_power: int | None = None

    @classmethod
    def parse(cls, address: str, rssi: int, data: bytes) -> Advert:
        """Decode the AD structures of an advertisement (malformed tails are ignored)."""
        local_name: str | None = None
        uuids: list[str] = []
        service_data: dict[str, bytes] = {}
        manufacturer: dict[int, bytes] = {}
        tx_power: int | None = None
        offset = 0
        while offset < len(data):
            length = data[offset]
            if length == 0 or offset + 1 + length > len(data):
                break
            ad_type = data[offset + 1]
            value = data[offset + 2 : offset + 1 + length]
            offset += 1 + length
            if ad_type in (0x02, 0x03):
                uuids += [uuid128(u) for (u,) in struct.iter_unpack("<H", value)]
            elif ad_type in (0x04, 0x05):
                uuids += [f"{u:08x}{BASE_UUID_SUFFIX}" for (u,) in struct.iter_unpack("<I", value)]
            elif ad_type in (0x06, 0x07):
                uuids += [_uuid128_to_str(value[i : i + 16]) for i in range(0, len(value), 16)]
            elif ad_type in (0x08, 0x09):
                if ad_type == 0x09 or local_name is None:
                    local_name = value.decode("utf-8", errors="replace")
            elif ad_type == 0x0A and len(value) == 1:
                tx_power = struct.unpack("<b", value)[0]
            elif ad_type == 0x16 and len(value) >= 2:
                service_data[uuid128(struct.unpack_from("<H", value)[0])] = value[2:]
            elif ad_type == 0x20 and len(value) >= 4:
                key = f"{struct.unpack_from('<I', value)[0]:08x}{BASE_UUID_SUFFIX}"
                service_data[key] = value[4:]
            elif ad_type == 0x21 and len(value) >= 16:
                service_data[_uuid128_to_str(value[:16])] = value[16:]
            elif ad_type == 0xFF and len(value) >= 2:
                manufacturer[struct.unpack_from("<H", value)[0]] = value[2:]
        return cls(address, rssi, local_name, uuids, service_data, manufacturer, tx_power)


AdvertListener = Callable[[Advert], None]


_AGENT_IO = {
    "KeyboardDisplay": PairingDelegate.DISPLAY_OUTPUT_AND_KEYBOARD_INPUT,
    "DisplayYesNo": PairingDelegate.DISPLAY_OUTPUT_AND_YES_NO_INPUT,
    "DisplayOnly": PairingDelegate.DISPLAY_OUTPUT_ONLY,
    "KeyboardOnly": PairingDelegate.KEYBOARD_INPUT_ONLY,
    "NoInputNoOutput": PairingDelegate.NO_OUTPUT_NO_INPUT,
}


class _Bluetoothd(PairingDelegate):
    """The gateway host's half of SMP, as bluetoothd runs it: every question goes to the
    registered agent over D-Bus (``org.bluez.Agent1``); with no agent, pairing fails (the
    "No agent available" of bleak#1434)."""

    def __init__(self, bluez: PrivateBluez | None, address: str) -> None:
        agent = None if bluez is None else bluez.default or next(iter(bluez.agents), None)
        super().__init__(
            io_capability=_AGENT_IO.get(
                agent.capability if agent else "", PairingDelegate.NO_OUTPUT_NO_INPUT
            )
        )
        self._bluez = bluez
        self._device = device_path(address)

    async def _ask(self, method: str, signature: str, *args: object) -> list[object] | None:
        if self._bluez is None:
            return None
        try:
            return await self._bluez.call(method, signature, [self._device, *args])
        except AgentRefused:
            return None

    async def confirm(self, auto: bool = False) -> bool:
        # Just Works: bluetoothd asks RequestAuthorization
        return await self._ask("RequestAuthorization", "o") is not None

    async def compare_numbers(self, number: int, digits: int) -> bool:
        return await self._ask("RequestConfirmation", "ou", number) is not None

    async def get_number(self) -> int | None:
        answer = await self._ask("RequestPasskey", "o")
        if not answer or not isinstance(answer[0], int):
            return None
        return answer[0]

    async def display_number(self, number: int, digits: int) -> None:
        await self._ask("DisplayPasskey", "ouq", number, 0)


class EmulatedAir:
    """Bluetooth without hardware: bumble controllers on one in-process link.

    ``async with EmulatedAir() as air:`` powers on the central that the bleak backend classes
    (:class:`BumbleScanner`, :class:`BumbleClient`) use, and makes this air the current one.
    ``await air.add(device)`` puts an emulated peripheral on the air. Pass
    ``backend=air.scanner_backend`` / ``backend=air.client_backend`` (classes bound to this air)
    or the unbound ``BumbleScanner`` / ``BumbleClient`` (which find the current air) to bleak.
    """

    def __init__(self) -> None:
        #: BlueZ's agent manager on a private D-Bus (:class:`PrivateBluez`): pairing asks the
        #: agent the gateway registered there. ``None``: no agent (pairing fails, as in BlueZ).
        self.bluez: PrivateBluez | None = None
        self._link: LocalLink | None = None
        self._central: Device | None = None
        self._central_controller: Controller | None = None
        self._controllers: list[Controller] = []
        self._peripherals: dict[str, EmulatedPeripheral] = {}
        self._peripheral_controllers: dict[str, Controller] = {}
        self._listeners: dict[object, AdvertListener] = {}
        self._scan_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        self._scanning = False
        self._open = False
        self._next_controller = 0
        self._scanner_backend: type[BumbleScanner] | None = None
        self._client_backend: type[BumbleClient] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        self._link = LocalLink()  # type: ignore[no-untyped-call]
        self._central = self._new_device("carebeacon-gateway", CENTRAL_ADDRESS)
        self._central_controller = self._controllers[-1]
        self._central.pairing_config_factory = self._central_pairing
        await self._central.power_on()
        self._central.on(self._central.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._open = True
        _current.set(self)
        _active.append(self)

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self in _active:
            _active.remove(self)
        if _current.get() is self:
            _current.set(None)
        central = self.central
        for connection in list(central.connections.values()):
            with contextlib.suppress(Exception):
                await connection.disconnect()
        for peripheral in self._peripherals.values():
            await peripheral.power_off()
        if self._scanning:
            with contextlib.suppress(Exception):
                await central.stop_scanning()
        self._listeners.clear()
        self._peripherals.clear()

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def is_scanning(self) -> bool:
        """Whether a scanner backend is listening (the central is scanning)."""
        return bool(self._listeners)

    @property
    def central(self) -> Device:
        if self._central is None:
            raise BleakError("the EmulatedAir is not open")
        return self._central

    def _new_device(self, name: str, address: str) -> Device:
        self._next_controller += 1
        controller = Controller(
            f"{name}-{self._next_controller}", link=self._link, public_address=address
        )
        self._controllers.append(controller)
        return Device(
            name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller))
        )

    def _central_pairing(self, connection: Connection) -> PairingConfig:
        address = connection.peer_address.to_string(with_type_qualifier=False)
        return PairingConfig(
            sc=True,
            mitm=True,
            bonding=True,
            delegate=_Bluetoothd(self.bluez, address),
            identity_address_type=PairingConfig.AddressType.RANDOM,
        )

    async def central_bonds(self) -> list[str]:
        """Addresses the gateway's host holds bond keys for (BlueZ's /var/lib/bluetooth)."""
        keystore = self.central.keystore
        return [] if keystore is None else [name for name, _ in await keystore.get_all()]

    # ---------------------------------------------------------------- peripherals

    async def add(self, peripheral: _P) -> _P:
        """Power ``peripheral`` on, on its own controller; it starts advertising."""
        if not self._open:
            raise BleakError("the EmulatedAir is not open")
        if peripheral.address in self._peripherals:
            raise ValueError("a device with this address is already on the air")
        device = self._new_device(peripheral.identity.local_name or "emulated", peripheral.address)
        await device.power_on()
        self._peripherals[peripheral.address] = peripheral
        self._peripheral_controllers[peripheral.address] = self._controllers[-1]
        await peripheral.power_on(device)
        return peripheral

    async def remove(self, peripheral: EmulatedPeripheral) -> None:
        """Take a device off the air (out of range / switched off)."""
        await peripheral.drop_connection()
        await peripheral.wait_disconnected()
        await peripheral.power_off()
        self._peripherals.pop(peripheral.address, None)
        controller = self._peripheral_controllers.pop(peripheral.address, None)
        if controller is not None and self._link is not None:
            self._link.remove_controller(controller)

    @property
    def peripherals(self) -> list[EmulatedPeripheral]:
        return list(self._peripherals.values())

    def peripheral(self, address: str) -> EmulatedPeripheral | None:
        return self._peripherals.get(address.upper())

    # ---------------------------------------------------------------- scanning (central side)

    async def add_scan_listener(self, key: object, listener: AdvertListener) -> None:
        async with self._scan_lock:
            self._listeners[key] = listener
            if not self._scanning:
                await self.central.start_scanning(filter_duplicates=False)
                self._scanning = True

    async def remove_scan_listener(self, key: object) -> None:
        async with self._scan_lock:
            self._listeners.pop(key, None)
            if self._scanning and not self._listeners and self._open:
                self._scanning = False
                await self.central.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        if not self._listeners:
            return
        address = advertisement.address.to_string(with_type_qualifier=False)
        peripheral = self._peripherals.get(address)
        rssi = peripheral.identity.rssi if peripheral is not None else advertisement.rssi
        advert = Advert.parse(address, rssi, bytes(advertisement.data_bytes))
        for listener in list(self._listeners.values()):
            listener(advert)

    # ---------------------------------------------------------------- connecting (central side)

    async def connect(self, address: str, connect_timeout: float) -> Connection:
        """Connect the central to ``address``; ``TimeoutError`` when nothing answers in time."""
        async with self._connect_lock:
            try:
                async with asyncio.timeout(connect_timeout):
                    connection: Connection = await self.central.connect(
                        Address(address), timeout=None
                    )
            except TimeoutError:
                # bumble's emulated controller acknowledges LE Create Connection Cancel but
                # keeps the pending connection: clear it so that the next connect is allowed.
                if self._central_controller is not None:
                    self._central_controller.pending_le_connection = None
                raise
        return connection

    # ---------------------------------------------------------------- backend classes

    @property
    def scanner_backend(self) -> type[BumbleScanner]:
        """A ``BumbleScanner`` subclass bound to this air, for ``BleakScanner(backend=…)``."""
        if self._scanner_backend is None:
            from lab.emulation._scanner import BumbleScanner

            self._scanner_backend = type("BumbleScanner", (BumbleScanner,), {"air": self})
        return self._scanner_backend

    @property
    def client_backend(self) -> type[BumbleClient]:
        """A ``BumbleClient`` subclass bound to this air, for ``BleakClient(backend=…)``."""
        if self._client_backend is None:
            from lab.emulation._client import BumbleClient

            self._client_backend = type("BumbleClient", (BumbleClient,), {"air": self})
        return self._client_backend
