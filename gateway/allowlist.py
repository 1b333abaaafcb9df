"""The devices assigned to this home: from the config file, replaced by the server's when pushed."""

from __future__ import annotations

import hashlib

from gateway.config import DeviceEntry, normalise_address

__all__ = ["Allowlist", "address_identity"]


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
