"""BlueZ's agent side, emulated: a private D-Bus daemon and an ``org.bluez`` AgentManager1.

The gateway registers its pairing agent (``org.bluez.Agent1``) with BlueZ over the system bus.
There is no bluetoothd here, so :class:`PrivateBluez` starts a private ``dbus-daemon``, takes
the name ``org.bluez`` on it and serves ``/org/bluez`` with ``org.bluez.AgentManager1``
(``RegisterAgent``, ``UnregisterAgent``, ``RequestDefaultAgent``). Point the gateway at it with
``DBUS_SYSTEM_BUS_ADDRESS`` (:attr:`PrivateBluez.address`). When a device on the
:class:`~lab.emulation.EmulatedAir` pairs, the air's central calls the default agent's methods
over D-Bus, as bluetoothd does: ``RequestPasskey`` (we type the code the device shows),
``DisplayPasskey``, ``RequestConfirmation`` (numeric comparison), ``RequestAuthorization``
(Just Works), ``Cancel``; ``Release`` when the daemon stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus

__all__ = ["AgentRefused", "PrivateBluez", "device_path"]

logger = logging.getLogger(__name__)

BLUEZ = "org.bluez"
AGENT_INTERFACE = "org.bluez.Agent1"
_STARTUP_SECONDS = 10.0
_CAPABILITIES = frozenset(
    {"", "DisplayOnly", "DisplayYesNo", "KeyboardOnly", "NoInputNoOutput", "KeyboardDisplay"}
)


def device_path(address: str, adapter: str = "hci0") -> str:
    """BlueZ's object path of a device: ``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF``."""
    return f"/org/bluez/{adapter}/dev_{address.upper().replace(':', '_')}"


class AgentRefused(Exception):
    """The agent answered with a D-Bus error (e.g. ``org.bluez.Error.Rejected``), or there is
    no agent."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True, slots=True)
class _Agent:
    sender: str
    path: str
    capability: str


class PrivateBluez:
    """``async with PrivateBluez() as bluez:`` a private bus with BlueZ's agent manager on it."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._daemon: asyncio.subprocess.Process | None = None
        self._bus: MessageBus | None = None
        self.address = ""
        self.agents: list[_Agent] = []
        self.default: _Agent | None = None
        self._sender = ""
        #: every agent call made, as (method, arguments) — tests read it
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def __aenter__(self) -> Self:
        if shutil.which("dbus-daemon") is None:
            raise RuntimeError("dbus-daemon is not installed (Debian package 'dbus')")
        self._dir = tempfile.mkdtemp(prefix="carebeacon-dbus-")
        self.address = f"unix:path={Path(self._dir) / 'bus'}"
        self._daemon = await asyncio.create_subprocess_exec(
            "dbus-daemon",
            "--session",
            "--nofork",
            "--nopidfile",
            f"--address={self.address}",
            "--print-address",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self._daemon.stdout is not None
        async with asyncio.timeout(_STARTUP_SECONDS):
            # the address is printed once the daemon listens
            printed = await self._daemon.stdout.readline()
        if not printed:
            raise RuntimeError("dbus-daemon did not start")
        bus = await MessageBus(bus_address=self.address).connect()
        self._bus = bus
        bus.add_message_handler(self._agent_manager)
        await bus.request_name(BLUEZ)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bus is not None:
            if self.default is not None:
                with contextlib.suppress(AgentRefused, DBusError, OSError, EOFError):
                    async with asyncio.timeout(2):
                        await self.call("Release", "", [])
            self._bus.disconnect()
            self._bus = None
        if self._daemon is not None:
            self._daemon.terminate()
            await self._daemon.wait()
            self._daemon = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def environ(self) -> dict[str, str]:
        """Environment for a process that should take this bus as its system bus."""
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}

    @property
    def bus_type(self) -> BusType:
        return BusType.SYSTEM

    # ---------------------------------------------------------------- AgentManager1

    def _agent_manager(self, message: Message) -> Message | None:
        """``org.bluez.AgentManager1`` at ``/org/bluez`` (BlueZ doc/org.bluez.AgentManager.rst).
        A message handler rather than a ServiceInterface: BlueZ keys agents by their sender."""
        if (
            message.message_type is not MessageType.METHOD_CALL
            or message.path != "/org/bluez"
            or message.interface != "org.bluez.AgentManager1"
        ):
            return None
        try:
            if message.member == "RegisterAgent" and message.signature == "os":
                self.register(message.sender or "", *message.body)
            elif message.member == "UnregisterAgent" and message.signature == "o":
                self.unregister(message.sender or "", message.body[0])
            elif message.member == "RequestDefaultAgent" and message.signature == "o":
                self.make_default(message.sender or "", message.body[0])
            else:
                raise DBusError("org.bluez.Error.InvalidArguments", "Invalid arguments")
        except DBusError as error:
            return Message.new_error(message, error.type, error.text)
        return Message.new_method_return(message)

    def register(self, sender: str, path: str, capability: str) -> None:
        if any(agent.sender == sender for agent in self.agents):
            raise DBusError("org.bluez.Error.AlreadyExists", "Already Exists")
        if capability not in _CAPABILITIES:
            raise DBusError("org.bluez.Error.InvalidArguments", "Invalid Arguments")
        self.agents.append(_Agent(sender, path, capability or "KeyboardDisplay"))
        logger.debug("agent registered (%s)", capability)

    def unregister(self, sender: str, path: str) -> None:
        agent = next((a for a in self.agents if a.sender == sender and a.path == path), None)
        if agent is None:
            raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
        self.agents.remove(agent)
        if self.default is agent:
            self.default = None

    def make_default(self, sender: str, path: str) -> None:
        agent = next((a for a in self.agents if a.sender == sender and a.path == path), None)
        if agent is None:
            raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")
        self.default = agent

    # ---------------------------------------------------------------- calling the agent

    async def call(self, method: str, signature: str, body: list[Any]) -> list[Any]:
        """Call the default agent (as bluetoothd does); :class:`AgentRefused` on an error reply
        or when no agent is registered."""
        agent = self.default or (self.agents[0] if self.agents else None)
        if agent is None or self._bus is None:
            raise AgentRefused("no agent")
        self.calls.append((method, tuple(body)))
        reply = await self._bus.call(
            Message(
                destination=agent.sender,
                path=agent.path,
                interface=AGENT_INTERFACE,
                member=method,
                signature=signature,
                body=body,
            )
        )
        if reply is None:
            return []
        if reply.message_type is MessageType.ERROR:
            raise AgentRefused(reply.error_name or "org.freedesktop.DBus.Error.Failed")
        return list(reply.body)
