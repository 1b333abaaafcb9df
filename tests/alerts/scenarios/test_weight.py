"""Issue 15, found 4: heart-failure weight rules that fit how patients weigh (daily weigh-ins,
missed days, outliers, clock-reset scales, missing weights)."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.alerts.scenarios.build import DAY, HOUR, MIN, T0, Cohort, guideline
from tests.alerts.scenarios.guidelines import (
    ESC_HF_3DAYS,
    HFSA_DAILY,
    HFSA_WEIGH_DAILY,
    MEDSTAR_TWO_DAYS,
)

MORNING = T0 - HOUR  # 07:00 UTC, the patient's time zone (default UTC)


def _baseline(c: Cohort, p: str, lb: float = 180.0) -> None:
    """Four steady mornings before day 0 (days -4..-1), the reference a gain is judged by."""
    for k, delta in zip(range(-4, 0), (0.2, -0.2, 0.0, 0.2), strict=True):
        c.weight_lb(p, MORNING + k * DAY, lb + delta)


def _gain_episodes(c: Cohort, p: str, until: datetime) -> list[dict[str, object]]:
    r = c.replay(until=until)
    return [x for x in r.of(p, "weight_gain") if x["event"] == "open"]


@pytest.mark.parametrize(("gain_lb", "alert"), [(2.9, True), (3.5, True), (1.0, False)])
@guideline(HFSA_DAILY.quote, HFSA_DAILY.source)
def test_daily_gain_with_a_weigh_in_20_minutes_later_than_yesterday(
    gain_lb: float, alert: bool
) -> None:
    """Yesterday 07:00, today 07:20: the comparison is day to day, not an exact 24 h window."""
    c = Cohort()
    p = c.patient("heart_failure")
    _baseline(c, p)
    c.weight_lb(p, MORNING, 180.0)
    c.weight_lb(p, MORNING + DAY + 20 * MIN, 180.0 + gain_lb)
    c.weight_lb(p, MORNING + 2 * DAY, 180.0 + gain_lb + 0.1)
    found = _gain_episodes(c, p, MORNING + 2 * DAY + 2 * HOUR)
    assert bool(found) is alert, f"{gain_lb} lb\n{c.replay().show(p)}"


@pytest.mark.parametrize(("gain_lb", "alert"), [(4.0, True), (1.5, False)])
@guideline(MEDSTAR_TWO_DAYS.quote, MEDSTAR_TWO_DAYS.source)
def test_gain_across_a_missed_weigh_in_day(gain_lb: float, alert: bool) -> None:
    """Day 0 weighed, day 1 missed, day 2 up 4 lb: caught; up 1.5 lb: not."""
    c = Cohort()
    p = c.patient("heart_failure")
    _baseline(c, p)
    c.weight_lb(p, MORNING, 180.0)
    c.weight_lb(p, MORNING + 2 * DAY, 180.0 + gain_lb)
    c.weight_lb(p, MORNING + 3 * DAY, 180.0 + gain_lb + 0.2)
    found = _gain_episodes(c, p, MORNING + 3 * DAY + 2 * HOUR)
    assert bool(found) is alert, f"{gain_lb} lb\n{c.replay().show(p)}"


@pytest.mark.parametrize(("gain_kg", "alert"), [(2.2, True), (1.0, False)])
@guideline(ESC_HF_3DAYS.quote, ESC_HF_3DAYS.source)
def test_gain_over_three_days_with_two_missed_days(gain_kg: float, alert: bool) -> None:
    c = Cohort()
    p = c.patient("heart_failure")
    for k in range(-4, 1):
        c.weight_kg(p, MORNING + k * DAY, 82.0)
    c.weight_kg(p, MORNING + 3 * DAY, 82.0 + gain_kg)
    c.weight_kg(p, MORNING + 4 * DAY, 82.0 + gain_kg)
    found = _gain_episodes(c, p, MORNING + 4 * DAY + 2 * HOUR)
    assert bool(found) is alert, f"{gain_kg} kg\n{c.replay().show(p)}"


@pytest.mark.parametrize(("gain_lb", "alert"), [(3.5, True), (0.8, False)])
@guideline(HFSA_DAILY.quote, HFSA_DAILY.source)
def test_clock_reset_scale_weights_count_by_arrival_time(gain_lb: float, alert: bool) -> None:
    """A scale whose clock was reset: each weight is timed when it arrived, and still counts."""
    c = Cohort()
    p = c.patient("heart_failure")
    flags = ["device_clock_reset"]
    for k in range(-4, 1):
        c.weight_lb(p, MORNING + k * DAY, 180.0, flags=flags)
    c.weight_lb(p, MORNING + DAY, 180.0 + gain_lb, flags=flags)
    c.weight_lb(p, MORNING + 2 * DAY, 180.0 + gain_lb + 0.1, flags=flags)
    found = _gain_episodes(c, p, MORNING + 2 * DAY + 2 * HOUR)
    assert bool(found) is alert, f"{gain_lb} lb\n{c.replay().show(p)}"


@guideline(HFSA_WEIGH_DAILY.quote, HFSA_WEIGH_DAILY.source)
def test_single_high_outlier_asks_for_a_reweigh_not_a_high_episode() -> None:
    """+2.5 kg once (coat and shoes), then the usual weight the next morning: no high episode.
    The same +2.5 kg confirmed by a re-weigh and the next morning: a weight-gain episode."""
    c = Cohort()
    p = c.patient("heart_failure")
    for k in range(-4, 1):
        c.weight_kg(p, MORNING + k * DAY, 82.0)
    c.weight_kg(p, MORNING + DAY, 84.5)
    c.weight_kg(p, MORNING + 2 * DAY, 82.1)
    r = c.replay(until=MORNING + 2 * DAY + 2 * HOUR)
    assert not [x for x in r.of(p, "weight_gain") if x["severity"] in ("high", "critical")], r.show(
        p
    )

    c = Cohort()
    p = c.patient("heart_failure")
    for k in range(-4, 1):
        c.weight_kg(p, MORNING + k * DAY, 82.0)
    c.weight_kg(p, MORNING + DAY, 84.5)
    c.weight_kg(p, MORNING + DAY + 15 * MIN, 84.4)
    c.weight_kg(p, MORNING + 2 * DAY, 84.6)
    assert _gain_episodes(c, p, MORNING + 2 * DAY + 2 * HOUR), c.replay().show(p)


@guideline(HFSA_DAILY.quote, HFSA_DAILY.source)
def test_low_outlier_then_usual_weight_is_not_a_gain() -> None:
    """-2 kg once (weighed without clothes, a foot off the scale), then the usual weight: the
    return to the usual weight is not "up 5 lb in 24 hours"."""
    c = Cohort()
    p = c.patient("heart_failure")
    for k in range(-4, 1):
        c.weight_kg(p, MORNING + k * DAY, 80.0)
    c.weight_kg(p, MORNING + DAY, 78.0)
    c.weight_kg(p, MORNING + 2 * DAY, 80.3)
    c.weight_kg(p, MORNING + 3 * DAY, 80.2)
    assert not _gain_episodes(c, p, MORNING + 3 * DAY + 2 * HOUR), c.replay().show(p)


@guideline(HFSA_WEIGH_DAILY.quote, HFSA_WEIGH_DAILY.source)
def test_hf_patient_who_stops_weighing_but_sends_bp_gets_missing_data() -> None:
    """Daily weights days 0-2, then only blood pressure: the missing weight is found within a
    few days; while she weighs daily there is no missing-data episode."""
    c = Cohort()
    p = c.patient("heart_failure")
    for k in range(0, 3):
        c.weight_kg(p, MORNING + k * DAY, 80.0 + 0.1 * (k % 2))
    for k in range(0, 9):
        c.bp(p, T0 + k * DAY, 118, 74)
    r = c.replay(until=T0 + 9 * DAY)
    last_weight = MORNING + 2 * DAY
    # a missing-data item about the weight (its family may be the general one or per type)
    missing = [
        x
        for x in r.opened(p)
        if str(x["family"]).startswith("missing") and "weight" in str(x["explanation"]).lower()
    ]
    assert missing, r.show(p)
    at = datetime.fromisoformat(str(missing[0]["at"]))
    assert last_weight + DAY <= at <= last_weight + 4 * DAY, r.show(p)
