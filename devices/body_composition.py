"""Body Composition service (0x181B): Measurement 0x2A9C and Feature 0x2A9B.

Measurement layout (little-endian; flags are uint16)::

    flags                uint16   bit 0 units (0 SI, 1 imperial), 1 time stamp, 2 user id,
                                  3 basal metabolism, 4 muscle percentage, 5 muscle mass,
                                  6 fat free mass, 7 soft lean mass, 8 body water mass,
                                  9 impedance, 10 weight, 11 height, 12 multiple packet
                                  measurement, 13-15 reserved (kept)
    body fat percentage  uint16   0.1 % per step (always present; 0xFFFF = unsuccessful)
    time stamp           7 bytes  if bit 1
    user id              uint8    if bit 2 (255 = unknown user)
    basal metabolism     uint16   kJ, if bit 3
    muscle percentage    uint16   0.1 %, if bit 4
    muscle mass, fat free mass, soft lean mass, body water mass, weight
                         uint16   0.005 kg (SI) or 0.01 lb (imperial), bits 5, 6, 7, 8, 10
    impedance            uint16   0.1 ohm, if bit 9
    height               uint16   0.001 m (SI) or 0.1 in (imperial), if bit 11

With the multiple-packet flag, a scale splits one measurement over several notifications,
each carrying a subset of the optional fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntFlag
from typing import Self

from devices._codec import (
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
from devices.date_time import DateTime
from devices.errors import EncodeError
from devices.weight_scale import (
    HEIGHT_STEP,
    MASS_STEP,
    HeightResolution,
    MassUnit,
    WeightResolution,
    from_steps,
    to_steps,
)

__all__ = [
    "BodyCompositionFeature",
    "BodyCompositionFeatureBits",
    "BodyCompositionFlags",
    "BodyCompositionMeasurement",
    "parse_body_composition_feature",
    "parse_body_composition_measurement",
]

_WHAT = "body composition measurement (0x2A9C)"
UNSUCCESSFUL = 0xFFFF
PERCENT_STEP = Decimal("0.1")
IMPEDANCE_STEP = Decimal("0.1")
ONE = Decimal(1)


class BodyCompositionFlags(IntFlag):
    IMPERIAL = 1 << 0
    TIME_STAMP_PRESENT = 1 << 1
    USER_ID_PRESENT = 1 << 2
    BASAL_METABOLISM_PRESENT = 1 << 3
    MUSCLE_PERCENTAGE_PRESENT = 1 << 4
    MUSCLE_MASS_PRESENT = 1 << 5
    FAT_FREE_MASS_PRESENT = 1 << 6
    SOFT_LEAN_MASS_PRESENT = 1 << 7
    BODY_WATER_MASS_PRESENT = 1 << 8
    IMPEDANCE_PRESENT = 1 << 9
    WEIGHT_PRESENT = 1 << 10
    HEIGHT_PRESENT = 1 << 11
    MULTIPLE_PACKET = 1 << 12


_KNOWN_FLAGS = 0x1FFF

# (flag, attribute, step kind) of the uint16 fields after user id, in wire order
_FIELDS: tuple[tuple[BodyCompositionFlags, str, str], ...] = (
    (BodyCompositionFlags.BASAL_METABOLISM_PRESENT, "basal_metabolism", "one"),
    (BodyCompositionFlags.MUSCLE_PERCENTAGE_PRESENT, "muscle_percentage", "percent"),
    (BodyCompositionFlags.MUSCLE_MASS_PRESENT, "muscle_mass", "mass"),
    (BodyCompositionFlags.FAT_FREE_MASS_PRESENT, "fat_free_mass", "mass"),
    (BodyCompositionFlags.SOFT_LEAN_MASS_PRESENT, "soft_lean_mass", "mass"),
    (BodyCompositionFlags.BODY_WATER_MASS_PRESENT, "body_water_mass", "mass"),
    (BodyCompositionFlags.IMPEDANCE_PRESENT, "impedance", "impedance"),
    (BodyCompositionFlags.WEIGHT_PRESENT, "weight", "mass"),
    (BodyCompositionFlags.HEIGHT_PRESENT, "height", "height"),
)


def _step(kind: str, unit: MassUnit) -> Decimal:
    return {
        "one": ONE,
        "percent": PERCENT_STEP,
        "impedance": IMPEDANCE_STEP,
        "mass": MASS_STEP[unit],
        "height": HEIGHT_STEP[unit],
    }[kind]


@dataclass(frozen=True, slots=True)
class BodyCompositionMeasurement:
    """Body Composition Measurement (0x2A9C); masses in kg or lb and height in m or in, as
    ``unit`` says; percentages in %, basal metabolism in kJ, impedance in ohm."""

    body_fat_percentage: Decimal | None  # None: the scale reported "unsuccessful"
    unit: MassUnit = MassUnit.SI
    timestamp: DateTime | None = None
    user_id: int | None = None
    basal_metabolism: Decimal | None = None
    muscle_percentage: Decimal | None = None
    muscle_mass: Decimal | None = None
    fat_free_mass: Decimal | None = None
    soft_lean_mass: Decimal | None = None
    body_water_mass: Decimal | None = None
    impedance: Decimal | None = None
    weight: Decimal | None = None
    height: Decimal | None = None
    multiple_packet: bool = False
    reserved_flags: int = 0
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, 2, _WHAT)
        flags = UINT16.unpack_from(data)[0]
        required = 4
        if flags & BodyCompositionFlags.TIME_STAMP_PRESENT:
            required += DateTime.SIZE
        if flags & BodyCompositionFlags.USER_ID_PRESENT:
            required += 1
        required += 2 * sum(1 for bit, _, _ in _FIELDS if flags & bit)
        check_length(data, required, _WHAT, flags)
        unit = MassUnit(flags & BodyCompositionFlags.IMPERIAL)
        fat_raw = UINT16.unpack_from(data, 2)[0]
        fat = None if fat_raw == UNSUCCESSFUL else from_steps(fat_raw, PERCENT_STEP)
        offset = 4
        timestamp = user_id = None
        if flags & BodyCompositionFlags.TIME_STAMP_PRESENT:
            timestamp = DateTime.from_bytes(data, offset)
            offset += DateTime.SIZE
        if flags & BodyCompositionFlags.USER_ID_PRESENT:
            user_id = data[offset]
            offset += 1
        values: dict[str, Decimal | None] = {}
        for bit, name, kind in _FIELDS:
            if flags & bit:
                values[name] = from_steps(UINT16.unpack_from(data, offset)[0], _step(kind, unit))
                offset += 2
        return cls(
            fat,
            unit,
            timestamp,
            user_id,
            multiple_packet=bool(flags & BodyCompositionFlags.MULTIPLE_PACKET),
            reserved_flags=flags & ~_KNOWN_FLAGS,
            extra=bytes(data[offset:]),
            **values,
        )

    def __bytes__(self) -> bytes:
        if self.reserved_flags & _KNOWN_FLAGS or not 0 <= self.reserved_flags <= 0xFFFF:
            raise EncodeError("reserved_flags must only hold the reserved bits 13-15")
        flags = self.reserved_flags | int(self.unit)
        if self.multiple_packet:
            flags |= BodyCompositionFlags.MULTIPLE_PACKET
        if self.body_fat_percentage is None:
            fat = UNSUCCESSFUL
        else:
            fat = to_steps(self.body_fat_percentage, PERCENT_STEP, "body fat percentage")
            if fat == UNSUCCESSFUL:
                raise EncodeError("0xFFFF means 'unsuccessful': use body_fat_percentage=None")
        tail = b""
        if self.timestamp is not None:
            flags |= BodyCompositionFlags.TIME_STAMP_PRESENT
            tail += bytes(self.timestamp)
        if self.user_id is not None:
            flags |= BodyCompositionFlags.USER_ID_PRESENT
            tail += UINT8.pack(check_uint(self.user_id, 8, "user id"))
        for bit, name, kind in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                flags |= bit
                tail += UINT16.pack(to_steps(value, _step(kind, self.unit), name))
        return UINT16.pack(flags) + UINT16.pack(fat) + tail + self.extra


class BodyCompositionFeatureBits(IntFlag):
    NONE = 0
    TIME_STAMP = 1 << 0
    MULTIPLE_USERS = 1 << 1
    BASAL_METABOLISM = 1 << 2
    MUSCLE_PERCENTAGE = 1 << 3
    MUSCLE_MASS = 1 << 4
    FAT_FREE_MASS = 1 << 5
    SOFT_LEAN_MASS = 1 << 6
    BODY_WATER_MASS = 1 << 7
    IMPEDANCE = 1 << 8
    WEIGHT = 1 << 9
    HEIGHT = 1 << 10


_RESOLUTIONS = (BitField("mass resolution", 11, 4), BitField("height resolution", 15, 3))


@dataclass(frozen=True, slots=True)
class BodyCompositionFeature:
    """Body Composition Feature (0x2A9B), uint32: bits 0-10 supported fields, 11-14 mass
    resolution, 15-17 height resolution, the rest reserved (kept in ``features``)."""

    features: BodyCompositionFeatureBits = BodyCompositionFeatureBits.NONE
    mass_resolution: WeightResolution = WeightResolution.NOT_SPECIFIED
    height_resolution: HeightResolution = HeightResolution.NOT_SPECIFIED
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        value, extra = read_uint(UINT32, data, "body composition feature (0x2A9B)")
        bits, (mass, height) = split_fields(value, _RESOLUTIONS)
        return cls(
            BodyCompositionFeatureBits(bits),
            WeightResolution(mass),
            HeightResolution(height),
            extra,
        )

    def __bytes__(self) -> bytes:
        resolutions = (int(self.mass_resolution), int(self.height_resolution))
        fields = tuple(zip(_RESOLUTIONS, resolutions, strict=True))
        return UINT32.pack(join_fields(int(self.features), 32, fields, "features")) + self.extra


def parse_body_composition_measurement(data: bytes) -> BodyCompositionMeasurement:
    return BodyCompositionMeasurement.from_bytes(data)


def parse_body_composition_feature(data: bytes) -> BodyCompositionFeature:
    return BodyCompositionFeature.from_bytes(data)
