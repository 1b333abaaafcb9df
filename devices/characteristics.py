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
    BatteryLevel,
    DeviceInformationString,
    SystemId,
)
from devices.errors import UnsupportedCharacteristic
from devices.glucose import GlucoseFeature, GlucoseMeasurement, GlucoseMeasurementContext
from devices.mi_scale import MiBodyCompositionScaleMeasurement, MiScaleMeasurement
from devices.racp import RecordAccessControlPoint
from devices.uuids import (
    BASE_UUID_SUFFIX,
    DEVICE_INFORMATION_STRINGS,
    GattCharacteristic,
    GattService,
)
from devices.weight_scale import WeightScaleFeature, WeightScaleMeasurement

__all__ = ["CHARACTERISTICS", "Characteristic", "decode", "normalize_uuid"]


@dataclass(frozen=True, slots=True)
class Characteristic:
    uuid: str
    name: str
    parse: Callable[[bytes], object]


_C = GattCharacteristic

#: every UUID with a codec → its decoder
_PARSERS: dict[GattCharacteristic | GattService, Callable[[bytes], object]] = {
    _C.BLOOD_PRESSURE_MEASUREMENT: BloodPressureMeasurement.from_bytes,
    _C.INTERMEDIATE_CUFF_PRESSURE: IntermediateCuffPressure.from_bytes,
    _C.BLOOD_PRESSURE_FEATURE: BloodPressureFeature.from_bytes,
    _C.GLUCOSE_MEASUREMENT: GlucoseMeasurement.from_bytes,
    _C.GLUCOSE_MEASUREMENT_CONTEXT: GlucoseMeasurementContext.from_bytes,
    _C.GLUCOSE_FEATURE: GlucoseFeature.from_bytes,
    _C.RECORD_ACCESS_CONTROL_POINT: RecordAccessControlPoint.from_bytes,
    _C.WEIGHT_MEASUREMENT: WeightScaleMeasurement.from_bytes,
    _C.WEIGHT_SCALE_FEATURE: WeightScaleFeature.from_bytes,
    _C.BODY_COMPOSITION_MEASUREMENT: BodyCompositionMeasurement.from_bytes,
    _C.BODY_COMPOSITION_FEATURE: BodyCompositionFeature.from_bytes,
    _C.BATTERY_LEVEL: BatteryLevel.from_bytes,
    _C.SYSTEM_ID: SystemId.from_bytes,
    _C.DATE_TIME: parse_date_time,
    _C.CURRENT_TIME: CurrentTime.from_bytes,
    GattService.WEIGHT_SCALE: MiScaleMeasurement.from_bytes,
    GattService.BODY_COMPOSITION: MiBodyCompositionScaleMeasurement.from_bytes,
    **{
        uuid: partial(DeviceInformationString.from_bytes, uuid.short)
        for uuid in DEVICE_INFORMATION_STRINGS
    },
}
#: names that are not the UUID's own (the table's names are the SIG names)
_NAMES: dict[GattCharacteristic | GattService, str] = {
    _C.WEIGHT_MEASUREMENT: "weight_scale_measurement",
    GattService.WEIGHT_SCALE: "mi_scale_service_data",
    GattService.BODY_COMPOSITION: "mi_body_composition_scale_service_data",
}

CHARACTERISTICS: dict[str, Characteristic] = {
    uuid.short: Characteristic(uuid.short, _NAMES.get(uuid, uuid.name.lower()), parse)
    for uuid, parse in _PARSERS.items()
}

_UUID16 = re.compile(r"^(?:0x)?([0-9a-f]{4})$")
_UUID128 = re.compile("^0000([0-9a-f]{4})" + re.escape(BASE_UUID_SUFFIX) + "$")


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
