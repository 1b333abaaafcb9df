"""Glucose Measurement Context (0x2A34): parsed, matched to its measurement by sequence number,
merged into the canonical reading, accepted by the contract schema and by ingest, stored.

Vectors are built by hand from the Glucose Service 1.0 layout (GATT Specification Supplement,
Glucose Measurement Context): flags, sequence number, [extended flags], [carbohydrate id,
carbohydrate (SFLOAT, kg)], [meal], [tester (low nibble) / health (high nibble)], [exercise
duration (uint16, s), intensity (uint8, %)], [medication id, medication (SFLOAT, kg or L by
flag bit 5)], [HbA1c (SFLOAT, %)].
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from jsonschema import Draft202012Validator

from carebeacon.settings import Settings
from devices.canonical import FLAGS, UNITS, DeviceIdentity, canonical_reading, with_glucose_context
from devices.date_time import DateTime
from devices.errors import ParseError
from devices.glucose import (
    CarbohydrateId,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseTester,
    GlucoseType,
    Health,
    Meal,
    MedicationId,
    MedicationUnit,
    SampleLocation,
)
from gateway.outbox import PendingReading
from gateway.publisher import batch_payload
from ingest.payload import decode_readings
from lab.emulation import EmulatedAir, GlucoseMeter, GlucoseRecord, PeripheralIdentity
from lab.homes import Device, HomeSpec, gateway_running, provision_home
from tests.support.broker import Login, wait_login, watching
from tests.support.gateway import make_config
from tests.support.homes import PROGRAM, SITE
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
ZONE = ZoneInfo("Europe/Berlin")
METER = DeviceIdentity("GM-CTX", "glucose_meter")
RECEIVED = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)

# flags 0x5F: carbohydrate, meal, tester/health, exercise, medication (kg), HbA1c; sequence 7;
# breakfast, 0.050 kg (SFLOAT exponent -3, mantissa 50 = 0xD032); fasting (3); tester self (1),
# health "no health issues" (5) = 0x51; exercise 1800 s (0x0708), 60 %; rapid-acting insulin
# (1), 0.000004 kg (exponent -6, mantissa 4 = 0xA004); HbA1c 6.5 % (exponent -1, 65 = 0xF041)
FULL_CONTEXT = bytes.fromhex("5f07000132d0035108073c0104a041f0")
# flags 0x32: meal, medication in litres; sequence 7; postprandial (2); long-acting insulin
# (4), 0.00001 L = 0.01 mL (exponent -5... here mantissa 10, exponent -6 = 0xA00A)
LITRES_CONTEXT = bytes.fromhex("32070002040aa0")


def _measurement(sequence: int = 7, *, context_follows: bool = True) -> bytes:
    return bytes(
        GlucoseMeasurement(
            sequence,
            DateTime(2026, 11, 23, 7, 45, 0),
            concentration=Decimal("0.00092"),  # kg/L = 92 mg/dL
            type=GlucoseType.CAPILLARY_PLASMA,
            sample_location=SampleLocation.FINGER,
            context_follows=context_follows,
        )
    )


def _reading(sequence: int = 7) -> Any:
    return canonical_reading("2a18", _measurement(sequence), METER, RECEIVED)


def _values(reading: Any) -> dict[str, tuple[float, str]]:
    return {v["code"]: (v["value"], v["unit"]) for v in reading.to_json()["values"]}


def test_the_context_parser_reads_every_field() -> None:
    assert GlucoseMeasurementContext.from_bytes(FULL_CONTEXT) == GlucoseMeasurementContext(
        sequence_number=7,
        carbohydrate_id=CarbohydrateId.BREAKFAST,
        carbohydrate=Decimal("0.050"),
        meal=Meal.FASTING,
        tester=GlucoseTester.SELF,
        health=Health.NO_HEALTH_ISSUES,
        exercise_duration=1800,
        exercise_intensity=60,
        medication_id=MedicationId.RAPID_ACTING_INSULIN,
        medication=Decimal("0.000004"),
        medication_unit=MedicationUnit.KILOGRAMS,
        hba1c=Decimal("6.5"),
    )
    assert bytes(GlucoseMeasurementContext.from_bytes(FULL_CONTEXT)) == FULL_CONTEXT
    for size in range(len(FULL_CONTEXT)):
        with pytest.raises(ParseError):
            GlucoseMeasurementContext.from_bytes(FULL_CONTEXT[:size])


def test_the_context_is_merged_into_its_reading() -> None:
    plain = _reading()
    merged = with_glucose_context(plain, FULL_CONTEXT)
    assert merged.id == plain.id  # the measurement's id: a re-read is still a duplicate
    assert set(merged.flags) - set(plain.flags) == {
        "carbohydrate:breakfast",
        "meal:fasting",
        "tester:self",
        "health:no_health_issues",
        "medication:rapid_acting_insulin",
    }
    assert _values(merged) == {
        "glucose": (92.0, "mg/dL"),
        "carbohydrate": (50.0, "g"),
        "exercise_duration": (1800.0, "s"),
        "exercise_intensity": (60.0, "%"),
        "medication": (4.0, "mg"),
        "hba1c": (6.5, "%"),
    }
    assert merged.raw["context_hex"] == FULL_CONTEXT.hex()
    assert set(merged.flags) <= set(FLAGS)
    assert {v.code for v in merged.values} <= set(UNITS)
    litres = with_glucose_context(plain, LITRES_CONTEXT)
    assert _values(litres)["medication_volume"] == (0.01, "mL")
    assert {"meal:postprandial", "medication:long_acting_insulin"} <= set(litres.flags)


def test_reserved_and_not_available_values() -> None:
    # meal 9 (reserved); tester "not available" (0xF), health minor issues (1) = 0x1F;
    # exercise duration 65535 = overrun, intensity 30 %
    context = bytes.fromhex("0e0700091fffff1e")
    merged = with_glucose_context(_reading(), context)
    assert {"meal:reserved", "health:minor_health_issues", "exercise_duration_overrun"} <= set(
        merged.flags
    )
    assert not [f for f in merged.flags if f.startswith("tester:")]
    assert "exercise_duration" not in _values(merged)


def test_a_context_for_another_record_is_refused() -> None:
    with pytest.raises(ValueError, match="numbers"):
        with_glucose_context(_reading(8), FULL_CONTEXT)


def _batch(reading: Any) -> dict[str, Any]:
    pending = PendingReading(1, str(reading.id), json.dumps(reading.to_json()))
    return json.loads(batch_payload("gw-ctx", "Europe/Berlin", [pending], RECEIVED))  # type: ignore[no-any-return]


def test_the_contract_schema_and_ingest_accept_the_merged_reading() -> None:
    body = _batch(with_glucose_context(_reading(), FULL_CONTEXT))
    schema = json.loads(
        (ROOT / "contracts" / "carebeacon.readings-1.schema.json").read_text(encoding="utf-8")
    )
    assert list(Draft202012Validator(schema).iter_errors(body)) == []
    decoded = decode_readings("gw-ctx", json.dumps(body).encode())
    assert decoded.rejected == ()


@pytest.mark.db
@pytest.mark.broker
@pytest.mark.ble
@pytest.mark.usefixtures("ingest_running")
async def test_context_over_the_air_is_merged_and_stored(
    tmp_path: Path,
    settings: Settings,
    database: str,
    air: EmulatedAir,
    retained_topics: set[str],
) -> None:
    """Emulated meter (its stored records carry a context) → bleak → gateway (0x2A34 subscribed,
    matched by sequence) → Mosquitto → ingest → TimescaleDB."""
    tag = uuid.uuid4().hex[:8]
    meter_id = f"meter-{tag}"
    with psycopg.connect(database) as conn:
        provisioned = provision_home(
            conn,
            HomeSpec(
                site=SITE,
                program=PROGRAM,
                enrolled_at=datetime.now(UTC) - timedelta(days=30),
                patient_id=uuid.uuid4(),
                display_name=f"Test Patient {tag}",
                consent=True,
                gateway_id=f"gw-{tag}",
                devices=(Device(meter_id, "glucose_meter"),),
            ),
            broker_login=True,
        )
    retained_topics.add(f"gw-{tag}")
    assert provisioned.gateway_password is not None
    login = Login(f"gw-{tag}", provisioned.gateway_password)
    await wait_login(settings, login)
    taken = datetime.now(ZONE).replace(tzinfo=None, microsecond=0) - timedelta(hours=2)
    fasting = GlucoseMeasurementContext(
        sequence_number=1,
        meal=Meal.FASTING,
        tester=GlucoseTester.SELF,
        health=Health.NO_HEALTH_ISSUES,
    )
    hba1c = GlucoseMeasurementContext(
        sequence_number=2, meal=Meal.POSTPRANDIAL, hba1c=Decimal("7.1")
    )

    def record(sequence: int, context: GlucoseMeasurementContext | None) -> GlucoseRecord:
        measurement = GlucoseMeasurement(
            sequence,
            DateTime.from_datetime(taken + timedelta(minutes=sequence)),
            concentration=Decimal("0.00100") + Decimal(sequence) / 100000,
            type=GlucoseType.CAPILLARY_PLASMA,
            sample_location=SampleLocation.FINGER,
            context_follows=context is not None,
        )
        return GlucoseRecord(
            sequence,
            bytes(measurement),
            bytes(context) if context is not None else None,
            taken + timedelta(minutes=sequence),
        )

    await air.add(
        GlucoseMeter(
            PeripheralIdentity(serial=meter_id),
            records=[record(1, fasting), record(2, hba1c), record(3, None)],
        )
    )
    config = make_config(
        tmp_path, login, settings, devices=[{"id": meter_id, "type": "glucose_meter"}]
    )

    def stored() -> list[tuple[str, float, list[str]]]:
        with psycopg.connect(database) as conn:
            return [
                (str(r[0]), float(r[1]), list(r[2]))
                for r in conn.execute(
                    "SELECT code, value, flags FROM readings WHERE gateway_id = %s ORDER BY time, code",
                    (login.gateway_id,),
                )
            ]

    async with gateway_running(config, air):
        await eventually(lambda: len(stored()) >= 4, within=30)
    rows = stored()
    assert [(code, value) for code, value, _ in rows] == [
        ("glucose", 101.0),
        ("glucose", 102.0),
        ("hba1c", 7.1),
        ("glucose", 103.0),
    ]
    assert {"meal:fasting", "tester:self", "health:no_health_issues"} <= set(rows[0][2])
    assert "meal:postprandial" in rows[1][2]
    assert not [f for f in rows[3][2] if ":" in f]


@pytest.mark.broker
@pytest.mark.ble
async def test_a_missing_or_unreadable_context_loses_no_reading(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    """Record 1 announces a context that never comes, record 2's context is cut short, record
    3's context belongs to no waiting record, record 4's is good: four readings, one merged."""
    taken = datetime.now(ZONE).replace(tzinfo=None, microsecond=0) - timedelta(hours=3)

    def record(sequence: int, context: bytes | None, follows: bool = True) -> GlucoseRecord:
        measurement = GlucoseMeasurement(
            sequence,
            DateTime.from_datetime(taken + timedelta(minutes=sequence)),
            concentration=Decimal("0.00110"),
            type=GlucoseType.CAPILLARY_PLASMA,
            sample_location=SampleLocation.FINGER,
            context_follows=follows,
        )
        return GlucoseRecord(sequence, bytes(measurement), context, None)

    good = bytes(GlucoseMeasurementContext(sequence_number=4, meal=Meal.BEDTIME))
    await air.add(
        GlucoseMeter(
            PeripheralIdentity(serial="GM-ODD"),
            records=[
                record(1, None),
                record(2, bytes.fromhex("06020003")),  # meal + tester flags, tester missing
                record(
                    3,
                    bytes(GlucoseMeasurementContext(sequence_number=99, meal=Meal.CASUAL)),
                    follows=False,
                ),
                record(4, good),
            ],
        )
    )
    config = make_config(
        tmp_path, login, settings, devices=[{"id": "GM-ODD", "type": "glucose_meter"}]
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 4)
    by_sequence = {r["sequence"]: r for r in watcher.readings}
    assert sorted(by_sequence) == [1, 2, 3, 4]
    assert all([v["code"] for v in r["values"]] == ["glucose"] for r in by_sequence.values())
    assert [s for s, r in by_sequence.items() if any(":" in f for f in r["flags"])] == [4]
    assert "meal:bedtime" in by_sequence[4]["flags"]
    assert by_sequence[4]["raw"]["context_hex"] == good.hex()
