"""Issue 17, findings 3 and 4: a write that names another object (device, episode, gateway,
user, token, enrollment, assignment) checks that object's site, and answers another site's
object exactly as it answers one that does not exist, so that ids cannot be probed.

The write routes are enumerated from ``app.routes``: every one whose path or body names an
object by a guessable id must have a probe here (a new one fails until it gets one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from carebeacon.settings import Settings
from tests.support.web import Client, Server, user
from tests.web.conftest import Home17
from tests.web.test_route_access import enumerate_routes
from web.app import create_app

pytestmark = pytest.mark.db

#: parameters that name an object of a site by an id someone could guess or has seen
OBJECT_PARAMS = {
    "device_id",
    "gateway_id",
    "user_id",
    "token_id",
    "enrollment_id",
    "assignment_id",
    "episode_id",
}
#: writes whose object parameter is checked elsewhere, and why
CHECKED_ELSEWHERE = {
    ("POST", "/api/episodes/{episode_id}/{action}"): "test_route_access (patient routes)",
    ("POST", "/queue/episodes/{episode_id}/{action}"): "test_route_access (patient routes)",
}
Probe = Callable[[Client, Home17, Home17, str], httpx.Response]


def _one(conninfo: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def _hour_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).isoformat()


def _user_id(conninfo: str, name: str) -> int:
    return int(_one(conninfo, "SELECT id FROM web_users WHERE username = %s", name))


@pytest.fixture(scope="module")
def conninfo(server: Server) -> str:
    return server.conninfo


def _probes(conninfo: str) -> dict[tuple[str, str], tuple[str, Probe]]:
    """Per route: the role that may use it, and a probe sending the request about ``target``
    (another site's object, or a made-up one) as a user of ``mine``."""

    def assign(c: Client, mine: Home17, other: Home17, device: str) -> httpx.Response:
        body = {"device_id": device, "patient_id": str(mine.patient), "valid_from": _hour_ago()}
        return c.post("/api/assignments", json=body)

    def rotate(c: Client, mine: Home17, other: Home17, gateway: str) -> httpx.Response:
        return c.post(f"/api/gateways/{gateway}/credentials")

    def serve(c: Client, mine: Home17, other: Home17, gateway: str) -> httpx.Response:
        return c.post(f"/api/gateways/{gateway}/patients", json={"patient_id": str(mine.patient)})

    def deprovision(c: Client, mine: Home17, other: Home17, gateway: str) -> httpx.Response:
        return c.http.delete(f"/api/gateways/{gateway}", headers={"X-CSRF-Token": c.csrf or ""})

    def patch_user(c: Client, mine: Home17, other: Home17, uid: str) -> httpx.Response:
        return c.patch(f"/api/users/{uid}", json={"display_name": "probe"})

    def token_for(c: Client, mine: Home17, other: Home17, uid: str) -> httpx.Response:
        return c.post(f"/api/users/{uid}/tokens", json={"name": "probe", "impersonation": True})

    def revoke(c: Client, mine: Home17, other: Home17, tid: str) -> httpx.Response:
        return c.http.delete(f"/api/tokens/{tid}", headers={"X-CSRF-Token": c.csrf or ""})

    def patch_enrollment(c: Client, mine: Home17, other: Home17, eid: str) -> httpx.Response:
        return c.patch(f"/api/enrollments/{eid}", json={"billing_practitioner": "probe"})

    def end(c: Client, mine: Home17, other: Home17, aid: str) -> httpx.Response:
        return c.post(f"/api/assignments/{aid}/end", json={"valid_to": _hour_ago()})

    def time_entry(c: Client, mine: Home17, other: Home17, episode: str) -> httpx.Response:
        body = {
            "started_at": _hour_ago(),
            "minutes": 5,
            "interactive": False,
            "episode_id": episode,
        }
        return c.post(f"/api/patients/{mine.patient}/time-entries", json=body)

    def queue_time(c: Client, mine: Home17, other: Home17, episode: str) -> httpx.Response:
        data = {"minutes": "5", "episode_id": episode}
        return c.post(f"/queue/patients/{mine.patient}/time", data=data)

    return {
        ("POST", "/api/assignments"): ("admin", assign),
        ("POST", "/api/gateways/{gateway_id}/credentials"): ("admin", rotate),
        ("POST", "/api/gateways/{gateway_id}/patients"): ("admin", serve),
        ("DELETE", "/api/gateways/{gateway_id}"): ("admin", deprovision),
        ("PATCH", "/api/users/{user_id}"): ("admin", patch_user),
        ("POST", "/api/users/{user_id}/tokens"): ("admin", token_for),
        ("DELETE", "/api/tokens/{token_id}"): ("admin", revoke),
        ("PATCH", "/api/enrollments/{enrollment_id}"): ("admin", patch_enrollment),
        ("POST", "/api/assignments/{assignment_id}/end"): ("admin", end),
        ("POST", "/api/patients/{patient_id}/time-entries"): ("care_manager", time_entry),
        ("POST", "/queue/patients/{patient_id}/time"): ("care_manager", queue_time),
    }


def _targets(conninfo: str, other: Home17) -> dict[str, tuple[str, str]]:
    """Per object parameter: (another site's id, a made-up id)."""
    other_user = _user_id(conninfo, user("clinician", other.site))
    token = _one(
        conninfo,
        "INSERT INTO web_api_tokens (user_id, name, token_hash) VALUES (%s, 'victim', %s)"
        " RETURNING id",
        other_user,
        uuid.uuid4().bytes,
    )
    enrollment = _one(conninfo, "SELECT id FROM enrollments WHERE patient_id = %s", other.patient)
    assignment = _one(
        conninfo, "SELECT id FROM device_assignments WHERE patient_id = %s", other.patient
    )
    biggest = _one(conninfo, "SELECT max(id) + 1000 FROM web_users")
    return {
        "device_id": (other.device, "wt-s17-no-such-device"),
        "gateway_id": (other.gateway, "wt-s17-no-such-gateway"),
        "user_id": (str(other_user), str(biggest)),
        "token_id": (str(token), str(int(token) + 1000)),
        "enrollment_id": (str(enrollment), str(int(enrollment) + 100000)),
        "assignment_id": (str(assignment), str(int(assignment) + 100000)),
        "episode_id": (str(other.episode), str(uuid.uuid4())),
    }


def _object_param(path_params: tuple[str, ...], body: set[str]) -> str:
    names = (OBJECT_PARAMS & set(path_params)) or (OBJECT_PARAMS & body)
    assert len(names) == 1, names
    return next(iter(names))


def test_writes_answer_another_sites_object_as_one_that_does_not_exist(
    settings: Settings,
    server: Server,
    homes17: dict[str, Home17],
    new_client: Callable[[str | None], Client],
) -> None:
    app = create_app(settings, conninfo="postgresql://unused@127.0.0.1:1/unused")
    writes = [
        r
        for r in enumerate_routes(list(app.routes))
        if r.method not in ("GET", "MOUNT")
        and r.authenticated
        and (OBJECT_PARAMS & (set(r.path_params) | r.body_fields))
        and r.key not in CHECKED_ELSEWHERE
    ]
    probes = _probes(server.conninfo)
    missing = {str(r) for r in writes} - {f"{m} {p}" for m, p in probes}
    assert not missing, f"write routes naming an object without a probe: {missing}"
    mine, other = homes17["a"], homes17["b"]
    targets = _targets(server.conninfo, other)
    clients = {role: new_client(user(role, mine.site)) for role in ("admin", "care_manager")}
    table, leaks = [], []
    for route in writes:
        role, probe = probes[route.key]
        name = _object_param(route.path_params, route.body_fields)
        theirs, made_up = targets[name]
        foreign = probe(clients[role], mine, other, theirs)
        unknown = probe(clients[role], mine, other, made_up)
        table.append(f"{route}: other site {foreign.status_code}, unknown {unknown.status_code}")
        if (foreign.status_code, foreign.text) != (unknown.status_code, unknown.text) or (
            foreign.status_code not in (404, 422)
        ):
            leaks.append(
                f"{route}: {foreign.status_code} {foreign.text[:80]}"
                f" / {unknown.status_code} {unknown.text[:80]}"
            )
    print("\n".join(table))
    assert not leaks, "\n".join(leaks)
    # nothing was written about the other site's objects
    with psycopg.connect(server.conninfo) as conn:
        moved = conn.execute(
            "SELECT count(*) FROM device_assignments WHERE device_id = %s AND patient_id = %s",
            (other.device, mine.patient),
        ).fetchone()
        billed = conn.execute(
            "SELECT count(*) FROM care_time_entries WHERE episode_id = %s", (other.episode,)
        ).fetchone()
    assert moved == (0,)
    assert billed == (0,)


def test_a_time_entry_names_an_episode_of_its_patient(
    server: Server, homes17: dict[str, Home17], new_client: Callable[[str | None], Client]
) -> None:
    mine, other = homes17["a"], homes17["b"]
    cm = new_client(user("care_manager", mine.site))

    def log(episode: uuid.UUID) -> httpx.Response:
        body = {"started_at": _hour_ago(), "minutes": 5, "interactive": False}
        return cm.post(
            f"/api/patients/{mine.patient}/time-entries",
            json={**body, "episode_id": str(episode)},
        )

    own = log(mine.episode)
    assert own.status_code == 201, own.text
    assert own.json()["episode_id"] == str(mine.episode)
    for episode in (other.episode, uuid.uuid4()):
        refused = log(episode)
        assert refused.status_code == 422
        assert [e["loc"] for e in refused.json()["errors"]] == [["body", "episode_id"]]
