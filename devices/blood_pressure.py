"""Blood Pressure service (0x1810): Measurement 0x2A35, Intermediate Cuff Pressure 0x2A36,
Feature 0x2A49 (Bluetooth SIG Blood Pressure Service 1.0 / GATT Specification Supplement).

Measurement layout (little-endian)::

    flags              uint8    bit 0 units (0 mmHg, 1 kPa), 1 time stamp, 2 pulse rate,
                                3 user id, 4 measurement status, 5-7 reserved (kept)
    systolic           SFLOAT   (Intermediate Cuff Pressure: the current cuff pressure)
    diastolic          SFLOAT   (ICP: NaN)
    mean arterial      SFLOAT   (ICP: NaN)
    time stamp         7 bytes  if bit 1
    pulse rate         SFLOAT   if bit 2
    user id            uint8    if bit 3 (255 = unknown user)
    measurement status uint16   if bit 4: bit 0 body movement, 1 cuff too loose,
                                2 irregular pulse, 3-4 pulse rate range (2-bit field),
                                5 improper measurement position, 6-15 reserved (kept)

Bytes after the last field the flags announce are kept in ``extra``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Self, TypedDict

from devices._codec import (
    UINT8,
    UINT16,
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
from devices.ieee11073 import Number, SpecialValue, sfloat_from_raw, sfloat_to_raw

__all__ = [
    "BloodPressureFeature",
    "BloodPressureFeatureBits",
    "BloodPressureFlags",
    "BloodPressureMeasurement",
    "IntermediateCuffPressure",
    "MeasurementStatus",
    "MeasurementStatusBits",
    "PressureUnit",
    "PulseRateRange",
    "parse_blood_pressure_feature",
    "parse_blood_pressure_measurement",
    "parse_intermediate_cuff_pressure",
]

_FLAGS = UINT8
_PRESSURES = struct.Struct("<HHH")
_SFLOAT = UINT16
_STATUS = UINT16
_FEATURE = UINT16


class BloodPressureFlags(IntFlag):
    UNITS_KPA = 0x01
    TIME_STAMP_PRESENT = 0x02
    PULSE_RATE_PRESENT = 0x04
    USER_ID_PRESENT = 0x08
    MEASUREMENT_STATUS_PRESENT = 0x10


_KNOWN_FLAGS = 0x1F


class PressureUnit(IntEnum):
    MMHG = 0
    KPA = 1


class MeasurementStatusBits(IntFlag):
    """The single-bit fields of Blood Pressure Measurement Status (bits 3-4 are not here)."""

    NONE = 0
    BODY_MOVEMENT = 0x0001
    CUFF_TOO_LOOSE = 0x0002
    IRREGULAR_PULSE = 0x0004
    IMPROPER_POSITION = 0x0020


class PulseRateRange(OpenIntEnum):
    """The 2-bit Pulse Rate Range Detection field (status bits 3-4)."""

    WITHIN_RANGE = 0
    EXCEEDS_UPPER_LIMIT = 1
    BELOW_LOWER_LIMIT = 2
    RESERVED = 3


_PULSE_RANGE = BitField("pulse rate range", 3, 2)


@dataclass(frozen=True, slots=True)
class MeasurementStatus:
    """Measurement Status: single-bit flags (unknown bits kept) and the 2-bit pulse-rate range."""

    bits: MeasurementStatusBits = MeasurementStatusBits.NONE
    pulse_rate_range: PulseRateRange = PulseRateRange.WITHIN_RANGE

    @classmethod
    def from_int(cls, value: int) -> Self:
        bits, (pulse_rate_range,) = split_fields(value, (_PULSE_RANGE,))
        return cls(MeasurementStatusBits(bits), PulseRateRange(pulse_rate_range))

    def __int__(self) -> int:
        fields = ((_PULSE_RANGE, int(self.pulse_rate_range)),)
        return join_fields(int(self.bits), 16, fields, "measurement status")


#: the three SFLOAT pressure fields, in wire order
_Pressures = tuple[Number, Number, Number]


class _Common(TypedDict):
    """The fields both characteristics share besides the pressures, under the attribute names
    of both dataclasses."""

    unit: PressureUnit
    timestamp: DateTime | None
    pulse_rate: Number | None
    user_id: int | None
    status: MeasurementStatus | None
    reserved_flags: int
    extra: bytes


def _parse(data: bytes, what: str) -> tuple[_Pressures, _Common]:
    check_length(data, 1, what)
    flags = data[0]
    required = 1 + _PRESSURES.size
    if flags & BloodPressureFlags.TIME_STAMP_PRESENT:
        required += DateTime.SIZE
    if flags & BloodPressureFlags.PULSE_RATE_PRESENT:
        required += _SFLOAT.size
    if flags & BloodPressureFlags.USER_ID_PRESENT:
        required += UINT8.size
    if flags & BloodPressureFlags.MEASUREMENT_STATUS_PRESENT:
        required += _STATUS.size
    check_length(data, required, what, flags)
    first, second, third = (sfloat_from_raw(raw) for raw in _PRESSURES.unpack_from(data, 1))
    offset = 1 + _PRESSURES.size
    timestamp = pulse_rate = user_id = status = None
    if flags & BloodPressureFlags.TIME_STAMP_PRESENT:
        timestamp = DateTime.from_bytes(data, offset)
        offset += DateTime.SIZE
    if flags & BloodPressureFlags.PULSE_RATE_PRESENT:
        pulse_rate = sfloat_from_raw(_SFLOAT.unpack_from(data, offset)[0])
        offset += _SFLOAT.size
    if flags & BloodPressureFlags.USER_ID_PRESENT:
        user_id = data[offset]
        offset += UINT8.size
    if flags & BloodPressureFlags.MEASUREMENT_STATUS_PRESENT:
        status = MeasurementStatus.from_int(_STATUS.unpack_from(data, offset)[0])
        offset += _STATUS.size
    unit = PressureUnit.KPA if flags & BloodPressureFlags.UNITS_KPA else PressureUnit.MMHG
    common = _Common(
        unit=unit,
        timestamp=timestamp,
        pulse_rate=pulse_rate,
        user_id=user_id,
        status=status,
        reserved_flags=flags & ~_KNOWN_FLAGS,
        extra=bytes(data[offset:]),
    )
    return (first, second, third), common


def _encode(pressures: _Pressures, f: BloodPressureMeasurement | IntermediateCuffPressure) -> bytes:
    if f.reserved_flags & _KNOWN_FLAGS or not 0 <= f.reserved_flags <= 0xFF:
        raise EncodeError("reserved_flags must only hold the reserved bits 5-7")
    flags = f.reserved_flags | (BloodPressureFlags.UNITS_KPA if f.unit == PressureUnit.KPA else 0)
    tail = b""
    if f.timestamp is not None:
        flags |= BloodPressureFlags.TIME_STAMP_PRESENT
        tail += bytes(f.timestamp)
    if f.pulse_rate is not None:
        flags |= BloodPressureFlags.PULSE_RATE_PRESENT
        tail += _SFLOAT.pack(sfloat_to_raw(f.pulse_rate))
    if f.user_id is not None:
        flags |= BloodPressureFlags.USER_ID_PRESENT
        tail += UINT8.pack(check_uint(f.user_id, 8, "user id"))
    if f.status is not None:
        flags |= BloodPressureFlags.MEASUREMENT_STATUS_PRESENT
        tail += _STATUS.pack(int(f.status))
    wire = _PRESSURES.pack(*(sfloat_to_raw(pressure) for pressure in pressures))
    return _FLAGS.pack(flags) + wire + tail + f.extra


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """Blood Pressure Measurement (0x2A35); pressures in ``unit`` (mmHg or kPa), pulse in /min."""

    systolic: Number
    diastolic: Number
    mean_arterial_pressure: Number
    unit: PressureUnit = PressureUnit.MMHG
    timestamp: DateTime | None = None
    pulse_rate: Number | None = None
    user_id: int | None = None
    status: MeasurementStatus | None = None
    reserved_flags: int = 0
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        (systolic, diastolic, mean), common = _parse(data, "blood pressure measurement (0x2A35)")
        return cls(systolic, diastolic, mean, **common)

    def __bytes__(self) -> bytes:
        return _encode((self.systolic, self.diastolic, self.mean_arterial_pressure), self)


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressure:
    """Intermediate Cuff Pressure (0x2A36): the Measurement layout with the current cuff pressure
    in the systolic field; diastolic and mean arterial are NaN by specification (kept as sent)."""

    cuff_pressure: Number
    unit: PressureUnit = PressureUnit.MMHG
    timestamp: DateTime | None = None
    pulse_rate: Number | None = None
    user_id: int | None = None
    status: MeasurementStatus | None = None
    diastolic: Number = SpecialValue.NAN
    mean_arterial_pressure: Number = SpecialValue.NAN
    reserved_flags: int = 0
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        (cuff, diastolic, mean), common = _parse(data, "intermediate cuff pressure (0x2A36)")
        return cls(cuff, diastolic=diastolic, mean_arterial_pressure=mean, **common)

    def __bytes__(self) -> bytes:
        return _encode((self.cuff_pressure, self.diastolic, self.mean_arterial_pressure), self)


class BloodPressureFeatureBits(IntFlag):
    """Blood Pressure Feature (0x2A49), uint16; unknown bits are kept."""

    NONE = 0
    BODY_MOVEMENT_DETECTION = 0x0001
    CUFF_FIT_DETECTION = 0x0002
    IRREGULAR_PULSE_DETECTION = 0x0004
    PULSE_RATE_RANGE_DETECTION = 0x0008
    MEASUREMENT_POSITION_DETECTION = 0x0010
    MULTIPLE_BOND = 0x0020
    E2E_CRC = 0x0040  # BLS 1.1 / GATT Specification Supplement
    USER_DATA_SERVICE = 0x0080
    USER_FACING_TIME = 0x0100


@dataclass(frozen=True, slots=True)
class BloodPressureFeature:
    features: BloodPressureFeatureBits = BloodPressureFeatureBits.NONE
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        value, extra = read_uint(_FEATURE, data, "blood pressure feature (0x2A49)")
        return cls(BloodPressureFeatureBits(value), extra)

    def __bytes__(self) -> bytes:
        return _FEATURE.pack(check_uint(int(self.features), 16, "features")) + self.extra


def parse_blood_pressure_measurement(data: bytes) -> BloodPressureMeasurement:
    return BloodPressureMeasurement.from_bytes(data)


def parse_intermediate_cuff_pressure(data: bytes) -> IntermediateCuffPressure:
    return IntermediateCuffPressure.from_bytes(data)


def parse_blood_pressure_feature(data: bytes) -> BloodPressureFeature:
    return BloodPressureFeature.from_bytes(data)
