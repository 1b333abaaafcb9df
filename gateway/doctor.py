"""``carebeacon gateway doctor --config gateway.toml``: is this box ready to be a gateway?

One line per check, ``ok`` / ``warn`` / ``FAIL`` / ``?`` (unknown), with the fix where there is
one; exit status 1 when a check that blocks the gateway fails, 2 when the configuration cannot
be read, else 0. Nothing is changed and nothing is sent: the broker check resolves the host and
completes the TLS handshake with the configured CA, but does not log in (the broker pins client
id = user name, so a login would replace the running gateway's session); the outbox is opened
read-only.

Checks: configuration, BlueZ version, D-Bus and bluetoothd, adapter present and powered,
permissions (the ``bluetooth`` group), pairing agent, time synchronisation, broker (DNS, TCP,
TLS), outbox health.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gateway.clock import ClockSync
from gateway.config import GatewayConfig, load_config, preflight
from gateway.errors import ConfigError
from gateway.problems import probe_broker

__all__ = ["Check", "main", "run_checks"]

OK, WARN, FAIL, UNKNOWN = "ok", "warn", "FAIL", "?"
#: where Debian / Raspberry Pi OS put bluetoothd (it is not on PATH)
_BLUETOOTHD = ("/usr/libexec/bluetooth/bluetoothd", "/usr/lib/bluetooth/bluetoothd")
_OUTBOX_FILE = "gateway.sqlite3"
DEFAULT_STATE_DIR = "/var/lib/carebeacon-gateway"
#: the kernel's Bluetooth controllers (hci0, …), with or without BlueZ
SYSFS_BLUETOOTH = Path("/sys/class/bluetooth")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # OK, WARN, FAIL or UNKNOWN
    detail: str
    #: a FAIL of this check stops the gateway from working
    blocking: bool = True

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<11} {self.detail}"


def _bluez_version() -> Check:
    for command in (
        *[[path, "--version"] for path in _BLUETOOTHD if Path(path).exists()],
        *([["bluetoothctl", "--version"]] if shutil.which("bluetoothctl") else []),
    ):
        try:
            out = subprocess.run(
                command, capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        found = re.search(r"(\d+)\.(\d+)", out)
        if found:
            version = (int(found[1]), int(found[2]))
            if version < (5, 55):
                return Check("bluez", WARN, f"BlueZ {found[0]}: older than 5.55; upgrade the OS")
            return Check("bluez", OK, f"BlueZ {found[0]}")
    return Check("bluez", FAIL, "BlueZ is not installed (no bluetoothd); apt install bluez")


async def _bluez_objects() -> tuple[dict[str, Any] | None, str | None]:
    """BlueZ's objects (``GetManagedObjects``), or the D-Bus error / OS error that stopped us."""
    try:  # bleak's own D-Bus library on Linux
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus
    except ImportError:
        return None, "no dbus_fast"

    try:
        bus = await asyncio.wait_for(MessageBus(bus_type=BusType.SYSTEM).connect(), 10)
    except (OSError, TimeoutError) as exc:
        return None, type(exc).__name__
    except Exception as exc:  # dbus_fast's AuthError and friends
        return None, type(exc).__name__
    try:
        reply = await asyncio.wait_for(
            bus.call(
                Message(
                    destination="org.bluez",
                    path="/",
                    interface="org.freedesktop.DBus.ObjectManager",
                    member="GetManagedObjects",
                )
            ),
            10,
        )
    except TimeoutError:
        return None, "TimeoutError"
    finally:
        bus.disconnect()
    if reply is None:
        return None, "no reply"
    if reply.message_type == MessageType.ERROR:
        return None, str(reply.error_name)
    objects: dict[str, Any] = reply.body[0]
    return objects, None


def _bluetooth_checks(objects: dict[str, Any] | None, error: str | None) -> list[Check]:
    if objects is None:
        if error in {"FileNotFoundError", "ConnectionRefusedError"}:
            detail = "no D-Bus system bus (/run/dbus/system_bus_socket); apt install dbus bluez"
            return [Check("bluetoothd", FAIL, detail), _not_checked("adapter")]
        if error in {
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
        }:
            detail = "bluetoothd is not running; systemctl enable --now bluetooth"
            return [Check("bluetoothd", FAIL, detail), _not_checked("adapter")]
        if error in {"org.freedesktop.DBus.Error.AccessDenied", "PermissionError", "AuthError"}:
            detail = f"D-Bus refused BlueZ to this user ({error}); add it to the bluetooth group"
            return [Check("bluetoothd", FAIL, detail), _not_checked("adapter")]
        return [
            Check("bluetoothd", FAIL, f"BlueZ cannot be asked ({error})"),
            _not_checked("adapter"),
        ]
    adapters = {
        path: interfaces["org.bluez.Adapter1"]
        for path, interfaces in objects.items()
        if "org.bluez.Adapter1" in interfaces
    }
    checks = [Check("bluetoothd", OK, "running, answers on D-Bus")]
    if not adapters:
        checks.append(
            Check(
                "adapter",
                FAIL,
                "no Bluetooth adapter; rfkill unblock bluetooth, check /boot/firmware/config.txt"
                " for dtoverlay=disable-bt, or plug in a USB adapter",
            )
        )
        return checks
    names = []
    powered = False
    for path, props in sorted(adapters.items()):
        on = bool(getattr(props.get("Powered"), "value", False))
        powered = powered or on
        names.append(f"{path.rsplit('/', 1)[-1]} ({'powered' if on else 'off'})")
    if not powered:
        checks.append(
            Check(
                "adapter",
                FAIL,
                f"{', '.join(names)}: powered off; rfkill unblock bluetooth &&"
                " bluetoothctl power on (AutoEnable=true in /etc/bluetooth/main.conf)",
            )
        )
    else:
        checks.append(Check("adapter", OK, ", ".join(names)))
    return checks


def _not_checked(name: str) -> Check:
    """The adapter as the kernel sees it, when BlueZ cannot be asked."""
    assert name == "adapter"
    found = sorted(p.name for p in SYSFS_BLUETOOTH.glob("hci*")) if SYSFS_BLUETOOTH.is_dir() else []
    if not found:
        return Check(
            "adapter",
            FAIL,
            f"no Bluetooth adapter (none in {SYSFS_BLUETOOTH}); enable the built-in one or plug"
            " in a USB adapter",
        )
    return Check(
        "adapter",
        UNKNOWN,
        f"{', '.join(found)} present (kernel); powered or not: BlueZ cannot be asked",
        blocking=False,
    )


def _permissions() -> Check:
    if os.geteuid() == 0:
        return Check("permissions", OK, "root (the service runs as a dynamic user instead)")
    try:
        gid = grp.getgrnam("bluetooth").gr_gid
    except KeyError:
        return Check("permissions", WARN, "no 'bluetooth' group (is BlueZ installed?)")
    if gid in os.getgroups():
        return Check("permissions", OK, "in the bluetooth group")
    return Check(
        "permissions",
        FAIL,
        "this user is not in the bluetooth group; usermod -aG bluetooth USER (the shipped"
        " unit sets SupplementaryGroups=bluetooth)",
    )


def _agent() -> Check:
    # BlueZ's AgentManager1 has no method or property that lists registered agents
    return Check(
        "agent",
        UNKNOWN,
        "BlueZ does not tell which pairing agent is registered; carebeacon gateway pair"
        " registers its own (stop an interactive bluetoothctl while pairing)",
        blocking=False,
    )


def _time(sync: ClockSync) -> Check:
    state = sync.state()
    if state.synchronised:
        return Check("time", OK, f"synchronised ({state.source})", blocking=False)
    return Check(
        "time",
        WARN,
        f"{state.detail}: device clocks are not set until it is; systemctl enable --now"
        " systemd-timesyncd (and check the network reaches an NTP server)",
        blocking=False,
    )


def _outbox(config: GatewayConfig) -> Check:
    path = config.state_dir / _OUTBOX_FILE
    if not path.exists():
        return Check("outbox", OK, f"none yet at {path} (created on the first run)")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            integrity = db.execute("PRAGMA quick_check").fetchone()[0]
            depth, oldest = db.execute("SELECT count(*), min(stored_at) FROM outbox").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check("outbox", FAIL, f"{path} cannot be read ({exc}); move it aside")
    if integrity != "ok":
        return Check("outbox", FAIL, f"{path} is damaged ({integrity}); move it aside")
    limit = config.outbox.max_readings
    age = ""
    if oldest:
        waited = datetime.now(UTC) - datetime.fromisoformat(oldest)
        age = f", oldest waiting {int(waited.total_seconds() // 60)} min"
    detail = f"{depth} of {limit} readings waiting{age}"
    if depth >= limit:
        return Check("outbox", FAIL, f"full: {detail}; the broker must take them (see broker)")
    if depth >= limit * 0.8:
        return Check("outbox", WARN, detail, blocking=False)
    return Check("outbox", OK, detail)


async def _broker(config: GatewayConfig) -> Check:
    mqtt = config.mqtt
    problem = await probe_broker(mqtt)
    if problem is not None:
        return Check("broker", FAIL, problem.line())
    how = f"TLS verified with {mqtt.ca_file or 'the system CAs'}" if mqtt.tls else "no TLS"
    return Check("broker", OK, f"{mqtt.host}:{mqtt.port} reachable, {how} (login not tried)")


async def run_checks(
    config_path: Path,
    *,
    clock_sync: ClockSync | None = None,
    environ: dict[str, str] | None = None,
) -> list[Check]:
    checks: list[Check] = []
    config: GatewayConfig | None = None
    # as the shipped unit would run it: $STATE_DIRECTORY, and the password credential that
    # LoadCredential= takes from the configuration directory (read, never sent)
    env = dict(os.environ if environ is None else environ)
    env.setdefault("STATE_DIRECTORY", DEFAULT_STATE_DIR)
    env.setdefault("CREDENTIALS_DIRECTORY", str(config_path.parent))
    try:
        config = load_config(config_path, environ=env)
        preflight(config, resolve=None, create=False)  # the broker check resolves
    except ConfigError as exc:
        checks.append(Check("config", FAIL, str(exc)))
    else:
        checks.append(Check("config", OK, f"{config_path} (gateway {config.gateway_id})"))
    checks.append(_bluez_version())
    checks += _bluetooth_checks(*await _bluez_objects())
    checks.append(_permissions())
    checks.append(_agent())
    checks.append(_time(clock_sync or ClockSync()))
    if config is None:
        checks += [
            Check(name, UNKNOWN, "not checked (no valid configuration)", blocking=False)
            for name in ("broker", "outbox")
        ]
    else:
        checks.append(await _broker(config))
        checks.append(_outbox(config))
    return checks


def main(argv: Sequence[str], *, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="carebeacon gateway doctor",
        description="Check this machine for a home gateway: BlueZ, adapter, permissions,"
        " time, broker, outbox. Changes nothing.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("/etc/carebeacon-gateway/gateway.toml"),
        help="the gateway's TOML file (default: %(default)s)",
    )
    args = parser.parse_args(list(argv))
    stream = out or sys.stdout
    checks = asyncio.run(run_checks(args.config))
    for check in checks:
        print(check.line(), file=stream)
    if any(c.name == "config" and c.status == FAIL for c in checks):
        return 2
    return 1 if any(c.status == FAIL and c.blocking for c in checks) else 0
