"""Per-patient threshold overrides (clinicians and admins) through alerts/'s versioned,
append-only ``set_threshold``; and the effective values with their sources.

Wherever a threshold is shown it carries its effective value, the version that set it and that
version's validity window; an override whose window has not started yet is *scheduled*, never
shown as active. Errors name the request field at fault (422)."""

from __future__ import annotations

import html
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from pydantic import BaseModel, Field

import alerts
from web._access import Detail, PatientRef, patient_access
from web._alerts_bridge import threshold_history
from web._auth import require
from web._db import Row, alerts_conn
from web._field_errors import field_error
from web._principal import Principal, Role
from web._state import app_state

__all__ = ["render_thresholds", "router", "threshold_status", "threshold_view"]

router = APIRouter(prefix="/api", tags=["thresholds"])
CLINICAL = require(Role.CLINICIAN, Role.ADMIN)
ANY = require()


class OverrideIn(BaseModel):
    parameter: Annotated[str, Field(examples=["bp_high.level1_systolic"], max_length=100)]
    value: float | None = Field(description="null: back to the inherited value")
    reason: Annotated[str, Field(min_length=1, max_length=1000)]
    valid_from: datetime | None = None
    valid_until: datetime | None = None


def threshold_status(row: Mapping[str, Any], active_ids: frozenset[int], now: datetime) -> str:
    """``scheduled`` (its window has not started), ``expired`` (its window ended), ``active``
    (a value the rules use now) or ``superseded`` (a later version or scope wins)."""
    valid_from, valid_until = row.get("valid_from"), row.get("valid_until")
    if valid_from is not None and valid_from > now:
        return "scheduled"
    if valid_until is not None and valid_until <= now:
        return "expired"
    return "active" if row.get("id") in active_ids else "superseded"


def _known_parameter(parameter: str) -> bool:
    rule_id, _, name = parameter.partition(".")
    if rule_id not in alerts.RULES or not name:
        return False
    return name == "enabled" or any(name in t.get(rule_id, {}) for t in alerts.TEMPLATES.values())


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def threshold_view(
    ts: alerts.ThresholdSet, history: Sequence[Row], now: datetime
) -> dict[str, Any]:
    """Effective values (value, source, version, validity window) and the history, each
    version with its status at ``now``."""
    by_id = {int(h["id"]): h for h in history}
    effective: dict[str, dict[str, Any]] = {}
    active_ids: set[int] = set()
    for rule in sorted(ts.values):
        params = ts.rule_at(rule, now)  # a postpartum window may have ended
        if params is None:
            continue
        out: dict[str, Any] = {}
        for name, v in sorted(params.items()):
            row = by_id.get(v.version_id) if v.version_id is not None else None
            if v.version_id is not None:
                active_ids.add(v.version_id)
            out[name] = {
                "value": v.value,
                "source": v.source,
                "scope": v.scope,
                "version_id": v.version_id,
                "version": v.version,
                "valid_from": _iso(row["valid_from"]) if row else None,
                "valid_until": _iso(row["valid_until"]) if row else None,
            }
        effective[rule] = out
    active = frozenset(active_ids)
    return {
        "program": ts.program,
        "template": ts.template,
        "enabled": sorted(ts.enabled),
        "as_of": now.isoformat(),
        "effective": effective,
        "history": [{**h, "status": threshold_status(h, active, now)} for h in history],
    }


async def _read(request: Request, patient_id: uuid.UUID) -> dict[str, Any]:
    now = datetime.now(UTC)
    async with app_state(request).pool.connection() as conn:
        async with alerts_conn(conn) as aconn:
            ts = await alerts.effective_thresholds(aconn, patient_id, at=now)
        history = await threshold_history(conn, patient_id)
    return threshold_view(ts, history, now)


async def _override_detail(body: OverrideIn) -> Detail:
    """The request is checked before the patient is loaded; the audit row names its parameter."""
    for name, t in (("valid_from", body.valid_from), ("valid_until", body.valid_until)):
        if t is not None and t.tzinfo is None:
            raise field_error(name, "timestamps need an offset")
    if body.valid_from and body.valid_until and body.valid_until <= body.valid_from:
        raise field_error("valid_until", "the validity window ends before it starts")
    if not _known_parameter(body.parameter):
        raise field_error("parameter", "no such rule parameter")
    return {"parameter": body.parameter}


@router.get("/patients/{patient_id}/thresholds", summary="Effective thresholds and history")
async def get_thresholds(
    request: Request,
    patient: Annotated[PatientRef, Depends(patient_access("api read thresholds", ANY))],
) -> dict[str, Any]:
    return await _read(request, patient.id)


@router.post(
    "/patients/{patient_id}/thresholds",
    status_code=201,
    summary="Order a per-patient threshold override (clinician, admin)",
)
async def set_override(
    request: Request,
    body: OverrideIn,
    principal: Annotated[Principal, Depends(CLINICAL)],
    patient: Annotated[
        PatientRef, Depends(patient_access("set threshold", CLINICAL, detail=_override_detail))
    ],
) -> dict[str, Any]:
    async with app_state(request).pool.connection() as conn, alerts_conn(conn) as aconn:
        try:
            version_id = await alerts.set_threshold(
                aconn,
                scope="patient",
                parameter=body.parameter,
                value=body.value,
                ordered_by=principal.username,
                reason=body.reason,
                valid_from=body.valid_from or datetime.now(UTC),
                valid_until=body.valid_until,
                patient_id=patient.id,
            )
        except alerts.InvalidThreshold as exc:
            field = "parameter" if not _known_parameter(exc.parameter) else "value"
            raise field_error(field, exc.detail) from None
    return {
        "id": version_id,
        "parameter": body.parameter,
        "value": body.value,
        "valid_from": _iso(body.valid_from),
        "valid_until": _iso(body.valid_until),
    }


def _when(value: str | None, empty: str) -> str:
    return html.escape(value[:16].replace("T", " ")) if value else empty


def render_thresholds(view: Mapping[str, Any]) -> Markup:
    """The patient page's threshold panel: each effective value with its version and validity
    window, then the overrides by status (scheduled ones listed apart, never as active)."""
    e = html.escape
    rows = []
    for rule, params in view["effective"].items():
        for name, v in params.items():
            version = e(v["source"])
            window = (
                f"{_when(v['valid_from'], 'always')} → {_when(v['valid_until'], 'open-ended')}"
                if v["version_id"] is not None
                else "template default"
            )
            rows.append(
                f'<tr data-parameter="{e(rule)}.{e(name)}"><td>{e(rule)}.{e(name)}</td>'
                f"<td>{v['value']:g}</td><td>{version}</td><td>{window}</td></tr>"
            )
    out = [
        '<table class="thresholds-effective"><thead><tr><th>Parameter</th><th>Effective value'
        "</th><th>Version</th><th>Valid</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
    ]
    labels = {
        "scheduled": "Scheduled (not active yet)",
        "active": "Active overrides",
        "superseded": "Superseded",
        "expired": "Expired",
    }
    for status_, label in labels.items():
        items = [h for h in view["history"] if h["status"] == status_]
        if not items:
            continue
        out.append(
            f'<h3>{label}</h3><table class="thresholds-{status_}"><thead><tr><th>Parameter</th>'
            "<th>Value</th><th>Version</th><th>Valid</th><th>By</th><th>Reason</th></tr>"
            "</thead><tbody>"
        )
        for h in items:
            value = "inherited" if h["value"] is None else f"{h['value']:g}"
            window = (
                f"{_when(_iso(h['valid_from']), 'always')} → "
                f"{_when(_iso(h['valid_until']), 'open-ended')}"
            )
            out.append(
                f'<tr data-status="{status_}"><td>{e(h["parameter"])}</td><td>{value}</td>'
                f"<td>{e(h['scope'])} #{h['id']} v{h['version']}</td><td>{window}</td>"
                f"<td>{e(h['ordered_by'] or '')}</td><td>{e(h['reason'] or '')}</td></tr>"
            )
        out.append("</tbody></table>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above


@router.get(
    "/patients/{patient_id}/thresholds.html", response_class=HTMLResponse, include_in_schema=False
)
async def thresholds_panel(
    request: Request,
    patient: Annotated[PatientRef, Depends(patient_access("view thresholds", ANY))],
) -> HTMLResponse:
    """The patient page's threshold panel (loaded by htmx into the page)."""
    view = await _read(request, patient.id)
    return HTMLResponse(render_thresholds(view), headers={"Cache-Control": "no-store"})
