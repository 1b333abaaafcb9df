"""lab.cohort: labels drawn from the guidelines (both sides of each boundary, hard cases) and a
measurement that scores notifications honestly (time and priority, no credit for an episode
left open from before)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import lab.cohort
from lab.cohort import generate, main, measure

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def cohort() -> dict[str, Any]:
    return generate(n_patients=400, days=60, seed=5)


def _values(cohort: Mapping[str, Any], reading_id: str) -> dict[str, float]:
    (r,) = [r for r in cohort["readings"] if r["id"] == reading_id][:1]
    return {v["code"]: v["value"] for v in r["values"]}


def test_the_generator_reads_no_threshold_from_alerts() -> None:
    tree = ast.parse(Path(lab.cohort.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module, a.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alerts")
        for a in node.names
    }
    assert imported <= {
        ("alerts", "ReplayError"),
        ("alerts", "program_overrides"),
        ("alerts", "replay"),
        ("alerts.cli", "load_cohort"),
    }, imported


def test_severe_bp_labels_and_near_misses_sit_on_either_side(cohort: dict[str, Any]) -> None:
    """2025 AHA/ACC: severe >180 and/or >120; ACOG: severe ≥160 or ≥110."""
    first = {r["id"]: r for r in cohort["readings"]}
    severe = [e for e in cohort["events"] if e["kind"] == "severe_hypertension"]
    maternal = [e for e in cohort["events"] if e["kind"] == "maternal_severe"]
    assert severe
    assert maternal
    for e in severe:
        v = _values(cohort, e["first_reading"])
        assert v["systolic"] > 180 or v["diastolic"] > 120, v
    for e in maternal:
        v = _values(cohort, e["first_reading"])
        assert v["systolic"] >= 160 or v["diastolic"] >= 110, v
    assert any(e["near_limit"] for e in severe + maternal)
    limits = [n for n in cohort["near_misses"] if n["kind"] == "bp_at_severe_limit"]
    assert limits
    for n in limits:  # at the limit, or a single severe value whose re-measure is not severe
        v = _values(cohort, n["reading"])
        assert v["diastolic"] <= 120, v
        assert first[n["reading"]]["patient_id"] == n["patient_id"]
    assert any(_values(cohort, n["reading"])["systolic"] == 180 for n in limits)
    for n in cohort["near_misses"]:
        if n["kind"] == "maternal_below_severe":
            v = _values(cohort, n["reading"])
            assert v["systolic"] < 160, v
            assert v["diastolic"] < 110, v
        if n["kind"] == "glucose_at_limit":
            assert 70 <= _values(cohort, n["reading"])["glucose"] < 75
    assert any(e["late"] for e in severe + maternal)


def test_hypoglycaemia_labels_follow_ada_levels(cohort: dict[str, Any]) -> None:
    for e in cohort["events"]:
        if e["kind"] == "hypoglycemia_level2":
            assert _values(cohort, e["first_reading"])["glucose"] < 54
        if e["kind"] == "hypoglycemia_level1":
            assert 54 <= _values(cohort, e["first_reading"])["glucose"] < 70
    kinds = {e["kind"] for e in cohort["events"]}
    assert {"hypoglycemia_level1", "hypoglycemia_level2", "meter_lo"} <= kinds


def test_hard_cases_are_in_the_cohort(cohort: dict[str, Any]) -> None:
    actions = {a["action"] for a in cohort["actions"]}
    assert {"acknowledge", "snooze", "resolve"} <= actions
    assert all(a.get("note") for a in cohort["actions"] if a["action"] == "resolve")
    multi = [p for p in cohort["patients"] if len(p.get("programs", ())) > 1]
    assert any("maternal_postpartum" in p["programs"] for p in multi)
    assert all(p.get("delivery_date") for p in cohort["patients"] if "maternal" in str(p))
    events = cohort["events"]
    assert any(e.get("after_missed_day") for e in events if e["kind"] == "hf_weight_gain")
    assert any(e.get("reading_type") == "body_weight" for e in events if e["kind"] == "data_gap")
    assert any(e.get("during_snooze") for e in events if e["kind"] == "meter_lo")
    assert any(e["kind"] == "maternal_symptom" for e in events)
    assert cohort["symptoms"]
    assert all(x["symptoms"] for x in cohort["symptoms"])
    near = {n["kind"] for n in cohort["near_misses"]}
    assert {"weight_outlier", "isolated_low_diastolic", "bp_at_severe_limit"} <= near
    scale_reset = [
        r
        for r in cohort["readings"]
        if r["type"] == "body_weight" and "device_clock_reset" in r["flags"]
    ]
    assert scale_reset
    assert all(r["measured_at"] is None for r in scale_reset)


def _one_event(kind: str = "maternal_severe") -> dict[str, Any]:
    return {
        "patients": [{"id": "p1", "program": "maternal_postpartum"}],
        "readings": [],
        "events": [
            {
                "patient_id": "p1",
                "kind": kind,
                "start": T0.isoformat(),
                "onset": T0.isoformat(),
                "end": (T0 + timedelta(hours=1)).isoformat(),
                "first_reading": "r1",
                "first_measured": T0.isoformat(),
                "first_arrival": (T0 + timedelta(minutes=1)).isoformat(),
            }
        ],
        "days": 7,
    }


def _line(at: datetime, *, family: str = "bp_crisis", **kw: Any) -> dict[str, Any]:
    line = {
        "event": "open",
        "at": at.isoformat(),
        "id": kw.pop("id", "e1"),
        "patient_id": "p1",
        "family": family,
        "priority": 1,
        "queue": "clinical",
        "notify": True,
    }
    line.update(kw)
    return line


@pytest.mark.parametrize(
    ("lines", "caught", "in_time", "priority"),
    [
        ([], "0/1", "0/1", "0/1"),
        # an episode opened the day before (left open) catches nothing
        ([_line(T0 - timedelta(days=1))], "0/1", "0/1", "0/1"),
        # a line that does not notify (a count went up) catches nothing
        ([_line(T0 + timedelta(minutes=6), notify=False)], "0/1", "0/1", "0/1"),
        # the wrong family
        ([_line(T0 + timedelta(minutes=6), family="bp_high")], "0/1", "0/1", "0/1"),
        # caught, but 45 min after the first reading arrived: ACOG's 30 min missed
        ([_line(T0 + timedelta(minutes=46))], "1/1", "0/1", "0/1"),
        # in time, but priority 4 (the old "late data" routine review)
        ([_line(T0 + timedelta(minutes=6), priority=4)], "1/1", "1/1", "0/1"),
        ([_line(T0 + timedelta(minutes=6))], "1/1", "1/1", "1/1"),
        # a re-notification of an older episode counts when it comes after the reading
        (
            [
                _line(T0 - timedelta(days=3)),
                _line(T0 + timedelta(minutes=7), event="renotified"),
            ],
            "1/1",
            "1/1",
            "1/1",
        ),
    ],
)
def test_scoring_counts_only_notifications_in_time_and_priority(
    lines: list[dict[str, Any]], caught: str, in_time: str, priority: str
) -> None:
    result = measure(_one_event(), lines)
    assert result["caught_total"] == caught
    assert result["caught_in_time_total"] == in_time
    assert result["right_priority_total"] == priority


def test_time_to_notify_is_from_the_first_reading() -> None:
    result = measure(_one_event(), [_line(T0 + timedelta(minutes=12))])
    assert result["minutes_to_notify_from_measurement"] == {"median": 12.0, "worst": 12.0}
    assert result["minutes_to_notify_from_arrival"] == {"median": 11.0, "worst": 11.0}


def test_old_replay_output_without_notify_counts_openings_only() -> None:
    old = [
        {k: v for k, v in _line(T0 - timedelta(days=1)).items() if k not in ("notify", "queue")},
        {
            k: v
            for k, v in _line(T0 + timedelta(minutes=5), event="escalate").items()
            if k not in ("notify", "queue")
        },
    ]
    assert measure(_one_event(), old)["caught_total"] == "0/1"


def test_cli_generate_then_measure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cohort.json"
    assert main(["generate", str(out), "--patients", "25", "--days", "30", "--seed", "2"]) == 0
    written = json.loads(out.read_text())
    assert {"patients", "readings", "actions", "events", "near_misses", "days"} <= set(written)
    capsys.readouterr()
    assert main(["measure", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in (
        "caught_total",
        "caught_in_time_total",
        "minutes_to_notify_from_measurement",
        "clinical_episodes_per_patient_week",
        "naive_alerts_per_patient_week",
        "clinical_episodes_vs_naive",
    ):
        assert key in result
    assert main(["generate", str(out), "--days", "10"]) == 1  # too short to hold the events
