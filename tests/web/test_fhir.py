"""FHIR R4 output, validated with fhir.resources (R4B models, which R4 resources satisfy)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from tests.support.web import SITE_A, Client, World, user
from web._fhir import fhir_device_id

pytestmark = pytest.mark.db

FHIR = "application/fhir+json"


@pytest.fixture(scope="module")
def clin(clients: dict[str, Client]) -> Client:
    return clients[user("clinician", SITE_A)]


def _observations(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    Bundle.model_validate(bundle)
    resources = [e["resource"] for e in bundle.get("entry", [])]
    for r in resources:
        Observation.model_validate(r)
    return resources


def test_patient(clin: Client, world: World) -> None:
    resp = clin.get(f"/fhir/Patient/{world.patient_a}")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(FHIR)
    patient = Patient.model_validate(resp.json())
    assert patient.id == str(world.patient_a)
    assert patient.identifier is not None
    assert patient.identifier[0].value == "WT-MRN-A-1"
    assert str(patient.birthDate) == "1950-02-03"


def test_blood_pressure_panel_with_components(clin: Client, world: World) -> None:
    resp = clin.get(f"/fhir/Observation?patient={world.patient_a}&code=85354-9")
    obs = _observations(resp.json())
    assert len(obs) == 10
    first = obs[0]
    assert first["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "85354-9",
        "display": "Blood pressure panel with all children optional",
    }
    comps = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in first["component"]}
    assert set(comps) == {"8480-6", "8462-4"}
    assert comps["8480-6"]["system"] == "http://unitsofmeasure.org"
    assert comps["8480-6"]["code"] == "mm[Hg]"
    assert comps["8480-6"]["value"] == 150
    assert first["category"][0]["coding"][0]["code"] == "vital-signs"
    assert first["device"] == {"reference": "Device/wt-dev-a"}
    assert first["subject"] == {"reference": f"Patient/{world.patient_a}"}
    # the identifier is the reading id and the code: the reading's heart rate has its own
    assert first["identifier"] == [
        {"system": "urn:carebeacon:observation", "value": f"{world.reading_ids[0]}/85354-9"}
    ]
    assert "irregular_pulse" in first["note"][0]["text"]


def test_identifiers_are_stable(clin: Client, world: World) -> None:
    url = f"/fhir/Observation?patient={world.patient_a}&code=8867-4"
    a, b = clin.get(url).json(), clin.get(url).json()
    ids_a = [e["resource"]["id"] for e in a["entry"]]
    assert ids_a == [e["resource"]["id"] for e in b["entry"]]
    assert ids_a[0] == f"{world.reading_ids[0]}-pulse"


def test_pulse_weight_glucose_units(clin: Client, world: World) -> None:
    codes = "8867-4,29463-7,http://loinc.org|2339-0"
    obs = _observations(
        clin.get(f"/fhir/Observation?patient={world.patient_a}&code={codes}").json()
    )
    by_code: dict[str, list[dict[str, Any]]] = {}
    for o in obs:
        by_code.setdefault(o["code"]["coding"][0]["code"], []).append(o)
    assert by_code["8867-4"][0]["valueQuantity"]["code"] == "/min"
    assert by_code["29463-7"][0]["valueQuantity"] == {
        "value": 80.0,
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    }
    # the control-solution glucose is not patient data and is not exported
    assert [o["valueQuantity"]["value"] for o in by_code["2339-0"]] == [110.0]
    assert by_code["2339-0"][0]["valueQuantity"]["code"] == "mg/dL"


def test_date_search_and_paging(clin: Client, world: World) -> None:
    from datetime import UTC, datetime, timedelta

    since = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    obs = _observations(
        clin.get(f"/fhir/Observation?patient={world.patient_a}&code=85354-9&date=ge{since}").json()
    )
    assert len(obs) == 3
    page = clin.get(f"/fhir/Observation?patient={world.patient_a}&code=85354-9&_count=4").json()
    assert len(page["entry"]) == 4
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    page2 = clin.get(nxt.replace(clin.http.base_url.__str__().rstrip("/"), "")).json()
    assert len(page2["entry"]) == 4
    assert {e["resource"]["id"] for e in page["entry"]}.isdisjoint(
        {e["resource"]["id"] for e in page2["entry"]}
    )


def test_average_bp_cardx(clin: Client, world: World) -> None:
    obs = _observations(
        clin.get(f"/fhir/Observation?patient={world.patient_a}&code=96607-7").json()
    )
    assert len(obs) == 1
    avg = obs[0]
    assert avg["code"]["coding"][0]["code"] == "96607-7"
    assert avg["meta"]["profile"] == [
        "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/average-smbp"
    ]
    comps = {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in avg["component"]}
    # readings of the last 7 days: systolic 150..156 (days 0..6), diastolic 90
    assert comps == {"96608-5": 153, "96609-3": 90}
    n = avg["extension"][0]
    assert n["url"].endswith("/NumberOfMeasurementsExt")
    assert n["valueInteger"] == 7
    assert "start" in avg["effectivePeriod"]
    assert "end" in avg["effectivePeriod"]


def test_device(clin: Client, world: World) -> None:
    dev = clin.get("/fhir/Device/wt-dev-a")
    assert dev.status_code == 200
    device = Device.model_validate(dev.json())
    assert device.patient is not None
    assert device.patient.reference == f"Patient/{world.patient_a}"
    bundle = clin.get(f"/fhir/Device?patient={world.patient_a}").json()
    Bundle.model_validate(bundle)
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["wt-dev-a"]
    mine = clin.get("/fhir/Device").json()
    Bundle.model_validate(mine)
    ids = [e["resource"]["id"] for e in mine["entry"]]
    assert "wt-dev-a" in ids
    assert fhir_device_id("serial:WT/1") not in ids  # site B's device


@pytest.mark.parametrize(
    "query",
    ["patient=not-a-uuid", "code=1234-5", "code=http://snomed.info/sct|1", "date=yesterday"],
)
def test_bad_searches_are_400(clin: Client, world: World, query: str) -> None:
    if not query.startswith("patient="):
        query = f"patient={world.patient_a}&{query}"
    resp = clin.get(f"/fhir/Observation?{query}")
    assert resp.status_code == 400
    outcome = OperationOutcome.model_validate(resp.json())
    assert outcome.issue[0].code == "invalid"
    assert outcome.issue[0].diagnostics


def test_errors_are_operation_outcomes(
    clin: Client, clients: dict[str, Client], world: World
) -> None:
    missing = clin.get("/fhir/Observation")
    assert missing.status_code == 422
    assert "patient" in str(OperationOutcome.model_validate(missing.json()).issue[0].diagnostics)
    other = clin.get(f"/fhir/Patient/{world.patient_b}")
    assert other.status_code == 403
    assert OperationOutcome.model_validate(other.json()).issue[0].code == "forbidden"
    anon = clients["anonymous"].get(f"/fhir/Patient/{world.patient_a}")
    assert anon.status_code == 401
    assert anon.headers["content-type"].startswith(FHIR)
    assert OperationOutcome.model_validate(anon.json()).issue[0].code == "login"
