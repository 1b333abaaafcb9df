"""FHIR Device: read, and search by ``patient`` (or the devices now at the caller's sites).

Device ids that are not FHIR-legal become ``d-<sha256 prefix>`` (:func:`fhir_device_id`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from web._access import check_patient_access
from web._audit import audit
from web._db import Row
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
    parse_patient,
    patient_ref,
    post_query,
    searchset,
)
from web._principal import Principal
from web._state import app_state

__all__ = ["DEVICE_ID_SYSTEM", "router"]

DEVICE_ID_SYSTEM = "urn:carebeacon:device-id"

router = APIRouter()


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
        body["patient"] = patient_ref(row["patient_id"])
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
    if "\x00" in device_id:  # no device id holds one (PostgreSQL text cannot)
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such device")
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
    return fhir_response(_device_resource(row, fhir_device_id(row["id"])))


class DeviceQuery(SearchQuery):
    patient: str | None = None


async def _search(
    request: Request, principal: Principal, query: DeviceQuery, items: Items
) -> JSONResponse:
    if query.patient is not None:
        patient_id: uuid.UUID | None = parse_patient(query.patient)
        assert patient_id is not None
        await check_patient_access(request, principal, patient_id, "fhir search Device")
        where = " WHERE d.id IN (SELECT device_id FROM device_assignments WHERE patient_id = %s)"
        params: tuple[object, ...] = (patient_id,)
    else:
        # devices now assigned to patients of my sites
        patient_id = None
        where = " WHERE cur.site_id = ANY(%s)"
        params = (sorted(principal.sites),)
    rows: list[Row] = []
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) AS n FROM ({_DEVICE_SQL + where}) m", params)
        counted = await cur.fetchone()
        total = int(counted["n"]) if counted else 0
        if query.count:
            cur = await conn.execute(
                _DEVICE_SQL + where + " ORDER BY d.id LIMIT %s OFFSET %s",
                (*params, query.count, query.offset),
            )
            rows = await cur.fetchall()
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
    return fhir_response(searchset(request, "Device", items, query, entries, total))


@router.get("/Device", summary="FHIR Device search (by patient, or the devices of my sites)")
async def fhir_devices(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    patient: Annotated[str | None, Query(description="Patient id (or Patient/id)")] = None,
    count: Count = DEFAULT_COUNT,
    offset: Offset = 0,
) -> JSONResponse:
    return await _search(request, principal, *get_query(request, DeviceQuery))


@router.post("/Device/_search", summary="FHIR Device search by POST (form-encoded parameters)")
async def fhir_devices_post(
    request: Request, principal: Annotated[Principal, Depends(ANY)]
) -> JSONResponse:
    return await _search(request, principal, *await post_query(request, DeviceQuery))
