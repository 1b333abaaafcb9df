"""Issue 16: the quarantine view (``GET /api/quarantine``, the ``/quarantine`` page) and
release after fix (``POST /api/quarantine/{id}/release``) for supervisors and admins.

A row is scoped to the sites of the gateway and device involved: another site's gateway makes
it invisible, an unknown gateway makes it an admin's only; the sample never shows a value."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.support.web import SITE_A, SITE_B, Client, Server, World, audit_rows, user

pytestmark = [pytest.mark.db]

#: a reading as a gateway sends it (README, MQTT contract), values a patient would not share
#: (with a fraction: no row id or time on the page can contain them)
_SYSTOLIC, _DIASTOLIC, _PULSE = 187.5, 113.5, 94


def _reading_item(device_id: str) -> bytes:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "device": {"id": device_id, "type": "blood_pressure_monitor"},
            "type": "blood_pressure",
            "measured_at": "2026-03-04T05:06:07",
            "values": [
                {"code": "systolic", "value": _SYSTOLIC, "unit": "mm[Hg]"},
                {"code": "diastolic", "value": _DIASTOLIC, "unit": "mm[Hg]"},
                {"code": "pulse", "value": _PULSE, "unit": "/min"},
            ],
            "raw": {"gatt": "b70071005e00"},
        }
    ).encode()


def _quarantine(
    server: Server,
    reason: str,
    gateway_id: str | None,
    device_id: str | None,
    *,
    at: datetime | None = None,
    payload: bytes | None = None,
) -> int:
    body = payload if payload is not None else _reading_item(device_id or "dev")
    with psycopg.connect(server.conninfo) as conn:
        row = conn.execute(
            "INSERT INTO quarantine (dedup_key, quarantined_at, reason, detail, topic, gateway_id,"
            " reading_id, device_id, payload, payload_bytes)"
            " VALUES (%s, %s, %s, 'a test row', %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                f"t:{uuid.uuid4()}",
                at or datetime.now(UTC),
                reason,
                f"carebeacon/v1/gateways/{gateway_id}/readings",
                gateway_id,
                uuid.uuid4(),
                device_id,
                body,
                len(body),
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _gateway_at_site_b(server: Server, world: World) -> str:
    gateway = f"wt-q-gw-b-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.conninfo) as conn:
        conn.execute("INSERT INTO gateways (id) VALUES (%s)", (gateway,))
        conn.execute(
            "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%s, %s)",
            (gateway, world.patient_b),
        )
    return gateway


def _ids(client: Client, query: str = "") -> set[int]:
    resp = client.get(f"/api/quarantine?limit=500{query}")
    assert resp.status_code == 200, resp.text
    return {item["id"] for item in resp.json()["items"]}


def test_rows_are_scoped_to_the_sites_of_their_gateway_and_device(
    server: Server, world: World, clients: dict[str, Client]
) -> None:
    mine = _quarantine(server, "device_not_assigned", world.gateway_a, "wt-q-dev-new")
    theirs = _quarantine(server, "unknown_device", _gateway_at_site_b(server, world), "wt-q-x")
    stray = _quarantine(server, "unknown_gateway", f"wt-q-nobody-{uuid.uuid4().hex[:6]}", "d")
    # a site-A gateway delivering a device assigned to site B's patient: not all A's
    mixed = _quarantine(server, "device_not_on_gateway", world.gateway_a, "serial:WT/1")

    sup_a = _ids(clients[user("supervisor", SITE_A)])
    assert mine in sup_a
    assert not {theirs, stray, mixed} & sup_a
    admin_a = _ids(clients[user("admin", SITE_A)])
    assert {mine, stray} <= admin_a
    assert not {theirs, mixed} & admin_a
    sup_b = _ids(clients[user("supervisor", SITE_B)])
    assert theirs in sup_b
    assert not {mine, stray, mixed} & sup_b
    # naming a site shows only its rows: the admin's site-less rows are not any site's
    assert stray not in _ids(clients[user("admin", SITE_A)], f"&site_id={SITE_A}")
    assert mine in _ids(clients[user("admin", SITE_A)], f"&site_id={SITE_A}")


def test_care_roles_and_other_sites_are_refused(server: Server, clients: dict[str, Client]) -> None:
    for role in ("care_manager", "clinician"):
        assert clients[user(role, SITE_A)].get("/api/quarantine").status_code == 403
        assert clients[user(role, SITE_A)].get("/quarantine").status_code == 403
    resp = clients[user("supervisor", SITE_A)].get(f"/api/quarantine?site_id={SITE_B}")
    assert resp.status_code == 403
    denied = audit_rows(
        server.conninfo, username=user("supervisor", SITE_A), action="api quarantine list"
    )
    assert any(r["outcome"] == "denied" and r["site_id"] == SITE_B for r in denied)
    assert clients["anonymous"].get("/api/quarantine").status_code == 401


def test_the_sample_shows_no_values(
    server: Server, world: World, clients: dict[str, Client]
) -> None:
    qid = _quarantine(server, "no_consent", world.gateway_a, world.device_a)
    opaque = _quarantine(
        server, "bad_json", world.gateway_a, None, payload=b"systolic=187;diastolic=113 {"
    )
    items = {
        i["id"]: i
        for i in clients[user("supervisor", SITE_A)]
        .get(f"/api/quarantine?gateway_id={world.gateway_a}&limit=500")
        .json()["items"]
    }
    sample = items[qid]["sample"]
    assert sample.startswith('{"id":'), sample
    assert '"systolic"' in sample  # the structure is there, to tell what was sent
    assert not re.search(r"[0-9]", sample), sample  # no value, no digit of one
    assert "b7" not in sample  # the raw GATT bytes are not shown at all
    assert len(sample) <= 256
    assert items[qid]["device_id"] == world.device_a
    assert items[qid]["releasable"] is True
    assert not re.search(r"[0-9A-Za-z]", items[opaque]["sample"])
    assert items[opaque]["releasable"] is False


def test_filters_paging_and_the_audit_row(
    server: Server, world: World, clients: dict[str, Client]
) -> None:
    gateway = _gateway_at_site_b(server, world)
    old = _quarantine(
        server, "unknown_device", gateway, "o", at=datetime.now(UTC) - timedelta(days=3)
    )
    new = [_quarantine(server, "no_consent", gateway, f"n{i}") for i in range(3)]
    sup_b = clients[user("supervisor", SITE_B)]
    assert _ids(sup_b, f"&gateway_id={gateway}") == {old, *new}
    assert _ids(sup_b, f"&gateway_id={gateway}&reason=no_consent") == set(new)
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert _ids(sup_b, f"&gateway_id={gateway}&since={since.replace('+', '%2B')}") == set(new)
    first = sup_b.get(f"/api/quarantine?gateway_id={gateway}&limit=2").json()
    assert first["total"] == 4
    assert [i["id"] for i in first["items"]] == sorted(new, reverse=True)[:2]  # newest first
    assert first["next"] is not None
    rest = sup_b.get(first["next"]).json()
    assert {i["id"] for i in rest["items"]} == {sorted(new)[0], old}
    assert rest["next"] is None
    rows = audit_rows(
        server.conninfo, username=user("supervisor", SITE_B), action="api quarantine list"
    )
    assert rows[-1]["outcome"] == "allowed"
    assert rows[-1]["detail"]["gateway_id"] == gateway


def test_the_page_lists_rows_and_the_nav_links_it(
    server: Server, world: World, clients: dict[str, Client]
) -> None:
    qid = _quarantine(server, "device_not_assigned", world.gateway_a, "wt-q-page-dev")
    page = clients[user("supervisor", SITE_A)].get("/quarantine", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert f'id="q-{qid}"' in page.text
    assert "wt-q-page-dev" in page.text
    assert f'hx-post="/quarantine/{qid}/release"' in page.text
    assert str(_SYSTOLIC) not in page.text
    assert 'href="/quarantine"' in page.text
    # the button's answer is the cell's new text, not the API's JSON
    sup = clients[user("supervisor", SITE_A)]
    pressed = sup.post(f"/quarantine/{qid}/release")
    assert (pressed.status_code, pressed.text) == (200, "requested")
    refused = sup.post("/quarantine/999999999/release")
    assert refused.status_code == 200
    assert "no such quarantined message" in refused.text
    queue = clients[user("care_manager", SITE_A)].get("/queue", headers={"Accept": "text/html"})
    assert 'href="/quarantine"' not in queue.text


def test_release_marks_only_a_configuration_cause_of_a_visible_row(
    server: Server, world: World, clients: dict[str, Client]
) -> None:
    sup_a = clients[user("supervisor", SITE_A)]
    qid = _quarantine(server, "device_not_assigned", world.gateway_a, "wt-q-rel-dev")
    resp = sup_a.post(f"/api/quarantine/{qid}/release")
    assert resp.status_code == 200, resp.text
    assert resp.json()["release_requested_at"] is not None
    assert resp.json()["released_at"] is None
    assert audit_rows(
        server.conninfo, action="api quarantine release", resource=f"quarantine/{qid}"
    )

    invalid = _quarantine(server, "impossible_value", world.gateway_a, "wt-q-rel-dev")
    assert sup_a.post(f"/api/quarantine/{invalid}/release").status_code == 409
    theirs = _quarantine(server, "unknown_device", _gateway_at_site_b(server, world), "x")
    assert sup_a.post(f"/api/quarantine/{theirs}/release").status_code == 404
    assert sup_a.post("/api/quarantine/999999999/release").status_code == 404
    assert sup_a.post(f"/api/quarantine/{qid}/release", csrf=False).status_code == 403
    with psycopg.connect(server.conninfo) as conn:
        row = conn.execute(
            "SELECT release_requested_at FROM quarantine WHERE id = %s", (theirs,)
        ).fetchone()
    assert row == (None,)


def test_since_must_be_an_instant_with_its_offset(clients: dict[str, Client]) -> None:
    sup = clients[user("supervisor", SITE_A)]
    for bad in ("0.5", "2026-12-01T00:00:00", "2026-13-01T00:00:00Z", "yesterday"):
        resp = sup.get("/api/quarantine", params={"since": bad})
        assert resp.status_code == 422, (bad, resp.text)
    assert sup.get("/api/quarantine", params={"since": "2026-12-01T00:00:00Z"}).status_code == 200
