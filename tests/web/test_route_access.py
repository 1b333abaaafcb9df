"""Every route of the app, enumerated from ``app.routes`` (no hand-kept list of URLs):

- a route without authentication must be one of the few public ones (login, docs, static…);
- every other route answers 401 without a session, and leaks no patient data doing so;
- every route that touches a patient (a patient, episode, device, enrollment, assignment or MRN
  in its path, ``patient`` in its query, ``patient_id(s)`` in its body) answers 2xx/3xx for the
  patient's own site and writes an ``allowed`` audit row naming the patient, and answers 403
  for another site's patient and writes a ``denied`` audit row;
- every route with a ``site_id`` answers 403 for another site;
- no authenticated GET shows another site's patient, and any that shows a patient of mine
  wrote an audit row.

Requests are built from each route's own parameters: path and query values by name, JSON or
form bodies from the route's request model (required fields, values by field name). A new
route is covered as soon as it exists; one whose parameters the builder cannot fill fails
with its name, so that it gets a value rather than a pass.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute

from carebeacon.settings import Settings
from lab.homes import Device
from lab.seed import seed_demo
from tests.support.web import (
    PASSWORD,
    Client,
    Server,
    audit_rows,
    enrolled_patient,
    insert_episode,
    user,
)
from web._fhir import fhir_device_id
from web.app import create_app

pytestmark = pytest.mark.db

MINE, OTHER = "wt-site-r1", "wt-site-r2"
ROLES = ("care_manager", "clinician", "supervisor", "admin")
#: routes anyone may call, and why
PUBLIC = {
    ("GET", "/"): "redirects to /queue",
    ("GET", "/healthz"): "liveness",
    ("GET", "/docs"): "Swagger UI page (the API it calls needs a token)",
    ("GET", "/openapi.json"): "the API description",
    ("GET", "/login"): "the login form",
    ("POST", "/login"): "logging in",
    ("POST", "/logout"): "ends the session in the cookie, if any",
    ("MOUNT", "/static"): "CSS, JS, vendored libraries",
}
#: parameters that name a patient's data, in the path / the query / the JSON or form body
PATIENT_PATH = {"patient_id", "episode_id", "device_id", "enrollment_id", "assignment_id", "mrn"}
PATIENT_QUERY = {"patient"}
PATIENT_BODY = {"patient_id", "patient_ids"}
#: deliberate exceptions to "another site's patient → 403", and why
_SEQUENTIAL = (
    404,
    "record ids are sequential: another site's record is 'not found' like an unknown one, so"
    " that ids cannot be probed (issue 17)",
)
OTHER_SITE_EXCEPTIONS = {
    ("GET", "/patients/by-mrn/{mrn}"): (
        404,
        "an MRN lookup finds patients of my sites only: 'not found', so that other sites'"
        " MRNs cannot be probed",
    ),
    ("PATCH", "/api/enrollments/{enrollment_id}"): _SEQUENTIAL,
    ("POST", "/api/assignments/{assignment_id}/end"): _SEQUENTIAL,
}
_families = itertools.cycle(
    ["bp_high", "bp_low", "bp_mean", "glucose_high", "glucose_low", "weight_gain"]
)


@dataclasses.dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    authenticated: bool
    path_params: tuple[str, ...] = ()
    query_params: tuple[str, ...] = ()
    body_model: type[BaseModel] | None = None
    form_fields: tuple[tuple[str, bool], ...] = ()  # (name, required)

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def body_fields(self) -> set[str]:
        if self.body_model is not None:
            return set(self.body_model.model_fields)
        return {name for name, _ in self.form_fields}

    @property
    def touches_patient(self) -> bool:
        return bool(
            PATIENT_PATH & set(self.path_params)
            or PATIENT_QUERY & set(self.query_params)
            or PATIENT_BODY & self.body_fields
        )

    @property
    def site_scoped(self) -> bool:
        return "site_id" in self.query_params or "site_id" in self.body_fields

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    """The route's own dependant and its dependencies': a route's parameters are those its
    dependencies declare too (the patient of ``web._access.patient_access``)."""
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _unique(params: Iterator[Any]) -> list[Any]:
    return list({p.alias: p for p in params}.values())


def _is_auth(call: Any) -> bool:
    name = getattr(call, "__qualname__", "")
    return bool(name == "authenticate" or name.startswith("require.<locals>"))


def enumerate_routes(routes: list[BaseRoute]) -> list[RouteInfo]:
    found: list[RouteInfo] = []
    for context in iter_route_contexts(routes):
        route = context.original_route
        path = context.path or ""
        if not isinstance(route, APIRoute):
            methods = sorted(context.methods or ()) or ["MOUNT"]
            found.extend(RouteInfo(m, path, False) for m in methods if m != "HEAD")
            continue
        dependant = route.dependant
        every = list(_dependants(dependant))
        body_model: type[BaseModel] | None = None
        form: list[tuple[str, bool]] = []
        for param in _unique(p for d in every for p in d.body_params):
            annotation = param.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                body_model = annotation
            else:
                form.append((param.alias, param.field_info.is_required()))
        for method in sorted(route.methods or ()):
            found.append(
                RouteInfo(
                    method,
                    path,
                    any(_is_auth(c) for c in _calls(dependant)),
                    tuple(p.name for p in _unique(p for d in every for p in d.path_params)),
                    tuple(q.alias for q in _unique(q for d in every for q in d.query_params)),
                    body_model,
                    tuple(form),
                )
            )
    return found


@pytest.fixture(scope="module")
def routes(settings: Settings) -> list[RouteInfo]:
    app = create_app(settings, conninfo="postgresql://unused@127.0.0.1:1/unused")
    found = enumerate_routes(list(app.routes))
    assert len(found) > 40
    return found


# --- the two sites, and request building ------------------------------------------------------


@dataclasses.dataclass
class Side:
    site: str
    patient: uuid.UUID
    name: str
    mrn: str
    device: str
    gateway: str
    enrollment: int
    conninfo: str

    def fresh_episode(self) -> uuid.UUID:
        with psycopg.connect(self.conninfo) as conn:
            family = next(_families)
            conn.execute(
                "UPDATE alert_episodes SET state = 'resolved', resolved_at = now(),"
                " outcome = 'contacted_no_change' WHERE patient_id = %s AND family = %s"
                " AND state <> 'resolved'",
                (self.patient, family),
            )
            return insert_episode(conn, self.patient, self.site, family=family, rule_id=family)

    def fresh_assignment(self) -> int:
        device = f"wt-r-dev-{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.conninfo) as conn:
            conn.execute("INSERT INTO devices (id, type) VALUES (%s, 'weight_scale')", (device,))
            row = conn.execute(
                "INSERT INTO device_assignments (device_id, patient_id, valid_from)"
                " VALUES (%s, %s, now() - interval '1 day') RETURNING id",
                (device, self.patient),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def fresh_gateway(self) -> str:
        gateway = f"wt-r-gw-{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.conninfo) as conn:
            conn.execute("INSERT INTO gateways (id) VALUES (%s)", (gateway,))
        return gateway

    def fresh_device(self) -> str:
        device = f"wt-r-dev-{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.conninfo) as conn:
            conn.execute("INSERT INTO devices (id, type) VALUES (%s, 'weight_scale')", (device,))
        return device


def _side(conninfo: str, site: str) -> Side:
    seed_demo(conninfo, site_id=site, site_name=site, program_id="wt-htn", password=PASSWORD)
    name = f"Route Patient {site}"
    mrn = f"MRN-{site}"
    device, gateway = f"wt-r-dev-{site}", f"wt-r-gw-{site}"
    patient = enrolled_patient(
        conninfo,
        site,
        name,
        history_days=3,
        mrn=mrn,
        gateway_id=gateway,
        devices=(Device(device, "blood_pressure_monitor"),),
    )
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT id FROM enrollments WHERE patient_id = %s", (patient,)
        ).fetchone()
    assert row is not None
    return Side(site, patient, name, mrn, device, gateway, int(row[0]), conninfo)


@pytest.fixture(scope="module")
def sides(server: Server) -> dict[str, Side]:
    return {MINE: _side(server.conninfo, MINE), OTHER: _side(server.conninfo, OTHER)}


@pytest.fixture(scope="module")
def users(server: Server, sides: dict[str, Side]) -> Iterator[dict[str, Client]]:
    made = {role: Client(server.url, user(role, MINE)) for role in ROLES}
    made["anonymous"] = Client(server.url)
    yield made
    for c in made.values():
        c.close()


class CannotBuild(Exception):
    pass


def _value(name: str, side: Side, mine: Side, route: RouteInfo, *, strict: bool = True) -> Any:
    now = datetime.now(UTC)
    values: dict[str, Callable[[], Any]] = {
        # whose data: the side under test
        "patient_id": lambda: str(side.patient),
        "patient": lambda: str(side.patient),
        "patient_ids": lambda: [str(side.patient)],
        "episode_id": lambda: str(side.fresh_episode()),
        "device_id": lambda: (
            fhir_device_id(side.device) if route.path.startswith("/fhir/") else mine.fresh_device()
        ),
        "enrollment_id": lambda: side.enrollment,
        "assignment_id": lambda: side.fresh_assignment(),
        "mrn": lambda: side.mrn,
        "site_id": lambda: side.site,
        # what else the request needs: from my own site, or plain values
        "gateway_id": lambda: mine.fresh_gateway(),
        "program_id": lambda: "wt-htn",
        "action": lambda: "claim",
        "id": lambda: f"wt-r-{uuid.uuid4().hex[:8]}",
        "display_name": lambda: "Route Test",
        "started_at": lambda: (now - timedelta(hours=1)).isoformat(),
        "valid_from": lambda: (now - timedelta(hours=1)).isoformat(),
        "valid_to": lambda: now.isoformat(),
        "minutes": lambda: 5,
        "interactive": lambda: False,
        "parameter": lambda: "bp_high.level1_systolic",
        "value": lambda: 150,
        "reason": lambda: "route access test",
        "name": lambda: "route test",
        "type": lambda: "weight_scale",
        "template": lambda: "hypertension",
        "symptoms": lambda: ["severe_headache"],
    }
    if name not in values:
        if not strict:
            return "x"
        raise CannotBuild(f"{route}: no value for parameter {name!r}")
    return values[name]()


@dataclasses.dataclass(frozen=True)
class Call:
    method: str
    url: str
    json: dict[str, Any] | None = None
    data: dict[str, str] | None = None


def build(route: RouteInfo, side: Side, mine: Side, *, strict: bool = True) -> Call:
    """The request for ``route`` about ``side``'s patient (or site). Not ``strict``: a
    parameter without a known value gets a placeholder (enough to test authentication)."""

    def value(name: str) -> Any:
        return _value(name, side, mine, route, strict=strict)

    path = route.path
    for name in route.path_params:
        path = path.replace("{" + name + "}", str(value(name)))
    query = [f"{q}={value(q)}" for q in route.query_params if q in PATIENT_QUERY or q == "site_id"]
    url = path + ("?" + "&".join(query) if query else "")
    if route.body_model is not None:
        body = {
            name: value(name)
            for name, field in route.body_model.model_fields.items()
            if field.is_required() or name in PATIENT_BODY or name == "site_id"
        }
        return Call(route.method, url, json=body)
    if route.form_fields:
        data = {
            name: str(value(name))
            for name, required in route.form_fields
            if required or name in PATIENT_BODY
        }
        return Call(route.method, url, data=data)
    return Call(route.method, url, json={} if route.method != "GET" else None)


def send(client: Client, call: Call, *, follow: bool = False) -> tuple[int, str]:
    """Status and body; with ``follow``, a redirect to a local page is followed once (the
    page, not the redirect, is where the patient is shown and audited)."""
    headers = {"Accept": "text/html"} if not call.url.startswith(("/api", "/fhir")) else {}
    if client.csrf and call.method != "GET":
        headers["X-CSRF-Token"] = client.csrf
    request = client.http.build_request(
        call.method, call.url, json=call.json, data=call.data, headers=headers
    )
    response = client.http.send(request, stream=True)
    location = response.headers.get("location", "")
    if follow and response.is_redirect and location.startswith("/"):
        response.close()
        return send(client, Call("GET", location))
    try:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return response.status_code, next(response.iter_text(), "")
        return response.status_code, response.read().decode()
    finally:
        response.close()


def _audit_count(conninfo: str, username: str, outcome: str, patient: uuid.UUID | None) -> int:
    where: dict[str, Any] = {"username": username, "outcome": outcome}
    if patient is not None:
        where["patient_id"] = patient
    return len(audit_rows(conninfo, **where))


# --- the tests ---------------------------------------------------------------------------------


def test_unauthenticated_routes_are_only_the_public_ones(routes: list[RouteInfo]) -> None:
    public = {r.key for r in routes if not r.authenticated}
    assert public == set(PUBLIC), "a route without authentication: " + str(public ^ set(PUBLIC))


def test_the_patient_routes_are_found(routes: list[RouteInfo]) -> None:
    """The classification is not vacuous: the routes known to touch patients are in it."""
    patient = {str(r) for r in routes if r.touches_patient}
    assert {
        "GET /patients/{patient_id}",
        "GET /api/patients/{patient_id}",
        "GET /fhir/Observation",
        "GET /fhir/Device/{device_id}",
        "POST /api/episodes/{episode_id}/{action}",
        "POST /queue/patients/{patient_id}/time",
        "POST /api/assignments",
        "PATCH /api/enrollments/{enrollment_id}",
    } <= patient
    assert len(patient) >= 20


def test_no_session_is_401_on_every_authenticated_route(
    routes: list[RouteInfo], sides: dict[str, Side], users: dict[str, Client]
) -> None:
    checked = []
    for route in routes:
        if not route.authenticated:
            continue
        call = build(route, sides[MINE], sides[MINE], strict=False)
        status, body = send(users["anonymous"], call)
        assert status == 401, (str(route), status, body[:300])
        assert sides[MINE].name not in body
        checked.append(str(route))
    print(f"401 without a session: {len(checked)} routes")
    assert len(checked) >= 45


def _own_site(
    server: Server, users: dict[str, Client], route: RouteInfo, sides: dict[str, Side]
) -> tuple[str, int, str]:
    """(role, status, body) of the first role allowed to use ``route`` on my site."""
    status, body = 0, ""
    for role in ROLES:
        status, body = send(users[role], build(route, sides[MINE], sides[MINE]), follow=True)
        if status != 403 or "your role may not do this" not in body:
            return role, status, body
    raise AssertionError(f"{route}: no role may use it ({status} {body[:200]})")


def test_patient_routes_own_site_allowed_other_site_403_and_audited(
    server: Server, routes: list[RouteInfo], sides: dict[str, Side], users: dict[str, Client]
) -> None:
    mine, other = sides[MINE], sides[OTHER]
    covered: list[str] = []
    for route in routes:
        if not (route.authenticated and route.touches_patient):
            continue
        role = ""
        try:
            username = user(ROLES[0], MINE)
            allowed_before = {
                r: _audit_count(server.conninfo, user(r, MINE), "allowed", mine.patient)
                for r in ROLES
            }
            role, status, body = _own_site(server, users, route, sides)
            username = user(role, MINE)
            assert status < 400, (str(route), role, status, body[:300])
            assert other.name not in body
            assert (
                _audit_count(server.conninfo, username, "allowed", mine.patient)
                > allowed_before[role]
            ), f"{route}: my patient's data was touched without an 'allowed' audit row"
            denied_before = _audit_count(server.conninfo, username, "denied", None)
            status, body = send(users[role], build(route, other, mine))
        except CannotBuild as exc:
            pytest.fail(str(exc))
        expected, why = OTHER_SITE_EXCEPTIONS.get(route.key, (403, ""))
        assert status == expected, (str(route), role, status, body[:300], why)
        assert other.name not in body
        assert other.mrn not in body
        if expected == 403 or "sequential" in why:
            denied = audit_rows(server.conninfo, username=username, outcome="denied")
            assert len(denied) > denied_before, f"{route}: 403 without a 'denied' audit row"
            assert denied[-1]["patient_id"] in (other.patient, None), str(route)
        covered.append(f"{route} ({role})")
    print(f"patient routes: {len(covered)}: " + "; ".join(covered))
    assert len(covered) >= 20


def test_site_scoped_routes_refuse_another_site(
    server: Server, routes: list[RouteInfo], sides: dict[str, Side], users: dict[str, Client]
) -> None:
    mine, other = sides[MINE], sides[OTHER]
    covered = []
    for route in routes:
        if not (route.authenticated and route.site_scoped) or route.touches_patient:
            continue
        role, status, body = _own_site(server, users, route, sides)
        assert status < 400, (str(route), role, status, body[:300])
        status, body = send(users[role], build(route, other, mine))
        assert status == 403, (str(route), role, status, body[:300])
        assert other.name not in body
        covered.append(str(route))
    print(f"site-scoped routes: {covered}")
    assert len(covered) >= 5


def test_no_get_shows_another_sites_patient_and_showing_mine_is_audited(
    server: Server, routes: list[RouteInfo], sides: dict[str, Side], users: dict[str, Client]
) -> None:
    mine, other = sides[MINE], sides[OTHER]
    shown = []
    for route in routes:
        if not route.authenticated or route.method != "GET":
            continue
        before = {r: len(audit_rows(server.conninfo, username=user(r, MINE))) for r in ROLES}
        role, _status, body = _own_site(server, users, route, sides)
        if route.path == "/api/audit":  # my own attempts are mine to see, denied ones too
            items = json.loads(body)["items"]
            body = json.dumps([i for i in items if i["username"] != user(role, MINE)])
        for secret in (str(other.patient), other.name, other.mrn):
            assert secret not in body, (str(route), role)
        if str(mine.patient) in body or mine.name in body:
            after = len(audit_rows(server.conninfo, username=user(role, MINE)))
            assert after > before[role], f"{route} showed my patient without an audit row"
            shown.append(str(route))
    print(f"GET routes that show my patient (each audited): {shown}")
    assert len(shown) >= 10


def test_denied_attempts_log_no_patient_id(
    server: Server,
    sides: dict[str, Side],
    users: dict[str, Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A role refusal is logged with its action, which held the request path and so the
    patient's id; the audit row keeps the path, the log line does not."""
    caplog.set_level(logging.INFO)
    patient = sides[MINE].patient
    resp = users["care_manager"].patch(f"/api/patients/{patient}", json={})
    assert resp.status_code == 403
    assert "your role may not do this" in resp.text
    denied = audit_rows(server.conninfo, username=user("care_manager", MINE), outcome="denied")
    assert str(patient) in denied[-1]["action"]
    logged = "\n".join(  # the server's log (the test's own httpx client logs its URLs)
        r.getMessage() for r in caplog.records if r.name.startswith(("web", "uvicorn"))
    )
    assert "access denied" in logged
    assert str(patient) not in logged
