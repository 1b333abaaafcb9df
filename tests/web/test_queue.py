"""The queue: ordering, transitions through alerts/, time logging, and live SSE updates."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tests.support.web import SITE_A, SITE_B, Client, Server, insert_episode, user

pytestmark = pytest.mark.db

CM_A = user("care_manager", SITE_A)


def _new_patient(conninfo: str, site: str, name: str) -> uuid.UUID:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "INSERT INTO patients (display_name, site_id) VALUES (%s, %s) RETURNING id",
            (name, site),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def test_queue_order_and_fields(server: Server, clients: dict[str, Client]) -> None:
    pid = _new_patient(server.conninfo, SITE_A, "Queue Order")
    with psycopg.connect(server.conninfo) as conn:
        low = insert_episode(
            conn, pid, SITE_A, family="weight_gain", rule_id="weight_gain_1d", priority=3
        )
        urgent = insert_episode(
            conn,
            pid,
            SITE_A,
            family="glucose_low",
            rule_id="glucose_low",
            priority=1,
            severity="critical",
            opened_ago=timedelta(hours=5),
        )
    resp = clients[CM_A].get(f"/api/episodes?site_id={SITE_A}")
    assert resp.status_code == 200
    items = resp.json()["items"]
    ids = [i["id"] for i in items]
    assert ids.index(str(urgent)) < ids.index(str(low))
    top = items[ids.index(str(urgent))]
    assert top["sla_state"] == "breached"  # due 4 h after opening, opened 5 h ago
    assert top["severity"] == "critical"
    page = clients[CM_A].get("/queue", headers={"Accept": "text/html"})
    assert "Queue Order" in page.text
    assert "Hypertension" in page.text


def test_device_health_has_its_own_queue(server: Server, clients: dict[str, Client]) -> None:
    """Issue 15: device problems (a cuff's clock reset) are technical items, never in the care
    team's clinical queue; they are listed in the technical queue (API and page)."""
    pid = _new_patient(server.conninfo, SITE_A, "Clock Reset Cuff")
    with psycopg.connect(server.conninfo) as conn:
        clinical = insert_episode(conn, pid, SITE_A)
        device = insert_episode(
            conn,
            pid,
            SITE_A,
            family="device_clock",
            rule_id="device_clock_reset",
            severity="low",
            priority=4,
            explanation="Device clock unset or reset: readings are timed on arrival",
        )
        conn.execute("UPDATE alert_episodes SET queue = 'technical' WHERE id = %s", (device,))
    cm = clients[CM_A]
    clinical_ids = [i["id"] for i in cm.get("/api/episodes?limit=500").json()["items"]]
    assert str(clinical) in clinical_ids
    assert str(device) not in clinical_ids
    technical = cm.get("/api/episodes?queue=technical&limit=500").json()["items"]
    assert [i["id"] for i in technical if i["patient_id"] == str(pid)] == [str(device)]
    assert cm.get("/api/episodes?queue=billing").status_code == 422
    page = cm.get("/queue?queue=technical", headers={"Accept": "text/html"})
    assert "Device health" in page.text
    assert "Device clock unset or reset" in page.text
    assert "Device clock unset or reset" not in cm.get("/queue").text


def test_claim_acknowledge_resolve_through_alerts(
    server: Server, clients: dict[str, Client]
) -> None:
    pid = _new_patient(server.conninfo, SITE_A, "Transitions")
    with psycopg.connect(server.conninfo) as conn:
        eid = insert_episode(conn, pid, SITE_A)
    cm = clients[CM_A]
    claimed = cm.post(f"/api/episodes/{eid}/claim")  # no body needed
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["assignee"] == CM_A
    acked = cm.post(f"/api/episodes/{eid}/acknowledge", json={"note": "called"})
    assert acked.json()["state"] == "acknowledged"
    assert cm.post(f"/api/episodes/{eid}/acknowledge", json={}).status_code == 409
    bad = cm.post(f"/api/episodes/{eid}/resolve", json={"outcome": "nonsense"})
    assert bad.status_code == 422  # issue 15: a wrong argument names its field (was 409)
    assert bad.json()["errors"][0]["loc"] == ["body", "outcome"]
    done = cm.post(
        f"/api/episodes/{eid}/resolve",
        json={"outcome": "medication_changed", "note": "amlodipine up"},
    )
    assert done.status_code == 200
    assert done.json()["state"] == "resolved"
    assert done.json()["outcome"] == "medication_changed"
    events = cm.get(f"/api/episodes/{eid}").json()["events"]
    assert [e["kind"] for e in events][-3:] == ["assigned", "acknowledged", "resolved"]
    assert all(e["actor"] == CM_A for e in events[-3:])
    assert cm.post(f"/api/episodes/{uuid.uuid4()}/claim", json={}).status_code == 404


def test_snooze_hides_the_episode(server: Server, clients: dict[str, Client]) -> None:
    pid = _new_patient(server.conninfo, SITE_A, "Snoozer")
    with psycopg.connect(server.conninfo) as conn:
        eid = insert_episode(conn, pid, SITE_A, family="bp_mean", rule_id="bp_mean_7d")
    cm = clients[CM_A]
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    resp = cm.post(
        f"/api/episodes/{eid}/snooze", json={"reason": "in clinic today", "until": until}
    )
    assert resp.status_code == 200
    assert resp.json()["snooze_reason"] == "in clinic today"
    ids = [i["id"] for i in cm.get(f"/api/episodes?site_id={SITE_A}&limit=500").json()["items"]]
    assert str(eid) not in ids
    naive = cm.post(
        f"/api/episodes/{eid}/snooze", json={"reason": "x", "until": "2030-01-01T00:00"}
    )
    assert naive.status_code == 422


def test_other_site_cannot_act(server: Server, clients: dict[str, Client]) -> None:
    pid = _new_patient(server.conninfo, SITE_B, "Elsewhere")
    with psycopg.connect(server.conninfo) as conn:
        eid = insert_episode(conn, pid, SITE_B, family="glucose_high", rule_id="glucose_high_24h")
    assert clients[CM_A].post(f"/api/episodes/{eid}/claim", json={}).status_code == 403
    assert (
        clients[user("care_manager", SITE_B)]
        .post(f"/api/episodes/{eid}/claim", json={})
        .status_code
        == 200
    )


def test_html_actions_and_time_logging(server: Server, clients: dict[str, Client]) -> None:
    pid = _new_patient(server.conninfo, SITE_A, "Html Actions")
    with psycopg.connect(server.conninfo) as conn:
        eid = insert_episode(conn, pid, SITE_A, family="missing_data", rule_id="missing_data")
    cm = clients[CM_A]
    hx = {"HX-Request": "true"}
    resp = cm.post(f"/queue/episodes/{eid}/acknowledge", headers=hx)
    assert resp.status_code == 200
    assert "acknowledged" in resp.text
    resp = cm.post(
        f"/queue/episodes/{eid}/resolve",
        data={"outcome": "device_issue", "note": "new batteries"},
        headers=hx,
    )
    assert resp.status_code == 200
    assert "resolved" in resp.text
    resp = cm.post(
        f"/queue/patients/{pid}/time",
        data={"minutes": "12", "interactive": "true", "episode_id": str(eid)},
        headers=hx,
    )
    assert resp.status_code == 200
    assert "live interactive" in resp.text
    entries = cm.get(f"/api/patients/{pid}/time-entries").json()["items"]
    assert entries[0]["seconds"] == 720
    assert entries[0]["interactive"] is True
    # a form post without the CSRF token is refused
    forged = cm.post(f"/queue/patients/{pid}/time", data={"minutes": "5"}, csrf=False)
    assert forged.status_code == 403


def test_sse_announces_a_new_episode(server: Server, clients: dict[str, Client]) -> None:
    pid = _new_patient(server.conninfo, SITE_A, "Live One")
    other = _new_patient(server.conninfo, SITE_B, "Live Other")
    cookie = clients[CM_A].http.headers["Cookie"]
    received: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=20) as http,
            http.stream("GET", "/queue/events", headers={"Cookie": cookie}) as resp,
        ):
            for line in resp.iter_lines():
                ready.set()
                if line.startswith("data:"):
                    received.append(line)
                    if any(str(eid) in x for x in received for eid in created):
                        return

    created: list[uuid.UUID] = []
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    time.sleep(1.5)  # the notifier's cursor starts at "now"
    with psycopg.connect(server.conninfo) as conn:
        created.append(insert_episode(conn, other, SITE_B, family="bp_crisis", rule_id="bp_crisis"))
        created.append(insert_episode(conn, pid, SITE_A, family="bp_crisis", rule_id="bp_crisis"))
    thread.join(15)
    assert any(str(created[1]) in x for x in received)
    assert not any(str(created[0]) in x for x in received)  # site B is not mine


def test_queue_views_are_audited_compactly(server: Server, clients: dict[str, Client]) -> None:
    from tests.support.web import audit_rows

    cm = clients[CM_A]
    cm.get("/queue", headers={"Accept": "text/html"})
    cm.get("/queue/rows", headers={"HX-Request": "true"})
    views = [r for r in audit_rows(server.conninfo, username=CM_A) if r["action"] == "view queue"]
    first, second = views[-2]["detail"], views[-1]["detail"]
    assert first["patients_digest"] == second["patients_digest"]
    assert "patients" in first or views[-3]["detail"]["patients_digest"] == first["patients_digest"]
    assert second.get("same_patients_as_previous_view") is True
    assert "patients" not in second


def test_an_alerts_episode_reaches_the_queue(server: Server, clients: dict[str, Client]) -> None:
    from tests.support.web import crisis_through_alerts, enrolled_patient

    pid = enrolled_patient(server.conninfo, SITE_A, "Crisis Through Alerts")
    crisis_through_alerts(server.conninfo, pid)
    items = clients[CM_A].get(f"/api/episodes?site_id={SITE_A}&limit=500").json()["items"]
    mine = [i for i in items if i["patient_id"] == str(pid)]
    assert [(i["family"], i["severity"], i["priority"]) for i in mine] == [
        ("bp_crisis", "critical", 1)
    ]
    assert "184/102" in mine[0]["explanation"]
    assert items[0]["priority"] == 1
