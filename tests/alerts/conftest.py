"""Fixtures for the alert tests: an async connection to the session's migrated database, and
every live evaluation and replay run through both alert paths (batch prefilter and per
reading) with identical results asserted."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from alerts import _live, _replay
from alerts._batch import per_reading
from alerts._engine import Book, Event
from alerts._model import StoredReading
from alerts._store import EPISODE_COLUMNS


@pytest_asyncio.fixture
async def conn(database: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection whose work is rolled back after the test (autocommit off)."""
    async with await psycopg.AsyncConnection.connect(database) as c:
        yield c
        await c.rollback()


_EPISODES = (
    f"SELECT {', '.join(EPISODE_COLUMNS)} FROM alert_episodes"
    " WHERE patient_id = ANY(%s) ORDER BY id"
)
_EVENTS = (
    "SELECT e.episode_id, e.at, e.kind, e.actor, e.from_state, e.to_state, e.detail"
    " FROM alert_episode_events e JOIN alert_episodes a ON a.id = e.episode_id"
    " WHERE a.patient_id = ANY(%s) ORDER BY e.id"
)


async def _snapshot(
    conn: psycopg.AsyncConnection[Any], patients: list[uuid.UUID]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every episode (all columns, explanation included) and event of these patients."""
    cur = await conn.execute(_EPISODES, (patients,))
    episodes = await cur.fetchall()
    cur = await conn.execute(_EVENTS, (patients,))
    return episodes, await cur.fetchall()


def _trail(book: Book) -> list[tuple[Event, dict[str, Any] | None]]:
    """The book's events of this step (every kind, pending ones included), each with its
    episode's every field as the step left it."""
    return [
        (
            e,
            dataclasses.asdict(book.changed[e.episode_id])
            if e.episode_id in book.changed
            else None,
        )
        for e in book.events
    ]


@pytest.fixture(autouse=True)
def both_paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Each live evaluation runs first on the per-reading path inside a savepoint that is
    rolled back, then on the batch path; each replayed patient runs on both paths. Episodes
    (every column), events and replay lines must be identical. Returns the number of
    comparisons made, per path kind."""
    made = {"live": 0, "replay": 0}
    evaluate = _live._evaluate

    async def dual_evaluate(
        conn: psycopg.AsyncConnection[Any],
        readings: Sequence[StoredReading],
        now: datetime | None,
        *,
        prefilter: bool,
    ) -> None:
        if not prefilter or not readings:
            await evaluate(conn, readings, now, prefilter=prefilter)
            return
        patients = sorted({r.patient_id for r in readings})
        async with conn.transaction(force_rollback=True):
            await evaluate(conn, readings, now, prefilter=False)
            reference = await _snapshot(conn, patients)
        await evaluate(conn, readings, now, prefilter=True)
        assert await _snapshot(conn, patients) == reference, "batch path differs from per reading"
        made["live"] += 1

    replay_patient = _replay._replay_patient
    emit = _replay._emit
    trails: list[list[Any]] = []

    def recording_emit(book: Book, *args: Any) -> Any:
        trails[-1].append(_trail(book))
        return emit(book, *args)

    def dual_replay_patient(*args: Any) -> list[dict[str, Any]]:
        trails.append([])
        with per_reading():
            reference = replay_patient(*args)
        reference_trail = trails.pop()
        trails.append([])
        out = replay_patient(*args)
        assert trails.pop() == reference_trail, "batch path's episodes or events differ"
        assert out == reference, "batch path's replay lines differ from per reading"
        made["replay"] += 1
        return out

    monkeypatch.setattr(_live, "_evaluate", dual_evaluate)
    monkeypatch.setattr(_replay, "_replay_patient", dual_replay_patient)
    monkeypatch.setattr(_replay, "_emit", recording_emit)
    return made
