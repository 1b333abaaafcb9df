"""Glucose meters: incremental record transfer over the Record Access Control Point (0x2A52).

Each session asks the meter how many records it holds in all and how many have a sequence
number ≥ the last one stored + 1, then fetches only those. The meter's sequence numbers are not
trusted blindly: when there are more new records than records above the last sequence (the
meter was reset and numbers restarted, or its memory was cleared), or the count cannot be
filtered, the session fetches *all* records and the outbox drops the ones it already has
(reading ids are stable, and delivered ids are remembered).

A record whose measurement says "context information follows" waits for its Glucose
Measurement Context (0x2A34, sent right after it), matched by sequence number and merged into
the reading (meal, tester, health, exercise, medication, HbA1c: ``merge_context``); if the
next measurement or the end of the transfer comes first, the record is stored without it.

Records are committed in chunks together with the meter's progress (last sequence, record
count), so a power cut or a dropped connection mid-transfer loses nothing: what was not stored
is still on the meter and is fetched next time. Before fetching, the outbox must have room for
every expected record; otherwise the records stay on the meter and the status raises an alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError

from devices.canonical import CanonicalReading, with_glucose_context
from devices.errors import ParseError
from devices.glucose import GlucoseMeasurement
from devices.racp import (
    FilterType,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
    RecordAccessControlPoint,
)
from devices.uuids import GattCharacteristic
from gateway.errors import GatewayError, OutboxFull
from gateway.outbox import Outbox, ReadingLike

__all__ = ["GlucoseTransfer", "TransferMode", "TransferResult", "merge_glucose_context"]

logger = logging.getLogger(__name__)

_MEASUREMENT = GattCharacteristic.GLUCOSE_MEASUREMENT
_CONTEXT = GattCharacteristic.GLUCOSE_MEASUREMENT_CONTEXT
_RACP = GattCharacteristic.RECORD_ACCESS_CONTROL_POINT

_MAX_SEQUENCE = 0xFFFF

MakeReading = Callable[[str, bytes, datetime], ReadingLike]
MergeContext = Callable[[ReadingLike, bytes], ReadingLike]


def merge_glucose_context(reading: ReadingLike, context: bytes) -> ReadingLike:
    """:func:`devices.canonical.with_glucose_context` for the canonical readings the radio makes."""
    if not isinstance(reading, CanonicalReading):
        raise TypeError("a glucose context merges into a canonical reading")
    return with_glucose_context(reading, context)


class TransferMode(enum.Enum):
    NOTHING_NEW = "nothing_new"
    INCREMENTAL = "incremental"
    ALL = "all"
    SKIPPED_OUTBOX_FULL = "skipped_outbox_full"


@dataclass(frozen=True, slots=True)
class TransferResult:
    mode: TransferMode
    expected: int | None  # records the meter said it would send
    received: int  # distinct records received
    stored: int  # new readings written to the outbox
    complete: bool
    response: RacpResponseCode | None = None
    restart_detected: bool = False


class _LinkLost(GatewayError):
    pass


class _Stopped(GatewayError):
    pass


class GlucoseTransfer:
    """One RACP session on a connected meter. ``run()`` never raises for meter behaviour."""

    def __init__(
        self,
        client: BleakClient,
        device_id: str,
        outbox: Outbox,
        make_reading: MakeReading,
        *,
        disconnected: asyncio.Event,
        stopping: asyncio.Event,
        idle_timeout: float = 10.0,
        chunk_size: int = 50,
        on_outbox_full: Callable[[], None] | None = None,
        merge_context: MergeContext | None = None,
    ) -> None:
        self.client = client
        self.merge_context = merge_context
        #: sequence → the reading whose context is announced and not yet received
        self._awaiting: dict[int, ReadingLike] = {}
        self.contexts_merged = 0
        self.device_id = device_id
        self.outbox = outbox
        self.make_reading = make_reading
        self.disconnected = disconnected
        self.stopping = stopping
        self.idle_timeout = idle_timeout
        self.chunk_size = chunk_size
        self.on_outbox_full = on_outbox_full
        self._responses: asyncio.Queue[RecordAccessControlPoint] = asyncio.Queue()
        self._activity = 0.0
        self._loop = asyncio.get_running_loop()
        # transfer state
        self._mode = TransferMode.NOTHING_NEW
        self._buffer: list[tuple[int, ReadingLike]] = []
        self._sequences: set[int] = set()
        self._committed: set[int] = set()
        self._last_in_order: int | None = None
        self._complete = False
        self._full_reported = False
        self._stored = 0
        self._expected: int | None = None
        self._total: int | None = None
        self._full = False
        self.parse_errors = 0

    # -- notifications ------------------------------------------------------------------

    def _on_measurement(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._activity = self._loop.time()
        payload = bytes(data)
        try:
            measurement = GlucoseMeasurement.from_bytes(payload)
            sequence = measurement.sequence_number
            reading = self.make_reading(_MEASUREMENT.short, payload, datetime.now(UTC))
        except ParseError as exc:
            self.parse_errors += 1
            logger.warning(
                "glucose meter %s sent an unreadable record (%s, %d bytes)",
                self.device_id,
                exc.what,
                exc.size,
            )
            return
        if self._full:
            return  # stays on the meter; the transfer is being aborted
        self._sequences.add(sequence)
        self._last_in_order = sequence
        self._release_awaiting()  # a context that did not come: stored without it
        if measurement.context_follows and self.merge_context is not None:
            self._awaiting[sequence] = reading
            return
        self._take(sequence, reading)

    def _take(self, sequence: int, reading: ReadingLike) -> None:
        self._buffer.append((sequence, reading))
        if len(self._buffer) >= self.chunk_size:
            self._flush(final=False)

    def _release_awaiting(self) -> None:
        while self._awaiting:
            sequence, reading = next(iter(self._awaiting.items()))
            del self._awaiting[sequence]
            self._take(sequence, reading)

    def _on_context(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._activity = self._loop.time()
        payload = bytes(data)
        if len(payload) < 3 or self.merge_context is None:
            return
        sequence = int.from_bytes(payload[1:3], "little")
        reading = self._awaiting.pop(sequence, None)
        if reading is None:
            return  # no measurement waits for it (already stored, or never announced)
        try:
            reading = self.merge_context(reading, payload)
            self.contexts_merged += 1
        except (ParseError, ValueError) as exc:
            logger.warning(
                "glucose meter %s sent an unreadable context (%s, %d bytes); the record is"
                " stored without it",
                self.device_id,
                type(exc).__name__,
                len(payload),
            )
        self._take(sequence, reading)

    def _on_racp(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._activity = self._loop.time()
        try:
            self._responses.put_nowait(RecordAccessControlPoint.from_bytes(bytes(data)))
        except ParseError as exc:
            logger.warning(
                "glucose meter %s sent an unreadable RACP indication (%d bytes)",
                self.device_id,
                exc.size,
            )

    # -- storing -----------------------------------------------------------------------

    def _progress(self, kept: list[tuple[int, ReadingLike]], final: bool) -> dict[str, Any]:
        """The meter's progress to commit with ``kept`` (never ahead of the stored records)."""
        update: dict[str, Any] = {"type": "glucose_meter"}
        if kept:
            update["last_reading_at"] = datetime.now(UTC)
            self._committed.update(sequence for sequence, _ in kept)
        if self._mode is TransferMode.INCREMENTAL and kept:
            # records of a "≥ n" report arrive in sequence order: all below are stored too
            update["last_sequence"] = max(sequence for sequence, _ in kept)
            if self._total is not None and self._expected is not None:
                missing = max(0, self._expected - len(self._committed))
                update["record_count"] = self._total - missing
        elif self._mode is TransferMode.ALL and final and self._complete and not self._full:
            if self._last_in_order is not None:
                update["last_sequence"] = self._last_in_order
            update["record_count"] = (
                self._total if self._total is not None else len(self._committed)
            )
        elif self._mode is TransferMode.NOTHING_NEW and final and self._total is not None:
            update["record_count"] = self._total
        return update if len(update) > 1 else {}

    def _flush(self, *, final: bool) -> None:
        """Commit what fits: records already stored or delivered take no room; at the first
        one that does not fit the transfer stops (it and the rest stay on the meter)."""
        if final and self._awaiting:
            self._buffer.extend(self._awaiting.items())
            self._awaiting.clear()
        kept: list[tuple[int, ReadingLike]] = []
        room = self.outbox.free()
        for sequence, reading in self._buffer:
            if not self.outbox.known(str(reading.id)):
                if room <= 0:
                    self._full = True
                    break
                room -= 1
            kept.append((sequence, reading))
        update = self._progress(kept, final)
        if kept or update:
            try:
                self._stored += self.outbox.add(
                    [reading for _, reading in kept],
                    device_update=(self.device_id, update) if update else None,
                )
            except OutboxFull:  # another device filled it meanwhile
                self._full = True
        self._buffer = [] if self._full else self._buffer[len(kept) :]
        if self._full and not self._full_reported:
            self._full_reported = True
            if self.on_outbox_full is not None:
                self.on_outbox_full()
            logger.error(
                "outbox full: stopping the transfer from glucose meter %s;"
                " the remaining records stay on the meter",
                self.device_id,
            )

    # -- RACP --------------------------------------------------------------------------

    async def _write(self, request: RecordAccessControlPoint) -> None:
        if self.disconnected.is_set():
            raise _LinkLost
        try:
            await self.client.write_gatt_char(_RACP.uuid128, bytes(request), response=True)
        except BleakError as exc:
            if self.disconnected.is_set() or not self.client.is_connected:
                raise _LinkLost from exc
            raise

    async def _response(self, request: RacpOpCode) -> RecordAccessControlPoint:
        """The response to ``request``; the idle timer restarts with every record received."""
        self._activity = self._loop.time()
        while True:
            if self.disconnected.is_set():
                raise _LinkLost
            if self._full or (
                self.stopping.is_set() and request == RacpOpCode.REPORT_STORED_RECORDS
            ):
                await self._abort()
                raise _Stopped
            try:
                response = await asyncio.wait_for(self._responses.get(), 0.2)
            except TimeoutError:
                if self._loop.time() - self._activity > self.idle_timeout:
                    raise TimeoutError("no RACP response") from None
                continue
            if response.op_code == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
                if request == RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS:
                    return response
                continue
            if response.op_code == RacpOpCode.RESPONSE_CODE and response.request_op_code == request:
                return response
            # a stale response (e.g. to an earlier abort): ignore it

    async def _abort(self) -> None:
        with contextlib.suppress(BleakError, _LinkLost, TimeoutError):
            await self._write(RecordAccessControlPoint(RacpOpCode.ABORT_OPERATION))
            async with asyncio.timeout(2.0):
                while True:
                    response = await self._responses.get()
                    if response.request_op_code == RacpOpCode.ABORT_OPERATION:
                        if response.response_code != RacpResponseCode.SUCCESS:
                            logger.warning("glucose meter %s: abort not accepted", self.device_id)
                        return

    async def _request(self, request: RecordAccessControlPoint) -> RecordAccessControlPoint:
        try:
            await self._write(request)
        except BleakError:
            # e.g. "procedure already in progress" left over from a dropped session: abort it
            logger.info(
                "glucose meter %s: RACP write refused; aborting and retrying", self.device_id
            )
            await self._abort()
            await self._write(request)
        return await self._response(request.op_code)

    async def _count(self, operator: RacpOperator, minimum: int | None = None) -> int | None:
        """Number of stored records; ``None`` if the meter does not support this filter."""
        request = RecordAccessControlPoint(
            RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
            operator,
            FilterType.SEQUENCE_NUMBER if minimum is not None else None,
            minimum=minimum,
        )
        response = await self._request(request)
        if response.number_of_records is not None:
            return response.number_of_records
        code = response.response_code
        if code == RacpResponseCode.NO_RECORDS_FOUND:
            return 0
        logger.info(
            "glucose meter %s does not count with operator %d (response code %d)",
            self.device_id,
            int(operator),
            int(code) if code is not None else -1,
        )
        return None

    async def _report(self, operator: RacpOperator, minimum: int | None = None) -> RacpResponseCode:
        request = RecordAccessControlPoint(
            RacpOpCode.REPORT_STORED_RECORDS,
            operator,
            FilterType.SEQUENCE_NUMBER if minimum is not None else None,
            minimum=minimum,
        )
        response = await self._request(request)
        code = response.response_code
        return code if code is not None else RacpResponseCode.PROCEDURE_NOT_COMPLETED

    # -- the session -------------------------------------------------------------------

    async def run(self) -> TransferResult:
        await self.client.start_notify(_MEASUREMENT.uuid128, self._on_measurement)
        if self.merge_context is not None:
            context = self.client.services.get_characteristic(_CONTEXT.uuid128)
            if context is not None and "notify" in context.properties:
                await self.client.start_notify(context, self._on_context)
            else:
                self.merge_context = None  # no context will come: nothing waits for one
        await self.client.start_notify(_RACP.uuid128, self._on_racp)
        state = self.outbox.device(self.device_id)
        last = state.last_sequence if state else None
        previous_total = state.record_count if state else None
        restart = False
        response: RacpResponseCode | None = None
        complete = False
        try:
            self._total = await self._count(RacpOperator.ALL_RECORDS)
            newer: int | None = None
            if last is not None and last < _MAX_SEQUENCE:
                newer = await self._count(RacpOperator.GREATER_THAN_OR_EQUAL, last + 1)
            if last is None or newer is None:
                self._mode = TransferMode.ALL
                self._expected = self._total
            elif (
                self._total is not None
                and previous_total is not None
                and (
                    newer < self._total - previous_total
                    or (self._total < previous_total and newer < self._total)
                )
            ):
                restart = True
                self._mode = TransferMode.ALL
                self._expected = self._total
                logger.warning(
                    "glucose meter %s: sequence numbers restarted or memory cleared;"
                    " fetching all %d records and dropping the ones already sent",
                    self.device_id,
                    self._total,
                )
            elif newer == 0:
                self._mode = TransferMode.NOTHING_NEW
                self._expected = 0
            else:
                self._mode = TransferMode.INCREMENTAL
                self._expected = newer
            if self._mode is not TransferMode.NOTHING_NEW:
                if self.outbox.full:
                    self._full = self._full_reported = True
                    if self.on_outbox_full is not None:
                        self.on_outbox_full()
                    logger.error(
                        "outbox full: %d records left on glucose meter %s",
                        self._expected if self._expected is not None else -1,
                        self.device_id,
                    )
                    return self._result(TransferMode.SKIPPED_OUTBOX_FULL, False, None, restart)
                if self._mode is TransferMode.INCREMENTAL:
                    assert last is not None
                    response = await self._report(RacpOperator.GREATER_THAN_OR_EQUAL, last + 1)
                    if response in (
                        RacpResponseCode.OPERATOR_NOT_SUPPORTED,
                        RacpResponseCode.OPERAND_NOT_SUPPORTED,
                        RacpResponseCode.INVALID_OPERAND,
                        RacpResponseCode.INVALID_OPERATOR,
                    ):
                        self._mode = TransferMode.ALL
                        response = await self._report(RacpOperator.ALL_RECORDS)
                else:
                    response = await self._report(RacpOperator.ALL_RECORDS)
                complete = response in (RacpResponseCode.SUCCESS, RacpResponseCode.NO_RECORDS_FOUND)
                if not complete:
                    logger.warning(
                        "glucose meter %s ended the transfer with response code %d;"
                        " the rest is fetched next time",
                        self.device_id,
                        int(response),
                    )
            else:
                complete = True
        except _LinkLost:
            logger.warning(
                "glucose meter %s disconnected mid-transfer after %d records; resuming next time",
                self.device_id,
                len(self._sequences),
            )
        except _Stopped:
            logger.info("glucose transfer from %s aborted", self.device_id)
        except TimeoutError:
            logger.warning("glucose meter %s stopped answering", self.device_id)
        except BleakError as exc:
            logger.warning(
                "glucose meter %s: RACP failed (%s); resuming next time",
                self.device_id,
                type(exc).__name__,
            )
        finally:
            self._complete = complete
            self._flush(final=True)
        return self._result(self._mode, complete and not self._full, response, restart)

    def _result(
        self,
        mode: TransferMode,
        complete: bool,
        response: RacpResponseCode | None,
        restart: bool,
    ) -> TransferResult:
        return TransferResult(
            mode=mode,
            expected=self._expected,
            received=len(self._sequences),
            stored=self._stored,
            complete=complete,
            response=response,
            restart_detected=restart,
        )
