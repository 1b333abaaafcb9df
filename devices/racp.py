"""Record Access Control Point (0x2A52), as the Glucose service uses it.

Layout: ``op code`` (uint8), ``operator`` (uint8), operand (variable)::

    report stored records (1) / delete stored records (2) / report number of records (4)
        operator all (1), first (5), last (6): no operand
        operator <= (2), >= (3): filter type (uint8) + one value
        operator within range (4): filter type + minimum + maximum (inclusive)
        filter type 1 = sequence number (uint16), 2 = user facing time (Date Time, 7 bytes)
    abort operation (3): operator null (0), no operand
    number of stored records response (5): operator null, operand uint16 count
    response code (6): operator null, operand = request op code (uint8) + response code (uint8)
    combined report (7) / combined report response (8): defined by the GATT Specification
        Supplement for other services, not by Glucose; their operand is kept raw

For ``<=`` the value is ``maximum``, for ``>=`` it is ``minimum``. An operand that this module
does not understand (unknown op code, operator or filter type) is kept raw in ``operand``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from devices._codec import UINT8, UINT16, check_length, check_uint
from devices._enum import OpenIntEnum
from devices.date_time import DateTime
from devices.errors import EncodeError, ParseError

__all__ = [
    "FilterType",
    "RacpOpCode",
    "RacpOperator",
    "RacpResponseCode",
    "RecordAccessControlPoint",
    "parse_record_access_control_point",
]

_WHAT = "record access control point (0x2A52)"


class RacpOpCode(OpenIntEnum):
    REPORT_STORED_RECORDS = 1
    DELETE_STORED_RECORDS = 2
    ABORT_OPERATION = 3
    REPORT_NUMBER_OF_STORED_RECORDS = 4
    NUMBER_OF_STORED_RECORDS_RESPONSE = 5
    RESPONSE_CODE = 6
    COMBINED_REPORT = 7  # GATT Specification Supplement; not used by the Glucose service
    COMBINED_REPORT_RESPONSE = 8  # operand kept raw (its size is the using service's)


class RacpOperator(OpenIntEnum):
    NULL = 0
    ALL_RECORDS = 1
    LESS_THAN_OR_EQUAL = 2
    GREATER_THAN_OR_EQUAL = 3
    WITHIN_RANGE = 4
    FIRST_RECORD = 5
    LAST_RECORD = 6


class FilterType(OpenIntEnum):
    SEQUENCE_NUMBER = 1
    USER_FACING_TIME = 2


class RacpResponseCode(OpenIntEnum):
    SUCCESS = 1
    OP_CODE_NOT_SUPPORTED = 2
    INVALID_OPERATOR = 3
    OPERATOR_NOT_SUPPORTED = 4
    INVALID_OPERAND = 5
    NO_RECORDS_FOUND = 6
    ABORT_UNSUCCESSFUL = 7
    PROCEDURE_NOT_COMPLETED = 8
    OPERAND_NOT_SUPPORTED = 9


_RECORD_REQUESTS = {
    RacpOpCode.REPORT_STORED_RECORDS,
    RacpOpCode.DELETE_STORED_RECORDS,
    RacpOpCode.REPORT_NUMBER_OF_STORED_RECORDS,
}
_FILTERED = {
    RacpOperator.LESS_THAN_OR_EQUAL,
    RacpOperator.GREATER_THAN_OR_EQUAL,
    RacpOperator.WITHIN_RANGE,
}

Bound = int | DateTime


@dataclass(frozen=True, slots=True)
class RecordAccessControlPoint:
    """One RACP request or indication."""

    op_code: RacpOpCode
    operator: RacpOperator = RacpOperator.NULL
    filter_type: FilterType | None = None
    minimum: Bound | None = None
    maximum: Bound | None = None
    number_of_records: int | None = None
    request_op_code: RacpOpCode | None = None
    response_code: RacpResponseCode | None = None
    operand: bytes = b""

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, 2, _WHAT)
        op_code, operator = RacpOpCode(data[0]), RacpOperator(data[1])
        rest = bytes(data[2:])
        if op_code in _RECORD_REQUESTS and operator in _FILTERED:
            check_length(data, 3, _WHAT, data[0])
            filter_type = FilterType(data[2])
            size = {FilterType.SEQUENCE_NUMBER: 2, FilterType.USER_FACING_TIME: DateTime.SIZE}.get(
                filter_type
            )
            if size is None:
                return cls(op_code, operator, filter_type, operand=bytes(data[3:]))
            count = 2 if operator == RacpOperator.WITHIN_RANGE else 1
            required = 3 + count * size
            if len(data) != required:
                raise ParseError(_WHAT, size=len(data), required=required, flags=data[0])
            values: list[Bound] = [
                UINT16.unpack_from(data, 3 + i * size)[0]
                if filter_type == FilterType.SEQUENCE_NUMBER
                else DateTime.from_bytes(data, 3 + i * size)
                for i in range(count)
            ]
            if operator == RacpOperator.WITHIN_RANGE:
                return cls(op_code, operator, filter_type, values[0], values[1])
            if operator == RacpOperator.GREATER_THAN_OR_EQUAL:
                return cls(op_code, operator, filter_type, minimum=values[0])
            return cls(op_code, operator, filter_type, maximum=values[0])
        if op_code == RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            if len(data) != 4:
                raise ParseError(_WHAT, size=len(data), required=4, flags=data[0])
            return cls(op_code, operator, number_of_records=UINT16.unpack_from(data, 2)[0])
        if op_code == RacpOpCode.RESPONSE_CODE:
            if len(data) != 4:
                raise ParseError(_WHAT, size=len(data), required=4, flags=data[0])
            return cls(
                op_code,
                operator,
                request_op_code=RacpOpCode(data[2]),
                response_code=RacpResponseCode(data[3]),
            )
        return cls(op_code, operator, operand=rest)

    def __bytes__(self) -> bytes:
        head = UINT8.pack(check_uint(int(self.op_code), 8, "op code")) + UINT8.pack(
            check_uint(int(self.operator), 8, "operator")
        )
        if self.number_of_records is not None:
            if self.op_code != RacpOpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
                raise EncodeError("number_of_records belongs to the number of records response")
            return head + UINT16.pack(check_uint(self.number_of_records, 16, "number of records"))
        if self.response_code is not None or self.request_op_code is not None:
            if self.op_code != RacpOpCode.RESPONSE_CODE or self.response_code is None:
                raise EncodeError("a response code needs op code 6 and both parts")
            if self.request_op_code is None:
                raise EncodeError("a response code needs the request op code")
            return head + bytes(
                [
                    check_uint(int(self.request_op_code), 8, "request op code"),
                    check_uint(int(self.response_code), 8, "response code"),
                ]
            )
        if self.filter_type is None:
            if self.minimum is not None or self.maximum is not None:
                raise EncodeError("a bound needs a filter type")
            return head + self.operand
        out = head + UINT8.pack(check_uint(int(self.filter_type), 8, "filter type"))
        bounds = {
            RacpOperator.WITHIN_RANGE: (self.minimum, self.maximum),
            RacpOperator.GREATER_THAN_OR_EQUAL: (self.minimum,),
            RacpOperator.LESS_THAN_OR_EQUAL: (self.maximum,),
        }.get(self.operator)
        if self.filter_type not in (FilterType.SEQUENCE_NUMBER, FilterType.USER_FACING_TIME):
            if self.minimum is not None or self.maximum is not None:
                raise EncodeError("an unknown filter type carries a raw operand only")
            return out + self.operand
        if bounds is None or self.op_code not in _RECORD_REQUESTS:
            raise EncodeError("a filter needs a record request and the <=, >= or range operator")
        if self.operand:
            raise EncodeError("a filtered request has no raw operand")
        for bound in bounds:
            if self.filter_type == FilterType.SEQUENCE_NUMBER and isinstance(bound, int):
                out += UINT16.pack(check_uint(bound, 16, "sequence number"))
            elif self.filter_type == FilterType.USER_FACING_TIME and isinstance(bound, DateTime):
                out += bytes(bound)
            else:
                raise EncodeError("the bounds do not match the operator and filter type")
        return out


def parse_record_access_control_point(data: bytes) -> RecordAccessControlPoint:
    return RecordAccessControlPoint.from_bytes(data)
