"""Glucose service (0x1808): Measurement 0x2A18, Measurement Context 0x2A34, Feature 0x2A51
(Bluetooth SIG Glucose Service 1.0 / GATT Specification Supplement).

Measurement layout (little-endian)::

    flags             uint8    bit 0 time offset, 1 concentration + type/location,
                               2 concentration units (0 kg/L, 1 mol/L), 3 sensor status
                               annunciation, 4 context information follows, 5-7 reserved
    sequence number   uint16
    base time         7 bytes
    time offset       sint16   minutes, if bit 0 (measurement time = base time + offset)
    concentration     SFLOAT   kg/L or mol/L, if bit 1
    type / location   uint8    if bit 1: type = LOW nibble, sample location = HIGH nibble
    sensor status     uint16   if bit 3: bit 5 result too HIGH, bit 6 result too LOW, ...

Context layout::

    flags             uint8    bit 0 carbohydrate id + carbohydrate (kg), 1 meal,
                               2 tester/health, 3 exercise duration + intensity,
                               4 medication id + medication, 5 medication units
                               (0 kilograms, 1 litres), 6 HbA1c, 7 extended flags
    sequence number   uint16
    extended flags    uint8    if bit 7
    carbohydrate id   uint8  + carbohydrate SFLOAT   if bit 0
    meal              uint8    if bit 1
    tester / health   uint8    if bit 2: tester = LOW nibble, health = HIGH nibble
    exercise duration uint16 (s; 65535 = overrun) + intensity uint8 (%)  if bit 3
    medication id     uint8  + medication SFLOAT    if bit 4
    HbA1c             SFLOAT   (%) if bit 6
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, IntFlag
from typing import Self

from devices._codec import SINT16, UINT8, UINT16, check_length, check_sint, check_uint, read_uint
from devices._enum import OpenIntEnum
from devices.date_time import DateTime
from devices.errors import EncodeError
from devices.ieee11073 import Number, sfloat_from_raw, sfloat_to_raw

__all__ = [
    "CarbohydrateId",
    "ConcentrationUnit",
    "GlucoseFeature",
    "GlucoseFeatureBits",
    "GlucoseMeasurement",
    "GlucoseMeasurementContext",
    "GlucoseMeasurementContextFlags",
    "GlucoseMeasurementFlags",
    "GlucoseTester",
    "GlucoseType",
    "Health",
    "Meal",
    "MedicationId",
    "MedicationUnit",
    "SampleLocation",
    "SensorStatus",
    "parse_glucose_feature",
    "parse_glucose_measurement",
    "parse_glucose_measurement_context",
]

_SFLOAT = UINT16


class GlucoseMeasurementFlags(IntFlag):
    TIME_OFFSET_PRESENT = 0x01
    CONCENTRATION_PRESENT = 0x02
    UNITS_MOL_PER_L = 0x04
    SENSOR_STATUS_PRESENT = 0x08
    CONTEXT_FOLLOWS = 0x10


_KNOWN_MEASUREMENT_FLAGS = 0x1F


class ConcentrationUnit(IntEnum):
    KG_PER_L = 0
    MOL_PER_L = 1


class GlucoseType(OpenIntEnum):
    """Low nibble of the Type-Sample Location field."""

    CAPILLARY_WHOLE_BLOOD = 0x1
    CAPILLARY_PLASMA = 0x2
    VENOUS_WHOLE_BLOOD = 0x3
    VENOUS_PLASMA = 0x4
    ARTERIAL_WHOLE_BLOOD = 0x5
    ARTERIAL_PLASMA = 0x6
    UNDETERMINED_WHOLE_BLOOD = 0x7
    UNDETERMINED_PLASMA = 0x8
    INTERSTITIAL_FLUID = 0x9
    CONTROL_SOLUTION = 0xA


class SampleLocation(OpenIntEnum):
    """High nibble of the Type-Sample Location field."""

    FINGER = 0x1
    ALTERNATE_SITE_TEST = 0x2
    EARLOBE = 0x3
    CONTROL_SOLUTION = 0x4
    NOT_AVAILABLE = 0xF


class SensorStatus(IntFlag):
    """Sensor Status Annunciation (uint16); unknown bits are kept."""

    DEVICE_BATTERY_LOW = 1 << 0
    SENSOR_MALFUNCTION = 1 << 1
    SAMPLE_SIZE_INSUFFICIENT = 1 << 2
    STRIP_INSERTION_ERROR = 1 << 3
    STRIP_TYPE_INCORRECT = 1 << 4
    RESULT_TOO_HIGH = 1 << 5
    RESULT_TOO_LOW = 1 << 6
    SENSOR_TEMPERATURE_TOO_HIGH = 1 << 7
    SENSOR_TEMPERATURE_TOO_LOW = 1 << 8
    SENSOR_READ_INTERRUPTED = 1 << 9
    GENERAL_DEVICE_FAULT = 1 << 10
    TIME_FAULT = 1 << 11


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """Glucose Measurement (0x2A18).

    ``concentration`` (in ``unit``), ``type`` and ``sample_location`` are present together or
    absent together (one flag bit). ``unit`` is the flag bit as sent even without a value.
    """

    sequence_number: int
    base_time: DateTime
    time_offset: int | None = None
    concentration: Number | None = None
    unit: ConcentrationUnit = ConcentrationUnit.KG_PER_L
    type: GlucoseType | None = None
    sample_location: SampleLocation | None = None
    sensor_status: SensorStatus | None = None
    context_follows: bool = False
    reserved_flags: int = 0
    extra: bytes = b""

    WHAT = "glucose measurement (0x2A18)"

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, 1, cls.WHAT)
        flags = data[0]
        required = 3 + DateTime.SIZE
        if flags & GlucoseMeasurementFlags.TIME_OFFSET_PRESENT:
            required += SINT16.size
        if flags & GlucoseMeasurementFlags.CONCENTRATION_PRESENT:
            required += _SFLOAT.size + UINT8.size
        if flags & GlucoseMeasurementFlags.SENSOR_STATUS_PRESENT:
            required += UINT16.size
        check_length(data, required, cls.WHAT, flags)
        sequence = UINT16.unpack_from(data, 1)[0]
        base_time = DateTime.from_bytes(data, 3)
        offset = 3 + DateTime.SIZE
        time_offset = concentration = glucose_type = location = status = None
        if flags & GlucoseMeasurementFlags.TIME_OFFSET_PRESENT:
            time_offset = SINT16.unpack_from(data, offset)[0]
            offset += SINT16.size
        if flags & GlucoseMeasurementFlags.CONCENTRATION_PRESENT:
            concentration = sfloat_from_raw(_SFLOAT.unpack_from(data, offset)[0])
            type_location = data[offset + 2]
            glucose_type = GlucoseType(type_location & 0x0F)
            location = SampleLocation(type_location >> 4)
            offset += 3
        if flags & GlucoseMeasurementFlags.SENSOR_STATUS_PRESENT:
            status = SensorStatus(UINT16.unpack_from(data, offset)[0])
            offset += UINT16.size
        return cls(
            sequence,
            base_time,
            time_offset,
            concentration,
            ConcentrationUnit((flags >> 2) & 1),
            glucose_type,
            location,
            status,
            bool(flags & GlucoseMeasurementFlags.CONTEXT_FOLLOWS),
            flags & ~_KNOWN_MEASUREMENT_FLAGS,
            bytes(data[offset:]),
        )

    def __bytes__(self) -> bytes:
        if self.reserved_flags & _KNOWN_MEASUREMENT_FLAGS or not 0 <= self.reserved_flags <= 0xFF:
            raise EncodeError("reserved_flags must only hold the reserved bits 5-7")
        flags = self.reserved_flags | (int(self.unit) << 2)
        if self.context_follows:
            flags |= GlucoseMeasurementFlags.CONTEXT_FOLLOWS
        tail = b""
        if self.time_offset is not None:
            flags |= GlucoseMeasurementFlags.TIME_OFFSET_PRESENT
            tail += SINT16.pack(check_sint(self.time_offset, 16, "time offset"))
        present = (self.concentration, self.type, self.sample_location)
        if any(part is not None for part in present):
            if self.concentration is None or self.type is None or self.sample_location is None:
                raise EncodeError("concentration, type and sample location go together")
            flags |= GlucoseMeasurementFlags.CONCENTRATION_PRESENT
            nibbles = check_uint(int(self.type), 4, "type") | (
                check_uint(int(self.sample_location), 4, "sample location") << 4
            )
            tail += _SFLOAT.pack(sfloat_to_raw(self.concentration)) + UINT8.pack(nibbles)
        if self.sensor_status is not None:
            flags |= GlucoseMeasurementFlags.SENSOR_STATUS_PRESENT
            tail += UINT16.pack(check_uint(int(self.sensor_status), 16, "sensor status"))
        head = UINT8.pack(flags) + UINT16.pack(check_uint(self.sequence_number, 16, "sequence"))
        return head + bytes(self.base_time) + tail + self.extra

    def measured_at(self) -> datetime | None:
        """Base time plus time offset (naive device clock), ``None`` if unknown or invalid."""
        base = self.base_time.to_datetime()
        if base is None:
            return None
        try:
            return base + timedelta(minutes=self.time_offset or 0)
        except OverflowError:
            return None


class GlucoseMeasurementContextFlags(IntFlag):
    CARBOHYDRATE_PRESENT = 0x01
    MEAL_PRESENT = 0x02
    TESTER_HEALTH_PRESENT = 0x04
    EXERCISE_PRESENT = 0x08
    MEDICATION_PRESENT = 0x10
    MEDICATION_UNITS_LITRES = 0x20
    HBA1C_PRESENT = 0x40
    EXTENDED_FLAGS_PRESENT = 0x80


class CarbohydrateId(OpenIntEnum):
    BREAKFAST = 1
    LUNCH = 2
    DINNER = 3
    SNACK = 4
    DRINK = 5
    SUPPER = 6
    BRUNCH = 7


class Meal(OpenIntEnum):
    PREPRANDIAL = 1
    POSTPRANDIAL = 2
    FASTING = 3
    CASUAL = 4
    BEDTIME = 5


class GlucoseTester(OpenIntEnum):
    SELF = 1
    HEALTH_CARE_PROFESSIONAL = 2
    LAB_TEST = 3
    NOT_AVAILABLE = 0xF


class Health(OpenIntEnum):
    MINOR_HEALTH_ISSUES = 1
    MAJOR_HEALTH_ISSUES = 2
    DURING_MENSES = 3
    UNDER_STRESS = 4
    NO_HEALTH_ISSUES = 5
    NOT_AVAILABLE = 0xF


class MedicationId(OpenIntEnum):
    RAPID_ACTING_INSULIN = 1
    SHORT_ACTING_INSULIN = 2
    INTERMEDIATE_ACTING_INSULIN = 3
    LONG_ACTING_INSULIN = 4
    PRE_MIXED_INSULIN = 5


class MedicationUnit(IntEnum):
    KILOGRAMS = 0
    LITRES = 1


@dataclass(frozen=True, slots=True)
class GlucoseMeasurementContext:
    """Glucose Measurement Context (0x2A34); every field but the sequence number is optional.

    Pairs that share a flag bit (carbohydrate id/amount, tester/health, exercise
    duration/intensity, medication id/amount) are both set or both ``None``.
    """

    sequence_number: int
    extended_flags: int | None = None
    carbohydrate_id: CarbohydrateId | None = None
    carbohydrate: Number | None = None  # kilograms
    meal: Meal | None = None
    tester: GlucoseTester | None = None
    health: Health | None = None
    exercise_duration: int | None = None  # seconds, 65535 = overrun
    exercise_intensity: int | None = None  # percent
    medication_id: MedicationId | None = None
    medication: Number | None = None  # in medication_unit
    medication_unit: MedicationUnit = MedicationUnit.KILOGRAMS
    hba1c: Number | None = None  # percent
    extra: bytes = b""

    WHAT = "glucose measurement context (0x2A34)"

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, 1, cls.WHAT)
        flags = data[0]
        f = GlucoseMeasurementContextFlags
        sizes = (
            (f.EXTENDED_FLAGS_PRESENT, 1),
            (f.CARBOHYDRATE_PRESENT, 3),
            (f.MEAL_PRESENT, 1),
            (f.TESTER_HEALTH_PRESENT, 1),
            (f.EXERCISE_PRESENT, 3),
            (f.MEDICATION_PRESENT, 3),
            (f.HBA1C_PRESENT, 2),
        )
        required = 3 + sum(size for bit, size in sizes if flags & bit)
        check_length(data, required, cls.WHAT, flags)
        sequence = UINT16.unpack_from(data, 1)[0]
        offset = 3
        extended = carb_id = carb = meal = tester = health = None
        duration = intensity = med_id = medication = hba1c = None
        if flags & f.EXTENDED_FLAGS_PRESENT:
            extended = data[offset]
            offset += 1
        if flags & f.CARBOHYDRATE_PRESENT:
            carb_id = CarbohydrateId(data[offset])
            carb = sfloat_from_raw(_SFLOAT.unpack_from(data, offset + 1)[0])
            offset += 3
        if flags & f.MEAL_PRESENT:
            meal = Meal(data[offset])
            offset += 1
        if flags & f.TESTER_HEALTH_PRESENT:
            tester = GlucoseTester(data[offset] & 0x0F)
            health = Health(data[offset] >> 4)
            offset += 1
        if flags & f.EXERCISE_PRESENT:
            duration = UINT16.unpack_from(data, offset)[0]
            intensity = data[offset + 2]
            offset += 3
        if flags & f.MEDICATION_PRESENT:
            med_id = MedicationId(data[offset])
            medication = sfloat_from_raw(_SFLOAT.unpack_from(data, offset + 1)[0])
            offset += 3
        if flags & f.HBA1C_PRESENT:
            hba1c = sfloat_from_raw(_SFLOAT.unpack_from(data, offset)[0])
            offset += 2
        unit = (
            MedicationUnit.LITRES if flags & f.MEDICATION_UNITS_LITRES else MedicationUnit.KILOGRAMS
        )
        return cls(
            sequence,
            extended,
            carb_id,
            carb,
            meal,
            tester,
            health,
            duration,
            intensity,
            med_id,
            medication,
            unit,
            hba1c,
            bytes(data[offset:]),
        )

    def __bytes__(self) -> bytes:
        f = GlucoseMeasurementContextFlags
        flags = f.MEDICATION_UNITS_LITRES if self.medication_unit == MedicationUnit.LITRES else 0
        tail = b""

        pairs = (
            (self.carbohydrate_id, self.carbohydrate, "carbohydrate"),
            (self.tester, self.health, "tester/health"),
            (self.exercise_duration, self.exercise_intensity, "exercise"),
            (self.medication_id, self.medication, "medication"),
        )
        for first, second, name in pairs:
            if (first is None) != (second is None):
                raise EncodeError(f"{name}: both parts or neither")
        if self.extended_flags is not None:
            flags |= f.EXTENDED_FLAGS_PRESENT
            tail += UINT8.pack(check_uint(self.extended_flags, 8, "extended flags"))
        if self.carbohydrate_id is not None and self.carbohydrate is not None:
            flags |= f.CARBOHYDRATE_PRESENT
            tail += UINT8.pack(check_uint(int(self.carbohydrate_id), 8, "carbohydrate id"))
            tail += _SFLOAT.pack(sfloat_to_raw(self.carbohydrate))
        if self.meal is not None:
            flags |= f.MEAL_PRESENT
            tail += UINT8.pack(check_uint(int(self.meal), 8, "meal"))
        if self.tester is not None and self.health is not None:
            flags |= f.TESTER_HEALTH_PRESENT
            tail += UINT8.pack(
                check_uint(int(self.tester), 4, "tester")
                | (check_uint(int(self.health), 4, "health") << 4)
            )
        if self.exercise_duration is not None and self.exercise_intensity is not None:
            flags |= f.EXERCISE_PRESENT
            tail += UINT16.pack(check_uint(self.exercise_duration, 16, "exercise duration"))
            tail += UINT8.pack(check_uint(self.exercise_intensity, 8, "exercise intensity"))
        if self.medication_id is not None and self.medication is not None:
            flags |= f.MEDICATION_PRESENT
            tail += UINT8.pack(check_uint(int(self.medication_id), 8, "medication id"))
            tail += _SFLOAT.pack(sfloat_to_raw(self.medication))
        if self.hba1c is not None:
            flags |= f.HBA1C_PRESENT
            tail += _SFLOAT.pack(sfloat_to_raw(self.hba1c))
        sequence = UINT16.pack(check_uint(self.sequence_number, 16, "sequence"))
        return UINT8.pack(flags) + sequence + tail + self.extra


class GlucoseFeatureBits(IntFlag):
    """Glucose Feature (0x2A51), uint16; unknown bits are kept."""

    NONE = 0
    LOW_BATTERY_DETECTION = 1 << 0
    SENSOR_MALFUNCTION_DETECTION = 1 << 1
    SENSOR_SAMPLE_SIZE = 1 << 2
    SENSOR_STRIP_INSERTION_ERROR_DETECTION = 1 << 3
    SENSOR_STRIP_TYPE_ERROR_DETECTION = 1 << 4
    SENSOR_RESULT_HIGH_LOW_DETECTION = 1 << 5
    SENSOR_TEMPERATURE_HIGH_LOW_DETECTION = 1 << 6
    SENSOR_READ_INTERRUPT_DETECTION = 1 << 7
    GENERAL_DEVICE_FAULT = 1 << 8
    TIME_FAULT = 1 << 9
    MULTIPLE_BOND = 1 << 10


@dataclass(frozen=True, slots=True)
class GlucoseFeature:
    features: GlucoseFeatureBits = GlucoseFeatureBits.NONE
    extra: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        value, extra = read_uint(UINT16, data, "glucose feature (0x2A51)")
        return cls(GlucoseFeatureBits(value), extra)

    def __bytes__(self) -> bytes:
        return UINT16.pack(check_uint(int(self.features), 16, "features")) + self.extra


def parse_glucose_measurement(data: bytes) -> GlucoseMeasurement:
    return GlucoseMeasurement.from_bytes(data)


def parse_glucose_measurement_context(data: bytes) -> GlucoseMeasurementContext:
    return GlucoseMeasurementContext.from_bytes(data)


def parse_glucose_feature(data: bytes) -> GlucoseFeature:
    return GlucoseFeature.from_bytes(data)
