"""Issue 15, found 1: acknowledged or snoozed episodes must never swallow a new emergency."""

from __future__ import annotations

from tests.alerts.scenarios.build import DAY, HOUR, MIN, T0, Cohort, guideline
from tests.alerts.scenarios.guidelines import ACOG_767_TIMING, ACOG_PB222_GESTATIONAL, ADA_LEVEL2


@guideline(ACOG_767_TIMING.quote, ACOG_767_TIMING.source)
def test_new_severe_bp_three_days_after_an_acknowledged_crisis_notifies() -> None:
    """A maternal crisis is acknowledged; BP settles; three days later a new confirmed 168/114
    must put the patient in front of a nurse again (new SLA), not only raise a count. A normal
    reading while the crisis is acknowledged stays quiet (the other side)."""
    c = Cohort()
    p = c.patient("maternal_postpartum", delivery_date="2026-02-24")
    c.bp(p, T0, 166, 112)
    c.bp(p, T0 + 5 * MIN, 164, 111)
    c.action(p, T0 + 20 * MIN, "acknowledge", note="called, taking labetalol")
    c.bp(p, T0 + 2 * HOUR, 132, 84)  # treated: below every maternal threshold
    for k in (1, 2):
        c.bp(p, T0 + k * DAY, 128, 82)
        c.bp(p, T0 + k * DAY + 11 * HOUR, 126, 80)
    t = T0 + 3 * DAY
    c.bp(p, t, 168, 114)
    c.bp(p, t + 5 * MIN, 166, 112)
    r = c.replay()
    first = r.notified(p, before=T0 + 30 * MIN)
    assert any(x["severity"] == "critical" for x in first), r.show(p)
    assert not r.clinical_notified(p, after=T0 + 21 * MIN, before=t - MIN), r.show(p)
    again = r.clinical_notified(p, after=t, before=t + 30 * MIN)
    assert any(x["severity"] == "critical" for x in again), r.show(p)


@guideline(ACOG_PB222_GESTATIONAL.quote, ACOG_PB222_GESTATIONAL.source)
def test_acknowledged_crisis_does_not_silence_new_persistent_high_bp() -> None:
    """After an acknowledged maternal crisis has settled, two readings ≥140/90 four hours apart
    (postpartum hypertension by definition) must notify someone, whichever episode carries it;
    two readings of 138/88 (below) must not."""
    for s, d, expect in ((148, 96, True), (138, 88, False)):
        c = Cohort()
        p = c.patient("maternal_postpartum", delivery_date="2026-02-24")
        c.bp(p, T0, 166, 112)
        c.bp(p, T0 + 5 * MIN, 164, 111)
        c.action(p, T0 + 20 * MIN, "acknowledge")
        for k in (1, 2):
            c.bp(p, T0 + k * DAY, 126, 80)
            c.bp(p, T0 + k * DAY + 11 * HOUR, 124, 78)
        t = T0 + 3 * DAY
        c.bp(p, t, s, d)
        c.bp(p, t + 4 * HOUR, s + 2, d - 1)
        r = c.replay(until=t + 6 * HOUR)
        late = r.clinical_notified(p, after=t, before=t + 5 * HOUR)
        assert bool(late) is expect, f"{s}/{d}\n{r.show(p)}"


@guideline(ADA_LEVEL2.quote, ADA_LEVEL2.source)
def test_meter_lo_during_a_snoozed_level1_hypoglycaemia_notifies_at_once() -> None:
    """A level-1 hypoglycaemia (64 mg/dL) is snoozed for two days; another level-1 value (66)
    stays quiet under the snooze, but a meter LO five hours later is worse than level 2 and must
    notify within minutes, not when the snooze ends."""
    c = Cohort()
    p = c.patient("diabetes")
    c.glucose(p, T0, 64)
    c.action(p, T0 + 30 * MIN, "snooze", minutes=2 * 24 * 60)
    c.glucose(p, T0 + 2 * HOUR, 66)
    lo = T0 + 5 * HOUR
    c.glucose(p, lo, None, flags=["result_too_low"])
    c.glucose(p, lo + 6 * HOUR, 118)
    r = c.replay()
    assert r.notified(p, "glucose_low", before=T0 + 5 * MIN), r.show(p)
    assert not r.notified(p, "glucose_low", after=T0 + 31 * MIN, before=lo - MIN), r.show(p)
    urgent = r.notified(p, "glucose_low", after=lo, before=lo + 15 * MIN)
    assert any(x["severity"] in ("high", "critical") for x in urgent), r.show(p)


@guideline(ACOG_767_TIMING.quote, ACOG_767_TIMING.source)
def test_a_snoozed_critical_crisis_still_escalates() -> None:
    """Snooze is not allowed on a critical episode: a snooze request on an unacknowledged
    maternal crisis does not hold its SLA, so it still reaches the next person within the
    30-minute treatment window."""
    c = Cohort()
    p = c.patient("maternal_postpartum", delivery_date="2026-02-24")
    c.bp(p, T0, 170, 112)
    c.bp(p, T0 + 4 * MIN, 168, 114)
    c.action(p, T0 + 10 * MIN, "snooze", minutes=24 * 60)
    c.bp(p, T0 + 3 * HOUR, 150, 98)
    r = c.replay()
    opened = [x for x in r.notified(p) if x["event"] == "open" and x["severity"] == "critical"]
    assert opened, r.show(p)
    t_open = opened[0]["at"]
    again = [
        x
        for x in r.notified(p, after=T0 + 5 * MIN, before=T0 + 35 * MIN)
        if x["event"] != "open" and x["at"] > t_open
    ]
    assert again, r.show(p)
