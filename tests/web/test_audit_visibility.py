"""Issue 17, findings 2 and 9: an audit log that the people responsible can use. Every denial
(site, role), failed login, lockout refusal (429, with ``Retry-After``), CSRF failure, token
creation and revocation is filed with actor, site (where there is one) and reason; it is read
back through ``GET /api/audit`` by the people who must see it: the supervisors of the sites
(including the denials of their own users elsewhere, without the other site's patient ids) and
the admins (also the rows without a site), and not by the other site's supervisor."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.web import Client, Server, user
from tests.web.conftest import Home17

pytestmark = pytest.mark.db

NewClient = Callable[[str | None], Client]
#: the lockout of the login form (web/README.md): 10 failures in 15 minutes
LOCKOUT_FAILURES = 10
LOCKOUT_SECONDS = 15 * 60


@pytest.fixture(scope="module")
def people(homes17: dict[str, Home17], server: Server) -> Iterator[dict[str, Client]]:
    made = {
        f"{role}_{key}": Client(server.url, user(role, homes17[key].site))
        for role in ("care_manager", "supervisor", "admin")
        for key in ("a", "b")
    }
    yield made
    for c in made.values():
        c.close()


def _rows(viewer: Client, username: str) -> list[dict[str, Any]]:
    resp = viewer.get("/api/audit", params={"username": username, "limit": 500})
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def _new_user(admin: Client, site: str) -> str:
    name = f"wt.aud.{uuid.uuid4().hex[:8]}"
    made = admin.post(
        "/api/users",
        json={
            "username": name,
            "display_name": "Audit Tester",
            "role": "care_manager",
            "password": "a-long-password-1",
            "sites": [site],
        },
    )
    assert made.status_code == 201, made.text
    return name


def _reasons(rows: list[dict[str, Any]], action: str) -> list[str | None]:
    return [r["reason"] for r in rows if r["action"] == action and r["outcome"] == "denied"]


def test_a_cross_site_denial_is_seen_by_both_sites_supervisors(
    people: dict[str, Client], homes17: dict[str, Home17]
) -> None:
    a, b = homes17["a"], homes17["b"]
    me = user("care_manager", a.site)
    assert people["care_manager_a"].get(f"/api/patients/{b.patient}").status_code == 403
    for viewer in ("supervisor_a", "admin_a", "supervisor_b"):
        rows = [r for r in _rows(people[viewer], me) if r["action"] == "api read patient"]
        assert rows, viewer
        assert rows[0]["outcome"] == "denied"
        assert rows[0]["reason"] == "site"
        assert rows[0]["site_id"] == b.site
        # the other site's patient id is theirs to see, not my supervisor's
        expected = str(b.patient) if viewer == "supervisor_b" else None
        assert rows[0]["patient_id"] == expected, viewer


def test_a_role_denial_is_seen_by_my_supervisor_only(
    people: dict[str, Client], homes17: dict[str, Home17]
) -> None:
    a = homes17["a"]
    me = user("care_manager", a.site)
    resp = people["care_manager_a"].patch(f"/api/patients/{a.patient}", json={})
    assert resp.status_code == 403
    # a row without a site shows no ids to others: the path's patient id is masked
    action = "PATCH /api/patients/<id>"
    assert _reasons(_rows(people["supervisor_a"], me), action)[:1] == ["role"]
    assert _reasons(_rows(people["admin_a"], me), action)[:1] == ["role"]
    assert _reasons(_rows(people["supervisor_b"], me), action) == []


def test_failed_logins_are_seen_by_the_supervisor_and_unknown_names_by_admins(
    people: dict[str, Client], homes17: dict[str, Home17], new_client: NewClient
) -> None:
    name = _new_user(people["admin_a"], homes17["a"].site)
    assert new_client(None).login(name, "not-the-password").status_code == 401
    assert _reasons(_rows(people["supervisor_a"], name), "login") == ["credentials"]
    assert _reasons(_rows(people["supervisor_b"], name), "login") == []
    nobody = f"wt.nobody.{uuid.uuid4().hex[:8]}"
    assert new_client(None).login(nobody, "whatever-it-is").status_code == 401
    assert _reasons(_rows(people["admin_a"], nobody), "login") == ["credentials"]
    assert _reasons(_rows(people["admin_b"], nobody), "login") == ["credentials"]
    assert _reasons(_rows(people["supervisor_a"], nobody), "login") == []


def test_a_lockout_refusal_is_audited_and_says_when_to_retry(
    people: dict[str, Client], homes17: dict[str, Home17], new_client: NewClient
) -> None:
    name = _new_user(people["admin_a"], homes17["a"].site)
    client = new_client(None)
    for _ in range(LOCKOUT_FAILURES):
        assert client.login(name, "not-the-password").status_code == 401
    refused: httpx.Response = client.login(name, "a-long-password-1")
    assert refused.status_code == 429
    retry = refused.headers.get("retry-after", "")
    assert re.fullmatch(r"[0-9]+", retry), retry
    assert 0 < int(retry) <= LOCKOUT_SECONDS
    reasons = _reasons(_rows(people["supervisor_a"], name), "login")
    assert reasons.count("credentials") == LOCKOUT_FAILURES
    assert reasons[0] == "lockout"
    # the refusals do not extend the lockout: a second one names no later time
    again = client.login(name, "a-long-password-1")
    assert again.status_code == 429
    assert int(again.headers["retry-after"]) <= int(retry)


def test_csrf_failures_are_audited(
    people: dict[str, Client], homes17: dict[str, Home17], new_client: NewClient
) -> None:
    a = homes17["a"]
    me = user("care_manager", a.site)
    resp = people["care_manager_a"].post(f"/api/episodes/{a.episode}/claim", json={}, csrf=False)
    assert resp.status_code == 403
    action = "POST /api/episodes/<id>/claim"
    assert _reasons(_rows(people["supervisor_a"], me), action)[:1] == ["csrf"]
    # the login form's own token
    name = _new_user(people["admin_a"], a.site)
    c = new_client(None)
    c.http.get("/login")
    forged = c.http.post(
        "/login",
        data={"username": name, "password": "a-long-password-1", "csrf_token": "forged"},
        headers={"Cookie": "cb_login_csrf=other"},
    )
    assert forged.status_code == 403
    assert _reasons(_rows(people["supervisor_a"], name), "login") == ["csrf"]


def test_token_creation_and_revocation_are_filed_under_the_site(
    people: dict[str, Client], homes17: dict[str, Home17]
) -> None:
    a = homes17["a"]
    cm = people["care_manager_a"]
    me = cm.get("/api/me").json()
    made = cm.post(f"/api/users/{me['id']}/tokens", json={"name": "audited"})
    assert made.status_code == 201, made.text
    token = f"token/{made.json()['id']}"
    revoked = cm.http.delete(
        f"/api/tokens/{made.json()['id']}", headers={"X-CSRF-Token": cm.csrf or ""}
    )
    assert revoked.status_code == 204
    for viewer in ("supervisor_a", "admin_a"):
        rows = [r for r in _rows(people[viewer], me["username"]) if r["resource"] == token]
        assert sorted(r["action"] for r in rows) == ["create api token", "revoke api token"]
        assert {r["site_id"] for r in rows} == {a.site}
    assert [
        r for r in _rows(people["supervisor_b"], me["username"]) if r["resource"] == token
    ] == []
