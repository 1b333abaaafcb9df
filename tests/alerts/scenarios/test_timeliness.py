"""Issue 15, found 3: late but still urgent; same-day for level-2 hypoglycaemia at every tier;
a critical maternal episode reaches the on-call clinician inside ACOG's window."""

from __future__ import annotations

import pytest

from tests.alerts.scenarios.build import DAY, HOUR, MIN, T0, Cohort, guideline
from tests.alerts.scenarios.guidelines import (
    ACOG_767_TIMING,
    ADA_LEVEL1,
    ADA_LEVEL2,
    ADA_METER_RANGE,
    AHA_2025_SEVERE,
)


@guideline(ACOG_767_TIMING.quote, ACOG_767_TIMING.source)
def test_confirmed_maternal_crisis_measured_7h_ago_is_urgent_when_it_arrives() -> None:
    """168/114 measured 7 h before it arrived, its repeat in a later batch: still a confirmed
    severe-range BP, priority 1, and the text says how late it is — not "no re-measure came"."""
    c = Cohort()
    p = c.patient("maternal_postpartum", delivery_date="2026-02-24")
    t = T0
    c.bp(p, t, 168, 114, received=t + 7 * HOUR)
    c.bp(p, t + 5 * MIN, 166, 112, received=t + 7 * HOUR + 10 * MIN)
    c.bp(p, t + 9 * HOUR, 134, 86)
    r = c.replay()
    urgent = [
        x
        for x in r.notified(p, before=t + 7 * HOUR + 15 * MIN)
        if x["severity"] == "critical" and x["priority"] == 1
    ]
    assert urgent, r.show(p)
    text = " ".join(str(x["explanation"]) for x in r.of(p))
    assert "no re-measure came" not in text, r.show(p)
    assert "7 h" in str(urgent[-1]["explanation"]), r.show(p)


@guideline(ACOG_767_TIMING.quote, ACOG_767_TIMING.source)
def test_severe_bp_measured_days_before_it_arrived_is_informational() -> None:
    """Past the clinical relevance window (a severe BP stays urgent for hours, not days) the
    same pair arriving five days late no longer pages as an emergency."""
    c = Cohort()
    p = c.patient("maternal_postpartum", delivery_date="2026-02-24")
    c.bp(p, T0, 168, 114, received=T0 + 5 * DAY)
    c.bp(p, T0 + 5 * MIN, 166, 112, received=T0 + 5 * DAY)
    c.bp(p, T0 + 5 * DAY + HOUR, 128, 82)
    r = c.replay()
    assert r.of(p), "the late pair is still recorded\n" + r.show(p)
    assert not [x for x in r.notified(p) if x["priority"] <= 2], r.show(p)


@pytest.mark.parametrize("late", [2 * HOUR, 3 * DAY])
@guideline(AHA_2025_SEVERE.quote, AHA_2025_SEVERE.source)
def test_a_backlog_with_two_severe_readings_then_normal_ones_keeps_the_crisis(late: object) -> None:
    """A gateway's backlog arrives at once: 186/122, 182/119 half an hour later, then normal
    readings. Taken in clinical order, the later normal readings are no re-measure within the
    window: the severe readings open an episode (urgent when recent, informational when days
    late) instead of closing silently as "not confirmed"."""
    assert isinstance(late, type(HOUR))
    c = Cohort()
    p = c.patient("hypertension")
    arrived = T0 + 2 * HOUR + late
    for k, (sys_, dia) in enumerate([(186, 122), (182, 119), (122, 78), (118, 76)]):
        c.bp(p, T0 + k * 30 * MIN, sys_, dia, received=arrived)
    r = c.replay(until=arrived + HOUR)
    crisis = [x for x in r.opened(p) if x["severity"] == "critical"]
    assert crisis, r.show(p)
    urgent = [x for x in r.notified(p) if x["priority"] == 1]
    if late <= 2 * HOUR:
        assert urgent, r.show(p)
    else:
        assert not urgent, r.show(p)


# (mg/dL, expected severity) on both sides of ADA's 70 and 54
HYPO = [(70, None), (69, "moderate"), (54, "moderate"), (53, "high"), (52, "high")]


@pytest.mark.parametrize(("mg_dl", "severity"), HYPO)
@guideline(ADA_LEVEL1.quote + " " + ADA_LEVEL2.quote, ADA_LEVEL2.source)
def test_hypoglycaemia_levels_and_level2_same_day_for_risk_tier_3(
    mg_dl: int, severity: str | None
) -> None:
    """Level 2 (<54 mg/dL) is same-day (priority 1-2) even at risk tier 3; level 1 (<70,
    ≥54) is a moderate finding; 70 is not hypoglycaemia."""
    c = Cohort()
    p = c.patient("diabetes", risk_tier=3)
    c.glucose(p, T0, mg_dl)
    c.glucose(p, T0 + 3 * HOUR, 112)
    r = c.replay()
    lines = r.of(p, "glucose_low")
    if severity is None:
        assert not lines, r.show(p)
        return
    opened = r.notified(p, "glucose_low", before=T0 + 5 * MIN)
    assert opened, r.show(p)
    assert opened[0]["severity"] == severity, r.show(p)
    if severity == "high":
        assert opened[0]["priority"] <= 2, r.show(p)


@guideline(ADA_METER_RANGE.quote, ADA_METER_RANGE.source)
def test_meter_lo_is_same_day_for_risk_tier_3() -> None:
    c = Cohort()
    p = c.patient("diabetes", risk_tier=3)
    c.glucose(p, T0, None, flags=["result_too_low"])
    c.glucose(p, T0 + 3 * HOUR, 104)
    r = c.replay()
    opened = r.notified(p, "glucose_low", before=T0 + 5 * MIN)
    assert opened, r.show(p)
    assert opened[0]["priority"] <= 2, r.show(p)


@guideline(ACOG_767_TIMING.quote, ACOG_767_TIMING.source)
def test_unacknowledged_critical_maternal_crisis_escalates_within_30_minutes() -> None:
    """Nobody acknowledges a confirmed maternal crisis: it is put in front of the next person
    (up to the on-call clinician) within 30 minutes of opening, not after 60."""
    c = Cohort()
    p = c.patient("maternal_postpartum", delivery_date="2026-02-24")
    c.bp(p, T0, 172, 112)
    c.bp(p, T0 + 4 * MIN, 170, 114)
    c.bp(p, T0 + 4 * HOUR, 146, 94)
    r = c.replay()
    opens = [x for x in r.notified(p) if x["event"] == "open" and x["severity"] == "critical"]
    assert opens, r.show(p)
    escalations = [
        x
        for x in r.notified(p, after=T0 + 5 * MIN, before=T0 + 4 * MIN + 30 * MIN)
        if x["event"] != "open"
    ]
    assert escalations, r.show(p)
