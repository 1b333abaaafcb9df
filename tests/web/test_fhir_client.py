"""/fhir as a FHIR client nobody here wrote sees it: fhirpy (its sync client) against the live
app with a bearer API token — the CapabilityStatement, search with paging to the end,
``.count()``, read-back of every ``fullUrl``, Patient by identifier, POST ``_search`` — and every
resource validated with fhir.resources (R4B models: fhir.resources 8 ships no R4 package, and
the R4 resources served here are R4B-valid).

Expected counts come from the data this module stores: a patient of its own, enrolled with
``HISTORY_DAYS`` days of history, each day one BP reading with a heart rate (two Observations:
the panel and the heart rate), one weight and one glucose (one Observation each).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device as DeviceModel
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhirpy import SyncFHIRClient
from fhirpy.lib import SyncFHIRResource

from lab.homes import Device
from tests.support.web import SITE_A, Client, Server, World, audit_rows, enrolled_patient, user

pytestmark = pytest.mark.db

HISTORY_DAYS = 6
OBSERVATIONS = HISTORY_DAYS * 4  # BP panel, heart rate, weight, glucose per day
MRN = "FC-MRN-1"
CLINICIAN = user("clinician", SITE_A)
MODELS: dict[str, Any] = {"Observation": Observation, "Patient": Patient, "Device": DeviceModel}
LOINC_BP, LOINC_PULSE, LOINC_WEIGHT, LOINC_GLUCOSE = "85354-9", "8867-4", "29463-7", "2339-0"


@pytest.fixture(scope="module")
def patient(server: Server, world: World) -> uuid.UUID:
    """A patient of site A whose family and given names the display name states."""
    return enrolled_patient(
        server.conninfo,
        SITE_A,
        "Doe, Jane Quinn",
        history_days=HISTORY_DAYS,
        mrn=MRN,
        gateway_id="fc-gw-1",
        devices=(Device("fc-dev-1", "weight_scale"),),
    )


@pytest.fixture(scope="module")
def token(clients: dict[str, Client]) -> str:
    """The clinician's own API token (a token is for oneself)."""
    clinician = clients[CLINICIAN]
    me = clinician.get("/api/me").json()
    made = clinician.post(f"/api/users/{me['id']}/tokens", json={"name": "fhirpy"})
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


@pytest.fixture(scope="module")
def fhir(server: Server, token: str) -> SyncFHIRClient:
    return SyncFHIRClient(
        f"{server.url}/fhir", authorization=f"Bearer {token}", requests_config={"timeout": 15}
    )


@pytest.fixture(scope="module")
def http(server: Server, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=15
    ) as client:
        yield client


def _plain(resource: SyncFHIRResource) -> dict[str, Any]:
    """fhirpy's resource as JSON (its references as they were sent)."""
    plain: dict[str, Any] = resource.serialize()  # type: ignore[no-untyped-call]
    return plain


def _valid(resource: dict[str, Any]) -> dict[str, Any]:
    MODELS[resource["resourceType"]].model_validate(resource)
    return resource


def _bundle(body: dict[str, Any]) -> dict[str, Any]:
    Bundle.model_validate(body)
    assert body["type"] == "searchset"
    assert "entry" not in body or body["entry"], "JSON FHIR has no empty arrays"
    for entry in body.get("entry", []):
        _valid(entry["resource"])
    return body


def _pages(http: httpx.Client, url: str) -> list[dict[str, Any]]:
    """Every page of a search, following ``next`` to the end."""
    pages = []
    next_url: str | None = url
    while next_url:
        resp = http.get(next_url)
        assert resp.status_code == 200, resp.text
        pages.append(_bundle(resp.json()))
        next_url = next((k["url"] for k in pages[-1]["link"] if k["relation"] == "next"), None)
        assert len(pages) < 100, "next links that never end"
    return pages


def _other_sites_observation(server: Server, world: World) -> str:
    with psycopg.connect(server.conninfo) as conn:
        row = conn.execute(
            "SELECT reading_id FROM readings WHERE patient_id = %s AND code = 'systolic' LIMIT 1",
            (world.patient_b,),
        ).fetchone()
    assert row is not None
    return f"{row[0]}-bp"


# --- the CapabilityStatement -------------------------------------------------------------------


def test_metadata_is_an_r4_capability_statement(fhir: SyncFHIRClient) -> None:
    body = dict(fhir.execute("metadata", method="get"))
    CapabilityStatement.model_validate(body)
    assert body["fhirVersion"] == "4.0.1"
    assert body["kind"] == "instance"
    assert "json" in body["format"]
    assert not any("xml" in f for f in body["format"])
    (rest,) = body["rest"]
    assert rest["mode"] == "server"
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == {"Patient", "Observation", "Device"}
    for r in resources.values():
        assert {i["code"] for i in r["interaction"]} == {"read", "search-type"}
    params = {t: {p["name"] for p in r["searchParam"]} for t, r in resources.items()}
    assert params == {
        "Patient": {"_id", "identifier"},
        "Observation": {"patient", "code", "date"},
        "Device": {"patient"},
    }


def test_the_statement_is_exact(
    fhir: SyncFHIRClient, http: httpx.Client, patient: uuid.UUID
) -> None:
    """Each search parameter stated works; one not stated is refused under handling=strict."""
    statement = fhir.execute("metadata", method="get")
    example = {
        "_id": str(patient),
        "identifier": MRN,
        "patient": str(patient),
        "code": LOINC_BP,
        "date": "ge2020-01-01",
    }
    strict = {"Prefer": "handling=strict"}
    for resource in statement["rest"][0]["resource"]:
        kind = resource["type"]
        base = {"patient": str(patient)} if kind == "Observation" else {}
        for param in resource["searchParam"]:
            resp = http.get(f"/fhir/{kind}", params={**base, param["name"]: example[param["name"]]})
            assert resp.status_code == 200, (kind, param["name"], resp.text)
            assert _bundle(resp.json())["total"] >= 1, (kind, param["name"])
            assert http.get(f"/fhir/{kind}", params=base, headers=strict).status_code == 200
        unstated = http.get(f"/fhir/{kind}", params={**base, "_sort": "-date"}, headers=strict)
        assert unstated.status_code == 400, kind
        assert "_sort" in str(OperationOutcome.model_validate(unstated.json()).issue[0].diagnostics)


# --- search, paging, count -----------------------------------------------------------------------


def test_fhirpy_pages_to_the_end(fhir: SyncFHIRClient, patient: uuid.UUID) -> None:
    found = fhir.resources("Observation").search(patient=str(patient)).limit(5).fetch_all()
    observations = [_valid(_plain(o)) for o in found]
    assert len(observations) == OBSERVATIONS
    assert len({o["id"] for o in observations}) == OBSERVATIONS
    codes = [o["code"]["coding"][0]["code"] for o in observations]
    for code in (LOINC_BP, LOINC_PULSE, LOINC_WEIGHT, LOINC_GLUCOSE):
        assert codes.count(code) == HISTORY_DAYS
    # newest first
    times = [o["effectiveDateTime"] for o in observations]
    assert times == sorted(times, reverse=True)


def test_count_counts_entries_and_total_is_exact(
    http: httpx.Client, patient: uuid.UUID, server: Server
) -> None:
    pages = _pages(http, f"/fhir/Observation?patient={patient}&_count=5")
    assert [len(p["entry"]) for p in pages] == [5, 5, 5, 5, 4]  # 24 Observations
    assert {p["total"] for p in pages} == {OBSERVATIONS}
    last = pages[-1]
    assert {k["relation"] for k in last["link"]} == {"self", "previous"}
    # the links are absolute GET URLs on this server
    assert all(k["url"].startswith(f"{server.url}/fhir/Observation?") for k in last["link"])


def test_fhirpy_count(fhir: SyncFHIRClient, patient: uuid.UUID) -> None:
    observations = fhir.resources("Observation").search(patient=str(patient))
    assert observations.count() == OBSERVATIONS
    assert observations.search(code=LOINC_BP).count() == HISTORY_DAYS
    assert observations.search(code=f"{LOINC_WEIGHT},{LOINC_GLUCOSE}").count() == 2 * HISTORY_DAYS
    assert fhir.resources("Patient").search(identifier=MRN).count() == 1
    assert fhir.resources("Device").search(patient=str(patient)).count() == 1


def test_count_zero_is_only_the_total(http: httpx.Client, patient: uuid.UUID) -> None:
    body = _bundle(http.get(f"/fhir/Observation?patient={patient}&_count=0").json())
    assert body["total"] == OBSERVATIONS
    assert "entry" not in body
    assert [k["relation"] for k in body["link"]] == ["self"]


def test_an_empty_search_has_no_entry_array(http: httpx.Client, patient: uuid.UUID) -> None:
    resp = http.get(f"/fhir/Observation?patient={patient}&date=lt2000-01-01")
    body = _bundle(resp.json())
    assert body["total"] == 0
    assert "entry" not in body
    assert '"entry"' not in resp.text


# --- read-back of every fullUrl ------------------------------------------------------------------


def test_every_full_url_reads_back(
    fhir: SyncFHIRClient, http: httpx.Client, patient: uuid.UUID, world: World
) -> None:
    searches = [
        f"/fhir/Observation?patient={patient}&_count=7",
        f"/fhir/Observation?patient={world.patient_a}&code=96607-7,{LOINC_BP}&_count=4",
        f"/fhir/Patient?identifier={MRN}",
        f"/fhir/Patient?_id={world.patient_a}",
        f"/fhir/Device?patient={world.patient_a}",
        "/fhir/Device",
    ]
    read: dict[str, str] = {}
    for search in searches:
        for page in _pages(http, search):
            for entry in page["entry"]:
                kind, _, rid = entry["fullUrl"].rpartition("/")
                assert kind.endswith(f"/fhir/{entry['resource']['resourceType']}")
                assert rid == entry["resource"]["id"]
                # fhirpy resolves an absolute URL on its own base
                back = dict(fhir.execute(entry["fullUrl"], method="get"))
                assert _valid(back) == entry["resource"], entry["fullUrl"]
                read[entry["fullUrl"]] = entry["resource"]["resourceType"]
    kinds = sorted(set(read.values()))
    assert kinds == ["Device", "Observation", "Patient"]
    # the average BP (its window is in its id) read back too
    assert any("/Observation/bpavg-" in url for url in read)
    assert sum(1 for k in read.values() if k == "Observation") >= OBSERVATIONS


def test_fhirpy_reads_a_referenced_device(fhir: SyncFHIRClient, world: World) -> None:
    first = fhir.resources("Observation").search(patient=str(world.patient_a)).first()
    assert first is not None
    device = first["device"].to_resource()
    assert _valid(_plain(device))["id"] == "wt-dev-a"
    subject = first["subject"].to_resource()
    assert subject["id"] == str(world.patient_a)


def test_observation_read_checks_and_audits_as_search(
    http: httpx.Client, server: Server, world: World, patient: uuid.UUID
) -> None:
    mine = _bundle(http.get(f"/fhir/Observation?patient={patient}&_count=1").json())
    oid = mine["entry"][0]["resource"]["id"]
    before = len(audit_rows(server.conninfo, username=CLINICIAN, action="fhir read Observation"))
    assert http.get(f"/fhir/Observation/{oid}").status_code == 200
    other = _other_sites_observation(server, world)
    for missing in (other, f"{uuid.uuid4()}-bp", "not-an-id", f"{oid[:-3]}-weight"):
        resp = http.get(f"/fhir/Observation/{missing}")
        assert resp.status_code == 404, (missing, resp.text)
        assert OperationOutcome.model_validate(resp.json()).issue[0].code == "not-found"
        assert "Testpatient-B" not in resp.text
    rows = audit_rows(server.conninfo, username=CLINICIAN, action="fhir read Observation")
    new = rows[before:]
    assert [(r["outcome"], r["patient_id"]) for r in new[:2]] == [
        ("allowed", patient),
        ("denied", world.patient_b),  # another site's: 404, and audited as denied
    ]
    assert len(new) == 5


# --- Patient -------------------------------------------------------------------------------------


def test_patient_by_identifier(
    fhir: SyncFHIRClient, patient: uuid.UUID, world: World, server: Server
) -> None:
    for identifier in (MRN, f"urn:carebeacon:mrn|{MRN}", f"|{MRN}"):
        found = fhir.resources("Patient").search(identifier=identifier).fetch()
        assert [p["id"] for p in found] == [str(patient)], identifier
    assert fhir.resources("Patient").search(identifier=f"http://other|{MRN}").fetch() == []
    # another site's MRN is not found (as the pages' MRN lookup): not probed
    assert fhir.resources("Patient").search(identifier="WT-MRN-B-1").fetch() == []
    jane = _valid(_plain(fhir.resources("Patient").search(identifier=MRN).get()))
    assert jane["gender"] == "unknown"  # US Core requires it; none on file
    assert jane["name"] == [
        {"text": "Doe, Jane Quinn", "family": "Doe", "given": ["Jane", "Quinn"]}
    ]
    shown = audit_rows(server.conninfo, username=CLINICIAN, action="fhir search Patient")
    assert patient in {r["patient_id"] for r in shown}


def test_patient_without_structured_name(fhir: SyncFHIRClient, world: World) -> None:
    body = _valid(fhir.execute(f"Patient/{world.patient_a}", method="get"))
    assert body["gender"] == "unknown"
    assert body["birthDate"] == "1950-02-03"
    (name,) = body["name"]
    assert name["text"] == "Zed Testpatient-A"
    assert "family" not in name
    assert "given" not in name
    # US Core (us-core-6): family or given, or a data-absent-reason
    assert name["extension"] == [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "unknown",
        }
    ]


# --- POST _search ---------------------------------------------------------------------------------


def test_post_search_is_the_get_search(http: httpx.Client, patient: uuid.UUID) -> None:
    get = http.get(f"/fhir/Observation?patient={patient}&code={LOINC_BP}&_count=4").json()
    post = http.post(
        "/fhir/Observation/_search",
        data={"patient": str(patient), "code": LOINC_BP, "_count": "4"},
    )
    assert post.status_code == 200, post.text
    body = _bundle(post.json())
    assert body["total"] == get["total"] == HISTORY_DAYS
    assert [e["fullUrl"] for e in body["entry"]] == [e["fullUrl"] for e in get["entry"]]
    # the links are GET URLs that continue the same search
    nxt = next(k["url"] for k in body["link"] if k["relation"] == "next")
    rest = _pages(http, nxt)
    assert sum(len(p["entry"]) for p in rest) == HISTORY_DAYS - 4
    # parameters in the URL and in the body together
    both = http.post(f"/fhir/Patient/_search?identifier={MRN}", data={"_count": "1"}).json()
    assert [e["resource"]["id"] for e in _bundle(both)["entry"]] == [str(patient)]
    bad = http.post("/fhir/Observation/_search", data={"patient": str(patient), "_count": "-1"})
    assert bad.status_code == 422
    OperationOutcome.model_validate(bad.json())
    assert http.post("/fhir/Device/_search", data={}).status_code == 200


# --- the rest of the findings ----------------------------------------------------------------------


def test_each_observation_has_its_own_identifier(fhir: SyncFHIRClient, patient: uuid.UUID) -> None:
    observations = [
        _plain(o) for o in fhir.resources("Observation").search(patient=str(patient)).fetch()
    ]
    identifiers = [(i["system"], i["value"]) for o in observations for i in o["identifier"]]
    assert len(identifiers) == len(set(identifiers)) == OBSERVATIONS


def test_glucose_is_a_laboratory_result_not_a_vital_sign(
    fhir: SyncFHIRClient, patient: uuid.UUID
) -> None:
    found = fhir.resources("Observation").search(patient=str(patient), code=LOINC_GLUCOSE).fetch()
    assert len(found) == HISTORY_DAYS
    for glucose in found:
        codes = {c["code"] for cat in glucose["category"] for c in cat["coding"]}
        assert codes == {"laboratory"}
        assert "meta" not in _plain(glucose)


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("_format=xml", None),
        ("_format=application/fhir%2Bxml", None),
        ("", "application/fhir+xml"),
        ("", "application/xml, text/xml"),
        ("_format=xml", "application/fhir+json"),  # _format wins over Accept
    ],
)
def test_formats_we_do_not_serve_are_406(
    http: httpx.Client, world: World, query: str, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    for path in ("/fhir/metadata", f"/fhir/Patient/{world.patient_a}", "/fhir/Device"):
        resp = http.get(f"{path}?{query}", headers=headers)
        assert resp.status_code == 406, (path, resp.text)
        assert resp.headers["content-type"].startswith("application/fhir+json")
        assert OperationOutcome.model_validate(resp.json()).issue[0].code == "not-supported"


@pytest.mark.parametrize(
    ("query", "accept"),
    [
        ("_format=json", None),
        ("_format=application/fhir%2Bjson", None),
        ("_format=application/fhir+json", None),  # an unencoded '+' arrives as a space
        ("", "application/fhir+json"),
        ("", "application/json;q=0.9, */*;q=0.1"),
        ("", "*/*"),
    ],
)
def test_json_is_served(http: httpx.Client, world: World, query: str, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    resp = http.get(f"/fhir/Patient/{world.patient_a}?{query}", headers=headers)
    assert resp.status_code == 200, resp.text


def test_unknown_parameters_are_not_echoed(http: httpx.Client, patient: uuid.UUID) -> None:
    since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    resp = http.get(
        f"/fhir/Observation?patient={patient}&date=ge{since}&_elements=id&foo=%3Cb%3E&_count=3"
    )
    body = _bundle(resp.json())
    self_url = next(k["url"] for k in body["link"] if k["relation"] == "self")
    query = httpx.URL(self_url).params
    assert sorted(query.keys()) == ["_count", "date", "patient"]
    assert query["date"] == f"ge{since}"
    assert "foo" not in self_url
    assert "_elements" not in self_url
    assert len(body["entry"]) == 3  # the unknown ones ignored, not refused


def test_a_nul_character_matches_nothing(http: httpx.Client) -> None:
    """PostgreSQL text cannot hold NUL: the query raised, and the app's generic 422 answered
    in plain JSON (found by schemathesis). No MRN or device id holds one."""
    found = http.get("/fhir/Patient", params={"identifier": "\x17\x00x"})
    assert found.status_code == 200, found.text
    assert _bundle(found.json())["total"] == 0
    device = http.get("/fhir/Device/a%00b")
    assert device.status_code == 404
    assert device.headers["content-type"].startswith("application/fhir+json")
    OperationOutcome.model_validate(device.json())
