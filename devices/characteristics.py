"""The dispatch table: 16-bit characteristic (or service-data) UUID → decoder.

Keys are lower-case 4-digit hex (``"2a35"``); :func:`normalize_uuid` turns ``0x2A35``,
``2A35`` or the full Bluetooth-base 128-bit form into that. The keys are also the bounded set
of values a metric label about characteristics may take.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from devices.blood_pressure import (
    BloodPressureFeature,
    BloodPressureMeasurement,
    IntermediateCuffPressure,
)
from devices.body_composition import BodyCompositionFeature, BodyCompositionMeasurement
from devices.date_time import CurrentTime, parse_date_time
from devices.device_information import (
    DIS_STRINGS,
    BatteryLevel,
    DeviceInformationString,
    SystemId,
)
from devices.errors import UnsupportedCharacteristic
from devices.glucose import GlucoseFeature, GlucoseMeasurement, GlucoseMeasurementContext
from devices.mi_scale import MiBodyCompositionScaleMeasurement, MiScaleMeasurement
from devices.racp import RecordAccessControlPoint
from devices.weight_scale import WeightScaleFeature, WeightScaleMeasurement

__all__ = ["CHARACTERISTICS", "Characteristic", "decode", "normalize_uuid"]


@dataclass(frozen=True, slots=True)
class Characteristic:
    uuid: str
    name: str
    parse: Callable[[bytes], object]


def _entry(uuid: str, name: str, parse: Callable[[bytes], object]) -> tuple[str, Characteristic]:
    return uuid, Characteristic(uuid, name, parse)


CHARACTERISTICS: dict[str, Characteristic] = dict(
    [
        _entry("2a35", "blood_pressure_measurement", BloodPressureMeasurement.from_bytes),
        _entry("2a36", "intermediate_cuff_pressure", IntermediateCuffPressure.from_bytes),
        _entry("2a49", "blood_pressure_feature", BloodPressureFeature.from_bytes),
        _entry("2a18", "glucose_measurement", GlucoseMeasurement.from_bytes),
        _entry("2a34", "glucose_measurement_context", GlucoseMeasurementContext.from_bytes),
        _entry("2a51", "glucose_feature", GlucoseFeature.from_bytes),
        _entry("2a52", "record_access_control_point", RecordAccessControlPoint.from_bytes),
        _entry("2a9d", "weight_scale_measurement", WeightScaleMeasurement.from_bytes),
        _entry("2a9e", "weight_scale_feature", WeightScaleFeature.from_bytes),
        _entry("2a9c", "body_composition_measurement", BodyCompositionMeasurement.from_bytes),
        _entry("2a9b", "body_composition_feature", BodyCompositionFeature.from_bytes),
        _entry("2a19", "battery_level", BatteryLevel.from_bytes),
        _entry("2a23", "system_id", SystemId.from_bytes),
        _entry("2a08", "date_time", parse_date_time),
        _entry("2a2b", "current_time", CurrentTime.from_bytes),
        _entry("181d", "mi_scale_service_data", MiScaleMeasurement.from_bytes),
        _entry(
            "181b",
            "mi_body_composition_scale_service_data",
            MiBodyCompositionScaleMeasurement.from_bytes,
        ),
        *(
            _entry(uuid, name, partial(DeviceInformationString.from_bytes, uuid))
            for uuid, name in DIS_STRINGS.items()
        ),
    ]
)

_UUID16 = re.compile(r"^(?:0x)?([0-9a-f]{4})$")
_UUID128 = re.compile(r"^0000([0-9a-f]{4})-0000-1000-8000-00805f9b34fb$")


def normalize_uuid(text: str) -> str:
    """``"2a35"`` from ``"2a35"``, ``"0x2A35"`` or ``"00002a35-0000-1000-8000-00805f9b34fb"``.

    Anything else raises :class:`UnsupportedCharacteristic`.
    """
    lowered = text.strip().lower()
    match = _UUID16.match(lowered) or _UUID128.match(lowered)
    if match is None:
        raise UnsupportedCharacteristic(text)
    return match.group(1)


def decode(characteristic: str, data: bytes) -> object:
    """The decoded structure of ``data`` read from ``characteristic`` (any accepted spelling)."""
    uuid = normalize_uuid(characteristic)
    entry = CHARACTERISTICS.get(uuid)
    if entry is None:
        raise UnsupportedCharacteristic(uuid, len(data))
    return entry.parse(bytes(data))
