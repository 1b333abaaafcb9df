"""Issue 15, found 7 (device health out of the clinical queue) and the replay contract that lets
a program manager backtest the lifecycle."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import alerts
from tests.alerts.scenarios.build import DAY, HOUR, MIN, T0, Cohort, guideline
from tests.alerts.scenarios.guidelines import (
    ACOG_767_SEVERE,
    AHA_HOME_PROTOCOL,
    DEVICE_CLOCK,
    ISSUE_REPLAY,
)


@guideline(DEVICE_CLOCK.quote, DEVICE_CLOCK.source)
def test_clock_reset_cuff_is_one_technical_item_cleared_when_fixed() -> None:
    """Two weeks of readings from a cuff whose clock keeps resetting, then the gateway sets its
    clock: one technical item (never in the clinical queue), cleared automatically. A patient
    whose cuff keeps time has none."""
    c = Cohort()
    p = c.patient("hypertension")
    q = c.patient("hypertension")
    for d in range(21):
        flags = ["device_clock_reset"] if d < 14 else []
        for h in (0, 12):
            c.bp(p, T0 + d * DAY + h * HOUR, 124, 78, flags=flags)
            c.bp(q, T0 + d * DAY + h * HOUR, 124, 78)
    r = c.replay(until=T0 + 21 * DAY)
    device = r.of(p, "device_clock")
    assert device, r.show(p)
    assert {x.get("queue") for x in device} == {"technical"}, r.show(p)
    opens = [x for x in device if x["event"] == "open"]
    assert len(opens) == 1, r.show(p)
    assert [x for x in device if x["event"] != "open" and x["at"] > opens[0]["at"]], r.show(p)
    assert not r.clinical_notified(p), r.show(p)
    assert not r.of(q), r.show(q)


@guideline(ISSUE_REPLAY.quote, ISSUE_REPLAY.source)
def test_every_line_carries_queue_and_notify() -> None:
    c = Cohort()
    p = c.patient("hypertension")
    c.bp(p, T0, 192, 112)
    c.bp(p, T0 + 5 * MIN, 190, 110)
    c.bp(p, T0 + DAY, 124, 78, flags=["device_clock_reset"])
    c.bp(p, T0 + 2 * DAY, 124, 78, flags=["device_clock_reset"])
    r = c.replay(until=T0 + 3 * DAY)
    assert r.lines
    for x in r.lines:
        assert x.get("queue") in ("clinical", "technical"), x
        assert isinstance(x.get("notify"), bool), x
    crisis_open = r.opened(p, "bp_crisis")
    assert crisis_open, r.show(p)
    assert crisis_open[0]["notify"] is True, r.show(p)
    assert crisis_open[0]["queue"] == "clinical", r.show(p)


@guideline(ACOG_767_SEVERE.quote + " " + ISSUE_REPLAY.quote, ISSUE_REPLAY.source)
def test_patient_ids_are_any_string() -> None:
    c = Cohort()
    p = c.patient("maternal_postpartum", pid="MRN 00481/b", delivery_date="2026-02-24")
    c.bp(p, T0, 166, 112)
    c.bp(p, T0 + 5 * MIN, 164, 111)
    r = c.replay(until=T0 + HOUR)
    assert [x for x in r.opened(p, "bp_crisis") if x["severity"] == "critical"], r.show()


def _valid() -> dict[str, Any]:
    c = Cohort()
    p = c.patient("hypertension", pid=str(uuid.uuid4()))
    c.bp(p, T0, 128, 80)
    c.action(p, T0 + HOUR, "acknowledge")
    return c.as_dict()


def _drop(path: tuple[str, int, str]) -> dict[str, Any]:
    cohort = _valid()
    section, index, key = path
    del cohort[section][index][key]
    return cohort


@pytest.mark.parametrize(
    ("cohort", "field"),
    [
        (_drop(("actions", 0, "at")), "at"),
        (_drop(("actions", 0, "action")), "action"),
        (_drop(("readings", 0, "received_at")), "received_at"),
        (_drop(("patients", 0, "id")), "id"),
    ],
)
@guideline(ISSUE_REPLAY.quote, ISSUE_REPLAY.source)
def test_a_bad_cohort_names_the_field_at_fault(cohort: dict[str, Any], field: str) -> None:
    with pytest.raises(alerts.ReplayError, match=rf"\b{field}\b"):
        alerts.replay(cohort)


@guideline(ISSUE_REPLAY.quote, ISSUE_REPLAY.source)
def test_an_unknown_action_is_refused_by_name() -> None:
    cohort = _valid()
    cohort["actions"][0]["action"] = "silence_forever"
    with pytest.raises(alerts.ReplayError, match="action"):
        alerts.replay(cohort)


@guideline(AHA_HOME_PROTOCOL.quote, AHA_HOME_PROTOCOL.source)
def test_missing_data_found_after_the_fact_is_not_called_late_data() -> None:
    """Four days without a reading, then readings again: the missing-data episode says the
    data were missing; it is not "Late data (measured N days before it arrived)". A patient who
    measures every day has none."""
    c = Cohort()
    p = c.patient("hypertension")
    q = c.patient("hypertension")
    for d in (0, 1, 6, 7):
        c.bp(p, T0 + d * DAY, 124, 78)
        c.bp(p, T0 + d * DAY + 12 * HOUR, 122, 76)
    for d in range(8):
        c.bp(q, T0 + d * DAY, 124, 78)
        c.bp(q, T0 + d * DAY + 12 * HOUR, 122, 76)
    r = c.replay(until=T0 + 8 * DAY)
    missing = r.opened(p, "missing_data")
    assert missing, r.show(p)
    for x in missing:
        assert "late data" not in str(x["explanation"]).lower(), r.show(p)
        assert "before it arrived" not in str(x["explanation"]), r.show(p)
    assert not r.of(q, "missing_data"), r.show(q)
