"""Issue 18: the ledger against the CY2026 Medicare RPM rules, case by case (pure ledger).

Expected codes come from the rule text, not from the ledger's constants:
- AMA CPT 2026 descriptors: 99454 device supply "16-30 days" and 99445 "2-15 days" per 30
  days; 99457 "first 20 minutes" and 99458 "each additional 20 minutes", 99470 "first 10
  minutes", each "requiring interactive communication with the patient/caregiver during the
  month"; 99453 set-up and patient education.
- CMS CY2026 PFS final rule (CMS-1832-F): adopts 99445 and 99470; 99445/99454 and 99470/99457
  are not billed together for one period.
- CMS CY2021 PFS final rule (CMS-1734-F, 85 FR 84472): consent is obtained before RPM services
  are furnished; only one practitioner bills 99453/99454 for a 30-day period.
- CMS CY2020 PFS final rule (CMS-1715-F, 84 FR 62568): 99453 once per episode of care, the
  episode beginning when RPM is initiated and ending with attainment of the treatment goals.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from web._billing import ConsentWindow, EnrollmentFacts, LedgerLine, TimeEntry, ledger_for_month

NY = ZoneInfo("America/New_York")
P = uuid.uuid4()
MAR1, MAR31 = date(2026, 3, 1), date(2026, 3, 31)
APR1, APR30 = date(2026, 4, 1), date(2026, 4, 30)
TODAY = date(2026, 6, 15)  # March and April are over


def at(d: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=NY)


def enrollment(
    start: datetime,
    *,
    end: datetime | None = None,
    consent: tuple[ConsentWindow, ...] | None = None,
    practitioner: str | None = "dr-x",
    eid: int = 1,
) -> EnrollmentFacts:
    windows = (ConsentWindow(start),) if consent is None else consent
    return EnrollmentFacts(eid, P, "htn", start, end, windows, practitioner)


def noons(first: date, n: int) -> list[datetime]:
    return [at(first + timedelta(days=i), 12) for i in range(n)]


def codes(lines: list[LedgerLine]) -> list[tuple[str, int, str]]:
    return sorted((x.code, x.units, x.status) for x in lines)


def ledger(
    es: list[EnrollmentFacts],
    readings: list[datetime],
    entries: list[TimeEntry],
    month: tuple[date, date] = (MAR1, MAR31),
) -> list[LedgerLine]:
    return ledger_for_month(es, readings, entries, month[0], month[1], TODAY, tz=NY)


def live(eid: int, start: datetime, seconds: int, interactive: bool = True) -> TimeEntry:
    return TimeEntry(eid, start.date(), seconds, interactive, start)


# --- finding 2: consent, enrollment start/end and withdrawal are instants --------------------


def test_consent_in_the_evening_does_not_cover_the_noon_reading() -> None:
    """Consent is required before the service (CMS-1734-F): consent given Mar 16 at 20:00 does
    not cover the reading at noon that day. Readings Mar 16..31 at noon: 15 consented days in
    the period Mar 17 - Apr 15, so 99445 (2-15 days) and 99453, not 99454."""
    e = enrollment(at(date(2026, 3, 1)), consent=(ConsentWindow(at(date(2026, 3, 16), 20)),))
    lines = ledger([e], noons(date(2026, 3, 16), 16), [], (APR1, APR30))
    assert codes(lines) == [("99445", 1, "billable"), ("99453", 1, "billable")]
    assert lines[0].period_start == date(2026, 3, 17)
    assert len(lines[0].days) == 15


def test_one_consented_day_is_under_the_minimum() -> None:
    """Readings Mar 16 and 17 at noon, consent Mar 16 at 20:00: one consented day, under the
    2-day minimum of 99445, and no 99453 (set-up is billed with a period that is billable)."""
    e = enrollment(at(date(2026, 3, 1)), consent=(ConsentWindow(at(date(2026, 3, 16), 20)),))
    lines = ledger([e], noons(date(2026, 3, 16), 2), [], (APR1, APR30))
    assert codes(lines) == [("", 0, "not_met")]


def test_a_call_before_consent_is_not_management_time() -> None:
    """A 15-minute live call at 10:00 on Mar 16, consent at 20:00 that day: no minutes count,
    so no 99470 (10 minutes) for March."""
    e = enrollment(at(date(2026, 3, 1)), consent=(ConsentWindow(at(date(2026, 3, 16), 20)),))
    assert ledger([e], [], [live(1, at(date(2026, 3, 16), 10), 15 * 60)]) == []


def test_the_withdrawal_day_counts_up_to_the_withdrawal() -> None:
    """Consent withdrawn Mar 16 at 20:00: the reading at noon that day was consented. Readings
    Mar 1..30 at noon: 16 consented days in the period Mar 1-30, so 99454 (16-30 days)."""
    e = enrollment(
        at(date(2026, 2, 1)),
        consent=(ConsentWindow(at(date(2026, 2, 1)), at(date(2026, 3, 16), 20)),),
    )
    lines = ledger([e], noons(MAR1, 30), [])
    assert codes(lines) == [("99453", 1, "billable"), ("99454", 1, "billable")]
    assert lines[0].days[-1] == date(2026, 3, 16)


def test_enrollment_start_and_end_are_instants() -> None:
    """Enrolled Mar 1 at 15:00 (the noon reading that day is before it) and ended Mar 16 at
    20:00 (the noon reading that day is inside): Mar 2..16, 15 days, 99445 (2-15 days)."""
    e = enrollment(at(MAR1, 15), end=at(date(2026, 3, 16), 20))
    lines = ledger([e], noons(MAR1, 31), [])
    assert codes(lines) == [("99445", 1, "billable"), ("99453", 1, "billable")]
    assert (lines[0].days[0], lines[0].days[-1]) == (date(2026, 3, 2), date(2026, 3, 16))


def test_minutes_are_cut_at_the_withdrawal() -> None:
    """Only the time inside the consent: a 25-minute call from 19:50 with consent withdrawn at
    20:00 is 10 minutes, 99470 (not 99457)."""
    e = enrollment(
        at(date(2026, 2, 1)),
        consent=(ConsentWindow(at(date(2026, 2, 1)), at(date(2026, 3, 16), 20)),),
    )
    lines = ledger([e], [], [live(1, at(date(2026, 3, 16), 19, 50), 25 * 60)])
    assert codes(lines) == [("99470", 1, "billable")]
    assert lines[0].seconds == 600


# --- finding 1: one patient, one billing stream; 99453 once per episode ----------------------


def test_re_enrollment_is_one_stream() -> None:
    """Enrollment ends after Mar 11, a new one (same practitioner) starts Mar 12; readings every
    day; 15 + 15 live minutes. Device supply is per patient per 30 days (CMS-1734-F: one
    practitioner, one 99454 per period): one 99454 for Mar 2-31 (30 days), one 99453 (one
    episode), and 30 minutes in the month: one 99457 (first 20 minutes), not two 99470."""
    first = enrollment(at(date(2026, 3, 2)), end=at(date(2026, 3, 12)), eid=1)
    second = enrollment(at(date(2026, 3, 12)), eid=2)
    calls = [live(1, at(date(2026, 3, 5), 10), 15 * 60), live(2, at(date(2026, 3, 20), 10), 900)]
    lines = ledger([first, second], noons(MAR1, 31), calls)
    assert codes(lines) == [
        ("99453", 1, "billable"),
        ("99454", 1, "billable"),
        ("99457", 1, "billable"),
    ]
    device = next(x for x in lines if x.code == "99454")
    assert (device.period_start, device.period_end) == (date(2026, 3, 2), MAR31)
    assert len(device.days) == 30
    assert next(x for x in lines if x.code == "99457").time_entry_ids == (1, 2)


def test_re_enrollment_within_the_episode_has_no_second_99453() -> None:
    """Enrolled Jan 10 - Feb 15, again from Feb 20: one episode of care (a gap of days, same
    treatment). 99453 went with the first period (Jan 10 - Feb 8); the period Feb 9 - Mar 10
    spans both enrollments (26 days): 99454 without a second 99453."""
    first = enrollment(at(date(2026, 1, 10)), end=at(date(2026, 2, 16)), eid=1)
    second = enrollment(at(date(2026, 2, 20)), eid=2)
    readings = noons(date(2026, 1, 10), 37) + noons(date(2026, 2, 20), 40)
    lines = ledger([first, second], readings, [])
    assert codes(lines) == [("99454", 1, "billable")]
    assert (lines[0].period_start, len(lines[0].days)) == (date(2026, 2, 9), 26)


def test_a_new_episode_after_months_has_its_own_99453() -> None:
    """Enrolled in January only, again from April 1 after goals were met and RPM stopped: the
    new episode begins when RPM is initiated again (CMS-1715-F), so April has a 99453."""
    first = enrollment(at(date(2026, 1, 1)), end=at(date(2026, 2, 1)), eid=1)
    second = enrollment(at(APR1), eid=2)
    readings = noons(date(2026, 1, 1), 30) + noons(APR1, 30)
    lines = ledger([first, second], readings, [], (APR1, APR30))
    assert codes(lines) == [("99453", 1, "billable"), ("99454", 1, "billable")]


# --- finding 3: an enrollment without consent bills nothing and blocks nothing -------------


def test_an_enrollment_without_consent_does_not_block() -> None:
    """One practitioner per period (CMS-1734-F) counts the practitioners who may bill: an
    enrollment with dr-y without consent cannot bill, so dr-x's period is billable."""
    billed = enrollment(at(date(2026, 2, 1)), eid=1)
    other = enrollment(at(date(2026, 2, 1)), consent=(), practitioner="dr-y", eid=2)
    lines = ledger([billed, other], noons(MAR1, 20), [])
    assert codes(lines) == [("99453", 1, "billable"), ("99454", 1, "billable")]
    assert {x.billing_practitioner for x in lines} == {"dr-x"}


# --- finding 4: exact seconds, whole minutes decide; the live entry is named -----------------


def test_19_min_59_s_is_19_minutes() -> None:
    """99470 is 10-19 minutes, 99457 needs the first 20 full minutes: 19 min 59 s is 99470,
    exported as 19 whole minutes and 1199 seconds."""
    e = enrollment(at(date(2026, 2, 1)))
    calls = [live(1, at(date(2026, 3, 5), 10), 599, False), live(2, at(MAR31, 10), 600)]
    lines = ledger([e], [], calls)
    assert codes(lines) == [("99470", 1, "billable")]
    assert (lines[0].minutes, lines[0].seconds) == (19, 1199)
    assert lines[0].live_entry_ids == (2,)


def test_39_min_59_s_has_no_99458() -> None:
    """99458 is each additional full 20 minutes: 39 min 59 s is 99457 only."""
    e = enrollment(at(date(2026, 2, 1)))
    lines = ledger([e], [], [live(7, at(date(2026, 3, 5), 10), 39 * 60 + 59)])
    assert codes(lines) == [("99457", 1, "billable")]
    assert (lines[0].minutes, lines[0].seconds, lines[0].live_entry_ids) == (39, 2399, (7,))


# --- finding 6: one "inactive since" line for a long-inactive patient ------------------------


def test_a_long_inactive_patient_gets_one_inactive_line() -> None:
    """Readings Jan 1-20 then none: from the second empty period on, a month has one line
    "inactive since 2026-01-20" instead of a not_met line per period."""
    e = enrollment(at(date(2025, 12, 1)))
    readings = noons(date(2026, 1, 1), 20)
    for month in ((APR1, APR30), (date(2026, 5, 1), date(2026, 5, 31))):
        lines = ledger([e], readings, [], month)
        assert codes(lines) == [("", 0, "inactive")]
        assert "inactive since 2026-01-20" in lines[0].reasons[0]


def test_an_inactive_patient_has_no_at_risk_line() -> None:
    """The open period of a patient without readings since January: one "inactive since" line,
    not an "at risk: 16 more days needed" line every period."""
    e = enrollment(at(date(2025, 12, 1)))
    readings = noons(date(2026, 1, 1), 20)
    lines = ledger([e], readings, [], (date(2026, 6, 1), date(2026, 6, 30)))
    assert codes(lines) == [("", 0, "inactive")]
    assert not any("at risk" in r for x in lines for r in x.reasons)
