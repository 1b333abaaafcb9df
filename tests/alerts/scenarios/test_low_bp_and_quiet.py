"""Issue 15, found 5: low BP from systolic/MAP only; one reading pair never opens a crisis and a
hypotension episode together; a quiet period after a resolve with an outcome."""

from __future__ import annotations

import pytest

from tests.alerts.scenarios.build import DAY, HOUR, MIN, T0, Cohort, guideline
from tests.alerts.scenarios.guidelines import AHA_2025_SEVERE, AHA_LOW_BP, ISSUE_QUIET

# (program, systolic, diastolic, hypotension?): two readings 4 h apart
LOW = [
    ("hypertension", 150, 55, False),  # low diastolic alone, wide pulse pressure
    ("heart_failure", 108, 58, False),  # low diastolic alone in HF (MAP 75)
    ("hypertension", 92, 58, False),  # systolic just above 90, MAP 69
    ("hypertension", 88, 58, True),  # systolic below 90
    ("heart_failure", 86, 52, True),  # systolic below 90, MAP 63
]


@pytest.mark.parametrize(("program", "systolic", "diastolic", "low"), LOW)
@guideline(AHA_LOW_BP.quote, AHA_LOW_BP.source)
def test_hypotension_from_systolic_or_map_never_from_a_low_diastolic_alone(
    program: str, systolic: int, diastolic: int, low: bool
) -> None:
    c = Cohort()
    p = c.patient(program)
    c.bp(p, T0, systolic, diastolic)
    c.bp(p, T0 + 4 * HOUR, systolic + 1, diastolic)
    c.bp(p, T0 + 10 * HOUR, systolic, diastolic + 1)
    r = c.replay(until=T0 + DAY)
    assert bool(r.opened(p, "bp_low")) is low, r.show(p)


@guideline(AHA_2025_SEVERE.quote + " " + AHA_LOW_BP.quote, AHA_2025_SEVERE.source)
def test_one_reading_pair_never_opens_crisis_and_hypotension_together() -> None:
    """186/48 confirmed by 184/50: a crisis (systolic >180), and not also hypotension."""
    c = Cohort()
    p = c.patient("hypertension")
    c.bp(p, T0, 186, 48)
    c.bp(p, T0 + 5 * MIN, 184, 50)
    c.bp(p, T0 + 3 * HOUR, 150, 70)
    r = c.replay()
    assert r.opened(p, "bp_crisis"), r.show(p)
    assert not r.opened(p, "bp_low"), r.show(p)


@guideline(ISSUE_QUIET.quote, ISSUE_QUIET.source)
def test_mean_episode_resolved_with_medication_changed_stays_quiet() -> None:
    """A 7-day mean of 142/88 (above home 135/85) opens; the nurse resolves it with
    "medication_changed"; the same readings over the next two days do not reopen it (it
    reopened after 6 h). A confirmed severe reading in that period still notifies."""
    c = Cohort()
    p = c.patient("hypertension")
    for k in range(8):
        c.bp(p, T0 + k * DAY, 142, 88)
        c.bp(p, T0 + k * DAY + 12 * HOUR, 142, 88)
    first = c.replay(until=T0 + 8 * DAY)
    opened = first.opened(p, "bp_mean")
    assert opened, first.show(p)
    resolved_at = T0 + 8 * DAY + HOUR
    c.action(p, resolved_at, "resolve", outcome="medication_changed", note="amlodipine 5 mg")
    for k in range(8, 10):
        c.bp(p, T0 + k * DAY + 2 * HOUR, 142, 88)
        c.bp(p, T0 + k * DAY + 12 * HOUR, 142, 88)
    crisis = T0 + 10 * DAY + 2 * HOUR
    c.bp(p, crisis, 192, 118)
    c.bp(p, crisis + 5 * MIN, 190, 116)
    r = c.replay(until=crisis + 3 * HOUR)
    resolved = [x for x in r.of(p, "bp_mean") if x["event"] != "open" and x.get("outcome")]
    assert resolved, r.show(p)
    assert not r.notified(p, "bp_mean", after=resolved_at, before=crisis), r.show(p)
    assert r.notified(p, "bp_crisis", after=crisis, before=crisis + 30 * MIN), r.show(p)
