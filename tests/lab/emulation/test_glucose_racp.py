"""The emulated glucose meter's RACP server, driven through bleak."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
from bleak import BleakClient
from bleak.exc import BleakError, BleakGATTProtocolError

from devices.glucose import GlucoseType
from devices.uuids import uuid128
from lab.emulation import (
    BumbleClient,
    EmulatedAir,
    Faults,
    GlucoseMeter,
    GlucoseReading,
    GlucoseRecord,
    PeripheralIdentity,
)
from tests.support.emulation import Inbox, device_time, find, subscribe

pytestmark = pytest.mark.ble

IDENTITY = PeripheralIdentity(serial="GLU-0007", model="GM-3", local_name="GM-3")
MEASUREMENT = uuid128(0x2A18)
CONTEXT = uuid128(0x2A34)
RACP = uuid128(0x2A52)


def readings(count: int) -> list[GlucoseReading]:
    return [
        GlucoseReading(
            95 + i,
            time=device_time(2026, 11, 1, 7, 30) + timedelta(days=i),
            meal=1 if i % 2 == 0 else None,
        )
        for i in range(count)
    ]


class Session:
    """A connected bleak client with measurement, context and RACP subscribed."""

    def __init__(self, client: BleakClient, inbox: Inbox) -> None:
        self.client = client
        self.inbox = inbox

    async def request(self, request: str) -> list[tuple[str, bytes]]:
        """Write an RACP request; everything received up to and including the RACP response."""
        await self.client.write_gatt_char(RACP, bytes.fromhex(request), response=True)
        received: list[tuple[str, bytes]] = []
        while True:
            item = await self.inbox.take()
            received.append(item)
            if item[0] == RACP:
                return received


@pytest.fixture
async def meter(air: EmulatedAir) -> GlucoseMeter:
    return await air.add(GlucoseMeter(IDENTITY, records=readings(5)))


@pytest.fixture
async def session(meter: GlucoseMeter) -> AsyncIterator[Session]:
    inbox = Inbox()
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        for uuid in (0x2A18, 0x2A34, 0x2A52):
            await subscribe(client, uuid, inbox)
        yield Session(client, inbox)


def sequences(received: Sequence[tuple[str, bytes]]) -> list[int]:
    return [int.from_bytes(data[1:3], "little") for uuid, data in received if uuid == MEASUREMENT]


async def test_count_all(session: Session) -> None:
    assert await session.request("0401") == [(RACP, bytes.fromhex("0500 0500"))]


async def test_report_all_sends_measurements_contexts_then_success(
    session: Session, meter: GlucoseMeter
) -> None:
    received = await session.request("0101")
    expected: list[tuple[str, bytes]] = []
    for record in meter.records:
        expected.append((MEASUREMENT, record.measurement))
        if record.context is not None:
            expected.append((CONTEXT, record.context))
    expected.append((RACP, bytes.fromhex("06000101")))
    assert received == expected
    # record 1: flags 0x12 (concentration, context follows), sequence 1, 2026-11-01 07:30:00,
    # 95 mg/dL = 0.00095 kg/L (SFLOAT 95e-5: 0xB05F), capillary whole blood from the finger
    assert received[0] == (MEASUREMENT, bytes.fromhex("12 0100 ea070b01071e00 5fb0 11"))
    assert received[1] == (CONTEXT, bytes.fromhex("02 0100 01"))


async def test_report_greater_or_equal_sequence(session: Session) -> None:
    received = await session.request("0103 01 0300")
    assert sequences(received) == [3, 4, 5]
    assert received[-1] == (RACP, bytes.fromhex("06000101"))


async def test_report_within_range_first_last_and_by_time(session: Session) -> None:
    assert sequences(await session.request("0104 01 0200 0300")) == [2, 3]
    assert sequences(await session.request("0105")) == [1]
    assert sequences(await session.request("0106")) == [5]
    assert sequences(await session.request("0102 01 0200")) == [1, 2]
    # user-facing time within 2026-11-02 00:00 .. 2026-11-03 23:59:59
    by_time = await session.request("0104 02 ea070b02000000 ea070b03173b3b")
    assert sequences(by_time) == [2, 3]


async def test_delete_then_no_records_found(session: Session, meter: GlucoseMeter) -> None:
    assert await session.request("0202 01 0200") == [(RACP, bytes.fromhex("06000201"))]
    assert [record.sequence for record in meter.records] == [3, 4, 5]
    assert await session.request("0401") == [(RACP, bytes.fromhex("05000300"))]
    assert await session.request("0103 01 0900") == [(RACP, bytes.fromhex("06000106"))]
    assert await session.request("0201") == [(RACP, bytes.fromhex("06000201"))]
    assert await session.request("0101") == [(RACP, bytes.fromhex("06000106"))]
    assert await session.request("0201") == [(RACP, bytes.fromhex("06000206"))]
    assert await session.request("0401") == [(RACP, bytes.fromhex("05000000"))]


async def test_malformed_requests_get_response_codes(session: Session) -> None:
    assert await session.request("0100") == [(RACP, bytes.fromhex("06000103"))]  # null operator
    assert await session.request("0107") == [(RACP, bytes.fromhex("06000104"))]  # unsupported
    assert await session.request("0103") == [(RACP, bytes.fromhex("06000105"))]  # no operand
    assert await session.request("010301") == [(RACP, bytes.fromhex("06000105"))]  # short
    assert await session.request("0103 03 0100") == [(RACP, bytes.fromhex("06000109"))]  # filter
    assert await session.request("0104 01 0500 0200") == [(RACP, bytes.fromhex("06000105"))]
    assert await session.request("0101ff") == [(RACP, bytes.fromhex("06000105"))]
    assert await session.request("0901") == [(RACP, bytes.fromhex("06000902"))]  # op code
    assert await session.request("0301") == [(RACP, bytes.fromhex("06000303"))]  # abort operator


async def test_abort_and_procedure_already_in_progress(air: EmulatedAir) -> None:
    meter = await air.add(GlucoseMeter(IDENTITY, records=readings(40), record_interval=0.05))
    inbox = Inbox()
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        for uuid in (0x2A18, 0x2A34, 0x2A52):
            await subscribe(client, uuid, inbox)
        await client.write_gatt_char(RACP, bytes.fromhex("0101"), response=True)
        await inbox.take()  # the first record is on its way
        assert meter.procedure_in_progress
        with pytest.raises(BleakGATTProtocolError) as busy:
            await client.write_gatt_char(RACP, bytes.fromhex("0401"), response=True)
        assert busy.value.code == 0xFE  # procedure already in progress
        await client.write_gatt_char(RACP, bytes.fromhex("0300"), response=True)
        received = [await inbox.take()]
        while received[-1][0] != RACP:
            received.append(await inbox.take())
        assert received[-1] == (RACP, bytes.fromhex("06000301"))
        assert len(sequences(received)) < 39
        assert not meter.procedure_in_progress
        await asyncio.sleep(0.1)
        assert inbox.drain() == []  # nothing after the abort response
        # the meter takes new requests again
        await client.write_gatt_char(RACP, bytes.fromhex("0401"), response=True)
        assert await inbox.take() == (RACP, bytes.fromhex("05002800"))


async def test_racp_needs_its_cccd_enabled(air: EmulatedAir) -> None:
    meter = await air.add(GlucoseMeter(IDENTITY, records=readings(2)))
    inbox = Inbox()
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        with pytest.raises(BleakGATTProtocolError) as no_racp:
            await client.write_gatt_char(RACP, bytes.fromhex("0401"), response=True)
        assert no_racp.value.code == 0xFD
        await subscribe(client, 0x2A52, inbox)
        with pytest.raises(BleakGATTProtocolError) as no_measurement:
            await client.write_gatt_char(RACP, bytes.fromhex("0101"), response=True)
        assert no_measurement.value.code == 0xFD
        await client.write_gatt_char(RACP, bytes.fromhex("0401"), response=True)
        assert await inbox.take() == (RACP, bytes.fromhex("05000200"))


async def test_dropped_mid_transfer_is_a_clean_disconnect(air: EmulatedAir) -> None:
    meter = await air.add(
        GlucoseMeter(IDENTITY, records=readings(6), faults=Faults(drop_after_records=3))
    )
    inbox = Inbox()
    disconnected = asyncio.Event()
    client = BleakClient(await find(meter), lambda _c: disconnected.set(), backend=BumbleClient)
    await client.connect()
    for uuid in (0x2A18, 0x2A34, 0x2A52):
        await subscribe(client, uuid, inbox)
    await client.write_gatt_char(RACP, bytes.fromhex("0101"), response=True)
    await asyncio.wait_for(disconnected.wait(), 3)
    received = inbox.drain()
    assert sequences(received) == [1, 2, 3]
    assert all(uuid != RACP for uuid, _ in received)
    assert not client.is_connected
    with pytest.raises(BleakError):
        await client.write_gatt_char(RACP, bytes.fromhex("0401"), response=True)

    # next session: incremental transfer of what is left ("records with sequence >= 4")
    async with BleakClient(await find(meter), backend=BumbleClient) as again:
        for uuid in (0x2A18, 0x2A34, 0x2A52):
            await subscribe(again, uuid, inbox)
        await again.write_gatt_char(RACP, bytes.fromhex("0103 01 0400"), response=True)
        rest = [await inbox.take()]
        while rest[-1][0] != RACP:
            rest.append(await inbox.take())
    assert sequences(rest) == [4, 5, 6]
    assert rest[-1] == (RACP, bytes.fromhex("06000101"))


async def test_sequence_restart_duplicates_and_clock_reset(air: EmulatedAir) -> None:
    meter = await air.add(
        GlucoseMeter(
            IDENTITY,
            records=[GlucoseReading(100 + i) for i in range(4)],
            faults=Faults(restart_sequence_at=2, duplicate_records=True, clock_reset=True),
        )
    )
    assert [record.sequence for record in meter.records] == [1, 2, 1, 2]
    # device clock reset: base times 2000-01-01 00:00, 00:01, ...
    assert meter.records[3].measurement[3:10] == bytes.fromhex("d0070101000300")
    inbox = Inbox()
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        for uuid in (0x2A18, 0x2A52):
            await subscribe(client, uuid, inbox)
        await client.write_gatt_char(RACP, bytes.fromhex("0101"), response=True)
        received = [await inbox.take()]
        while received[-1][0] != RACP:
            received.append(await inbox.take())
    assert sequences(received) == [1, 1, 2, 2, 1, 1, 2, 2]


async def test_live_result_is_notified_and_raw_records_pass_through(air: EmulatedAir) -> None:
    raw = GlucoseRecord(
        sequence=77,
        # flags 0x02, sequence 77, 2026-11-23 06:45:00, 120e-5 kg/L (120 mg/dL), control
        # solution (type 0xA) from the finger (location 1)
        measurement=bytes.fromhex("02 4d00 ea070b17062d00 78b0 1a"),
    )
    meter = await air.add(GlucoseMeter(IDENTITY))
    inbox = Inbox()
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        await subscribe(client, 0x2A18, inbox)
        await meter.measure(raw)
        assert await inbox.take() == (MEASUREMENT, raw.measurement)
        record = await meter.measure(
            GlucoseReading(
                88, time=device_time(2026, 11, 23, 7), sample_type=GlucoseType.CONTROL_SOLUTION
            )
        )
        assert await inbox.take() == (MEASUREMENT, record.measurement)
    assert record.sequence == 1
    assert record.measurement[-1] == 0x1A


async def test_seeded_random_requests_match_a_model(air: EmulatedAir) -> None:
    """Report / count / delete with random operators and bounds agree with a list model."""
    rng = random.Random(20261123)  # seeded: reproducible
    meter = await air.add(
        GlucoseMeter(IDENTITY, records=[GlucoseReading(90 + i) for i in range(30)])
    )
    model = [record.sequence for record in meter.records]
    inbox = Inbox()
    async with BleakClient(await find(meter), backend=BumbleClient) as client:
        for uuid in (0x2A18, 0x2A52):
            await subscribe(client, uuid, inbox)
        session = Session(client, inbox)
        reported = 0
        for _ in range(60):
            op_code = rng.choices([0x01, 0x04, 0x02], weights=[10, 7, 3])[0]
            low, high = sorted(rng.randint(0, 32) for _ in range(2))
            operator = rng.randint(1, 6)
            if op_code == 0x02:  # delete a little at a time
                operator = rng.choice([4, 5, 6])
                high = low + rng.randint(0, 2)
            operand = {
                2: struct.pack("<BH", 1, high),
                3: struct.pack("<BH", 1, low),
                4: struct.pack("<BHH", 1, low, high),
            }.get(operator, b"")
            expected = {
                1: model,
                2: [s for s in model if s <= high],
                3: [s for s in model if s >= low],
                4: [s for s in model if low <= s <= high],
                5: model[:1],
                6: model[-1:],
            }[operator]
            received = await session.request(bytes([op_code, operator]).hex() + operand.hex())
            *records, (_, response) = received
            if op_code == 0x04:
                assert response == bytes([0x05, 0x00]) + struct.pack("<H", len(expected))
                continue
            code = 0x01 if expected else 0x06
            assert response == bytes([0x06, 0x00, op_code, code])
            if op_code == 0x01:
                assert sequences(records) == expected
                reported += len(records)
            else:
                assert records == []
                model = [s for s in model if s not in expected]
                assert [record.sequence for record in meter.records] == model
    assert model  # the deletes left something to report
    assert reported > 100
