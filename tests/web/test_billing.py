"""Billing ledger (CY2026): the boundaries of every code, the checks, and the CSV evidence."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from lab.homes import HomeSpec, Site, provision_home
from tests.support.web import PROGRAM, SITE_A, Client, Server, World, insert_reading, user
from web._billing import ConsentWindow, EnrollmentFacts, LedgerLine, TimeEntry, ledger_for_month

P = uuid.uuid4()
JAN1, JAN31 = date(2026, 1, 1), date(2026, 1, 31)
TODAY = date(2026, 3, 15)  # the month is over


def enrollment(
    *,
    consent: date | None = date(2025, 12, 1),
    withdrawn: date | None = None,
    practitioner: str | None = "dr-x",
    enrolled: date = date(2025, 12, 1),
    eid: int = 1,
    ended: date | None = None,
) -> EnrollmentFacts:
    # dates of the older tests: the local midnight that starts the day (an end date is the last
    # day enrolled, so its instant is the next midnight)
    def at(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=UTC)

    until = None if withdrawn is None else at(withdrawn)
    windows = () if consent is None else (ConsentWindow(at(consent), until),)
    end = None if ended is None else at(ended + timedelta(days=1))
    return EnrollmentFacts(eid, P, "htn", at(enrolled), end, windows, practitioner)


def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def device_lines(lines: list[LedgerLine]) -> list[LedgerLine]:
    return [x for x in lines if x.code in ("99454", "99445", "") and x.minutes is None]


def codes(lines: list[LedgerLine]) -> list[tuple[str, int, str]]:
    return [(x.code, x.units, x.status) for x in lines]


@pytest.mark.parametrize(
    ("n_days", "expected"),
    [
        (0, []),
        (1, [("", 0, "not_met")]),
        (2, [("99445", 1, "billable"), ("99453", 1, "billable")]),
        (15, [("99445", 1, "billable"), ("99453", 1, "billable")]),
        (16, [("99454", 1, "billable"), ("99453", 1, "billable")]),
        (30, [("99454", 1, "billable"), ("99453", 1, "billable")]),
    ],
)
def test_device_days_boundaries(n_days: int, expected: list[tuple[str, int, str]]) -> None:
    # the period is anchored on the first reading day (Jan 1) and ends Jan 30
    lines = ledger_for_month([enrollment()], days(JAN1, n_days), [], JAN1, JAN31, TODAY)
    assert codes(lines) == expected
    if n_days:
        assert lines[0].period_start == JAN1
        assert lines[0].period_end == date(2026, 1, 30)
        assert lines[0].days == tuple(days(JAN1, n_days))


def test_99453_only_once_per_enrollment() -> None:
    # Dec 2..31 is the first period (99453 billed then); January's period has no 99453
    reading_days = days(date(2025, 12, 2), 30) + days(date(2026, 1, 1), 20)
    lines = ledger_for_month([enrollment()], reading_days, [], JAN1, JAN31, TODAY)
    assert codes(lines) == [("99454", 1, "billable")]
    assert lines[0].period_start == date(2026, 1, 1)


def test_days_without_consent_do_not_count() -> None:
    e = enrollment(consent=date(2026, 1, 10))
    lines = ledger_for_month([e], days(JAN1, 25), [], JAN1, JAN31, TODAY)
    # anchored on Jan 10, the first consented day; the period ends Feb 8: not in January
    assert lines == []
    feb = ledger_for_month([e], days(JAN1, 25), [], date(2026, 2, 1), date(2026, 2, 28), TODAY)
    assert codes(device_lines(feb)) == [("99454", 1, "billable")]
    assert len(feb[0].days) == 16


def test_consent_withdrawn_stops_counting() -> None:
    e = enrollment(withdrawn=date(2026, 1, 16))
    lines = ledger_for_month([e], days(JAN1, 30), [], JAN1, JAN31, TODAY)
    assert codes(device_lines(lines)) == [("99445", 1, "billable")]
    assert len(lines[0].days) == 15


def test_no_consent_blocks() -> None:
    e = enrollment(consent=None)
    assert ledger_for_month([e], days(JAN1, 20), [], JAN1, JAN31, TODAY) == []


@pytest.mark.parametrize(
    ("practitioners", "reason"),
    [((None,), "no billing practitioner"), (("dr-x", "dr-y"), "2 billing practitioners")],
)
def test_single_billing_practitioner(practitioners: tuple[str | None, ...], reason: str) -> None:
    es = [enrollment(practitioner=p, eid=i + 1) for i, p in enumerate(practitioners)]
    lines = ledger_for_month(es, days(JAN1, 20), [], JAN1, JAN31, TODAY)
    assert [x.code for x in lines] == ["99454", "99453"]
    for line in lines:
        assert line.status == "blocked"
        assert any(reason in r for r in line.reasons)


def test_overlapping_enrollments_bill_once() -> None:
    both = [enrollment(eid=1), enrollment(eid=2, enrolled=date(2025, 12, 15))]
    spec = [TimeEntry(1, date(2026, 1, 5), 25 * 60, True)]
    lines = ledger_for_month(both, days(JAN1, 20), spec, JAN1, JAN31, TODAY)
    assert sorted(codes(lines)) == [
        ("99453", 1, "billable"),
        ("99454", 1, "billable"),
        ("99457", 1, "billable"),
    ]
    assert {x.enrollment_id for x in lines} == {1}


def entries(*spec: tuple[int, bool]) -> list[TimeEntry]:
    return [
        TimeEntry(i + 1, date(2026, 1, 5 + i), m * 60, live) for i, (m, live) in enumerate(spec)
    ]


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (9, [("", 0, "not_met")]),
        (10, [("99470", 1, "billable")]),
        (19, [("99470", 1, "billable")]),
        (20, [("99457", 1, "billable")]),
        (39, [("99457", 1, "billable")]),
        (40, [("99457", 1, "billable"), ("99458", 1, "billable")]),
        (59, [("99457", 1, "billable"), ("99458", 1, "billable")]),
        (60, [("99457", 1, "billable"), ("99458", 2, "billable")]),
    ],
)
def test_management_minutes_boundaries(minutes: int, expected: list[tuple[str, int, str]]) -> None:
    spec = [(minutes - 5, False), (5, True)] if minutes > 5 else [(minutes, True)]
    lines = ledger_for_month([enrollment()], [], entries(*spec), JAN1, JAN31, TODAY)
    assert codes(lines) == expected
    assert "99457" not in [c for c, *_ in codes(lines)] or "99470" not in [
        c for c, *_ in codes(lines)
    ]
    assert lines[0].time_entry_ids == tuple(range(1, len(spec) + 1))


def test_management_needs_a_live_interactive_communication() -> None:
    lines = ledger_for_month([enrollment()], [], entries((25, False)), JAN1, JAN31, TODAY)
    assert codes(lines) == [("99457", 1, "blocked")]
    assert "no live interactive communication this month" in lines[0].reasons


def test_time_outside_the_month_does_not_count() -> None:
    spec = [TimeEntry(1, date(2025, 12, 31), 15 * 60, True), TimeEntry(2, JAN1, 12 * 60, True)]
    lines = ledger_for_month([enrollment()], [], spec, JAN1, JAN31, TODAY)
    assert codes(lines) == [("99470", 1, "billable")]


def test_days_still_needed_for_the_open_period() -> None:
    today = date(2026, 1, 20)
    lines = ledger_for_month([enrollment()], days(JAN1, 5), [], JAN1, JAN31, today)
    assert len(lines) == 1
    line = lines[0]
    assert line.status == "in_progress"
    assert line.days_still_needed == 11
    assert line.days_left == 11  # Jan 20..30, today without a reading yet
    assert not any("at risk" in r for r in line.reasons)
    lines = ledger_for_month([enrollment()], days(JAN1, 3), [], JAN1, JAN31, today)
    assert lines[0].days_still_needed == 13
    assert any("at risk" in r for r in lines[0].reasons)


# --- over HTTP: the ledger and its CSV evidence ---------------------------------------------


@pytest.mark.db
def test_ledger_csv_has_the_evidence(
    server: Server, clients: dict[str, Client], world: World
) -> None:
    sup = clients[user("supervisor", SITE_A)]
    with psycopg.connect(server.conninfo) as conn:
        pid = provision_home(
            conn,
            HomeSpec(
                site=Site(SITE_A, "Site A"),
                program=PROGRAM,
                enrolled_at=datetime(2025, 12, 15, 12, 0, tzinfo=UTC),
                display_name="Billing Case",
                mrn="WT-MRN-BILL",
                billing_practitioner="dr-q",
            ),
        ).patient_id
        for d in range(17):  # Jan 2..18, noon in New York
            insert_reading(
                conn,
                pid,
                datetime(2026, 1, 2 + d, 17, 0, tzinfo=UTC),
                {"systolic": 130, "diastolic": 80},
            )
    cm = clients[user("care_manager", SITE_A)]
    for minutes, live in ((15, True), (10, False)):
        resp = cm.post(
            f"/api/patients/{pid}/time-entries",
            json={"started_at": "2026-01-20T15:00:00Z", "minutes": minutes, "interactive": live},
        )
        assert resp.status_code == 201, resp.text
    resp = sup.get(f"/billing/ledger.csv?site_id={SITE_A}&month=2026-01")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = [r for r in csv.DictReader(io.StringIO(resp.text)) if r["mrn"] == "WT-MRN-BILL"]
    by_code = {r["cpt"]: r for r in rows}
    assert set(by_code) == {"99454", "99453", "99457"}
    assert by_code["99454"]["days_with_readings"] == "17"
    assert by_code["99454"]["reading_dates"].split()[0] == "2026-01-02"
    assert by_code["99454"]["service_start"] == "2026-01-02"
    assert by_code["99454"]["service_end"] == "2026-01-31"
    assert by_code["99454"]["billing_practitioner"] == "dr-q"
    assert by_code["99457"]["minutes"] == "25"  # whole minutes, the decided value (issue 18)
    assert by_code["99457"]["seconds"] == "1500"
    assert len(by_code["99457"]["time_entry_ids"].split()) == 2
    assert all(r["status"] == "billable" for r in rows)
    page = sup.get(f"/billing?site_id={SITE_A}&month=2026-01", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "WT-MRN-BILL" in page.text
    assert sup.get(f"/api/billing/ledger?site_id={SITE_A}&month=2026-13").status_code == 422
