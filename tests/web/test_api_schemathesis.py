"""The HTTP API under schemathesis against its own ``/openapi.json``: no 5xx, every status code,
content type and body as documented, schema-invalid requests refused — with an admin's and a
care manager's API token; and without one, nothing but 401.

The app runs under uvicorn against a database of its own (the fuzzer creates sites, users and
patients, patches and revokes): nothing it does can reach the other web tests. Generated
cases mix positive and negative data with cases whose ids are real (so that 2xx bodies are
validated too). The fuzzer's own user and token are kept out of its reach: user and token ids
in paths point at a sacrificial user. Each run also proves it was not vacuous: the token still
works afterwards, no call was refused as unauthenticated, and every operation answered < 500
at least once other than 401.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

import httpx
import hypothesis
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from carebeacon.settings import Settings
from lab.homes import Device
from lab.seed import seed_demo
from tests.support.db import scratch_database
from tests.support.web import PASSWORD, Client, enrolled_patient, insert_episode, serving, user
from web.app import create_app

Operation: TypeAlias = APIOperation[Any, Any, Any, Any]
FuzzCase: TypeAlias = Case[Any]

pytestmark = pytest.mark.db

SITE_A, SITE_B = "fz-site-a", "fz-site-b"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclasses.dataclass
class FuzzTarget:
    url: str
    conninfo: str
    tokens: dict[str, str]
    #: real values for path and query parameters, by parameter name
    known: dict[str, Any]


@dataclasses.dataclass
class Run:
    calls: int = 0
    statuses: Counter[int] = dataclasses.field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = dataclasses.field(default_factory=dict)
    failures: list[str] = dataclasses.field(default_factory=list)

    def record(self, label: str, status: int) -> None:
        self.calls += 1
        self.statuses[status] += 1
        self.by_operation.setdefault(label, Counter())[status] += 1

    def summary(self) -> str:
        return f"{self.calls} cases, statuses {dict(sorted(self.statuses.items()))}"


@pytest.fixture(scope="module")
def target(settings: Settings) -> Iterator[FuzzTarget]:
    with scratch_database(settings, "cbtest_fz") as conninfo:
        yield from _serve(settings, conninfo)


def _serve(settings: Settings, conninfo: str) -> Iterator[FuzzTarget]:
    for site in (SITE_A, SITE_B):
        seed_demo(conninfo, site_id=site, site_name=site, program_id="wt-htn", password=PASSWORD)
    patient_a = enrolled_patient(
        conninfo,
        SITE_A,
        "Fuzz Patient A",
        history_days=3,
        gateway_id="fz-gw-a",
        devices=(Device("fz-dev-a", "blood_pressure_monitor"),),
    )
    patient_b = enrolled_patient(conninfo, SITE_B, "Fuzz Patient B", history_days=1)
    with psycopg.connect(conninfo) as conn:
        episode = insert_episode(conn, patient_a, SITE_A)
        assignment = conn.execute(
            "SELECT id FROM device_assignments WHERE device_id = 'fz-dev-a'"
        ).fetchone()
        enrollment = conn.execute(
            "SELECT id FROM enrollments WHERE patient_id = %s", (patient_a,)
        ).fetchone()
    assert assignment is not None
    assert enrollment is not None
    app = create_app(settings, conninfo=conninfo, provision_gateway=lambda gw, pw: None)
    with serving(app, log_level="critical") as url:
        admin = Client(url, user("admin", SITE_A))
        tokens = {}
        for role in ("admin", "care_manager"):
            session = Client(url, user(role, SITE_A))
            me = session.get("/api/me").json()
            tokens[role] = admin.post(
                f"/api/users/{me['id']}/tokens", json={"name": "fuzz", "impersonation": True}
            ).json()["token"]
            session.close()
        victim = admin.post(
            "/api/users",
            json={
                "username": "fz.victim",
                "display_name": "Sacrificial",
                "role": "clinician",
                "password": "a-long-password-1",
                "sites": [SITE_A],
            },
        ).json()
        victim_token = admin.post(
            f"/api/users/{victim['id']}/tokens", json={"name": "v", "impersonation": True}
        ).json()
        admin.close()
        yield FuzzTarget(
            url,
            conninfo,
            tokens,
            {
                "patient_id": str(patient_a),
                "patient": str(patient_a),
                "episode_id": str(episode),
                "enrollment_id": enrollment[0],
                "assignment_id": assignment[0],
                "gateway_id": "fz-gw-a",
                "device_id": "fz-dev-a",
                "site_id": SITE_A,
                "user_id": victim["id"],
                "token_id": victim_token["id"],
                "other_patient": str(patient_b),
            },
        )


def _operations(target: FuzzTarget) -> list[Operation]:
    schema = schemathesis.openapi.from_url(f"{target.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 35, "the OpenAPI document lost operations"
    return operations


def _strategy(operation: Operation, known: dict[str, Any]) -> st.SearchStrategy[FuzzCase]:
    path_names = {p.name for p in operation.path_parameters}
    query_names = {p.name for p in operation.query}
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    path = {k: v for k, v in known.items() if k in path_names}
    query = {k: v for k, v in known.items() if k in query_names}
    if path or query:
        strategies.append(
            operation.as_strategy(
                GenerationMode.POSITIVE, path_parameters=path or None, query=query or None
            )
        )
    if {"user_id", "token_id"} & path_names:
        # never the fuzzer's own user or token: only the sacrificial ones
        return operation.as_strategy(GenerationMode.POSITIVE, path_parameters=path)
    return st.one_of(strategies)


def _fuzz(
    target: FuzzTarget,
    token: str | None,
    examples: int,
    check: Callable[[FuzzCase, Response, Run], None],
) -> Run:
    run = Run()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for operation in _operations(target):
        _fuzz_operation(
            operation, _strategy(operation, target.known), examples, headers, check, run
        )
    return run


def _fuzz_operation(
    operation: Operation,
    strategy: st.SearchStrategy[FuzzCase],
    examples: int,
    headers: dict[str, str],
    check: Callable[[FuzzCase, Response, Run], None],
    run: Run,
) -> None:
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def one(case: FuzzCase) -> None:
        response = case.call(headers=headers, timeout=15)
        run.record(operation.label, response.status_code)
        check(case, response, run)

    one()


def _validate(case: FuzzCase, response: Response, run: Run) -> None:
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as exc:  # collected, reported together at the end
        run.failures.append(str(exc)[:3000])


def _is_json(body: object) -> bool:
    if not isinstance(body, bytes):
        return True  # generated as a JSON value, sent serialised
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _assert_clean(run: Run) -> None:
    print(f"schemathesis: {run.summary()}")
    assert not run.failures, f"{len(run.failures)} failures; first:\n" + "\n".join(run.failures[:3])
    assert 500 not in run.statuses


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("role", "examples"), [("admin", 20), ("care_manager", 8)])
def test_api_with_a_token_keeps_its_documented_promises(
    target: FuzzTarget, role: str, examples: int
) -> None:
    token = target.tokens[role]
    run = _fuzz(target, token, examples, _validate)
    _assert_clean(run)
    assert run.statuses[401] == 0, "the token stopped working: the run proves nothing"
    me = httpx.get(f"{target.url}/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    answered = {
        label
        for label, statuses in run.by_operation.items()
        if any(s < 500 and s != 401 for s in statuses)
    }
    assert answered == set(run.by_operation)
    assert sum(n for s, n in run.statuses.items() if 200 <= s < 300) >= 10 * (examples // 8)


@pytest.mark.timeout(120)
def test_api_without_a_token_is_401_everywhere(target: FuzzTarget) -> None:
    def refused(case: FuzzCase, response: Response, run: Run) -> None:
        assert "Fuzz Patient" not in response.text
        if response.status_code == 401:
            body = response.json()
            assert body.get("detail") == "authentication required" or (
                body.get("resourceType") == "OperationOutcome"
            )
            return
        # FastAPI decodes a JSON body before any dependency runs: bytes that are not JSON at
        # all are refused (400/422 json_invalid) before authentication is looked at
        if response.status_code in (400, 422) and not _is_json(case.body):
            assert response.status_code == 400 or "json_invalid" in response.text
            return
        run.failures.append(f"{case.operation.label}: {response.status_code} {case.body!r:.200}")

    run = _fuzz(target, None, 6, refused)
    print(f"schemathesis (no token): {run.summary()}")
    assert not run.failures, run.failures[:10]
    assert run.statuses[401] >= 0.9 * run.calls
    assert len(run.by_operation) >= 35


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_api_long_fuzz(target: FuzzTarget) -> None:
    run = _fuzz(target, target.tokens["admin"], 300, _validate)
    _assert_clean(run)
    assert run.statuses[401] == 0


# regressions: what schemathesis found (each answered 500, or contradicted /openapi.json)


def _admin(target: FuzzTarget) -> httpx.Client:
    return httpx.Client(
        base_url=target.url,
        headers={"Authorization": f"Bearer {target.tokens['admin']}"},
        timeout=15,
    )


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/sites", "offset"),
        ("/api/programs", "offset"),
        ("/api/audit", "offset"),
        ("/api/episodes", "offset"),
        ("/fhir/Device", "_offset"),
        ("/fhir/Observation", "_offset"),
    ],
)
def test_offsets_beyond_bigint_are_422(target: FuzzTarget, path: str, name: str) -> None:
    extra = {"patient": target.known["patient_id"]} if path == "/fhir/Observation" else {}
    with _admin(target) as http:
        resp = http.get(path, params={name: "21250507796834672640", **extra})
        assert resp.status_code == 422, resp.text
        assert http.get(path, params={name: str(2**31 - 1), **extra}).status_code == 200


def test_a_site_needs_a_real_time_zone(target: FuzzTarget) -> None:
    """A site with a made-up zone was stored, and its billing ledger answered 500 ever after."""
    with _admin(target) as http:
        for bad in ("Mars/Olympus_Mons", "../etc/passwd", "", "America"):
            resp = http.post("/api/sites", json={"id": "fz-tz", "name": "TZ", "timezone": bad})
            assert resp.status_code == 422, (bad, resp.text)
            assert resp.json()["errors"][0]["loc"] == ["body", "timezone"]
        made = http.post(
            "/api/sites", json={"id": "fz-tz", "name": "TZ", "timezone": "Europe/Berlin"}
        )
        assert made.status_code == 201
        assert http.get("/api/billing/ledger?site_id=fz-tz").status_code == 200


@pytest.mark.parametrize("month", ["9999-12", "0000-01", "2026-13", "2026-00", "1969-12"])
def test_billing_months_out_of_range_are_422(target: FuzzTarget, month: str) -> None:
    with _admin(target) as http:
        for path in ("/api/billing/ledger", "/billing/ledger.csv"):
            resp = http.get(path, params={"site_id": SITE_A, "month": month})
            assert resp.status_code == 422, (path, month, resp.text)
        ok = http.get("/api/billing/ledger", params={"site_id": SITE_A, "month": "2999-12"})
        assert ok.status_code == 200


def test_a_nul_character_in_text_is_422(target: FuzzTarget) -> None:
    """PostgreSQL text cannot hold NUL: the insert raised and the request answered 500."""
    with _admin(target) as http:
        for path, body in (
            ("/api/patients", {"display_name": "Nul\x00Name", "site_id": SITE_A}),
            (
                "/api/users",
                {
                    "username": "fz.nul",
                    "display_name": "\x16'\x00x",
                    "role": "clinician",
                    "password": "a-long-password-1",
                },
            ),
        ):
            resp = http.post(path, json=body)
            assert resp.status_code == 422, (path, resp.text)
            assert resp.json() == {"detail": "a value cannot be stored as given"}
        assert http.get("/api/me").status_code == 200  # the pool's connection survived


def test_openapi_documents_errors_and_media_types(target: FuzzTarget) -> None:
    doc = httpx.get(f"{target.url}/openapi.json").json()
    components = doc["components"]["schemas"]
    assert "HTTPValidationError" not in components
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"401", "403", "422"} <= set(responses), (method, path)
            media = "application/fhir+json" if path.startswith("/fhir/") else "application/json"
            assert set(responses["422"]["content"]) == {media}
            if path.startswith("/fhir/"):
                assert set(responses["200"]["content"]) == {media}
    csv_ok = doc["paths"]["/billing/ledger.csv"]["get"]["responses"]["200"]["content"]
    assert set(csv_ok) == {"text/csv"}
    with _admin(target) as http:
        invalid = http.get("/api/sites?limit=0").json()
        assert invalid["detail"] == "invalid request"
        assert invalid["errors"][0]["loc"] == ["query", "limit"]
