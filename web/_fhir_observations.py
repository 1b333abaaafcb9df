"""FHIR Observations: the vital signs and glucose of each reading, and the 7-day average BP.

LOINC codes: 85354-9 BP panel with 8480-6 (systolic) and 8462-4 (diastolic) components;
8867-4 heart rate; 29463-7 body weight (category vital-signs, with the R4 vital-signs profiles
``bp``, ``heartrate``, ``bodyweight``); 2339-0 glucose [mass/volume] in blood (category
laboratory: it is not a vital sign); 96607-7 BP panel mean systolic and mean diastolic
(components 96608-5 / 96609-3) as profiled by the HL7 CardX Hypertension Management IG
(``average-smbp`` with its ``NumberOfMeasurementsExt``). Units are UCUM.

One reading gives one Observation per kind (a BP cuff's reading: the panel and the heart rate).
Each has its own id, ``{reading id}-{kind}``, and its own business identifier,
``{reading id}/{LOINC code}`` (so that clients that de-duplicate on identifiers keep both),
and references the Device that measured it. The average's id names its patient and window,
``bpavg-{patient id as hex}-{start}-{end}`` (Unix seconds), so that it reads back.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import Field

from web._access import check_patient_access
from web._audit import audit
from web._db import Conn, Row
from web._fhir_common import (
    ANY,
    DEFAULT_COUNT,
    Count,
    Items,
    Offset,
    SearchQuery,
    fhir_device_id,
    fhir_response,
    get_query,
    instant,
    parse_patient,
    patient_ref,
    post_query,
    searchset,
)
from web._principal import Principal
from web._state import app_state
from web._trends import NOT_PATIENT_DATA

__all__ = [
    "OBSERVATION_ID_SYSTEM",
    "PROFILES",
    "SUPPORTED_CODES",
    "average_bp",
    "observation",
    "router",
]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_ID_SYSTEM = "urn:carebeacon:observation"
_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VITAL_SIGNS = {"coding": [{"system": _CATEGORY, "code": "vital-signs", "display": "Vital Signs"}]}
LABORATORY = {"coding": [{"system": _CATEGORY, "code": "laboratory", "display": "Laboratory"}]}
CARDX_AVERAGE_PROFILE = "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/average-smbp"
CARDX_N_EXT = "http://hl7.org/fhir/uv/cardx-htn-mng/StructureDefinition/NumberOfMeasurementsExt"

BP_PANEL, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"
PULSE, WEIGHT, GLUCOSE = "8867-4", "29463-7", "2339-0"
BP_AVERAGE, SYSTOLIC_MEAN, DIASTOLIC_MEAN = "96607-7", "96608-5", "96609-3"
DISPLAY = {
    BP_PANEL: "Blood pressure panel with all children optional",
    SYSTOLIC: "Systolic blood pressure",
    DIASTOLIC: "Diastolic blood pressure",
    PULSE: "Heart rate",
    WEIGHT: "Body weight",
    GLUCOSE: "Glucose [Mass/volume] in Blood",
    BP_AVERAGE: "Blood pressure panel mean systolic and mean diastolic",
    SYSTOLIC_MEAN: "Systolic blood pressure mean",
    DIASTOLIC_MEAN: "Diastolic blood pressure mean",
}
#: the kinds of Observation a reading gives, in the order of a reading's entries: their LOINC
#: code, the reading's values they need, their category
_KINDS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "bp": (BP_PANEL, ("systolic", "diastolic"), VITAL_SIGNS),
    "pulse": (PULSE, ("pulse",), VITAL_SIGNS),
    "weight": (WEIGHT, ("body_weight",), VITAL_SIGNS),
    "glucose": (GLUCOSE, ("glucose",), LABORATORY),
}
#: LOINC searched -> the kind that answers it
_KIND_BY_CODE = {SYSTOLIC: "bp", DIASTOLIC: "bp"} | {c: k for k, (c, _, _) in _KINDS.items()}
#: the codes a ``code`` search takes
SUPPORTED_CODES = (*_KIND_BY_CODE, BP_AVERAGE)
#: the profiles an Observation may claim, by kind (the R4 vital-signs profiles)
PROFILES = {
    "bp": "http://hl7.org/fhir/StructureDefinition/bp",
    "pulse": "http://hl7.org/fhir/StructureDefinition/heartrate",
    "weight": "http://hl7.org/fhir/StructureDefinition/bodyweight",
    "average": CARDX_AVERAGE_PROFILE,
}
_DATE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4}(-\d{2}(-\d{2}(T.+)?)?)?)$")
_READING_OBSERVATION = re.compile(r"^([0-9a-f-]{36})-(" + "|".join(_KINDS) + r")$")
_AVERAGE = re.compile(r"^bpavg-([0-9a-f]{32})-(\d{1,11})-(\d{1,11})$")

router = APIRouter()


def _coding(code: str) -> dict[str, Any]:
    return {
        "coding": [{"system": LOINC, "code": code, "display": DISPLAY[code]}],
        "text": DISPLAY[code],
    }


def _quantity(value: float, unit: str, display_unit: str | None = None) -> dict[str, Any]:
    return {"value": round(value, 2), "unit": display_unit or unit, "system": UCUM, "code": unit}


def observation(row: Row, kind: str) -> dict[str, Any]:
    """The Observation of one kind of a reading (``row``: reading_id, time, patient_id,
    device_id, flags, vals; the reading holds the kind's values)."""
    vals: dict[str, float] = row["vals"]
    rid = str(row["reading_id"])
    code, _, category = _KINDS[kind]
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"{rid}-{kind}",
        **({"meta": {"profile": [PROFILES[kind]]}} if kind in PROFILES else {}),
        "identifier": [{"system": OBSERVATION_ID_SYSTEM, "value": f"{rid}/{code}"}],
        "status": "final",
        "category": [category],
        "code": _coding(code),
        "subject": patient_ref(row["patient_id"]),
        "effectiveDateTime": instant(row["time"]),
        "device": {"reference": f"Device/{fhir_device_id(row['device_id'])}"},
    }
    if row["flags"]:
        obs["note"] = [{"text": "device flags: " + ", ".join(row["flags"])}]
    if kind == "bp":
        obs["component"] = [
            {
                "code": _coding(SYSTOLIC),
                "valueQuantity": _quantity(vals["systolic"], "mm[Hg]", "mmHg"),
            },
            {
                "code": _coding(DIASTOLIC),
                "valueQuantity": _quantity(vals["diastolic"], "mm[Hg]", "mmHg"),
            },
        ]
    elif kind == "pulse":
        obs["valueQuantity"] = _quantity(vals["pulse"], "/min", "beats/minute")
    elif kind == "weight":
        obs["valueQuantity"] = _quantity(vals["body_weight"], "kg")
    else:
        obs["valueQuantity"] = _quantity(vals["glucose"], "mg/dL")
    return obs


def _parse_codes(values: list[str] | None) -> list[str]:
    if not values:
        return [c for c, _, _ in _KINDS.values()]
    codes: list[str] = []
    for value in values:
        for token in value.split(","):
            system, _, code = token.rpartition("|")
            if system and system != LOINC:
                raise HTTPException(
                    status.HTTP_400_BAD_REQUEST, f"unsupported code system {system}"
                )
            if code not in SUPPORTED_CODES:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unsupported code {code}")
            codes.append(code)
    return codes


def _parse_dates(values: list[str] | None) -> tuple[datetime | None, datetime | None]:
    """FHIR ``date`` search (ge/gt/le/lt/eq prefixes, day or instant precision) -> [lo, hi)."""
    lo: datetime | None = None
    hi: datetime | None = None
    for value in values or []:
        match = _DATE.match(value)
        if not match:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"bad date parameter {value!r}")
        prefix, text = match.group(1) or "eq", match.group(2)
        try:
            if "T" in text:
                start = datetime.fromisoformat(text.replace("Z", "+00:00"))
                if start.tzinfo is None:
                    start = start.replace(tzinfo=UTC)
                end = start + timedelta(seconds=1)
            else:
                parts = [int(p) for p in text.split("-")]
                day = date(
                    parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1
                )
                start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                if len(parts) == 3:
                    end = start + timedelta(days=1)
                elif len(parts) == 2:
                    end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
                else:
                    end = datetime(day.year + 1, 1, 1, tzinfo=UTC)
        except ValueError:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, f"bad date parameter {value!r}"
            ) from None
        if prefix in ("ge", "sa", "gt"):
            bound = start if prefix == "ge" else end
            lo = bound if lo is None else max(lo, bound)
        elif prefix in ("le", "lt", "eb"):
            bound = end if prefix == "le" else start
            hi = bound if hi is None else min(hi, bound)
        elif prefix == "eq":
            lo = start if lo is None else max(lo, start)
            hi = end if hi is None else min(hi, end)
        else:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unsupported date prefix {prefix}")
    return lo, hi


async def average_bp(
    conn: Conn, patient_id: uuid.UUID, start: datetime, end: datetime
) -> dict[str, Any] | None:
    """The CardX average self-measured BP over [start, end) (whole seconds), or None without
    readings."""
    cur = await conn.execute(
        "SELECT avg(value) FILTER (WHERE code = 'systolic') AS sys,"
        " avg(value) FILTER (WHERE code = 'diastolic') AS dia,"
        " count(DISTINCT reading_id) FILTER (WHERE code = 'systolic') AS n"
        " FROM readings WHERE patient_id = %s AND code IN ('systolic', 'diastolic')"
        " AND time >= %s AND time < %s AND NOT flags && %s::text[]",
        (patient_id, start, end, NOT_PATIENT_DATA),
    )
    row = await cur.fetchone()
    if row is None or not row["n"]:
        return None
    return {
        "resourceType": "Observation",
        "id": f"bpavg-{patient_id.hex}-{int(start.timestamp())}-{int(end.timestamp())}",
        "meta": {"profile": [CARDX_AVERAGE_PROFILE]},
        "extension": [{"url": CARDX_N_EXT, "valueInteger": int(row["n"])}],
        "status": "final",
        "category": [VITAL_SIGNS],
        "code": _coding(BP_AVERAGE),
        "subject": patient_ref(patient_id),
        "effectivePeriod": {"start": instant(start), "end": instant(end)},
        "component": [
            {
                "code": _coding(SYSTOLIC_MEAN),
                "valueQuantity": _quantity(round(row["sys"]), "mm[Hg]", "mmHg"),
            },
            {
                "code": _coding(DIASTOLIC_MEAN),
                "valueQuantity": _quantity(round(row["dia"]), "mm[Hg]", "mmHg"),
            },
        ],
    }


# one row per Observation: the readings that match, times the kinds asked for that they hold
_MATCHES = """
WITH r AS (
    SELECT reading_id, time, patient_id, device_id, flags, jsonb_object_agg(code, value) AS vals
    FROM readings
    WHERE patient_id = %(patient)s AND code = ANY(%(codes)s) AND time >= %(lo)s AND time < %(hi)s
      AND NOT flags && %(excluded)s::text[]
    GROUP BY reading_id, time, patient_id, device_id, flags
)
SELECT r.*, k.kind FROM r
JOIN unnest(%(kinds)s::text[], %(needs)s::text[]) WITH ORDINALITY AS k(kind, needs, ord)
  ON r.vals ?& string_to_array(k.needs, ',')
"""


class ObservationQuery(SearchQuery):
    MULTI: ClassVar[frozenset[str]] = frozenset({"code", "date"})

    patient: str
    code: list[str] | None = None
    date_: list[str] | None = Field(None, alias="date")


async def _search(
    request: Request, principal: Principal, query: ObservationQuery, items: Items
) -> JSONResponse:
    patient_id = parse_patient(query.patient)
    codes = _parse_codes(query.code)
    lo, hi = _parse_dates(query.date_)
    await check_patient_access(
        request, principal, patient_id, "fhir search Observation", detail={"codes": codes}
    )
    asked = {_KIND_BY_CODE[c] for c in codes if c in _KIND_BY_CODE}
    kinds = [k for k in _KINDS if k in asked]
    params = {
        "patient": patient_id,
        "codes": sorted({v for k in kinds for v in _KINDS[k][1]}),
        "lo": lo or datetime(1970, 1, 1, tzinfo=UTC),
        "hi": hi or datetime(9999, 1, 1, tzinfo=UTC),
        "excluded": NOT_PATIENT_DATA,
        "kinds": kinds,
        "needs": [",".join(_KINDS[k][1]) for k in kinds],
    }
    found: list[dict[str, Any]] = []
    total = 0
    async with app_state(request).pool.connection() as conn:
        if BP_AVERAGE in codes:
            end = (hi or datetime.now(UTC)).replace(microsecond=0)
            start = (lo or end - timedelta(days=7)).replace(microsecond=0)
            average = await average_bp(conn, patient_id, start, end)
            if average is not None:
                total = 1
                if query.offset == 0 and query.count:
                    found.append(average)
        if kinds:
            cur = await conn.execute(f"SELECT count(*) AS n FROM ({_MATCHES}) m", params)
            counted = await cur.fetchone()
            matches = int(counted["n"]) if counted else 0
            # this page's slice of [average?] + the readings' Observations
            first = max(0, query.offset - total)
            limit = max(0, query.offset + query.count - total - first)
            total += matches
            if limit and first < matches:
                cur = await conn.execute(
                    _MATCHES + " ORDER BY r.time DESC, r.reading_id, k.ord"
                    " LIMIT %(limit)s OFFSET %(first)s",
                    {**params, "limit": limit, "first": first},
                )
                found.extend(observation(row, row["kind"]) for row in await cur.fetchall())
    return fhir_response(searchset(request, "Observation", items, query, found, total))


@router.get("/Observation", summary="FHIR Observation search (vital signs, 7-day average BP)")
async def fhir_observations(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    patient: Annotated[str, Query(description="Patient id (or Patient/id)")],
    code: Annotated[list[str] | None, Query(description="LOINC codes, comma separated")] = None,
    date_: Annotated[list[str] | None, Query(alias="date", description="ge2026-01-01 …")] = None,
    count: Count = DEFAULT_COUNT,
    offset: Offset = 0,
) -> JSONResponse:
    return await _search(request, principal, *get_query(request, ObservationQuery))


@router.post(
    "/Observation/_search", summary="FHIR Observation search by POST (form-encoded parameters)"
)
async def fhir_observations_post(
    request: Request, principal: Annotated[Principal, Depends(ANY)]
) -> JSONResponse:
    return await _search(request, principal, *await post_query(request, ObservationQuery))


async def _not_found(request: Request, principal: Principal, resource: str) -> HTTPException:
    async with app_state(request).pool.connection() as conn:
        await audit(
            conn,
            principal,
            "fhir read Observation",
            outcome="denied",
            resource=resource,
            detail={"reason": "not_found"},
        )
    return HTTPException(status.HTTP_404_NOT_FOUND, "no such Observation")


async def _check_mine(
    request: Request, principal: Principal, patient_id: uuid.UUID, resource: str
) -> None:
    """As a search checks the patient (and audits), but another site's is 'not found'."""
    try:
        await check_patient_access(
            request, principal, patient_id, "fhir read Observation", detail={"id": resource}
        )
    except HTTPException as exc:
        if exc.status_code == status.HTTP_403_FORBIDDEN:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such Observation") from None
        raise


@router.get("/Observation/{id}", summary="FHIR Observation (the id of a search's fullUrl)")
async def fhir_observation(
    request: Request, id: str, principal: Annotated[Principal, Depends(ANY)]
) -> JSONResponse:
    resource = f"Observation/{id}"
    if average := _AVERAGE.match(id):
        patient_id = uuid.UUID(average.group(1))
        start, end = (datetime.fromtimestamp(int(average.group(i)), UTC) for i in (2, 3))
        if start >= end:
            raise await _not_found(request, principal, resource)
        await _check_mine(request, principal, patient_id, resource)
        async with app_state(request).pool.connection() as conn:
            body = await average_bp(conn, patient_id, start, end)
        if body is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such Observation")
        return fhir_response(body)
    reading = _READING_OBSERVATION.match(id)
    if not reading:
        raise await _not_found(request, principal, resource)
    kind = reading.group(2)
    try:
        reading_id = uuid.UUID(reading.group(1))
    except ValueError:
        raise await _not_found(request, principal, resource) from None
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT reading_id, time, patient_id, device_id, flags,"
            " jsonb_object_agg(code, value) AS vals FROM readings"
            " WHERE reading_id = %s AND NOT flags && %s::text[]"
            " GROUP BY reading_id, time, patient_id, device_id, flags",
            (reading_id, NOT_PATIENT_DATA),
        )
        row = await cur.fetchone()
    if row is None or not all(v in row["vals"] for v in _KINDS[kind][1]):
        raise await _not_found(request, principal, resource)
    await _check_mine(request, principal, row["patient_id"], resource)
    return fhir_response(observation(row, kind))
