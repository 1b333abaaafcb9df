"""FHIR Patient: read, and search by ``identifier`` (the MRN) or ``_id``.

US Core basics: ``gender`` is required there, and CareBeacon keeps no gender, so it is
``unknown``; the name is the display name as ``text``, with ``family`` and ``given`` when the
display name states them ("Family, Given Middle"), else a data-absent-reason extension (what US
Core asks for when neither is known); ``birthDate`` when on file; the MRN as an identifier of
type MR. A search finds patients of the caller's sites only (another site's MRN is not found,
as in the MRN lookup of the pages), and audits each patient it shows.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from web._access import PatientRef, patient_access
from web._audit import audit
from web._db import Row
from web._fhir_common import (
    ANY,
    DEFAULT_COUNT,
    Count,
    Items,
    Offset,
    SearchQuery,
    fhir_response,
    get_query,
    post_query,
    searchset,
)
from web._principal import Principal
from web._state import app_state

__all__ = ["MRN_SYSTEM", "router"]

MRN_SYSTEM = "urn:carebeacon:mrn"
_DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

router = APIRouter()


def _name(display_name: str) -> dict[str, Any]:
    family, comma, given = display_name.partition(",")
    if comma and family.strip() and given.split():
        return {"text": display_name, "family": family.strip(), "given": given.split()}
    return {"text": display_name, "extension": [{"url": _DATA_ABSENT, "valueCode": "unknown"}]}


def _patient(row: Row) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(row["id"]),
        "active": row["active"],
        "name": [_name(row["display_name"])],
        "gender": "unknown",  # not on file
    }
    if row["mrn"]:
        body["identifier"] = [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": MRN_SYSTEM,
                "value": row["mrn"],
            }
        ]
    if row["birth_date"]:
        body["birthDate"] = row["birth_date"].isoformat()
    return body


_SELECT = (
    "SELECT p.id, p.mrn, p.display_name, p.birth_date, p.site_id,"
    " EXISTS (SELECT 1 FROM enrollments e WHERE e.patient_id = p.id AND e.ended_at IS NULL)"
    " AS active FROM patients p"
)


@router.get("/Patient/{patient_id}", summary="FHIR Patient")
async def fhir_patient(
    request: Request,
    patient: Annotated[PatientRef, Depends(patient_access("fhir read Patient", ANY))],
) -> JSONResponse:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(_SELECT + " WHERE p.id = %s", (patient.id,))
        row = await cur.fetchone()
    assert row is not None
    return fhir_response(_patient(row))


class PatientQuery(SearchQuery):
    MULTI: ClassVar[frozenset[str]] = frozenset({"identifier", "_id"})

    identifier: list[str] | None = None
    id_: list[str] | None = Field(None, alias="_id")


def _where(query: PatientQuery, principal: Principal) -> tuple[str, dict[str, object]]:
    """The search as SQL: each parameter ANDed, a parameter's comma-separated values ORed."""
    clauses = ["p.site_id = ANY(%(sites)s)"]
    params: dict[str, object] = {"sites": sorted(principal.sites)}
    for i, value in enumerate(query.identifier or []):
        mrns: list[str] = []
        for token in value.split(","):
            system, bar, code = token.rpartition("|")
            # an MRN holds no NUL (PostgreSQL text cannot): such a value matches nothing
            if (not bar or system in ("", MRN_SYSTEM)) and code and "\x00" not in code:
                mrns.append(code)
        clauses.append(f"p.mrn = ANY(%(mrn{i})s)")
        params[f"mrn{i}"] = mrns
    for i, value in enumerate(query.id_ or []):
        ids: list[uuid.UUID] = []
        for token in value.split(","):
            try:
                ids.append(uuid.UUID(token.removeprefix("Patient/")))
            except ValueError:
                continue  # not an id of ours: matches nothing
        clauses.append(f"p.id = ANY(%(id{i})s)")
        params[f"id{i}"] = ids
    return " WHERE " + " AND ".join(clauses), params


async def _search(
    request: Request, principal: Principal, query: PatientQuery, items: Items
) -> JSONResponse:
    where, params = _where(query, principal)
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM patients p" + where, params)
        counted = await cur.fetchone()
        total = int(counted["n"]) if counted else 0
        rows: list[Row] = []
        if query.count:
            cur = await conn.execute(
                _SELECT + where + " ORDER BY p.display_name, p.id LIMIT %(limit)s OFFSET %(skip)s",
                {**params, "limit": query.count, "skip": query.offset},
            )
            rows = await cur.fetchall()
        for row in rows:
            await audit(
                conn,
                principal,
                "fhir search Patient",
                patient_id=row["id"],
                site_id=row["site_id"],
            )
    return fhir_response(
        searchset(request, "Patient", items, query, [_patient(r) for r in rows], total)
    )


@router.get("/Patient", summary="FHIR Patient search (identifier = MRN, _id), my sites' only")
async def fhir_patients(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    # one value each in the OpenAPI document (a repeat ANDs, as FHIR has it)
    identifier: Annotated[
        str | None, Query(description="MRN: [urn:carebeacon:mrn|]value, comma separated")
    ] = None,
    id_: Annotated[
        str | None, Query(alias="_id", description="Patient ids, comma separated")
    ] = None,
    count: Count = DEFAULT_COUNT,
    offset: Offset = 0,
) -> JSONResponse:
    return await _search(request, principal, *get_query(request, PatientQuery))


@router.post("/Patient/_search", summary="FHIR Patient search by POST (form-encoded parameters)")
async def fhir_patients_post(
    request: Request, principal: Annotated[Principal, Depends(ANY)]
) -> JSONResponse:
    return await _search(request, principal, *await post_query(request, PatientQuery))
