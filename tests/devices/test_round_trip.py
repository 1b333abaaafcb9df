"""Hypothesis: ``parse(encode(x)) == x`` for every characteristic, over every combination of
optional fields (each optional field is independently present or absent)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import SupportsBytes, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import (
    AdjustReason,
    BatteryLevel,
    BloodPressureFeature,
    BloodPressureFeatureBits,
    BloodPressureMeasurement,
    BodyCompositionFeature,
    BodyCompositionFeatureBits,
    BodyCompositionMeasurement,
    CarbohydrateId,
    ConcentrationUnit,
    CurrentTime,
    DateTime,
    DayOfWeek,
    DeviceInformationString,
    EncodeError,
    FilterType,
    GlucoseFeature,
    GlucoseFeatureBits,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseTester,
    GlucoseType,
    Health,
    HeightResolution,
    IntermediateCuffPressure,
    MassUnit,
    Meal,
    MeasurementStatus,
    MeasurementStatusBits,
    MedicationId,
    MedicationUnit,
    MiBodyCompositionScaleControl,
    MiBodyCompositionScaleMeasurement,
    MiScaleControl,
    MiScaleMeasurement,
    Number,
    PressureUnit,
    PulseRateRange,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
    RecordAccessControlPoint,
    SampleLocation,
    SensorStatus,
    SpecialValue,
    SystemId,
    WeightResolution,
    WeightScaleFeature,
    WeightScaleFeatureBits,
    WeightScaleMeasurement,
    decode,
)

SETTINGS = settings(database=None, deadline=None, max_examples=400)
T = TypeVar("T")


def maybe(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.one_of(st.none(), strategy)


def u(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


sfloats: st.SearchStrategy[Number] = st.one_of(
    st.builds(lambda m, e: Decimal(m).scaleb(e), st.integers(-2045, 2045), st.integers(-8, 7)),
    st.sampled_from(list(SpecialValue)),
)
date_times = st.builds(DateTime, u(16), u(8), u(8), u(8), u(8), u(8))
extras = st.binary(max_size=3)


def steps(bits: int, step: str) -> st.SearchStrategy[Decimal]:
    return u(bits).map(lambda raw: raw * Decimal(step))


bp_status = st.builds(
    MeasurementStatus,
    u(16).map(lambda v: MeasurementStatusBits(v & ~0x18)),
    u(2).map(PulseRateRange),
)

bp_measurements = st.builds(
    BloodPressureMeasurement,
    sfloats,
    sfloats,
    sfloats,
    st.sampled_from(list(PressureUnit)),
    maybe(date_times),
    maybe(sfloats),
    maybe(u(8)),
    maybe(bp_status),
    st.sampled_from([0, 0x20, 0x40, 0x80, 0xE0]),
    extras,
)
icp = st.builds(
    IntermediateCuffPressure,
    sfloats,
    st.sampled_from(list(PressureUnit)),
    maybe(date_times),
    maybe(sfloats),
    maybe(u(8)),
    maybe(bp_status),
    sfloats,
    sfloats,
    st.just(0),
    extras,
)
bp_features = st.builds(BloodPressureFeature, u(16).map(BloodPressureFeatureBits), extras)


@st.composite
def glucose_measurements(draw: st.DrawFn) -> GlucoseMeasurement:
    present = draw(st.booleans())
    return GlucoseMeasurement(
        draw(u(16)),
        draw(date_times),
        draw(maybe(st.integers(-32768, 32767))),
        draw(sfloats) if present else None,
        draw(st.sampled_from(list(ConcentrationUnit))),
        GlucoseType(draw(u(4))) if present else None,
        SampleLocation(draw(u(4))) if present else None,
        draw(maybe(u(16).map(SensorStatus))),
        draw(st.booleans()),
        draw(st.sampled_from([0, 0x20, 0xE0])),
        draw(extras),
    )


@st.composite
def glucose_contexts(draw: st.DrawFn) -> GlucoseMeasurementContext:
    carb, tester, exercise, medication = (draw(st.booleans()) for _ in range(4))
    return GlucoseMeasurementContext(
        draw(u(16)),
        draw(maybe(u(8))),
        CarbohydrateId(draw(u(8))) if carb else None,
        draw(sfloats) if carb else None,
        draw(maybe(u(8).map(Meal))),
        GlucoseTester(draw(u(4))) if tester else None,
        Health(draw(u(4))) if tester else None,
        draw(u(16)) if exercise else None,
        draw(u(8)) if exercise else None,
        MedicationId(draw(u(8))) if medication else None,
        draw(sfloats) if medication else None,
        draw(st.sampled_from(list(MedicationUnit))),
        draw(maybe(sfloats)),
        draw(extras),
    )


glucose_features = st.builds(GlucoseFeature, u(16).map(GlucoseFeatureBits), extras)


@st.composite
def racps(draw: st.DrawFn) -> RecordAccessControlPoint:
    requests = [
        RacpOpCode.REPORT_STORED_RECORDS,
        RacpOpCode.DELETE_STORED_RECORDS,
        RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
    ]
    kind = draw(st.sampled_from(["plain", "filtered", "count", "response", "unknown"]))
    if kind == "plain":
        operator = draw(st.sampled_from([0, 1, 5, 6]))
        return RecordAccessControlPoint(
            draw(st.sampled_from([*requests, RacpOpCode.ABORT_OPERATION])), RacpOperator(operator)
        )
    if kind == "filtered":
        op = draw(st.sampled_from(requests))
        operator = draw(st.sampled_from([2, 3, 4]))
        filter_type = draw(st.sampled_from(list(FilterType)))
        bound: st.SearchStrategy[int | DateTime] = (
            u(16) if filter_type == FilterType.SEQUENCE_NUMBER else date_times
        )
        low = draw(bound) if operator in (3, 4) else None
        high = draw(bound) if operator in (2, 4) else None
        return RecordAccessControlPoint(op, RacpOperator(operator), filter_type, low, high)
    if kind == "count":
        return RecordAccessControlPoint(
            RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, number_of_records=draw(u(16))
        )
    if kind == "response":
        return RecordAccessControlPoint(
            RacpOpCode.RESPONSE_CODE,
            request_op_code=RacpOpCode(draw(u(8))),
            response_code=RacpResponseCode(draw(u(8))),
        )
    return RecordAccessControlPoint(
        RacpOpCode(draw(st.integers(7, 255))), RacpOperator(draw(u(8))), operand=draw(extras)
    )


@st.composite
def weight_measurements(draw: st.DrawFn) -> WeightScaleMeasurement:
    unit = draw(st.sampled_from(list(MassUnit)))
    mass, height = ("0.005", "0.001") if unit == MassUnit.SI else ("0.01", "0.1")
    bmi = draw(st.booleans())
    return WeightScaleMeasurement(
        draw(maybe(st.integers(0, 0xFFFE).map(lambda r: r * Decimal(mass)))),
        unit,
        draw(maybe(date_times)),
        draw(maybe(u(8))),
        draw(steps(16, "0.1")) if bmi else None,
        draw(steps(16, height)) if bmi else None,
        draw(st.sampled_from([0, 0x10, 0xF0])),
        draw(extras),
    )


weight_features = st.builds(
    WeightScaleFeature,
    u(32).map(lambda v: WeightScaleFeatureBits(v & ~0x3F8)),
    u(4).map(WeightResolution),
    u(3).map(HeightResolution),
    extras,
)


@st.composite
def body_compositions(draw: st.DrawFn) -> BodyCompositionMeasurement:
    unit = draw(st.sampled_from(list(MassUnit)))
    mass, height = ("0.005", "0.001") if unit == MassUnit.SI else ("0.01", "0.1")
    return BodyCompositionMeasurement(
        draw(maybe(st.integers(0, 0xFFFE).map(lambda r: r * Decimal("0.1")))),
        unit,
        draw(maybe(date_times)),
        draw(maybe(u(8))),
        basal_metabolism=draw(maybe(steps(16, "1"))),
        muscle_percentage=draw(maybe(steps(16, "0.1"))),
        muscle_mass=draw(maybe(steps(16, mass))),
        fat_free_mass=draw(maybe(steps(16, mass))),
        soft_lean_mass=draw(maybe(steps(16, mass))),
        body_water_mass=draw(maybe(steps(16, mass))),
        impedance=draw(maybe(steps(16, "0.1"))),
        weight=draw(maybe(steps(16, mass))),
        height=draw(maybe(steps(16, height))),
        multiple_packet=draw(st.booleans()),
        reserved_flags=draw(st.sampled_from([0, 0x2000, 0xE000])),
        extra=draw(extras),
    )


body_composition_features = st.builds(
    BodyCompositionFeature,
    u(32).map(lambda v: BodyCompositionFeatureBits(v & ~(0x7F << 11))),
    u(4).map(WeightResolution),
    u(3).map(HeightResolution),
    extras,
)


@st.composite
def mi_scales(draw: st.DrawFn) -> MiScaleMeasurement:
    control = MiScaleControl(draw(u(8)))
    step = "0.01" if control & (MiScaleControl.LB | MiScaleControl.JIN) else "0.005"
    return MiScaleMeasurement(control, draw(steps(16, step)), draw(date_times))


@st.composite
def mi_body_scales(draw: st.DrawFn) -> MiBodyCompositionScaleMeasurement:
    control = MiBodyCompositionScaleControl(draw(u(16)))
    units = MiBodyCompositionScaleControl.LB | MiBodyCompositionScaleControl.JIN
    step = "0.01" if control & units else "0.005"
    return MiBodyCompositionScaleMeasurement(
        control, draw(date_times), draw(u(16)), draw(steps(16, step))
    )


CASES: dict[str, st.SearchStrategy[object]] = {
    "2a35": bp_measurements,
    "2a36": icp,
    "2a49": bp_features,
    "2a18": glucose_measurements(),
    "2a34": glucose_contexts(),
    "2a51": glucose_features,
    "2a52": racps(),
    "2a9d": weight_measurements(),
    "2a9e": weight_features,
    "2a9c": body_compositions(),
    "2a9b": body_composition_features,
    "2a19": st.builds(BatteryLevel, u(8), extras),
    "2a23": st.builds(SystemId, u(40), u(24), extras),
    "2a08": date_times,
    "2a2b": st.builds(CurrentTime, date_times, u(8).map(DayOfWeek), u(8), u(8).map(AdjustReason)),
    "2a29": st.builds(DeviceInformationString, st.just("2a29"), st.text(max_size=20)),
    "181d": mi_scales(),
    "181b": mi_body_scales(),
}


def _round_trip(characteristic: str) -> Callable[[], None]:
    @SETTINGS
    @given(CASES[characteristic])
    def check(value: object) -> None:
        assert decode(characteristic, bytes(value)) == value  # type: ignore[call-overload]

    return check


test_blood_pressure_measurement = _round_trip("2a35")
test_intermediate_cuff_pressure = _round_trip("2a36")
test_blood_pressure_feature = _round_trip("2a49")
test_glucose_measurement = _round_trip("2a18")
test_glucose_measurement_context = _round_trip("2a34")
test_glucose_feature = _round_trip("2a51")
test_record_access_control_point = _round_trip("2a52")
test_weight_scale_measurement = _round_trip("2a9d")
test_weight_scale_feature = _round_trip("2a9e")
test_body_composition_measurement = _round_trip("2a9c")
test_body_composition_feature = _round_trip("2a9b")
test_battery_level = _round_trip("2a19")
test_system_id = _round_trip("2a23")
test_date_time = _round_trip("2a08")
test_current_time = _round_trip("2a2b")
test_dis_string = _round_trip("2a29")
test_mi_scale = _round_trip("181d")
test_mi_body_composition_scale = _round_trip("181b")


def test_every_characteristic_has_a_round_trip() -> None:
    from devices import CHARACTERISTICS

    dis = {"2a24", "2a25", "2a26", "2a27", "2a28"}  # same codec as 2a29
    assert set(CHARACTERISTICS) - dis == set(CASES)


@pytest.mark.parametrize(
    "value",
    [
        # Weight Scale Feature: bits 3-6 are the weight resolution, 7-9 the height resolution
        WeightScaleFeature(WeightScaleFeatureBits(1 << 3)),
        WeightScaleFeature(WeightScaleFeatureBits(1 << 9)),
        WeightScaleFeature(weight_resolution=WeightResolution(16)),  # 4 bits
        # Body Composition Feature: bits 11-14 mass resolution, 15-17 height resolution
        BodyCompositionFeature(BodyCompositionFeatureBits(1 << 14)),
        BodyCompositionFeature(height_resolution=HeightResolution(8)),  # 3 bits
        WeightScaleFeature(WeightScaleFeatureBits(1 << 32)),  # a uint32
    ],
)
def test_feature_bits_never_overwrite_a_resolution_field(value: SupportsBytes) -> None:
    with pytest.raises(EncodeError):
        bytes(value)


def test_measurement_status_bits_3_and_4_are_the_pulse_rate_range_only() -> None:
    with pytest.raises(EncodeError):
        int(MeasurementStatus(MeasurementStatusBits(1 << 3)))
    with pytest.raises(EncodeError):
        int(MeasurementStatus(pulse_rate_range=PulseRateRange(4)))  # a 2-bit field
    # Blood Pressure Service 1.0, 3.1.1.5: bit 0 body movement, bits 3-4 = 2 (below lower limit)
    status = MeasurementStatus.from_int(0b10001)
    assert status == MeasurementStatus(
        MeasurementStatusBits.BODY_MOVEMENT, PulseRateRange.BELOW_LOWER_LIMIT
    )
    assert int(status) == 0b10001
