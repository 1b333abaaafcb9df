"""Byte encoders used by the emulated peripherals.

These are deliberately small: they build the bytes a real device would send for the readings an
emulated device is configured with. The project's codecs in ``devices`` are the reference for
parsing; the emulated devices also accept ready-made payloads (anything with ``__bytes__``, such
as ``bytes`` or the codec dataclasses), which are sent unchanged.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

__all__ = [
    "SFLOAT_NAN",
    "SFLOAT_NRES",
    "BloodPressureUnit",
    "encode_date_time",
    "encode_sfloat",
]

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_DATE_TIME = struct.Struct("<HBBBBB")
_CURRENT_TIME = struct.Struct("<HBBBBBBBB")

SFLOAT_NAN = 0x07FF
SFLOAT_NRES = 0x0800
_SFLOAT_MANTISSA_MIN = -2046
_SFLOAT_MANTISSA_MAX = 2045


class BloodPressureUnit(enum.Enum):
    MMHG = "mmHg"
    KPA = "kPa"


def encode_sfloat(value: Decimal | int | None) -> bytes:
    """IEEE-11073 16-bit SFLOAT; ``None`` encodes NRes.

    The smallest exponent (>= -8) that represents the value exactly within the 12-bit mantissa is
    chosen; values that cannot be represented exactly are rounded at the finest exponent that fits.
    """
    if value is None:
        return _U16.pack(SFLOAT_NRES)
    dec = Decimal(value)
    chosen: tuple[int, int] | None = None
    for exponent in range(0, -9, -1):
        scaled = dec.scaleb(-exponent)
        mantissa = int(scaled.to_integral_value())
        if not _SFLOAT_MANTISSA_MIN <= mantissa <= _SFLOAT_MANTISSA_MAX:
            break
        chosen = (mantissa, exponent)
        if scaled == mantissa:
            break
    if chosen is None:
        for exponent in range(1, 8):
            mantissa = int(dec.scaleb(-exponent).to_integral_value())
            if _SFLOAT_MANTISSA_MIN <= mantissa <= _SFLOAT_MANTISSA_MAX:
                chosen = (mantissa, exponent)
                break
    if chosen is None:
        raise ValueError("value out of SFLOAT range")
    mantissa, exponent = chosen
    return _U16.pack(((exponent & 0x0F) << 12) | (mantissa & 0x0FFF))


def encode_date_time(value: datetime) -> bytes:
    """Bluetooth Date Time (0x2A08): year, month, day, hours, minutes, seconds."""
    return _DATE_TIME.pack(
        value.year, value.month, value.day, value.hour, value.minute, value.second
    )


def encode_current_time(value: datetime, adjust_reason: int = 0) -> bytes:
    """Current Time (0x2A2B): Exact Time 256 plus adjust reason (10 bytes)."""
    fractions256 = value.microsecond * 256 // 1_000_000
    return _CURRENT_TIME.pack(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.isoweekday(),
        fractions256,
        adjust_reason,
    )


def decode_current_time(data: bytes) -> datetime:
    """The device side of a Current Time write; raises ``ValueError`` on bad input."""
    if len(data) != _CURRENT_TIME.size:
        raise ValueError(f"Current Time must be {_CURRENT_TIME.size} bytes, got {len(data)}")
    year, month, day, hour, minute, second, _weekday, fractions256, _reason = _CURRENT_TIME.unpack(
        data
    )
    return datetime(  # noqa: DTZ001 - a device clock is naive by definition
        year, month, day, hour, minute, second, fractions256 * 1_000_000 // 256
    )


@dataclass(frozen=True, slots=True)
class BloodPressureFields:
    systolic: Decimal | None
    diastolic: Decimal | None
    mean_arterial: Decimal | None
    unit: BloodPressureUnit
    time: datetime | None
    pulse: Decimal | None
    user_id: int | None
    status: int | None
    pulse_nres: bool = False


def encode_blood_pressure_measurement(fields: BloodPressureFields) -> bytes:
    """Blood Pressure Measurement (0x2A35) or Intermediate Cuff Pressure (0x2A36)."""
    flags = 0
    body = bytearray()
    if fields.unit is BloodPressureUnit.KPA:
        flags |= 0x01
    body += encode_sfloat(fields.systolic)
    body += encode_sfloat(fields.diastolic)
    body += encode_sfloat(fields.mean_arterial)
    if fields.time is not None:
        flags |= 0x02
        body += encode_date_time(fields.time)
    if fields.pulse is not None or fields.pulse_nres:
        flags |= 0x04
        body += encode_sfloat(None if fields.pulse_nres else fields.pulse)
    if fields.user_id is not None:
        flags |= 0x08
        body += _U8.pack(fields.user_id)
    if fields.status is not None:
        flags |= 0x10
        body += _U16.pack(fields.status)
    return _U8.pack(flags) + bytes(body)


@dataclass(frozen=True, slots=True)
class GlucoseFields:
    sequence: int
    base_time: datetime
    time_offset_minutes: int | None
    concentration_mg_dl: Decimal | None
    has_concentration: bool
    type_code: int
    location_code: int
    status: int | None
    context_follows: bool


def encode_glucose_measurement(fields: GlucoseFields) -> bytes:
    """Glucose Measurement (0x2A18), concentration in kg/L (mg/dL * 1e-5)."""
    flags = 0
    body = bytearray(_U16.pack(fields.sequence & 0xFFFF))
    body += encode_date_time(fields.base_time)
    if fields.time_offset_minutes is not None:
        flags |= 0x01
        body += struct.pack("<h", fields.time_offset_minutes)
    if fields.has_concentration:
        flags |= 0x02
        kg_per_l = (
            None if fields.concentration_mg_dl is None else fields.concentration_mg_dl.scaleb(-5)
        )
        body += encode_sfloat(kg_per_l)
        body += _U8.pack(((fields.location_code & 0x0F) << 4) | (fields.type_code & 0x0F))
    if fields.status is not None:
        flags |= 0x08
        body += _U16.pack(fields.status)
    if fields.context_follows:
        flags |= 0x10
    return _U8.pack(flags) + bytes(body)


def encode_glucose_context(sequence: int, meal: int | None) -> bytes:
    """Glucose Measurement Context (0x2A34) with at most the meal field."""
    flags = 0
    body = bytearray(_U16.pack(sequence & 0xFFFF))
    if meal is not None:
        flags |= 0x02
        body += _U8.pack(meal)
    return _U8.pack(flags) + bytes(body)


_WEIGHT_NRES = 0xFFFF


@dataclass(frozen=True, slots=True)
class WeightFields:
    weight_kg: Decimal | None
    imperial: bool
    time: datetime | None
    user_id: int | None
    bmi: Decimal | None
    height_m: Decimal | None


def encode_weight_measurement(fields: WeightFields) -> bytes:
    """Weight Measurement (0x2A9D): 0.005 kg or 0.01 lb per step; BMI 0.1; height 0.001 m/0.1 in."""
    flags = 0
    if fields.imperial:
        flags |= 0x01
    if fields.weight_kg is None:
        raw_weight = _WEIGHT_NRES
    elif fields.imperial:
        pounds = fields.weight_kg / Decimal("0.45359237")
        raw_weight = int((pounds / Decimal("0.01")).to_integral_value())
    else:
        raw_weight = int((fields.weight_kg / Decimal("0.005")).to_integral_value())
    body = bytearray(_U16.pack(raw_weight))
    if fields.time is not None:
        flags |= 0x02
        body += encode_date_time(fields.time)
    if fields.user_id is not None:
        flags |= 0x04
        body += _U8.pack(fields.user_id)
    if fields.bmi is not None and fields.height_m is not None:
        flags |= 0x08
        body += _U16.pack(int((fields.bmi * 10).to_integral_value()))
        if fields.imperial:
            inches = fields.height_m / Decimal("0.0254")
            body += _U16.pack(int((inches * 10).to_integral_value()))
        else:
            body += _U16.pack(int((fields.height_m * 1000).to_integral_value()))
    return _U8.pack(flags) + bytes(body)


def encode_body_composition_measurement(
    body_fat_percent: Decimal | None,
    weight_kg: Decimal | None,
    time: datetime | None,
    user_id: int | None,
) -> bytes:
    """Body Composition Measurement (0x2A9C): body fat (0.1 %) plus optional fields (SI)."""
    flags = 0
    fat = 0xFFFF if body_fat_percent is None else int((body_fat_percent * 10).to_integral_value())
    body = bytearray(_U16.pack(fat))
    if time is not None:
        flags |= 0x0002
        body += encode_date_time(time)
    if user_id is not None:
        flags |= 0x0004
        body += _U8.pack(user_id)
    if weight_kg is not None:
        flags |= 0x0400
        body += _U16.pack(int((weight_kg / Decimal("0.005")).to_integral_value()))
    return _U16.pack(flags) + bytes(body)


_MI_SCALE_V1 = struct.Struct("<BHHBBBBB")
_MI_SCALE_V2 = struct.Struct("<BBHBBBBBHH")


def encode_mi_scale_v1(
    weight_kg: Decimal, *, pounds: bool, stabilized: bool, removed: bool, time: datetime
) -> bytes:
    """Xiaomi Mi Scale (service data on 0x181D, 10 bytes)."""
    control = (0x01 if pounds else 0x00) | (0x20 if stabilized else 0) | (0x80 if removed else 0)
    if pounds:
        raw = int((weight_kg / Decimal("0.45359237") * 100).to_integral_value())
    else:
        raw = int((weight_kg * 200).to_integral_value())
    return _MI_SCALE_V1.pack(
        control, raw, time.year, time.month, time.day, time.hour, time.minute, time.second
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
    control0 = 0x01 if pounds else 0x00
    control1 = (
        (0x02 if impedance is not None else 0)
        | (0x20 if stabilized else 0)
        | (0x80 if removed else 0)
    )
    if pounds:
        raw = int((weight_kg / Decimal("0.45359237") * 100).to_integral_value())
    else:
        raw = int((weight_kg * 200).to_integral_value())
    return _MI_SCALE_V2.pack(
        control0,
        control1,
        time.year,
        time.month,
        time.day,
        time.hour,
        time.minute,
        time.second,
        impedance or 0,
        raw,
    )
