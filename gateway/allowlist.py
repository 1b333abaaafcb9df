"""The devices assigned to this home: from the config file, replaced by the server's when
pushed; and the bonds the gateway holds with them (:class:`Bonds`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import DeviceEntry, normalise_address

__all__ = ["Allowlist", "Bonds", "PairingNeeded", "address_identity"]

logger = logging.getLogger(__name__)


def address_identity(address: str) -> str:
    """The stable id of a device with no DIS serial or system id: a hash of its address."""
    digest = hashlib.sha256(normalise_address(address).encode()).hexdigest()[:20]
    return f"addr-{digest}"


class Allowlist:
    def __init__(self, entries: tuple[DeviceEntry, ...] = ()) -> None:
        self._file = entries
        self._server: tuple[DeviceEntry, ...] | None = None

    @property
    def entries(self) -> tuple[DeviceEntry, ...]:
        """The server's list once one was pushed (it is the source of truth), else the file's."""
        return self._server if self._server is not None else self._file

    @property
    def from_server(self) -> bool:
        return self._server is not None

    def set_server(self, entries: tuple[DeviceEntry, ...] | None) -> None:
        self._server = entries

    def by_address(self, address: str) -> DeviceEntry | None:
        wanted = normalise_address(address)
        hashed = address_identity(wanted)
        for entry in self.entries:
            if entry.address == wanted or entry.id == hashed:
                return entry
        return None

    def by_id(self, device_id: str) -> DeviceEntry | None:
        for entry in self.entries:
            if entry.id == device_id:
                return entry
        return None

    def awaiting_identity(self, device_type: str) -> list[DeviceEntry]:
        """Entries known only by a DIS identity: a device of this type may be probed for it."""
        return [
            entry
            for entry in self.entries
            if entry.address is None and entry.id is not None and entry.type == device_type
        ]


@dataclass(frozen=True, slots=True)
class PairingNeeded:
    """A device that cannot be read until it is paired again, since when and why."""

    address: str
    device_id: str | None
    since: datetime
    reason: str  # "bond_lost" or "pairing_failed"


class Bonds:
    """The devices this gateway is bonded with (their keys live in BlueZ), and the devices
    waiting for ``carebeacon gateway pair``; kept next to the outbox in ``bonds.json``.

    The service and the ``pair`` / ``unpair`` commands share the file: every read checks
    whether it changed on disk; every write replaces it atomically.
    """

    FILE = "bonds.json"

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / self.FILE
        self._stamp: tuple[int, int] | None = None
        self._bonded: dict[str, dict[str, Any]] = {}
        self._needed: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._bonded, self._needed = None, {}, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            body = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            self._bonded = dict(body.get("bonded") or {})
            self._needed = dict(body.get("pairing_required") or {})
        except (OSError, ValueError, TypeError) as exc:
            # keep the file for a look, start empty: BlueZ still holds the keys, and a bonded
            # device is simply recorded again at its next session
            kept = self.path.with_name(f"{self.FILE}.unreadable-{stat.st_mtime_ns}")
            os.replace(self.path, kept)
            logger.error(
                "%s was unreadable (%s); kept as %s, starting with no recorded bonds",
                self.path,
                type(exc).__name__,
                kept.name,
            )
            self._stamp, self._bonded, self._needed = None, {}, {}
            return
        self._stamp = stamp

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"bonded": self._bonded, "pairing_required": self._needed}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)
        stat = self.path.stat()
        self._stamp = (stat.st_mtime_ns, stat.st_size)

    def is_bonded(self, address: str) -> bool:
        self._load()
        return normalise_address(address) in self._bonded

    def bonded(self) -> dict[str, str | None]:
        """address → device id (if known) of every bonded device."""
        self._load()
        return {address: item.get("device_id") for address, item in self._bonded.items()}

    def add_bond(self, address: str, device_id: str | None, now: datetime | None = None) -> None:
        """Paired: remember it, and clear its pairing-required mark."""
        self._load()
        key = normalise_address(address)
        moment = now or datetime.now(UTC)
        self._bonded[key] = {"device_id": device_id, "bonded_at": moment.isoformat()}
        self._needed.pop(key, None)
        self._save()

    def remove_bond(self, address: str) -> bool:
        self._load()
        key = normalise_address(address)
        removed = self._bonded.pop(key, None) is not None
        removed = self._needed.pop(key, None) is not None or removed
        if removed:
            self._save()
        return removed

    def require_pairing(
        self, address: str, device_id: str | None, reason: str, now: datetime | None = None
    ) -> PairingNeeded:
        """Mark a device as waiting for the installer; the first mark's time is kept."""
        self._load()
        key = normalise_address(address)
        current = self._needed.get(key)
        if (
            current is None
            or current.get("reason") != reason
            or (device_id and current.get("device_id") != device_id)
        ):
            since = current["since"] if current else (now or datetime.now(UTC)).isoformat()
            self._needed[key] = {"device_id": device_id, "since": since, "reason": reason}
            if reason == "bond_lost":
                self._bonded.pop(key, None)
            self._save()
        item = self._needed[key]
        return PairingNeeded(
            key, item.get("device_id"), datetime.fromisoformat(item["since"]), reason
        )

    def pairing_required(self) -> list[PairingNeeded]:
        self._load()
        return [
            PairingNeeded(
                address,
                item.get("device_id"),
                datetime.fromisoformat(item["since"]),
                str(item.get("reason", "pairing_failed")),
            )
            for address, item in sorted(self._needed.items())
        ]

    def is_pairing_required(self, address: str) -> bool:
        self._load()
        return normalise_address(address) in self._needed
