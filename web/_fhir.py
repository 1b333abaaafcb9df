"""FHIR R4 (read-only): Patient, vital-signs Observations, Device, and the 7-day average BP.

LOINC codes: 85354-9 BP panel with 8480-6 (systolic) and 8462-4 (diastolic) components;
8867-4 heart rate; 29463-7 body weight; 2339-0 glucose [mass/volume] in blood; 96607-7 BP panel
mean systolic and mean diastolic (components 96608-5 / 96609-3) as profiled by the HL7 CardX
Hypertension Management IG (``average-smbp`` with its ``NumberOfMeasurementsExt``). Units are
UCUM. Each Observation carries the reading id (a stable UUID) as an identifier and references
the Device that measured it.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from web._access import PatientRef, check_patient_access, patient_access
from web._audit import audit
from web._auth import require
from web._db import Conn, Row
from web._paging import MAX_OFFSET
from web._principal import Principal
from web._state import app_state
from web._trends import NOT_PATIENT_DATA

__all__ = ["FHIR_JSON", "fhir_device_id", "operation_outcome", "router"]

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
READING_ID_SYSTEM = "urn:ietf:rfc:3986"
DEVICE_ID_SYSTEM = "urn:carebeacon:device-id"
MRN_SYSTEM = "urn:carebeacon:mrn"
VITAL_SIGNS = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ]
}
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
# LOINC searched -> the observation kind that answers it
_KIND_BY_CODE = {
    BP_PANEL: "bp",
    SYSTOLIC: "bp",
    DIASTOLIC: "bp",
    PULSE: "pulse",
    WEIGHT: "weight",
    GLUCOSE: "glucose",
}
_VALUE_CODES = {
    "bp": ("systolic", "diastolic"),
    "pulse": ("pulse",),
    "weight": ("body_weight",),
    "glucose": ("glucose",),
}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DATE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4}(-\d{2}(-\d{2}(T.+)?)?)?)$")


class FhirJSONResponse(JSONResponse):
    """JSON under FHIR's media type: the documented response class of every FHIR route."""

    media_type = FHIR_JSON


router = APIRouter(prefix="/fhir", tags=["FHIR R4"], default_response_class=FhirJSONResponse)
ANY = require()


def _fhir(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, media_type=FHIR_JSON)


_ISSUE_CODE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 422: "invalid"}


def operation_outcome(
    status_code: int, text: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A FHIR error, as an OperationOutcome."""
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": _ISSUE_CODE.get(status_code, "processing"),
                "diagnostics": text,
            }
        ],
    }
    return JSONResponse(body, status_code=status_code, media_type=FHIR_JSON, headers=headers)


def fhir_device_id(device_id: str) -> str:
    """A FHIR-legal id for a device id (ids may hold ':' or other characters FHIR forbids)."""
    if _FHIR_ID.match(device_id):
        return device_id
    return "d-" + hashlib.sha256(device_id.encode()).hexdigest()[:40]


def _instant(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _coding(code: str) -> dict[str, Any]:
    return {
        "coding": [{"system": LOINC, "code": code, "display": DISPLAY[code]}],
        "text": DISPLAY[code],
    }


def _quantity(value: float, unit: str, display_unit: str | None = None) -> dict[str, Any]:
    return {"value": round(value, 2), "unit": display_unit or unit, "system": UCUM, "code": unit}


def _patient_ref(patient_id: uuid.UUID) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"}


def observations_for(row: Row, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The Observations of one reading (``row``: reading_id, time, patient_id, device_id,
    flags, vals)."""
    vals: dict[str, float] = row["vals"]
    rid = str(row["reading_id"])
    out: list[dict[str, Any]] = []
    base = {
        "resourceType": "Observation",
        "status": "final",
        "category": [VITAL_SIGNS],
        "subject": _patient_ref(row["patient_id"]),
        "effectiveDateTime": _instant(row["time"]),
        "device": {"reference": f"Device/{fhir_device_id(row['device_id'])}"},
    }
    if row["flags"]:
        base["note"] = [{"text": "device flags: " + ", ".join(row["flags"])}]

    def make(kind: str, code: str) -> dict[str, Any]:
        return {
            **base,
            "id": f"{rid}-{kind}",
            **({"meta": {"profile": [_PROFILE[kind]]}} if kind in _PROFILE else {}),
            "identifier": [
                {"system": READING_ID_SYSTEM, "value": f"urn:uuid:{rid}"},
                {"system": "urn:carebeacon:observation", "value": f"{rid}/{kind}"},
            ],
            "code": _coding(code),
        }

    if "bp" in kinds and "systolic" in vals and "diastolic" in vals:
        obs = make("bp", BP_PANEL)
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
        out.append(obs)
    if "pulse" in kinds and "pulse" in vals:
        obs = make("pulse", PULSE)
        obs["valueQuantity"] = _quantity(vals["pulse"], "/min", "beats/minute")
        out.append(obs)
    if "weight" in kinds and "body_weight" in vals:
        obs = make("weight", WEIGHT)
        obs["valueQuantity"] = _quantity(vals["body_weight"], "kg")
        out.append(obs)
    if "glucose" in kinds and "glucose" in vals:
        obs = make("glucose", GLUCOSE)
        obs["valueQuantity"] = _quantity(vals["glucose"], "mg/dL")
        out.append(obs)
    return out


_PROFILE = {
    kind: f"http://hl7.org/fhir/StructureDefinition/{name}"
    for kind, name in (("bp", "bp"), ("pulse", "heartrate"), ("weight", "bodyweight"))
}


def _parse_patient(value: str) -> uuid.UUID:
    raw = value.removeprefix("Patient/")
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "patient must be a Patient id") from None


def _parse_codes(values: list[str] | None) -> list[str]:
    if not values:
        return [BP_PANEL, PULSE, WEIGHT, GLUCOSE]
    codes: list[str] = []
    for value in values:
        for token in value.split(","):
            system, _, code = token.rpartition("|")
            if system and system != LOINC:
                raise HTTPException(
                    status.HTTP_400_BAD_REQUEST, f"unsupported code system {system}"
                )
            if code not in _KIND_BY_CODE and code != BP_AVERAGE:
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
    """The CardX average self-measured BP over [start, end), or None without readings."""
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
        "id": f"bpavg-{patient_id}-{end.astimezone(UTC):%Y%m%d%H%M}",
        "meta": {"profile": [CARDX_AVERAGE_PROFILE]},
        "extension": [{"url": CARDX_N_EXT, "valueInteger": int(row["n"])}],
        "status": "final",
        "category": [VITAL_SIGNS],
        "code": _coding(BP_AVERAGE),
        "subject": _patient_ref(patient_id),
        "effectivePeriod": {"start": _instant(start), "end": _instant(end)},
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


def _bundle(
    request: Request, entries: list[dict[str, Any]], next_url: str | None
) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    links = [{"relation": "self", "url": str(request.url)}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/fhir/{e['resourceType']}/{e['id']}",
                "resource": e,
                "search": {"mode": "match"},
            }
            for e in entries
        ],
    }


@router.get("/Patient/{patient_id}", summary="FHIR Patient")
async def fhir_patient(
    request: Request,
    patient: Annotated[PatientRef, Depends(patient_access("fhir read Patient", ANY))],
) -> JSONResponse:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT p.id, p.mrn, p.display_name, p.birth_date, p.site_id,"
            " EXISTS (SELECT 1 FROM enrollments e WHERE e.patient_id = p.id AND e.ended_at IS NULL)"
            " AS active FROM patients p WHERE p.id = %s",
            (patient.id,),
        )
        row = await cur.fetchone()
    assert row is not None
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(row["id"]),
        "active": row["active"],
        "name": [{"text": row["display_name"]}],
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
    return _fhir(body)


@router.get("/Observation", summary="FHIR Observation search (vital signs, 7-day average BP)")
async def fhir_observations(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    patient: Annotated[str, Query(description="Patient id (or Patient/id)")],
    code: Annotated[list[str] | None, Query(description="LOINC codes, comma separated")] = None,
    date_: Annotated[list[str] | None, Query(alias="date", description="ge2026-01-01 …")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=MAX_OFFSET)] = 0,
) -> JSONResponse:
    patient_id = _parse_patient(patient)
    codes = _parse_codes(code)
    lo, hi = _parse_dates(date_)
    await check_patient_access(
        request, principal, patient_id, "fhir search Observation", detail={"codes": codes}
    )
    entries: list[dict[str, Any]] = []
    next_url: str | None = None
    async with app_state(request).pool.connection() as conn:
        if BP_AVERAGE in codes:
            end = hi or datetime.now(UTC)
            start = lo or end - timedelta(days=7)
            avg = await average_bp(conn, patient_id, start, end)
            if avg is not None:
                entries.append(avg)
        kinds = sorted({_KIND_BY_CODE[c] for c in codes if c in _KIND_BY_CODE})
        if kinds:
            value_codes = [vc for k in kinds for vc in _VALUE_CODES[k]]
            cur = await conn.execute(
                "SELECT reading_id, time, patient_id, device_id, flags,"
                " jsonb_object_agg(code, value) AS vals FROM readings"
                " WHERE patient_id = %s AND code = ANY(%s) AND time >= %s AND time < %s"
                " AND NOT flags && %s::text[]"
                " GROUP BY reading_id, time, patient_id, device_id, flags"
                " ORDER BY time DESC, reading_id LIMIT %s OFFSET %s",
                (
                    patient_id,
                    value_codes,
                    lo or datetime(1970, 1, 1, tzinfo=UTC),
                    hi or datetime(9999, 1, 1, tzinfo=UTC),
                    NOT_PATIENT_DATA,
                    count + 1,
                    offset,
                ),
            )
            rows = await cur.fetchall()
            if len(rows) > count:
                rows = rows[:count]
                next_url = str(request.url.include_query_params(_offset=offset + count))
            for row in rows:
                entries.extend(observations_for(row, kinds))
    return _fhir(_bundle(request, entries, next_url))


def _device_resource(row: Row, fhir_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Device",
        "id": fhir_id,
        "identifier": [{"system": DEVICE_ID_SYSTEM, "value": row["id"]}],
        "status": "active" if row["patient_id"] is not None else "inactive",
        "type": {"text": row["type"]},
    }
    if row["manufacturer"]:
        body["manufacturer"] = row["manufacturer"]
    if row["model"]:
        body["modelNumber"] = row["model"]
        body["deviceName"] = [{"name": row["model"], "type": "model-name"}]
    if row["patient_id"] is not None:
        body["patient"] = _patient_ref(row["patient_id"])
    return body


_DEVICE_SQL = """
SELECT d.id, d.type, d.manufacturer, d.model, cur.patient_id, cur.site_id,
       (SELECT array_agg(DISTINCT p.site_id) FROM device_assignments a
          JOIN patients p ON p.id = a.patient_id WHERE a.device_id = d.id) AS sites
FROM devices d
LEFT JOIN LATERAL (
    SELECT a.patient_id, p.site_id FROM device_assignments a JOIN patients p ON p.id = a.patient_id
    WHERE a.device_id = d.id AND a.valid_from <= now() AND (a.valid_to IS NULL OR a.valid_to > now())
    ORDER BY a.valid_from DESC LIMIT 1) cur ON true
"""


@router.get("/Device/{device_id}", summary="FHIR Device")
async def fhir_device(
    request: Request,
    device_id: str,
    principal: Annotated[Principal, Depends(ANY)],
) -> JSONResponse:
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            _DEVICE_SQL + " WHERE d.id = %s OR (%s LIKE 'd-%%'"
            " AND left(encode(sha256(convert_to(d.id, 'UTF8')), 'hex'), 40) = substr(%s, 3))",
            (device_id, device_id, device_id),
        )
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such device")
        sites = set(row["sites"] or [])
        if not sites & principal.sites:
            await audit(
                conn,
                principal,
                "fhir read Device",
                outcome="denied",
                resource=f"Device/{device_id}",
            )
            await conn.commit()
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "this device is not at one of your sites"
            )
        if row["site_id"] is not None and row["site_id"] not in principal.sites:
            row["patient_id"] = None  # assigned now to a patient of another site: not named
        await audit(
            conn,
            principal,
            "fhir read Device",
            patient_id=row["patient_id"],
            site_id=row["site_id"],
            resource=f"Device/{device_id}",
        )
    return _fhir(_device_resource(row, fhir_device_id(row["id"])))


@router.get("/Device", summary="FHIR Device search (by patient, or the devices of my sites)")
async def fhir_devices(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    patient: Annotated[str | None, Query(description="Patient id (or Patient/id)")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(alias="_offset", ge=0, le=MAX_OFFSET)] = 0,
) -> JSONResponse:
    next_url: str | None = None
    if patient is not None:
        patient_id: uuid.UUID | None = _parse_patient(patient)
        assert patient_id is not None
        await check_patient_access(request, principal, patient_id, "fhir search Device")
        where = " WHERE d.id IN (SELECT device_id FROM device_assignments WHERE patient_id = %s)"
        params: tuple[object, ...] = (patient_id,)
    else:
        # devices now assigned to patients of my sites
        patient_id = None
        where = " WHERE cur.site_id = ANY(%s)"
        params = (sorted(principal.sites),)
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            _DEVICE_SQL + where + " ORDER BY d.id LIMIT %s OFFSET %s",
            (*params, count + 1, offset),
        )
        rows = await cur.fetchall()
        if len(rows) > count:
            rows = rows[:count]
            next_url = str(request.url.include_query_params(_offset=offset + count))
        if patient_id is None:
            await audit(
                conn,
                principal,
                "fhir search Device",
                detail={"patients": sorted({str(r["patient_id"]) for r in rows})},
            )
    entries = []
    for row in rows:
        if patient_id is not None and row["patient_id"] not in (None, patient_id):
            row["patient_id"] = None  # now someone else's: do not name them here
        entries.append(_device_resource(row, fhir_device_id(row["id"])))
    return _fhir(_bundle(request, entries, next_url))
