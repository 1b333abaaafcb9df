"""Device clocks are set only while the gateway's own clock is synchronised.

The sync check is injected at its lowest level: the kernel's ``adjtimex`` answer (TIME_ERROR =
5 while STA_UNSYNC is set, adjtimex(2)) and systemd-timesyncd's flag file; everything above
it (gateway.clock, the radio, the emulated cuff's writable Current Time) is the real code.
"""

from __future__ import annotations

import errno
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carebeacon.settings import Settings
from gateway.clock import TIME_ERROR, TIME_OK, ClockSync, kernel_adjtimex
from lab.emulation import BloodPressureCuff, BloodPressureReading, EmulatedAir, PeripheralIdentity
from lab.homes import gateway_running
from tests.support.broker import Login, Watcher, watching
from tests.support.gateway import make_config

ZONE = ZoneInfo("Europe/Berlin")


def _refused() -> int:
    """adjtimex under ProtectClock=yes / a @system-service syscall filter (systemd#26413)."""
    raise PermissionError(errno.EPERM, "Operation not permitted")


def test_the_kernel_is_asked_for_real() -> None:
    # this machine's kernel answers (0-5: TIME_OK … TIME_ERROR); no capability is needed
    assert 0 <= kernel_adjtimex() <= TIME_ERROR


@pytest.mark.parametrize(
    ("adjtimex", "flag_file", "synchronised", "source"),
    [
        (lambda: TIME_OK, False, True, "kernel"),
        (lambda: 1, False, True, "kernel"),  # TIME_INS: a leap second pending, still in sync
        (lambda: TIME_ERROR, True, False, "kernel"),  # the kernel outranks a stale flag file
        (_refused, True, True, "timesyncd"),
        (_refused, False, None, "none"),
    ],
)
def test_sync_state(
    tmp_path: Path, adjtimex: Any, flag_file: bool, synchronised: bool | None, source: str
) -> None:
    flag = tmp_path / "synchronized"
    if flag_file:
        flag.touch()
    state = ClockSync(adjtimex=adjtimex, timesync_file=flag).state()
    assert (state.synchronised, state.source) == (synchronised, source)
    assert ClockSync(adjtimex=adjtimex, timesync_file=flag).synchronised() is (synchronised is True)


def _online(watcher: Watcher) -> list[dict[str, Any]]:
    return [s for s in watcher.statuses if s.get("state") == "online"]


@pytest.mark.ble
@pytest.mark.broker
@pytest.mark.parametrize(
    ("adjtimex", "flag_file", "writes"),
    [
        (lambda: TIME_ERROR, False, False),  # not synchronised: no clock write
        (_refused, False, False),  # unknown: treated as not synchronised
        (_refused, True, True),  # hardened unit: timesyncd's flag file decides
        (lambda: TIME_OK, False, True),
    ],
    ids=["unsynchronised", "unknown", "timesyncd", "kernel-ok"],
)
async def test_clock_written_only_when_synchronised(
    tmp_path: Path,
    settings: Settings,
    login: Login,
    air: EmulatedAir,
    adjtimex: Any,
    flag_file: bool,
    writes: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime.now(ZONE).replace(tzinfo=None, microsecond=0)
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-CLOCK"),
            readings=[BloodPressureReading(131, 84, pulse=70, time=now - timedelta(minutes=5))],
            clock=now - timedelta(minutes=10),  # ten minutes slow, writable
        )
    )
    flag = tmp_path / "synchronized"
    if flag_file:
        flag.touch()
    config = make_config(
        tmp_path, login, settings, devices=[{"id": "BP-CLOCK", "type": "blood_pressure_monitor"}]
    )
    sync = ClockSync(adjtimex=adjtimex, timesync_file=flag)
    async with (
        watching(settings, login.gateway_id) as watcher,
        gateway_running(config, air, clock_sync=sync),
    ):
        await watcher.wait_for(lambda: len(watcher.readings) == 1)
        await watcher.wait_for(
            lambda: any(
                d.get("clock_drift_seconds") is not None
                for s in _online(watcher)
                for d in s["devices"]
            )
        )
    # the reading and the drift (device - gateway, about -600 s) arrive either way
    drifts = [d["clock_drift_seconds"] for s in _online(watcher) for d in s["devices"]]
    assert any(d is not None and -700 < d < -590 for d in drifts)
    if writes:
        assert cuff.clock_writes
        assert (
            abs((cuff.clock.now() - datetime.now(ZONE).replace(tzinfo=None)).total_seconds()) < 60
        )
        assert not any("clock_unsynchronised" in s["alarms"] for s in _online(watcher))
    else:
        assert cuff.clock_writes == []
        assert any("clock_unsynchronised" in s["alarms"] for s in _online(watcher))
        (said,) = [r for r in caplog.records if "not setting device clocks" in r.getMessage()]
        assert said.levelname == "WARNING"
