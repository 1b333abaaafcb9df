"""From an emulated device's reading to the bytes it sends, through the project's codecs.

The emulated devices describe readings in plain terms (mmHg, mg/dL, kg, naive device time) and
apply their faults; the bytes come from the codec dataclasses' ``__bytes__`` in ``devices``, so
the encoders the gateway's parsers are tested against are the ones that drive the emulation.
Values are first rounded to what the wire format can carry (0.005 kg, 0.1 kPa, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from devices.blood_pressure import (
    BloodPressureMeasurement,
    IntermediateCuffPressure,
    MeasurementStatus,
    PressureUnit,
)
from devices.body_composition import BodyCompositionMeasurement
from devices.date_time import AdjustReason, CurrentTime, DateTime, DayOfWeek
from devices.errors import ParseError
from devices.glucose import (
    ConcentrationUnit,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseType,
    Meal,
    SampleLocation,
    SensorStatus,
)
from devices.ieee11073 import Number, SpecialValue
from devices.mi_scale import (
    MiBodyCompositionScaleControl,
    MiBodyCompositionScaleMeasurement,
    MiScaleControl,
    MiScaleMeasurement,
)
from devices.weight_scale import MassUnit, WeightScaleMeasurement

__all__ = [
    "BloodPressureFields",
    "GlucoseFields",
    "WeightFields",
    "decode_current_time",
    "encode_blood_pressure_measurement",
    "encode_body_composition_measurement",
    "encode_current_time",
    "encode_glucose_context",
    "encode_glucose_measurement",
    "encode_intermediate_cuff_pressure",
    "encode_mi_scale_v1",
    "encode_mi_scale_v2",
    "encode_weight_measurement",
]

_POUNDS_PER_KG = 1 / Decimal("0.45359237")
_INCHES_PER_M = 1 / Decimal("0.0254")


def steps(value: Decimal, step: Decimal) -> Decimal:
    """``value`` rounded to a whole number of ``step``."""
    return (value / step).to_integral_value() * step


def _number(value: Decimal | None) -> Number:
    return SpecialValue.NRES if value is None else value


def _date_time(value: datetime | None) -> DateTime | None:
    return None if value is None else DateTime.from_datetime(value)


def encode_current_time(value: datetime, adjust_reason: int = 0) -> bytes:
    """Current Time (0x2A2B) for a device clock reading."""
    return bytes(
        CurrentTime(
            DateTime.from_datetime(value),
            DayOfWeek(value.isoweekday()),
            value.microsecond * 256 // 1_000_000,
            AdjustReason(adjust_reason),
        )
    )


def decode_current_time(data: bytes) -> datetime:
    """What a device makes of a Current Time write; ``ValueError`` if unusable."""
    try:
        current = CurrentTime.from_bytes(data)
    except ParseError as error:
        raise ValueError("malformed Current Time") from error
    value = current.date_time.to_datetime()
    if value is None:
        raise ValueError("Current Time with an unknown date")
    return value.replace(microsecond=current.fractions256 * 1_000_000 // 256)


@dataclass(frozen=True, slots=True)
class BloodPressureFields:
    """What a cuff sends; ``None`` pressures are NRes."""

    systolic: Decimal | None
    diastolic: Decimal | None
    mean_arterial: Decimal | None
    kpa: bool
    time: datetime | None
    pulse: Decimal | None
    user_id: int | None
    status: int | None
    pulse_nres: bool = False


def encode_blood_pressure_measurement(fields: BloodPressureFields) -> bytes:
    pulse: Number | None = SpecialValue.NRES if fields.pulse_nres else fields.pulse
    return bytes(
        BloodPressureMeasurement(
            systolic=_number(fields.systolic),
            diastolic=_number(fields.diastolic),
            mean_arterial_pressure=_number(fields.mean_arterial),
            unit=PressureUnit.KPA if fields.kpa else PressureUnit.MMHG,
            timestamp=_date_time(fields.time),
            pulse_rate=pulse,
            user_id=fields.user_id,
            status=None if fields.status is None else MeasurementStatus.from_int(fields.status),
        )
    )


def encode_intermediate_cuff_pressure(pressure: Decimal, *, kpa: bool) -> bytes:
    unit = PressureUnit.KPA if kpa else PressureUnit.MMHG
    return bytes(IntermediateCuffPressure(cuff_pressure=pressure, unit=unit))


@dataclass(frozen=True, slots=True)
class GlucoseFields:
    sequence: int
    base_time: datetime
    time_offset_minutes: int | None
    concentration_mg_dl: Decimal | None  # None: NRes
    type_code: int
    location_code: int
    status: int | None
    context_follows: bool


def encode_glucose_measurement(fields: GlucoseFields) -> bytes:
    """Glucose Measurement (0x2A18), concentration in kg/L (1 mg/dL = 1e-5 kg/L)."""
    concentration = (
        None if fields.concentration_mg_dl is None else fields.concentration_mg_dl.scaleb(-5)
    )
    return bytes(
        GlucoseMeasurement(
            sequence_number=fields.sequence & 0xFFFF,
            base_time=DateTime.from_datetime(fields.base_time),
            time_offset=fields.time_offset_minutes,
            concentration=_number(concentration),
            unit=ConcentrationUnit.KG_PER_L,
            type=GlucoseType(fields.type_code),
            sample_location=SampleLocation(fields.location_code),
            sensor_status=None if fields.status is None else SensorStatus(fields.status),
            context_follows=fields.context_follows,
        )
    )


def encode_glucose_context(sequence: int, meal: int | None) -> bytes:
    """Glucose Measurement Context (0x2A34) carrying the meal."""
    return bytes(
        GlucoseMeasurementContext(
            sequence_number=sequence & 0xFFFF, meal=None if meal is None else Meal(meal)
        )
    )


@dataclass(frozen=True, slots=True)
class WeightFields:
    weight_kg: Decimal | None  # None: "measurement unsuccessful"
    imperial: bool
    time: datetime | None
    user_id: int | None
    bmi: Decimal | None
    height_m: Decimal | None


def encode_weight_measurement(fields: WeightFields) -> bytes:
    """Weight Measurement (0x2A9D): 0.005 kg or 0.01 lb; BMI 0.1; height 0.001 m or 0.1 in."""
    weight: Decimal | None = None
    height: Decimal | None = None
    if fields.imperial:
        if fields.weight_kg is not None:
            weight = steps(fields.weight_kg * _POUNDS_PER_KG, Decimal("0.01"))
        if fields.height_m is not None:
            height = steps(fields.height_m * _INCHES_PER_M, Decimal("0.1"))
    else:
        if fields.weight_kg is not None:
            weight = steps(fields.weight_kg, Decimal("0.005"))
        if fields.height_m is not None:
            height = steps(fields.height_m, Decimal("0.001"))
    with_bmi = fields.bmi is not None and height is not None
    return bytes(
        WeightScaleMeasurement(
            weight=weight,
            unit=MassUnit.IMPERIAL if fields.imperial else MassUnit.SI,
            timestamp=_date_time(fields.time),
            user_id=fields.user_id,
            bmi=steps(fields.bmi, Decimal("0.1")) if with_bmi and fields.bmi else None,
            height=height if with_bmi else None,
        )
    )


def encode_body_composition_measurement(
    body_fat_percent: Decimal | None,
    weight_kg: Decimal | None,
    time: datetime | None,
    user_id: int | None,
) -> bytes:
    """Body Composition Measurement (0x2A9C): body fat (0.1 %) and weight (0.005 kg), SI."""
    return bytes(
        BodyCompositionMeasurement(
            body_fat_percentage=(
                None if body_fat_percent is None else steps(body_fat_percent, Decimal("0.1"))
            ),
            unit=MassUnit.SI,
            timestamp=_date_time(time),
            user_id=user_id,
            weight=None if weight_kg is None else steps(weight_kg, Decimal("0.005")),
        )
    )


def _mi_weight(weight_kg: Decimal, pounds: bool) -> Decimal:
    if pounds:
        return steps(weight_kg * _POUNDS_PER_KG, Decimal("0.01"))
    return steps(weight_kg, Decimal("0.005"))


def encode_mi_scale_v1(
    weight_kg: Decimal, *, pounds: bool, stabilized: bool, removed: bool, time: datetime
) -> bytes:
    """Xiaomi Mi Scale (service data on 0x181D, 10 bytes)."""
    control = MiScaleControl(0)
    if pounds:
        control |= MiScaleControl.LB
    if stabilized:
        control |= MiScaleControl.STABILIZED
    if removed:
        control |= MiScaleControl.WEIGHT_REMOVED
    return bytes(
        MiScaleMeasurement(control, _mi_weight(weight_kg, pounds), DateTime.from_datetime(time))
    )


def encode_mi_scale_v2(
    weight_kg: Decimal,
    *,
    pounds: bool,
    stabilized: bool,
    removed: bool,
    impedance: int | None,
    time: datetime,
) -> bytes:
    """Xiaomi Mi Body Composition Scale 2 (service data on 0x181B, 13 bytes)."""
    control = MiBodyCompositionScaleControl(0)
    if pounds:
        control |= MiBodyCompositionScaleControl.LB
    if impedance is not None:
        control |= MiBodyCompositionScaleControl.IMPEDANCE_STABILIZED
    if stabilized:
        control |= MiBodyCompositionScaleControl.STABILIZED
    if removed:
        control |= MiBodyCompositionScaleControl.WEIGHT_REMOVED
    return bytes(
        MiBodyCompositionScaleMeasurement(
            control, DateTime.from_datetime(time), impedance or 0, _mi_weight(weight_kg, pounds)
        )
    )
