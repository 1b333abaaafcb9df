"""The admin JSON API: create and list with pagination and filters, clear 4xx errors, consent,
time-bounded assignments, gateway provisioning (MQTT password once), thresholds, OpenAPI and
the locally served docs."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.web import SITE_A, SITE_B, Client, Server, World, user

pytestmark = pytest.mark.db

ADMIN_A = user("admin", SITE_A)


@pytest.fixture(scope="module")
def admin(clients: dict[str, Client]) -> Client:
    return clients[ADMIN_A]


def test_sites_programs_users(admin: Client, new_client: Callable[[str | None], Client]) -> None:
    resp = admin.post("/api/sites", json={"id": "wt-site-c", "name": "Site C", "timezone": "UTC"})
    assert resp.status_code == 201
    assert admin.post("/api/sites", json={"id": "wt-site-c", "name": "again"}).status_code == 409
    assert admin.post("/api/sites", json={"id": "bad id!", "name": "x"}).status_code == 422
    # the creator now works at the new site (a fresh session sees it)
    again = new_client(ADMIN_A)
    sites = [s["id"] for s in again.get("/api/sites").json()["items"]]
    assert "wt-site-c" in sites
    assert "wt-site-b" not in sites
    resp = again.post(
        "/api/programs", json={"id": "wt-hf", "name": "Heart failure", "template": "heart_failure"}
    )
    assert resp.status_code == 201
    listed = again.get("/api/programs?template=heart_failure&limit=500").json()["items"]
    assert "wt-hf" in [p["id"] for p in listed]
    assert {p["template"] for p in listed} == {"heart_failure"}
    made = again.post(
        "/api/users",
        json={
            "username": "wt.nurse.c",
            "display_name": "Nurse C",
            "role": "care_manager",
            "password": "a-long-password-1",
            "sites": ["wt-site-c"],
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["sites"] == ["wt-site-c"]
    assert "password_hash" not in made.text
    foreign = again.post(
        "/api/users",
        json={
            "username": "wt.nurse.b",
            "display_name": "Nurse B",
            "role": "care_manager",
            "password": "a-long-password-1",
            "sites": [SITE_B],
        },
    )
    assert foreign.status_code == 403
    short = again.post(
        "/api/users",
        json={"username": "x.y", "display_name": "X", "role": "admin", "password": "short"},
    )
    assert short.status_code == 422
    assert short.json()["errors"][0]["loc"] == ["body", "password"]
    nurse = new_client(None)
    nurse.login("wt.nurse.c", "a-long-password-1")
    assert nurse.get("/api/me").json()["sites"] == ["wt-site-c"]
    uid = made.json()["id"]
    assert again.patch(f"/api/users/{uid}", json={"disabled": True}).status_code == 200
    assert nurse.get("/api/me").status_code == 401  # sessions end when a user is disabled
    listing = again.get("/api/users?role=care_manager&site_id=wt-site-c").json()
    assert [u["username"] for u in listing["items"]] == ["wt.nurse.c"]


def test_patients_pagination_and_filters(admin: Client) -> None:
    for i in range(7):
        resp = admin.post(
            "/api/patients",
            json={"display_name": f"Page Patient {i}", "mrn": f"WT-PG-{i}", "site_id": SITE_A},
        )
        assert resp.status_code == 201
    first = admin.get(f"/api/patients?site_id={SITE_A}&limit=3").json()
    assert len(first["items"]) == 3
    assert first["total"] >= 7
    assert first["next"] is not None
    second = admin.get(f"/api/patients?site_id={SITE_A}&limit=3&offset=3").json()
    assert {p["id"] for p in first["items"]}.isdisjoint({p["id"] for p in second["items"]})
    one = admin.get("/api/patients?mrn=WT-PG-4").json()
    assert [p["display_name"] for p in one["items"]] == ["Page Patient 4"]
    assert admin.get("/api/patients?limit=0").status_code == 422
    assert admin.get("/api/patients?limit=501").status_code == 422
    assert admin.get(f"/api/patients/{uuid.uuid4()}").status_code == 404
    assert admin.get("/api/patients/not-a-uuid").status_code == 422
    dup = admin.post(
        "/api/patients", json={"display_name": "Dup", "mrn": "WT-PG-1", "site_id": SITE_A}
    )
    assert dup.status_code == 409
    elsewhere = admin.post(
        "/api/patients", json={"display_name": "X", "mrn": "WT-PG-X", "site_id": SITE_B}
    )
    assert elsewhere.status_code == 403


def test_enrollment_consent_and_assignments(admin: Client, clients: dict[str, Client]) -> None:
    pid = admin.post(
        "/api/patients", json={"display_name": "Consent Case", "site_id": SITE_A}
    ).json()["id"]
    sup = clients[user("supervisor", SITE_A)]
    enr = sup.post(f"/api/patients/{pid}/enrollments", json={"program_id": "wt-htn"})
    assert enr.status_code == 201
    eid = enr.json()["id"]
    assert enr.json()["consent_given_at"] is None
    # withdrawing consent that was never given violates a data rule
    bad = sup.patch(
        f"/api/enrollments/{eid}", json={"consent_withdrawn_at": "2026-01-02T00:00:00Z"}
    )
    assert bad.status_code == 422
    ok = sup.patch(
        f"/api/enrollments/{eid}",
        json={"consent_given_at": "2026-01-01T09:00:00Z", "billing_practitioner": "dr-y"},
    )
    assert ok.status_code == 200
    assert ok.json()["billing_practitioner"] == "dr-y"
    naive = sup.patch(f"/api/enrollments/{eid}", json={"ended_at": "2026-05-01T00:00:00"})
    assert naive.status_code == 422
    assert (
        sup.post(f"/api/patients/{pid}/enrollments", json={"program_id": "nope"}).status_code == 422
    )
    assert (
        admin.post(
            "/api/devices", json={"id": "cuff-9", "type": "blood_pressure_monitor"}
        ).status_code
        == 201
    )
    a1 = admin.post(
        "/api/assignments",
        json={"device_id": "cuff-9", "patient_id": pid, "valid_from": "2026-01-01T00:00:00Z"},
    )
    assert a1.status_code == 201
    overlap = admin.post(
        "/api/assignments",
        json={"device_id": "cuff-9", "patient_id": pid, "valid_from": "2026-02-01T00:00:00Z"},
    )
    assert overlap.status_code == 409
    ended = admin.post(
        f"/api/assignments/{a1.json()['id']}/end", json={"valid_to": "2026-01-31T00:00:00Z"}
    )
    assert ended.status_code == 200
    again = admin.post(
        "/api/assignments",
        json={"device_id": "cuff-9", "patient_id": pid, "valid_from": "2026-02-01T00:00:00Z"},
    )
    assert again.status_code == 201
    listed = admin.get(f"/api/patients/{pid}/assignments").json()["items"]
    assert len(listed) == 2
    assert admin.get("/api/devices?type=blood_pressure_monitor").json()["total"] >= 1


def test_postpartum_enrollment_takes_a_delivery_date(
    admin: Client, clients: dict[str, Client]
) -> None:
    """ACOG Committee Opinion 736 / Practice Bulletin 222: postpartum BP is watched with the
    severe range at 160/110 in the weeks after delivery; after the window the 2025 AHA/ACC
    severe threshold (>180/>120) applies again."""
    program = admin.post(
        "/api/programs",
        json={"id": "wt-pp", "name": "Postpartum", "template": "maternal_postpartum"},
    )
    assert program.status_code in (201, 409)
    pid = admin.post(
        "/api/patients", json={"display_name": "Delivery Case", "site_id": SITE_A}
    ).json()["id"]
    sup = clients[user("supervisor", SITE_A)]
    today = datetime.now(UTC).date()
    future = sup.post(
        f"/api/patients/{pid}/enrollments",
        json={"program_id": "wt-pp", "delivery_date": (today + timedelta(days=5)).isoformat()},
    )
    assert future.status_code == 422
    assert future.json()["errors"][0]["loc"][-1] == "delivery_date"
    delivered = (today - timedelta(days=10)).isoformat()
    enr = sup.post(
        f"/api/patients/{pid}/enrollments",
        json={
            "program_id": "wt-pp",
            "delivery_date": delivered,
            "consent_given_at": datetime.now(UTC).isoformat(),
        },
    )
    assert enr.status_code == 201, enr.text
    assert enr.json()["delivery_date"] == delivered

    def severe_systolic() -> float:
        effective = sup.get(f"/api/patients/{pid}/thresholds").json()["effective"]
        return float(effective["bp_crisis"]["systolic"]["value"])

    assert severe_systolic() == 160  # ten days after delivery: ACOG's severe range
    ten_weeks = (today - timedelta(weeks=10)).isoformat()
    moved = sup.patch(f"/api/enrollments/{enr.json()['id']}", json={"delivery_date": ten_weeks})
    assert moved.status_code == 200
    assert moved.json()["delivery_date"] == ten_weeks
    assert severe_systolic() == 180  # past the 6-week window: the general severe threshold


def test_gateway_provisioning_returns_the_password_once(
    admin: Client, server: Server, world: World, clients: dict[str, Client]
) -> None:
    resp = admin.post(
        "/api/gateways",
        json={"id": "wt-gw-new-1", "label": "home", "patient_ids": [str(world.patient_a)]},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["mqtt_username"] == "wt-gw-new-1"
    password = body["mqtt_password"]
    assert len(password) >= 24
    assert ("wt-gw-new-1", password) in server.provisioned
    listing = admin.get("/api/gateways").json()
    assert "mqtt_password" not in str(listing)
    rotated = admin.post("/api/gateways/wt-gw-new-1/credentials")
    assert rotated.status_code == 200
    assert rotated.json()["mqtt_password"] != password
    assert admin.post("/api/gateways/nope/credentials").status_code == 404
    admin_b = clients[user("admin", SITE_B)]
    # another site's gateway is "not found" like an unknown one (issue 17)
    assert admin_b.post("/api/gateways/wt-gw-new-1/credentials").status_code == 404
    assert (
        admin_b.post(
            "/api/gateways/wt-gw-new-1/patients", json={"patient_id": str(world.patient_b)}
        ).status_code
        == 404
    )
    assert admin.post("/api/gateways", json={"id": "bad/id"}).status_code == 422
    foreign = admin.post(
        "/api/gateways", json={"id": "wt-gw-x", "patient_ids": [str(world.patient_b)]}
    )
    assert foreign.status_code == 403


def test_threshold_overrides_through_alerts(clients: dict[str, Client], world: World) -> None:
    clin = clients[user("clinician", SITE_A)]
    resp = clin.post(
        f"/api/patients/{world.patient_a}/thresholds",
        json={"parameter": "bp_high.level1_systolic", "value": 150, "reason": "CKD, tighter"},
    )
    assert resp.status_code == 201, resp.text
    eff = clin.get(f"/api/patients/{world.patient_a}/thresholds").json()
    assert eff["effective"]["bp_high"]["level1_systolic"]["value"] == 150
    assert eff["history"][0]["ordered_by"] == user("clinician", SITE_A)
    bad = clin.post(
        f"/api/patients/{world.patient_a}/thresholds",
        json={"parameter": "no_such.rule", "value": 1, "reason": "x"},
    )
    assert bad.status_code == 422
    cm = clients[user("care_manager", SITE_A)]
    assert (
        cm.post(
            f"/api/patients/{world.patient_a}/thresholds",
            json={"parameter": "bp_high.level1_systolic", "value": 140, "reason": "x"},
        ).status_code
        == 403
    )
    page = clin.get(f"/patients/{world.patient_a}", headers={"Accept": "text/html"})
    assert "CKD, tighter" in page.text
    assert '"systolic_high":150.0' in page.text


def test_openapi_and_local_docs(server: Server, clients: dict[str, Client]) -> None:
    anon = clients["anonymous"]
    spec = anon.get("/openapi.json").json()
    for path in ("/api/patients", "/api/gateways", "/fhir/Observation", "/api/billing/ledger"):
        assert path in spec["paths"]
    docs = anon.get("/docs")
    assert docs.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert sources
    assert all(s.startswith("/") for s in sources), sources  # nothing from a CDN
    for src in sources:
        if src.startswith("/static/"):
            assert anon.get(src).status_code == 200


def test_no_patient_data_in_logs(
    caplog: pytest.LogCaptureFixture, admin: Client, clients: dict[str, Client]
) -> None:
    caplog.set_level(logging.DEBUG)
    made = admin.post(
        "/api/patients",
        json={"display_name": "Quentin Lognotme", "mrn": "WT-MRN-SECRET-77", "site_id": SITE_A},
    ).json()
    pid = made["id"]
    clients[user("care_manager", SITE_B)].get(f"/patients/{pid}")  # denied: logged
    admin.get(f"/fhir/Patient/{pid}")
    admin.post("/api/gateways", json={"id": "wt-gw-log-1", "patient_ids": [pid]})
    # the server's log records (the test's own HTTP client logs its URLs: not the server's)
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("web") for r in server_side)
    text = "\n".join(r.getMessage() for r in server_side)
    assert "Lognotme" not in text
    assert "WT-MRN-SECRET-77" not in text
    assert pid not in text
