"""Episode lifecycle for people, audited; queues; versioned thresholds in the database."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from alerts import (
    EpisodeNotFound,
    InvalidThreshold,
    InvalidTransition,
    acknowledge,
    assign,
    effective_thresholds,
    episode_events,
    get_episode,
    list_queue,
    patient_episodes,
    resolve,
    set_threshold,
    snooze,
    threshold_history,
)
from tests.support.alerts import T0, bp, glucose, make_patient, store, weight

pytestmark = pytest.mark.db

Conn = psycopg.AsyncConnection[Any]
MIN = timedelta(minutes=1)


async def _episode_id(conn: Conn, patient: uuid.UUID, family: str) -> uuid.UUID:
    cur = await conn.execute(
        "SELECT id FROM alert_episodes WHERE patient_id = %s AND family = %s"
        " ORDER BY created_at DESC LIMIT 1",
        (patient, family),
    )
    row = await cur.fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


async def _crisis(conn: Conn, site: str = "site-a") -> tuple[uuid.UUID, uuid.UUID]:
    pid = await make_patient(conn, "hypertension", site=site)
    await store(conn, [bp(pid, T0, 190, 112), bp(pid, T0 + 4 * MIN, 188, 110)], now=T0 + 5 * MIN)
    return pid, await _episode_id(conn, pid, "bp_crisis")


async def test_claim_acknowledge_resolve_with_audit_trail(conn: Conn) -> None:
    _, eid = await _crisis(conn)
    ep = await assign(conn, eid, "cm.alice", actor="cm.alice", now=T0 + 6 * MIN)
    assert ep.assignee == "cm.alice"
    ep = await acknowledge(conn, eid, actor="cm.alice", note="calling", now=T0 + 7 * MIN)
    assert ep.state == "acknowledged"
    assert ep.acknowledged_by == "cm.alice"
    ep = await resolve(
        conn,
        eid,
        actor="cm.alice",
        outcome="referred_to_ed",
        note="headache, sent to ED",
        now=T0 + 20 * MIN,
    )
    assert ep.state == "resolved"
    assert (ep.outcome, ep.note, ep.resolved_by) == (
        "referred_to_ed",
        "headache, sent to ED",
        "cm.alice",
    )
    trail = await episode_events(conn, eid)
    assert [(e.kind, e.actor, e.from_state, e.to_state) for e in trail] == [
        ("pending", "system", None, "pending"),
        ("opened", "system", "pending", "open"),
        ("assigned", "cm.alice", "open", "open"),
        ("acknowledged", "cm.alice", "open", "acknowledged"),
        ("resolved", "cm.alice", "acknowledged", "resolved"),
    ]
    assert (await get_episode(conn, eid)).state == "resolved"


async def test_created_records_the_state_the_episode_is_created_in(conn: Conn) -> None:
    """Issue 17, finding 8: a rule that never waits for a re-measure creates an open episode,
    and its trail says so (no ``pending`` it never was); a crisis value waiting for its
    re-measure (2025 AHA/ACC: severe hypertension confirmed by a repeat) is pending."""
    hour = timedelta(hours=1)
    pid = await make_patient(conn, "hypertension")
    # home readings at or above 145/90 on three occasions at least 4 h apart: persistent high
    # BP (2025 AHA/ACC corresponding home values; ACOG PB 222 counts occasions 4 h apart)
    for k in range(3):
        await store(conn, [bp(pid, T0 + k * 5 * hour, 152, 94)], now=T0 + k * 5 * hour + MIN)
    trail = await episode_events(conn, await _episode_id(conn, pid, "bp_high"))
    assert [(e.kind, e.from_state, e.to_state) for e in trail] == [
        ("created", None, "open"),
        ("opened", "open", "open"),
    ]
    # an open crisis speaks for a high BP created under it: created open, suppressed, opened
    crisis_pid, _ = await _crisis(conn)
    for k in range(3):
        at = T0 + (k + 1) * 5 * hour
        await store(conn, [bp(crisis_pid, at, 172, 106)], now=at + MIN)
    trail = await episode_events(conn, await _episode_id(conn, crisis_pid, "bp_high"))
    assert [(e.kind, e.from_state, e.to_state) for e in trail] == [
        ("created", None, "open"),
        ("suppressed", "open", "open"),
        ("opened", "open", "open"),
    ]
    single = await make_patient(conn, "hypertension")
    await store(conn, [bp(single, T0, 188, 104)], now=T0 + MIN)
    trail = await episode_events(conn, await _episode_id(conn, single, "bp_crisis"))
    assert [(e.kind, e.from_state, e.to_state) for e in trail] == [("pending", None, "pending")]


async def test_invalid_transitions_raise_with_data(conn: Conn) -> None:
    _, eid = await _crisis(conn)
    # a critical episode needs a note to resolve (issue 15, item 9)
    await resolve(
        conn, eid, actor="cm", outcome="false_positive", note="cuff on sleeve", now=T0 + 10 * MIN
    )
    with pytest.raises(InvalidTransition) as info:
        await acknowledge(conn, eid, actor="cm", now=T0 + 11 * MIN)
    assert (info.value.state, info.value.action) == ("resolved", "acknowledge")
    with pytest.raises(InvalidTransition):
        await resolve(conn, eid, actor="cm", outcome="no_such_outcome")
    with pytest.raises(EpisodeNotFound):
        await get_episode(conn, uuid.uuid4())


async def test_snooze_hides_from_queue_and_holds_sla(conn: Conn) -> None:
    # A critical episode cannot be snoozed (issue 15, item 1): the snooze test uses a level-1
    # hypoglycaemia (moderate), whose snooze may last up to 72 h.
    site = "site-snooze"
    pid = await make_patient(conn, "diabetes", site=site)
    await store(conn, [glucose(pid, T0, 65.0)], now=T0 + MIN)
    eid = await _episode_id(conn, pid, "glucose_low")
    queue = await list_queue(conn, site_id=site, now=T0 + 6 * MIN)
    assert [e.id for e in queue] == [eid]
    until = T0 + 2 * timedelta(hours=1)
    ep = await snooze(
        conn, eid, actor="cm", reason="patient re-measuring", until=until, now=T0 + 6 * MIN
    )
    assert ep.sla_due_at == until + timedelta(hours=24)  # priority 3: 24 h to acknowledge
    assert await list_queue(conn, site_id=site, now=T0 + 7 * MIN) == []
    assert [e.id for e in await list_queue(conn, site_id=site, now=until)] == [eid]
    with pytest.raises(InvalidTransition):
        await snooze(conn, eid, actor="cm", reason="", until=until, now=T0)


async def test_queue_priority_order_and_suppression(conn: Conn) -> None:
    site = "site-queue"
    low = await make_patient(conn, "diabetes", site=site, risk_tier=3)
    await store(conn, [glucose(low, T0, 65.0)], now=T0 + MIN)
    pid = await make_patient(conn, "hypertension", site=site)
    lesser = [bp(pid, T0 - timedelta(hours=12 * k), 166, 96) for k in range(3, 0, -1)]
    await store(conn, lesser, now=T0)
    queue = await list_queue(conn, site_id=site, now=T0 + 2 * MIN)
    assert [e.family for e in queue] == ["bp_high", "glucose_low"]
    await store(
        conn, [bp(pid, T0 + MIN, 195, 115), bp(pid, T0 + 3 * MIN, 192, 112)], now=T0 + 4 * MIN
    )
    queue = await list_queue(conn, site_id=site, now=T0 + 5 * MIN)
    assert [(e.family, e.priority) for e in queue] == [("bp_crisis", 1), ("glucose_low", 4)]
    crisis = queue[0].id
    await resolve(
        conn,
        crisis,
        actor="np",
        outcome="medication_changed",
        note="labetalol started",  # a critical episode needs a note (issue 15, item 9)
        now=T0 + 30 * MIN,
    )
    queue = await list_queue(conn, site_id=site, now=T0 + 31 * MIN)
    assert [e.family for e in queue] == ["bp_high", "glucose_low"]
    high = await _episode_id(conn, pid, "bp_high")
    kinds = [e.kind for e in await episode_events(conn, high)]
    # released by the resolve: back in front of a person with a fresh SLA (issue 15, item 1)
    assert kinds[-3:] == ["suppressed", "unsuppressed", "renotified"]


async def test_threshold_versions_are_inherited_and_recorded(conn: Conn) -> None:
    pid = await make_patient(conn, "heart_failure", site="site-th")
    base = await effective_thresholds(conn, pid, at=T0)
    assert base.rule("weight_gain_7d")["kg"].scope == "template"
    await set_threshold(
        conn,
        scope="site",
        site_id="site-th",
        parameter="weight_gain_7d.kg",
        value=2.0,
        ordered_by="Dr Site",
        reason="site protocol",
        valid_from=T0 - timedelta(days=10),
    )
    v1 = await set_threshold(
        conn,
        scope="patient",
        patient_id=pid,
        parameter="weight_gain_7d.kg",
        value=1.5,
        ordered_by="Dr Heart",
        reason="recent admission",
        valid_from=T0 - timedelta(days=10),
        valid_until=T0 + timedelta(days=30),
    )
    v2 = await set_threshold(
        conn,
        scope="patient",
        patient_id=pid,
        parameter="weight_gain_7d.kg",
        value=1.8,
        ordered_by="Dr Heart",
        reason="diuretic adjusted",
        valid_from=T0 - timedelta(days=1),
    )
    now = await effective_thresholds(conn, pid, at=T0)
    value = now.rule("weight_gain_7d")["kg"]
    assert (value.value, value.version_id, value.version, value.ordered_by) == (
        1.8,
        v2,
        2,
        "Dr Heart",
    )
    later = await effective_thresholds(conn, pid, at=T0 + timedelta(days=60))
    assert later.rule("weight_gain_7d")["kg"].value == 1.8  # v2 has no end
    earlier = await effective_thresholds(conn, pid, at=T0 - timedelta(days=5))
    assert earlier.rule("weight_gain_7d")["kg"].version_id == v1
    with pytest.raises(InvalidThreshold):
        await set_threshold(
            conn,
            scope="patient",
            patient_id=pid,
            parameter="weight_gain_7d.nonsense",
            value=1.0,
            ordered_by="x",
            reason="y",
            valid_from=T0,
        )
    await store(
        conn, [weight(pid, T0 - timedelta(days=5), 80.0), weight(pid, T0, 81.9)], now=T0 + MIN
    )
    ep = await get_episode(conn, await _episode_id(conn, pid, "weight_gain"))
    assert ep.threshold_version == f"heart_failure@2026.12+#{v2}"
    assert "patient threshold (override" in ep.explanation
    assert ep.thresholds["kg"] == 1.8


async def test_patient_history_and_threshold_history(conn: Conn) -> None:
    pid, eid = await _crisis(conn, site="site-hist")
    await set_threshold(
        conn,
        scope="patient",
        patient_id=pid,
        parameter="bp_crisis.systolic",
        value=175.0,
        ordered_by="Dr Hist",
        reason="post-stroke target",
        valid_from=T0,
    )
    await set_threshold(
        conn,
        scope="program",
        program_id="hypertension-prog",
        parameter="bp_mean_7d.systolic",
        value=130.0,
        ordered_by="Program lead",
        reason="stricter target",
        valid_from=T0,
    )
    episodes = await patient_episodes(conn, pid)
    assert [e.id for e in episodes] == [eid]
    history = await threshold_history(conn, pid)
    assert [(h.scope, h.parameter, h.value, h.version) for h in history] == [
        ("program", "bp_mean_7d.systolic", 130.0, 1),
        ("patient", "bp_crisis.systolic", 175.0, 1),
    ]


async def test_second_enrollment_adds_its_rules(conn: Conn) -> None:
    pid = await make_patient(conn, "heart_failure", site="site-multi")
    await conn.execute(
        "INSERT INTO programs (id, name, template) VALUES ('diabetes-prog', 'd', 'diabetes')"
        " ON CONFLICT DO NOTHING"
    )
    await conn.execute(
        "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at, consent_given_at)"
        " VALUES (%s, 'diabetes-prog', 'site-multi', %s, %s)",
        (pid, T0 - timedelta(days=60), T0 - timedelta(days=60)),
    )
    thresholds = await effective_thresholds(conn, pid, at=T0)
    assert thresholds.template == "heart_failure"  # the latest enrollment routes the queue
    assert {"weight_gain_7d", "glucose_low", "glucose_high_2d"} <= thresholds.enabled
    await store(conn, [glucose(pid, T0, 51.0)], now=T0 + MIN)
    ep = await get_episode(conn, await _episode_id(conn, pid, "glucose_low"))
    assert ep.program_id == "heart_failure-prog"
