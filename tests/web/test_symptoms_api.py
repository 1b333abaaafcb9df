"""POST/GET /api/patients/{id}/symptoms (issue 15, item 2): a report through the API is
evaluated by alerts/ at once; a bad one answers 422 naming the field."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.web import SITE_A, SITE_B, Client, Server, World, user

pytestmark = pytest.mark.db


def test_a_reported_emergency_symptom_opens_a_critical_episode(
    clients: dict[str, Client], world: World, server: Server
) -> None:
    cm = clients[user("care_manager", SITE_A)]
    resp = cm.post(
        f"/api/patients/{world.patient_a}/symptoms",
        json={"symptoms": ["shortness_of_breath"], "note": "called in"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    # AWHONN POST-BIRTH: shortness of breath — call 911
    assert body["episode"]["severity"] == "critical"
    assert body["episode"]["priority"] == 1
    listed = cm.get(f"/api/patients/{world.patient_a}/symptoms").json()
    assert listed[0]["id"] == body["id"]
    assert listed[0]["symptoms"] == ["shortness_of_breath"]
    with psycopg.connect(server.conninfo) as conn:
        conn.execute(
            "UPDATE alert_episodes SET state = 'resolved', resolved_at = now(),"
            " outcome = 'other' WHERE id = %s",
            (body["episode"]["id"],),
        )


def test_bad_reports_answer_422_and_other_sites_403(
    clients: dict[str, Client], world: World
) -> None:
    cm = clients[user("care_manager", SITE_A)]
    url = f"/api/patients/{world.patient_a}/symptoms"
    unknown = cm.post(url, json={"symptoms": ["headache"]})
    assert unknown.status_code == 422
    assert "symptoms" in unknown.text
    naive = cm.post(url, json={"symptoms": ["chest_pain"], "at": "2026-01-01T08:00:00"})
    assert naive.status_code == 422
    assert "at" in naive.text
    other = clients[user("care_manager", SITE_B)]
    assert other.post(url, json={"symptoms": ["chest_pain"]}).status_code == 403
