"""``carebeacon decode`` through the installed console script (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CAREBEACON = Path(sys.executable).with_name("carebeacon")
AT = "2026-11-23T08:30:00+00:00"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CAREBEACON), "decode", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_blood_pressure_kpa_reading() -> None:
    # Nordic BPM _some (kPa)
    done = run("2a35", "15bdf00b009ff03c001200", "--device-id", "cuff-7", "--received-at", AT)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = json.loads(done.stdout)
    assert out["device"] == {
        "id": "cuff-7",
        "type": "blood_pressure_monitor",
        "manufacturer": None,
        "model": None,
    }
    assert out["received_at"] == AT
    assert out["values"] == [
        {"code": "systolic", "value": 141.8, "unit": "mm[Hg]"},
        {"code": "diastolic", "value": 82.5, "unit": "mm[Hg]"},
        {"code": "mean_arterial", "value": 119.3, "unit": "mm[Hg]"},
        {"code": "pulse", "value": 60.0, "unit": "/min"},
    ]
    assert out["flags"] == ["cuff_loose", "device_clock_unset", "pulse_rate_below_lower_limit"]
    assert out["raw"] == {"characteristic": "2a35", "hex": "15bdf00b009ff03c001200", "unit": "kPa"}


def test_spellings_and_spaced_hex_give_the_same_reading() -> None:
    a = run("0x2A18", "1b 01 00 e3 07 02 1b 0b 0a 1e fb ff 1e 00 12 05 01", "--received-at", AT)
    b = run("2a18", "1b0100e307021b0b0a1efbff1e00120501", "--received-at", AT)
    assert a.returncode == b.returncode == 0
    assert json.loads(a.stdout) == json.loads(b.stdout)
    out = json.loads(a.stdout)
    assert out["device"]["id"] == "cli"
    assert out["sequence"] == 1
    assert out["measured_at"] == "2019-02-27T11:05:30"


def test_default_received_at_is_now_utc() -> None:
    done = run("181d", "229e43e507040b101301")  # xiaomi-ble test_Xiaomi_Scale1
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["received_at"].endswith("+00:00")
    assert out["values"] == [{"code": "body_weight", "value": 86.55, "unit": "kg"}]


@pytest.mark.parametrize(
    ("characteristic", "hex_", "name", "decoded"),
    [
        (
            "2a49",
            "3f00",
            "blood_pressure_feature",
            {
                "features": [
                    "body_movement_detection",
                    "cuff_fit_detection",
                    "irregular_pulse_detection",
                    "pulse_rate_range_detection",
                    "measurement_position_detection",
                    "multiple_bond",
                ],
                "extra": "",
            },
        ),
        (
            "2a52",
            "06000106",
            "record_access_control_point",
            {
                "op_code": "response_code",
                "operator": "null",
                "filter_type": None,
                "minimum": None,
                "maximum": None,
                "number_of_records": None,
                "request_op_code": "report_stored_records",
                "response_code": "no_records_found",
                "operand": "",
            },
        ),
        ("2a19", "5a", "battery_level", {"level": 90, "extra": ""}),
        ("2a29", "4f6d726f6e", "manufacturer_name", {"characteristic": "2a29", "value": "Omron"}),
    ],
)
def test_non_measurements_print_the_decoded_structure(
    characteristic: str, hex_: str, name: str, decoded: dict[str, object]
) -> None:
    done = run(characteristic, hex_)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "characteristic": characteristic,
        "name": name,
        "decoded": decoded,
    }


def test_intermediate_cuff_pressure_and_current_time_structures() -> None:
    icp = json.loads(run("2a36", "00d700ff07ff07").stdout)["decoded"]
    assert (icp["cuff_pressure"], icp["diastolic"], icp["unit"]) == ("215", "nan", "mmhg")
    current = json.loads(run("2a2b", "e8070c1f173b3b028003").stdout)["decoded"]
    assert current["date_time"]["iso"] == "2024-12-31T23:59:59"
    assert current["adjust_reason"] == ["manual_time_update", "external_reference_time_update"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("2a35", "1e8a00"), "needs 19"),  # truncated: flags announce 19 bytes
        (("2a35", "zz"), "not hex"),
        (("2a35", "abc"), "not hex"),
        (("2a99", "00"), "no codec"),
        (("blood", "00"), "no codec"),
        (("2a35",), "arguments"),
        (("2a35", "00bdf00b009ff0", "--received-at", "2026-01-01T00:00:00"), "UTC offset"),
        (("2a35", "00bdf00b009ff0", "--device-type", "toaster"), "invalid choice"),
        (("2a29", "ff"), "UTF-8"),
    ],
)
def test_malformed_input_exits_2_with_one_line(args: tuple[str, ...], needle: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("carebeacon decode: ")
    assert needle in lines[0]


def test_error_line_never_echoes_the_payload() -> None:
    done = run("2a35", "1e8a00580078deadbeef")
    assert done.returncode == 2
    assert "deadbeef" not in done.stderr
    assert "8a00" not in done.stderr


def test_help() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "characteristic" in done.stdout
