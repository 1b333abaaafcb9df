"""Errors an installer can act on: a failure → its cause and the fix, said once.

The radio and the publisher retry for ever with backoff; a bare exception name repeated every
few seconds ("Bluetooth scanning failed (FileNotFoundError)") tells an installer nothing. Each
failure is turned into a :class:`Problem` (an alarm name from a closed set, the cause, the fix);
:class:`ProblemLog` logs a problem once, with its fix, then only at DEBUG while it lasts, logs
the recovery, keeps the alarm in the retained status and the text in ``systemctl status``.

aiomqtt turns a socket error into ``MqttError(str(exc))`` without its cause, so a broker
failure is diagnosed by :func:`probe_broker`: resolve, connect, TLS handshake with the
configured CA (the same steps ``carebeacon gateway doctor`` shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
)

from carebeacon import systemd
from gateway.config import MqttConfig

__all__ = [
    "ALARMS",
    "Problem",
    "ProblemLog",
    "bluetooth_problem",
    "broker_problem",
    "probe_broker",
]

logger = logging.getLogger(__name__)

#: every alarm a problem may raise in the status (a closed set)
ALARMS = frozenset(
    {
        "bluetooth_unavailable",
        "bluetooth_permission_denied",
        "broker_unreachable",
        "broker_host_unresolvable",
        "broker_tls_failed",
        "broker_login_refused",
        "clock_unsynchronised",
    }
)

_BLUEZ_FIX = "install and start BlueZ: apt install bluez && systemctl enable --now bluetooth"
_GROUP_FIX = (
    "run the gateway in the 'bluetooth' group (the shipped unit sets SupplementaryGroups=bluetooth)"
)


@dataclass(frozen=True, slots=True)
class Problem:
    #: the status alarm (one of :data:`ALARMS`)
    alarm: str
    #: what is wrong, for a person (no addresses, no secrets)
    cause: str
    #: what to do about it
    fix: str

    def line(self) -> str:
        return f"{self.cause}; {self.fix}"


def bluetooth_problem(exc: BaseException) -> Problem:
    """Why scanning (or a connection) could not start."""
    if isinstance(exc, BleakBluetoothNotAvailableError):
        reason = exc.reason
        if reason is BleakBluetoothNotAvailableReason.NO_BLUETOOTH:
            return Problem(
                "bluetooth_unavailable",
                "no Bluetooth adapter found",
                "enable the built-in one (rfkill unblock bluetooth; no dtoverlay=disable-bt in"
                " /boot/firmware/config.txt) or plug in a USB adapter",
            )
        if reason is BleakBluetoothNotAvailableReason.POWERED_OFF:
            return Problem(
                "bluetooth_unavailable",
                "the Bluetooth adapter is powered off",
                "rfkill unblock bluetooth && bluetoothctl power on"
                " (and AutoEnable=true in /etc/bluetooth/main.conf)",
            )
        if reason is BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE:
            return Problem(
                "bluetooth_unavailable",
                "the Bluetooth adapter cannot act as a BLE central",
                "use a Bluetooth 4.0+ (LE) adapter",
            )
        return Problem("bluetooth_permission_denied", "BlueZ refused access", _GROUP_FIX)
    if isinstance(exc, BleakDBusError):
        name = exc.dbus_error
        if name in {
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
        }:
            return Problem("bluetooth_unavailable", "BlueZ (bluetoothd) is not running", _BLUEZ_FIX)
        if name in {"org.freedesktop.DBus.Error.AccessDenied", "org.bluez.Error.NotPermitted"}:
            return Problem("bluetooth_permission_denied", "BlueZ refused access", _GROUP_FIX)
        return Problem("bluetooth_unavailable", f"BlueZ answered {name}", _BLUEZ_FIX)
    if isinstance(exc, PermissionError):
        return Problem(
            "bluetooth_permission_denied", "not allowed to use the D-Bus system bus", _GROUP_FIX
        )
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return Problem(
            "bluetooth_unavailable",
            "no D-Bus system bus (/run/dbus/system_bus_socket), so no BlueZ",
            "apt install dbus bluez && systemctl enable --now bluetooth",
        )
    return Problem("bluetooth_unavailable", f"Bluetooth failed ({type(exc).__name__})", _BLUEZ_FIX)


def broker_problem(exc: BaseException, found: Problem | None) -> Problem:
    """Why the broker connection failed: ``found`` is what :func:`probe_broker` found (the
    network and TLS steps); without it, what the MQTT layer said."""
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        code = int(exc.rc.value) if hasattr(exc.rc, "value") else int(exc.rc)
        if code in {4, 5, 134, 135}:  # 3.1.1 bad login / not authorised; MQTT 5 the same
            return Problem(
                "broker_login_refused",
                "the broker refused the login",
                "check gateway_id and the password (systemd credential mqtt-password,"
                " password_file or CAREBEACON_GATEWAY_PASSWORD) with the server's admin",
            )
    if found is not None:
        return found
    return Problem(
        "broker_unreachable",
        f"the broker connection failed ({type(exc).__name__})",
        "check the network and the broker; retrying",
    )


async def probe_broker(mqtt: MqttConfig, *, within: float = 10.0) -> Problem | None:
    """Resolve the host, open TCP, do the TLS handshake with the configured CA. ``None`` when
    all of that works (the problem, if any, is then in MQTT itself)."""
    loop = asyncio.get_running_loop()
    where = f"{mqtt.host}:{mqtt.port}"
    try:
        await asyncio.wait_for(
            loop.getaddrinfo(mqtt.host, mqtt.port, type=socket.SOCK_STREAM), within
        )
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            return Problem(
                "broker_unreachable",
                f"cannot resolve {mqtt.host} now (DNS not answering)",
                "check the network connection and DNS",
            )
        return Problem(
            "broker_host_unresolvable",
            f"the broker host {mqtt.host} does not resolve",
            "check mqtt.host in the configuration (and the network's DNS)",
        )
    except TimeoutError:
        return Problem(
            "broker_unreachable", f"resolving {mqtt.host} timed out", "check the network and DNS"
        )
    context: ssl.SSLContext | None = None
    if mqtt.tls:
        try:
            context = ssl.create_default_context(cafile=mqtt.ca_file)
        except (OSError, ssl.SSLError) as exc:
            return Problem(
                "broker_tls_failed",
                f"the CA file {mqtt.ca_file} cannot be used ({type(exc).__name__})",
                "install the project's CA certificate there (mqtt.ca_file)",
            )
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                mqtt.host, mqtt.port, ssl=context, server_hostname=mqtt.host if context else None
            ),
            within,
        )
    except ssl.SSLCertVerificationError as exc:
        return Problem(
            "broker_tls_failed",
            f"the broker's certificate is not trusted ({exc.verify_message})",
            f"mqtt.ca_file must be the CA that signed {mqtt.host}'s certificate, and the"
            " certificate must name that host",
        )
    except ssl.SSLError as exc:
        return Problem(
            "broker_tls_failed",
            f"TLS with {where} failed ({exc.reason or type(exc).__name__})",
            "check that mqtt.port is the broker's TLS listener and mqtt.tls = true",
        )
    except ConnectionRefusedError:
        return Problem(
            "broker_unreachable",
            f"nothing accepts connections on {where}",
            "check mqtt.port and that the broker runs",
        )
    except (OSError, TimeoutError) as exc:
        return Problem(
            "broker_unreachable",
            f"{where} cannot be reached ({type(exc).__name__})",
            "check the network connection (and any firewall)",
        )
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return None


class ProblemLog:
    """One place (radio, publisher) that reports its current problem once."""

    def __init__(self, where: str, set_alarm: Callable[[str, bool], None] | None = None) -> None:
        self.where = where
        self.current: Problem | None = None
        self._set_alarm = set_alarm

    def report(self, problem: Problem, retry_in: float) -> bool:
        """Log ``problem`` (WARNING, with the fix) if it is new, else at DEBUG; ``True`` if new."""
        new = problem != self.current
        if new:
            if self.current is not None:
                self._alarm(self.current.alarm, False)
            self.current = problem
            logger.warning(
                "%s: %s; %s (retrying quietly with backoff)",
                self.where,
                problem.cause,
                problem.fix,
            )
            systemd.notify_status(f"{self.where}: {problem.cause}")
        else:
            logger.debug(
                "%s still failing: %s; retrying in %.1f s", self.where, problem.cause, retry_in
            )
        self._alarm(problem.alarm, True)
        return new

    def resolved(self) -> None:
        if self.current is None:
            return
        logger.info("%s: recovered (%s no longer)", self.where, self.current.cause)
        self._alarm(self.current.alarm, False)
        self.current = None
        systemd.notify_status(f"{self.where}: ok")

    def _alarm(self, name: str, active: bool) -> None:
        if self._set_alarm is not None:
            self._set_alarm(name, active)
