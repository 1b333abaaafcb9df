"""The emulated devices serve what the project's codecs (``devices``) expect."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from bleak import BleakClient

from devices import (
    BloodPressureMeasurement,
    CurrentTime,
    DateTime,
    DayOfWeek,
    DeviceIdentity,
    GlucoseMeasurement,
    GlucoseMeasurementContext,
    GlucoseType,
    Meal,
    MiBodyCompositionScaleControl,
    PressureUnit,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
    RecordAccessControlPoint,
    SampleLocation,
    SpecialValue,
    WeightScaleMeasurement,
    canonical_reading,
    parse_blood_pressure_measurement,
    parse_current_time,
    parse_glucose_measurement,
    parse_glucose_measurement_context,
    parse_intermediate_cuff_pressure,
    parse_mi_body_composition_scale,
    parse_record_access_control_point,
    parse_weight_scale_measurement,
)
from devices.uuids import uuid128
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    BumbleClient,
    EmulatedAir,
    Faults,
    GlucoseMeter,
    GlucoseReading,
    MiScale,
    MiScaleModel,
    MiScaleReading,
    PeripheralIdentity,
    WeightReading,
    WeightScale,
)
from tests.support.emulation import Inbox, device_time, find, subscribe

pytestmark = pytest.mark.ble

RACP = uuid128(0x2A52)


async def test_bp_reading_decodes_to_the_configured_values(air: EmulatedAir) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-C1"),
            readings=[
                BloodPressureReading(
                    142, 91, 108, pulse=77, time=device_time(2026, 11, 23, 6, 40), user_id=3
                )
            ],
        )
    )
    inbox = Inbox()
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        await subscribe(client, 0x2A36, inbox)
        await subscribe(client, 0x2A35, inbox)
        _, stored = await inbox.take()
        await cuff.measure(BloodPressureReading(120, 80, 93, time=device_time(2026, 11, 23, 7)))
        live = await inbox.take_many(4)
    assert parse_blood_pressure_measurement(stored) == BloodPressureMeasurement(
        systolic=Decimal(142),
        diastolic=Decimal(91),
        mean_arterial_pressure=Decimal(108),
        timestamp=DateTime(2026, 11, 23, 6, 40, 0),
        pulse_rate=Decimal(77),
        user_id=3,
    )
    cuff_pressures = [parse_intermediate_cuff_pressure(data) for _, data in live[:3]]
    assert [icp.cuff_pressure for icp in cuff_pressures] == [Decimal(40), Decimal(90), Decimal(150)]
    assert all(icp.diastolic is SpecialValue.NAN for icp in cuff_pressures)


async def test_codec_objects_are_sent_as_their_bytes(air: EmulatedAir) -> None:
    measurement = BloodPressureMeasurement(
        systolic=Decimal("17.3"),
        diastolic=Decimal("11.2"),
        mean_arterial_pressure=SpecialValue.NRES,
        unit=PressureUnit.KPA,
        timestamp=DateTime(0, 0, 0),
    )
    cuff = await air.add(
        BloodPressureCuff(PeripheralIdentity(serial="BP-C2"), readings=[measurement])
    )
    inbox = Inbox()
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        await subscribe(client, 0x2A35, inbox)
        _, data = await inbox.take()
    assert data == bytes(measurement)
    assert parse_blood_pressure_measurement(data) == measurement


async def test_clock_reset_cuff_is_flagged_by_the_canonical_reading(air: EmulatedAir) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-C3"),
            readings=[BloodPressureReading(130, 85, pulse=70)],
            faults=Faults(clock_reset=True, kpa_units=True),
        )
    )
    inbox = Inbox()
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        await subscribe(client, 0x2A35, inbox)
        _, data = await inbox.take()
        current_time = parse_current_time(bytes(await client.read_gatt_char(uuid128(0x2A2B))))
    assert current_time.date_time.year == 2000
    reading = canonical_reading(
        "2a35",
        data,
        DeviceIdentity(id="BP-C3", type="blood_pressure_monitor"),
        datetime.now(UTC),
    )
    assert reading.measured_at == device_time(2000, 1, 1)
    assert "device_clock_reset" in reading.flags
    assert reading.raw["unit"] == "kPa"


async def test_glucose_records_and_racp_responses_decode(air: EmulatedAir) -> None:
    meter = await air.add(
        GlucoseMeter(
            PeripheralIdentity(serial="GL-C1"),
            records=[
                GlucoseReading(
                    Decimal("104"),
                    time=device_time(2026, 11, 23, 23, 50),
                    time_offset_minutes=15,
                    meal=2,
                ),
                GlucoseReading(None, time=device_time(2026, 11, 24, 7)),
            ],
        )
    )
    inbox = Inbox()
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        for uuid in (0x2A18, 0x2A34, 0x2A52):
            await subscribe(client, uuid, inbox)
        request = RecordAccessControlPoint(
            RacpOpCode.REPORT_STORED_RECORDS, RacpOperator.ALL_RECORDS
        )
        await client.write_gatt_char(RACP, bytes(request), response=True)
        received = await inbox.take_many(4)
    (_, first), (_, context), (_, second), (_, response) = received
    measurement = parse_glucose_measurement(first)
    assert measurement == GlucoseMeasurement(
        sequence_number=1,
        base_time=DateTime(2026, 11, 23, 23, 50, 0),
        time_offset=15,
        concentration=Decimal("0.00104"),
        type=GlucoseType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.FINGER,
        context_follows=True,
    )
    assert measurement.measured_at() == device_time(2026, 11, 24, 0, 5)
    assert parse_glucose_measurement_context(context) == GlucoseMeasurementContext(
        sequence_number=1, meal=Meal.POSTPRANDIAL
    )
    assert parse_glucose_measurement(second).concentration is SpecialValue.NRES
    assert parse_record_access_control_point(response) == RecordAccessControlPoint(
        RacpOpCode.RESPONSE_CODE,
        request_op_code=RacpOpCode.REPORT_STORED_RECORDS,
        response_code=RacpResponseCode.SUCCESS,
    )


async def test_weight_and_mi_scale_decode(air: EmulatedAir) -> None:
    scale = await air.add(
        WeightScale(
            PeripheralIdentity(serial="WS-C1"),
            readings=[WeightReading(Decimal("88.8"), time=device_time(2026, 11, 23), user_id=4)],
        )
    )
    inbox = Inbox()
    async with BleakClient(await find(scale), backend=BumbleClient) as client:
        await subscribe(client, 0x2A9D, inbox)
        _, data = await inbox.take()
    assert parse_weight_scale_measurement(data) == WeightScaleMeasurement(
        weight=Decimal("88.800"), timestamp=DateTime(2026, 11, 23), user_id=4
    )

    mi = MiScale(PeripheralIdentity(serial="MI-C1"), model=MiScaleModel.BODY_COMPOSITION_SCALE_2)
    await air.add(mi)
    service_data = await mi.step_on(
        MiScaleReading(Decimal("70.1"), impedance=480, time=device_time(2026, 11, 23, 7))
    )
    decoded = parse_mi_body_composition_scale(service_data)
    assert decoded.weight == Decimal("70.1")
    assert decoded.impedance == 480
    assert decoded.control == (
        MiBodyCompositionScaleControl.IMPEDANCE_STABILIZED
        | MiBodyCompositionScaleControl.STABILIZED
    )


async def test_current_time_is_a_valid_characteristic(air: EmulatedAir) -> None:
    cuff = await air.add(
        BloodPressureCuff(PeripheralIdentity(serial="BP-C4"), clock=device_time(2026, 11, 23, 9))
    )
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        before = parse_current_time(bytes(await client.read_gatt_char(uuid128(0x2A2B))))
        new = CurrentTime(DateTime(2026, 11, 23, 10, 30, 0), DayOfWeek.MONDAY)
        await client.write_gatt_char(uuid128(0x2A2B), bytes(new), response=True)
        after = parse_current_time(bytes(await client.read_gatt_char(uuid128(0x2A2B))))
    assert before.date_time.hours == 9
    assert before.day_of_week == DayOfWeek.MONDAY
    assert after.date_time == DateTime(2026, 11, 23, 10, 30, 0)


async def test_no_addresses_or_payloads_logged_at_info(
    air: EmulatedAir, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-LOG"),
            readings=[BloodPressureReading(150, 95)],
            faults=Faults(drop_after_records=1),
        )
    )
    inbox = Inbox()
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        await subscribe(client, 0x2A35, inbox)
        _, data = await inbox.take()
        await cuff.wait_disconnected()
    text = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (cuff.address, cuff.address.lower(), data.hex(), "BP-LOG"):
        assert secret not in text
