"""The reading as alerts sees it, and what a reading's flags mean for the numeric rules.

Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
import numpy as np
import numpy.typing as npt

__all__ = [
    "EXCLUDING_FLAGS",
    "REPORT_TYPES",
    "SUSPECT_FLAGS",
    "UNTRUSTED_TIME_FLAGS",
    "Point",
    "Quality",
    "ReadingColumns",
    "Severity",
    "StoredReading",
    "assess",
    "assess_parts",
    "plausible",
]


class StoredReading(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One stored reading, as ingest hands it over after inserting it (a Struct: built in C,
    one per reading; holds no reference back to itself, so the collector need not track it)."""

    reading_id: uuid.UUID
    patient_id: uuid.UUID
    type: str
    time: datetime  # aware, clinical time (device clock when trusted, else receive time)
    received_at: datetime  # aware
    device_id: str
    gateway_id: str
    flags: tuple[str, ...]
    values: Mapping[str, float]  # code -> value in canonical units


class Severity(enum.IntEnum):
    """Clinical severity of an episode; also a closed set for metric labels."""

    INFO = 0
    LOW = 1
    MODERATE = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


# The reading is not a patient measurement (control solution), or the device says the number is
# outside its measuring range or the measurement failed: never a number for the numeric rules.
EXCLUDING_FLAGS = frozenset(
    {
        "control_solution",
        "result_too_high",
        "result_too_low",
        "measurement_failed",
        "sensor_malfunction",
        "sample_size_insufficient",
        "strip_insertion_error",
        "strip_type_incorrect",
        "sensor_temperature_too_high",
        "sensor_temperature_too_low",
        "device_fault",
        "general_device_fault",
        "time_fault",
        "sensor_read_interrupted",
    }
)
# A measurement the device itself doubts (cuff technique, movement): down-weighted per rule.
SUSPECT_FLAGS = frozenset(
    {
        "body_movement",
        "cuff_loose",
        "cuff_fit_loose",
        "improper_position",
        "improper_measurement_position",
        "pulse_rate_out_of_range",
        "pulse_rate_exceeds_upper_limit",
        "pulse_rate_less_than_lower_limit",
    }
)
# Informational: no effect on the number itself.
BENIGN_FLAGS = frozenset(
    {
        "irregular_pulse",
        "device_clock_unset",
        "device_clock_reset",
        "battery_low",
        "duplicate_suspected",
        "user_unknown",
        "multiple_bonds",
    }
)
# Reading types that are reports by a person (symptoms), not device readings: they never count
# as the patient taking a reading (missing data).
REPORT_TYPES = frozenset({"symptom"})
# The clinical time is the receive time: good enough for one reading, not for windows and trends.
UNTRUSTED_TIME_FLAGS = frozenset({"device_clock_unset", "device_clock_reset"})
_VALUE_FLAG_SUFFIXES = ("_nan", "_nres", "_positive_infinity", "_negative_infinity")

# Physiologically possible ranges (inclusive); a value outside is a device or transfer error.
PLAUSIBLE: Mapping[str, tuple[float, float]] = {
    "systolic": (50.0, 300.0),
    "diastolic": (20.0, 200.0),
    "mean_arterial": (30.0, 250.0),
    "pulse": (20.0, 300.0),
    "glucose": (10.0, 1000.0),
    "body_weight": (20.0, 350.0),
    "bmi": (8.0, 100.0),
    "body_fat": (2.0, 80.0),
}


@dataclass(frozen=True, slots=True)
class Quality:
    """What the rules may do with a reading."""

    excluded: bool  # never feeds a numeric rule
    suspect: bool  # down-weighted (cuff errors, unknown flags)
    time_trusted: bool  # clinical time is the device's own clock
    values: Mapping[str, float]  # the plausible numeric values


class Point(msgspec.Struct, frozen=True, gc=False):
    """A reading's usable values at its clinical time, in a patient's history (a Struct, as
    :class:`StoredReading`)."""

    time: datetime
    reading_id: uuid.UUID
    values: Mapping[str, float]
    suspect: bool
    time_trusted: bool
    device_id: str


def assess(reading: StoredReading) -> Quality:
    """Classify a reading. Unknown flags are treated as *suspect*: the reading still reaches the
    safety thresholds (a crisis is never ignored because of a flag we do not know) but counts
    less in averages, counts and trends."""
    return assess_parts(reading.flags, reading.values)


def assess_parts(flags: tuple[str, ...] | list[str], raw: Mapping[str, float]) -> Quality:
    """:func:`assess` on a reading's flags and values."""
    excluded = False
    suspect = False
    for flag in flags:
        if flag in EXCLUDING_FLAGS:
            excluded = True
        elif flag in SUSPECT_FLAGS:
            suspect = True
        elif flag in BENIGN_FLAGS or flag.endswith(_VALUE_FLAG_SUFFIXES):
            continue
        else:
            suspect = True
    time_trusted = not any(f in UNTRUSTED_TIME_FLAGS for f in flags)
    return Quality(
        excluded=excluded, suspect=suspect, time_trusted=time_trusted, values=plausible(raw)
    )


def plausible(raw: Mapping[str, float]) -> dict[str, float]:
    """The values the rules may use: numbers in their physiologically possible range, and a
    pressure pair only when diastolic is below systolic (whatever the flags say)."""
    values: dict[str, float] = {}
    for code, value in raw.items():
        bounds = PLAUSIBLE.get(code)
        if value != value:  # NaN never reaches here from ingest, but never trust it
            continue
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            continue
        values[code] = float(value)
    sys_, dia = values.get("systolic"), values.get("diastolic")
    if sys_ is not None and dia is not None and dia >= sys_:
        # a pressure pair that cannot be: neither number is trusted
        del values["systolic"], values["diastolic"]
    return values


# The value codes the per-reading rules compare (ReadingColumns holds these as columns).
COLUMN_CODES = ("systolic", "diastolic", "mean_arterial", "glucose", "body_weight")
_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class ReadingColumns:
    """Readings of one type as columns, for vector comparisons (the batch prefilter): per code
    of :data:`COLUMN_CODES`, ``values`` holds what :func:`assess_parts` keeps (NaN where it keeps
    nothing: absent, NaN, implausible, or an impossible pressure pair) and ``raw`` the number
    as stored (NaN where absent); ``flags`` is each reading's flags. Row ``i`` is
    ``readings[i]``."""

    type: str
    values: Mapping[str, npt.NDArray[np.float64]]
    raw: Mapping[str, npt.NDArray[np.float64]]
    flags: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, type_: str, readings: Sequence[StoredReading]) -> ReadingColumns:
        raw = {
            code: np.array([r.values.get(code, _NAN) for r in readings], dtype=np.float64)
            for code in COLUMN_CODES
        }
        values: dict[str, npt.NDArray[np.float64]] = {}
        for code, col in raw.items():
            bounds = PLAUSIBLE.get(code)
            if bounds is None:
                values[code] = col
                continue
            # NaN compares false: dropped with the implausible values, as assess_parts does
            values[code] = np.where((col >= bounds[0]) & (col <= bounds[1]), col, np.nan)
        s, d = values["systolic"], values["diastolic"]
        impossible = d >= s  # a pressure pair that cannot be (false where either is NaN)
        if impossible.any():
            values["systolic"] = np.where(impossible, np.nan, s)
            values["diastolic"] = np.where(impossible, np.nan, d)
        return cls(type_, values, raw, tuple(r.flags for r in readings))

    def take(self, rows: npt.NDArray[np.intp]) -> ReadingColumns:
        """These rows only, in this order."""
        return ReadingColumns(
            self.type,
            {code: col[rows] for code, col in self.values.items()},
            {code: col[rows] for code, col in self.raw.items()},
            tuple(self.flags[i] for i in rows),
        )

    def __len__(self) -> int:
        return len(self.flags)
