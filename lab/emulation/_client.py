"""A bleak client backend that connects over the emulated air."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDBusError, BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_str
from bumble import att, core, hci
from bumble.device import Connection, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy, ServiceProxy

from lab.emulation._air import EmulatedAir, current_air

__all__ = ["BumbleClient"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_REQUESTED_MTU = 517
_DISCONNECT_GRACE = 0.02
#: ATT errors after which BlueZ raises the link's security (encrypts with the bond's key)
_SECURITY_ERRORS = frozenset(
    {
        int(att.ErrorCode.INSUFFICIENT_AUTHENTICATION),
        int(att.ErrorCode.INSUFFICIENT_ENCRYPTION),
        int(att.ErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE),
    }
)
_AUTHENTICATION_FAILED = "org.bluez.Error.AuthenticationFailed"
_PROPERTY_NAMES: list[tuple[Characteristic.Properties, CharacteristicPropertyName]] = [
    (Characteristic.Properties.BROADCAST, "broadcast"),
    (Characteristic.Properties.READ, "read"),
    (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
    (Characteristic.Properties.WRITE, "write"),
    (Characteristic.Properties.NOTIFY, "notify"),
    (Characteristic.Properties.INDICATE, "indicate"),
    (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
    (Characteristic.Properties.EXTENDED_PROPERTIES, "extended-properties"),
]


def _uuid_str(uuid: core.UUID) -> str:
    return normalize_uuid_str(uuid.to_hex_str("-"))


class BumbleClient(BaseBleakClient):
    """``BleakClient(device, backend=BumbleClient)``: a GATT client on the emulated air.

    Connect, service discovery (services, characteristics, descriptors), reads, writes with and
    without response, notifications and indications (confirmed by bumble). When the link drops
    (either side), pending operations raise ``BleakError`` and the disconnected callback runs,
    as with BlueZ.

    Pairing as BlueZ does it: ``connect(pair=True)`` / ``pair()`` run SMP, asking the agent
    registered on the air's :class:`~lab.emulation.PrivateBluez` (failures raise
    ``BleakDBusError("org.bluez.Error.AuthenticationFailed")``); keys are kept on the central
    (``unpair()`` removes them). An ATT "insufficient authentication / encryption" error on a
    bonded device makes the client encrypt with the stored key and retry once, as BlueZ
    raises the security level; without keys, or when the device lost them, the ATT error
    reaches the caller (``BleakGATTProtocolError``).
    """

    air: ClassVar[EmulatedAir | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        services: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self.address = self.address.upper()
        self._requested_services = services
        self._name: str | None = (
            address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._characteristics: dict[int, CharacteristicProxy[bytes]] = {}
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._link_lost = False

    # ---------------------------------------------------------------- properties

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        if self._peer is None:
            return 23
        return int(self._peer.gatt_client.mtu)

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    # ---------------------------------------------------------------- connectivity

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        air = type(self).air or current_air()
        connection = await air.connect(self.address, self._timeout)
        self._link_lost = False
        self._connection = connection
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        peer = Peer(connection)
        self._peer = peer
        if self._name is None:
            device = air.peripheral(self.address)
            if device is not None:
                self._name = device.local_name
        try:
            if pair and not await self._has_keys():
                await self._pair(connection)
            async with asyncio.timeout(self._timeout):
                await self._gatt(peer.request_mtu(_REQUESTED_MTU))
                self.services = await self._discover(peer)
        except BaseException:
            await self.disconnect()
            raise
        logger.debug("emulated client connected, %d services", len(self.services.services))

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        services: list[ServiceProxy] = await self._gatt(peer.discover_services())
        for service_proxy in services:
            service_uuid = _uuid_str(service_proxy.uuid)
            if self._requested_services is not None and service_uuid not in (
                self._requested_services
            ):
                continue
            service = BleakGATTService(service_proxy, service_proxy.handle, service_uuid)
            collection.add_service(service)
            characteristics: list[CharacteristicProxy[bytes]] = await self._gatt(
                service_proxy.discover_characteristics()
            )
            for proxy in characteristics:
                properties = [name for flag, name in _PROPERTY_NAMES if proxy.properties & flag]
                characteristic = BleakGATTCharacteristic(
                    proxy,
                    proxy.handle,
                    _uuid_str(proxy.uuid),
                    properties,
                    lambda: self.mtu_size - 3,
                    service,
                )
                collection.add_characteristic(characteristic)
                self._characteristics[proxy.handle] = proxy
                descriptors = await self._gatt(proxy.discover_descriptors())
                for descriptor_proxy in descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor_proxy,
                            descriptor_proxy.handle,
                            _uuid_str(descriptor_proxy.type),
                            characteristic,
                        )
                    )
        return collection

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        # Let PDUs already queued (e.g. the confirmation of the last indication) reach the
        # device before the link goes down, as a real controller would.
        await asyncio.sleep(_DISCONNECT_GRACE)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await connection.disconnect()
        if self._connection is connection:
            # no disconnection event arrived: clean up anyway
            self._on_disconnection(0)

    def _on_disconnection(self, reason: int) -> None:
        if self._connection is None:
            return
        logger.debug("emulated link down (reason %d)", reason)
        self._connection = None
        self._peer = None
        self._link_lost = True
        self.services = None
        self._characteristics.clear()
        self._subscribers.clear()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    # ---------------------------------------------------------------- pairing

    def _air(self) -> EmulatedAir:
        return type(self).air or current_air()

    async def _has_keys(self) -> bool:
        keystore = self._air().central.keystore
        return keystore is not None and await keystore.get(self.address) is not None

    async def _pair(self, connection: Connection) -> None:
        try:
            await connection.pair()
        except (core.ProtocolError, hci.HCI_Error, core.InvalidStateError) as error:
            raise BleakDBusError(_AUTHENTICATION_FAILED, ["Authentication Failed"]) from error

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """As bleak's BlueZ backend: nothing to do when already paired."""
        if self._connection is None:
            raise BleakError("Not connected")
        if await self._has_keys():
            return
        await self._pair(self._connection)

    async def unpair(self) -> None:
        """Remove the central's keys for this device (BlueZ ``Adapter1.RemoveDevice``)."""
        keystore = self._air().central.keystore
        if keystore is not None and await keystore.get(self.address) is not None:
            await keystore.delete(self.address)
        if self._connection is not None:
            await self.disconnect()

    async def _secured(self, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Run a GATT operation; on "insufficient authentication / encryption" encrypt with
        the bond's key (if any) and retry once."""
        try:
            return await self._gatt(operation())
        except BleakGATTProtocolError as error:
            connection = self._connection
            if (
                int(error.code) not in _SECURITY_ERRORS
                or connection is None
                or connection.encryption
                or not await self._has_keys()
            ):
                raise
            try:
                await connection.encrypt()
            except (hci.HCI_Error, core.BaseBumbleError):
                # the device lost its keys ("PIN or Key Missing"): BlueZ reports the ATT error
                raise error from None
            return await self._gatt(operation())

    # ---------------------------------------------------------------- I/O

    async def _gatt(self, operation: Awaitable[_T]) -> _T:
        """Run a bumble GATT operation, translating errors to bleak's."""
        try:
            return await operation
        except att.ATT_Error as error:
            raise BleakGATTProtocolError(error.error_code) from None
        except core.TimeoutError as error:
            raise TimeoutError("GATT operation timed out") from error
        except core.BaseBumbleError as error:
            raise BleakError(f"GATT operation failed: {type(error).__name__}") from error
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._link_lost and task is not None and task.cancelling() == 0:
                # bumble cancels the pending request when the link drops
                raise BleakError("Not connected: the device disconnected") from None
            raise

    def _proxy(self, handle: int) -> CharacteristicProxy[bytes]:
        if self._peer is None:
            raise BleakError("Not connected")
        proxy = self._characteristics.get(handle)
        if proxy is None:
            raise BleakError(f"characteristic {handle} not found")
        return proxy

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def read_gatt_char(
        self,
        characteristic: BleakGATTCharacteristic,
        *,
        use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        return await self._read(characteristic.handle, use_cached=use_cached)

    async def read_gatt_descriptor(
        self,
        descriptor: BleakGATTDescriptor,
        *,
        use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        return await self._read(descriptor.handle, use_cached=use_cached)

    async def _read(self, handle: int, *, use_cached: bool) -> bytearray:
        client = self._require_peer().gatt_client
        if use_cached and handle in client.cached_values:
            return bytearray(client.cached_values[handle][1])
        value: bytes = await self._secured(lambda: client.read_value(handle))
        return bytearray(value)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        client = self._require_peer().gatt_client
        await self._secured(
            lambda: client.write_value(characteristic.handle, bytes(data), with_response=response)
        )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        client = self._require_peer().gatt_client
        await self._secured(
            lambda: client.write_value(descriptor.handle, bytes(data), with_response=True)
        )

    async def start_notify(
        self,
        characteristic: BleakGATTCharacteristic,
        callback: NotifyCallback,
        **kwargs: Any,
    ) -> None:
        proxy = self._proxy(characteristic.handle)
        client = self._require_peer().gatt_client
        if not proxy.properties & (
            Characteristic.Properties.NOTIFY | Characteristic.Properties.INDICATE
        ):
            raise BleakError("characteristic does not support notifications or indications")

        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        previous = self._subscribers.pop(characteristic.handle, None)
        if previous is not None:
            await self._gatt(client.unsubscribe(proxy, previous))
        self._subscribers[characteristic.handle] = subscriber
        await self._secured(lambda: client.subscribe(proxy, subscriber, prefer_notify=True))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy = self._proxy(characteristic.handle)
        client = self._require_peer().gatt_client
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._gatt(client.unsubscribe(proxy, subscriber, force=subscriber is None))
