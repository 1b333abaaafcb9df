"""The patient page (care managers and clinicians): trends, readings, episodes, thresholds,
devices and gateways. Every view is audit-logged by ``check_patient_access``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web import _alerts_bridge, _trends
from web._auth import Principal, Role, check_patient_access, require
from web._db import Conn
from web._state import app_state

T = TypeVar("T")

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _bucket_label(bucket: timedelta | None) -> str:
    if bucket is None:
        return ""
    minutes = int(bucket.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} day" + ("s" if minutes > 1440 else "")
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


@router.get("/patients/by-mrn/{mrn}")
async def patient_by_mrn(
    request: Request, mrn: str, principal: Annotated[Principal, Depends(require())]
) -> Response:
    """For links from a chart that knows the MRN: to the patient page (which writes the audit
    event). Only patients of my sites are found: no probing other sites' MRNs."""
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM patients WHERE mrn = %s AND site_id = ANY(%s)",
            (mrn, sorted(principal.sites)),
        )
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no patient with this MRN")
    return RedirectResponse(f"/patients/{row['id']}", status_code=303)


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
async def patient_page(
    request: Request,
    patient_id: uuid.UUID,
    principal: Annotated[Principal, Depends(require())],
    range_: Annotated[str, Query(alias="range", pattern="^(7d|30d|90d|1y)$")] = "30d",
) -> Response:
    await check_patient_access(
        request, principal, patient_id, "view patient page", detail={"range": range_}
    )
    state = app_state(request)
    days = _trends.RANGES[range_]
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    pool = state.pool

    async def on_own_connection(fn: Callable[[Conn], Awaitable[T]]) -> T:
        async with pool.connection() as conn:
            return await fn(conn)

    async def others(conn: Conn) -> tuple[Any, ...]:
        header = await _trends.patient_header(conn, patient_id)
        return (
            header,
            await _trends.care_time_this_month(conn, patient_id, header["timezone"]),
            await _trends.devices_and_gateways(conn, patient_id),
            await _alerts_bridge.chart_thresholds(conn, patient_id),
            await _alerts_bridge.threshold_history(conn, patient_id),
            await _alerts_bridge.episode_history(conn, patient_id),
        )

    # independent reads, each on its own pooled connection
    (
        series_and_bucket,
        kpis,
        readings,
        (header, care_time, dg, thresholds, threshold_history, episodes),
    ) = await asyncio.gather(
        on_own_connection(lambda c: _trends.series(c, patient_id, since, days)),
        on_own_connection(lambda c: _trends.kpis(c, patient_id, since, now)),
        on_own_connection(lambda c: _trends.readings_table(c, patient_id, since)),
        on_own_connection(others),
    )
    devices, gateways = dg
    series, bucket = series_and_bucket
    chart_data = {
        "series": series,
        "thresholds": {
            "systolic_high": thresholds.systolic_high,
            "diastolic_high": thresholds.diastolic_high,
            "systolic_low": thresholds.systolic_low,
            "glucose_low": thresholds.glucose_low or _trends.GLUCOSE_TARGET[0],
            "glucose_high": thresholds.glucose_high or _trends.GLUCOSE_TARGET[1],
        },
        "bucketed": bucket is not None,
        "x_range": [since.timestamp(), now.timestamp()],
        "timezone": header["timezone"],
    }
    return state.templates.TemplateResponse(
        request,
        "patient.html",
        {
            "principal": principal,
            "p": header,
            "range": range_,
            "ranges": list(_trends.RANGES),
            "kpis": kpis,
            "care_time": care_time,
            "can_log_time": principal.role in (Role.CARE_MANAGER, Role.CLINICIAN, Role.SUPERVISOR),
            "readings": readings,
            "devices": devices,
            "gateways": gateways,
            "thresholds": thresholds,
            "threshold_history": threshold_history,
            "episodes": episodes,
            "glucose_target": _trends.GLUCOSE_TARGET,
            # "</" cannot close the script element: the JSON is embedded in the page.
            "chart_json": json.dumps(chart_data, separators=(",", ":")).replace("</", "<\\/"),
            "bucket_label": _bucket_label(bucket),
        },
        headers={"Cache-Control": "no-store"},
    )
