"""Issue 15, item 9 (web): outcomes people choose and lifecycle errors that name their field.

The resolve dialog preselects nothing and never offers the outcomes alerts/ records itself
(auto_cleared, not_confirmed); a critical episode needs a note to be resolved and is never
snoozed; every such refusal is a 422 naming the field (not a 409), over the real server and
database."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.web import SITE_A, Client, Server, insert_episode, user

pytestmark = pytest.mark.db

CM_A = user("care_manager", SITE_A)
HX = {"HX-Request": "true"}
SYSTEM_ONLY = ("auto_cleared", "not_confirmed")


def _patient(conninfo: str, name: str) -> uuid.UUID:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "INSERT INTO patients (display_name, site_id) VALUES (%s, %s) RETURNING id",
            (name, SITE_A),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _episode(server: Server, name: str, severity: str, priority: int) -> uuid.UUID:
    pid = _patient(server.conninfo, name)
    family = "bp_crisis" if severity == "critical" else "bp_high"
    with psycopg.connect(server.conninfo) as conn:
        return insert_episode(
            conn, pid, SITE_A, family=family, rule_id=family, severity=severity, priority=priority
        )


def _field(resp: httpx.Response) -> list[Any]:
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert isinstance(errors, list), resp.text
    return list(errors[0]["loc"])


def _resolve_dialog(page: str) -> str:
    m = re.search(r'<dialog id="dlg-resolve">.*?</dialog>', page, re.S)
    assert m is not None, page[:500]
    return m.group(0)


def test_resolve_dialog_preselects_nothing_and_hides_system_outcomes(
    server: Server, clients: dict[str, Client]
) -> None:
    _episode(server, "Dialog Outcomes", "high", 2)
    page = clients[CM_A].get("/queue", headers={"Accept": "text/html"})
    assert page.status_code == 200
    dialog = _resolve_dialog(page.text)
    options = re.findall(r"<option([^>]*)>", dialog)
    values = [re.search(r'value="([^"]*)"', o) for o in options]
    offered = [v.group(1) for v in values if v is not None]
    assert offered[0] == "", offered  # a placeholder first
    assert "disabled" in options[0]
    assert all("selected" not in o for o in options[1:]), options
    for outcome in SYSTEM_ONLY:
        assert outcome not in offered
    for outcome in ("medication_changed", "appointment_scheduled", "referred_to_ed"):
        assert outcome in offered
    assert "required" in dialog.split("<select", 1)[1].split(">", 1)[0]


def test_snooze_is_not_offered_for_a_critical_episode(
    server: Server, clients: dict[str, Client]
) -> None:
    critical = _episode(server, "Snooze Critical", "critical", 1)
    high = _episode(server, "Snooze High", "high", 2)
    page = clients[CM_A].get("/queue", headers={"Accept": "text/html"}).text
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr id="ep-([^"]+)".*?</tr>', page)}
    assert 'class="snooze"' not in rows[str(critical)]
    assert 'class="resolve"' in rows[str(critical)]
    assert 'class="snooze"' in rows[str(high)]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "outcome"]),
        ({"outcome": "auto_cleared", "note": "went away"}, ["body", "outcome"]),
        ({"outcome": "not_confirmed", "note": "x"}, ["body", "outcome"]),
        ({"outcome": "nonsense"}, ["body", "outcome"]),
    ],
)
def test_resolve_refuses_missing_and_system_outcomes_with_422(
    server: Server, clients: dict[str, Client], body: dict[str, str], loc: list[str]
) -> None:
    eid = _episode(server, "Resolve Outcome", "high", 2)
    resp = clients[CM_A].post(f"/api/episodes/{eid}/resolve", json=body)
    assert _field(resp) == loc
    still = clients[CM_A].get(f"/api/episodes/{eid}").json()
    assert still["state"] == "open"
    assert still["outcome"] is None


def test_critical_episode_needs_a_note_to_resolve(
    server: Server, clients: dict[str, Client]
) -> None:
    eid = _episode(server, "Critical Note", "critical", 1)
    cm = clients[CM_A]
    for note in (None, "", "   "):
        body = {"outcome": "referred_to_ed"} | ({"note": note} if note is not None else {})
        assert _field(cm.post(f"/api/episodes/{eid}/resolve", json=body)) == ["body", "note"]
    done = cm.post(
        f"/api/episodes/{eid}/resolve",
        json={"outcome": "referred_to_ed", "note": "sent to L&D triage, 172/114 on repeat"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "resolved"
    assert done.json()["outcome"] == "referred_to_ed"


def test_a_high_episode_resolves_without_a_note(server: Server, clients: dict[str, Client]) -> None:
    eid = _episode(server, "High No Note", "high", 2)
    done = clients[CM_A].post(
        f"/api/episodes/{eid}/resolve", json={"outcome": "education_provided"}
    )
    assert done.status_code == 200, done.text


def test_snooze_refusals_name_their_field(server: Server, clients: dict[str, Client]) -> None:
    cm = clients[CM_A]
    until = (datetime.now(UTC) + timedelta(hours=4)).isoformat()
    critical = _episode(server, "Snooze Refused", "critical", 1)
    resp = cm.post(f"/api/episodes/{critical}/snooze", json={"reason": "busy", "until": until})
    assert _field(resp) == ["path", "action"]
    assert cm.get(f"/api/episodes/{critical}").json()["snoozed_until"] is None
    high = _episode(server, "Snooze Fields", "high", 2)
    assert _field(cm.post(f"/api/episodes/{high}/snooze", json={"until": until})) == [
        "body",
        "reason",
    ]
    assert _field(cm.post(f"/api/episodes/{high}/snooze", json={"reason": "clinic"})) == [
        "body",
        "until",
    ]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    resp = cm.post(f"/api/episodes/{high}/snooze", json={"reason": "clinic", "until": past})
    assert _field(resp) == ["body", "until"]
    ok = cm.post(f"/api/episodes/{high}/snooze", json={"reason": "clinic", "until": until})
    assert ok.status_code == 200, ok.text


def test_html_dialog_errors_are_422_text_naming_the_field(
    server: Server, clients: dict[str, Client]
) -> None:
    eid = _episode(server, "Html Refusal", "critical", 1)
    cm = clients[CM_A]
    resp = cm.post(f"/queue/episodes/{eid}/resolve", data={"outcome": "auto_cleared"}, headers=HX)
    assert resp.status_code == 422
    assert resp.text.startswith("outcome:")
    resp = cm.post(f"/queue/episodes/{eid}/resolve", data={"outcome": "other"}, headers=HX)
    assert resp.status_code == 422
    assert resp.text.startswith("note:")
    resp = cm.post(
        f"/queue/episodes/{eid}/snooze", data={"reason": "x", "snooze_hours": "1"}, headers=HX
    )
    assert resp.status_code == 422
    assert resp.text.startswith("action:")


def test_a_wrong_state_is_still_a_conflict(server: Server, clients: dict[str, Client]) -> None:
    """409 stays for the episode's state (acknowledging twice), not for a wrong argument."""
    eid = _episode(server, "Twice", "high", 2)
    cm = clients[CM_A]
    assert cm.post(f"/api/episodes/{eid}/acknowledge", json={}).status_code == 200
    assert cm.post(f"/api/episodes/{eid}/acknowledge", json={}).status_code == 409
