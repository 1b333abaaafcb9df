"""Xiaomi scales that only advertise: Mi Smart Scale (service data on 0x181D, 10 bytes) and
Mi Body Composition Scale 2 (service data on 0x181B, 13 bytes).

Layouts as read by Home Assistant's ``xiaomi-ble`` (``_parse_scale_v1`` / ``_parse_scale_v2``)::

    Mi Smart Scale (v1)                   Mi Body Composition Scale (v2)
    0     control   bit 0 lb, 4 jin,      0-1   control (uint16 LE): bit 0 lb, bit 9 impedance
                    5 stabilised,                stabilised, 13 stabilised, 14 jin,
                    7 weight removed             15 weight removed
    1-2   weight    uint16 LE             2-8   date time (7 bytes, as Date Time)
    3-9   date time (7 bytes)             9-10  impedance uint16 LE (ohm)
                                          11-12 weight uint16 LE

The weight step is 0.005 kg (1/200) in kg mode and 0.01 in lb or jin mode (1 jin = 0.5 kg);
when both unit bits are set, lb wins (as in xiaomi-ble). Every control bit is kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum, IntFlag
from typing import Self

from devices._codec import EXACT, check_length, check_uint
from devices.date_time import DateTime
from devices.errors import EncodeError, ParseError

__all__ = [
    "MiBodyCompositionScaleControl",
    "MiBodyCompositionScaleMeasurement",
    "MiScaleControl",
    "MiScaleMeasurement",
    "MiScaleUnit",
    "parse_mi_body_composition_scale",
    "parse_mi_scale",
]


class MiScaleUnit(IntEnum):
    KG = 0
    LB = 1
    JIN = 2


_STEP = {
    MiScaleUnit.KG: Decimal("0.005"),
    MiScaleUnit.LB: Decimal("0.01"),
    MiScaleUnit.JIN: Decimal("0.01"),
}


def _steps(value: Decimal, unit: MiScaleUnit) -> int:
    steps = EXACT.divide(value, _STEP[unit])
    if steps != steps.to_integral_value(context=EXACT):
        raise EncodeError(f"weight is not a whole number of {_STEP[unit]} {unit.name} steps")
    return check_uint(int(steps), 16, "weight")


class MiScaleControl(IntFlag):
    LB = 1 << 0
    JIN = 1 << 4
    STABILIZED = 1 << 5
    WEIGHT_REMOVED = 1 << 7


_V1 = struct.Struct("<BH")
_V1_SIZE = 10


def _unit(lb: bool, jin: bool) -> MiScaleUnit:
    return MiScaleUnit.LB if lb else MiScaleUnit.JIN if jin else MiScaleUnit.KG


@dataclass(frozen=True, slots=True)
class MiScaleMeasurement:
    """Mi Smart Scale advert; ``weight`` is exact in :attr:`unit` (from the control bits)."""

    control: MiScaleControl
    weight: Decimal
    timestamp: DateTime

    WHAT = "Mi Scale service data (0x181D)"

    @property
    def unit(self) -> MiScaleUnit:
        return _unit(MiScaleControl.LB in self.control, MiScaleControl.JIN in self.control)

    @property
    def stabilized(self) -> bool:
        return MiScaleControl.STABILIZED in self.control

    @property
    def weight_removed(self) -> bool:
        return MiScaleControl.WEIGHT_REMOVED in self.control

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, _V1_SIZE, cls.WHAT)
        if len(data) != _V1_SIZE:
            raise ParseError(cls.WHAT, size=len(data), required=_V1_SIZE, reason="longer than 10")
        control, raw = _V1.unpack_from(data)
        unit = _unit(bool(control & MiScaleControl.LB), bool(control & MiScaleControl.JIN))
        return cls(
            MiScaleControl(control), EXACT.multiply(raw, _STEP[unit]), DateTime.from_bytes(data, 3)
        )

    def __bytes__(self) -> bytes:
        control = check_uint(int(self.control), 8, "control")
        return _V1.pack(control, _steps(self.weight, self.unit)) + bytes(self.timestamp)


class MiBodyCompositionScaleControl(IntFlag):
    """The two control bytes read as one little-endian uint16 (byte 1 is bits 8-15)."""

    LB = 1 << 0
    IMPEDANCE_STABILIZED = 1 << 9
    STABILIZED = 1 << 13
    JIN = 1 << 14
    WEIGHT_REMOVED = 1 << 15


_V2_HEAD = struct.Struct("<H")
_V2_TAIL = struct.Struct("<HH")
_V2_SIZE = 13


@dataclass(frozen=True, slots=True)
class MiBodyCompositionScaleMeasurement:
    """Mi Body Composition Scale 2 advert; ``impedance`` (ohm) is meaningful only when
    :attr:`impedance_stabilized`."""

    control: MiBodyCompositionScaleControl
    timestamp: DateTime
    impedance: int
    weight: Decimal

    WHAT = "Mi Body Composition Scale service data (0x181B)"

    @property
    def unit(self) -> MiScaleUnit:
        c = self.control
        return _unit(MiBodyCompositionScaleControl.LB in c, MiBodyCompositionScaleControl.JIN in c)

    @property
    def stabilized(self) -> bool:
        return MiBodyCompositionScaleControl.STABILIZED in self.control

    @property
    def weight_removed(self) -> bool:
        return MiBodyCompositionScaleControl.WEIGHT_REMOVED in self.control

    @property
    def impedance_stabilized(self) -> bool:
        return MiBodyCompositionScaleControl.IMPEDANCE_STABILIZED in self.control

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, _V2_SIZE, cls.WHAT)
        if len(data) != _V2_SIZE:
            raise ParseError(cls.WHAT, size=len(data), required=_V2_SIZE, reason="longer than 13")
        control = MiBodyCompositionScaleControl(_V2_HEAD.unpack_from(data)[0])
        impedance, raw = _V2_TAIL.unpack_from(data, 9)
        unit = _unit(
            MiBodyCompositionScaleControl.LB in control,
            MiBodyCompositionScaleControl.JIN in control,
        )
        return cls(
            control, DateTime.from_bytes(data, 2), impedance, EXACT.multiply(raw, _STEP[unit])
        )

    def __bytes__(self) -> bytes:
        control = check_uint(int(self.control), 16, "control")
        tail = _V2_TAIL.pack(
            check_uint(self.impedance, 16, "impedance"), _steps(self.weight, self.unit)
        )
        return _V2_HEAD.pack(control) + bytes(self.timestamp) + tail


def parse_mi_scale(data: bytes) -> MiScaleMeasurement:
    return MiScaleMeasurement.from_bytes(data)


def parse_mi_body_composition_scale(data: bytes) -> MiBodyCompositionScaleMeasurement:
    return MiBodyCompositionScaleMeasurement.from_bytes(data)
