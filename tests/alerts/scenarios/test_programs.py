"""Issue 15, found 2: with several enrollments the most protective program wins; postpartum
carries a delivery date and accepts symptom reports."""

from __future__ import annotations

import pytest

from tests.alerts.scenarios.build import HOUR, MIN, T0, Cohort, guideline
from tests.alerts.scenarios.guidelines import ACOG_PB222_SEVERE, ACOG_PB222_SYMPTOMS

# (first, repeat 5 min later, severe range?) around ACOG's 160 systolic / 110 diastolic
SEVERE_RANGE = [
    ((160, 100), (161, 102), True),  # systolic at 160 "or more"
    ((159, 109), (158, 108), False),  # just below both
    ((150, 110), (148, 111), True),  # diastolic at 110 "or more"
    ((172, 104), (168, 106), True),  # 160-179: urgent for her, not for the hypertension program
]


@pytest.mark.parametrize(("first", "repeat", "severe"), SEVERE_RANGE)
@guideline(ACOG_PB222_SEVERE.quote, ACOG_PB222_SEVERE.source)
def test_postpartum_patient_later_enrolled_in_hypertension_keeps_maternal_thresholds(
    first: tuple[int, int], repeat: tuple[int, int], severe: bool
) -> None:
    """Enrolled in maternal_postpartum, then in hypertension: the crisis threshold is the
    maternal 160/110, not the hypertension 180/120; the explanation names the program."""
    c = Cohort()
    p = c.patient(
        "hypertension",
        programs=["maternal_postpartum", "hypertension"],
        delivery_date="2026-02-20",
    )
    c.bp(p, T0, *first)
    c.bp(p, T0 + 5 * MIN, *repeat)
    c.bp(p, T0 + 2 * HOUR, 132, 84)
    r = c.replay()
    critical = [x for x in r.notified(p, before=T0 + 30 * MIN) if x["severity"] == "critical"]
    assert bool(critical) is severe, r.show(p)
    if severe:
        assert "maternal" in str(critical[0]["explanation"]).lower(), r.show(p)


@guideline(ACOG_PB222_SEVERE.quote, ACOG_PB222_SEVERE.source)
def test_delivery_date_within_the_postpartum_window_keeps_severe_range_critical() -> None:
    """Five weeks after delivery (inside the default 6-week window) a confirmed 164/108 is
    severe-range and critical."""
    c = Cohort()
    p = c.patient("maternal_postpartum", delivery_date="2026-01-26")
    c.bp(p, T0, 164, 108)
    c.bp(p, T0 + 4 * MIN, 162, 106)
    c.bp(p, T0 + 2 * HOUR, 130, 82)
    r = c.replay()
    assert any(x["severity"] == "critical" for x in r.notified(p, before=T0 + 30 * MIN)), r.show(p)


# (systolic, diastolic, symptom?, critical?) around ACOG's 140/90 with a severe symptom
SYMPTOMS = [
    (142, 92, True, True),
    (140, 84, True, True),  # systolic at 140 "or more"
    (138, 88, True, False),  # below both: the symptom alone is not this rule
    (142, 92, False, False),  # no symptom: mild-range, not critical
]


@pytest.mark.parametrize(("systolic", "diastolic", "symptom", "critical"), SYMPTOMS)
@guideline(ACOG_PB222_SYMPTOMS.quote, ACOG_PB222_SYMPTOMS.source)
def test_postpartum_symptom_with_bp_at_or_above_140_90_is_critical(
    systolic: int, diastolic: int, symptom: bool, critical: bool
) -> None:
    c = Cohort()
    p = c.patient("maternal_postpartum", delivery_date="2026-02-20")
    c.bp(p, T0, systolic, diastolic)
    c.bp(p, T0 + 5 * MIN, systolic - 1, diastolic)
    if symptom:
        c.symptom(p, T0 + 10 * MIN, "severe_headache", "vision_change")
    c.bp(p, T0 + 2 * HOUR, 128, 80)
    r = c.replay()
    found = [x for x in r.notified(p, before=T0 + 40 * MIN) if x["severity"] == "critical"]
    assert bool(found) is critical, r.show(p)
