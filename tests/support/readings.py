"""Readings and messages for tests that do not need a BLE device: readings shaped like
``CanonicalReading`` (:func:`bp_reading`, :func:`fake_readings`), a gateway's batch of them and
its topics, as the gateway publishes them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["FakeReading", "batch", "bp_reading", "fake_readings", "topic"]

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


def bp_reading(
    device_id: str,
    *,
    systolic: float = 138.0,
    diastolic: float = 88.0,
    measured_at: datetime | None = None,
    flags: list[str] | None = None,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    measured = measured_at if measured_at is not None else now.replace(tzinfo=None, microsecond=0)
    return {
        "id": str(uuid.uuid4()),
        "device": {
            "id": device_id,
            "type": "blood_pressure_monitor",
            "manufacturer": "Acme",
            "model": "C1",
        },
        "type": "blood_pressure",
        "measured_at": measured.isoformat(),
        "received_at": now.isoformat(),
        "sequence": None,
        "user_index": 1,
        "values": [
            {"code": "systolic", "value": systolic, "unit": "mm[Hg]"},
            {"code": "diastolic", "value": diastolic, "unit": "mm[Hg]"},
            {"code": "pulse", "value": 61.0, "unit": "/min"},
        ],
        "flags": flags or [],
        "raw": {"characteristic": "2a35", "hex": "00"},
    }


def batch(gateway_id: str, readings: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "schema": "carebeacon.readings/1",
            "gateway_id": gateway_id,
            "sent_at": datetime.now(UTC).isoformat(),
            "timezone": "UTC",
            "readings": readings,
        }
    ).encode()


def topic(gateway_id: str, kind: str = "readings") -> str:
    return f"carebeacon/v1/gateways/{gateway_id}/{kind}"
