"""The patient page (care managers and clinicians): trends, readings, episodes, thresholds,
devices and gateways. Every view is audit-logged by ``patient_access``."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg_pool import AsyncConnectionPool

from web import _alerts_bridge, _trends
from web._access import Detail, PatientRef, patient_access
from web._auth import require
from web._db import Conn, Row
from web._principal import Principal, Role
from web._state import app_state

T = TypeVar("T")

__all__ = ["PageReads", "read_patient_page", "router"]

router = APIRouter(include_in_schema=False)
ANY = require()


def _bucket_label(bucket: timedelta | None) -> str:
    if bucket is None:
        return ""
    minutes = int(bucket.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} day" + ("s" if minutes > 1440 else "")
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


@dataclass(frozen=True, slots=True)
class PageReads:
    """Everything the patient page reads from the database for one range."""

    series: dict[str, dict[str, list[Any]]]
    bucket: timedelta | None
    kpis: _trends.Kpis
    readings: list[Row]
    header: Row
    care_time: Row
    devices: list[Row]
    gateways: list[Row]
    thresholds: _alerts_bridge.ChartThresholds
    threshold_history: list[Row]
    episodes: list[Row]


async def read_patient_page(
    pool: AsyncConnectionPool[Conn], patient_id: uuid.UUID, days: int, now: datetime
) -> PageReads:
    """The page's reads for the ``days`` before ``now``: independent reads, each on its own
    pooled connection (``carebeacon bench queries`` times this function)."""
    since = now - timedelta(days=days)

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

    (
        (series, bucket),
        kpis,
        readings,
        (header, care_time, (devices, gateways), thresholds, threshold_history, episodes),
    ) = await asyncio.gather(
        on_own_connection(lambda c: _trends.series(c, patient_id, since, days)),
        on_own_connection(lambda c: _trends.kpis(c, patient_id, since, now)),
        on_own_connection(lambda c: _trends.readings_table(c, patient_id, since)),
        on_own_connection(others),
    )
    return PageReads(
        series,
        bucket,
        kpis,
        readings,
        header,
        care_time,
        devices,
        gateways,
        thresholds,
        threshold_history,
        episodes,
    )


async def _range(
    range_: Annotated[str, Query(alias="range", pattern="^(7d|30d|90d|1y)$")] = "30d",
) -> str:
    return range_


async def _range_detail(range_: Annotated[str, Depends(_range)]) -> Detail:
    return {"range": range_}


@router.get("/patients/by-mrn/{mrn}")
async def patient_by_mrn(
    request: Request, mrn: str, principal: Annotated[Principal, Depends(ANY)]
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
    principal: Annotated[Principal, Depends(ANY)],
    range_: Annotated[str, Depends(_range)],
    patient: Annotated[
        PatientRef, Depends(patient_access("view patient page", ANY, detail=_range_detail))
    ],
) -> Response:
    state = app_state(request)
    days = _trends.RANGES[range_]
    now = datetime.now(UTC)
    since = now - timedelta(days=days)
    reads = await read_patient_page(state.pool, patient.id, days, now)
    series, bucket, kpis, readings = reads.series, reads.bucket, reads.kpis, reads.readings
    header, care_time, thresholds = reads.header, reads.care_time, reads.thresholds
    devices, gateways = reads.devices, reads.gateways
    threshold_history, episodes = reads.threshold_history, reads.episodes
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
