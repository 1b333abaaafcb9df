"""Hex vectors, each with its source, compared against the WHOLE decoded object; each vector
also re-encodes to the same bytes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from devices import (
    AdjustReason,
    BatteryLevel,
    BloodPressureFeature,
    BloodPressureFeatureBits,
    BloodPressureMeasurement,
    BodyCompositionFeature,
    BodyCompositionFeatureBits,
    BodyCompositionMeasurement,
    CarbohydrateId,
    ConcentrationUnit,
    CurrentTime,
    DateTime,
    DayOfWeek,
    DeviceInformationString,
    FilterType,
    GlucoseFeature,
    GlucoseFeatureBits,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseTester,
    GlucoseType,
    Health,
    HeightResolution,
    IntermediateCuffPressure,
    MassUnit,
    Meal,
    MeasurementStatus,
    MeasurementStatusBits,
    MedicationId,
    MedicationUnit,
    MiBodyCompositionScaleControl,
    MiBodyCompositionScaleMeasurement,
    MiScaleControl,
    MiScaleMeasurement,
    MiScaleUnit,
    PressureUnit,
    PulseRateRange,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
    RecordAccessControlPoint,
    SampleLocation,
    SensorStatus,
    SpecialValue,
    SystemId,
    WeightResolution,
    WeightScaleFeature,
    WeightScaleFeatureBits,
    WeightScaleMeasurement,
    decode,
)

D = Decimal
APRIL_17_NO_YEAR = DateTime(0, 4, 17, 20, 41, 59)
ALL_BP_STATUS = MeasurementStatus(
    MeasurementStatusBits.BODY_MOVEMENT
    | MeasurementStatusBits.CUFF_TOO_LOOSE
    | MeasurementStatusBits.IRREGULAR_PULSE
    | MeasurementStatusBits.IMPROPER_POSITION,
    PulseRateRange.WITHIN_RANGE,
)

VECTORS: list[tuple[str, str, object]] = [
    # --- Nordic Android-BLE-Common-Library, BloodPressureMeasurementDataCallbackTest ---
    (
        "2a35",
        "1e8a00580078000000041114293b3c00012700",  # _full: mmHg, year 0, pulse, user 1, status
        BloodPressureMeasurement(
            D(138), D(88), D(120), PressureUnit.MMHG, APRIL_17_NO_YEAR, D(60), 1, ALL_BP_STATUS
        ),
    ),
    (
        "2a35",
        "15bdf00b009ff03c001200",  # _some: kPa, pulse, status (cuff loose, pulse below range)
        BloodPressureMeasurement(
            D("18.9"),
            D(11),
            D("15.9"),
            PressureUnit.KPA,
            pulse_rate=D(60),
            status=MeasurementStatus(
                MeasurementStatusBits.CUFF_TOO_LOOSE, PulseRateRange.BELOW_LOWER_LIMIT
            ),
        ),
    ),
    (
        "2a35",
        "00bdf00b009ff0",  # _minimal
        BloodPressureMeasurement(D("18.9"), D(11), D("15.9")),
    ),
    # --- Nordic IntermediateCuffPressureDataCallbackTest (diastolic/MAP fields sent as 0) ---
    (
        "2a36",
        "1e0400000000000000041114293b3c00012700",  # _full
        IntermediateCuffPressure(
            D(4), PressureUnit.MMHG, APRIL_17_NO_YEAR, D(60), 1, ALL_BP_STATUS, D(0), D(0)
        ),
    ),
    (
        "2a36",
        "156ff0000000003c001200",  # _some: kPa
        IntermediateCuffPressure(
            D("11.1"),
            PressureUnit.KPA,
            pulse_rate=D(60),
            status=MeasurementStatus(
                MeasurementStatusBits.CUFF_TOO_LOOSE, PulseRateRange.BELOW_LOWER_LIMIT
            ),
            diastolic=D(0),
            mean_arterial_pressure=D(0),
        ),
    ),
    # BLS 1.0 section 3.2: ICP carries NaN (0x07FF) in diastolic and MAP (hand-assembled)
    (
        "2a36",
        "00d700ff07ff07",
        IntermediateCuffPressure(D(215)),
    ),
    # hand-assembled, GATT Specification Supplement 0x2A35: reserved flag bit 7 and reserved
    # status bit 14 are kept, pulse-rate range = 3 (reserved), trailing byte kept
    (
        "2a35",
        "908a00580078001840aa",
        BloodPressureMeasurement(
            D(138),
            D(88),
            D(120),
            status=MeasurementStatus(MeasurementStatusBits(0x4000), PulseRateRange.RESERVED),
            reserved_flags=0x80,
            extra=b"\xaa",
        ),
    ),
    # hand-assembled: NaN systolic, NRes diastolic, +INF MAP, -INF pulse
    (
        "2a35",
        "04ff070008fe070208",
        BloodPressureMeasurement(
            SpecialValue.NAN,
            SpecialValue.NRES,
            SpecialValue.POSITIVE_INFINITY,
            pulse_rate=SpecialValue.NEGATIVE_INFINITY,
        ),
    ),
    # hand-assembled BP Feature: the six BLS 1.0 bits + bit 9, unassigned (kept)
    (
        "2a49",
        "3f02",
        BloodPressureFeature(BloodPressureFeatureBits(0x023F)),
    ),
    # --- Nordic GlucoseMeasurementDataCallbackTest ---
    (
        "2a18",
        "1b0100e307021b0b0a1efbff1e00120501",
        GlucoseMeasurement(
            1,
            DateTime(2019, 2, 27, 11, 10, 30),
            -5,
            D(30),
            ConcentrationUnit.KG_PER_L,
            GlucoseType.CAPILLARY_PLASMA,  # low nibble 2
            SampleLocation.FINGER,  # high nibble 1
            SensorStatus.DEVICE_BATTERY_LOW
            | SensorStatus.SAMPLE_SIZE_INSUFFICIENT
            | SensorStatus.SENSOR_TEMPERATURE_TOO_LOW,
            context_follows=True,
        ),
    ),
    # hand-assembled (GLS 1.0 layout): mol/L, 5.5 mmol/L = 55e-4 mol/L, control solution
    # type 0xA at location 4, status bit 5 (result too high) and bit 6 (too low)
    (
        "2a18",
        "0e2a00e8070c1f173b0037c04a6000",
        GlucoseMeasurement(
            42,
            DateTime(2024, 12, 31, 23, 59, 0),
            concentration=D("0.0055"),
            unit=ConcentrationUnit.MOL_PER_L,
            type=GlucoseType.CONTROL_SOLUTION,
            sample_location=SampleLocation.CONTROL_SOLUTION,
            sensor_status=SensorStatus.RESULT_TOO_HIGH | SensorStatus.RESULT_TOO_LOW,
        ),
    ),
    # Nordic GlucoseMeasurementContextDataCallbackTest _full fields (flags 0xFF, extended
    # 0xB3, dinner, casual, HCP/minor issues, 60 s at 50 %, long acting insulin, HbA1c);
    # amounts hand-encoded: 100 kg carbohydrate, 123.4 L medication, 34.5 % HbA1c
    (
        "2a34",
        "ff0000b30364000412" + "3c0032" + "04d2f4" + "59f1",
        GlucoseMeasurementContext(
            0,
            0xB3,
            CarbohydrateId.DINNER,
            D(100),
            Meal.CASUAL,
            GlucoseTester.HEALTH_CARE_PROFESSIONAL,  # low nibble 2
            Health.MINOR_HEALTH_ISSUES,  # high nibble 1
            60,
            50,
            MedicationId.LONG_ACTING_INSULIN,
            D("123.4"),
            MedicationUnit.LITRES,
            D("34.5"),
        ),
    ),
    # Nordic ..._empty: flags 0, sequence 1
    ("2a34", "000100", GlucoseMeasurementContext(1)),
    # Nordic GlucoseFeatureDataCallbackTest: bits 4-9
    (
        "2a51",
        "f003",
        GlucoseFeature(
            GlucoseFeatureBits.SENSOR_STRIP_TYPE_ERROR_DETECTION
            | GlucoseFeatureBits.SENSOR_RESULT_HIGH_LOW_DETECTION
            | GlucoseFeatureBits.SENSOR_TEMPERATURE_HIGH_LOW_DETECTION
            | GlucoseFeatureBits.SENSOR_READ_INTERRUPT_DETECTION
            | GlucoseFeatureBits.GENERAL_DEVICE_FAULT
            | GlucoseFeatureBits.TIME_FAULT
        ),
    ),
    # --- Nordic RecordAccessControlPointDataCallbackTest ---
    (
        "2a52",
        "06000101",  # success for "report stored records"
        RecordAccessControlPoint(
            RacpOpCode.RESPONSE_CODE,
            request_op_code=RacpOpCode.REPORT_STORED_RECORDS,
            response_code=RacpResponseCode.SUCCESS,
        ),
    ),
    (
        "2a52",
        "06000c02",  # op code 12 not supported (12 kept as a reserved op code)
        RecordAccessControlPoint(
            RacpOpCode.RESPONSE_CODE,
            request_op_code=RacpOpCode(12),
            response_code=RacpResponseCode.OP_CODE_NOT_SUPPORTED,
        ),
    ),
    (
        "2a52",
        "06000106",  # no records found
        RecordAccessControlPoint(
            RacpOpCode.RESPONSE_CODE,
            request_op_code=RacpOpCode.REPORT_STORED_RECORDS,
            response_code=RacpResponseCode.NO_RECORDS_FOUND,
        ),
    ),
    (
        "2a52",
        "05000201",  # _uint16: 258 records
        RecordAccessControlPoint(
            RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, number_of_records=258
        ),
    ),
    # hand-assembled requests (GLS 1.0 RACP)
    (
        "2a52",
        "0101",
        RecordAccessControlPoint(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS),
    ),
    (
        "2a52",
        "0401",
        RecordAccessControlPoint(
            RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS, RacpOperator.ALL_RECORDS
        ),
    ),
    ("2a52", "0300", RecordAccessControlPoint(RacpOpCode.ABORT_OPERATION)),
    (
        "2a52",
        "0106",
        RecordAccessControlPoint(RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.LAST_RECORD),
    ),
    (
        "2a52",
        "0103012a00",  # report records with sequence >= 42
        RecordAccessControlPoint(
            RacpOpCode.REPORT_STORED_RECORDS,
            RacpOperator.GREATER_THAN_OR_EQUAL,
            FilterType.SEQUENCE_NUMBER,
            minimum=42,
        ),
    ),
    (
        "2a52",
        "0204010a001400",  # delete records 10..20
        RecordAccessControlPoint(
            RacpOpCode.DELETE_STORED_RECORDS,
            RacpOperator.WITHIN_RANGE,
            FilterType.SEQUENCE_NUMBER,
            10,
            20,
        ),
    ),
    (
        "2a52",
        "010402e8070101000000e8070c1f173b3b",  # user facing time range, all of 2024
        RecordAccessControlPoint(
            RacpOpCode.REPORT_STORED_RECORDS,
            RacpOperator.WITHIN_RANGE,
            FilterType.USER_FACING_TIME,
            DateTime(2024, 1, 1, 0, 0, 0),
            DateTime(2024, 12, 31, 23, 59, 59),
        ),
    ),
    (
        "2a52",
        "010202e8070c1f173b3b",  # records with user facing time <= 2024-12-31 23:59:59
        RecordAccessControlPoint(
            RacpOpCode.REPORT_STORED_RECORDS,
            RacpOperator.LESS_THAN_OR_EQUAL,
            FilterType.USER_FACING_TIME,
            maximum=DateTime(2024, 12, 31, 23, 59, 59),
        ),
    ),
    # --- weight scale: hand-assembled from the GATT Specification Supplement layout ---
    (
        "2a9d",
        "0e" + "e443" + "e8070c1f173b00" + "02" + "f500" + "e406",  # SI, all fields
        WeightScaleMeasurement(
            D("86.900"),  # 17380 x 0.005 kg
            MassUnit.SI,
            DateTime(2024, 12, 31, 23, 59, 0),
            2,
            D("24.5"),
            D("1.764"),
        ),
    ),
    (
        "2a9d",
        "09" + "564a" + "f500" + "bc02",  # imperial: 190.30 lb, BMI 24.5, 70.0 in
        WeightScaleMeasurement(D("190.30"), MassUnit.IMPERIAL, bmi=D("24.5"), height=D("70.0")),
    ),
    ("2a9d", "00ffff", WeightScaleMeasurement(None)),  # 0xFFFF = measurement unsuccessful
    (
        "2a9e",
        "bf010000",  # time stamp, multi-user, BMI; weight res 7 (0.005 kg); height res 3
        WeightScaleFeature(
            WeightScaleFeatureBits.TIME_STAMP
            | WeightScaleFeatureBits.MULTIPLE_USERS
            | WeightScaleFeatureBits.BMI,
            WeightResolution.KG_0_005_OR_LB_0_01,
            HeightResolution.M_0_001_OR_IN_0_1,
        ),
    ),
    # --- body composition: hand-assembled from the GATT Specification Supplement layout ---
    (
        "2a9c",
        "fe1f"
        + "fa00"
        + "e8070c1f173b00"
        + "01"
        + "4c1d"
        + "6e01"
        + "ec1d"
        + "d836"
        + "9033"
        + "8228"
        + "1c11"
        + "e443"
        + "e406",
        BodyCompositionMeasurement(
            D("25.0"),
            MassUnit.SI,
            DateTime(2024, 12, 31, 23, 59, 0),
            1,
            basal_metabolism=D(7500),
            muscle_percentage=D("36.6"),
            muscle_mass=D("38.300"),
            fat_free_mass=D("70.200"),
            soft_lean_mass=D("66.000"),
            body_water_mass=D("51.850"),
            impedance=D("438.0"),
            weight=D("86.900"),
            height=D("1.764"),
            multiple_packet=True,
        ),
    ),
    ("2a9c", "0000ffff", BodyCompositionMeasurement(None)),
    (
        "2a9b",
        "ffbf0100",  # all 11 field bits, mass resolution 7 (0.005 kg), height resolution 3
        BodyCompositionFeature(
            BodyCompositionFeatureBits(0x7FF),
            WeightResolution.KG_0_005_OR_LB_0_01,
            HeightResolution.M_0_001_OR_IN_0_1,
        ),
    ),
    # --- Device Information, battery, time (hand-assembled) ---
    ("2a19", "64", BatteryLevel(100)),
    ("2a29", "4f6d726f6e", DeviceInformationString("2a29", "Omron")),
    ("2a23", "0102030405a1b2c3", SystemId(0x0504030201, 0xC3B2A1)),
    (
        "2a2b",
        "e8070c1f173b3b0280" + "03",  # Tuesday, 128/256 s, manual + external update
        CurrentTime(
            DateTime(2024, 12, 31, 23, 59, 59),
            DayOfWeek.TUESDAY,
            128,
            AdjustReason.MANUAL_TIME_UPDATE | AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE,
        ),
    ),
    # --- xiaomi-ble tests/test_parser.py ---
    (
        "181d",
        "229e43e507040b101301",  # test_Xiaomi_Scale1: 86.55 kg, stabilized
        MiScaleMeasurement(MiScaleControl(0x22), D("86.55"), DateTime(2021, 4, 11, 16, 19, 1)),
    ),
    (
        "181d",
        "a22044b20701010a1a15",  # test_Xiaomi_Scale1_mass_removed: 87.2 kg, clock at 1970
        MiScaleMeasurement(MiScaleControl(0xA2), D("87.2"), DateTime(1970, 1, 1, 10, 26, 21)),
    ),
    (
        "181d",
        "821400e507040b101708",  # test_Xiaomi_Scale1_non_stabilized: 0.1 kg
        MiScaleMeasurement(MiScaleControl(0x82), D("0.1"), DateTime(2021, 4, 11, 16, 23, 8)),
    ),
    (
        "181b",
        "0226b20705040f0201ac018642",  # test_Xiaomi_Scale2: 85.15 kg, impedance 428
        MiBodyCompositionScaleMeasurement(
            MiBodyCompositionScaleControl(0x2602),
            DateTime(1970, 5, 4, 15, 2, 1),
            428,
            D("85.15"),
        ),
    ),
    (
        "181b",
        "0204b207010112101a0000a852",  # test_Xiaomi_Scale2_non_stabilized
        MiBodyCompositionScaleMeasurement(
            MiBodyCompositionScaleControl(0x0402),
            DateTime(1970, 1, 1, 18, 16, 26),
            0,
            D("105.8"),
        ),
    ),
]


@pytest.mark.parametrize(
    ("characteristic", "hex_", "expected"),
    VECTORS,
    ids=[f"{c}-{h[:24]}" for c, h, _ in VECTORS],
)
def test_vector_decodes_to_the_whole_object(
    characteristic: str, hex_: str, expected: object
) -> None:
    assert decode(characteristic, bytes.fromhex(hex_)) == expected


@pytest.mark.parametrize(
    ("characteristic", "hex_", "expected"),
    VECTORS,
    ids=[f"{c}-{h[:24]}" for c, h, _ in VECTORS],
)
def test_vector_encodes_to_the_same_bytes(characteristic: str, hex_: str, expected: object) -> None:
    assert bytes(expected) == bytes.fromhex(hex_)  # type: ignore[call-overload]


def test_nordic_glucose_time_offset_is_signed_minutes() -> None:
    # Nordic GlucoseMeasurementDataCallbackTest: base 11:10:30, offset -5 min → 11:05:30
    m = decode("2a18", bytes.fromhex("1b0100e307021b0b0a1efbff1e00120501"))
    assert isinstance(m, GlucoseMeasurement)
    assert m.measured_at() is not None
    assert str(m.measured_at()) == "2019-02-27 11:05:30"


def test_mi_scale_units_and_states() -> None:
    v1 = decode("181d", bytes.fromhex("a22044b20701010a1a15"))
    assert isinstance(v1, MiScaleMeasurement)
    assert (v1.unit, v1.stabilized, v1.weight_removed) == (MiScaleUnit.KG, True, True)
    v2 = decode("181b", bytes.fromhex("0226b20705040f0201ac018642"))
    assert isinstance(v2, MiBodyCompositionScaleMeasurement)
    assert (v2.unit, v2.stabilized, v2.weight_removed, v2.impedance_stabilized) == (
        MiScaleUnit.KG,
        True,
        False,
        True,
    )
    lb = decode("181d", bytes.fromhex("23564ae507040b101301"))  # lb bit: 190.30 lb
    assert isinstance(lb, MiScaleMeasurement)
    assert (lb.unit, lb.weight) == (MiScaleUnit.LB, D("190.30"))
