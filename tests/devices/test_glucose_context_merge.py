"""Every Glucose Measurement Context (0x2A34) the profile can encode merges into a glucose
reading that stays inside the contract: flags from the closed vocabulary, known codes in their
units, and nothing that would get the glucose value quarantined by ingest."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given

from devices.canonical import (
    CONTEXT_RANGES,
    FLAGS,
    UNITS,
    DeviceIdentity,
    canonical_reading,
    with_glucose_context,
)
from devices.date_time import DateTime
from devices.glucose import (
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseType,
    SampleLocation,
)
from ingest.payload import POSSIBLE, decode_readings
from tests.devices.test_round_trip import SETTINGS, glucose_contexts

RECEIVED = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
MEASUREMENT = bytes(
    GlucoseMeasurement(
        42,
        DateTime(2026, 11, 23, 7, 45, 0),
        concentration=Decimal("0.00092"),
        type=GlucoseType.CAPILLARY_PLASMA,
        sample_location=SampleLocation.FINGER,
        context_follows=True,
    )
)
READING = canonical_reading("2a18", MEASUREMENT, DeviceIdentity("GM-1", "glucose_meter"), RECEIVED)


def test_ingest_bounds_are_the_context_ranges() -> None:
    for code, (low, high) in CONTEXT_RANGES.items():
        assert POSSIBLE[code] == (float(low), float(high)), code


@SETTINGS
@given(glucose_contexts())
def test_any_context_merges_inside_the_contract(context: GlucoseMeasurementContext) -> None:
    context = dataclasses.replace(context, sequence_number=42)
    merged = with_glucose_context(READING, bytes(context))
    assert merged.id == READING.id
    assert set(merged.flags) <= set(FLAGS)
    codes = [v.code for v in merged.values]
    assert len(codes) == len(set(codes))
    assert all(UNITS[v.code] == v.unit for v in merged.values)
    assert [v for v in merged.values if v.code == "glucose"] == [
        v for v in READING.values if v.code == "glucose"
    ]
    body = {
        "schema": "carebeacon.readings/1",
        "gateway_id": "gw-1",
        "sent_at": "2026-11-23T07:00:01Z",
        "timezone": "Europe/Berlin",
        "readings": [merged.to_json()],
    }
    decoded = decode_readings("gw-1", json.dumps(body, default=str).encode())
    assert decoded.rejected == ()
