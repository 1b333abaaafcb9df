"""``GET /fhir/metadata``: the CapabilityStatement, saying exactly what this server does.

Read-only, JSON only: ``read`` and ``search-type`` (GET, or POST ``_search`` with a form-encoded
body) on Patient, Observation and Device, with the search parameters each route takes. Result
parameters: ``_count`` (entries per page, 0 = only the total), ``_offset`` (the ``next`` links
carry it), ``_format``. ``Bundle.total`` is always exact (``_total`` is not needed).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from web._fhir_common import ANY, FHIR_JSON, MAX_COUNT, fhir_response
from web._fhir_observations import PROFILES, SUPPORTED_CODES
from web._principal import Principal

__all__ = ["capability_statement", "router"]

#: when this statement last changed (CapabilityStatement.date)
CHANGED = "2026-12-06"
_SP = "http://hl7.org/fhir/SearchParameter/"
_INTERACTIONS = [{"code": "read"}, {"code": "search-type"}]
_PAGING = (
    f"_count (0-{MAX_COUNT}, entries per page; 0 answers only Bundle.total), _offset (where"
    " the page starts; the next links carry it). Bundle.total is always exact. Unknown"
    " parameters are ignored and left out of the self link (400 with Prefer: handling=strict)."
    " POST [type]/_search takes the same parameters form-encoded."
)

router = APIRouter()


def _param(name: str, definition: str, type_: str, documentation: str) -> dict[str, str]:
    return {
        "name": name,
        "definition": _SP + definition,
        "type": type_,
        "documentation": documentation,
    }


def capability_statement(base_url: str, version: str) -> dict[str, Any]:
    """The statement, for the server at ``base_url`` (``…/fhir``)."""
    return {
        "resourceType": "CapabilityStatement",
        "name": "CareBeaconFHIR",
        "title": "CareBeacon FHIR R4 server",
        "status": "active",
        "date": CHANGED,
        "publisher": "CareBeacon",
        "description": "Remote patient monitoring data, read-only: patients, their readings as"
        " Observations (vital signs, glucose, the 7-day average BP) and their devices.",
        "kind": "instance",
        "software": {"name": "CareBeacon", "version": version},
        "implementation": {"description": "CareBeacon web", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["json", FHIR_JSON],
        "rest": [
            {
                "mode": "server",
                "documentation": _PAGING,
                "security": {
                    "description": "Authorization: Bearer <API token> (or the web session's"
                    " cookie, with X-CSRF-Token on POST). Patients of the caller's sites of"
                    " care only; every access is audited."
                },
                "resource": [
                    {
                        "type": "Patient",
                        "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
                        "interaction": _INTERACTIONS,
                        "versioning": "no-version",
                        "readHistory": False,
                        "searchParam": [
                            _param("_id", "Resource-id", "token", "Patient ids"),
                            _param(
                                "identifier",
                                "Patient-identifier",
                                "token",
                                "the MRN: [urn:carebeacon:mrn|]value",
                            ),
                        ],
                    },
                    {
                        "type": "Observation",
                        "profile": "http://hl7.org/fhir/StructureDefinition/Observation",
                        "supportedProfile": list(PROFILES.values()),
                        "interaction": _INTERACTIONS,
                        "versioning": "no-version",
                        "readHistory": False,
                        "searchParam": [
                            _param(
                                "patient",
                                "clinical-patient",
                                "reference",
                                "required: Patient id (or Patient/id)",
                            ),
                            _param(
                                "code",
                                "clinical-code",
                                "token",
                                "LOINC, [http://loinc.org|]code, comma separated: "
                                + ", ".join(SUPPORTED_CODES),
                            ),
                            _param(
                                "date",
                                "clinical-date",
                                "date",
                                "prefixes eq, ge, gt, le, lt; day or instant precision; repeatable",
                            ),
                        ],
                    },
                    {
                        "type": "Device",
                        "profile": "http://hl7.org/fhir/StructureDefinition/Device",
                        "interaction": _INTERACTIONS,
                        "versioning": "no-version",
                        "readHistory": False,
                        "searchParam": [
                            _param(
                                "patient",
                                "Device-patient",
                                "reference",
                                "Patient id; without it, the devices now at my sites",
                            )
                        ],
                    },
                ],
            }
        ],
    }


@router.get("/metadata", summary="FHIR CapabilityStatement")
async def fhir_metadata(
    request: Request, principal: Annotated[Principal, Depends(ANY)]
) -> JSONResponse:
    base = str(request.base_url).rstrip("/") + "/fhir"
    return fhir_response(capability_statement(base, request.app.version))
