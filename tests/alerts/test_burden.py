"""Alert burden without silence: one item per condition, not one per pass or per review.

Expected values come from the guidelines: 2025 AHA/ACC (home mean ≥135/85 corresponds to
office 140/90; home 145/90 to office 160/100; after a treatment change, follow-up at monthly
intervals until control), HFSA/AHA daily weights (more than 2-3 lb in a day), ESC 2021 (more
than 2 kg in 3 days)."""

from __future__ import annotations

from tests.alerts.scenarios.build import DAY, HOUR, T0, Cohort


def _steady_high_mean(c: Cohort, pid: str, days: int, s: float = 140, d: float = 88) -> None:
    """Morning and evening home readings above the home mean limit (135/85) but below the
    N-of-M level of home 145/90."""
    for k in range(days):
        c.bp(pid, T0 + k * DAY, s, d - 1)
        c.bp(pid, T0 + k * DAY + 12 * HOUR, s - 2, d - 2)


def test_a_stable_mean_resolved_each_week_is_not_a_new_item_every_week() -> None:
    # weekly review calls resolve it; the AHA/ACC follow-up for the same level is monthly
    c = Cohort()
    p = c.patient("hypertension")
    _steady_high_mean(c, p, 60)
    for week in range(1, 9):
        c.action(p, T0 + 7 * week * DAY + 10 * HOUR, "resolve", outcome="contacted_no_change")
    r = c.replay(until=T0 + 60 * DAY)
    opened = r.opened(p, "bp_mean")
    assert 1 < len(opened) <= 3, r.show(p)  # about once a month, not every week
    assert all(x["notify"] for x in opened), r.show(p)  # and each one is in front of a person


def test_the_mean_opens_nothing_while_a_high_bp_episode_speaks_for_it() -> None:
    c = Cohort()
    p = c.patient("hypertension")
    _steady_high_mean(c, p, 10, s=150, d=96)  # N of M home readings ≥145/90: bp_high
    r = c.replay(until=T0 + 10 * DAY)
    assert r.opened(p, "bp_high"), r.show(p)
    assert not r.opened(p, "bp_mean"), r.show(p)


def test_a_review_call_does_not_resolve_an_item_held_in_its_quiet_period() -> None:
    # held items are in no queue: the nurse's call cannot close them; when the quiet period
    # ends the lasting high BP is back in front of a person
    c = Cohort()
    p = c.patient("hypertension")
    _steady_high_mean(c, p, 30, s=150, d=96)
    c.action(p, T0 + 3 * DAY, "resolve", outcome="medication_changed", note="dose up")
    c.action(p, T0 + 10 * DAY, "resolve", outcome="contacted_no_change", note="weekly call")
    r = c.replay(until=T0 + 30 * DAY)
    opens = r.opened(p, "bp_high")
    assert [x["notify"] for x in opens] == [True, False], r.show(p)
    held = [x for x in r.of(p, "bp_high") if x["id"] == opens[1]["id"]]
    assert not [x for x in held if x["event"] == "clear" and x["at"] < (T0 + 13 * DAY).isoformat()]
    assert r.notified(p, "bp_high", after=T0 + 10 * DAY, before=T0 + 14 * DAY), r.show(p)


def test_a_crisis_still_notifies_inside_every_quiet_period() -> None:
    c = Cohort()
    p = c.patient("hypertension")
    _steady_high_mean(c, p, 12, s=150, d=96)
    c.action(p, T0 + 3 * DAY, "resolve", outcome="medication_changed", note="dose up")
    crisis = T0 + 8 * DAY + 3 * HOUR
    c.bp(p, crisis, 192, 118)
    c.bp(p, crisis + 0.1 * HOUR, 190, 116)
    r = c.replay(until=T0 + 12 * DAY)
    assert r.notified(p, "bp_crisis", after=crisis, before=crisis + HOUR), r.show(p)


def test_readings_of_one_session_are_one_occasion_of_high_bp() -> None:
    # ACOG PB 222: hypertension is ≥140/90 on two occasions at least 4 h apart; the AHA/ACC
    # home protocol averages the readings of a session
    c = Cohort()
    p = c.patient("maternal_postpartum", delivery_date="2026-02-25")
    c.bp(p, T0, 146, 94)
    c.bp(p, T0 + 0.05 * HOUR, 144, 93)  # the same session, 3 minutes later
    c.bp(p, T0 + 3 * HOUR, 120, 78)
    assert not c.replay(until=T0 + 4 * HOUR).opened(p, "bp_high")
    c.bp(p, T0 + 5 * HOUR, 145, 92)  # a second occasion, 5 h after the first
    r = c.replay(until=T0 + 6 * HOUR)
    assert r.notified(p, "bp_high", after=T0 + 5 * HOUR, before=T0 + 6 * HOUR), r.show(p)


def test_the_mean_stays_quiet_while_the_high_bp_a_person_just_resolved_is_quiet() -> None:
    # the person handled this BP (home ≥145/90 on 3 occasions): its 7-day mean ≥135/85 is the
    # same condition, not a new one, until the high-BP quiet period ends
    c = Cohort()
    p = c.patient("hypertension")
    _steady_high_mean(c, p, 14, s=150, d=93)  # 150/92, 148/91: ≥145/90, below 155/95
    resolved = T0 + 2 * DAY + 2 * HOUR
    c.action(p, resolved, "resolve", outcome="medication_changed", note="dose up")
    r = c.replay(until=T0 + 14 * DAY)
    assert r.opened(p, "bp_high"), r.show(p)
    assert not r.notified(p, "bp_mean", after=resolved, before=resolved + 10 * DAY), r.show(p)
    assert r.notified(p, "bp_high", after=resolved + 10 * DAY), r.show(p)
