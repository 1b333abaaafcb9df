"""The care manager's queue: open episodes of my sites by priority then due time, live updates
over server-sent events, and the episode transitions (claim, acknowledge, resolve, snooze)
— as HTML fragments (htmx) and as the JSON API. The transitions are alerts/'s functions;
this module only checks who may call them and on which site.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from markupsafe import Markup
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

import alerts
from web._access import Detail, PatientRef, check_patient_access, patient_access
from web._audit import audit
from web._auth import require
from web._care_time import insert_time_entry
from web._db import Conn, alerts_conn
from web._field_errors import field_error, field_error_text
from web._paging import MAX_OFFSET
from web._principal import Principal, Role
from web._schemas import EpisodeDetail, EpisodeOut, EpisodeSummary, PageOf
from web._state import app_state

__all__ = ["PERSON_OUTCOMES", "SYSTEM_OUTCOMES", "QueueNotifier", "queue_rows", "router"]

logger = logging.getLogger(__name__)
router = APIRouter()
WORKERS = require(Role.CARE_MANAGER, Role.CLINICIAN, Role.SUPERVISOR)
ANY = require()
QUEUE_LIMIT = 5000
POLL_SECONDS = 1.0
OVERLAP = timedelta(seconds=30)  # a transaction may commit a little after its updated_at
KEEPALIVE_SECONDS = 15.0
# Outcomes alerts/ records when it closes an episode itself (the value cleared, the crisis was
# not confirmed): a person never chooses them, so they are neither offered nor accepted here.
SYSTEM_OUTCOMES = frozenset({"auto_cleared", "not_confirmed"})
PERSON_OUTCOMES: tuple[str, ...] = tuple(sorted(alerts.OUTCOMES - SYSTEM_OUTCOMES))


# --- live updates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    episode_id: uuid.UUID
    site_id: str | None
    state: str
    escalation_level: int
    updated_at: datetime


class QueueNotifier:
    """One poller per app: reads episodes changed since its cursor and fans them out to the
    SSE subscribers whose sites they belong to. Polling (not LISTEN) keeps alerts/ unchanged."""

    def __init__(self, pool: AsyncConnectionPool[Conn]) -> None:
        self._pool = pool
        self._subscribers: set[tuple[frozenset[str], asyncio.Queue[Change | None]]] = set()
        self._seen: dict[uuid.UUID, datetime] = {}
        self._cursor: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> QueueNotifier:
        self._task = asyncio.create_task(self._run(), name="queue-notifier")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for _, q in list(self._subscribers):
            q.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(self, sites: frozenset[str]) -> AsyncIterator[asyncio.Queue[Change | None]]:
        queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=1000)
        entry = (sites, queue)
        self._subscribers.add(entry)
        try:
            yield queue
        finally:
            self._subscribers.discard(entry)

    async def _poll(self) -> list[Change]:
        async with self._pool.connection() as conn:
            if self._cursor is None:
                cur = await conn.execute("SELECT now() AS now")
                row = await cur.fetchone()
                assert row is not None
                self._cursor = row["now"]
                return []
            cur = await conn.execute(
                "SELECT id, site_id, state, escalation_level, updated_at FROM alert_episodes"
                " WHERE updated_at > %s ORDER BY updated_at LIMIT 2000",
                (self._cursor - OVERLAP,),
            )
            rows = await cur.fetchall()
        changes: list[Change] = []
        for r in rows:
            if self._seen.get(r["id"]) == r["updated_at"]:
                continue
            self._seen[r["id"]] = r["updated_at"]
            changes.append(
                Change(r["id"], r["site_id"], r["state"], r["escalation_level"], r["updated_at"])
            )
            self._cursor = max(self._cursor, r["updated_at"])
        horizon = self._cursor - OVERLAP
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v > horizon}
        return changes

    async def _run(self) -> None:
        while True:
            try:
                changes = await self._poll() if self._subscribers or self._cursor is None else []
                for change in changes:
                    for sites, queue in list(self._subscribers):
                        if change.site_id in sites and not queue.full():
                            queue.put_nowait(change)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("queue notifier poll failed")
            await asyncio.sleep(POLL_SECONDS)


# --- reading the queue -------------------------------------------------------------------------


def sla_state(state: str, priority: int, sla_due_at: datetime | None, now: datetime) -> str:
    if state == "acknowledged":
        return "acknowledged"
    if sla_due_at is None:
        return "none"
    if now >= sla_due_at:
        return "breached"
    if sla_due_at - now <= alerts.SLA[priority] / 4:
        return "due_soon"
    return "on_time"


_SLA_TEXT = {
    "on_time": "on time",
    "due_soon": "due soon",
    "breached": "breached",
    "acknowledged": "acknowledged",
    "none": "no SLA",
}


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60:02d}"
    return f"{minutes // 1440} d"


# alerts/'s ``alert_queue`` view is the definition of what a care team sees (open or
# acknowledged, not suppressed, not snoozed, most urgent first); only the columns shown here
# are read, joined with the patient, site and program names.
_QUEUE_COLS = (
    "id", "patient_id", "family", "rule_id", "state", "severity", "priority", "site_id",
    "program_id", "opened_at", "last_at", "updated_at", "explanation", "sla_due_at",
    "escalation_level", "assignee", "acknowledged_at", "acknowledged_by",
    "display_name", "mrn", "risk_tier", "site_name", "program_name",
)  # fmt: skip
_QUEUE_SQL = """
SELECT q.id::text, q.patient_id::text, q.family, q.rule_id, q.state, q.severity, q.priority,
       q.site_id, q.program_id, q.opened_at, q.last_at, q.updated_at, q.explanation,
       q.sla_due_at, q.escalation_level, q.assignee, q.acknowledged_at, q.acknowledged_by,
       p.display_name, p.mrn, p.risk_tier, s.name AS site_name, pr.name AS program_name
FROM {view} q
JOIN patients p ON p.id = q.patient_id
JOIN sites s ON s.id = p.site_id
LEFT JOIN programs pr ON pr.id = q.program_id
WHERE q.site_id = ANY(%s)
ORDER BY q.priority, q.sla_due_at NULLS LAST, q.opened_at
LIMIT %s
"""
QueueRow = tuple[Any, ...]
#: the clinical queue (what a care team works) and the technical one (device health: clocks,
#: batteries, gateways), each an alerts/ view
Queue = Literal["clinical", "technical"]
_QUEUE_QUERIES: dict[str, str] = {
    "clinical": _QUEUE_SQL.format(view="alert_queue"),
    "technical": _QUEUE_SQL.format(view="alert_technical_queue"),
}


async def queue_rows(
    conn: Conn, principal: Principal, site_id: str | None = None, queue: Queue = "clinical"
) -> list[QueueRow]:
    """My queue: the visible episodes of my sites, by priority then due time (tuples in
    ``_QUEUE_COLS`` order: the page renders thousands of rows)."""
    sites = [site_id] if site_id else sorted(principal.sites)
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(_QUEUE_QUERIES[queue], (sites, QUEUE_LIMIT))
        return await cur.fetchall()


def _row_json(r: QueueRow, now: datetime) -> dict[str, Any]:
    out = dict(zip(_QUEUE_COLS, r, strict=True))
    out["sla_state"] = sla_state(out["state"], out["priority"], out["sla_due_at"], now)
    return out


def _episode_json(ep: alerts.Episode, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "id": str(ep.id),
        "patient_id": str(ep.patient_id),
        "site_id": ep.site_id,
        "program_id": ep.program_id,
        "family": ep.family,
        "rule_id": ep.rule_id,
        "state": ep.state,
        "severity": ep.severity.label,
        "priority": ep.priority,
        "opened_at": ep.opened_at,
        "last_at": ep.last_at,
        "updated_at": ep.updated_at,
        "explanation": ep.explanation,
        "value_code": ep.value_code,
        "worst_value": ep.worst_value,
        "count": ep.count,
        "sla_due_at": ep.sla_due_at,
        "sla_state": sla_state(ep.state, ep.priority, ep.sla_due_at, now),
        "escalation_level": ep.escalation_level,
        "assignee": ep.assignee,
        "acknowledged_at": ep.acknowledged_at,
        "acknowledged_by": ep.acknowledged_by,
        "resolved_at": ep.resolved_at,
        "resolved_by": ep.resolved_by,
        "outcome": ep.outcome,
        "note": ep.note,
        "snoozed_until": ep.snoozed_until,
        "snooze_reason": ep.snooze_reason,
        "threshold_version": ep.threshold_version,
    }


async def _load_episode(
    request: Request, principal: Principal, episode_id: uuid.UUID, action: str
) -> alerts.Episode:
    """The episode, after the site check on its patient (403 + audit when not mine)."""
    async with app_state(request).pool.connection() as conn:
        try:
            async with alerts_conn(conn) as aconn:
                ep = await alerts.get_episode(aconn, episode_id)
        except alerts.EpisodeNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such episode") from None
    await check_patient_access(
        request, principal, ep.patient_id, action, detail={"episode": str(episode_id)}
    )
    return ep


Action = Literal["claim", "acknowledge", "resolve", "snooze"]


async def _transition(
    request: Request,
    principal: Principal,
    episode_id: uuid.UUID,
    action: Action,
    *,
    note: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    until: datetime | None = None,
) -> alerts.Episode:
    ep = await _load_episode(request, principal, episode_id, f"episode {action}")
    _check_arguments(ep, action, note=note, outcome=outcome, reason=reason, until=until)
    actor = principal.username
    async with app_state(request).pool.connection() as pooled, alerts_conn(pooled) as conn:
        try:
            if action == "claim":
                return await alerts.assign(conn, episode_id, actor, actor=actor)
            if action == "acknowledge":
                return await alerts.acknowledge(conn, episode_id, actor=actor, note=note or None)
            if action == "resolve":
                return await alerts.resolve(
                    conn, episode_id, actor=actor, outcome=outcome or "", note=note or None
                )
            assert until is not None  # _check_arguments
            return await alerts.snooze(
                conn, episode_id, actor=actor, reason=reason or "", until=until
            )
        except alerts.EpisodeNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such episode") from None
        except alerts.InvalidTransition as exc:
            # alerts/ names the argument at fault when the arguments (not the state) are wrong
            field = getattr(exc, "field", None)
            if field:
                raise field_error(str(field), exc.detail or str(exc)) from None
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


def _check_arguments(
    ep: alerts.Episode,
    action: Action,
    *,
    note: str | None,
    outcome: str | None,
    reason: str | None,
    until: datetime | None,
) -> None:
    """What a person may ask, before alerts/ judges the state: an outcome chosen by a person
    (never preselected, never a system one), a note to close a critical episode, no snooze on
    a critical one. Raises a 422 naming the field (``field_error``)."""
    critical = ep.severity.label == "critical"
    if action == "resolve":
        if not outcome:
            raise field_error("outcome", "choose the outcome of the episode")
        if outcome not in PERSON_OUTCOMES:
            raise field_error("outcome", "not an outcome a person can record")
        if critical and not (note and note.strip()):
            raise field_error("note", "a note is required to resolve a critical episode")
    elif action == "snooze":
        if critical:
            raise field_error("action", "a critical episode cannot be snoozed", where="path")
        if not (reason and reason.strip()):
            raise field_error("reason", "a reason is required to snooze")
        if until is None:
            raise field_error("until", "snooze needs until")
        if until <= datetime.now(UTC):
            raise field_error("until", "until must be in the future")


# --- HTML --------------------------------------------------------------------------------------


def render_rows(rows: list[QueueRow], can_act: bool) -> Markup:
    """The queue's table rows. Plain f-strings with escaping: a queue of thousands of rows
    renders in a few milliseconds, where the same markup through Jinja took ~100 ms."""
    if not rows:
        return Markup('<tr><td colspan="8" class="muted">Nothing in your queue.</td></tr>')
    now = datetime.now(UTC)
    out: list[str] = []
    for (
        eid, pid, _family, _rule, state, severity, priority, _site, program_id, opened_at,
        _last, _updated, explanation, due, esc_level, assignee, _ack_at, _ack_by,
        name, mrn, tier, site_name, program_name,
    ) in rows:  # fmt: skip
        sla = sla_state(state, priority, due, now)
        due_in = _age(due - now) if due is not None and due > now else ""
        escalated = f' <span class="badge sla-breached">esc {esc_level}</span>' if esc_level else ""
        actions = "<td></td>"
        if can_act:
            buttons = "" if assignee else '<button class="claim">Claim</button>'
            if state == "open":
                buttons += '<button class="ack">Ack</button>'
            snooze = "" if severity == "critical" else '<button class="snooze">Snooze…</button>'
            actions = (
                f'<td class="actions">{buttons}<button class="resolve">Resolve…</button>'
                f'{snooze}<button class="time">Time…</button></td>'
            )
        out.append(
            f'<tr id="ep-{eid}" data-patient="{pid}" data-severity="{_esc(severity)}">'
            f'<td><span class="badge sev-{severity}">P{priority} {severity}</span>{escalated}</td>'
            f'<td><a href="/patients/{pid}">{_esc(name)}</a>'
            f' <span class="muted">{_esc(mrn or "")} T{tier}</span></td>'
            f"<td>{_esc(program_name or program_id or '')}"
            f' <span class="muted">{_esc(site_name)}</span></td>'
            f"<td>{_esc(explanation)}</td><td>{_age(now - opened_at)}</td>"
            f'<td><span class="badge sla-{sla}">{_SLA_TEXT[sla]}</span>'
            f' <span class="muted">{"due in " + due_in if due_in else ""}</span></td>'
            f'<td>{state} <span class="muted">{_esc(assignee or "")}</span></td>'
            f"{actions}</tr>"
        )
    return Markup("\n".join(out))  # noqa: S704 - every interpolated text is escaped above


def _queue_context(
    principal: Principal, rows: list[QueueRow], queue: Queue = "clinical"
) -> dict[str, Any]:
    can_act = principal.role in (Role.CARE_MANAGER, Role.CLINICIAN, Role.SUPERVISOR)
    return {
        "principal": principal,
        "queue": queue,
        "rows_html": render_rows(rows, can_act),
        "count": len(rows),
        "outcomes": PERSON_OUTCOMES,
        "can_act": can_act,
    }


# user id -> (digest of the patient list last written in full, when)
_LAST_LISTED: dict[int, tuple[str, datetime]] = {}
RELIST_AFTER = timedelta(minutes=10)


async def _audit_queue_view(conn: Conn, principal: Principal, rows: list[QueueRow]) -> None:
    """One audit event per view of the queue. The list of patients shown is written in full
    when it differs from the user's previous view (or every 10 minutes); otherwise the event
    names the digest of that same list, so live refreshes of a 2,000-row queue stay small."""
    patients = sorted({r[1] for r in rows})
    digest = hashlib.sha256("\n".join(patients).encode()).hexdigest()[:32]
    now = datetime.now(UTC)
    last = _LAST_LISTED.get(principal.user_id)
    detail: dict[str, object] = {"episodes": len(rows), "patients_digest": digest}
    if last is None or last[0] != digest or now - last[1] > RELIST_AFTER:
        detail["patients"] = patients
        _LAST_LISTED[principal.user_id] = (digest, now)
    else:
        detail["same_patients_as_previous_view"] = True
    await audit(conn, principal, "view queue", detail=detail)


async def _queue_view(
    request: Request, principal: Principal, queue: Queue, template: str
) -> Response:
    state = app_state(request)
    async with state.pool.connection() as conn:
        rows = await queue_rows(conn, principal, queue=queue)
        await _audit_queue_view(conn, principal, rows)
    return state.templates.TemplateResponse(
        request,
        template,
        _queue_context(principal, rows, queue),
        headers={"Cache-Control": "no-store"},
    )


@router.get("/queue", response_class=HTMLResponse, include_in_schema=False)
async def queue_page(
    request: Request, principal: Annotated[Principal, Depends(ANY)], queue: Queue = "clinical"
) -> Response:
    return await _queue_view(request, principal, queue, "queue.html")


@router.get("/queue/rows", response_class=HTMLResponse, include_in_schema=False)
async def queue_fragment(
    request: Request, principal: Annotated[Principal, Depends(ANY)], queue: Queue = "clinical"
) -> Response:
    """The rows alone, for the page's live refresh."""
    return await _queue_view(request, principal, queue, "queue_rows.html")


@router.get("/queue/events", include_in_schema=False)
async def queue_events(request: Request, principal: Annotated[Principal, Depends(ANY)]) -> Response:
    """Server-sent events: ``episode`` when an episode of my sites opens, escalates or moves."""
    notifier: QueueNotifier = app_state(request).extra["notifier"]  # type: ignore[assignment]

    async def stream() -> AsyncIterator[str]:
        async with notifier.subscribe(principal.sites) as queue:
            yield "retry: 3000\n\n"
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if change is None:
                    return
                data = {
                    "id": str(change.episode_id),
                    "state": change.state,
                    "escalation_level": change.escalation_level,
                }
                yield f"event: episode\ndata: {json.dumps(data)}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _row_response(request: Request, principal: Principal, ep: alerts.Episode) -> Response:
    """After an action: the episode's row again (or nothing once it left the queue)."""
    return HTMLResponse(
        f'<tr class="done" id="ep-{ep.id}"><td colspan="8" class="muted">'
        f"Episode {ep.state}{' (snoozed)' if ep.snoozed_until else ''} by {principal.username}."
        "</td></tr>"
    )


@router.post("/queue/episodes/{episode_id}/{action}", include_in_schema=False)
async def queue_action(
    request: Request,
    episode_id: uuid.UUID,
    action: Action,
    principal: Annotated[Principal, Depends(WORKERS)],
    note: Annotated[str | None, Form(max_length=2000)] = None,
    outcome: Annotated[str | None, Form()] = None,
    reason: Annotated[str | None, Form(max_length=500)] = None,
    snooze_hours: Annotated[float | None, Form(gt=0, le=24 * 14)] = None,
) -> Response:
    until = datetime.now(UTC) + timedelta(hours=snooze_hours) if snooze_hours else None
    try:
        ep = await _transition(
            request,
            principal,
            episode_id,
            action,
            note=note,
            outcome=outcome,
            reason=reason,
            until=until,
        )
    except RequestValidationError as exc:  # the dialog shows the text as it is
        return PlainTextResponse(field_error_text(exc), status_code=422)
    if ep.state in ("open", "acknowledged") and not ep.snoozed_until:
        state = app_state(request)
        async with state.pool.connection() as conn:
            rows = [r for r in await queue_rows(conn, principal, ep.site_id) if r[0] == str(ep.id)]
        return state.templates.TemplateResponse(
            request, "queue_rows.html", _queue_context(principal, rows)
        )
    return _row_response(request, principal, ep)


@dataclass(frozen=True, slots=True)
class _TimeForm:
    minutes: float
    interactive: bool
    episode_id: uuid.UUID | None
    note: str | None


async def _time_form(
    minutes: Annotated[float, Form(gt=0, le=240)],
    interactive: Annotated[bool, Form()] = False,
    episode_id: Annotated[uuid.UUID | None, Form()] = None,
    note: Annotated[str | None, Form(max_length=2000)] = None,
) -> _TimeForm:
    return _TimeForm(minutes, interactive, episode_id, note)


async def _form_first(form: Annotated[_TimeForm, Depends(_time_form)]) -> Detail:
    """The form is validated before the patient is loaded (and audited)."""
    return None


@router.post("/queue/patients/{patient_id}/time", include_in_schema=False)
async def queue_log_time(
    request: Request,
    principal: Annotated[Principal, Depends(WORKERS)],
    form: Annotated[_TimeForm, Depends(_time_form)],
    patient: Annotated[
        PatientRef, Depends(patient_access("log care time", WORKERS, detail=_form_first))
    ],
) -> Response:
    minutes, interactive = form.minutes, form.interactive
    async with app_state(request).pool.connection() as conn:
        row = await insert_time_entry(
            conn,
            patient_id=patient.id,
            user_id=principal.user_id,
            started_at=datetime.now(UTC) - timedelta(minutes=minutes),
            minutes=minutes,
            interactive=interactive,
            episode_id=form.episode_id,
            note=form.note,
        )
    live = " incl. live interactive communication" if interactive else ""
    return HTMLResponse(
        f'<span class="muted" id="time-{row["id"]}">Logged {minutes:g} min{live}.</span>'
    )


# --- JSON API ----------------------------------------------------------------------------------


class TransitionIn(BaseModel):
    note: Annotated[str | None, Field(max_length=2000)] = None
    outcome: str | None = Field(
        default=None,
        description="resolve: the outcome a person records (alerts.OUTCOMES except the "
        "system-only auto_cleared and not_confirmed); a note is required for a critical episode",
    )
    reason: Annotated[str | None, Field(max_length=500)] = None
    until: datetime | None = Field(default=None, description="snooze: until when (with offset)")


@router.get(
    "/api/episodes",
    response_model=PageOf[EpisodeSummary],
    tags=["episodes"],
    summary="The queue: open episodes of my sites (clinical, or technical: device health)",
)
async def api_queue(
    request: Request,
    principal: Annotated[Principal, Depends(ANY)],
    queue: Queue = "clinical",
    site_id: str | None = None,
    program_id: str | None = None,
    severity: str | None = None,
    limit: Annotated[int, Query(ge=1, le=QUEUE_LIMIT)] = 200,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    if site_id is not None and site_id not in principal.sites:
        async with app_state(request).pool.connection() as conn:
            await audit(conn, principal, "api queue", outcome="denied", site_id=site_id)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this site of care is not yours")
    now = datetime.now(UTC)
    async with app_state(request).pool.connection() as conn:
        rows = await queue_rows(conn, principal, site_id, queue)
        if program_id is not None:
            rows = [r for r in rows if r[8] == program_id]
        if severity is not None:
            rows = [r for r in rows if r[5] == severity]
        page = rows[offset : offset + limit]
        await _audit_queue_view(conn, principal, page)
    nxt = None
    if offset + limit < len(rows):
        nxt = str(request.url.include_query_params(offset=offset + limit))
    return {
        "items": [_row_json(r, now) for r in page],
        "total": len(rows),
        "limit": limit,
        "offset": offset,
        "next": nxt,
    }


@router.get(
    "/api/episodes/{episode_id}",
    response_model=EpisodeDetail,
    tags=["episodes"],
    summary="An episode and its events",
)
async def api_episode(
    request: Request, episode_id: uuid.UUID, principal: Annotated[Principal, Depends(ANY)]
) -> dict[str, Any]:
    ep = await _load_episode(request, principal, episode_id, "api read episode")
    async with app_state(request).pool.connection() as conn, alerts_conn(conn) as aconn:
        events = await alerts.episode_events(aconn, episode_id)
    return {
        **_episode_json(ep),
        "events": [
            {
                "at": e.at,
                "kind": e.kind,
                "actor": e.actor,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "detail": dict(e.detail),
            }
            for e in events
        ],
    }


@router.post(
    "/api/episodes/{episode_id}/{action}",
    response_model=EpisodeOut,
    tags=["episodes"],
    summary="Claim, acknowledge, resolve (outcome + note) or snooze (reason + until)",
)
async def api_transition(
    request: Request,
    episode_id: uuid.UUID,
    action: Action,
    principal: Annotated[Principal, Depends(WORKERS)],
    body: TransitionIn | None = None,
) -> dict[str, Any]:
    body = body or TransitionIn()
    if body.until is not None and body.until.tzinfo is None:
        raise field_error("until", "until needs a UTC offset")
    ep = await _transition(
        request,
        principal,
        episode_id,
        action,
        note=body.note,
        outcome=body.outcome,
        reason=body.reason,
        until=body.until,
    )
    return _episode_json(ep)
