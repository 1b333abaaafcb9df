"""``carebeacon alerts replay``: the same rules without a database, and the cohort benchmark."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts import cli
from alerts._replay import ReplayError, replay, to_reading
from lab.cohort import generate, measure
from tests.support.alerts import T0

MIN = timedelta(minutes=1)
DAY = timedelta(days=1)


def _bp(pid: str, at: Any, s: float, d: float, **extra: Any) -> dict[str, Any]:
    item = {
        "id": str(uuid.uuid4()),
        "patient_id": pid,
        "device": {"id": "cuff-1", "type": "blood_pressure_monitor"},
        "type": "blood_pressure",
        "measured_at": at.replace(tzinfo=None).isoformat(),
        "received_at": (at + MIN).isoformat(),
        "values": [
            {"code": "systolic", "value": s, "unit": "mm[Hg]"},
            {"code": "diastolic", "value": d, "unit": "mm[Hg]"},
        ],
        "flags": [],
    }
    item.update(extra)
    return item


def _weight(pid: str, at: Any, value: float, unit: str = "kg") -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "patient_id": pid,
        "device": {"id": "scale-1"},
        "type": "body_weight",
        "measured_at": at.replace(tzinfo=None).isoformat(),
        "received_at": (at + MIN).isoformat(),
        "values": [{"code": "body_weight", "value": value, "unit": unit}],
        "flags": [],
    }


def _cohort() -> dict[str, Any]:
    htn, hf = str(uuid.uuid4()), str(uuid.uuid4())
    crisis = [_bp(htn, T0, 192, 104), _bp(htn, T0 + 4 * MIN, 188, 102)]
    weights = [_weight(hf, T0 + k * DAY, (180 + 0.9 * k), "[lb_av]") for k in range(7)]
    return {
        "patients": [
            {"id": htn, "program": "hypertension", "risk_tier": 2, "overrides": {}},
            {
                "id": hf,
                "program": "heart_failure",
                "risk_tier": 1,
                "overrides": {"weight_gain_7d.kg": 2.0},
            },
        ],
        "readings": [*crisis, crisis[0], *weights],
    }


def test_replay_prints_open_and_clear_as_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cohort.json"
    path.write_text(json.dumps(_cohort()))
    assert cli.main(["replay", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    opens = [r for r in lines if r["event"] == "open"]
    assert {(r["family"], r["rule"], r["severity"]) for r in opens} == {
        ("bp_crisis", "bp_crisis", "critical"),
        ("weight_gain", "weight_trend", "moderate"),  # the slope sees it first
        ("missing_data", "missing_data", "low"),  # no BP for 3 days before the file ends
    }
    for r in opens:
        assert set(r) >= {"id", "patient_id", "rule", "severity", "opened_at", "cleared_at"}
        assert r["explanation"]
    (escalated,) = [r for r in lines if r["event"] == "escalate"]
    assert (escalated["rule"], escalated["severity"]) == ("weight_gain_7d", "high")
    # 6 x 0.9 lb = 5.4 lb = 2.45 kg > the patient's 2.0 kg override (not the 2.3 kg default)
    assert "patient threshold" in escalated["explanation"]
    assert "2.0 kg/7 d" in escalated["explanation"]


def test_replay_set_tries_a_program_threshold_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cohort.json"
    path.write_text(json.dumps(_cohort()))
    assert cli.main(["replay", str(path), "--set", "hypertension:bp_crisis.systolic=200"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "bp_crisis" not in {r["rule"] for r in lines}


def test_duplicates_are_dropped_and_units_converted() -> None:
    cohort = _cohort()
    records = replay(cohort)
    crisis = [r for r in records if r["family"] == "bp_crisis" and r["event"] == "open"]
    assert len(crisis) == 1
    assert crisis[0]["count"] == 2  # the duplicate delivery added nothing
    reading = to_reading({**cohort["readings"][-1]})
    assert reading.values["body_weight"] == pytest.approx((180 + 5.4) * 0.45359237)
    glucose = to_reading(
        {
            "id": str(uuid.uuid4()),
            "patient_id": str(uuid.uuid4()),
            "type": "glucose",
            "measured_at": None,
            "received_at": "2026-03-02T08:00:00Z",
            "values": [{"code": "glucose", "value": 3.0, "unit": "mmol/L"}],
            "flags": ["device_clock_unset"],
        }
    )
    assert glucose.values["glucose"] == pytest.approx(54.048)
    assert glucose.time == glucose.received_at


def test_clock_reset_reading_uses_receive_time() -> None:
    pid = str(uuid.uuid4())
    item = _bp(pid, T0 - 400 * DAY, 120, 80, flags=["device_clock_reset"])
    assert to_reading(item).time == T0 - 400 * DAY + MIN


def test_bad_cohort_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"patients": [], "readings": [{"id": "x"}]}))
    assert cli.main(["replay", str(path)]) == 1
    assert "not a canonical reading" in capsys.readouterr().err
    with pytest.raises(ReplayError):
        to_reading({"id": "nope"})


def test_late_gateway_delivery_is_not_paged_in_replay() -> None:
    pid = str(uuid.uuid4())
    late = [
        _bp(pid, T0, 194, 110, received_at=(T0 + 5 * DAY).isoformat()),
        _bp(pid, T0 + 5 * MIN, 190, 108, received_at=(T0 + 5 * DAY).isoformat()),
    ]
    cohort = {"patients": [{"id": pid, "program": "general", "risk_tier": 1}], "readings": late}
    # (the newest measurement is 5 days old: a missing-data item may rightly open as well)
    (opened,) = [r for r in replay(cohort) if r["event"] == "open" and r["family"] == "bp_crisis"]
    assert opened["late"] is True
    assert opened["priority"] == 4
    assert opened["explanation"].startswith("Late data (measured 5 days before it arrived)")


def test_small_cohort_measurement() -> None:
    cohort = generate(n_patients=40, days=30, seed=3)
    result = measure(cohort, replay(cohort))
    caught, total = (int(x) for x in result["caught_total"].split("/"))
    assert total > 0
    assert caught == total
    assert result["clinical_episodes_per_patient_week"] < result["naive_alerts_per_patient_week"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_cohort_500_patients_90_days(capsys: pytest.CaptureFixture[str]) -> None:
    """The benchmark of the issue: prints the figures (no timing assertion)."""
    cohort = generate(n_patients=500, days=90)
    result = measure(cohort, replay(cohort))
    with capsys.disabled():
        print("\n" + json.dumps(result, indent=2, ensure_ascii=False))
    caught, total = (int(x) for x in result["caught_total"].split("/"))
    assert caught >= 0.95 * total
