"""The gateway's status message (retained) and the live facts it is built from."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from gateway.outbox import Outbox

__all__ = [
    "STATUS_SCHEMA",
    "StatusBoard",
    "build_status",
    "offline_status",
    "software_version",
]

STATUS_SCHEMA = "carebeacon.status/1"
_MAX_UNKNOWN = 1000


def software_version() -> str:
    try:
        return metadata.version("carebeacon")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StatusBoard:
    """Facts that live only in memory: unknown devices seen, active alarms.

    Unknown devices are remembered by a hash of their address (never the address itself), and
    only up to a bound: a block of flats full of phones must not grow the gateway's memory.
    """

    def __init__(self) -> None:
        self._unknown: set[str] = set()
        self.alarms: set[str] = set()
        #: device id → since when it waits for ``carebeacon gateway pair`` (gateway.radio)
        self.pairing_required: dict[str, datetime] = {}
        self.changed = asyncio.Event()

    @property
    def unknown_devices(self) -> int:
        return len(self._unknown)

    def saw_unknown(self, address: str) -> bool:
        """Count an unknown device once; True if it was new."""
        key = hashlib.sha256(address.encode()).hexdigest()[:16]
        if key in self._unknown or len(self._unknown) >= _MAX_UNKNOWN:
            return False
        self._unknown.add(key)
        self.changed.set()
        return True

    def set_alarm(self, name: str, active: bool) -> None:
        if active and name not in self.alarms:
            self.alarms.add(name)
            self.changed.set()
        elif not active and name in self.alarms:
            self.alarms.discard(name)
            self.changed.set()


def build_status(
    gateway_id: str, outbox: Outbox, board: StatusBoard, now: datetime | None = None
) -> dict[str, Any]:
    moment = now or datetime.now(UTC)
    oldest = outbox.oldest_at()
    board.set_alarm("outbox_full", outbox.full)
    board.set_alarm("pairing_required", bool(board.pairing_required))
    return {
        "schema": STATUS_SCHEMA,
        "gateway_id": gateway_id,
        "state": "online",
        "sent_at": iso_utc(moment),
        "software_version": software_version(),
        "devices": [
            {
                "id": device.id,
                "type": device.type,
                "last_reading_at": iso_utc(device.last_reading_at)
                if device.last_reading_at
                else None,
                "battery_percent": device.battery_percent,
                "clock_drift_seconds": device.clock_drift_seconds,
                "last_seen_at": iso_utc(device.last_seen_at) if device.last_seen_at else None,
                **(
                    {"pairing_required_since": iso_utc(board.pairing_required[device.id])}
                    if device.id in board.pairing_required
                    else {}
                ),
            }
            for device in outbox.devices()
        ],
        "unknown_devices": board.unknown_devices,
        "outbox": {
            "depth": outbox.depth,
            "oldest_at": iso_utc(oldest) if oldest else None,
            "full": outbox.full,
            "limit": outbox.max_readings,
        },
        "alarms": sorted(board.alarms),
    }


def offline_status(gateway_id: str) -> bytes:
    """The Last Will, and what a gateway publishes itself when it stops cleanly."""
    return json.dumps(
        {"schema": STATUS_SCHEMA, "gateway_id": gateway_id, "state": "offline"}
    ).encode()
