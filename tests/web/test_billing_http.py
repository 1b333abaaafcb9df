"""Issue 18 over HTTP: the ledger reads the consent history and compares instants in the site's
time zone (Site A: America/New_York).

CMS requires consent before RPM services are furnished (CY2021 PFS final rule, CMS-1734-F,
85 FR 84472). AMA CPT 2026: 99445 is 2-15 days of device supply in 30 days, 99454 16-30; 99470
the first 10 minutes of management with a live interactive communication."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import psycopg
import pytest

from lab.homes import HomeSpec, Site, provision_home
from tests.support.web import PROGRAM, SITE_A, Client, Server, insert_reading, user

pytestmark = pytest.mark.db


def test_consent_in_the_evening_over_http(server: Server, clients: dict[str, Client]) -> None:
    """Consent recorded through the API on Mar 16 at 20:00 New York time: the readings at noon
    Mar 16..31 give 15 consented days (Mar 17..31), 99445 and 99453 in the period ending in
    April, not 99454; a 15-minute live call at 10:00 on Mar 16 is before consent: no 99470."""
    sup = clients[user("supervisor", SITE_A)]
    with psycopg.connect(server.conninfo) as conn:
        pid = provision_home(
            conn,
            HomeSpec(
                site=Site(SITE_A, "Site A"),
                program=PROGRAM,
                enrolled_at=datetime(2026, 3, 1, 5, 0, tzinfo=UTC),
                display_name="Evening Consent",
                mrn="WT-MRN-EVENING",
                billing_practitioner="dr-e",
                consent=False,
            ),
        ).patient_id
        row = conn.execute("SELECT id FROM enrollments WHERE patient_id = %s", (pid,)).fetchone()
        assert row is not None
        for day in range(16, 32):  # noon EDT is 16:00 UTC
            insert_reading(conn, pid, datetime(2026, 3, day, 16, 0, tzinfo=UTC), {"systolic": 128})
    resp = sup.patch(
        f"/api/enrollments/{row[0]}", json={"consent_given_at": "2026-03-16T20:00:00-04:00"}
    )
    assert resp.status_code == 200, resp.text
    cm = clients[user("care_manager", SITE_A)]
    resp = cm.post(
        f"/api/patients/{pid}/time-entries",
        json={"started_at": "2026-03-16T14:00:00Z", "minutes": 15, "interactive": True},
    )
    assert resp.status_code == 201, resp.text

    def lines(month: str) -> list[dict[str, str]]:
        got = sup.get(f"/billing/ledger.csv?site_id={SITE_A}&month={month}")
        assert got.status_code == 200
        rows = csv.DictReader(io.StringIO(got.text))
        return [r for r in rows if r["mrn"] == "WT-MRN-EVENING"]

    assert lines("2026-03") == []
    april = {r["cpt"]: r for r in lines("2026-04")}
    assert set(april) == {"99445", "99453"}
    assert april["99445"]["days_with_readings"] == "15"
    assert april["99445"]["service_start"] == "2026-03-17"
    assert april["99445"]["status"] == "billable"
