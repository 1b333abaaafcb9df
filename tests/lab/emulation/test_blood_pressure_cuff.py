"""The emulated BP cuff seen through bleak: indications, ICP, faults, connect window."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from bleak import BleakClient

from devices.uuids import uuid128
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    BumbleClient,
    EmulatedAir,
    Faults,
    PeripheralIdentity,
)
from tests.support.emulation import Inbox, device_time, find, subscribe

pytestmark = pytest.mark.ble

IDENTITY = PeripheralIdentity(serial="BPC-0042", model="BP-7", local_name="BP-7")

# Hand-built per BLS 1.0 §3.1: flags 0x16 (time stamp, pulse, status; mmHg), 120/80 mmHg,
# MAP 93, 2026-11-23 08:30:00, pulse 72, status 0x0000.
RAW_MEASUREMENT = bytes.fromhex("16 7800 5000 5d00 ea070b17081e00 4800 0000")
BP_MEASUREMENT = uuid128(0x2A35)
ICP = uuid128(0x2A36)


async def test_stored_readings_are_indicated_exactly_in_order(air: EmulatedAir) -> None:
    structured = BloodPressureReading(
        Decimal(138),
        Decimal(88),
        pulse=Decimal(60),
        time=device_time(2026, 11, 22, 19, 5),
        user_id=1,
    )
    cuff = await air.add(BloodPressureCuff(IDENTITY, readings=[RAW_MEASUREMENT, structured]))
    # flags: time, pulse, user id; 138/88 mmHg; MAP 88 + 50/3 rounds to 105; 2026-11-22 19:05;
    # pulse 60; user 1
    expected_structured = bytes.fromhex("0e 8a00 5800 6900 ea070b16130500 3c00 01")
    inbox = Inbox()
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        await subscribe(client, 0x2A35, inbox)
        received = await inbox.take_many(2)
    assert received[0] == (BP_MEASUREMENT, RAW_MEASUREMENT)
    assert received[1][0] == BP_MEASUREMENT
    assert received[1][1] == expected_structured
    assert cuff.stored == []
    assert cuff.delivered == [RAW_MEASUREMENT, expected_structured]


async def test_live_measurement_sends_cuff_pressure_then_the_result(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(IDENTITY))
    inbox = Inbox()
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        await subscribe(client, 0x2A36, inbox)
        await subscribe(client, 0x2A35, inbox)
        packet = await cuff.measure(RAW_MEASUREMENT)
        received = await inbox.take_many(4)
    assert packet == RAW_MEASUREMENT
    assert [uuid for uuid, _ in received] == [ICP, ICP, ICP, BP_MEASUREMENT]
    # ICP: flags 0, cuff pressure 40 mmHg, diastolic and MAP NaN (0x07FF)
    assert received[0][1] == bytes.fromhex("00 2800 ff07 ff07")
    assert received[3][1] == RAW_MEASUREMENT


async def test_cuff_that_disconnects_when_done(air: EmulatedAir) -> None:
    cuff = await air.add(
        BloodPressureCuff(IDENTITY, readings=[RAW_MEASUREMENT], disconnect_when_done=True)
    )
    disconnected = asyncio.Event()
    inbox = Inbox()
    client = BleakClient(await find(cuff), lambda _c: disconnected.set(), backend=BumbleClient)
    await client.connect()
    await subscribe(client, 0x2A35, inbox)
    assert await inbox.take() == (BP_MEASUREMENT, RAW_MEASUREMENT)
    await asyncio.wait_for(disconnected.wait(), 2)
    assert not client.is_connected


async def test_dropped_mid_transfer_then_the_rest_on_reconnect(air: EmulatedAir) -> None:
    readings = [
        BloodPressureReading(120 + i, 80, time=device_time(2026, 11, 20 + i, 8)) for i in range(3)
    ]
    cuff = await air.add(
        BloodPressureCuff(IDENTITY, readings=readings, faults=Faults(drop_after_records=1))
    )
    first_batch = list(cuff.stored)
    disconnected = asyncio.Event()
    inbox = Inbox()
    client = BleakClient(await find(cuff), lambda _c: disconnected.set(), backend=BumbleClient)
    await client.connect()
    await subscribe(client, 0x2A35, inbox)
    assert await inbox.take() == (BP_MEASUREMENT, first_batch[0])
    await asyncio.wait_for(disconnected.wait(), 2)
    assert not client.is_connected

    async with BleakClient(await find(cuff), backend=BumbleClient) as again:
        await subscribe(again, 0x2A35, inbox)
        rest = await inbox.take_many(2)
    assert [data for _, data in rest] == first_batch[1:]


async def test_faults_kpa_nres_clock_reset_duplicates_wrong_length(air: EmulatedAir) -> None:
    reading = BloodPressureReading(120, 80, pulse=72, time=device_time(2026, 11, 23, 8))
    cuff = await air.add(
        BloodPressureCuff(
            IDENTITY,
            readings=[reading, reading],
            faults=Faults(
                kpa_units=True, nres_values=True, clock_reset=True, duplicate_records=True
            ),
        )
    )
    inbox = Inbox()
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        await subscribe(client, 0x2A35, inbox)
        received = [data for _, data in await inbox.take_many(4)]
    # kPa (flag bit 0), 16.0 / 10.7 kPa (mantissa 160 / 107, exponent -1), MAP NRes,
    # time 2000-01-01 00:00 then 00:01, pulse NRes (fault), each sent twice
    first = bytes.fromhex("07 a0f0 6bf0 0008 d0070101000000 0008")
    second = bytes.fromhex("07 a0f0 6bf0 0008 d0070101000100 0008")
    assert received == [first, first, second, second]


async def test_wrong_length_fault(air: EmulatedAir) -> None:
    cuff = await air.add(
        BloodPressureCuff(IDENTITY, readings=[RAW_MEASUREMENT], faults=Faults(wrong_length=-3))
    )
    inbox = Inbox()
    async with BleakClient(await find(cuff), backend=BumbleClient) as client:
        await subscribe(client, 0x2A35, inbox)
        assert await inbox.take() == (BP_MEASUREMENT, RAW_MEASUREMENT[:-3])


async def test_connect_window_after_a_measurement(air: EmulatedAir) -> None:
    cuff = await air.add(BloodPressureCuff(IDENTITY, faults=Faults(connect_window=1.0)))
    assert not cuff.is_advertising
    with pytest.raises(TimeoutError):
        await BleakClient(cuff.address, backend=BumbleClient, timeout=0.2).connect()

    await cuff.measure(RAW_MEASUREMENT)
    assert cuff.is_advertising
    inbox = Inbox()
    async with BleakClient(cuff.address, backend=BumbleClient, timeout=1) as client:
        await subscribe(client, 0x2A35, inbox)
        assert await inbox.take() == (BP_MEASUREMENT, RAW_MEASUREMENT)

    await asyncio.sleep(1.05)
    assert not cuff.is_advertising
    with pytest.raises(TimeoutError):
        await BleakClient(cuff.address, backend=BumbleClient, timeout=0.2).connect()
