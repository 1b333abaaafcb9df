"""Broker credentials: Mosquitto password-file lines, per-gateway logins, reload.

Used by the admin API (provisioning a gateway) and by the development services alike. The
broker's state directory is ``$CAREBEACON_STATE_DIR/mosquitto``; its password files are written
atomically and owned by the ``mosquitto`` user when running as root.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pwd
import re
import secrets
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from carebeacon.settings import state_dir

__all__ = [
    "DeniedPublish",
    "broker_dir",
    "chown_mosquitto",
    "denied_publishes",
    "mosquitto_password_line",
    "provision_gateway_credentials",
    "reload_broker",
    "remove_gateway_credentials",
    "remove_password",
    "set_password",
    "write_owned",
]


def mosquitto_password_line(user: str, password: str) -> str:
    """A Mosquitto 2 password-file line (``$7$``: PBKDF2-SHA512, 101 iterations)."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def broker_dir() -> Path:
    return state_dir() / "mosquitto"


def write_owned(path: Path, text: str, mode: int = 0o640) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    chown_mosquitto(tmp)
    tmp.replace(path)


def chown_mosquitto(path: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    os.chown(path, entry.pw_uid, entry.pw_gid)


def set_password(path: Path, user: str, password: str) -> None:
    lines = [
        line
        for line in (path.read_text(encoding="utf-8").splitlines() if path.exists() else [])
        if line and not line.startswith(f"{user}:")
    ]
    lines.append(mosquitto_password_line(user, password))
    write_owned(path, "\n".join(lines) + "\n")


def provision_gateway_credentials(gateway_id: str, password: str) -> None:
    """Add or replace a gateway's broker login (TLS listener) and reload the broker."""
    if not gateway_id or any(c in gateway_id for c in ":/#+ \n") or len(gateway_id) > 64:
        raise ValueError("gateway id must be 1-64 characters without ':/#+' or whitespace")
    set_password(broker_dir() / "gateways.passwd", gateway_id, password)
    reload_broker()


def remove_password(path: Path, user: str) -> bool:
    """Drop ``user``'s line from a password file; True if there was one."""
    if not path.exists():
        return False
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line and not line.startswith(f"{user}:")]
    if len(kept) == len([line for line in lines if line]):
        return False
    write_owned(path, "".join(f"{line}\n" for line in kept))
    return True


def remove_gateway_credentials(gateway_id: str) -> bool:
    """Remove a gateway's broker login and reload the broker; True if it had one. Its retained
    topics are the caller's to clear (that needs an MQTT login, this module has none)."""
    if not gateway_id or any(c in gateway_id for c in ":/#+ \n") or len(gateway_id) > 64:
        raise ValueError("gateway id must be 1-64 characters without ':/#+' or whitespace")
    removed = remove_password(broker_dir() / "gateways.passwd", gateway_id)
    reload_broker()
    return removed


def reload_broker() -> None:
    pid_file = broker_dir() / "mosquitto.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)


# --- the broker's log: publishes it refused ------------------------------------------------
# Over MQTT 3.1.1 a publish the ACL denies is acknowledged like any other (3.1.1's PUBACK has no
# reason code) and dropped; Mosquitto 2.0 logs it (at the debug level only).

# Mosquitto 2.0 (src/handle_publish.c): "Denied PUBLISH from %s (d%d, q%d, r%d, m%d, '%s',
# ... (%ld bytes))", after the default unix-seconds timestamp
_DENIED = re.compile(
    r"^(?P<at>\d+): Denied PUBLISH from (?P<client>.+) \(d(?P<dup>[01]), q(?P<qos>[0-2]),"
    r" r(?P<retain>[01]), m(?P<mid>\d+), '(?P<topic>.*)', \.\.\. \((?P<size>\d+) bytes\)\)$"
)


@dataclass(frozen=True, slots=True)
class DeniedPublish:
    at: datetime
    client_id: str
    topic: str
    qos: int
    retain: bool
    payload_bytes: int


def denied_publishes(lines: Iterable[str]) -> Iterator[DeniedPublish]:
    """The denied publishes among a Mosquitto log's lines (other lines are skipped)."""
    for line in lines:
        match = _DENIED.match(line.rstrip("\n"))
        if match is None:
            continue
        yield DeniedPublish(
            at=datetime.fromtimestamp(int(match["at"]), UTC),
            client_id=match["client"],
            topic=match["topic"],
            qos=int(match["qos"]),
            retain=match["retain"] == "1",
            payload_bytes=int(match["size"]),
        )
