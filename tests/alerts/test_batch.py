"""The batch prefilter (``alerts._batch``): a patient it settles is one the per-reading engine
would not change, and every live evaluation and replay here runs through both paths (the
``both_paths`` fixture in conftest.py asserts identical episodes, events and explanations)."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

import alerts
from alerts import TEMPLATES, StoredReading
from alerts._batch import quiet_mask, settled
from lab.cohort import generate
from tests.support.alerts import T0, Sim, bp, glucose, make_patient, reading, store, weight

Conn = psycopg.AsyncConnection[Any]
HOUR = timedelta(hours=1)

_FLAGS = st.sampled_from(
    [
        "irregular_pulse",
        "body_movement",
        "cuff_loose",
        "control_solution",
        "result_too_high",
        "result_too_low",
        "device_clock_reset",
        "device_clock_unset",
        "glucose_positive_infinity",
        "systolic_nan",
        "made_up_flag",
    ]
)
# around and across the limits of every template (and values no device should send)
_VALUE = st.one_of(
    st.floats(min_value=20, max_value=350, allow_nan=False),
    st.sampled_from(
        [
            *(math.nan, math.inf, -math.inf, 5.0, 54.0, 65.0, 70.0, 80.0, 90.0, 95.0, 110.0),
            *(140.0, 145.0, 155.0, 160.0, 180.0, 181.0, 251.0, 301.0, 650.0),
        ]
    ),
)
_CODES = {
    "blood_pressure": ("systolic", "diastolic", "mean_arterial"),
    "glucose": ("glucose",),
    "body_weight": ("body_weight",),
    "symptom": ("severe_headache",),
}


@st.composite
def _reading(draw: st.DrawFn, patient: uuid.UUID, hours: float) -> StoredReading:
    type_ = draw(st.sampled_from(sorted(_CODES)))
    codes = draw(st.lists(st.sampled_from(_CODES[type_]), unique=True, max_size=3))
    return reading(
        patient,
        type_,
        T0 + timedelta(hours=hours),
        {c: draw(_VALUE) for c in codes},
        flags=draw(st.lists(_FLAGS, max_size=2)),
        device=draw(st.sampled_from(["dev-1", "dev-2"])),
    )


@settings(max_examples=300, deadline=None)
@given(
    template=st.sampled_from(sorted(TEMPLATES)),
    data=st.data(),
    steps=st.integers(1, 30),
)
def test_a_settled_patient_is_one_the_engine_would_not_change(
    template: str, data: st.DataObject, steps: int
) -> None:
    """Whatever came before, when the prefilter settles a new batch of a patient, the
    per-reading engine changes nothing: no episode, no event."""
    sim = Sim(template)
    for k in range(steps):
        batch = [
            data.draw(_reading(sim.patient, k * 5 + j * 0.1))
            for j in range(data.draw(st.integers(1, 3)))
        ]
        quiet = bool(quiet_mask(batch, [sim.ctx] * len(batch)).all()) and settled(
            sim.ctx, sim.book.active.values(), {r.type for r in batch}
        )
        events = len(sim.all_events)
        sim.feed(batch)
        if quiet:
            assert len(sim.all_events) == events
            assert not sim.book.changed


def test_quiet_means_inside_every_threshold_and_no_flag_that_speaks() -> None:
    """What a hypertension patient's readings are, one by one, against the guideline limits:
    normal BP (2025 AHA/ACC: below 130/80) is quiet; a severe value (>180/>120), a home BP at or
    above 145/90 (bp_high level 1), a systolic below 90 or MAP below 65 (hypotension), a reset
    device clock (a technical item after two) are not. A heart-failure weight always needs its
    history (a gain is measured against earlier days)."""
    sim = Sim("hypertension")
    pid = sim.patient
    cases = [
        (bp(pid, T0, 118, 76), True),
        (bp(pid, T0, 128, 79, flags=["irregular_pulse"]), True),
        (bp(pid, T0, 181, 100), False),
        (bp(pid, T0, 150, 80), False),
        (bp(pid, T0, 130, 92), False),
        (bp(pid, T0, 88, 60), False),
        (bp(pid, T0, 95, 48), False),  # MAP (95 + 2·48)/3 ≈ 63.7 < 65
        (bp(pid, T0, 120, 78, flags=["device_clock_reset"]), False),
    ]
    mask = quiet_mask([r for r, _ in cases], [sim.ctx] * len(cases))
    assert mask.tolist() == [q for _, q in cases]
    hf = Sim("heart_failure")
    assert quiet_mask([weight(hf.patient, T0, 80.0)], [hf.ctx]).tolist() == [False]
    diabetes = Sim("diabetes")
    # ADA: level 1 hypoglycaemia below 70 mg/dL; >250 twice in 24 h; meter HI
    glucoses = [
        glucose(diabetes.patient, T0, 110.0),
        glucose(diabetes.patient, T0, 65.0),
        glucose(diabetes.patient, T0, 260.0),
        glucose(diabetes.patient, T0, None, flags=["result_too_high"]),
    ]
    assert quiet_mask(glucoses, [diabetes.ctx] * 4).tolist() == [True, False, False, False]


def test_an_episode_its_rules_speak_for_or_a_running_timer_unsettles_the_patient() -> None:
    sim = Sim("hypertension")
    assert settled(sim.ctx, sim.book.active.values(), {"blood_pressure"})
    sim.bp(T0, 186, 104)  # a crisis value waiting for its re-measure (15 min)
    assert not settled(sim.ctx, sim.book.active.values(), {"blood_pressure"})
    assert not settled(sim.ctx, sim.book.active.values(), {"glucose"})  # its deadline runs


def _settled_total() -> float:
    return REGISTRY.get_sample_value("carebeacon_alert_readings_settled_total") or 0.0


@pytest.mark.db
async def test_live_batch_settles_the_quiet_patients_and_evaluates_the_rest(
    conn: Conn, both_paths: dict[str, int]
) -> None:
    """A batch of ten hypertension patients, two of them with a persistently high BP: the
    eight normal ones are settled in bulk, the two get their episodes, and both paths agree."""
    high = [await make_patient(conn, "hypertension") for _ in range(2)]
    normal = [await make_patient(conn, "hypertension") for _ in range(8)]
    # three occasions at least 4 h apart at or above home 145/90 (2025 AHA/ACC)
    for k in range(3):
        at = T0 + k * 5 * HOUR
        batch = [bp(p, at, 158, 96) for p in high] + [bp(p, at, 122, 78) for p in normal]
        before = _settled_total()
        await store(conn, batch, now=at + timedelta(minutes=1))
        assert _settled_total() - before == len(normal)
    assert both_paths["live"] == 3
    cur = await conn.execute(
        "SELECT patient_id, family, state FROM alert_episodes WHERE patient_id = ANY(%s)",
        (high + normal,),
    )
    assert sorted(await cur.fetchall()) == sorted((p, "bp_high", "open") for p in high)


def test_a_generated_cohort_replays_the_same_on_both_paths(both_paths: dict[str, int]) -> None:
    cohort = generate(n_patients=25, days=30, seed=11)
    lines = alerts.replay(cohort)
    assert lines  # the cohort's labelled events open episodes
    assert both_paths["replay"] == len(cohort["patients"])


@pytest.mark.db
async def test_a_late_reading_reads_the_whole_window_as_before(
    conn: Conn, both_paths: dict[str, int]
) -> None:
    """The batch path reads a short history first; a reading whose rules look further back
    (here a late reading, measured five days before it arrived, behind eighteen newer ones
    and next to a current high one) reads what the per-reading path reads: with the two high readings before it, three
    occasions at or above 145/90 (2025 AHA/ACC home values; ACOG PB 222: occasions 4 h apart)."""
    pid = await make_patient(conn, "hypertension")
    day = timedelta(days=1)
    old = [bp(pid, T0 - 6 * day, 152, 95), bp(pid, T0 - 5.5 * day, 151, 94)]
    recent = [bp(pid, T0 - 3 * day + k * 4 * HOUR, 121, 76) for k in range(18)]
    await store(conn, old + recent, now=T0 - day)
    late = bp(pid, T0 - 5 * day, 150, 95, received_at=T0)
    await store(conn, [late, bp(pid, T0, 150, 95)], now=T0 + timedelta(minutes=1))
    cur = await conn.execute(
        "SELECT family, late, count FROM alert_episodes WHERE patient_id = %s", (pid,)
    )
    assert await cur.fetchall() == [("bp_high", True, 1)]
    assert both_paths["live"] == 2


@pytest.mark.db
async def test_long_histories_read_the_same_on_both_paths(
    conn: Conn, both_paths: dict[str, int]
) -> None:
    """Weeks of readings several times a day (more than the batch path's first read) for a
    high-BP, a heart-failure and a diabetes patient: every batch gives the same episodes."""
    bp_pid = await make_patient(conn, "hypertension")
    hf = await make_patient(conn, "heart_failure")
    dm = await make_patient(conn, "diabetes")
    start = T0 - timedelta(days=14)
    history = (
        [bp(bp_pid, start + k * 6 * HOUR, 150 + k % 7, 92) for k in range(56)]
        + [weight(hf, start + k * 12 * HOUR, 80.0 + 0.15 * k) for k in range(28)]
        + [glucose(dm, start + k * 4 * HOUR, 180.0 + (k % 9) * 15) for k in range(84)]
    )
    await store(conn, history, now=T0 - timedelta(minutes=30))
    batch = [
        bp(bp_pid, T0, 158, 97),
        bp(bp_pid, T0 + timedelta(minutes=3), 154, 95),
        weight(hf, T0, 85.2),
        glucose(dm, T0, 320.0),
        glucose(dm, T0 - timedelta(hours=30), 310.0, received_at=T0),
    ]
    await store(conn, batch, now=T0 + timedelta(minutes=5))
    assert both_paths["live"] == 2
