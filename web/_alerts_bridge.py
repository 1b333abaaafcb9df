"""What web/ reads from alerts/ for display: the effective thresholds (chart lines), their
history, and a patient's episodes. Thresholds are alerts/'s (``effective_thresholds``); the
history and episode lists are plain reads of its tables, newest first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import alerts
from web._db import Conn, Row, alerts_conn

__all__ = ["ChartThresholds", "chart_thresholds", "episode_history", "threshold_history"]


@dataclass(frozen=True, slots=True)
class ChartThresholds:
    systolic_high: float | None = None
    diastolic_high: float | None = None
    systolic_low: float | None = None
    glucose_low: float | None = None
    glucose_high: float | None = None
    source: str = ""


def _pick(ts: alerts.ThresholdSet, *candidates: tuple[str, str]) -> float | None:
    now = datetime.now(UTC)
    for rule_id, name in candidates:
        params = ts.rule_at(rule_id, now) if rule_id in ts.values else None
        if rule_id in ts.enabled and params is not None and name in params:
            return params[name].value
    return None


async def chart_thresholds(conn: Conn, patient_id: uuid.UUID) -> ChartThresholds:
    async with alerts_conn(conn) as aconn:
        ts = await alerts.effective_thresholds(aconn, patient_id)
    return ChartThresholds(
        systolic_high=_pick(ts, ("bp_high", "level1_systolic"), ("bp_mean_7d", "systolic")),
        diastolic_high=_pick(ts, ("bp_high", "level1_diastolic"), ("bp_mean_7d", "diastolic")),
        systolic_low=_pick(ts, ("bp_low", "level1_systolic")),
        glucose_low=_pick(ts, ("glucose_low", "level1")),
        glucose_high=None,
        source=f"program {ts.program} ({ts.template} template)"
        + (", with overrides" if ts.overridden else ""),
    )


async def threshold_history(conn: Conn, patient_id: uuid.UUID) -> list[Row]:
    cur = await conn.execute(
        "SELECT t.id, t.scope, t.parameter, t.value, t.version, t.valid_from, t.valid_until,"
        " t.ordered_by, t.reason, t.created_at FROM alert_thresholds t, patients p"
        " WHERE p.id = %(p)s AND (t.patient_id = %(p)s"
        "  OR (t.scope = 'site' AND t.site_id = p.site_id)"
        "  OR (t.scope = 'program' AND t.program_id IN"
        "      (SELECT program_id FROM enrollments WHERE patient_id = %(p)s)))"
        " ORDER BY t.created_at DESC, t.id DESC LIMIT 100",
        {"p": patient_id},
    )
    return await cur.fetchall()


async def episode_history(conn: Conn, patient_id: uuid.UUID, limit: int = 50) -> list[Row]:
    cur = await conn.execute(
        "SELECT id, rule_id, family, state, severity, priority, opened_at, explanation,"
        " outcome, note, resolved_at, resolved_by, assignee FROM alert_episodes"
        " WHERE patient_id = %s ORDER BY opened_at DESC LIMIT %s",
        (patient_id, limit),
    )
    return await cur.fetchall()
