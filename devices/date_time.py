"""Date Time (0x2A08, 7 bytes) and Current Time (0x2A2B, 10 bytes).

Fields are kept as sent: a year of 0, a month of 0 or a day of 0 mean "not known", and a clock
may hold impossible values (month 13). :meth:`DateTime.to_datetime` gives a naive
:class:`~datetime.datetime` only when the whole date is known and valid; deciding what a reset
clock means is :mod:`devices.canonical`'s job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from enum import IntFlag
from typing import ClassVar, Self

from devices._codec import check_length, check_uint, unpack_at
from devices._enum import OpenIntEnum

__all__ = [
    "AdjustReason",
    "CurrentTime",
    "DateTime",
    "DayOfWeek",
    "naive_datetime",
    "parse_current_time",
    "parse_date_time",
]

_DATE_TIME = struct.Struct("<HBBBBB")
_CURRENT_TIME_TAIL = struct.Struct("<BBB")


def naive_datetime(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A naive datetime on purpose: the device clock has no time zone (see ARCHITECTURE.md)."""
    return datetime(year, month, day, hour, minute, second)  # noqa: DTZ001


@dataclass(frozen=True, slots=True)
class DateTime:
    """The 7-byte Date Time field as sent (year 0, month 0, day 0 = unknown)."""

    SIZE: ClassVar[int] = 7

    year: int
    month: int
    day: int
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def from_bytes(cls, data: bytes, offset: int = 0) -> Self:
        """Read at ``offset``; callers check the whole characteristic's length first, and a
        too-short ``data`` or a negative offset is a :class:`ParseError` here too."""
        return cls(*unpack_at(_DATE_TIME, data, offset, "date time field"))

    def __bytes__(self) -> bytes:
        return _DATE_TIME.pack(
            check_uint(self.year, 16, "year"),
            check_uint(self.month, 8, "month"),
            check_uint(self.day, 8, "day"),
            check_uint(self.hours, 8, "hours"),
            check_uint(self.minutes, 8, "minutes"),
            check_uint(self.seconds, 8, "seconds"),
        )

    @classmethod
    def from_datetime(cls, value: datetime) -> Self:
        return cls(value.year, value.month, value.day, value.hour, value.minute, value.second)

    @property
    def date_known(self) -> bool:
        """Year, month and day are all given (none is the "unknown" 0)."""
        return self.year != 0 and self.month != 0 and self.day != 0

    def to_datetime(self) -> datetime | None:
        """The naive device time, or ``None`` when a part is unknown or out of range."""
        if not self.date_known:
            return None
        try:
            return naive_datetime(
                self.year, self.month, self.day, self.hours, self.minutes, self.seconds
            )
        except ValueError:
            return None

    def isoformat(self) -> str:
        """The fields as an ISO-like text, unknown parts as zeros (for display only)."""
        return (
            f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
            f"T{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}"
        )


def parse_date_time(data: bytes) -> DateTime:
    check_length(data, DateTime.SIZE, "date time (0x2A08)")
    return DateTime.from_bytes(data)


class DayOfWeek(OpenIntEnum):
    UNKNOWN = 0
    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7


class AdjustReason(IntFlag):
    NONE = 0
    MANUAL_TIME_UPDATE = 0x01
    EXTERNAL_REFERENCE_TIME_UPDATE = 0x02
    CHANGE_OF_TIME_ZONE = 0x04
    CHANGE_OF_DST = 0x08


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """Current Time (0x2A2B): Exact Time 256 (date time, day of week, 1/256 s) + adjust reason."""

    SIZE: ClassVar[int] = 10

    date_time: DateTime
    day_of_week: DayOfWeek = DayOfWeek.UNKNOWN
    fractions256: int = 0
    adjust_reason: AdjustReason = AdjustReason.NONE

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        check_length(data, cls.SIZE, "current time (0x2A2B)")
        day, fractions, reason = _CURRENT_TIME_TAIL.unpack_from(data, DateTime.SIZE)
        return cls(DateTime.from_bytes(data), DayOfWeek(day), fractions, AdjustReason(reason))

    def __bytes__(self) -> bytes:
        return bytes(self.date_time) + _CURRENT_TIME_TAIL.pack(
            check_uint(int(self.day_of_week), 8, "day of week"),
            check_uint(self.fractions256, 8, "fractions256"),
            check_uint(int(self.adjust_reason), 8, "adjust reason"),
        )


def parse_current_time(data: bytes) -> CurrentTime:
    return CurrentTime.from_bytes(data)
