"""The billing ledger of a site for a month: HTML page, JSON, and CSV with the evidence."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from web._access import check_site_access
from web._audit import audit
from web._auth import require
from web._billing import (
    ConsentWindow,
    EnrollmentFacts,
    LedgerLine,
    TimeEntry,
    ledger_for_month,
)
from web._db import Conn
from web._principal import Principal, Role
from web._state import app_state
from web._trends import NOT_PATIENT_DATA

__all__ = ["build_ledger", "csv_cell", "router"]

router = APIRouter(tags=["billing"])
#: YYYY-MM, 1970-01 … 2999-12: a month of year 9999 answered 500 (its end is in year 10000)
MONTH_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$"
BILLING = require(Role.SUPERVISOR, Role.ADMIN)
CSV_COLUMNS = [
    "site_id",
    "patient_id",
    "mrn",
    "enrollment_id",
    "billing_practitioner",
    "cpt",
    "units",
    "service_start",
    "service_end",
    "status",
    "reasons",
    "days_with_readings",
    "reading_dates",
    "minutes",
    "seconds",
    "time_entry_ids",
    "live_entry_ids",
    "days_still_needed",
    "days_left",
]


class CsvResponse(Response):
    """The documented response class of the CSV export."""

    media_type = "text/csv"


#: a cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """``value`` safe to open in a spreadsheet: text that would start a formula gets a leading
    apostrophe (free text such as MRNs and practitioner names reaches the CSV)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _month(text: str | None, tz: ZoneInfo) -> tuple[date, date]:
    if text is None:
        today = datetime.now(tz).date()
        first = today.replace(day=1)
    else:
        try:
            year, month = (int(x) for x in text.split("-"))
            first = date(year, month, 1)
            date(year + month // 12, month % 12 + 1, 1)  # the month after exists too
        except ValueError:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "month must be YYYY-MM"
            ) from None
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


async def consent_windows(
    conn: Conn, enrollment_ids: list[int]
) -> dict[int, tuple[ConsentWindow, ...]]:
    """The consent windows of these enrollments, by enrollment id, from the consent history
    (the ``consent_windows`` view of migration 060, which ingest and alerts read too)."""
    cur = await conn.execute(
        "SELECT enrollment_id, given_at, withdrawn_at FROM consent_windows"
        " WHERE enrollment_id = ANY(%s) ORDER BY enrollment_id, given_at",
        (enrollment_ids,),
    )
    out: dict[int, list[ConsentWindow]] = defaultdict(list)
    for r in await cur.fetchall():
        out[r["enrollment_id"]].append(ConsentWindow(r["given_at"], r["withdrawn_at"]))
    return {k: tuple(v) for k, v in out.items()}


async def build_ledger(
    conn: Conn, site_id: str, month: str | None, today: date | None = None
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], LedgerLine]]]:
    """(site info, [(patient row, line)]) for one site and month."""
    cur = await conn.execute("SELECT id, name, timezone FROM sites WHERE id = %s", (site_id,))
    site = await cur.fetchone()
    if site is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")
    tz = ZoneInfo(site["timezone"])
    month_start, month_end = _month(month, tz)
    today = today or datetime.now(tz).date()
    lo = datetime(month_start.year, month_start.month, month_start.day, tzinfo=tz)
    hi = datetime(month_end.year, month_end.month, month_end.day, tzinfo=tz) + timedelta(days=1)
    # every enrollment of the patients with one in or before the month: an episode of care
    # (and its 99453) may begin long before the month
    cur = await conn.execute(
        "SELECT e.*, p.mrn FROM enrollments e JOIN patients p ON p.id = e.patient_id"
        " WHERE p.site_id = %s AND EXISTS (SELECT 1 FROM enrollments e2"
        "  WHERE e2.patient_id = p.id AND e2.enrolled_at < %s)"
        " ORDER BY p.id, e.enrolled_at",
        (site_id, hi),
    )
    rows = await cur.fetchall()
    windows = await consent_windows(conn, [r["id"] for r in rows])
    by_patient: dict[uuid.UUID, list[EnrollmentFacts]] = defaultdict(list)
    mrn: dict[uuid.UUID, str | None] = {}
    for r in rows:
        mrn[r["patient_id"]] = r["mrn"]
        by_patient[r["patient_id"]].append(
            EnrollmentFacts(
                enrollment_id=r["id"],
                patient_id=r["patient_id"],
                program_id=r["program_id"],
                enrolled_at=r["enrolled_at"],
                ended_at=r["ended_at"],
                consent=windows.get(r["id"], ()),
                billing_practitioner=r["billing_practitioner"],
            )
        )
    patients = list(by_patient)
    readings: dict[uuid.UUID, list[datetime]] = defaultdict(list)
    entries: dict[uuid.UUID, list[TimeEntry]] = defaultdict(list)
    if patients:
        since = min(e.enrolled_at for es in by_patient.values() for e in es)
        # One row per patient with the first and the last reading of each local day: a site's
        # year is ~500,000 days, which as rows cost more to load in Python (1.3 s) than to
        # compute. The two instants decide a day whose coverage starts or ends within it
        # (consent given at 20:00: the day counts if its last reading is at or after 20:00).
        cur = await conn.execute(
            "SELECT patient_id, array_agg(first ORDER BY day) AS firsts,"
            " array_agg(last ORDER BY day) AS lasts FROM ("
            " SELECT patient_id, (time AT TIME ZONE %s)::date AS day, min(time) AS first,"
            " max(time) AS last FROM reading_receipts"
            " WHERE patient_id = ANY(%s) AND time >= %s AND time < %s"
            " AND NOT flags && %s::text[] GROUP BY 1, 2) d GROUP BY 1",
            (site["timezone"], patients, since, hi, NOT_PATIENT_DATA),
        )
        for r in await cur.fetchall():
            readings[r["patient_id"]] = [*r["firsts"], *r["lasts"]]
        cur = await conn.execute(
            "SELECT id, patient_id, (started_at AT TIME ZONE %s)::date AS day, started_at,"
            " seconds, interactive FROM care_time_entries WHERE patient_id = ANY(%s)"
            " AND started_at >= %s AND started_at < %s ORDER BY started_at",
            (site["timezone"], patients, lo, hi),
        )
        for r in await cur.fetchall():
            entries[r["patient_id"]].append(
                TimeEntry(r["id"], r["day"], r["seconds"], r["interactive"], r["started_at"])
            )
    out: list[tuple[dict[str, Any], LedgerLine]] = []
    for pid, enrollments in by_patient.items():
        info = {"patient_id": pid, "mrn": mrn[pid]}
        for line in ledger_for_month(
            enrollments, readings[pid], entries[pid], month_start, month_end, today, tz=tz
        ):
            out.append((info, line))
    meta = {
        "site_id": site_id,
        "site_name": site["name"],
        "timezone": site["timezone"],
        "month": f"{month_start:%Y-%m}",
        "month_start": month_start,
        "month_end": month_end,
    }
    return meta, out


def _line_json(info: dict[str, Any], line: LedgerLine) -> dict[str, Any]:
    return {
        "patient_id": str(info["patient_id"]),
        "mrn": info["mrn"],
        "enrollment_id": line.enrollment_id,
        "billing_practitioner": line.billing_practitioner,
        "cpt": line.code or None,
        "units": line.units,
        "service_start": line.period_start.isoformat(),
        "service_end": line.period_end.isoformat(),
        "status": line.status,
        "reasons": list(line.reasons),
        "days_with_readings": len(line.days) if line.days else None,
        "reading_dates": [d.isoformat() for d in line.days],
        "minutes": line.minutes,
        "seconds": line.seconds,
        "time_entry_ids": list(line.time_entry_ids),
        "live_entry_ids": list(line.live_entry_ids),
        "days_still_needed": line.days_still_needed,
        "days_left": line.days_left,
    }


async def _ledger(
    request: Request, principal: Principal, site_id: str, month: str | None, action: str
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], LedgerLine]]]:
    await check_site_access(request, principal, site_id, action)
    async with app_state(request).pool.connection() as conn:
        meta, lines = await build_ledger(conn, site_id, month)
        await audit(
            conn,
            principal,
            action,
            site_id=site_id,
            detail={
                "month": meta["month"],
                "patients": sorted({str(i["patient_id"]) for i, _ in lines}),
            },
        )
    return meta, lines


@router.get("/api/billing/ledger", summary="Billing ledger of a site for a month (JSON)")
async def ledger_json(
    request: Request,
    principal: Annotated[Principal, Depends(BILLING)],
    site_id: str,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN)] = None,
) -> dict[str, Any]:
    meta, lines = await _ledger(request, principal, site_id, month, "billing ledger")
    return {
        **{k: v for k, v in meta.items() if k in ("site_id", "timezone", "month")},
        "lines": [_line_json(i, line) for i, line in lines],
    }


@router.get(
    "/billing/ledger.csv",
    response_class=CsvResponse,
    summary="Billing ledger as CSV, with the evidence per line",
)
async def ledger_csv(
    request: Request,
    principal: Annotated[Principal, Depends(BILLING)],
    site_id: str,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN)] = None,
) -> Response:
    meta, lines = await _ledger(request, principal, site_id, month, "billing ledger csv")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for info, line in lines:
        row = _line_json(info, line)
        cells = {
            "site_id": site_id,
            **{k: row[k] for k in CSV_COLUMNS if k in row and k not in ("reasons",)},
            "reasons": "; ".join(row["reasons"]),
            "reading_dates": " ".join(row["reading_dates"]),
            "time_entry_ids": " ".join(str(x) for x in row["time_entry_ids"]),
            "live_entry_ids": " ".join(str(x) for x in row["live_entry_ids"]),
            "cpt": row["cpt"] or "",
        }
        writer.writerow({k: csv_cell(v) for k, v in cells.items()})
    filename = f"carebeacon-ledger-{site_id}-{meta['month']}.csv"
    return CsvResponse(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/billing", response_class=HTMLResponse, include_in_schema=False)
async def ledger_page(
    request: Request,
    principal: Annotated[Principal, Depends(BILLING)],
    site_id: str | None = None,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN)] = None,
) -> Response:
    site = site_id or (sorted(principal.sites)[0] if principal.sites else None)
    if site is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you have no site of care")
    meta, lines = await _ledger(request, principal, site, month, "billing ledger page")
    return app_state(request).templates.TemplateResponse(
        request,
        "billing.html",
        {
            "principal": principal,
            "meta": meta,
            "lines": [_line_json(i, line) for i, line in lines],
            "sites": sorted(principal.sites),
            "generated": datetime.now(UTC),
        },
        headers={"Cache-Control": "no-store"},
    )
