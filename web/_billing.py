"""The RPM billing and compliance ledger, CY2026 Medicare rules (pure: no I/O, no clock).

Device supply, per rolling 30-day period (anchored on the first day with a reading after
enrollment; days are local dates in the site's time zone, at least one vital reading each):

- 99454: 16-30 days with a reading; 99445 (new in CY2026): 2-15 days. Never both for one
  period; under 2 days, no device code.
- 99453 (set-up and education): once per enrollment (episode of care), with the first period
  that reaches the 2-day minimum.

Treatment management, per calendar month (site time zone), requiring at least one live,
real-time interactive communication in the month:

- 99470 (new in CY2026): the first 10 minutes (10-19 minutes in all);
- 99457: the first 20 minutes; 99458: each further full 20 minutes;
- 99457 and 99470 are exclusive: a month has one or the other.

Requirement checks on every line: consent on file (days and minutes outside the consent
window do not count) and one billing practitioner for the period (none or several block it).
"Days still needed" is reported for the open period of a patient who has not reached 16 days.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

__all__ = [
    "DEVICE_MIN_DAYS_99445",
    "DEVICE_MIN_DAYS_99454",
    "PERIOD_DAYS",
    "DevicePeriod",
    "EnrollmentFacts",
    "LedgerLine",
    "TimeEntry",
    "device_periods",
    "ledger_for_month",
    "management_lines",
]

PERIOD_DAYS = 30
DEVICE_MIN_DAYS_99454 = 16
DEVICE_MIN_DAYS_99445 = 2
MGMT_FIRST_99457 = 20
MGMT_FIRST_99470 = 10
MGMT_EACH_99458 = 20


@dataclass(frozen=True, slots=True)
class EnrollmentFacts:
    """One enrollment, its dates already converted to the site's local dates."""

    enrollment_id: int
    patient_id: uuid.UUID
    program_id: str
    enrolled_on: date
    ended_on: date | None  # last day enrolled (inclusive)
    consent_on: date | None
    consent_withdrawn_on: date | None  # first day without consent
    billing_practitioner: str | None


@dataclass(frozen=True, slots=True)
class TimeEntry:
    entry_id: int
    day: date  # local date
    seconds: int
    interactive: bool


@dataclass(frozen=True, slots=True)
class DevicePeriod:
    index: int
    start: date
    end: date  # inclusive: start + 29 days

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True, slots=True)
class LedgerLine:
    patient_id: uuid.UUID
    enrollment_id: int
    code: str  # CPT, or "" for a line that bills nothing (shown for its checks)
    units: int
    period_start: date
    period_end: date
    status: str  # billable | blocked | not_met | in_progress
    reasons: tuple[str, ...] = ()
    days: tuple[date, ...] = ()  # evidence: the days with readings
    minutes: float | None = None
    time_entry_ids: tuple[int, ...] = ()
    days_still_needed: int | None = None
    days_left: int | None = None
    billing_practitioner: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _consented(e: EnrollmentFacts, day: date) -> bool:
    if e.consent_on is None or day < e.consent_on:
        return False
    return e.consent_withdrawn_on is None or day < e.consent_withdrawn_on


def _enrolled(e: EnrollmentFacts, day: date) -> bool:
    return e.enrolled_on <= day and (e.ended_on is None or day <= e.ended_on)


def device_periods(anchor: date, until: date) -> list[DevicePeriod]:
    """The rolling 30-day periods from ``anchor`` up to the one containing ``until``."""
    periods: list[DevicePeriod] = []
    start, index = anchor, 0
    while start <= until:
        periods.append(DevicePeriod(index, start, start + timedelta(days=PERIOD_DAYS - 1)))
        start += timedelta(days=PERIOD_DAYS)
        index += 1
    return periods


def _practitioner_check(
    enrollments: Sequence[EnrollmentFacts], start: date, end: date
) -> tuple[str | None, tuple[str, ...]]:
    active = [
        e
        for e in enrollments
        if e.enrolled_on <= end and (e.ended_on is None or e.ended_on >= start)
    ]
    names = {e.billing_practitioner for e in active if e.billing_practitioner}
    if not names:
        return None, ("no billing practitioner on file",)
    if len(names) > 1:
        return None, (f"{len(names)} billing practitioners in the period; one is required",)
    return names.pop(), ()


def _consent_check(enrollment: EnrollmentFacts, start: date, end: date) -> tuple[str, ...]:
    if enrollment.consent_on is None:
        return ("no consent on file",)
    if enrollment.consent_on > end:
        return ("consent given after the period",)
    if enrollment.consent_withdrawn_on is not None and enrollment.consent_withdrawn_on <= start:
        return ("consent withdrawn before the period",)
    return ()


def _device_lines(
    enrollment: EnrollmentFacts,
    all_enrollments: Sequence[EnrollmentFacts],
    reading_days: Sequence[date],
    month_start: date,
    month_end: date,
    today: date,
    setup_billed_before: bool,
) -> list[LedgerLine]:
    counted = sorted(set(reading_days))
    if not counted:
        return []
    periods = device_periods(counted[0], min(month_end, today))
    lines: list[LedgerLine] = []
    setup_done = setup_billed_before
    for period in periods:
        days = tuple(
            counted[bisect_left(counted, period.start) : bisect_right(counted, period.end)]
        )
        practitioner, p_reasons = _practitioner_check(all_enrollments, period.start, period.end)
        reasons = _consent_check(enrollment, period.start, period.end) + p_reasons
        n = len(days)
        open_period = period.contains(today) and today < period.end
        in_month = month_start <= period.end <= month_end
        first_to_reach_setup = not setup_done and n >= DEVICE_MIN_DAYS_99445 and not open_period
        if first_to_reach_setup:
            setup_done = True
        if open_period and period.start <= month_end:
            needed = max(0, DEVICE_MIN_DAYS_99454 - n)
            left = (period.end - today).days + (0 if today in days else 1)
            lines.append(
                LedgerLine(
                    enrollment.patient_id,
                    enrollment.enrollment_id,
                    "99454" if n >= DEVICE_MIN_DAYS_99454 else "",
                    0,
                    period.start,
                    period.end,
                    "in_progress",
                    reasons
                    + (
                        (f"at risk: {needed} more days needed, {left} left",)
                        if needed > left
                        else ()
                    ),
                    days,
                    days_still_needed=needed,
                    days_left=left,
                    billing_practitioner=practitioner,
                )
            )
            continue
        if not in_month:
            continue
        status = "blocked" if reasons else "billable"
        if n >= DEVICE_MIN_DAYS_99454:
            code = "99454"
        elif n >= DEVICE_MIN_DAYS_99445:
            code = "99445"
        else:
            code, status = "", "not_met"
            reasons = (*reasons, f"{n} day(s) with readings; 2 needed for 99445")
        lines.append(
            LedgerLine(
                enrollment.patient_id,
                enrollment.enrollment_id,
                code,
                1 if code else 0,
                period.start,
                period.end,
                status,
                reasons,
                days,
                billing_practitioner=practitioner,
            )
        )
        if first_to_reach_setup:
            lines.append(
                LedgerLine(
                    enrollment.patient_id,
                    enrollment.enrollment_id,
                    "99453",
                    1,
                    period.start,
                    period.end,
                    status,
                    reasons,
                    days,
                    billing_practitioner=practitioner,
                    extra={"note": "set-up and education, once per enrollment"},
                )
            )
    return lines


def management_lines(
    enrollment: EnrollmentFacts,
    all_enrollments: Sequence[EnrollmentFacts],
    entries: Iterable[TimeEntry],
    month_start: date,
    month_end: date,
) -> list[LedgerLine]:
    """99457/99458 or 99470 for one calendar month."""
    counted = [
        t
        for t in entries
        if month_start <= t.day <= month_end
        and _enrolled(enrollment, t.day)
        and _consented(enrollment, t.day)
    ]
    if not counted:
        return []
    seconds = sum(t.seconds for t in counted)
    minutes = seconds / 60
    interactive = any(t.interactive for t in counted)
    ids = tuple(t.entry_id for t in counted)
    practitioner, reasons = _practitioner_check(all_enrollments, month_start, month_end)
    reasons = _consent_check(enrollment, month_start, month_end) + reasons
    if not interactive:
        reasons = (*reasons, "no live interactive communication this month")
    status = "blocked" if reasons else "billable"

    def line(code: str, units: int, st: str = status, why: tuple[str, ...] = reasons) -> LedgerLine:
        return LedgerLine(
            enrollment.patient_id,
            enrollment.enrollment_id,
            code,
            units,
            month_start,
            month_end,
            st,
            why,
            minutes=round(minutes, 1),
            time_entry_ids=ids,
            billing_practitioner=practitioner,
        )

    whole = int(seconds // 60)
    if whole >= MGMT_FIRST_99457:
        out = [line("99457", 1)]
        extra_units = (whole - MGMT_FIRST_99457) // MGMT_EACH_99458
        if extra_units:
            out.append(line("99458", extra_units))
        return out
    if whole >= MGMT_FIRST_99470:
        return [line("99470", 1)]
    short = MGMT_FIRST_99470 - minutes
    return [line("", 0, "not_met", (*reasons, f"{short:.1f} more minutes needed for 99470"))]


def ledger_for_month(
    enrollments: Sequence[EnrollmentFacts],
    reading_days: Sequence[date],
    entries: Sequence[TimeEntry],
    month_start: date,
    month_end: date,
    today: date,
    setup_billed_before: frozenset[int] = frozenset(),
) -> list[LedgerLine]:
    """All lines of one patient for one month. ``setup_billed_before``: enrollment ids whose
    99453 was already billed in an earlier month (the ledger recomputes it otherwise)."""
    lines: list[LedgerLine] = []
    # Device supply and management time are billed per patient: a day or a time entry covered
    # by two overlapping enrollments counts once, for the earlier one.
    days_left = set(reading_days)
    entries_left = list(entries)
    for e in sorted(enrollments, key=lambda x: (x.enrolled_on, x.enrollment_id)):
        mine = {d for d in days_left if _enrolled(e, d) and _consented(e, d)}
        days_left -= mine
        lines += _device_lines(
            e,
            enrollments,
            sorted(mine),
            month_start,
            month_end,
            today,
            e.enrollment_id in setup_billed_before,
        )
        my_entries = [t for t in entries_left if _enrolled(e, t.day) and _consented(e, t.day)]
        entries_left = [t for t in entries_left if t not in my_entries]
        lines += management_lines(e, enrollments, my_entries, month_start, month_end)
    return lines
