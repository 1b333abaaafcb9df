"""A program's panel at a glance: the 7-day blood pressure average of every patient enrolled in
it at my sites (``GET /api/programs/{program_id}/bp-averages``), for the clinician or program
manager who reviews a whole program rather than one patient.

Each average is the patient page's (:func:`web._trends.kpis`): systolic and diastolic over
``[now - 7 days, now]``, readings that are not patient data (control solution) left out. One
query for the whole program; every patient listed is named in the audit event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel

from web._access import check_site_access
from web._audit import audit
from web._auth import require
from web._db import Conn
from web._principal import Principal
from web._state import app_state
from web._trends import NOT_PATIENT_DATA

__all__ = ["PatientBpAverage", "ProgramBpAverages", "program_bp_averages", "router"]

router = APIRouter(prefix="/api", tags=["programs"])
ANY = require()
WINDOW = timedelta(days=7)

_SQL = """
SELECT p.id, p.display_name, p.mrn, p.site_id, bp.systolic, bp.diastolic, bp.n, bp.last_at
FROM patients p
LEFT JOIN LATERAL (
    SELECT avg(r.value) FILTER (WHERE r.code = 'systolic') AS systolic,
           avg(r.value) FILTER (WHERE r.code = 'diastolic') AS diastolic,
           count(*) FILTER (WHERE r.code = 'systolic') AS n,
           max(r.time) AS last_at
    FROM readings r
    WHERE r.patient_id = p.id AND r.code IN ('systolic', 'diastolic')
      AND r.time >= %(since)s AND r.time <= %(now)s AND NOT r.flags && %(excluded)s::text[]
) bp ON true
WHERE p.site_id = ANY(%(sites)s)
  AND p.id IN (SELECT e.patient_id FROM enrollments e
               WHERE e.program_id = %(program)s AND e.enrolled_at <= %(now)s
                 AND (e.ended_at IS NULL OR e.ended_at > %(now)s))
ORDER BY bp.systolic DESC NULLS LAST, p.display_name, p.id
"""


@dataclass(frozen=True, slots=True)
class PatientBpAverage:
    patient_id: uuid.UUID
    display_name: str
    mrn: str | None
    site_id: str
    systolic: float | None
    diastolic: float | None
    n: int  # BP readings averaged
    last_at: datetime | None  # the latest of them


@dataclass(frozen=True, slots=True)
class ProgramBpAverages:
    program_id: str
    since: datetime
    until: datetime
    patients: tuple[PatientBpAverage, ...]  # highest systolic average first, then no readings

    @property
    def with_readings(self) -> int:
        return sum(1 for p in self.patients if p.n)

    def mean(self, code: str) -> float | None:
        """The mean of the patients' averages (each patient counts once)."""
        values = [getattr(p, code) for p in self.patients if getattr(p, code) is not None]
        return round(sum(values) / len(values), 1) if values else None


async def program_bp_averages(
    conn: Conn, program_id: str, sites: list[str], now: datetime | None = None
) -> ProgramBpAverages:
    """The 7-day BP averages of the patients of ``sites`` enrolled in ``program_id`` at ``now``."""
    until = now or datetime.now(UTC)
    since = until - WINDOW
    cur = await conn.execute(
        _SQL,
        {
            "program": program_id,
            "sites": sites,
            "since": since,
            "now": until,
            "excluded": NOT_PATIENT_DATA,
        },
    )
    patients = tuple(
        PatientBpAverage(
            patient_id=r["id"],
            display_name=r["display_name"],
            mrn=r["mrn"],
            site_id=r["site_id"],
            systolic=round(r["systolic"], 1) if r["systolic"] is not None else None,
            diastolic=round(r["diastolic"], 1) if r["diastolic"] is not None else None,
            n=r["n"] or 0,
            last_at=r["last_at"],
        )
        for r in await cur.fetchall()
    )
    return ProgramBpAverages(program_id, since, until, patients)


class PatientBpAverageOut(BaseModel):
    patient_id: uuid.UUID
    display_name: str
    mrn: str | None
    site_id: str
    systolic: float | None
    diastolic: float | None
    n: int
    last_at: datetime | None


class ProgramBpAveragesOut(BaseModel):
    program_id: str
    since: datetime
    until: datetime
    enrolled: int
    with_readings: int
    mean_systolic: float | None
    mean_diastolic: float | None
    items: list[PatientBpAverageOut]


@router.get(
    "/programs/{program_id}/bp-averages",
    response_model=ProgramBpAveragesOut,
    summary="7-day BP average of every patient of a program at my sites (or at site_id)",
)
async def api_program_bp_averages(
    request: Request,
    program_id: str,
    principal: Annotated[Principal, Depends(ANY)],
    site_id: str | None = None,
) -> dict[str, Any]:
    if site_id is not None:
        await check_site_access(request, principal, site_id, "program bp averages")
    async with app_state(request).pool.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM programs WHERE id = %s", (program_id,))
        if await cur.fetchone() is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such program")
        sites = [site_id] if site_id else sorted(principal.sites)
        result = await program_bp_averages(conn, program_id, sites)
        await audit(
            conn,
            principal,
            "program bp averages",
            site_id=site_id,
            detail={
                "program": program_id,
                "patients": [str(p.patient_id) for p in result.patients],
            },
        )
    return {
        "program_id": program_id,
        "since": result.since,
        "until": result.until,
        "enrolled": len(result.patients),
        "with_readings": result.with_readings,
        "mean_systolic": result.mean("systolic"),
        "mean_diastolic": result.mean("diastolic"),
        "items": [
            {
                "patient_id": p.patient_id,
                "display_name": p.display_name,
                "mrn": p.mrn,
                "site_id": p.site_id,
                "systolic": p.systolic,
                "diastolic": p.diastolic,
                "n": p.n,
                "last_at": p.last_at,
            }
            for p in result.patients
        ],
    }
