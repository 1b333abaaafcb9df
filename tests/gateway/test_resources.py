"""Resident memory and CPU of a gateway process, idle and while transferring 500 glucose
records. The numbers go to stdout (``pytest -s``) and to ``resources.json`` in the test's
temporary directory; the assertions are generous bounds for a Raspberry Pi class device.

The measured process holds the gateway *and* the bumble emulation of both radios (the
gateway's central and the meter), so these are upper bounds for the gateway alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carebeacon.settings import Settings
from tests.support.broker import Login, watching
from tests.support.gateway import write_config

pytestmark = [pytest.mark.ble, pytest.mark.broker]

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def sample(pid: int) -> tuple[float, float, int, int]:
    """(monotonic time, CPU seconds, RSS kB, peak RSS kB) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    rss = int(status["VmRSS"].split()[0])
    peak = int(status["VmHWM"].split()[0])
    return time.monotonic(), cpu, rss, peak


def _run_child(config: Path) -> dict[str, tuple[float, float, int, int]]:
    """Run the gateway child; sample it at each phase it prints."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.resource_child", str(config), "500", "10"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdout is not None
    marks: dict[str, tuple[float, float, int, int]] = {}
    try:
        for line in child.stdout:
            phase = line.decode().strip()
            marks[phase] = sample(child.pid)
            if phase == "end":
                break
    finally:
        child.wait(timeout=60)
        child.stdout.close()
    return marks


async def test_rss_and_cpu_idle_and_during_a_500_record_transfer(
    tmp_path: Path, settings: Settings, login: Login
) -> None:
    config = write_config(
        tmp_path,
        login,
        settings,
        devices=[{"id": "GM-RES", "type": "glucose_meter"}],
    )
    # a subscriber, as ingest is in service: a publish that no session subscribes to is
    # answered "no matching subscribers", which the gateway does not count as delivered
    async with watching(settings, login.gateway_id):
        marks = await asyncio.to_thread(_run_child, config)

    def window(start: str, end: str) -> dict[str, float]:
        t0, cpu0, _, _ = marks[start]
        t1, cpu1, rss1, _ = marks[end]
        return {
            "seconds": round(t1 - t0, 2),
            "cpu_seconds": round(cpu1 - cpu0, 2),
            "cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "rss_mb_at_end": round(rss1 / 1024, 1),
        }

    peak_rss_mb = round(marks["end"][3] / 1024, 1)
    idle, transfer = window("idle", "transfer"), window("transfer", "done")
    report = {
        "idle": idle,
        "transfer_500_records": transfer,
        "idle_after": window("idle2", "end"),
        "peak_rss_mb": peak_rss_mb,
    }
    (tmp_path / "resources.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print("\ngateway resources:", json.dumps(report))
    assert peak_rss_mb < 250
    assert idle["cpu_percent"] < 25
    assert transfer["seconds"] < 60
