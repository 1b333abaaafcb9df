"""The RPM billing and compliance ledger, CY2026 Medicare rules (pure: no I/O, no clock).

Everything is billed per patient (one stream, whatever the enrollment rows): a patient's
enrollments are merged into the instants they cover with consent, and a reading or a minute of
time counts only inside that coverage. Enrollment start and end, consent given and withdrawn
are compared as instants (a consent given at 20:00 does not cover a reading at noon that day;
a withdrawal at 20:00 keeps the readings of that morning). Days are local dates in the site's
time zone.

Device supply, per rolling 30-day period anchored on the first covered day with a reading of
an episode of care:

- 99454: 16-30 days with a reading; 99445 (new in CY2026): 2-15 days. Never both for one
  period; under 2 days, no device code.
- 99453 (set-up and education): once per episode of care, with the first period that reaches
  the 2-day minimum. CMS (CY2020 PFS final rule, CMS-1715-F, 84 FR 62568) bills 99453 "once per
  episode of care", an episode beginning "when the remote physiologic monitoring service is
  initiated" and ending "with attainment of targeted treatment goals". CMS gives no gap in
  days; here an episode is the patient's consented enrollment coverage, gaps of up to
  ``EPISODE_GAP_DAYS`` (one device period) included: a re-enrollment or a re-consent within 30
  days continues the episode (same periods, no second 99453).

Treatment management, per calendar month (site time zone), requiring at least one live,
real-time interactive communication in the month (AMA CPT 2026, 99457/99470):

- 99470 (new in CY2026): the first 10 minutes (10-19 minutes in all);
- 99457: the first 20 minutes; 99458: each further full 20 minutes;
- 99457 and 99470 are exclusive: a month has one or the other.
- Time is summed in seconds; the decision uses the whole minutes (19 min 59 s is 19 minutes).

Requirement checks on every line: one billing practitioner for the period among the enrollments
that cover it with consent (none or several block it; an enrollment without consent bills
nothing and does not block another). "Days still needed" is reported for the open period of a
patient who has not reached 16 days. A patient without readings for a whole period before the
month gets one ``inactive`` line ("inactive since <last day with a reading>") instead of
``not_met`` lines every month.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

__all__ = [
    "DEVICE_MIN_DAYS_99445",
    "DEVICE_MIN_DAYS_99454",
    "EPISODE_GAP_DAYS",
    "PERIOD_DAYS",
    "ConsentWindow",
    "DevicePeriod",
    "EnrollmentFacts",
    "LedgerLine",
    "TimeEntry",
    "device_periods",
    "ledger_for_month",
    "local_noon",
]

PERIOD_DAYS = 30
EPISODE_GAP_DAYS = 30
DEVICE_MIN_DAYS_99454 = 16
DEVICE_MIN_DAYS_99445 = 2
MGMT_FIRST_99457 = 20
MGMT_FIRST_99470 = 10
MGMT_EACH_99458 = 20


@dataclass(frozen=True, slots=True)
class ConsentWindow:
    """Consent given at ``given``, in force until ``withdrawn`` (exclusive) or still."""

    given: datetime
    withdrawn: datetime | None = None


@dataclass(frozen=True, slots=True)
class EnrollmentFacts:
    """One enrollment with its instants (aware datetimes) and its consent windows."""

    enrollment_id: int
    patient_id: uuid.UUID
    program_id: str
    enrolled_at: datetime
    ended_at: datetime | None  # the first instant no longer enrolled
    consent: tuple[ConsentWindow, ...]
    billing_practitioner: str | None


@dataclass(frozen=True, slots=True)
class TimeEntry:
    entry_id: int
    day: date  # local date
    seconds: int
    interactive: bool
    started_at: datetime | None = None  # the instant; None: local noon of ``day``


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
    status: str  # billable | blocked | not_met | in_progress | inactive
    reasons: tuple[str, ...] = ()
    days: tuple[date, ...] = ()  # evidence: the days with readings
    minutes: int | None = None  # whole minutes: the value the code is decided on
    time_entry_ids: tuple[int, ...] = ()
    days_still_needed: int | None = None
    days_left: int | None = None
    billing_practitioner: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    seconds: int | None = None  # the exact time counted
    live_entry_ids: tuple[int, ...] = ()  # the live interactive communication(s)


def local_noon(day: date, tz: tzinfo) -> datetime:
    """The instant standing for a reading or a time entry known only by its local day."""
    return datetime.combine(day, time(12), tzinfo=tz)


@dataclass(frozen=True, slots=True)
class _Cover:
    """An interval [start, end) covered by one enrollment with consent."""

    start: datetime
    end: datetime | None
    enrollment: EnrollmentFacts

    def has(self, t: datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


def _covers(enrollments: Sequence[EnrollmentFacts]) -> list[_Cover]:
    out: list[_Cover] = []
    for e in enrollments:
        for w in e.consent:
            start = max(e.enrolled_at, w.given)
            ends = [x for x in (e.ended_at, w.withdrawn) if x is not None]
            end = min(ends) if ends else None
            if end is None or start < end:
                out.append(_Cover(start, end, e))
    out.sort(key=lambda c: (c.start, c.enrollment.enrollment_id))
    return out


@dataclass(slots=True)
class _Episode:
    start: datetime
    end: datetime | None
    covers: list[_Cover]


def _episodes(covers: Sequence[_Cover]) -> list[_Episode]:
    episodes: list[_Episode] = []
    gap = timedelta(days=EPISODE_GAP_DAYS)
    for c in covers:
        last = episodes[-1] if episodes else None
        if last is not None and (last.end is None or c.start <= last.end + gap):
            last.covers.append(c)
            last.end = None if last.end is None or c.end is None else max(last.end, c.end)
        else:
            episodes.append(_Episode(c.start, c.end, [c]))
    return episodes


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
    covers: Sequence[_Cover], lo: datetime, hi: datetime
) -> tuple[str | None, tuple[str, ...]]:
    """The one billing practitioner of the enrollments covering [lo, hi) with consent."""
    active = [c for c in covers if c.start < hi and (c.end is None or c.end > lo)]
    names = {c.enrollment.billing_practitioner for c in active if c.enrollment.billing_practitioner}
    if not names:
        return None, ("no billing practitioner on file",)
    if len(names) > 1:
        return None, (f"{len(names)} billing practitioners in the period; one is required",)
    return names.pop(), ()


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def _instant(t: datetime | date, tz: tzinfo) -> datetime:
    return t if isinstance(t, datetime) else local_noon(t, tz)


def _device_lines(
    episode: _Episode,
    counted_days: dict[date, int],
    month_start: date,
    month_end: date,
    today: date,
    setup_billed_before: bool,
    tz: tzinfo,
) -> tuple[list[LedgerLine], date | None]:
    """The lines of one episode in the month, and the last day with a reading if the patient
    has been inactive for a whole period by the month (its lines are then left out)."""
    counted = sorted(counted_days)
    if not counted:
        return [], None
    first = episode.covers[0].enrollment
    until = min(month_end, today)
    if episode.end is not None:
        until = min(until, (episode.end - timedelta(microseconds=1)).astimezone(tz).date())
    periods = device_periods(counted[0], until)
    lines: list[LedgerLine] = []
    setup_done = setup_billed_before
    inactive_since: date | None = None
    for period in periods:
        days = tuple(
            counted[bisect_left(counted, period.start) : bisect_right(counted, period.end)]
        )
        n = len(days)
        open_period = period.contains(today) and today < period.end
        in_month = month_start <= period.end <= month_end
        first_to_reach_setup = not setup_done and n >= DEVICE_MIN_DAYS_99445 and not open_period
        if first_to_reach_setup:
            setup_done = True
        before = counted[: bisect_left(counted, period.start)]
        if not n and before and (period.start - before[-1]).days > PERIOD_DAYS:
            # a whole period without readings before this one: inactive, no line per period
            if open_period or in_month:
                inactive_since = before[-1]
            continue
        practitioner, reasons = _practitioner_check(
            episode.covers,
            _midnight(period.start, tz),
            _midnight(period.end + timedelta(days=1), tz),
        )
        owner = counted_days[days[0]] if days else first.enrollment_id
        if open_period and period.start <= month_end:
            needed = max(0, DEVICE_MIN_DAYS_99454 - n)
            left = (period.end - today).days + (0 if today in days else 1)
            lines.append(
                LedgerLine(
                    first.patient_id,
                    owner,
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
                first.patient_id,
                owner,
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
                    first.patient_id,
                    owner,
                    "99453",
                    1,
                    period.start,
                    period.end,
                    status,
                    reasons,
                    days,
                    billing_practitioner=practitioner,
                    extra={
                        "note": "set-up and education, once per episode of care",
                        "episode_start": episode.start.astimezone(tz).date().isoformat(),
                    },
                )
            )
    return lines, inactive_since


def _covered_seconds(start: datetime, seconds: int, covers: Sequence[_Cover]) -> int:
    """The seconds of [start, start + seconds) inside the coverage (covers may overlap)."""
    end = start + timedelta(seconds=seconds)
    spans = sorted((max(start, c.start), end if c.end is None else min(end, c.end)) for c in covers)
    total, reach = timedelta(0), start
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            total += hi - lo
            reach = hi
    return int(total.total_seconds())


def _management_lines(
    covers: Sequence[_Cover],
    entries: Iterable[TimeEntry],
    month_start: date,
    month_end: date,
    tz: tzinfo,
) -> list[LedgerLine]:
    """99457/99458 or 99470 for one calendar month, over the patient's whole coverage."""
    counted: list[tuple[TimeEntry, int, _Cover]] = []
    for t in entries:
        if not month_start <= t.day <= month_end:
            continue
        start = t.started_at or local_noon(t.day, tz)
        secs = _covered_seconds(start, t.seconds, covers)
        if secs > 0:
            owner = next(
                (c for c in covers if c.has(start)),
                next(c for c in covers if c.end is None or c.end > start),
            )
            counted.append((t, secs, owner))
    if not counted:
        return []
    seconds = sum(s for _, s, _ in counted)
    whole = seconds // 60
    live = tuple(t.entry_id for t, _, _ in counted if t.interactive)
    ids = tuple(t.entry_id for t, _, _ in counted)
    practitioner, reasons = _practitioner_check(
        covers, _midnight(month_start, tz), _midnight(month_end + timedelta(days=1), tz)
    )
    if not live:
        reasons = (*reasons, "no live interactive communication this month")
    status = "blocked" if reasons else "billable"
    first = counted[0][2].enrollment

    def line(code: str, units: int, st: str = status, why: tuple[str, ...] = reasons) -> LedgerLine:
        return LedgerLine(
            first.patient_id,
            first.enrollment_id,
            code,
            units,
            month_start,
            month_end,
            st,
            why,
            minutes=whole,
            time_entry_ids=ids,
            billing_practitioner=practitioner,
            seconds=seconds,
            live_entry_ids=live,
        )

    if whole >= MGMT_FIRST_99457:
        out = [line("99457", 1)]
        extra_units = (whole - MGMT_FIRST_99457) // MGMT_EACH_99458
        if extra_units:
            out.append(line("99458", extra_units))
        return out
    if whole >= MGMT_FIRST_99470:
        return [line("99470", 1)]
    short = MGMT_FIRST_99470 * 60 - seconds
    return [
        line(
            "",
            0,
            "not_met",
            (*reasons, f"{short // 60} min {short % 60} s more needed for 99470"),
        )
    ]


def ledger_for_month(
    enrollments: Sequence[EnrollmentFacts],
    readings: Sequence[datetime | date],
    entries: Sequence[TimeEntry],
    month_start: date,
    month_end: date,
    today: date,
    setup_billed_before: frozenset[int] = frozenset(),
    tz: tzinfo = UTC,
) -> list[LedgerLine]:
    """All lines of one patient for one month.

    ``readings``: the instants of the patient's readings (a bare date stands for a reading at
    local noon that day). ``setup_billed_before``: enrollment ids whose episode's 99453 was
    already billed in an earlier month (the ledger recomputes it otherwise)."""
    covers = _covers(enrollments)
    if not covers:
        return []
    lines: list[LedgerLine] = []
    inactive: list[date] = []
    instants = sorted(_instant(r, tz) for r in readings)
    for episode in _episodes(covers):
        # each covered local day, with the enrollment that covers its first counted reading
        counted: dict[date, int] = {}
        for t in instants:
            cover = next((c for c in episode.covers if c.has(t)), None)
            if cover is not None:
                counted.setdefault(t.astimezone(tz).date(), cover.enrollment.enrollment_id)
        billed = any(c.enrollment.enrollment_id in setup_billed_before for c in episode.covers)
        device, since = _device_lines(episode, counted, month_start, month_end, today, billed, tz)
        lines += device
        if since is not None:
            inactive.append(since)
    lines += _management_lines(covers, entries, month_start, month_end, tz)
    if inactive and not any(x.days for x in lines):
        first = covers[0].enrollment
        since = max(inactive)
        lines.append(
            LedgerLine(
                first.patient_id,
                first.enrollment_id,
                "",
                0,
                month_start,
                month_end,
                "inactive",
                (f"inactive since {since.isoformat()}: no readings for a whole period",),
            )
        )
    return lines
