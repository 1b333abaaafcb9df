"""RACP transfer logic against a scripted meter: every response code, aborts, retries.

The end-to-end behaviour with the emulated meter is in ``test_ble_end_to_end``; here a small
stand-in for the connected ``BleakClient`` answers RACP requests from a script, so that meters'
rarer answers (unsupported operators, "procedure not completed", unknown codes, silence) are
covered too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from bleak import BleakClient
from bleak.exc import BleakError

from devices.canonical import DeviceIdentity, canonical_reading
from devices.date_time import DateTime
from devices.glucose import GlucoseMeasurement
from devices.racp import RacpResponseCode
from devices.uuids import uuid128
from gateway import Outbox
from gateway.glucose import GlucoseTransfer, TransferMode, TransferResult

GLUCOSE_MEASUREMENT = uuid128(0x2A18)
RACP = uuid128(0x2A52)
DEVICE = DeviceIdentity("GM-S", "glucose_meter", "Acme", "G1")

ALL = bytes([0x01, 0x01])
COUNT_ALL = bytes([0x04, 0x01])


def record(sequence: int) -> bytes:
    return bytes(GlucoseMeasurement(sequence, DateTime(2026, 11, 1, 8, sequence % 60, 0)))


def response(request: int, code: int) -> bytes:
    return bytes([0x06, 0x00, request, code])


def count(n: int) -> bytes:
    return bytes([0x05, 0x00]) + n.to_bytes(2, "little")


Reply = list[tuple[str, bytes]] | Exception


class ScriptedMeter:
    """The part of ``BleakClient`` a transfer uses; ``answer(request)`` gives what the meter
    sends back (records on 0x2A18, the response on 0x2A52) or an exception for the write."""

    def __init__(self, answer: Callable[[bytes], Reply]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.callbacks: dict[str, Callable[[Any, bytearray], None]] = {}
        self.is_connected = True
        self.on_write: Callable[[bytes], None] | None = None

    async def start_notify(self, uuid: str, callback: Callable[[Any, bytearray], None]) -> None:
        self.callbacks[uuid] = callback

    async def write_gatt_char(self, uuid: str, data: bytes, response: bool = True) -> None:
        assert uuid == RACP
        self.requests.append(bytes(data))
        if self.on_write is not None:
            self.on_write(bytes(data))
        reply = self.answer(bytes(data))
        if isinstance(reply, Exception):
            raise reply
        asyncio.get_running_loop().call_soon(self._deliver, reply)

    def _deliver(self, packets: list[tuple[str, bytes]]) -> None:
        for uuid, payload in packets:
            if self.is_connected:
                self.callbacks[uuid](None, bytearray(payload))


def records(sequences: range) -> list[tuple[str, bytes]]:
    return [(GLUCOSE_MEASUREMENT, record(s)) for s in sequences]


async def transfer(
    meter: ScriptedMeter,
    outbox: Outbox,
    *,
    stopping: asyncio.Event | None = None,
    disconnected: asyncio.Event | None = None,
) -> TransferResult:
    return await GlucoseTransfer(
        cast(BleakClient, meter),
        DEVICE.id,
        outbox,
        lambda c, data, at: canonical_reading(c, data, DEVICE, at),
        disconnected=disconnected or asyncio.Event(),
        stopping=stopping or asyncio.Event(),
        idle_timeout=0.5,
        chunk_size=3,
    ).run()


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "o.sqlite3", max_readings=1000)


def seed(outbox: Outbox, last: int, total: int) -> None:
    outbox.update_device(DEVICE.id, type="glucose_meter", last_sequence=last, record_count=total)
    received = datetime.now(UTC)
    outbox.add([canonical_reading("2a18", record(s), DEVICE, received) for s in range(1, last + 1)])
    outbox.acknowledge(p.id for p in outbox.pending(limit=1000))


async def test_first_session_fetches_all_even_without_counting(outbox: Outbox) -> None:
    def answer(request: bytes) -> Reply:
        if request[0] == 0x04:
            return [(RACP, response(0x04, RacpResponseCode.OP_CODE_NOT_SUPPORTED))]
        assert request == ALL
        return [*records(range(1, 8)), (RACP, response(0x01, RacpResponseCode.SUCCESS))]

    result = await transfer(ScriptedMeter(answer), outbox)
    assert (result.mode, result.complete, result.stored) == (TransferMode.ALL, True, 7)
    state = outbox.device(DEVICE.id)
    assert state is not None
    assert (state.last_sequence, state.record_count) == (7, 7)


async def test_unsupported_filter_falls_back_to_all_without_doubles(outbox: Outbox) -> None:
    seed(outbox, last=4, total=4)

    def answer(request: bytes) -> Reply:
        if request == COUNT_ALL:
            return [(RACP, count(6))]
        if request[:2] == bytes([0x04, 0x03]):
            return [(RACP, count(2))]
        if request[:2] == bytes([0x01, 0x03]):
            return [(RACP, response(0x01, RacpResponseCode.OPERATOR_NOT_SUPPORTED))]
        assert request == ALL
        return [*records(range(1, 7)), (RACP, response(0x01, RacpResponseCode.SUCCESS))]

    meter = ScriptedMeter(answer)
    result = await transfer(meter, outbox)
    assert (result.mode, result.complete, result.received, result.stored) == (
        TransferMode.ALL,
        True,
        6,
        2,
    )
    assert outbox.depth == 2


async def test_procedure_not_completed_keeps_what_arrived_and_resumes(outbox: Outbox) -> None:
    seed(outbox, last=2, total=2)

    def answer(request: bytes) -> Reply:
        if request == COUNT_ALL:
            return [(RACP, count(7))]
        if request[0] == 0x04:
            return [(RACP, count(5))]
        assert request == bytes([0x01, 0x03, 0x01, 0x03, 0x00])
        return [
            *records(range(3, 5)),
            (RACP, response(0x01, RacpResponseCode.PROCEDURE_NOT_COMPLETED)),
        ]

    result = await transfer(ScriptedMeter(answer), outbox)
    assert (result.mode, result.complete, result.stored) == (TransferMode.INCREMENTAL, False, 2)
    assert result.response == RacpResponseCode.PROCEDURE_NOT_COMPLETED
    state = outbox.device(DEVICE.id)
    assert state is not None
    # progress covers exactly what was stored: the next session asks for ≥ 5 and expects 3
    assert (state.last_sequence, state.record_count) == (4, 4)


@pytest.mark.parametrize(
    ("code", "complete"),
    [
        (RacpResponseCode.NO_RECORDS_FOUND, True),
        (RacpResponseCode.INVALID_OPERAND, False),
        (RacpResponseCode.ABORT_UNSUCCESSFUL, False),
        (RacpResponseCode.OPERAND_NOT_SUPPORTED, False),
        (0x42, False),  # reserved for future use: kept, not trusted
    ],
)
async def test_every_response_code_ends_the_transfer_cleanly(
    outbox: Outbox, code: int, complete: bool
) -> None:
    def answer(request: bytes) -> Reply:
        if request == COUNT_ALL:
            return [(RACP, count(3))]
        return [(RACP, response(request[0], code))]

    result = await transfer(ScriptedMeter(answer), outbox)
    assert result.complete is complete
    assert result.stored == 0
    state = outbox.device(DEVICE.id)
    assert state is None or state.last_sequence is None


async def test_nothing_new_needs_no_report(outbox: Outbox) -> None:
    seed(outbox, last=5, total=5)

    def answer(request: bytes) -> Reply:
        return [
            (
                RACP,
                count(5)
                if request == COUNT_ALL
                else response(0x04, RacpResponseCode.NO_RECORDS_FOUND),
            )
        ]

    meter = ScriptedMeter(answer)
    result = await transfer(meter, outbox)
    assert (result.mode, result.complete) == (TransferMode.NOTHING_NEW, True)
    assert [r[0] for r in meter.requests] == [0x04, 0x04]


async def test_procedure_in_progress_is_aborted_then_retried(outbox: Outbox) -> None:
    busy = [True]

    def answer(request: bytes) -> Reply:
        if request[0] == 0x03:
            busy[0] = False
            return [(RACP, response(0x03, RacpResponseCode.SUCCESS))]
        if busy[0]:
            return BleakError("ATT error 0xFE: procedure already in progress")
        if request == COUNT_ALL:
            return [(RACP, count(2))]
        return [*records(range(1, 3)), (RACP, response(0x01, RacpResponseCode.SUCCESS))]

    meter = ScriptedMeter(answer)
    result = await transfer(meter, outbox)
    assert result.complete
    assert meter.requests[:3] == [COUNT_ALL, bytes([0x03, 0x00]), COUNT_ALL]


async def test_stopping_mid_transfer_sends_an_abort(outbox: Outbox) -> None:
    stopping = asyncio.Event()

    def answer(request: bytes) -> Reply:
        if request == COUNT_ALL:
            return [(RACP, count(50))]
        if request[0] == 0x03:
            return [(RACP, response(0x03, RacpResponseCode.SUCCESS))]
        stopping.set()  # SIGTERM while the meter sends
        return records(range(1, 5))  # ... and it would go on

    meter = ScriptedMeter(answer)
    result = await transfer(meter, outbox, stopping=stopping)
    assert not result.complete
    assert meter.requests[-1] == bytes([0x03, 0x00])
    assert result.stored == 4  # what arrived is kept
    state = outbox.device(DEVICE.id)
    assert state is None or state.last_sequence is None  # an "all" transfer cut short


async def test_silent_meter_times_out(outbox: Outbox) -> None:
    result = await transfer(ScriptedMeter(lambda request: []), outbox)
    assert not result.complete
    assert result.received == 0


async def test_disconnect_mid_transfer_keeps_progress(outbox: Outbox) -> None:
    seed(outbox, last=10, total=10)
    disconnected = asyncio.Event()
    meter: ScriptedMeter

    def answer(request: bytes) -> Reply:
        if request == COUNT_ALL:
            return [(RACP, count(20))]
        if request[0] == 0x04:
            return [(RACP, count(10))]
        asyncio.get_running_loop().call_later(0.05, drop)
        return records(range(11, 15))

    def drop() -> None:
        meter.is_connected = False
        disconnected.set()

    meter = ScriptedMeter(answer)
    result = await transfer(meter, outbox, disconnected=disconnected)
    assert (result.complete, result.stored) == (False, 4)
    state = outbox.device(DEVICE.id)
    assert state is not None
    assert (state.last_sequence, state.record_count) == (14, 14)
