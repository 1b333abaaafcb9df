"""An emulated glucose meter (Glucose service 0x1808) with a record store and a full RACP server."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bumble import gatt
from bumble.att import ATT_Error
from bumble.device import Connection
from bumble.gatt import Characteristic

from devices.date_time import DateTime
from devices.errors import ParseError
from devices.glucose import GlucoseType, SampleLocation
from devices.racp import (
    FilterType,
    RacpOpCode,
    RacpOperator,
    RacpResponseCode,
    RecordAccessControlPoint,
)
from devices.uuids import GattCharacteristic, GattService
from lab.emulation._encoding import (
    GlucoseFields,
    encode_glucose_context,
    encode_glucose_measurement,
)
from lab.emulation._peripheral import (
    DEVICE_CLOCK_RESET,
    Cccd,
    EmulatedPeripheral,
    Faults,
    PeripheralIdentity,
    characteristic,
    readable,
    service,
)

__all__ = ["GlucoseMeter", "GlucoseReading", "GlucoseRecord"]

logger = logging.getLogger(__name__)

# Common Profile and Service Error Codes (Core Specification Supplement, Part B)
_ATT_PROCEDURE_ALREADY_IN_PROGRESS = 0xFE
_ATT_CCCD_IMPROPERLY_CONFIGURED = 0xFD

_U16 = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class GlucoseReading:
    """A meter result in mg/dL. ``sequence=None``: numbered by the meter."""

    mg_dl: Decimal | int | None
    time: datetime | None = None
    time_offset_minutes: int | None = None
    sample_type: GlucoseType = GlucoseType.CAPILLARY_WHOLE_BLOOD
    sample_location: SampleLocation = SampleLocation.FINGER
    status: int | None = None
    meal: int | None = None
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    """A stored record as the meter sends it: ready-made measurement (and context) packets.

    ``time`` is the user-facing time used by RACP time filters (``None``: never matches one).
    """

    sequence: int
    measurement: bytes
    context: bytes | None = None
    time: datetime | None = None


def racp_response(request: int, code: RacpResponseCode) -> bytes:
    """The RACP response-code indication for the request with op code ``request``."""
    return bytes(
        RecordAccessControlPoint(
            RacpOpCode.RESPONSE_CODE, request_op_code=RacpOpCode(request), response_code=code
        )
    )


def _parse_request(request: bytes) -> RecordAccessControlPoint | None:
    """The request decoded with the codec of :mod:`devices`; ``None`` when it does not decode
    (too short, or a filter operand of the wrong length)."""
    try:
        return RecordAccessControlPoint.from_bytes(request)
    except ParseError:
        return None


class _RacpRejected(Exception):
    def __init__(self, code: RacpResponseCode) -> None:
        super().__init__(code.name)
        self.code = code


class GlucoseMeter(EmulatedPeripheral):
    """A glucose meter: Measurement (0x2A18) and Context (0x2A34) notifications, Feature
    (0x2A51), and a Record Access Control Point (0x2A52) serving report / delete / abort /
    count with operators all, <=, >=, within range, first, last on sequence number or
    user-facing time. RACP writes need the RACP CCCD (and, to report, the measurement CCCD)
    enabled, else ATT error 0xFD; a write while a procedure runs gets ATT error 0xFE.
    ``record_interval`` (seconds between records) makes transfers slow enough to abort.
    """

    def __init__(
        self,
        identity: PeripheralIdentity,
        *,
        records: Sequence[GlucoseReading | GlucoseRecord] = (),
        faults: Faults | None = None,
        feature: int = 0x0000,
        first_sequence: int = 1,
        record_interval: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(identity, faults=faults, **kwargs)
        self.feature = feature
        self.first_sequence = first_sequence
        self.record_interval = record_interval
        self._next_sequence = first_sequence
        self._taken = 0
        self._records: list[GlucoseRecord] = []
        self._procedure: asyncio.Task[None] | None = None
        self.racp_requests: list[bytes] = []
        self._measurement = characteristic(
            GattCharacteristic.GLUCOSE_MEASUREMENT, Characteristic.Properties.NOTIFY
        )
        self._context = characteristic(
            GattCharacteristic.GLUCOSE_MEASUREMENT_CONTEXT, Characteristic.Properties.NOTIFY
        )
        self._racp = characteristic(
            GattCharacteristic.RECORD_ACCESS_CONTROL_POINT,
            Characteristic.Properties.WRITE | Characteristic.Properties.INDICATE,
            write=self._on_racp_write,
        )
        for record in records:
            self._records.append(self._record(record))

    # ---------------------------------------------------------------- records

    @property
    def records(self) -> list[GlucoseRecord]:
        return list(self._records)

    def restart_sequence(self) -> None:
        """Number the next records from ``first_sequence`` again (a meter reset)."""
        self._next_sequence = self.first_sequence

    def _record(self, item: GlucoseReading | GlucoseRecord) -> GlucoseRecord:
        index = self._taken
        self._taken += 1
        if isinstance(item, GlucoseRecord):
            return item
        if self.faults.restart_sequence_at is not None and index == self.faults.restart_sequence_at:
            self.restart_sequence()
        sequence = item.sequence if item.sequence is not None else self._next_sequence
        self._next_sequence = (sequence + 1) & 0xFFFF
        if self.faults.clock_reset and not self.clock.was_set:
            base_time = DEVICE_CLOCK_RESET + timedelta(minutes=index)
        elif item.time is not None:
            base_time = item.time
        else:
            base_time = self.clock.now().replace(microsecond=0)
        concentration = None if item.mg_dl is None else Decimal(item.mg_dl)
        if self.faults.nres_values:
            concentration = None
        has_context = item.meal is not None
        measurement = encode_glucose_measurement(
            GlucoseFields(
                sequence=sequence,
                base_time=base_time,
                time_offset_minutes=item.time_offset_minutes,
                concentration_mg_dl=concentration,
                type_code=item.sample_type,
                location_code=item.sample_location,
                status=item.status,
                context_follows=has_context,
            )
        )
        context = encode_glucose_context(sequence, item.meal) if has_context else None
        user_time = base_time + timedelta(minutes=item.time_offset_minutes or 0)
        return GlucoseRecord(sequence, measurement, context, user_time)

    async def measure(self, reading: GlucoseReading | GlucoseRecord) -> GlucoseRecord:
        """A new result: stored, and notified at once if a gateway has notifications on."""
        record = self._record(reading)
        self._records.append(record)
        connection = self._connection
        if connection is not None and Cccd.NOTIFICATION in self.cccd(connection, self._measurement):
            await self._send_record(connection, record)
        if self.faults.connect_window is not None:
            await self.open_connect_window()
        return record

    def has_pending_data(self) -> bool:
        return bool(self._records)

    # ---------------------------------------------------------------- GATT

    @property
    def advertised_service_uuids(self) -> Sequence[int]:
        return (GattService.GLUCOSE,)

    def profile_services(self) -> list[gatt.Service]:
        return [
            service(
                GattService.GLUCOSE,
                [
                    self._measurement,
                    self._context,
                    readable(GattCharacteristic.GLUCOSE_FEATURE, _U16.pack(self.feature)),
                    self._racp,
                ],
            )
        ]

    def on_disconnected(self) -> None:
        if self._procedure is not None:
            self._procedure.cancel()
            self._procedure = None

    # ---------------------------------------------------------------- RACP

    @property
    def procedure_in_progress(self) -> bool:
        return self._procedure is not None and not self._procedure.done()

    def _on_racp_write(self, connection: Connection, value: bytes) -> None:
        request = bytes(value)
        self.racp_requests.append(request)
        if Cccd.INDICATION not in self.cccd(connection, self._racp):
            raise ATT_Error(_ATT_CCCD_IMPROPERLY_CONFIGURED)
        op_code = request[0] if request else 0
        if op_code == RacpOpCode.ABORT_OPERATION:
            running = self._procedure if self.procedure_in_progress else None
            self._procedure = None
            self.spawn(self._abort(connection, request, running))
            return
        if self.procedure_in_progress:
            raise ATT_Error(_ATT_PROCEDURE_ALREADY_IN_PROGRESS)
        if op_code == RacpOpCode.REPORT_STORED_RECORDS and Cccd.NOTIFICATION not in self.cccd(
            connection, self._measurement
        ):
            raise ATT_Error(_ATT_CCCD_IMPROPERLY_CONFIGURED)
        task = asyncio.get_running_loop().create_task(self._run(connection, request))
        task.add_done_callback(self._task_done)
        self._procedure = task

    async def _abort(
        self, connection: Connection, request: bytes, running: asyncio.Task[None] | None
    ) -> None:
        await asyncio.sleep(0)
        abort = _parse_request(request)
        if abort is None or abort.operator != RacpOperator.NULL or abort.operand:
            code = RacpResponseCode.INVALID_OPERATOR
        else:
            code = RacpResponseCode.SUCCESS
            if running is not None:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
        await self.indicate(connection, self._racp, racp_response(RacpOpCode.ABORT_OPERATION, code))

    async def _run(self, connection: Connection, request: bytes) -> None:
        await asyncio.sleep(0)  # let the write response go first
        op_code = request[0] if request else 0
        try:
            if op_code == RacpOpCode.REPORT_STORED_RECORDS:
                response = await self._report(connection, request)
            elif op_code == RacpOpCode.DELETE_STORED_RECORDS:
                response = self._delete(request)
            elif op_code == RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS:
                count = len(self._select(request))
                response = bytes(
                    RecordAccessControlPoint(
                        RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, number_of_records=count
                    )
                )
            else:
                response = racp_response(op_code, RacpResponseCode.OP_CODE_NOT_SUPPORTED)
        except _RacpRejected as rejected:
            response = racp_response(op_code, rejected.code)
        except _Dropped:
            return
        # The procedure ends with its response: the confirmation of that indication already
        # precedes any next request on the link.
        if self._procedure is asyncio.current_task():
            self._procedure = None
        await self.indicate(connection, self._racp, response)

    async def _report(self, connection: Connection, request: bytes) -> bytes:
        selected = self._select(request)
        if not selected:
            return racp_response(request[0], RacpResponseCode.NO_RECORDS_FOUND)
        for record in selected:
            if self.record_interval:
                await asyncio.sleep(self.record_interval)
            await self._send_record(connection, record)
            if self.should_drop_now():
                logger.debug("fault: dropping the connection mid-transfer")
                await self.disconnect_link(connection)
                raise _Dropped
        return racp_response(request[0], RacpResponseCode.SUCCESS)

    async def _send_record(self, connection: Connection, record: GlucoseRecord) -> None:
        copies = 2 if self.faults.duplicate_records else 1
        for _ in range(copies):
            await self.notify(connection, self._measurement, self.faults.mangle(record.measurement))
            if record.context is not None:
                await self.notify(connection, self._context, self.faults.mangle(record.context))

    def _delete(self, request: bytes) -> bytes:
        selected = self._select(request)
        if not selected:
            return racp_response(request[0], RacpResponseCode.NO_RECORDS_FOUND)
        chosen = {id(record) for record in selected}
        self._records = [record for record in self._records if id(record) not in chosen]
        return racp_response(request[0], RacpResponseCode.SUCCESS)

    def _select(self, request: bytes) -> list[GlucoseRecord]:
        """The records an RACP request selects; raises ``_RacpRejected`` for bad requests."""
        if len(request) < 2:
            raise _RacpRejected(RacpResponseCode.INVALID_OPERATOR)
        command = _parse_request(request)
        if command is None:  # a filter operand missing or of the wrong length
            raise _RacpRejected(RacpResponseCode.INVALID_OPERAND)
        operator = command.operator
        records = sorted(self._records, key=lambda record: record.sequence)
        if operator == RacpOperator.NULL:
            raise _RacpRejected(RacpResponseCode.INVALID_OPERATOR)
        if operator > RacpOperator.LAST_RECORD:
            raise _RacpRejected(RacpResponseCode.OPERATOR_NOT_SUPPORTED)
        if operator in (
            RacpOperator.ALL_RECORDS,
            RacpOperator.FIRST_RECORD,
            RacpOperator.LAST_RECORD,
        ):
            if command.operand:
                raise _RacpRejected(RacpResponseCode.INVALID_OPERAND)
            if operator == RacpOperator.ALL_RECORDS:
                return list(self._records)
            if not records:
                return []
            return [records[0] if operator == RacpOperator.FIRST_RECORD else records[-1]]
        key = self._filter_key(command.filter_type)
        low, high = _bound(command.minimum), _bound(command.maximum)
        if operator == RacpOperator.WITHIN_RANGE:
            if low is None or high is None or low > high:
                raise _RacpRejected(RacpResponseCode.INVALID_OPERAND)
            return [r for r in self._records if (k := key(r)) is not None and low <= k <= high]
        if operator == RacpOperator.LESS_THAN_OR_EQUAL:
            if high is None:
                raise _RacpRejected(RacpResponseCode.INVALID_OPERAND)
            return [r for r in self._records if (k := key(r)) is not None and k <= high]
        if low is None:
            raise _RacpRejected(RacpResponseCode.INVALID_OPERAND)
        return [r for r in self._records if (k := key(r)) is not None and k >= low]

    @staticmethod
    def _filter_key(filter_type: FilterType | None) -> Callable[[GlucoseRecord], Any]:
        """What a filter compares: the sequence number or the user-facing time."""
        if filter_type == FilterType.SEQUENCE_NUMBER:
            return lambda record: record.sequence
        if filter_type == FilterType.USER_FACING_TIME:
            return lambda record: record.time
        raise _RacpRejected(RacpResponseCode.OPERAND_NOT_SUPPORTED)


def _bound(value: int | DateTime | None) -> Any:
    """A filter bound as the records' keys hold it (a sequence number or a naive time, like
    :meth:`GlucoseMeter._filter_key`); a user-facing time that is no valid date is an invalid
    operand."""
    if not isinstance(value, DateTime):
        return value
    moment = value.to_datetime()
    if moment is None:
        raise _RacpRejected(RacpResponseCode.INVALID_OPERAND)
    return moment


class _Dropped(Exception):
    """The ``drop_after_records`` fault fired."""
