"""Episode transitions for people (the web app): assign/claim, acknowledge, resolve, snooze;
the care-team queue; threshold overrides. Each transition writes its audited event.

Every function is atomic (``conn.transaction()``: a savepoint inside the caller's transaction,
or its own transaction on an idle connection) and returns the episode as it now is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alerts._engine import OUTCOMES, ActionError, Book, Episode, Event
from alerts._metrics import count_event
from alerts._programs import TEMPLATES, Override, ThresholdSet, check_threshold, resolve_thresholds
from alerts._rules import RULES
from alerts._store import (
    EPISODE_COLUMNS,
    episode_from_row,
    load_active_episodes,
    load_contexts,
    lock_patients,
    save_book,
)
from alerts.errors import EpisodeNotFound, InvalidAction, InvalidThreshold, InvalidTransition

__all__ = [
    "ThresholdChange",
    "acknowledge",
    "assign",
    "effective_thresholds",
    "episode_events",
    "get_episode",
    "list_queue",
    "patient_episodes",
    "resolve",
    "set_threshold",
    "snooze",
    "threshold_history",
]

_COLS = ", ".join(EPISODE_COLUMNS)
_RULE_IDS = frozenset(RULES)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


async def get_episode(conn: psycopg.AsyncConnection[Any], episode_id: uuid.UUID) -> Episode:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLS} FROM alert_episodes WHERE id = %s", (episode_id,))
        row = await cur.fetchone()
    if row is None:
        raise EpisodeNotFound(episode_id)
    return episode_from_row(row)


async def _transition(
    conn: psycopg.AsyncConnection[Any],
    episode_id: uuid.UUID,
    action: str,
    allowed: tuple[str, ...],
    change: Callable[[Book, Episode], None],
    at: datetime,
) -> Episode:
    async with conn.transaction():
        first = await get_episode(conn, episode_id)
        await lock_patients(conn, [first.patient_id])
        active = await load_active_episodes(conn, [first.patient_id])
        contexts = await load_contexts(conn, [first.patient_id], at)
        book = Book.of(active.get(first.patient_id, ()), ctx=contexts.get(first.patient_id))
        ep = book.active.get(first.key)
        if ep is None or ep.id != episode_id:
            ep = await get_episode(conn, episode_id)  # resolved meanwhile
        if ep.state not in allowed:
            raise InvalidTransition(episode_id, ep.state, action)
        try:
            change(book, ep)
        except ActionError as exc:
            raise InvalidAction(episode_id, ep.state, action, exc.field, exc.detail) from exc
        events = await save_book(conn, [book])
    for e in events:
        count_event(e.kind, ep.rule_id, ep.severity.label, _RULE_IDS)
    return ep


async def assign(
    conn: psycopg.AsyncConnection[Any],
    episode_id: uuid.UUID,
    assignee: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> Episode:
    """Assign an active episode to ``assignee`` (claim: ``assignee == actor``)."""
    at = _now(now)
    if not assignee:
        raise InvalidAction(episode_id, "?", "assign", "assignee", "an assignee is required")

    def change(book: Book, ep: Episode) -> None:
        book.claim(ep, at, assignee, actor)

    return await _transition(
        conn, episode_id, "assign", ("pending", "open", "acknowledged"), change, at
    )


async def acknowledge(
    conn: psycopg.AsyncConnection[Any],
    episode_id: uuid.UUID,
    *,
    actor: str,
    note: str | None = None,
    now: datetime | None = None,
) -> Episode:
    """open (or pending) → acknowledged: stops SLA escalation; assigns to ``actor`` if
    nobody has it yet. A later new emergency re-notifies (``renotified``)."""
    at = _now(now)

    def change(book: Book, ep: Episode) -> None:
        book.acknowledge(ep, at, actor, note)

    return await _transition(conn, episode_id, "acknowledge", ("pending", "open"), change, at)


async def resolve(
    conn: psycopg.AsyncConnection[Any],
    episode_id: uuid.UUID,
    *,
    actor: str,
    outcome: str | None,
    note: str | None = None,
    now: datetime | None = None,
) -> Episode:
    """Any active state → resolved with an outcome people choose (``alerts.PERSON_OUTCOMES``;
    ``auto_cleared``/``not_confirmed`` are the system's) and a note, required for a critical
    episode (:class:`InvalidAction` names the field). Resolving releases the episodes it
    suppressed, and starts the family's quiet period (``alerts.QUIET``)."""
    at = _now(now)
    if not outcome or outcome not in OUTCOMES:
        detail = "an outcome is required" if not outcome else f"unknown outcome {outcome!r}"
        raise InvalidAction(episode_id, "?", "resolve", "outcome", detail)

    def change(book: Book, ep: Episode) -> None:
        book.resolve_by(ep, at, actor, outcome, note)

    return await _transition(
        conn, episode_id, "resolve", ("pending", "open", "acknowledged"), change, at
    )


async def snooze(
    conn: psycopg.AsyncConnection[Any],
    episode_id: uuid.UUID,
    *,
    actor: str,
    reason: str,
    until: datetime,
    now: datetime | None = None,
) -> Episode:
    """Hide an open/acknowledged episode from the queue and hold its SLA until ``until``:
    at most ``alerts.SNOOZE_MAX`` for its severity; never a critical episode. A new emergency
    or a rise in severity ends the snooze at once."""
    at = _now(now)
    if not reason:
        raise InvalidAction(episode_id, "?", "snooze", "reason", "a reason is required")
    if until <= at:
        raise InvalidAction(episode_id, "?", "snooze", "until", "until must be in the future")

    def change(book: Book, ep: Episode) -> None:
        book.snooze(ep, at, actor, reason, until)

    return await _transition(conn, episode_id, "snooze", ("open", "acknowledged"), change, at)


async def list_queue(
    conn: psycopg.AsyncConnection[Any],
    *,
    site_id: str,
    program_id: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
    queue: str = "clinical",
) -> list[Episode]:
    """The visible episodes of a care team's queue (site, and program if given): open or
    acknowledged, not suppressed, not snoozed; most urgent first. ``queue``: ``clinical``
    (default) or ``technical`` (device health)."""
    at = _now(now)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""
            SELECT {_COLS} FROM alert_episodes
            WHERE site_id = %(site)s AND (%(program)s::text IS NULL OR program_id = %(program)s)
              AND queue = %(queue)s AND state IN ('open', 'acknowledged') AND suppressed_by IS NULL
              AND (snoozed_until IS NULL OR snoozed_until <= %(now)s)
            ORDER BY priority, sla_due_at NULLS LAST, opened_at
            LIMIT %(limit)s
            """,
            {"site": site_id, "program": program_id, "now": at, "limit": limit, "queue": queue},
        )
        return [episode_from_row(r) for r in await cur.fetchall()]


async def patient_episodes(
    conn: psycopg.AsyncConnection[Any], patient_id: uuid.UUID, *, limit: int = 50
) -> list[Episode]:
    """A patient's episodes, newest first (any state): the history beside the trend view."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLS} FROM alert_episodes WHERE patient_id = %s"
            " ORDER BY opened_at DESC, created_at DESC LIMIT %s",
            (patient_id, limit),
        )
        return [episode_from_row(r) for r in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class ThresholdChange:
    """One stored override version (row of ``alert_thresholds``)."""

    id: int
    scope: str
    program_id: str | None
    site_id: str | None
    patient_id: uuid.UUID | None
    parameter: str
    value: float | None
    version: int
    valid_from: datetime
    valid_until: datetime | None
    ordered_by: str
    reason: str
    created_at: datetime


async def threshold_history(
    conn: psycopg.AsyncConnection[Any], patient_id: uuid.UUID
) -> list[ThresholdChange]:
    """Every override version that applies or applied to a patient (their own, their site's,
    their programs'), newest first."""
    async with conn.cursor() as cur:
        await cur.execute(
            """
            SELECT t.id, t.scope, t.program_id, t.site_id, t.patient_id, t.parameter, t.value,
                   t.version, t.valid_from, t.valid_until, t.ordered_by, t.reason, t.created_at
            FROM alert_thresholds t
            WHERE t.patient_id = %(p)s
               OR (t.scope = 'site' AND t.site_id IN (
                       SELECT site_id FROM patients WHERE id = %(p)s
                       UNION SELECT site_id FROM enrollments WHERE patient_id = %(p)s)
                   AND (t.program_id IS NULL OR t.program_id IN (
                       SELECT program_id FROM enrollments WHERE patient_id = %(p)s)))
               OR (t.scope = 'program' AND t.program_id IN (
                       SELECT program_id FROM enrollments WHERE patient_id = %(p)s))
            ORDER BY t.created_at DESC, t.id DESC
            """,
            {"p": patient_id},
        )
        return [ThresholdChange(*row) for row in await cur.fetchall()]


async def episode_events(conn: psycopg.AsyncConnection[Any], episode_id: uuid.UUID) -> list[Event]:
    """The audit trail of one episode, oldest first."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT episode_id, at, kind, actor, from_state, to_state, detail"
            " FROM alert_episode_events WHERE episode_id = %s ORDER BY at, id",
            (episode_id,),
        )
        return [Event(*row) for row in await cur.fetchall()]


def _known_parameter(parameter: str) -> bool:
    rule_id, _, name = parameter.partition(".")
    if rule_id not in RULES:
        return False
    if name == "enabled":
        return True
    return any(name in t.get(rule_id, {}) for t in TEMPLATES.values())


async def set_threshold(
    conn: psycopg.AsyncConnection[Any],
    *,
    scope: str,
    parameter: str,
    value: float | None,
    ordered_by: str,
    reason: str,
    valid_from: datetime,
    valid_until: datetime | None = None,
    program_id: str | None = None,
    site_id: str | None = None,
    patient_id: uuid.UUID | None = None,
) -> int:
    """Record a new version of a threshold override (append-only); returns its id.

    ``scope`` is ``program`` (give ``program_id``), ``site`` (``site_id``, optionally
    ``program_id``) or ``patient`` (``patient_id``). ``parameter`` is ``"<rule id>.<name>"``
    (see ``alerts.TEMPLATES``) or ``"<rule id>.enabled"`` (0/1); ``value=None`` reverts to
    the inherited value. Who ordered it, why, and the validity window are required data. A
    value outside the parameter's physiological range, or one that breaks the rule's structure
    (a crisis at or below its clear band, diastolic above systolic, …) raises
    :class:`InvalidThreshold` naming the parameter.
    """
    if scope not in ("program", "site", "patient"):
        raise InvalidThreshold(parameter, f"unknown scope {scope!r}")
    if not _known_parameter(parameter):
        raise InvalidThreshold(parameter, "unknown rule or parameter")
    if not ordered_by or not reason:
        raise InvalidThreshold(parameter, "ordered_by and reason are required")
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidThreshold(parameter, "valid_until must be after valid_from")
    if scope == "program" and (program_id is None or site_id or patient_id):
        raise InvalidThreshold(parameter, "program scope needs program_id only")
    if scope == "site" and (site_id is None or patient_id):
        raise InvalidThreshold(parameter, "site scope needs site_id (and optionally program_id)")
    if scope == "patient" and (patient_id is None or site_id or program_id):
        raise InvalidThreshold(parameter, "patient scope needs patient_id only")
    # physiological range and the rule's own structure, against the values it would join
    if patient_id is not None:
        current = await effective_thresholds(conn, patient_id, at=valid_from)
        check_threshold(parameter, value, current)
    else:
        check_threshold(parameter, value, template=program_id)
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('alert_thresholds'))",
        )
        await cur.execute(
            """
            INSERT INTO alert_thresholds (scope, program_id, site_id, patient_id, parameter,
                value, version, valid_from, valid_until, ordered_by, reason)
            SELECT %(scope)s, %(program)s, %(site)s, %(patient)s, %(parameter)s, %(value)s,
                   coalesce(max(version), 0) + 1, %(from)s, %(until)s, %(by)s, %(reason)s
            FROM alert_thresholds
            WHERE scope = %(scope)s AND program_id IS NOT DISTINCT FROM %(program)s
              AND site_id IS NOT DISTINCT FROM %(site)s
              AND patient_id IS NOT DISTINCT FROM %(patient)s AND parameter = %(parameter)s
            RETURNING id
            """,
            {
                "scope": scope,
                "program": program_id,
                "site": site_id,
                "patient": patient_id,
                "parameter": parameter,
                "value": value,
                "from": valid_from,
                "until": valid_until,
                "by": ordered_by,
                "reason": reason,
            },
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def effective_thresholds(
    conn: psycopg.AsyncConnection[Any], patient_id: uuid.UUID, *, at: datetime | None = None
) -> ThresholdSet:
    """The thresholds the rules use for a patient at ``at`` (default now), with sources."""
    contexts = await load_contexts(conn, [patient_id], _now(at))
    ctx = contexts.get(patient_id)
    if ctx is None:
        return resolve_thresholds("general", "general", list[Override]())
    return ctx.thresholds
