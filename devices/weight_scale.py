"""Weight Scale service (0x181D): Measurement 0x2A9D and Feature 0x2A9E.

Measurement layout (little-endian)::

    flags       uint8    bit 0 units (0 SI, 1 imperial), 1 time stamp, 2 user id,
                         3 BMI and height, 4-7 reserved (kept)
    weight      uint16   0.005 kg (SI) or 0.01 lb (imperial) per step, WHATEVER the
                         Feature's resolution says; 0xFFFF = measurement unsuccessful
    time stamp  7 bytes  if bit 1
    user id     uint8    if bit 2 (255 = unknown user)
    BMI         uint16   0.1 kg/m2 per step, if bit 3
    height      uint16   0.001 m (SI) or 0.1 in (imperial) per step, if bit 3

Values are exact ``Decimal`` in the unit the flags name (``weight is None`` when the scale sent
0xFFFF). The encoder refuses a value that is not a whole number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum, IntFlag
from typing import Self

from devices._codec import (
    EXACT,
    UINT8,
    UINT16,
    UINT32,
    BitField,
    check_length,
    check_uint,
    join_fields,
    read_uint,
    split_fields,
)
from devices._enum import OpenIntEnum
from devices.date_time import DateTime
from devices.errors import EncodeError

__all__ = [
    "HeightResolution",
    "MassUnit",
    "WeightResolution",
    "WeightScaleFeature",
    "WeightScaleFeatureBits",
    "WeightScaleFlags",
    "WeightScaleMeasurement",
    "from_steps",
    "parse_weight_scale_feature",
    "parse_weight_scale_measurement",
    "to_steps",
]

UNSUCCESSFUL = 0xFFFF


class MassUnit(IntEnum):
    SI = 0  # kg, m
    IMPERIAL = 1  # lb, in


#: step of a mass field (weight, muscle mass, …) per unit system
MASS_STEP = {MassUnit.SI: Decimal("0.005"), MassUnit.IMPERIAL: Decimal("0.01")}
#: step of a height field per unit system
HEIGHT_STEP = {MassUnit.SI: Decimal("0.001"), MassUnit.IMPERIAL: Decimal("0.1")}
BMI_STEP = Decimal("0.1")


def from_steps(raw: int, step: Decimal) -> Decimal:
    return EXACT.multiply(raw, step)


def to_steps(value: Decimal, step: Decimal, field: str) -> int:
    """The raw uint16 for ``value``; :class:`EncodeError` unless a whole number of steps."""
    steps = EXACT.divide(value, step)
    if steps != steps.to_integral_value(context=EXACT):
        raise EncodeError(f"{field} is not a whole number of {step} steps")
    return check_uint(int(steps), 16, field)


class WeightScaleFlags(IntFlag):
    IMPERIAL = 0x01
    TIME_STAMP_PRESENT = 0x02
    USER_ID_PRESENT = 0x04
    BMI_AND_HEIGHT_PRESENT = 0x08


_KNOWN_FLAGS = 0x0F
_WHAT = "weight scale measurement (0x2A9D)"


@dataclass(frozen=True, slots=True)
class WeightScaleMeasurement:
    """Weight Scale Measurement (0x2A9D): kg/m (SI) or lb/in (imperial), as ``unit`` says."""

    weight: Decimal | None  # None: the scale reported "measurement unsuccessful"
    unit: MassUnit = MassUnit.SI
    timestamp: DateTime | None = None
    user_id: int | None = None
    bmi: Decimal | None = None
    height: Decimal | None = None
    reserved_flags: int = 0
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, 1, _WHAT)
        flags = data[0]
        required = 3
        if flags & WeightScaleFlags.TIME_STAMP_PRESENT:
            required += DateTime.SIZE
        if flags & WeightScaleFlags.USER_ID_PRESENT:
            required += 1
        if flags & WeightScaleFlags.BMI_AND_HEIGHT_PRESENT:
            required += 4
        check_length(data, required, _WHAT, flags)
        unit = MassUnit(flags & WeightScaleFlags.IMPERIAL)
        raw = UINT16.unpack_from(data, 1)[0]
        weight = None if raw == UNSUCCESSFUL else from_steps(raw, MASS_STEP[unit])
        offset = 3
        timestamp = user_id = bmi = height = None
        if flags & WeightScaleFlags.TIME_STAMP_PRESENT:
            timestamp = DateTime.from_bytes(data, offset)
            offset += DateTime.SIZE
        if flags & WeightScaleFlags.USER_ID_PRESENT:
            user_id = data[offset]
            offset += 1
        if flags & WeightScaleFlags.BMI_AND_HEIGHT_PRESENT:
            bmi = from_steps(UINT16.unpack_from(data, offset)[0], BMI_STEP)
            height = from_steps(UINT16.unpack_from(data, offset + 2)[0], HEIGHT_STEP[unit])
            offset += 4
        return cls(
            weight,
            unit,
            timestamp,
            user_id,
            bmi,
            height,
            flags & ~_KNOWN_FLAGS,
            bytes(data[offset:]),
        )

    def __bytes__(self) -> bytes:
        if self.reserved_flags & _KNOWN_FLAGS or not 0 <= self.reserved_flags <= 0xFF:
            raise EncodeError("reserved_flags must only hold the reserved bits 4-7")
        flags = self.reserved_flags | int(self.unit)
        raw = (
            UNSUCCESSFUL
            if self.weight is None
            else to_steps(self.weight, MASS_STEP[self.unit], "weight")
        )
        if raw == UNSUCCESSFUL and self.weight is not None:
            raise EncodeError("weight 0xFFFF steps means 'unsuccessful': use weight=None")
        tail = b""
        if self.timestamp is not None:
            flags |= WeightScaleFlags.TIME_STAMP_PRESENT
            tail += bytes(self.timestamp)
        if self.user_id is not None:
            flags |= WeightScaleFlags.USER_ID_PRESENT
            tail += UINT8.pack(check_uint(self.user_id, 8, "user id"))
        if (self.bmi is None) != (self.height is None):
            raise EncodeError("BMI and height go together")
        if self.bmi is not None and self.height is not None:
            flags |= WeightScaleFlags.BMI_AND_HEIGHT_PRESENT
            tail += UINT16.pack(to_steps(self.bmi, BMI_STEP, "BMI"))
            tail += UINT16.pack(to_steps(self.height, HEIGHT_STEP[self.unit], "height"))
        return UINT8.pack(flags) + UINT16.pack(raw) + tail + self.extra


class WeightResolution(OpenIntEnum):
    """Feature bits 3-6. Informational only: the measurement's step never depends on it."""

    NOT_SPECIFIED = 0
    KG_0_5_OR_LB_1 = 1
    KG_0_2_OR_LB_0_5 = 2
    KG_0_1_OR_LB_0_2 = 3
    KG_0_05_OR_LB_0_1 = 4
    KG_0_02_OR_LB_0_05 = 5
    KG_0_01_OR_LB_0_02 = 6
    KG_0_005_OR_LB_0_01 = 7


class HeightResolution(OpenIntEnum):
    """Feature bits 7-9 (weight scale) or 15-17 (body composition)."""

    NOT_SPECIFIED = 0
    M_0_01_OR_IN_1 = 1
    M_0_005_OR_IN_0_5 = 2
    M_0_001_OR_IN_0_1 = 3


class WeightScaleFeatureBits(IntFlag):
    NONE = 0
    TIME_STAMP = 1 << 0
    MULTIPLE_USERS = 1 << 1
    BMI = 1 << 2


_RESOLUTIONS = (BitField("weight resolution", 3, 4), BitField("height resolution", 7, 3))


@dataclass(frozen=True, slots=True)
class WeightScaleFeature:
    """Weight Scale Feature (0x2A9E), uint32: single bits (unknown bits kept) and resolutions."""

    features: WeightScaleFeatureBits = WeightScaleFeatureBits.NONE
    weight_resolution: WeightResolution = WeightResolution.NOT_SPECIFIED
    height_resolution: HeightResolution = HeightResolution.NOT_SPECIFIED
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        value, extra = read_uint(UINT32, data, "weight scale feature (0x2A9E)")
        bits, (weight, height) = split_fields(value, _RESOLUTIONS)
        return cls(
            WeightScaleFeatureBits(bits), WeightResolution(weight), HeightResolution(height), extra
        )

    def __bytes__(self) -> bytes:
        resolutions = (int(self.weight_resolution), int(self.height_resolution))
        fields = tuple(zip(_RESOLUTIONS, resolutions, strict=True))
        return UINT32.pack(join_fields(int(self.features), 32, fields, "features")) + self.extra


def parse_weight_scale_measurement(data: bytes) -> WeightScaleMeasurement:
    return WeightScaleMeasurement.from_bytes(data)


def parse_weight_scale_feature(data: bytes) -> WeightScaleFeature:
    return WeightScaleFeature.from_bytes(data)
