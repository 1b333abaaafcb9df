"""The patient page's numbers: chart series (raw or ``time_bucket``-downsampled), 7-day BP
average, glucose time in range, weight change, the readings table, devices and gateways.

Every query is bounded by the patient and a time range on the ``(patient_id, code, time)``
index; long ranges are averaged in buckets so a year of readings stays a few hundred points.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from web._db import Conn, Row, generic_plans

__all__ = [
    "RANGES",
    "Kpis",
    "bucket_for",
    "care_time_this_month",
    "devices_and_gateways",
    "kpis",
    "patient_header",
    "readings_table",
    "series",
]

RANGES: dict[str, int] = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}
CHART_CODES = ("systolic", "diastolic", "pulse", "glucose", "body_weight")
# Not a patient measurement: never drawn, averaged or exported.
NOT_PATIENT_DATA = ["control_solution"]
GLUCOSE_TARGET = (70.0, 180.0)  # mg/dL, the consensus time-in-range target
MAX_RAW_POINTS = 8000  # values drawn one by one; more (a CGM, a chatty cuff) are averaged


_CHARTS: dict[str, tuple[str, ...]] = {
    "bp": ("systolic", "diastolic"),
    "pulse": ("pulse",),
    "glucose": ("glucose",),
    "weight": ("body_weight",),
}
_CHART_OF = {code: name for name, codes in _CHARTS.items() for code in codes}


def bucket_for(days: int) -> timedelta | None:
    """None = raw points; else the bucket width that keeps a series to ~365 points."""
    if days <= 30:
        return None
    return timedelta(hours=6) if days <= 90 else timedelta(days=1)


async def patient_header(conn: Conn, patient_id: uuid.UUID) -> Row:
    cur = await conn.execute(
        "SELECT p.id, p.display_name, p.mrn, p.birth_date, p.risk_tier, p.site_id,"
        " s.name AS site_name, s.timezone FROM patients p JOIN sites s ON s.id = p.site_id"
        " WHERE p.id = %s",
        (patient_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(
        "SELECT e.id, e.program_id, pr.name AS program_name, pr.template, e.enrolled_at,"
        " e.ended_at, e.consent_given_at, e.consent_withdrawn_at, e.billing_practitioner"
        " FROM enrollments e JOIN programs pr ON pr.id = e.program_id"
        " WHERE e.patient_id = %s ORDER BY e.enrolled_at DESC",
        (patient_id,),
    )
    row["enrollments"] = await cur.fetchall()
    return row


async def series(
    conn: Conn, patient_id: uuid.UUID, since: datetime, days: int
) -> tuple[dict[str, dict[str, list[Any]]], timedelta | None]:
    """Per chart: ``{"t": [epoch seconds], code: [value or None], ...}`` aligned on ``t``; and
    the averaging bucket used (None: raw values)."""
    bucket = bucket_for(days)
    rows: list[Row] = []
    if bucket is None:
        async with conn.pipeline():  # one round trip
            await generic_plans(conn)
            cur = await conn.execute(
                "SELECT extract(epoch FROM time)::float8 AS t, code, value FROM readings"
                " WHERE patient_id = %s AND code = ANY(%s) AND time >= %s"
                " AND NOT flags && %s::text[] ORDER BY time LIMIT %s",
                (patient_id, list(CHART_CODES), since, NOT_PATIENT_DATA, MAX_RAW_POINTS + 1),
            )
        rows = await cur.fetchall()
        if len(rows) > MAX_RAW_POINTS:  # a very chatty device: average it as well
            bucket = timedelta(minutes=30) if days <= 7 else timedelta(hours=2)
    if bucket is not None:
        async with conn.pipeline():
            await generic_plans(conn)
            cur = await conn.execute(
                "SELECT extract(epoch FROM time_bucket(%s, time))::float8 AS t, code,"
                " avg(value) AS value FROM readings"
                " WHERE patient_id = %s AND code = ANY(%s) AND time >= %s"
                " AND NOT flags && %s::text[] GROUP BY 1, 2 ORDER BY 1",
                (bucket, patient_id, list(CHART_CODES), since, NOT_PATIENT_DATA),
            )
        rows = await cur.fetchall()
    # one pass over the rows (a year is ~1,500 of them), each to its chart
    by_chart: dict[str, dict[float, dict[str, float]]] = {name: {} for name in _CHARTS}
    for r in rows:
        chart = _CHART_OF.get(r["code"])
        if chart is not None:
            by_chart[chart].setdefault(r["t"], {})[r["code"]] = round(r["value"], 1)
    out: dict[str, dict[str, list[Any]]] = {}
    for name, codes in _CHARTS.items():
        by_time = by_chart[name]
        times = sorted(by_time)
        data: dict[str, list[Any]] = {"t": times}
        for code in codes:
            data[code] = [by_time[t].get(code) for t in times]
        out[name] = data
    return out, bucket


@dataclass(frozen=True, slots=True)
class Kpis:
    bp7_systolic: float | None
    bp7_diastolic: float | None
    bp7_n: int
    tir_percent: float | None
    tir_below: float | None
    tir_above: float | None
    glucose_n: int
    weight_last: float | None
    weight_change_1d: float | None
    weight_change_7d: float | None


async def kpis(conn: Conn, patient_id: uuid.UUID, since: datetime, now: datetime) -> Kpis:
    lo, hi = GLUCOSE_TARGET
    async with conn.pipeline():  # the three reads in one round trip
        await generic_plans(conn)
        bp_cur = await conn.execute(
            "SELECT avg(value) FILTER (WHERE code = 'systolic') AS sys,"
            " avg(value) FILTER (WHERE code = 'diastolic') AS dia,"
            " count(*) FILTER (WHERE code = 'systolic') AS n"
            " FROM readings WHERE patient_id = %s AND code IN ('systolic', 'diastolic')"
            " AND time >= %s AND time <= %s AND NOT flags && %s::text[]",
            (patient_id, now - timedelta(days=7), now, NOT_PATIENT_DATA),
        )
        g_cur = await conn.execute(
            "SELECT count(*) AS n, count(*) FILTER (WHERE value BETWEEN %s AND %s) AS inr,"
            " count(*) FILTER (WHERE value < %s) AS below,"
            " count(*) FILTER (WHERE value > %s) AS above"
            " FROM readings WHERE patient_id = %s AND code = 'glucose' AND time >= %s"
            " AND NOT flags && %s::text[]",
            (lo, hi, lo, hi, patient_id, since, NOT_PATIENT_DATA),
        )
        w_cur = await conn.execute(
            "WITH last AS (SELECT time, value FROM readings WHERE patient_id = %(p)s"
            "   AND code = 'body_weight' AND NOT flags && %(x)s::text[]"
            "   ORDER BY time DESC LIMIT 1)"
            " SELECT last.value AS last,"
            " (SELECT value FROM readings r WHERE r.patient_id = %(p)s AND r.code = 'body_weight'"
            "   AND NOT r.flags && %(x)s::text[] AND r.time <= last.time - interval '20 hours'"
            "   AND r.time >= last.time - interval '48 hours' ORDER BY r.time DESC LIMIT 1) AS d1,"
            " (SELECT value FROM readings r WHERE r.patient_id = %(p)s AND r.code = 'body_weight'"
            "   AND NOT r.flags && %(x)s::text[]"
            "   AND r.time <= last.time - interval '6 days 20 hours'"
            "   AND r.time >= last.time - interval '9 days' ORDER BY r.time DESC LIMIT 1) AS d7"
            " FROM last",
            {"p": patient_id, "x": NOT_PATIENT_DATA},
        )
    bp = await bp_cur.fetchone()
    assert bp is not None
    g = await g_cur.fetchone()
    assert g is not None
    w = await w_cur.fetchone()
    n_g: int = g["n"]
    last = w["last"] if w else None
    return Kpis(
        bp7_systolic=round(bp["sys"], 1) if bp["sys"] is not None else None,
        bp7_diastolic=round(bp["dia"], 1) if bp["dia"] is not None else None,
        bp7_n=bp["n"],
        tir_percent=round(100.0 * g["inr"] / n_g, 1) if n_g else None,
        tir_below=round(100.0 * g["below"] / n_g, 1) if n_g else None,
        tir_above=round(100.0 * g["above"] / n_g, 1) if n_g else None,
        glucose_n=n_g,
        weight_last=round(last, 2) if last is not None else None,
        weight_change_1d=round(last - w["d1"], 2) if w and w["d1"] is not None else None,
        weight_change_7d=round(last - w["d7"], 2) if w and w["d7"] is not None else None,
    )


async def care_time_this_month(conn: Conn, patient_id: uuid.UUID, timezone: str) -> Row:
    """Minutes of care-management time logged this calendar month (site time zone)."""
    cur = await conn.execute(
        "SELECT coalesce(sum(seconds), 0) / 60.0 AS minutes, count(*) AS entries,"
        " coalesce(bool_or(interactive), false) AS interactive FROM care_time_entries"
        " WHERE patient_id = %s AND started_at >= date_trunc('month', now() AT TIME ZONE %s)"
        " AT TIME ZONE %s",
        (patient_id, timezone, timezone),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


# The values of the listed readings in one scan of the patient's index over the listed time span
# (not a correlated subquery: that started a scan of every chunk in the range per row, 7-15 ms
# for 100 rows of a year; this is ~3 ms).
_READINGS_TABLE = """
WITH listed AS (
    SELECT rr.id, rr.time, rr.type, rr.flags, rr.device_id, rr.gateway_id,
           d.type AS device_type, d.manufacturer, d.model
    FROM reading_receipts rr LEFT JOIN devices d ON d.id = rr.device_id
    WHERE rr.patient_id = %(p)s AND rr.time >= %(since)s ORDER BY rr.time DESC LIMIT %(limit)s
), vals AS (
    SELECT r.reading_id, r.time, jsonb_object_agg(r.code, r.value) AS vals FROM readings r
    WHERE r.patient_id = %(p)s AND r.time >= %(since)s AND r.time >= (SELECT min(time) FROM listed)
      AND r.reading_id IN (SELECT id FROM listed)
    GROUP BY 1, 2
)
SELECT listed.*, vals.vals
FROM listed LEFT JOIN vals ON vals.reading_id = listed.id AND vals.time = listed.time
ORDER BY listed.time DESC
"""


async def readings_table(
    conn: Conn, patient_id: uuid.UUID, since: datetime, limit: int = 100
) -> list[Row]:
    async with conn.pipeline():
        await generic_plans(conn)
        cur = await conn.execute(_READINGS_TABLE, {"p": patient_id, "since": since, "limit": limit})
    return await cur.fetchall()


def _device_status(status: Any, device_id: str) -> dict[str, Any]:
    """The gateway's view of one device (battery, last seen), if its status names it."""
    if not isinstance(status, dict):
        return {}
    for item in status.get("devices") or []:
        if isinstance(item, dict) and item.get("id") == device_id:
            return item
    return {}


async def devices_and_gateways(conn: Conn, patient_id: uuid.UUID) -> tuple[list[Row], list[Row]]:
    cur = await conn.execute(
        "SELECT g.id, g.label, g.online, g.status_at, g.status,"
        " g.status ->> 'software_version' AS software_version"
        " FROM gateway_patients gp JOIN gateways g ON g.id = gp.gateway_id"
        " WHERE gp.patient_id = %s ORDER BY g.id",
        (patient_id,),
    )
    gateways = await cur.fetchall()
    cur = await conn.execute(
        "SELECT a.id AS assignment_id, a.device_id, a.user_index, a.valid_from, a.valid_to,"
        " d.type, d.manufacturer, d.model,"
        " (SELECT max(rr.time) FROM reading_receipts rr WHERE rr.patient_id = a.patient_id"
        "   AND rr.device_id = a.device_id) AS last_reading"
        " FROM device_assignments a JOIN devices d ON d.id = a.device_id"
        " WHERE a.patient_id = %s ORDER BY a.valid_to IS NULL DESC, a.valid_from DESC",
        (patient_id,),
    )
    devices = await cur.fetchall()
    for dev in devices:
        seen: dict[str, Any] = {}
        for gw in gateways:
            seen = _device_status(gw["status"], dev["device_id"]) or seen
        dev["battery"] = seen.get("battery") or seen.get("battery_level")
        dev["gateway_last_seen"] = seen.get("last_seen")
        # the gateway's carebeacon.status/1: the device waits for `carebeacon gateway pair`
        since = seen.get("pairing_required_since")
        dev["pairing_required_since"] = since if isinstance(since, str) else None
    for gw in gateways:
        gw.pop("status", None)
    return devices, gateways
