"""The program-wide 7-day BP averages (``GET /api/programs/{id}/bp-averages``): the patient
page's averages for every patient of the program at my sites, audited with the patients listed."""

from __future__ import annotations

import pytest

from tests.support.web import SITE_A, SITE_B, Client, Server, World, audit_rows, user

pytestmark = pytest.mark.db


def test_averages_of_my_sites_patients(
    server: Server, clients: dict[str, Client], world: World
) -> None:
    clinician = clients[user("clinician", SITE_A)]
    resp = clinician.get("/api/programs/wt-htn/bp-averages")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    items = {item["patient_id"]: item for item in body["items"]}
    mine = items[str(world.patient_a)]
    # the same average as the patient page's KPI: systolic 150..156 over the last 7 days
    assert (mine["systolic"], mine["diastolic"], mine["n"]) == (153.0, 90.0, 7)
    assert str(world.patient_b) not in items  # site B
    assert {item["site_id"] for item in body["items"]} == {SITE_A}
    assert body["enrolled"] == len(body["items"]) >= body["with_readings"] >= 1
    ordered = [i["systolic"] for i in body["items"] if i["systolic"] is not None]
    assert ordered == sorted(ordered, reverse=True)
    event = audit_rows(server.conninfo, action="program bp averages", username=clinician.username)
    assert str(world.patient_a) in event[-1]["detail"]["patients"]


def test_other_sites_and_unknown_programs(
    server: Server, clients: dict[str, Client], world: World
) -> None:
    clinician = clients[user("clinician", SITE_A)]
    assert clinician.get(f"/api/programs/wt-htn/bp-averages?site_id={SITE_B}").status_code == 403
    denied = audit_rows(
        server.conninfo, action="program bp averages", outcome="denied", site_id=SITE_B
    )
    assert denied[-1]["username"] == clinician.username
    assert clinician.get("/api/programs/no-such-program/bp-averages").status_code == 404
    assert clients["anonymous"].get("/api/programs/wt-htn/bp-averages").status_code == 401
