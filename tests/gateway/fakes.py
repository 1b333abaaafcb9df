"""Readings for tests that do not need a BLE device: shaped like ``CanonicalReading``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_NAMESPACE = uuid.UUID("5b1f0c1e-64a4-4c55-9a43-3f5de9a0c0de")


@dataclass(frozen=True)
class FakeReading:
    device_id: str
    number: int

    @property
    def id(self) -> uuid.UUID:
        return uuid.uuid5(_NAMESPACE, f"{self.device_id}/{self.number}")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "device": {
                "id": self.device_id,
                "type": "glucose_meter",
                "manufacturer": "Test",
                "model": "T1",
            },
            "type": "glucose",
            "measured_at": "2026-11-20T08:00:00",
            "received_at": datetime.now(UTC).isoformat(),
            "sequence": self.number,
            "user_index": None,
            "values": [{"code": "glucose", "value": 100.0 + self.number % 50, "unit": "mg/dL"}],
            "flags": [],
            "raw": {"characteristic": "2a18", "hex": "00"},
        }


def fake_readings(device_id: str, count: int, start: int = 1) -> list[FakeReading]:
    return [FakeReading(device_id, n) for n in range(start, start + count)]
