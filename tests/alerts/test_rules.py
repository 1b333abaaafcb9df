"""Each rule kind on realistic sequences, through the same engine the live path uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts import FAMILIES, RULES, TEMPLATES, Severity
from alerts._engine import Facts, advance, priority_for
from alerts._programs import LB, Override
from tests.support.alerts import T0, Sim, bp, glucose, reading, weight

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def test_every_rule_names_its_source_and_every_template_rule_exists() -> None:
    for rule in RULES.values():
        assert rule.family in FAMILIES
        assert len(rule.description) > 40
    for template, rules in TEMPLATES.items():
        assert set(rules) <= set(RULES), template
    assert "AHA/ACC" in RULES["bp_crisis"].description
    assert "ADA" in RULES["glucose_low"].description
    assert "5 lb" in RULES["weight_gain_7d"].description


# -- confirmation: hypertensive crisis ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sys_", "dia", "pending"),
    # 2025 AHA/ACC: severe hypertension is systolic >180 and/or diastolic >120 (strictly)
    [
        (181, 100, True),
        (180, 100, False),
        (150, 121, True),
        (150, 120, False),
        (180, 120, False),
        (179.9, 119.9, False),
    ],
)
def test_crisis_boundaries(sys_: float, dia: float, pending: bool) -> None:
    sim = Sim("hypertension")
    sim.bp(T0, sys_, dia)
    ep = sim.active("bp_crisis")
    assert (ep is not None and ep.state == "pending") is pending


def test_crisis_confirmed_by_repeat_within_window() -> None:
    sim = Sim("hypertension")
    sim.bp(T0, 186, 104)
    sim.bp(T0 + 5 * MIN, 184, 102)
    ep = sim.active("bp_crisis")
    assert ep.state == "open"
    assert ep.severity is Severity.CRITICAL
    assert ep.priority == 1
    assert ep.count == 2
    assert ep.worst_value == 186
    assert ep.last_value == 184
    assert "confirmed by a repeat of 184/102 within 15 min" in ep.explanation
    assert ep.sla_due_at == T0 + 5 * MIN + timedelta(minutes=30)


def test_crisis_disconfirmed_by_normal_repeat_never_reaches_the_queue() -> None:
    sim = Sim("hypertension")
    sim.bp(T0, 192, 98, flags=["body_movement"])
    sim.bp(T0 + 3 * MIN, 134, 82)
    assert sim.active("bp_crisis") is None
    assert [k for f, k in sim.kinds() if f == "bp_crisis"] == ["pending", "resolved"]
    (ep,) = [e for e in sim.episodes.values() if e.family == "bp_crisis"]
    assert ep.outcome == "not_confirmed"


def test_crisis_without_repeat_opens_at_the_deadline() -> None:
    sim = Sim("hypertension")
    sim.bp(T0, 200, 110)
    assert sim.active("bp_crisis").state == "pending"
    advance(sim.ctx, sim.book, T0 + 16 * MIN, T0 + 16 * MIN)
    ep = sim.active("bp_crisis")
    assert ep.state == "open"
    assert ep.severity is Severity.CRITICAL
    assert "no re-measure came within 15 min" in ep.explanation


def test_crisis_repeat_after_the_window_does_not_confirm() -> None:
    sim = Sim("hypertension")
    sim.bp(T0, 200, 110)
    sim.bp(T0 + 40 * MIN, 130, 80)  # the deadline passed first: opened for no re-measure
    ep = sim.active("bp_crisis")
    assert ep is not None
    assert ep.state == "open"


def test_flagged_crisis_value_is_down_weighted_to_high() -> None:
    sim = Sim("hypertension")
    sim.bp(T0, 196, 100, flags=["cuff_loose"])
    ep = sim.active("bp_crisis")
    assert ep.severity is Severity.HIGH
    assert "cuff_loose" in ep.explanation


def test_unknown_flag_never_hides_a_crisis() -> None:
    sim = Sim("general")
    sim.bp(T0, 210, 125, flags=["some_future_flag"])
    sim.bp(T0 + 4 * MIN, 205, 121)
    assert sim.active("bp_crisis").state == "open"


def test_maternal_severe_range_is_160_110() -> None:
    sim = Sim("maternal_postpartum")
    sim.bp(T0, 160, 96)
    sim.bp(T0 + 5 * MIN, 162, 104)
    assert sim.active("bp_crisis").state == "open"
    other = Sim("hypertension")
    other.bp(T0, 160, 96)
    assert other.active("bp_crisis") is None


def test_clock_reset_crisis_reading_still_counts() -> None:
    sim = Sim("hypertension")
    sim.bp(T0, 188, 100, flags=["device_clock_reset"])
    assert sim.active("bp_crisis").state == "pending"


# -- N of M / persistence ------------------------------------------------------------------------


def test_bp_high_needs_three_of_five() -> None:
    sim = Sim("hypertension")
    # home grades: home 145/90 corresponds to office 160/100 (AHA/ACC corresponding values)
    for k, (s, d) in enumerate([(147, 84), (130, 80), (146, 88), (128, 78)]):
        sim.bp(T0 + k * 12 * HOUR, s, d)
    assert sim.active("bp_high") is None
    sim.bp(T0 + 4 * 12 * HOUR, 138, 90)  # diastolic 90 is the third at level 1
    ep = sim.active("bp_high")
    assert ep.state == "open"
    assert ep.severity is Severity.MODERATE
    assert ep.explanation.startswith("3 of the last 5 blood pressures in 2 days at or above 145/90")


def test_bp_high_cuff_errors_count_half() -> None:
    sim = Sim("hypertension")
    for k in range(3):
        sim.bp(T0 + k * 12 * HOUR, 175, 95, flags=["body_movement"])
    assert sim.active("bp_high") is None  # 1.5 < 3
    sim.bp(T0 + 3 * 12 * HOUR, 170, 95)
    sim.bp(T0 + 4 * 12 * HOUR, 168, 95)
    assert sim.active("bp_high") is not None  # 1 + 1 + 0.5 * 3


def test_bp_high_severity_escalates_within_the_episode_and_clears_with_hysteresis() -> None:
    sim = Sim("hypertension")
    t = T0
    for s in (147, 148, 149):  # home level 1 (145/90), below level 2 (160/100)
        sim.bp(t, s, 86)
        t += 12 * HOUR
    ep = sim.active("bp_high")
    assert ep.severity is Severity.MODERATE
    for s in (162, 164, 166):
        sim.bp(t, s, 90)
        t += 12 * HOUR
    assert ep.severity.label == "high"
    assert ep.count == 4
    assert ("bp_high", "severity_raised") in sim.kinds()
    sim.bp(t, 142, 86)  # below level 1 but not past the band (home 135/85)
    sim.bp(t + 12 * HOUR, 141, 86)
    assert ep.clear_candidate_at is None
    sim.bp(t + 24 * HOUR, 132, 82)
    sim.bp(t + 36 * HOUR, 130, 80)
    assert ep.clear_candidate_at == t + 36 * HOUR
    sim.bp(t + 84 * HOUR, 128, 80)
    # high severity: cleared, but a person closes it
    assert ep.cleared_at == t + 60 * HOUR
    assert ep.state == "open"


def test_hypotension_two_of_three_strictly_below() -> None:
    sim = Sim("heart_failure")
    sim.bp(T0, 90, 60)
    sim.bp(T0 + 12 * HOUR, 90, 60)
    assert sim.active("bp_low") is None
    sim.bp(T0 + 24 * HOUR, 86, 58)
    assert sim.active("bp_low") is None  # one of three
    sim.bp(T0 + 36 * HOUR, 84, 62)
    ep = sim.active("bp_low")
    assert ep.severity is Severity.MODERATE
    assert "below systolic 90 or mean arterial pressure 65 mmHg" in ep.explanation


# -- rolling mean ------------------------------------------------------------------------------


def test_seven_day_mean_needs_twelve_readings_and_runs_periodically() -> None:
    sim = Sim("hypertension")
    for k in range(11):
        sim.bp(T0 + k * 12 * HOUR, 137, 84)
    sim.periodic(T0 + 11 * 12 * HOUR - MIN)
    assert sim.active("bp_mean") is None
    sim.bp(T0 + 11 * 12 * HOUR, 137, 84)
    assert sim.active("bp_mean") is None  # not evaluated on each reading
    sim.periodic(T0 + 11 * 12 * HOUR + MIN)
    ep = sim.active("bp_mean")
    assert ep.severity is Severity.LOW
    assert ep.explanation.startswith("7-day home blood pressure mean 137/84 mmHg from 12 readings")


def test_seven_day_mean_boundary_and_program_target() -> None:
    at_target = Sim("hypertension")
    below = Sim("hypertension")
    diabetes = Sim("diabetes")
    for k in range(12):
        at_target.bp(T0 + k * 12 * HOUR, 135, 80)
        below.bp(T0 + k * 12 * HOUR, 134.9, 84.9)
        diabetes.bp(T0 + k * 12 * HOUR, 131, 78)
    for sim in (at_target, below, diabetes):
        sim.periodic(T0 + 6 * 24 * HOUR)
    assert at_target.active("bp_mean") is not None
    assert below.active("bp_mean") is None
    assert diabetes.active("bp_mean") is not None  # ADA 130/80


def test_clock_reset_readings_do_not_feed_the_mean_but_count_by_arrival() -> None:
    # the 7-day mean needs the days the readings were taken on; N of M readings beyond a level
    # only needs the readings (a cuff with a reset clock still measures), timed on arrival
    sim = Sim("hypertension")
    for k in range(12):
        sim.bp(T0 + k * 12 * HOUR, 150, 84, flags=["device_clock_unset"])
    sim.periodic(T0 + 6 * 24 * HOUR)
    assert sim.active("bp_mean") is None
    assert sim.active("bp_high") is not None  # home ≥145/90 on 3 of 5 (2025 AHA/ACC)
    low = Sim("heart_failure")
    for k in range(4):
        low.bp(T0 + k * 12 * HOUR, 84, 52, flags=["device_clock_reset"])
    assert low.active("bp_low") is not None  # systolic <90 on 2 of 3 in 48 h
    ep = sim.active("device_clock")
    assert ep is not None
    assert ep.severity is Severity.LOW


# -- change over window and slope ---------------------------------------------------------------


def test_weight_gain_week_sentence() -> None:
    sim = Sim("heart_failure")
    start = T0 - 6 * DAY
    series = [81.2, 81.6, 82.0, 82.3, 82.7, 83.1, 83.6]
    for k, kg in enumerate(series):
        sim.feed([weight(sim.patient, start + k * DAY, kg)])
    ep = sim.active("weight_gain")
    assert ep.severity is Severity.HIGH
    assert ep.rule_id == "weight_gain_7d"
    assert ep.explanation == (
        "Weight up 2.4 kg (5.3 lb) in 6 days, from 81.2 to 83.6 kg; "
        "program heart_failure threshold 2.3 kg/7 d"
    )
    assert ep.threshold_version == "heart_failure@2026.12"


@pytest.mark.parametrize(("lb_gain", "fires"), [(2.0, False), (2.05, True)])
def test_weight_gain_day_boundary_in_pounds(lb_gain: float, fires: bool) -> None:
    sim = Sim("heart_failure")
    sim.feed([weight(sim.patient, T0, 180 * LB)])
    sim.feed([weight(sim.patient, T0 + 20 * HOUR, (180 + lb_gain) * LB)])
    assert (sim.active("weight_gain") is not None) is fires


def test_weight_outlier_above_min_of_day_and_clock_reset_ignored() -> None:
    sim = Sim("heart_failure")
    sim.feed([weight(sim.patient, T0, 80.0)])
    sim.feed([weight(sim.patient, T0 + 10 * HOUR, 83.0, flags=["device_clock_reset"])])
    assert sim.active("weight_gain") is None
    sim.feed([weight(sim.patient, T0 + 20 * HOUR, 81.2)])
    assert sim.active("weight_gain").rule_id == "weight_gain_1d"


def test_weight_slope_least_squares_needs_five_readings() -> None:
    sim = Sim("heart_failure")
    kgs = [80.0, 80.3, 80.5, 80.9]
    for k, kg in enumerate(kgs):
        sim.feed([weight(sim.patient, T0 + k * DAY, kg)])
    assert sim.active("weight_gain") is None
    sim.feed([weight(sim.patient, T0 + 4 * DAY, 81.2)])
    ep = sim.active("weight_gain")
    assert ep.rule_id == "weight_trend"
    assert ep.severity is Severity.MODERATE
    assert "0.30 kg/day" in ep.explanation
    assert "from 5 readings (least squares)" in ep.explanation


# -- glucose -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mg_dl", "severity"),
    [(70.0, None), (69.9, Severity.MODERATE), (54.0, Severity.MODERATE), (53.9, Severity.HIGH)],
)
def test_hypoglycemia_levels(mg_dl: float, severity: Severity | None) -> None:
    sim = Sim("diabetes")
    sim.feed([glucose(sim.patient, T0, mg_dl)])
    ep = sim.active("glucose_low")
    assert (ep.severity if ep else None) is severity


@pytest.mark.parametrize(("mmol", "severity"), [(3.0, Severity.MODERATE), (2.9, Severity.HIGH)])
def test_hypoglycemia_from_mmol_per_litre(mmol: float, severity: Severity) -> None:
    sim = Sim("diabetes")
    sim.feed([glucose(sim.patient, T0, mmol * 18.016)])  # devices/ converts once
    ep = sim.active("glucose_low")
    assert ep.severity is severity
    assert f"({mmol:.1f} mmol/L)" in ep.explanation


def test_control_solution_and_meter_lo() -> None:
    sim = Sim("diabetes")
    sim.feed([glucose(sim.patient, T0, 40.0, flags=["control_solution"])])
    sim.feed([glucose(sim.patient, T0 + HOUR, 330.0, flags=["control_solution"])])
    sim.feed([glucose(sim.patient, T0 + 2 * HOUR, 335.0, flags=["control_solution"])])
    assert not sim.book.active
    sim.feed([glucose(sim.patient, T0 + 3 * HOUR, None, flags=["result_too_low", "glucose_nres"])])
    ep = sim.active("glucose_low")
    assert ep.severity is Severity.HIGH
    assert ep.rule_id == "glucose_meter_lo"


def test_glucose_above_250_twice_in_24_hours() -> None:
    sim = Sim("diabetes")
    sim.feed([glucose(sim.patient, T0, 250.0)])
    sim.feed([glucose(sim.patient, T0 + 3 * HOUR, 251.0)])
    assert sim.active("glucose_high") is None
    sim.feed([glucose(sim.patient, T0 + 28 * HOUR, 262.0)])
    assert sim.active("glucose_high") is None  # the 251 is more than 24 h back
    sim.feed([glucose(sim.patient, T0 + 30 * HOUR, 270.0)])
    ep = sim.active("glucose_high")
    assert ep.severity is Severity.MODERATE
    assert "2 times in 2 hours" in ep.explanation


def test_glucose_above_300_on_two_consecutive_days_in_site_time() -> None:
    sim = Sim("diabetes")
    # site-local (UTC here) calendar days: 23:00 and 01:00 the next day are consecutive days
    day1 = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    sim.feed([glucose(sim.patient, day1, 310.0)])
    sim.feed([glucose(sim.patient, day1 + 2 * HOUR, 320.0)])
    ep = sim.active("glucose_high")
    assert ep.severity is Severity.HIGH
    assert ep.rule_id == "glucose_high_2d"


# -- missing data, device health, inhibition -----------------------------------------------------


def test_missing_data_opens_after_n_days_and_clears_on_a_reading() -> None:
    sim = Sim("heart_failure")
    sim.feed([weight(sim.patient, T0, 80.0)])
    facts = Facts(last_reading_at=T0)
    advance(sim.ctx, sim.book, T0 + 47 * HOUR, T0 + 47 * HOUR, facts)
    assert sim.active("missing_data") is None
    advance(sim.ctx, sim.book, T0 + 49 * HOUR, T0 + 49 * HOUR, facts)
    ep = sim.active("missing_data")
    assert ep.opened_at == T0 + 2 * DAY
    assert "No readings for 2.0 days" in ep.explanation
    sim.feed([weight(sim.patient, T0 + 50 * HOUR, 80.1)])
    assert sim.active("missing_data") is None


def test_gateway_offline_suppresses_missing_data() -> None:
    sim = Sim("hypertension")
    sim.bp(T0, 130, 80)
    now = T0 + 4 * DAY
    facts = Facts(last_reading_at=T0, gateway_offline_since=T0 + HOUR, gateway_known=True)
    advance(sim.ctx, sim.book, now, now, facts)
    gw, missing = sim.active("gateway_offline"), sim.active("missing_data")
    assert gw.state == "open"
    assert missing.suppressed_by == gw.id
    advance(
        sim.ctx, sim.book, now + HOUR, now + HOUR, Facts(last_reading_at=T0, gateway_known=True)
    )
    assert sim.active("gateway_offline") is None
    assert sim.active("missing_data").suppressed_by is None


def test_battery_low() -> None:
    sim = Sim("general")
    advance(sim.ctx, sim.book, T0, T0, Facts(low_batteries=(("cuff", 12.0), ("scale", 80.0))))
    ep = sim.active("battery_low")
    assert ep.severity is Severity.INFO
    assert "lowest 12 %" in ep.explanation
    advance(sim.ctx, sim.book, T0 + HOUR, T0 + HOUR, Facts(low_batteries=(("cuff", 100.0),)))
    assert sim.active("battery_low") is None


def test_crisis_suppresses_lesser_bp_episodes_until_resolved() -> None:
    sim = Sim("hypertension")
    t = T0
    for _ in range(3):
        sim.bp(t, 165, 95)
        t += 12 * HOUR
    lesser = sim.active("bp_high")
    assert lesser.suppressed_by is None
    sim.bp(t, 190, 112)
    sim.bp(t + 5 * MIN, 188, 110)
    crisis = sim.active("bp_crisis")
    assert crisis.state == "open"
    assert lesser.suppressed_by == crisis.id
    sim.book.events.clear()
    sim.book.resolve(crisis, t + HOUR, "referred_to_ed", "nurse")
    assert lesser.suppressed_by is None
    assert [(e.episode_id, e.kind) for e in sim.book.events] == [
        (crisis.id, "resolved"),
        (lesser.id, "unsuppressed"),
        (lesser.id, "renotified"),  # released: back in front of a person (issue 15, item 1)
    ]


# -- late data, duplicates, priorities, thresholds -----------------------------------------------


def test_late_readings_are_evaluated_in_time_order_without_paging() -> None:
    # Past the weight family's relevance window (48 h: daily weights) a late finding is
    # recorded without paging. (Issue 15, item 3: the newest weight used to be a day old here,
    # which is still clinically urgent; the week now arrives 3 days after its last weight.)
    sim = Sim("heart_failure", risk_tier=1)
    now = T0 + 9 * DAY
    week = [weight(sim.patient, T0 + k * DAY, 80 + 0.5 * k, received_at=now) for k in range(7)]
    sim.feed(list(reversed(week)), now=now)  # arrive together, out of order
    ep = sim.active("weight_gain")
    assert ep.severity is Severity.HIGH
    assert ep.late
    assert ep.priority == 4
    assert ep.explanation.startswith("Late data (measured")
    sim.feed([weight(sim.patient, now, 83.6)], now=now + MIN)  # fresh evidence: now it pages
    assert not ep.late
    assert ep.priority == 1


def test_duplicate_reading_raises_nothing_new() -> None:
    sim = Sim("diabetes")
    low = glucose(sim.patient, T0, 50.0)
    sim.feed([low])
    sim.feed([low])
    sim.feed([low, low])
    assert sim.active("glucose_low").count == 1
    assert len(sim.all_events) == 2


def test_priority_from_severity_and_risk_tier() -> None:
    assert priority_for(Severity.CRITICAL, 3) == 1
    assert priority_for(Severity.HIGH, 1) == 1
    assert priority_for(Severity.HIGH, 2) == 2
    assert priority_for(Severity.MODERATE, 3) == 4
    assert priority_for(Severity.INFO, 1) == 4
    assert priority_for(Severity.CRITICAL, 1, late=True) == 4


def test_patient_override_wins_and_is_named() -> None:
    overrides = [
        Override("program", "bp_crisis.systolic", 175.0, 1, 1, "Dr Program", "program policy"),
        Override("site", "bp_crisis.systolic", 178.0, 2, 1, "Dr Site", "site policy"),
        Override("patient", "bp_crisis.systolic", 170.0, 7, 3, "Dr Who", "post-stroke"),
        Override("patient", "bp_mean_7d.enabled", 0.0, 8, 1, "Dr Who", "no mean rule"),
    ]
    sim = Sim("hypertension", overrides=overrides)
    assert sim.ctx.thresholds.rule("bp_crisis")["systolic"].value == 170.0
    assert "bp_mean_7d" not in sim.ctx.thresholds.enabled
    sim.bp(T0, 171, 90)
    sim.bp(T0 + 5 * MIN, 172, 92)
    ep = sim.active("bp_crisis")
    assert "patient threshold (override #7 v3, ordered by Dr Who)" in ep.explanation
    assert ep.threshold_version == "hypertension@2026.12+#7"
    assert ep.thresholds["systolic"] == 170


def test_pulse_and_body_composition_do_not_trip_bp_rules() -> None:
    sim = Sim("heart_failure")
    sim.feed([reading(sim.patient, "body_composition", T0, {"body_fat": 31.0, "bmi": 27.0})])
    sim.feed([bp(sim.patient, T0 + HOUR, 120, 70)])
    assert not sim.book.active


def test_crisis_repeat_below_the_severe_range_does_not_confirm() -> None:
    # issue 15: "a repeat of 171 'confirms' a 181" was wrong; the repeat must itself be severe
    sim = Sim("hypertension")
    sim.bp(T0, 194, 109)
    sim.bp(T0 + 5 * MIN, 179, 104)  # not >180/120
    assert sim.active("bp_crisis") is None
    (ep,) = [e for e in sim.episodes.values() if e.family == "bp_crisis"]
    assert ep.outcome == "not_confirmed"


def test_single_reading_below_80_50_asks_for_a_remeasure() -> None:
    sim = Sim("heart_failure")
    sim.bp(T0, 79, 55)
    ep = sim.active("bp_low")
    assert ep.state == "pending"
    assert "re-measure requested within 15 min" in ep.explanation
    sim.bp(T0 + 3 * MIN, 88, 58)  # still low: confirmed
    assert ep.state == "open"
    assert ep.severity is Severity.MODERATE
    sim.bp(T0 + 6 * HOUR, 78, 48)
    assert ep.severity.label == "high"
    normal = Sim("heart_failure")
    normal.bp(T0, 76, 52)
    normal.bp(T0 + 3 * MIN, 112, 70)  # a cuff error: the repeat is normal
    assert normal.active("bp_low") is None
    other = Sim("heart_failure")
    other.bp(T0, 79, 55, flags=["cuff_loose"])  # a doubted reading counts half
    assert other.active("bp_low") is None
