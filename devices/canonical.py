"""Canonical readings: a decoded measurement + device identity + gateway receive time → the
reading of ARCHITECTURE.md (MQTT contract v1).

Values
    Codes and UCUM units: ``systolic``, ``diastolic``, ``mean_arterial`` mm[Hg]; ``pulse``
    /min; ``glucose`` mg/dL; ``body_weight`` kg; ``bmi`` kg/m2; ``height`` m; and for body
    composition ``body_fat`` %, ``basal_metabolism`` kJ, ``muscle_percentage`` %,
    ``muscle_mass``, ``fat_free_mass``, ``soft_lean_mass``, ``body_water_mass`` kg and
    ``impedance`` Ohm (the codes ingest's ``UNITS`` table knows). Conversions and their rounding
    are in :mod:`devices.units`; the device's own unit is kept in ``raw["unit"]``.

Flags
    :data:`FLAGS` is the closed vocabulary; :data:`FLAG_DESCRIPTIONS` gives each one's meaning. A NaN / NRes / ±INF / reserved SFLOAT is never a
    value: it is left out of ``values`` and named ``<code>_nan``, ``<code>_nres``,
    ``<code>_positive_infinity``, ``<code>_negative_infinity`` or ``<code>_reserved``. A meter's
    HI / LO result (sensor status bits 5 / 6) is kept as ``result_too_high`` /
    ``result_too_low`` and its number is left out. A control-solution test (glucose type 0xA or
    sample location "control solution") is marked ``control_solution``: it is a device check,
    not a patient value, and no alert may use it (its value is kept for QC display).
    Mi Scale adverts keep their weight while ``not_stabilized`` or ``weight_removed``: the
    gateway decides which adverts to publish.

Device clock
    ``measured_at`` is the naive device time, or ``None``. ``device_clock_unset``: the reading
    has no usable device time (``measured_at`` is ``None``): no timestamp field, or one with an
    unknown (0) year, month or day, or impossible fields. ``device_clock_reset``: the device sent
    a time field, but it is a reset or default clock: unknown or impossible parts (then also
    unset), or any date before 2010-01-01 (1970-01-01 and 2000-01-01 epochs and the days after
    them; no device of these profiles has produced a genuine reading before 2010). With either
    flag, ingest places the reading at the receive time.

Reading id (``uuid5`` in :data:`READING_NAMESPACE`)
    The name hashed is a JSON list beginning ``["carebeacon.reading/1", device id,
    characteristic, rule, ...]``, where the rule is the first that applies:

    1. ``"sequence"``: the measurement has a sequence number (glucose): sequence number, base
       time fields as sent and time offset. A record re-read from the meter's memory, or sent
       twice, gets the same id; a meter whose counter restarts is told apart by the time.
    2. ``"timestamp"``: the measurement has a device timestamp with a known date (even a reset
       clock's: it still ticks): timestamp fields as sent, user id, and the measured values in
       the device's own unit as decoded (plus the names of special values). The same stored
       record re-sent gets the same id; two packets of one multi-packet body-composition
       measurement differ by their values. For Mi Scales only the weight counts (impedance
       arrives in a later advert of the same weighing, and control bits change as the user
       steps off), so all adverts of one weighing share one id.
    3. ``"received"``: no sequence and no usable timestamp: the payload hex and the receive time
       (UTC ISO 8601). Such a device cannot be de-duplicated across re-reads; a duplicate
       delivery of the same published reading still carries the same id.

    The id never depends on unit conversions, so a change of rounding does not change ids.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from devices.blood_pressure import (
    BloodPressureMeasurement,
    MeasurementStatusBits,
    PressureUnit,
    PulseRateRange,
)
from devices.body_composition import BodyCompositionMeasurement
from devices.characteristics import normalize_uuid
from devices.date_time import DateTime, naive_datetime
from devices.errors import UnsupportedCharacteristic
from devices.glucose import (
    CarbohydrateId,
    ConcentrationUnit,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseTester,
    GlucoseType,
    Health,
    Meal,
    MedicationId,
    MedicationUnit,
    SampleLocation,
    SensorStatus,
)
from devices.ieee11073 import Number, SpecialValue
from devices.mi_scale import MiBodyCompositionScaleMeasurement, MiScaleMeasurement, MiScaleUnit
from devices.units import (
    G_PER_KG,
    MG_PER_KG,
    ML_PER_L,
    exact_scale,
    inches_to_m,
    jin_to_kg,
    kg_per_l_to_mg_dl,
    kpa_to_mmhg,
    lb_to_kg,
    mol_per_l_to_mg_dl,
)
from devices.uuids import GattCharacteristic, GattService
from devices.weight_scale import MassUnit, WeightScaleMeasurement

__all__ = [
    "CONTEXT_RANGES",
    "DEVICE_TYPES",
    "DEVICE_TYPE_BY_CHARACTERISTIC",
    "FLAGS",
    "FLAG_DESCRIPTIONS",
    "MEASUREMENT_CHARACTERISTICS",
    "READING_NAMESPACE",
    "READING_TYPES",
    "UNITS",
    "CanonicalReading",
    "DeviceIdentity",
    "Value",
    "canonical_reading",
    "with_glucose_context",
]

DEVICE_TYPES = frozenset(
    {"blood_pressure_monitor", "glucose_meter", "weight_scale", "body_composition_scale"}
)
READING_TYPES = frozenset({"blood_pressure", "glucose", "body_weight", "body_composition"})

#: canonical unit (UCUM) of every value code this module emits
UNITS: dict[str, str] = {
    "systolic": "mm[Hg]",
    "diastolic": "mm[Hg]",
    "mean_arterial": "mm[Hg]",
    "pulse": "/min",
    "glucose": "mg/dL",
    "body_weight": "kg",
    "bmi": "kg/m2",
    "height": "m",
    "body_fat": "%",
    "basal_metabolism": "kJ",
    "muscle_percentage": "%",
    "muscle_mass": "kg",
    "fat_free_mass": "kg",
    "soft_lean_mass": "kg",
    "body_water_mass": "kg",
    "impedance": "Ohm",
    # Glucose Measurement Context (0x2A34), merged into the glucose reading
    "carbohydrate": "g",
    "exercise_duration": "s",
    "exercise_intensity": "%",
    "medication": "mg",
    "medication_volume": "mL",
    "hba1c": "%",
}

#: the glucose context's values outside these (inclusive) are not sent as numbers but flagged
#: ``<code>_out_of_range``: a meter's odd context field must not get the glucose reading
#: quarantined (ingest's ``POSSIBLE`` holds the same ranges)
CONTEXT_RANGES: dict[str, tuple[Decimal, Decimal]] = {
    "carbohydrate": (Decimal(0), Decimal(1000)),
    "exercise_duration": (Decimal(0), Decimal(65534)),
    "exercise_intensity": (Decimal(0), Decimal(100)),
    "medication": (Decimal(0), Decimal(10000)),
    "medication_volume": (Decimal(0), Decimal(100)),
    "hba1c": (Decimal(2), Decimal(25)),
}

#: namespace of the reading ids (uuid5)
READING_NAMESPACE = uuid.UUID("5f0b8a2e-4c1d-5e7a-9b3f-2d6c8e1a4b70")

#: a device date before this is a reset clock
CLOCK_RESET_BEFORE = naive_datetime(2010, 1, 1)

_SFLOAT_CODES = (
    "systolic",
    "diastolic",
    "mean_arterial",
    "pulse",
    "glucose",
    "carbohydrate",
    "medication",
    "medication_volume",
    "hba1c",
)

_BP_STATUS = {
    MeasurementStatusBits.BODY_MOVEMENT: "body_movement",
    MeasurementStatusBits.CUFF_TOO_LOOSE: "cuff_loose",
    MeasurementStatusBits.IRREGULAR_PULSE: "irregular_pulse",
    MeasurementStatusBits.IMPROPER_POSITION: "improper_position",
}
_BP_STATUS_KNOWN = 0x0027
_PULSE_RANGE = {
    PulseRateRange.EXCEEDS_UPPER_LIMIT: "pulse_rate_exceeds_upper_limit",
    PulseRateRange.BELOW_LOWER_LIMIT: "pulse_rate_below_lower_limit",
    PulseRateRange.RESERVED: "pulse_rate_range_reserved",
}
_GLUCOSE_STATUS = {
    SensorStatus.DEVICE_BATTERY_LOW: "device_battery_low",
    SensorStatus.SENSOR_MALFUNCTION: "sensor_malfunction",
    SensorStatus.SAMPLE_SIZE_INSUFFICIENT: "sample_insufficient",
    SensorStatus.STRIP_INSERTION_ERROR: "strip_insertion_error",
    SensorStatus.STRIP_TYPE_INCORRECT: "strip_type_incorrect",
    SensorStatus.RESULT_TOO_HIGH: "result_too_high",
    SensorStatus.RESULT_TOO_LOW: "result_too_low",
    SensorStatus.SENSOR_TEMPERATURE_TOO_HIGH: "sensor_temperature_too_high",
    SensorStatus.SENSOR_TEMPERATURE_TOO_LOW: "sensor_temperature_too_low",
    SensorStatus.SENSOR_READ_INTERRUPTED: "sensor_read_interrupted",
    SensorStatus.GENERAL_DEVICE_FAULT: "device_fault",
    SensorStatus.TIME_FAULT: "device_time_fault",
}
_GLUCOSE_STATUS_KNOWN = 0x0FFF

#: Glucose Measurement Context (0x2A34) fields that become ``<field>:<value>`` flags; values
#: the profile reserves become ``<field>:reserved``; "not available" (0xF) gives no flag
_CONTEXT_ENUMS: dict[str, type[CarbohydrateId | Meal | GlucoseTester | Health | MedicationId]] = {
    "carbohydrate": CarbohydrateId,
    "meal": Meal,
    "tester": GlucoseTester,
    "health": Health,
    "medication": MedicationId,
}
_CONTEXT_FLAGS = {
    f"{field}:{member.name.lower()}": f"glucose context: {field} {member.name.lower()}"
    for field, enum in _CONTEXT_ENUMS.items()
    for member in enum
    if member.name != "NOT_AVAILABLE"
} | {
    f"{field}:reserved": f"glucose context: a {field} value the profile reserves"
    for field in _CONTEXT_ENUMS
}

_OTHER_FLAGS = {
    **_CONTEXT_FLAGS,
    "exercise_duration_overrun": "glucose context: exercise longer than 65534 s (no value)",
    **{
        f"{code}_out_of_range": f"glucose context: {code} outside {low}-{high} {UNITS[code]}"
        " (left out of values)"
        for code, (low, high) in CONTEXT_RANGES.items()
    },
    "control_solution": "glucose type or sample location is control solution: a device check, "
    "never a patient value; no alert may use it",
    "device_clock_reset": "the device sent a reset, default or impossible time (unknown parts, "
    "or a date before 2010-01-01)",
    "device_clock_unset": "no usable device time: measured_at is null",
    "measurement_unsuccessful": "the scale reported 0xFFFF (weight or body fat): no value",
    "multi_packet": "one body-composition measurement split over several packets",
    "not_stabilized": "Mi Scale advert before the weight settled",
    "unknown_status_bits": "reserved bits set in BP measurement status or glucose sensor status",
    "weight_removed": "Mi Scale advert sent after the user stepped off",
}
_SPECIAL_MEANING = {
    SpecialValue.NAN: "NaN (not a number)",
    SpecialValue.NRES: "NRes (not at this resolution)",
    SpecialValue.POSITIVE_INFINITY: "+INFINITY",
    SpecialValue.NEGATIVE_INFINITY: "-INFINITY",
    SpecialValue.RESERVED: "a reserved SFLOAT value",
}

#: every flag a canonical reading may carry, with its meaning (closed vocabulary)
FLAG_DESCRIPTIONS: dict[str, str] = {
    **{name: f"BP measurement status: {name.replace('_', ' ')}" for name in _BP_STATUS.values()},
    **{name: f"BP measurement status: {name.replace('_', ' ')}" for name in _PULSE_RANGE.values()},
    **{
        name: f"glucose sensor status annunciation: {name.replace('_', ' ')}"
        + (" (meter HI: the number is left out)" if name == "result_too_high" else "")
        + (" (meter LO: the number is left out)" if name == "result_too_low" else "")
        for name in _GLUCOSE_STATUS.values()
    },
    **_OTHER_FLAGS,
    **{
        f"{code}_{special.value}": f"{code} was {meaning}: left out of values"
        for code in _SFLOAT_CODES
        for special, meaning in _SPECIAL_MEANING.items()
    },
}

#: every flag a canonical reading may carry (sorted, closed)
FLAGS: tuple[str, ...] = tuple(sorted(FLAG_DESCRIPTIONS))


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    id: str
    type: str  # one of DEVICE_TYPES
    manufacturer: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("device id must be a non-empty string")
        if self.type not in DEVICE_TYPES:
            raise ValueError(f"device type must be one of {sorted(DEVICE_TYPES)}")


@dataclass(frozen=True, slots=True)
class Value:
    code: str
    value: Decimal
    unit: str


@dataclass(frozen=True, slots=True)
class CanonicalReading:
    id: uuid.UUID
    device: DeviceIdentity
    type: str  # one of READING_TYPES
    measured_at: datetime | None  # naive device clock; None if absent/unknown
    received_at: datetime  # aware UTC
    sequence: int | None
    user_index: int | None
    values: tuple[Value, ...]
    flags: tuple[str, ...]  # sorted, unique, from FLAGS
    raw: dict[str, str] = field(hash=False)  # characteristic, hex, the device's unit if any

    def to_json(self) -> dict[str, object]:
        """The reading as the JSON object of the MQTT contract (ARCHITECTURE.md)."""
        return {
            "id": str(self.id),
            "device": {
                "id": self.device.id,
                "type": self.device.type,
                "manufacturer": self.device.manufacturer,
                "model": self.device.model,
            },
            "type": self.type,
            "measured_at": None if self.measured_at is None else self.measured_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "sequence": self.sequence,
            "user_index": self.user_index,
            "values": [
                {"code": v.code, "value": float(v.value), "unit": v.unit} for v in self.values
            ],
            "flags": list(self.flags),
            "raw": dict(self.raw),
        }


@dataclass(slots=True)
class _Draft:
    """What a converter extracts from one measurement."""

    type: str
    timestamp: DateTime | None
    measured_at: datetime | None = None
    sequence: int | None = None
    user_index: int | None = None
    unit: str | None = None
    values: list[Value] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    identity: list[object] = field(default_factory=list)  # device-unit values for the id

    def number(self, code: str, value: Number, convert: Callable[[Decimal], Decimal]) -> None:
        if isinstance(value, SpecialValue):
            self.flags.add(f"{code}_{value.value}")
            self.identity.append([code, value.value])
        else:
            self.values.append(Value(code, convert(value), UNITS[code]))
            self.identity.append([code, str(value)])

    def decimal(
        self, code: str, value: Decimal | None, convert: Callable[[Decimal], Decimal] = lambda v: v
    ) -> None:
        if value is not None:
            self.number(code, value, convert)


def _same(value: Decimal) -> Decimal:
    return value


def _user(user_id: int | None) -> int | None:
    return None if user_id is None or user_id == 0xFF else user_id


def _blood_pressure(data: bytes) -> _Draft:
    m = BloodPressureMeasurement.from_bytes(data)
    d = _Draft("blood_pressure", m.timestamp, user_index=_user(m.user_id))
    d.measured_at = None if m.timestamp is None else m.timestamp.to_datetime()
    convert = kpa_to_mmhg if m.unit == PressureUnit.KPA else _same
    d.unit = "kPa" if m.unit == PressureUnit.KPA else "mmHg"
    d.number("systolic", m.systolic, convert)
    d.number("diastolic", m.diastolic, convert)
    d.number("mean_arterial", m.mean_arterial_pressure, convert)
    if m.pulse_rate is not None:
        d.number("pulse", m.pulse_rate, _same)
    if m.status is not None:
        d.flags.update(name for bit, name in _BP_STATUS.items() if bit in m.status.bits)
        if m.status.pulse_rate_range in _PULSE_RANGE:
            d.flags.add(_PULSE_RANGE[m.status.pulse_rate_range])
        if int(m.status.bits) & ~_BP_STATUS_KNOWN:
            d.flags.add("unknown_status_bits")
    d.identity.append(["user", m.user_id])
    return d


def _glucose(data: bytes) -> _Draft:
    m = GlucoseMeasurement.from_bytes(data)
    d = _Draft("glucose", m.base_time, sequence=m.sequence_number)
    d.measured_at = m.measured_at()
    status = m.sensor_status if m.sensor_status is not None else SensorStatus(0)
    d.flags.update(name for bit, name in _GLUCOSE_STATUS.items() if bit in status)
    if int(status) & ~_GLUCOSE_STATUS_KNOWN:
        d.flags.add("unknown_status_bits")
    if (
        m.type == GlucoseType.CONTROL_SOLUTION
        or m.sample_location == SampleLocation.CONTROL_SOLUTION
    ):
        d.flags.add("control_solution")
    if m.concentration is not None:
        mol = m.unit == ConcentrationUnit.MOL_PER_L
        d.unit = "mol/L" if mol else "kg/L"
        hi_lo = SensorStatus.RESULT_TOO_HIGH in status or SensorStatus.RESULT_TOO_LOW in status
        if isinstance(m.concentration, SpecialValue) or not hi_lo:
            d.number("glucose", m.concentration, mol_per_l_to_mg_dl if mol else kg_per_l_to_mg_dl)
    d.identity[:] = [["sequence", m.sequence_number], ["offset", m.time_offset]]
    return d


def _weight(data: bytes) -> _Draft:
    m = WeightScaleMeasurement.from_bytes(data)
    d = _Draft("body_weight", m.timestamp, user_index=_user(m.user_id))
    d.measured_at = None if m.timestamp is None else m.timestamp.to_datetime()
    imperial = m.unit == MassUnit.IMPERIAL
    d.unit = "lb" if imperial else "kg"
    if m.weight is None:
        d.flags.add("measurement_unsuccessful")
    d.decimal("body_weight", m.weight, lb_to_kg if imperial else _same)
    d.decimal("bmi", m.bmi)
    d.decimal("height", m.height, inches_to_m if imperial else _same)
    d.identity.append(["user", m.user_id])
    return d


def _body_composition(data: bytes) -> _Draft:
    m = BodyCompositionMeasurement.from_bytes(data)
    d = _Draft("body_composition", m.timestamp, user_index=_user(m.user_id))
    d.measured_at = None if m.timestamp is None else m.timestamp.to_datetime()
    imperial = m.unit == MassUnit.IMPERIAL
    d.unit = "lb" if imperial else "kg"
    mass = lb_to_kg if imperial else _same
    if m.body_fat_percentage is None:
        d.flags.add("measurement_unsuccessful")
    if m.multiple_packet:
        d.flags.add("multi_packet")
    d.decimal("body_fat", m.body_fat_percentage)
    d.decimal("basal_metabolism", m.basal_metabolism)
    d.decimal("muscle_percentage", m.muscle_percentage)
    d.decimal("muscle_mass", m.muscle_mass, mass)
    d.decimal("fat_free_mass", m.fat_free_mass, mass)
    d.decimal("soft_lean_mass", m.soft_lean_mass, mass)
    d.decimal("body_water_mass", m.body_water_mass, mass)
    d.decimal("impedance", m.impedance)
    d.decimal("body_weight", m.weight, mass)
    d.decimal("height", m.height, inches_to_m if imperial else _same)
    d.identity.append(["user", m.user_id])
    return d


_MI_TO_KG: dict[MiScaleUnit, Callable[[Decimal], Decimal]] = {
    MiScaleUnit.KG: _same,
    MiScaleUnit.LB: lb_to_kg,
    MiScaleUnit.JIN: jin_to_kg,
}


def _mi_flags(d: _Draft, stabilized: bool, removed: bool) -> None:
    if not stabilized:
        d.flags.add("not_stabilized")
    if removed:
        d.flags.add("weight_removed")


def _mi_scale(data: bytes) -> _Draft:
    m = MiScaleMeasurement.from_bytes(data)
    d = _Draft("body_weight", m.timestamp, measured_at=m.timestamp.to_datetime())
    d.unit = m.unit.name.lower()
    d.decimal("body_weight", m.weight, _MI_TO_KG[m.unit])
    _mi_flags(d, m.stabilized, m.weight_removed)
    return d


def _mi_body_composition_scale(data: bytes) -> _Draft:
    m = MiBodyCompositionScaleMeasurement.from_bytes(data)
    d = _Draft("body_composition", m.timestamp, measured_at=m.timestamp.to_datetime())
    d.unit = m.unit.name.lower()
    d.decimal("body_weight", m.weight, _MI_TO_KG[m.unit])
    identity = list(d.identity)  # the weighing: weight only (impedance comes later)
    if m.impedance_stabilized:
        d.decimal("impedance", Decimal(m.impedance))
    d.identity = identity
    _mi_flags(d, m.stabilized, m.weight_removed)
    return d


_C = GattCharacteristic

#: measurement characteristic / service-data UUID → the device type that sends it, converter
_MEASUREMENTS: dict[str, tuple[str, Callable[[bytes], _Draft]]] = {
    _C.BLOOD_PRESSURE_MEASUREMENT.short: ("blood_pressure_monitor", _blood_pressure),
    _C.GLUCOSE_MEASUREMENT.short: ("glucose_meter", _glucose),
    _C.WEIGHT_MEASUREMENT.short: ("weight_scale", _weight),
    _C.BODY_COMPOSITION_MEASUREMENT.short: ("body_composition_scale", _body_composition),
    GattService.WEIGHT_SCALE.short: ("weight_scale", _mi_scale),
    GattService.BODY_COMPOSITION.short: ("body_composition_scale", _mi_body_composition_scale),
}

#: the characteristics and service-data UUIDs that make canonical readings
MEASUREMENT_CHARACTERISTICS: tuple[str, ...] = tuple(_MEASUREMENTS)

#: characteristic / service-data UUID → the device type that sends it (used by the CLI)
DEVICE_TYPE_BY_CHARACTERISTIC: dict[str, str] = {
    uuid: device_type for uuid, (device_type, _) in _MEASUREMENTS.items()
}


def _clock_flags(d: _Draft) -> set[str]:
    if d.timestamp is None:
        return {"device_clock_unset"}
    if d.measured_at is None:
        return {"device_clock_unset", "device_clock_reset"}
    if d.measured_at < CLOCK_RESET_BEFORE:
        return {"device_clock_reset"}
    return set()


def _reading_id(
    device: DeviceIdentity, uuid16: str, d: _Draft, data: bytes, received_at: datetime
) -> uuid.UUID:
    name: list[object] = ["carebeacon.reading/1", device.id, uuid16]
    if d.sequence is not None and d.timestamp is not None:
        name += ["sequence", d.timestamp.isoformat(), *d.identity]
    elif d.timestamp is not None and d.timestamp.date_known:
        name += ["timestamp", d.timestamp.isoformat(), *d.identity]
    else:
        name += ["received", bytes(data).hex(), received_at.isoformat()]
    return uuid.uuid5(READING_NAMESPACE, json.dumps(name, separators=(",", ":")))


def canonical_reading(
    characteristic: str, data: bytes, device: DeviceIdentity, received_at: datetime
) -> CanonicalReading:
    """Decode ``data`` from ``characteristic`` (a measurement or Mi Scale service data) into a
    canonical reading. Raises :class:`~devices.errors.ParseError` (including
    :class:`~devices.errors.UnsupportedCharacteristic`) for bytes it cannot turn into one."""
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware (the gateway's UTC clock)")
    uuid16 = normalize_uuid(characteristic)
    measurement = _MEASUREMENTS.get(uuid16)
    if measurement is None:
        raise UnsupportedCharacteristic(uuid16, len(data))
    d = measurement[1](bytes(data))
    received = received_at.astimezone(UTC)
    flags = d.flags | _clock_flags(d)
    raw = {"characteristic": uuid16, "hex": bytes(data).hex()}
    if d.unit is not None:
        raw["unit"] = d.unit
    return CanonicalReading(
        id=_reading_id(device, uuid16, d, data, received),
        device=device,
        type=d.type,
        measured_at=d.measured_at,
        received_at=received,
        sequence=d.sequence,
        user_index=d.user_index,
        values=tuple(d.values),
        flags=tuple(sorted(flags)),
        raw=raw,
    )


def _context_flag(field_name: str, value: object) -> str | None:
    name = getattr(value, "name", None)
    if name == "NOT_AVAILABLE":
        return None
    flag = f"{field_name}:{name.lower()}" if isinstance(name, str) else f"{field_name}:reserved"
    return flag if flag in _CONTEXT_FLAGS else f"{field_name}:reserved"


def with_glucose_context(reading: CanonicalReading, context: bytes) -> CanonicalReading:
    """The glucose ``reading`` with its Glucose Measurement Context (0x2A34) merged in.

    Flags: ``meal:<preprandial|postprandial|fasting|casual|bedtime>``,
    ``tester:<self|health_care_professional|lab_test>``, ``health:<…>`` (the
    :class:`~devices.glucose.Health` names), ``carbohydrate:<breakfast|…>``,
    ``medication:<rapid_acting_insulin|…>``; ``<field>:reserved`` for a reserved value; no flag
    for "not available". Values: ``carbohydrate`` g (sent in kg), ``exercise_duration`` s
    (65535 = overrun: flag ``exercise_duration_overrun``, no value), ``exercise_intensity`` %,
    ``medication`` mg (sent in kg) or ``medication_volume`` mL (sent in L), ``hba1c`` %.
    ``raw["context_hex"]`` keeps the bytes. The id is the measurement's (unchanged).

    Raises :class:`~devices.errors.ParseError` for bytes that are no context, ``ValueError``
    when the reading is not a glucose reading or the sequence numbers differ.
    """
    parsed = GlucoseMeasurementContext.from_bytes(context)
    if reading.type != "glucose" or reading.sequence != parsed.sequence_number:
        raise ValueError("a glucose context merges only into the glucose reading it numbers")
    d = _Draft("glucose", None)
    coded = {
        "carbohydrate": parsed.carbohydrate_id,
        "meal": parsed.meal,
        "tester": parsed.tester,
        "health": parsed.health,
        "medication": parsed.medication_id,
    }
    for field_name, code in coded.items():
        flag = None if code is None else _context_flag(field_name, code)
        if flag is not None:
            d.flags.add(flag)
    if parsed.carbohydrate is not None:
        d.number("carbohydrate", parsed.carbohydrate, lambda kg: exact_scale(kg, G_PER_KG))
    if parsed.exercise_duration is not None:
        if parsed.exercise_duration == 0xFFFF:
            d.flags.add("exercise_duration_overrun")
        else:
            d.values.append(
                Value(
                    "exercise_duration",
                    Decimal(parsed.exercise_duration),
                    UNITS["exercise_duration"],
                )
            )
    if parsed.exercise_intensity is not None:
        d.values.append(
            Value(
                "exercise_intensity",
                Decimal(parsed.exercise_intensity),
                UNITS["exercise_intensity"],
            )
        )
    if parsed.medication is not None:
        if parsed.medication_unit == MedicationUnit.LITRES:
            d.number(
                "medication_volume", parsed.medication, lambda litres: exact_scale(litres, ML_PER_L)
            )
        else:
            d.number("medication", parsed.medication, lambda kg: exact_scale(kg, MG_PER_KG))
    if parsed.hba1c is not None:
        d.number("hba1c", parsed.hba1c, _same)
    present = {v.code for v in reading.values}
    values: list[Value] = []
    for number in d.values:
        low, high = CONTEXT_RANGES[number.code]
        if not low <= number.value <= high:
            d.flags.add(f"{number.code}_out_of_range")
        elif number.code not in present:
            values.append(number)
    return dataclasses.replace(
        reading,
        values=reading.values + tuple(values),
        flags=tuple(sorted(set(reading.flags) | d.flags)),
        raw={**reading.raw, "context_hex": bytes(context).hex()},
    )
