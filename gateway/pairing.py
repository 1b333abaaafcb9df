"""Pairing: the BlueZ agent the gateway registers, and what counts as "this device needs a bond".

bleak registers no pairing agent (bleak#1434, #1380): without one, BlueZ fails ``Pair()`` with
``AuthenticationFailed`` even for Just Works. The gateway exports its own ``org.bluez.Agent1``
on the system bus (dbus-fast, which bleak already uses on Linux) and makes it the default
agent, as Home Assistant integrations do (hass-omron ``bluez_agent.py``, ha-onecontrol
``ble_agent.py``). Which method BlueZ calls (BlueZ doc/org.bluez.Agent.rst):

- ``RequestPasskey``: LE legacy passkey entry, the device shows a code we type (Accu-Chek);
- ``DisplayPasskey``: we show a code the user types on the device;
- ``RequestConfirmation``: LE Secure Connections numeric comparison;
- ``RequestAuthorization``: Just Works;
- ``AuthorizeService``, ``Cancel``, ``Release``.

Every answer comes from a :class:`PairingPolicy`: nothing is accepted outside a pairing window
opened for one device (by ``carebeacon gateway pair``, or by the service for an allowlisted
device that needs a bond). In the service's own window only Just Works is accepted: a passkey
or a number to compare needs the installer (``carebeacon gateway pair``).

This module does not use ``from __future__ import annotations``: dbus-fast reads the D-Bus
signatures from the annotations at class creation.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from bleak.exc import BleakDBusError, BleakGATTProtocolError
from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusSignature, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from gateway.errors import GatewayError

__all__ = [
    "AGENT_PATH",
    "AgentUnavailable",
    "BluezAgent",
    "PairingPolicy",
    "PairingRejected",
    "address_from_path",
    "agent_registered",
    "needs_pairing",
]

logger = logging.getLogger(__name__)

AGENT_PATH = "/org/carebeacon/agent"
AGENT_CAPABILITY = "KeyboardDisplay"
_BLUEZ = "org.bluez"
_REGISTER_SECONDS = 5.0

#: ATT errors meaning "this needs a bond" (Core Specification Vol 3, Part F, 3.4.1.1)
INSUFFICIENT_AUTHENTICATION = 0x05
INSUFFICIENT_ENCRYPTION_KEY_SIZE = 0x0C
INSUFFICIENT_ENCRYPTION = 0x0F
_PAIRING_ATT_ERRORS = frozenset(
    {INSUFFICIENT_AUTHENTICATION, INSUFFICIENT_ENCRYPTION_KEY_SIZE, INSUFFICIENT_ENCRYPTION}
)
#: BlueZ D-Bus errors of a failed pairing (BlueZ src/error.c) and of an encrypted operation
#: refused on an unpaired link ("Not paired", bleak's utils.assert_gatt_reply)
_PAIRING_DBUS_ERRORS = frozenset(
    {
        "org.bluez.Error.AuthenticationFailed",
        "org.bluez.Error.AuthenticationRejected",
        "org.bluez.Error.AuthenticationCanceled",
        "org.bluez.Error.AuthenticationTimeout",
    }
)


class PairingRejected(GatewayError):
    """The agent refused a pairing question (no window open, no passkey, or declined)."""

    def __init__(self, question: str) -> None:
        super().__init__(f"pairing refused: {question}")
        self.question = question


class AgentUnavailable(GatewayError):
    """No agent could be registered with BlueZ (no system bus, no bluetoothd, not allowed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"no pairing agent: {reason}")
        self.reason = reason


def needs_pairing(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the link lacks a bond: ATT
    insufficient authentication / encryption / key size, BlueZ "Not paired", or a failed
    pairing. bleak-retry-connector wraps connect errors, so the chain is followed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BleakGATTProtocolError) and current.args[0] in (_PAIRING_ATT_ERRORS):
            return True
        if isinstance(current, BleakDBusError):
            details = (current.dbus_error_details or "").lower()
            if current.dbus_error in _PAIRING_DBUS_ERRORS:
                return True
            if current.dbus_error == "org.bluez.Error.NotPermitted" and "not paired" in details:
                return True
            if current.dbus_error == "org.bluez.Error.Failed" and any(
                f"att error: 0x{code:02x}" in details for code in _PAIRING_ATT_ERRORS
            ):
                return True
        current = current.__cause__ or current.__context__
    return False


def address_from_path(path: str) -> str:
    """``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF`` → ``AA:BB:CC:DD:EE:FF``."""
    tail = path.rsplit("/", 1)[-1]
    if not tail.startswith("dev_"):
        return tail
    return tail[4:].replace("_", ":").upper()


PasskeyPrompt = Callable[[str], Awaitable[int | None]]
ConfirmPrompt = Callable[[str, int], Awaitable[bool]]


@dataclass(slots=True)
class _Window:
    passkey: int | None
    prompt: PasskeyPrompt | None
    confirm: ConfirmPrompt | None
    just_works: bool
    displayed: list[int]


class PairingPolicy:
    """The agent's answers: pairing is accepted only for a device with an open window.

    ``with policy.window(address, passkey=…)`` (or ``prompt=``, ``confirm=``) while pairing
    one device. ``just_works=False`` also refuses Just Works (the service opens windows with
    ``just_works=True`` and nothing else).
    """

    def __init__(self, *, passkey_timeout: float = 120.0) -> None:
        self._windows: dict[str, _Window] = {}
        self.passkey_timeout = passkey_timeout
        self.cancelled = asyncio.Event()

    @contextlib.contextmanager
    def window(
        self,
        address: str,
        *,
        passkey: int | None = None,
        prompt: PasskeyPrompt | None = None,
        confirm: ConfirmPrompt | None = None,
        just_works: bool = True,
    ) -> Iterator[list[int]]:
        """Accept pairing with ``address`` inside the block; yields the list of passkeys
        BlueZ asked us to display (DisplayPasskey)."""
        key = address.upper()
        window = _Window(passkey, prompt, confirm, just_works, [])
        self._windows[key] = window
        self.cancelled.clear()
        try:
            yield window.displayed
        finally:
            if self._windows.get(key) is window:
                del self._windows[key]

    def _open(self, address: str, question: str) -> _Window:
        window = self._windows.get(address.upper())
        if window is None:
            logger.warning("refused a pairing request (%s) outside a pairing window", question)
            raise PairingRejected(question)
        return window

    async def request_passkey(self, address: str) -> int:
        window = self._open(address, "passkey")
        if window.passkey is not None:
            return window.passkey
        if window.prompt is None:
            logger.warning("a device asks for a passkey: pair it with `carebeacon gateway pair`")
            raise PairingRejected("passkey")
        async with asyncio.timeout(self.passkey_timeout):
            passkey = await window.prompt(address)
        if passkey is None or not 0 <= passkey <= 999999:
            raise PairingRejected("passkey")
        return passkey

    def display_passkey(self, address: str, passkey: int) -> None:
        window = self._windows.get(address.upper())
        if window is not None and passkey not in window.displayed:
            window.displayed.append(passkey)

    async def request_confirmation(self, address: str, passkey: int) -> None:
        window = self._open(address, "numeric comparison")
        if window.confirm is None or not await window.confirm(address, passkey):
            if window.confirm is None:
                logger.warning(
                    "a device asks to compare numbers: pair it with `carebeacon gateway pair`"
                )
            raise PairingRejected("numeric comparison")

    async def request_authorization(self, address: str) -> None:
        window = self._open(address, "just works")
        if not window.just_works:
            raise PairingRejected("just works")

    async def authorize_service(self, address: str, uuid: str) -> None:
        self._open(address, "service")

    def cancel(self) -> None:
        self.cancelled.set()


class BluezAgent(ServiceInterface):
    """``org.bluez.Agent1``, answering from a :class:`PairingPolicy`."""

    def __init__(self, policy: PairingPolicy) -> None:
        super().__init__("org.bluez.Agent1")
        self.policy = policy
        self.released = asyncio.Event()

    @staticmethod
    def _rejected(error: Exception) -> DBusError:
        if isinstance(error, TimeoutError):
            return DBusError("org.bluez.Error.Canceled", "no answer in time")
        return DBusError("org.bluez.Error.Rejected", str(error))

    @dbus_method()
    def Release(self) -> None:
        self.released.set()

    @dbus_method()
    async def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        try:
            return await self.policy.request_passkey(address_from_path(device))
        except (PairingRejected, TimeoutError) as error:
            raise self._rejected(error) from None

    @dbus_method()
    def DisplayPasskey(
        self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16
    ) -> None:
        self.policy.display_passkey(address_from_path(device), passkey)

    @dbus_method()
    async def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> None:
        try:
            await self.policy.request_confirmation(address_from_path(device), passkey)
        except (PairingRejected, TimeoutError) as error:
            raise self._rejected(error) from None

    @dbus_method()
    async def RequestAuthorization(self, device: DBusObjectPath) -> None:
        try:
            await self.policy.request_authorization(address_from_path(device))
        except PairingRejected as error:
            raise self._rejected(error) from None

    @dbus_method()
    async def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> None:
        try:
            await self.policy.authorize_service(address_from_path(device), uuid)
        except PairingRejected as error:
            raise self._rejected(error) from None

    @dbus_method()
    def RequestPinCode(self, device: DBusObjectPath) -> Annotated[str, DBusSignature("s")]:
        raise DBusError("org.bluez.Error.Rejected", "no PIN codes (LE devices only)")

    @dbus_method()
    def Cancel(self) -> None:
        self.policy.cancel()


async def _call(bus: MessageBus, member: str, signature: str, body: list[object]) -> None:
    reply = await bus.call(
        Message(
            destination=_BLUEZ,
            path="/org/bluez",
            interface="org.bluez.AgentManager1",
            member=member,
            signature=signature,
            body=body,
        )
    )
    if reply is not None and reply.message_type is MessageType.ERROR:
        raise DBusError(reply.error_name or "org.freedesktop.DBus.Error.Failed", "")


@contextlib.asynccontextmanager
async def agent_registered(
    policy: PairingPolicy, *, path: str = AGENT_PATH, capability: str = AGENT_CAPABILITY
) -> AsyncIterator[BluezAgent]:
    """Export the agent on the system bus and make it BlueZ's default agent for the block.

    Raises :class:`AgentUnavailable` when there is no system bus or no BlueZ on it.
    """
    agent = BluezAgent(policy)
    try:
        async with asyncio.timeout(_REGISTER_SECONDS):
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, EOFError, TimeoutError, DBusError) as exc:
        # the OS's words ("No such file or directory"), not an exception class, for an installer
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise AgentUnavailable(f"no system D-Bus ({why})") from exc
    try:
        bus.export(path, agent)
        try:
            async with asyncio.timeout(_REGISTER_SECONDS):
                try:
                    await _call(bus, "RegisterAgent", "os", [path, capability])
                except DBusError as exc:
                    if exc.type != "org.bluez.Error.AlreadyExists":
                        raise
                    # left over from an earlier run on this connection: take it again
                    await _call(bus, "UnregisterAgent", "o", [path])
                    await _call(bus, "RegisterAgent", "os", [path, capability])
                await _call(bus, "RequestDefaultAgent", "o", [path])
        except (DBusError, TimeoutError, OSError, EOFError) as exc:
            reason = exc.type if isinstance(exc, DBusError) else type(exc).__name__
            raise AgentUnavailable(f"BlueZ refused the agent ({reason})") from exc
        logger.info("pairing agent registered with BlueZ (%s)", capability)
        try:
            yield agent
        finally:
            with contextlib.suppress(DBusError, TimeoutError, OSError, EOFError):
                async with asyncio.timeout(_REGISTER_SECONDS):
                    await _call(bus, "UnregisterAgent", "o", [path])
    finally:
        bus.disconnect()
