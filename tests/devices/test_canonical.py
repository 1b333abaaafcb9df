"""Canonical readings: codes, units and conversions, special values, clocks, ids, flags."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest

from devices import (
    FLAG_DESCRIPTIONS,
    FLAGS,
    CanonicalReading,
    ConcentrationUnit,
    DateTime,
    DeviceIdentity,
    GlucoseMeasurement,
    GlucoseType,
    ParseError,
    SampleLocation,
    SensorStatus,
    SpecialValue,
    UnsupportedCharacteristic,
    Value,
    WeightScaleMeasurement,
    canonical_reading,
)
from devices.date_time import naive_datetime
from ingest.payload import decode_readings

D = Decimal
RECEIVED = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
CUFF = DeviceIdentity("cuff-1", "blood_pressure_monitor", "Omron", "HEM-9200T")
METER = DeviceIdentity("meter-1", "glucose_meter")
SCALE = DeviceIdentity("scale-1", "weight_scale")
BODY = DeviceIdentity("scale-2", "body_composition_scale")

SEEN_FLAGS: set[str] = set()
NINETY_FIVE_MG_DL = D("95E-5")  # kg/L
THIS_MORNING = DateTime(2026, 11, 23, 7, 0, 0)


def read(
    characteristic: str, data: bytes | str, device: DeviceIdentity, at: datetime = RECEIVED
) -> CanonicalReading:
    payload = bytes.fromhex(data) if isinstance(data, str) else data
    reading = canonical_reading(characteristic, payload, device, at)
    SEEN_FLAGS.update(reading.flags)
    assert reading.flags == tuple(sorted(set(reading.flags)))
    assert set(reading.flags) <= set(FLAGS)
    return reading


def values(reading: CanonicalReading) -> dict[str, tuple[Decimal, str]]:
    return {v.code: (v.value, v.unit) for v in reading.values}


def glucose(
    concentration: Decimal | SpecialValue | None = NINETY_FIVE_MG_DL,
    *,
    sequence: int = 7,
    base: DateTime = THIS_MORNING,
    offset: int | None = None,
    unit: ConcentrationUnit = ConcentrationUnit.KG_PER_L,
    kind: GlucoseType = GlucoseType.CAPILLARY_PLASMA,
    location: SampleLocation = SampleLocation.FINGER,
    status: SensorStatus | None = None,
) -> bytes:
    present = concentration is not None
    return bytes(
        GlucoseMeasurement(
            sequence,
            base,
            offset,
            concentration,
            unit,
            kind if present else None,
            location if present else None,
            status,
        )
    )


# --- blood pressure --------------------------------------------------------------------


def test_blood_pressure_mmhg_nordic_full() -> None:
    # Nordic BPM _full: year 0 in the timestamp, user 1, every status bit but the range
    r = read("2a35", "1e8a00580078000000041114293b3c00012700", CUFF)
    assert r.type == "blood_pressure"
    assert r.values == (
        Value("systolic", D(138), "mm[Hg]"),
        Value("diastolic", D(88), "mm[Hg]"),
        Value("mean_arterial", D(120), "mm[Hg]"),
        Value("pulse", D(60), "/min"),
    )
    assert r.flags == (
        "body_movement",
        "cuff_loose",
        "device_clock_reset",
        "device_clock_unset",
        "improper_position",
        "irregular_pulse",
    )
    assert r.measured_at is None
    assert r.user_index == 1
    assert r.sequence is None
    assert r.raw == {
        "characteristic": "2a35",
        "hex": "1e8a00580078000000041114293b3c00012700",
        "unit": "mmHg",
    }


def test_blood_pressure_kpa_is_converted_once_and_unit_kept() -> None:
    # Nordic BPM _some: 18.9 / 11 / 15.9 kPa, pulse 60, cuff loose, pulse below range
    r = read("2a35", "15bdf00b009ff03c001200", CUFF)
    assert values(r) == {
        "systolic": (D("141.8"), "mm[Hg]"),  # 18.9 x 7.50062 = 141.761718
        "diastolic": (D("82.5"), "mm[Hg]"),  # 82.50682
        "mean_arterial": (D("119.3"), "mm[Hg]"),  # 119.259858
        "pulse": (D(60), "/min"),
    }
    assert r.raw["unit"] == "kPa"
    assert r.flags == ("cuff_loose", "device_clock_unset", "pulse_rate_below_lower_limit")


def test_special_values_are_flags_never_numbers() -> None:
    r = read("2a35", "04ff070008fe070208", CUFF)  # NaN, NRes, +INF, -INF pulse
    assert r.values == ()
    assert r.flags == (
        "device_clock_unset",
        "diastolic_nres",
        "mean_arterial_positive_infinity",
        "pulse_negative_infinity",
        "systolic_nan",
    )
    assert read("2a35", "0c8a00580078000108600000", CUFF).flags == (
        "device_clock_unset",
        "pulse_reserved",
    )


def test_pulse_rate_range_upper_and_unknown_status_bits() -> None:
    # status 0x0048: range 1 (exceeds upper), bit 6 reserved
    r = read("2a35", "108a005800780048 00".replace(" ", ""), CUFF)
    assert r.flags == (
        "device_clock_unset",
        "pulse_rate_exceeds_upper_limit",
        "unknown_status_bits",
    )


def test_multi_user_cuff_ids_and_unknown_user() -> None:
    stamp = "ea070b170715 00".replace(" ", "")  # 2026-11-23 07:21:00
    one = read("2a35", "0a8a00580078" + "00" + stamp + "01", CUFF)
    two = read("2a35", "0a8a00580078" + "00" + stamp + "02", CUFF)
    unknown = read("2a35", "0a8a00580078" + "00" + stamp + "ff", CUFF)
    assert (one.user_index, two.user_index, unknown.user_index) == (1, 2, None)
    assert len({one.id, two.id, unknown.id}) == 3
    assert one.measured_at == naive_datetime(2026, 11, 23, 7, 21)
    assert one.flags == ()


# --- glucose ---------------------------------------------------------------------------


def test_glucose_kg_per_l() -> None:
    r = read("2a18", glucose(D("95E-5")), METER)
    assert r.values == (Value("glucose", D("95.0"), "mg/dL"),)
    assert r.type == "glucose"
    assert r.sequence == 7
    assert r.raw["unit"] == "kg/L"
    assert r.flags == ()
    assert r.measured_at == naive_datetime(2026, 11, 23, 7, 0)


def test_glucose_mmol_per_l() -> None:
    r = read("2a18", glucose(D("55E-4"), unit=ConcentrationUnit.MOL_PER_L), METER)
    assert r.values == (Value("glucose", D("99.1"), "mg/dL"),)  # 5.5 x 18.016 = 99.088
    assert r.raw["unit"] == "mol/L"


def test_glucose_time_offset_crosses_midnight_and_year_end() -> None:
    forward = read("2a18", glucose(base=DateTime(2025, 12, 31, 23, 50, 0), offset=15), METER)
    assert forward.measured_at == naive_datetime(2026, 1, 1, 0, 5)
    back = read("2a18", glucose(base=DateTime(2026, 3, 1, 0, 10, 0), offset=-20), METER)
    assert back.measured_at == naive_datetime(2026, 2, 28, 23, 50)
    far = read("2a18", glucose(base=DateTime(2026, 1, 1, 0, 0, 0), offset=-32768), METER)
    assert far.measured_at == naive_datetime(2026, 1, 1) - timedelta(minutes=32768)


def test_glucose_hi_lo_are_flags_not_numbers() -> None:
    high = read("2a18", glucose(D("600E-5"), status=SensorStatus.RESULT_TOO_HIGH), METER)
    assert high.values == ()
    assert high.flags == ("result_too_high",)
    low = read("2a18", glucose(D("20E-5"), status=SensorStatus.RESULT_TOO_LOW), METER)
    assert low.values == ()
    assert low.flags == ("result_too_low",)


def test_glucose_status_annunciations() -> None:
    status = SensorStatus(0xFFFF & ~0x60)  # every bit but HI/LO, reserved 12-15 included
    r = read("2a18", glucose(status=status), METER)
    assert r.flags == (
        "device_battery_low",
        "device_fault",
        "device_time_fault",
        "sample_insufficient",
        "sensor_malfunction",
        "sensor_read_interrupted",
        "sensor_temperature_too_high",
        "sensor_temperature_too_low",
        "strip_insertion_error",
        "strip_type_incorrect",
        "unknown_status_bits",
    )
    assert len(r.values) == 1


def test_control_solution_is_marked() -> None:
    by_type = read("2a18", glucose(kind=GlucoseType.CONTROL_SOLUTION), METER)
    assert by_type.flags == ("control_solution",)
    by_location = read("2a18", glucose(location=SampleLocation.CONTROL_SOLUTION), METER)
    assert by_location.flags == ("control_solution",)


def test_glucose_special_and_absent_concentration() -> None:
    nan = read("2a18", glucose(SpecialValue.NAN), METER)
    assert (nan.values, nan.flags) == ((), ("glucose_nan",))
    nres = read("2a18", glucose(SpecialValue.NRES), METER)
    assert nres.flags == ("glucose_nres",)
    absent = read("2a18", glucose(None), METER)
    assert (absent.values, absent.flags) == ((), ())
    assert "unit" not in absent.raw


def test_glucose_re_read_keeps_its_id_and_new_records_do_not() -> None:
    first = read("2a18", glucose(sequence=12), METER)
    again = read("2a18", glucose(sequence=12), METER, RECEIVED + timedelta(days=3))
    assert first.id == again.id
    assert read("2a18", glucose(sequence=13), METER).id != first.id
    # a meter whose counter restarted: same sequence number, another time
    restarted = read("2a18", glucose(sequence=12, base=DateTime(2026, 11, 24, 7, 0, 0)), METER)
    assert restarted.id != first.id
    other_meter = DeviceIdentity("meter-2", "glucose_meter")
    assert read("2a18", glucose(sequence=12), other_meter).id != first.id


# --- clocks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "measured_at", "flags"),
    [
        (DateTime(2026, 11, 23, 7, 0, 0), naive_datetime(2026, 11, 23, 7), ()),
        (DateTime(2000, 1, 1, 0, 3, 0), naive_datetime(2000, 1, 1, 0, 3), ("device_clock_reset",)),
        (
            DateTime(1970, 1, 1, 0, 0, 5),
            naive_datetime(1970, 1, 1, 0, 0, 5),
            ("device_clock_reset",),
        ),
        (
            DateTime(2009, 12, 31, 23, 0, 0),
            naive_datetime(2009, 12, 31, 23),
            ("device_clock_reset",),
        ),
        (DateTime(0, 11, 23, 7, 0, 0), None, ("device_clock_reset", "device_clock_unset")),
        (DateTime(2026, 0, 23, 7, 0, 0), None, ("device_clock_reset", "device_clock_unset")),
        (DateTime(2026, 2, 30, 7, 0, 0), None, ("device_clock_reset", "device_clock_unset")),
        (DateTime(2026, 11, 23, 24, 0, 0), None, ("device_clock_reset", "device_clock_unset")),
        (None, None, ("device_clock_unset",)),
    ],
)
def test_device_clock(
    stamp: DateTime | None, measured_at: datetime | None, flags: tuple[str, ...]
) -> None:
    r = read("2a9d", bytes(WeightScaleMeasurement(D("80"), timestamp=stamp)), SCALE)
    assert r.measured_at == measured_at
    assert r.flags == flags
    assert r.received_at == RECEIVED


def test_received_at_must_be_aware_and_becomes_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_reading("2a9d", bytes.fromhex("00e443"), SCALE, datetime(2026, 1, 1))  # noqa: DTZ001
    cet = timezone(timedelta(hours=1))
    r = read("2a9d", "00e443", SCALE, datetime(2026, 1, 1, 9, 0, tzinfo=cet))
    assert r.received_at == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    assert r.received_at.tzinfo == UTC


def test_id_without_device_time_depends_on_receive_time() -> None:
    a = read("2a9d", "00e443", SCALE)
    b = read("2a9d", "00e443", SCALE, RECEIVED + timedelta(seconds=1))
    assert a.id != b.id
    assert read("2a9d", "00e443", SCALE).id == a.id  # same delivery, same id
    assert a.id.version == 5


def test_id_with_device_time_ignores_receive_time_and_reset_clocks_still_tick() -> None:
    data = bytes(WeightScaleMeasurement(D("80"), timestamp=DateTime(2000, 1, 1, 0, 3, 0)))
    a = read("2a9d", data, SCALE)
    b = read("2a9d", data, SCALE, RECEIVED + timedelta(hours=5))
    assert a.id == b.id
    heavier = bytes(WeightScaleMeasurement(D("81"), timestamp=DateTime(2000, 1, 1, 0, 3, 0)))
    assert read("2a9d", heavier, SCALE).id != a.id


# --- weight and body composition -------------------------------------------------------


def test_weight_imperial() -> None:
    r = read("2a9d", "09564af500bc02", SCALE)  # 190.30 lb, BMI 24.5, 70.0 in
    assert values(r) == {
        "body_weight": (D("86.319"), "kg"),  # 190.30 x 0.45359237 = 86.318628...
        "bmi": (D("24.5"), "kg/m2"),
        "height": (D("1.7780"), "m"),  # 70.0 x 0.0254
    }
    assert r.raw["unit"] == "lb"
    assert r.type == "body_weight"


def test_weight_si_exact_and_unsuccessful() -> None:
    r = read("2a9d", "0ee443e8070c1f173b0002f500e406", SCALE)
    assert values(r) == {
        "body_weight": (D("86.9"), "kg"),
        "bmi": (D("24.5"), "kg/m2"),
        "height": (D("1.764"), "m"),
    }
    assert (r.user_index, r.raw["unit"]) == (2, "kg")
    failed = read("2a9d", "00ffff", SCALE)
    assert (failed.values, failed.flags) == ((), ("device_clock_unset", "measurement_unsuccessful"))


def test_body_composition_all_fields_and_multi_packet() -> None:
    data = "fe1ffa00e8070c1f173b00014c1d6e01ec1dd836903382281c11e443e406"
    r = read("2a9c", data, BODY)
    assert r.type == "body_composition"
    assert values(r) == {
        "body_fat": (D("25.0"), "%"),
        "basal_metabolism": (D(7500), "kJ"),
        "muscle_percentage": (D("36.6"), "%"),
        "muscle_mass": (D("38.3"), "kg"),
        "fat_free_mass": (D("70.2"), "kg"),
        "soft_lean_mass": (D("66.0"), "kg"),
        "body_water_mass": (D("51.85"), "kg"),
        "impedance": (D("438.0"), "Ohm"),
        "body_weight": (D("86.9"), "kg"),
        "height": (D("1.764"), "m"),
    }
    assert r.flags == ("multi_packet",)
    assert r.user_index == 1


def test_body_composition_imperial() -> None:
    # imperial, weight (bit 10) and height (bit 11): 20.0 %, 190.30 lb, 70.0 in
    r = read("2a9c", "010cc800564abc02", BODY)
    assert values(r) == {
        "body_fat": (D("20.0"), "%"),
        "body_weight": (D("86.319"), "kg"),
        "height": (D("1.7780"), "m"),
    }
    assert r.raw["unit"] == "lb"


def test_mi_scale_readings() -> None:
    # xiaomi-ble test_Xiaomi_Scale1 / _mass_removed / _non_stabilized
    stable = read("181d", "229e43e507040b101301", SCALE)
    assert values(stable) == {"body_weight": (D("86.55"), "kg")}
    assert stable.flags == ()
    assert stable.measured_at == naive_datetime(2021, 4, 11, 16, 19, 1)
    removed = read("181d", "a22044b20701010a1a15", SCALE)
    assert removed.flags == ("device_clock_reset", "weight_removed")
    moving = read("181d", "821400e507040b101708", SCALE)
    assert moving.flags == ("not_stabilized", "weight_removed")
    jin = read("181d", "3298dae507040b101301", SCALE)  # jin bit: 559.60 jin = 279.8 kg
    assert values(jin) == {"body_weight": (D("279.8"), "kg")}
    assert jin.raw["unit"] == "jin"


def test_mi_body_composition_scale_readings() -> None:
    # xiaomi-ble test_Xiaomi_Scale2: 85.15 kg, impedance 428 (stabilised)
    r = read("181b", "0226b20705040f0201ac018642", BODY)
    assert r.type == "body_composition"
    assert values(r) == {"body_weight": (D("85.15"), "kg"), "impedance": (D(428), "Ohm")}
    assert r.flags == ("device_clock_reset",)
    # the same weighing before the impedance settled shares the id
    early = read("181b", "0224b20705040f0201fdff8642", BODY)
    assert values(early) == {"body_weight": (D("85.15"), "kg")}
    assert early.id == r.id
    moving = read("181b", "0204b207010112101a0000a852", BODY)
    assert moving.flags == ("device_clock_reset", "not_stabilized")


# --- API and contract ------------------------------------------------------------------


def test_unknown_or_non_measurement_characteristic() -> None:
    for characteristic in ("2a36", "2a99", "not-a-uuid"):
        with pytest.raises(UnsupportedCharacteristic):
            canonical_reading(characteristic, b"\x00" * 20, CUFF, RECEIVED)
    assert issubclass(UnsupportedCharacteristic, ParseError)


def test_characteristic_spellings() -> None:
    data = "00bdf00b009ff0"
    ids = {
        read(spelling, data, CUFF).raw["characteristic"]
        for spelling in ("2a35", "2A35", "0x2A35", "00002a35-0000-1000-8000-00805f9b34fb")
    }
    assert ids == {"2a35"}


def test_device_identity_is_checked() -> None:
    with pytest.raises(ValueError, match="device type"):
        DeviceIdentity("x", "toaster")
    with pytest.raises(ValueError, match="non-empty"):
        DeviceIdentity("", "weight_scale")


def test_to_json_shape() -> None:
    r = read("2a35", "028a0058007800ea070b17071500", CUFF)
    assert r.to_json() == {
        "id": str(r.id),
        "device": {
            "id": "cuff-1",
            "type": "blood_pressure_monitor",
            "manufacturer": "Omron",
            "model": "HEM-9200T",
        },
        "type": "blood_pressure",
        "measured_at": "2026-11-23T07:21:00",
        "received_at": "2026-11-23T08:30:00+00:00",
        "sequence": None,
        "user_index": None,
        "values": [
            {"code": "systolic", "value": 138.0, "unit": "mm[Hg]"},
            {"code": "diastolic", "value": 88.0, "unit": "mm[Hg]"},
            {"code": "mean_arterial", "value": 120.0, "unit": "mm[Hg]"},
        ],
        "flags": [],
        "raw": {
            "characteristic": "2a35",
            "hex": "028a0058007800ea070b17071500",
            "unit": "mmHg",
        },
    }
    assert uuid.UUID(str(r.to_json()["id"])) == r.id


def test_ingest_accepts_our_readings() -> None:
    readings = [
        read("2a35", "15bdf00b009ff03c001200", CUFF),
        read("2a18", glucose(D("55E-4"), unit=ConcentrationUnit.MOL_PER_L), METER),
        read("2a9d", "09564af500bc02", SCALE),
        read("2a9c", "fe1ffa00ea070b17071500014c1d6e01ec1dd836903382281c11e443e406", BODY),
        read("181b", "0226b20705040f0201ac018642", BODY),  # 1970: reset flag, receive time
    ]
    batch = {
        "schema": "carebeacon.readings/1",
        "gateway_id": "gw-1",
        "sent_at": RECEIVED.isoformat(),
        "readings": [r.to_json() for r in readings],
    }
    decoded = decode_readings("gw-1", json.dumps(batch).encode())
    assert decoded.rejected == ()
    assert [str(r.id) for r in decoded.readings] == [str(r.id) for r in readings]


def test_flags_vocabulary_is_closed_sorted_and_used() -> None:
    assert list(FLAGS) == sorted(set(FLAGS))
    assert all(flag == flag.lower() and " " not in flag for flag in FLAGS)
    for code in ("systolic", "diastolic", "mean_arterial", "pulse", "glucose"):
        for kind in ("nan", "nres", "positive_infinity", "negative_infinity", "reserved"):
            assert f"{code}_{kind}" in FLAGS


def test_flag_descriptions_cover_the_vocabulary() -> None:
    assert set(FLAG_DESCRIPTIONS) == set(FLAGS)
    assert all(FLAG_DESCRIPTIONS.values())


def test_results_do_not_depend_on_the_callers_decimal_context() -> None:
    expected = read("2a35", "15bdf00b009ff03c001200", CUFF).values
    pounds = read("2a9d", "09564af500bc02", SCALE).values
    with localcontext() as ctx:
        ctx.prec = 3
        assert read("2a35", "15bdf00b009ff03c001200", CUFF).values == expected
        assert read("2a9d", "09564af500bc02", SCALE).values == pounds


def test_readings_are_hashable_values() -> None:
    a = read("2a9d", "00e443", SCALE)
    assert a == read("2a9d", "00e443", SCALE)
    assert len({a, read("2a9d", "00e443", SCALE)}) == 1
