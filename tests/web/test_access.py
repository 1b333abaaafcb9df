"""People and rights: login, sessions, CSRF, tokens, roles, and site isolation on every
endpoint that returns patient data (no session → 401, other site → 403 + audit row)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
import pytest

from tests.support.web import (
    PASSWORD,
    SITE_A,
    SITE_B,
    Client,
    Server,
    World,
    audit_rows,
    insert_episode,
    user,
)

pytestmark = pytest.mark.db

CM_A = user("care_manager", SITE_A)

# (name, url template): {p} patient, {d} FHIR device id, {e} episode, {s} site
PATIENT_ENDPOINTS = [
    ("patient page", "/patients/{p}"),
    ("patient page 1y", "/patients/{p}?range=1y"),
    ("api patient", "/api/patients/{p}"),
    ("api assignments", "/api/patients/{p}/assignments"),
    ("api time entries", "/api/patients/{p}/time-entries"),
    ("fhir patient", "/fhir/Patient/{p}"),
    ("fhir observations", "/fhir/Observation?patient={p}"),
    ("fhir bp average", "/fhir/Observation?patient={p}&code=96607-7"),
    ("fhir devices", "/fhir/Device?patient={p}"),
    ("fhir device", "/fhir/Device/{d}"),
    ("api episode", "/api/episodes/{e}"),
]
SITE_ENDPOINTS = [
    ("api patients", "/api/patients?site_id={s}"),
    ("api queue", "/api/episodes?site_id={s}"),
]


@pytest.fixture(scope="module")
def episodes(server: Server, world: World) -> dict[str, uuid.UUID]:
    with psycopg.connect(server.conninfo) as conn:
        return {
            SITE_A: insert_episode(
                conn, world.patient_a, SITE_A, family="bp_low", rule_id="bp_low"
            ),
            SITE_B: insert_episode(
                conn, world.patient_b, SITE_B, family="bp_low", rule_id="bp_low"
            ),
        }


def _url(template: str, world: World, episodes: dict[str, uuid.UUID], mine: bool) -> str:
    from web._fhir import fhir_device_id

    return template.format(
        p=world.patient_a if mine else world.patient_b,
        d=fhir_device_id(world.device_a if mine else "serial:WT/1"),
        e=episodes[SITE_A if mine else SITE_B],
        s=SITE_A if mine else SITE_B,
    )


@pytest.mark.parametrize(("name", "template"), PATIENT_ENDPOINTS + SITE_ENDPOINTS)
def test_no_session_is_401(
    name: str,
    template: str,
    clients: dict[str, Client],
    world: World,
    episodes: dict[str, uuid.UUID],
) -> None:
    resp = clients["anonymous"].get(_url(template, world, episodes, mine=True))
    assert resp.status_code == 401, name
    assert "Zed Testpatient" not in resp.text


@pytest.mark.parametrize(("name", "template"), PATIENT_ENDPOINTS)
def test_other_site_is_403_and_audited(
    name: str,
    template: str,
    server: Server,
    clients: dict[str, Client],
    world: World,
    episodes: dict[str, uuid.UUID],
) -> None:
    before = len(audit_rows(server.conninfo, username=CM_A, outcome="denied"))
    resp = clients[CM_A].get(_url(template, world, episodes, mine=False))
    assert resp.status_code == 403, (name, resp.text)
    assert "Yara Testpatient" not in resp.text
    denied = audit_rows(server.conninfo, username=CM_A, outcome="denied")
    assert len(denied) == before + 1
    assert denied[-1]["patient_id"] in (world.patient_b, None)


@pytest.mark.parametrize(("name", "template"), SITE_ENDPOINTS)
def test_other_site_lists_are_403(
    name: str,
    template: str,
    clients: dict[str, Client],
    world: World,
    episodes: dict[str, uuid.UUID],
) -> None:
    resp = clients[CM_A].get(_url(template, world, episodes, mine=False))
    assert resp.status_code == 403, name


@pytest.mark.parametrize(("name", "template"), PATIENT_ENDPOINTS + SITE_ENDPOINTS)
def test_own_site_is_200_and_audited(
    name: str,
    template: str,
    server: Server,
    clients: dict[str, Client],
    world: World,
    episodes: dict[str, uuid.UUID],
) -> None:
    before = len(audit_rows(server.conninfo, username=CM_A, outcome="allowed"))
    resp = clients[CM_A].get(_url(template, world, episodes, mine=True))
    assert resp.status_code == 200, (name, resp.text[:500])
    assert "Yara Testpatient" not in resp.text
    assert len(audit_rows(server.conninfo, username=CM_A, outcome="allowed")) > before


def test_queue_shows_only_my_sites(
    clients: dict[str, Client], world: World, episodes: dict[str, uuid.UUID]
) -> None:
    page = clients[CM_A].get("/queue", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert str(episodes[SITE_A]) in page.text
    assert str(episodes[SITE_B]) not in page.text
    assert "Yara Testpatient" not in page.text
    assert clients["anonymous"].get("/queue", headers={"Accept": "text/html"}).status_code == 401


def test_billing_is_for_supervisors_of_the_site(clients: dict[str, Client]) -> None:
    sup_a = clients[user("supervisor", SITE_A)]
    assert sup_a.get(f"/api/billing/ledger?site_id={SITE_A}").status_code == 200
    assert sup_a.get(f"/api/billing/ledger?site_id={SITE_B}").status_code == 403
    assert sup_a.get(f"/billing/ledger.csv?site_id={SITE_B}").status_code == 403
    assert clients[CM_A].get(f"/api/billing/ledger?site_id={SITE_A}").status_code == 403
    assert clients["anonymous"].get(f"/billing/ledger.csv?site_id={SITE_A}").status_code == 401


def test_audit_log_is_for_supervisors(clients: dict[str, Client]) -> None:
    assert clients[CM_A].get("/api/audit").status_code == 403
    resp = clients[user("supervisor", SITE_A)].get("/api/audit?outcome=denied")
    assert resp.status_code == 200
    assert all(r["outcome"] == "denied" for r in resp.json()["items"])


def test_wrong_password_is_401_and_audited(
    server: Server, new_client: Callable[[str | None], Client]
) -> None:
    c = new_client(None)
    resp = c.login(CM_A, "not-the-password")
    assert resp.status_code == 401
    assert "cb_session" not in resp.headers.get("set-cookie", "")
    assert audit_rows(server.conninfo, action="login", outcome="denied")


def test_login_without_csrf_is_refused(
    server: Server, new_client: Callable[[str | None], Client]
) -> None:
    c = new_client(None)
    resp = c.http.post(
        "/login", data={"username": CM_A, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert resp.status_code == 403


def test_session_cookie_flags(server: Server, new_client: Callable[[str | None], Client]) -> None:
    c = new_client(None)
    page = c.http.get("/login")
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    pre = page.headers["set-cookie"].split(";")[0]
    resp = c.http.post(
        "/login",
        data={"username": CM_A, "password": PASSWORD, "csrf_token": token.group(1)},
        headers={"Cookie": pre},
    )
    assert resp.status_code == 303
    cookie = next(h for h in resp.headers.get_list("set-cookie") if h.startswith("cb_session="))
    flags = cookie.lower()
    assert "content-security-policy" in resp.headers
    assert "httponly" in flags
    assert "secure" in flags
    assert "samesite=lax" in flags


def test_state_change_without_csrf_is_403(
    clients: dict[str, Client], world: World, episodes: dict[str, uuid.UUID]
) -> None:
    c = clients[CM_A]
    resp = c.post(f"/api/episodes/{episodes[SITE_A]}/claim", json={}, csrf=False)
    assert resp.status_code == 403
    assert "CSRF" in resp.json()["detail"]


def test_api_token_works_without_csrf_and_can_be_revoked(
    clients: dict[str, Client], world: World, new_client: Callable[[str | None], Client]
) -> None:
    admin = clients[user("admin", SITE_A)]
    me = admin.get("/api/me").json()
    made = admin.post(f"/api/users/{me['id']}/tokens", json={"name": "integration"})
    assert made.status_code == 201
    token = made.json()["token"]
    bearer = new_client(None)
    bearer.http.headers["Authorization"] = f"Bearer {token}"
    assert bearer.get(f"/fhir/Patient/{world.patient_a}").status_code == 200
    assert bearer.get(f"/fhir/Patient/{world.patient_b}").status_code == 403
    assert (
        admin.http.delete(
            f"/api/tokens/{made.json()['id']}", headers={"X-CSRF-Token": admin.csrf or ""}
        ).status_code
        == 204
    )
    assert bearer.get(f"/fhir/Patient/{world.patient_a}").status_code == 401


def test_roles_are_enforced(clients: dict[str, Client], world: World) -> None:
    # a care manager may not use the admin API; an admin may not work the queue
    assert clients[CM_A].post("/api/sites", json={"id": "x", "name": "X"}).status_code == 403
    assert clients[CM_A].get("/api/users").status_code == 403
    admin = clients[user("admin", SITE_A)]
    resp = admin.post(
        f"/api/patients/{world.patient_a}/time-entries",
        json={"started_at": "2026-01-05T10:00:00Z", "minutes": 5, "interactive": False},
    )
    assert resp.status_code == 403


def test_logout_ends_the_session(
    server: Server, new_client: Callable[[str | None], Client]
) -> None:
    c = new_client(CM_A)
    assert c.get("/api/me").status_code == 200
    c.post("/logout")
    assert c.get("/api/me").status_code == 401


def test_repeated_failures_lock_the_login(
    clients: dict[str, Client], new_client: Callable[[str | None], Client]
) -> None:
    admin = clients[user("admin", SITE_A)]
    made = admin.post(
        "/api/users",
        json={
            "username": "wt.lockme",
            "display_name": "Lock Me",
            "role": "clinician",
            "password": "the-right-password",
            "sites": [SITE_A],
        },
    )
    assert made.status_code == 201
    c = new_client(None)
    for _ in range(10):
        assert c.login("wt.lockme", "a-wrong-password").status_code == 401
    assert c.login("wt.lockme", "the-right-password").status_code == 429


def test_chart_deep_link_survives_login(
    server: Server, world: World, new_client: Callable[[str | None], Client]
) -> None:
    c = new_client(None)
    page = c.get(f"/patients/{world.patient_a}?range=7d", headers={"Accept": "text/html"})
    assert page.status_code == 401
    assert f'value="/patients/{world.patient_a}?range=7d"' in page.text
    c.login(CM_A, PASSWORD)
    by_mrn = c.get("/patients/by-mrn/WT-MRN-A-1", headers={"Accept": "text/html"})
    assert by_mrn.status_code == 303
    assert by_mrn.headers["location"] == f"/patients/{world.patient_a}"
    assert c.get("/patients/by-mrn/nope", headers={"Accept": "text/html"}).status_code == 404
    other = c.get("/patients/by-mrn/WT-MRN-B-1", headers={"Accept": "text/html"})
    assert other.status_code == 404


# (role, method, url template, JSON body, form): input a route refuses as invalid
INVALID_INPUT: list[tuple[str, str, str, dict[str, object] | None, dict[str, str] | None]] = [
    ("care_manager", "GET", "/patients/{p}?range=2w", None, None),
    ("care_manager", "GET", "/api/patients/{p}/time-entries?limit=0", None, None),
    (
        "care_manager",
        "POST",
        "/api/patients/{p}/time-entries",
        {"started_at": "2026-01-05T10:00:00Z", "minutes": 0, "interactive": False},
        None,
    ),
    ("care_manager", "POST", "/queue/patients/{p}/time", None, {"minutes": "0"}),
    ("admin", "PATCH", "/api/patients/{p}", {"risk_tier": 9}, None),
    ("supervisor", "POST", "/api/patients/{p}/enrollments", {}, None),
    (
        "clinician",
        "POST",
        "/api/patients/{p}/thresholds",
        {"parameter": "bp_high.level1_systolic", "value": 150, "reason": "x",
         "valid_from": "2026-01-05T10:00:00"},
        None,
    ),
]  # fmt: skip


@pytest.mark.parametrize("mine", [True, False], ids=["own site", "other site"])
@pytest.mark.parametrize(("role", "method", "template", "body", "form"), INVALID_INPUT)
def test_invalid_input_is_422_before_the_patient_is_loaded(
    role: str,
    method: str,
    template: str,
    body: dict[str, object] | None,
    form: dict[str, str] | None,
    mine: bool,
    server: Server,
    clients: dict[str, Client],
    world: World,
) -> None:
    """A request refused for its input touches no patient: 422 whichever site the patient is
    at (no answer tells whether the patient exists or is mine), and no audit row."""
    username = user(role, SITE_A)
    c = clients[username]
    url = template.format(p=world.patient_a if mine else world.patient_b)
    before = len(audit_rows(server.conninfo, username=username))
    headers = {"X-CSRF-Token": c.csrf or ""}
    resp = c.http.request(method, url, json=body, data=form, headers=headers)
    assert resp.status_code == 422, (url, resp.text[:300])
    assert len(audit_rows(server.conninfo, username=username)) == before
