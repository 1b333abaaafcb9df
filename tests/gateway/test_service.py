"""The gateway service as a whole: outages, a full outbox, logs, the command line."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from carebeacon.logs import logging_config
from carebeacon.settings import Settings
from gateway import GatewayConfig
from gateway.service import main, run
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    EmulatedAir,
    GlucoseMeter,
    GlucoseReading,
    PeripheralIdentity,
)
from lab.homes import gateway_running
from tests.support.broker import Login, watching
from tests.support.gateway import make_config, read_state
from tests.support.network import free_port
from tests.support.systemd import NotifySocket
from tests.support.waiting import eventually

pytestmark = [pytest.mark.ble, pytest.mark.broker]

ZONE = ZoneInfo("Europe/Berlin")
NOW = datetime.now(ZONE).replace(tzinfo=None, microsecond=0)


def glucose(start: int, count: int) -> list[GlucoseReading]:
    return [
        GlucoseReading(100 + i, time=NOW - timedelta(days=10) + timedelta(hours=i))
        for i in range(start, start + count)
    ]


def depth(config: GatewayConfig) -> int:
    state = read_state(config)
    try:
        return int(state.depth)
    finally:
        state.close()


async def test_broker_down_for_the_whole_session_then_back(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    meter = await air.add(GlucoseMeter(PeripheralIdentity(serial="GM-OUT"), records=glucose(0, 20)))
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-OUT"), readings=[BloodPressureReading(130, 85)]
        )
    )
    devices = [
        {"address": meter.address, "type": "glucose_meter"},
        {"address": cuff.address, "type": "blood_pressure_monitor"},
    ]
    down = make_config(tmp_path, login, settings, port=free_port(), devices=devices)
    async with watching(settings, login.gateway_id) as watcher:
        async with gateway_running(down, air):
            await eventually(lambda: depth(down) == 21, within=20)
            await asyncio.sleep(1.0)  # more sessions while the broker is away
        assert watcher.batches == []
        assert depth(down) == 21
        up = make_config(tmp_path, login, settings, devices=devices)
        async with gateway_running(up, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 21)
            await eventually(lambda: depth(up) == 0)
            await asyncio.sleep(1.0)
    ids = watcher.reading_ids
    assert len(ids) == len(set(ids)) == 21
    assert sorted(r["sequence"] for r in watcher.readings if r["type"] == "glucose") == list(
        range(1, 21)
    )
    assert meter.racp_requests.count(bytes([0x01, 0x01])) == 1  # later sessions: "≥ 21"


async def test_full_outbox_leaves_records_on_the_devices(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    meter = await air.add(
        GlucoseMeter(PeripheralIdentity(serial="GM-FULL"), records=glucose(0, 10))
    )
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-FULL"), readings=[BloodPressureReading(128, 82)]
        )
    )
    devices = [
        {"address": meter.address, "type": "glucose_meter"},
        {"address": cuff.address, "type": "blood_pressure_monitor"},
    ]
    small = "[outbox]\nmax_readings = 4"
    down = make_config(
        tmp_path, login, settings, port=free_port(), devices=devices[:1], extra=small
    )
    async with watching(settings, login.gateway_id) as watcher:
        async with gateway_running(down, air):
            await eventually(lambda: depth(down) == 4, within=20)
            await asyncio.sleep(1.5)
            assert depth(down) == 4  # nothing dropped, nothing more taken
        state = read_state(down)
        device = state.device("GM-FULL")
        state.close()
        assert device is not None
        assert device.last_sequence is None  # the meter's progress did not run ahead
        # the cuff joins while the outbox is full: not connected, its reading stays on it
        full = make_config(
            tmp_path, login, settings, port=free_port(), devices=devices, extra=small
        )
        async with gateway_running(full, air):
            await asyncio.sleep(1.5)
        assert cuff.connection_count == 0
        assert len(cuff.stored) == 1
        up = make_config(tmp_path, login, settings, devices=devices, extra=small)
        async with gateway_running(up, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 11, within=40)
            await watcher.wait_for(lambda: watcher.statuses[-1].get("outbox", {}).get("depth") == 0)
    ids = watcher.reading_ids
    assert len(ids) == len(set(ids)) == 11
    statuses = [s for s in watcher.statuses if s.get("state") == "online"]
    assert statuses[0]["outbox"] == {
        "depth": 4,
        "oldest_at": statuses[0]["outbox"]["oldest_at"],
        "full": True,
        "limit": 4,
    }
    assert "outbox_full" in statuses[0]["alarms"]
    assert statuses[-1]["outbox"]["full"] is False


async def test_logs_carry_no_addresses_or_payloads(
    tmp_path: Path,
    settings: Settings,
    login: Login,
    air: EmulatedAir,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(
                serial="BP-LOG", manufacturer="Acme", model="M1", local_name="Jane Doe BP"
            ),
            readings=[BloodPressureReading(177, 99, pulse=88)],
        )
    )
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[{"address": cuff.address, "type": "blood_pressure_monitor"}],
    )
    caplog.set_level(logging.DEBUG, logger="gateway")
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 1)
    raw_hex = watcher.readings[0]["raw"]["hex"]
    gateway_lines = [r.getMessage() for r in caplog.records if r.name.startswith("gateway")]
    assert any("BP-LOG" in line for line in gateway_lines)  # ids are logged ...
    for line in gateway_lines:  # ... addresses, names, payloads and values are not
        assert cuff.address not in line
        assert cuff.address.replace(":", "-") not in line
        assert "Jane Doe" not in line
        assert raw_hex not in line
        assert "177" not in line


def test_bleak_and_bumble_stay_at_warning() -> None:
    config = logging_config("DEBUG", json=True)
    assert config["root"]["level"] == "DEBUG"
    for name in ("bleak", "bumble"):
        assert config["loggers"][name]["level"] == "WARNING"


def test_command_line_refuses_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "gateway.toml").write_text('gateway_id = "gw/1"\n', encoding="utf-8")
    assert main(["--config", str(tmp_path / "gateway.toml")]) == 2
    assert "gateway_id" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2


# --- errors an installer can act on ---------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "gateway.example.toml"


def _example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, edit: tuple[str, str] = ("", "")
) -> Path:
    """deploy/gateway.example.toml as a new installer would use it (password and state
    directory as the shipped unit gives them)."""
    monkeypatch.setenv("CAREBEACON_GATEWAY_PASSWORD", "x")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    path = tmp_path / "gateway.toml"
    text = EXAMPLE.read_text(encoding="utf-8")
    path.write_text(text.replace(*edit) if edit[0] else text, encoding="utf-8")
    return path


def test_a_missing_ca_file_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(_example(tmp_path, monkeypatch))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("carebeacon gateway: mqtt.ca_file: ")
    assert str(tmp_path / "ca.crt") in line
    assert "does not exist" in line


def test_an_unresolvable_broker_host_is_refused_at_start(
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _example(
        tmp_path,
        monkeypatch,
        # the .invalid top-level domain never resolves (RFC 6761)
        edit=('host = "mqtt.carebeacon.example.org"', 'host = "mqtt.carebeacon.invalid"'),
    )
    (tmp_path / "ca.crt").write_bytes(Path(settings.mqtt_ca_file).read_bytes())
    assert main(["--config", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "carebeacon gateway: mqtt.host: mqtt.carebeacon.invalid does not resolve;"
        " check the broker's host name"
    )


def test_a_ca_file_that_is_no_certificate_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _example(tmp_path, monkeypatch)
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nnope\n", encoding="utf-8")
    assert main(["--config", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "mqtt.ca_file" in line
    assert "not a usable CA certificate" in line


def _problem_lines(caplog: pytest.LogCaptureFixture, level: int, where: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "gateway.problems" and r.levelno == level and r.getMessage().startswith(where)
    ]


@pytest.mark.skipif(
    Path("/run/dbus/system_bus_socket").exists(), reason="this machine has a D-Bus system bus"
)
async def test_no_bluez_is_said_once_then_quiet_and_kept_in_the_status(
    tmp_path: Path,
    settings: Settings,
    login: Login,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real BlueZ backend (no emulation) on this machine, which has no D-Bus system bus;
    under systemd: READY, the problem in STATUS, the watchdog fed, STOPPING."""
    config = make_config(tmp_path, login, settings)
    caplog.set_level(logging.DEBUG, logger="gateway")
    with NotifySocket(tmp_path) as notify:
        monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
        monkeypatch.setenv("WATCHDOG_USEC", "400000")
        stop = asyncio.Event()
        async with watching(settings, login.gateway_id) as watcher:
            task = asyncio.create_task(run(config, stop=stop))
            await eventually(lambda: len(_problem_lines(caplog, logging.DEBUG, "bluetooth")) >= 3)
            await watcher.wait_for(
                lambda: any(
                    "bluetooth_unavailable" in s.get("alarms", []) for s in watcher.statuses
                )
            )
            await asyncio.to_thread(notify.wait_for, "WATCHDOG", count=2)
            stop.set()
            await task
        await asyncio.to_thread(notify.wait_for, "STOPPING")
    (warning,) = _problem_lines(caplog, logging.WARNING, "bluetooth")
    assert "no D-Bus system bus" in warning
    assert "apt install" in warning
    assert not [r for r in caplog.records if "FileNotFoundError" in r.getMessage()]
    messages = notify.messages()
    assert messages[0]["READY"] == "1"
    assert any("no D-Bus system bus" in m.get("STATUS", "") for m in messages)


async def test_an_unresolvable_broker_at_runtime_names_its_cause_once(
    tmp_path: Path,
    settings: Settings,
    login: Login,
    air: EmulatedAir,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The host stopped resolving after the start (a DNS change): said once, then quiet."""
    config = make_config(tmp_path, login, settings)
    config = dataclasses.replace(
        config, mqtt=dataclasses.replace(config.mqtt, host="mqtt.carebeacon.invalid")
    )
    caplog.set_level(logging.DEBUG, logger="gateway")
    async with gateway_running(config, air):
        await eventually(lambda: len(_problem_lines(caplog, logging.DEBUG, "broker")) >= 2)
    (warning,) = _problem_lines(caplog, logging.WARNING, "broker")
    assert "mqtt.carebeacon.invalid does not resolve" in warning
    assert "check mqtt.host" in warning
    assert not [r for r in caplog.records if "MqttError" in r.getMessage()]


async def test_a_refused_login_is_said_once(
    tmp_path: Path,
    settings: Settings,
    login: Login,
    air: EmulatedAir,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(tmp_path, login, settings)
    config = dataclasses.replace(
        config, mqtt=dataclasses.replace(config.mqtt, password="not-" + login.password)
    )
    caplog.set_level(logging.DEBUG, logger="gateway")
    async with gateway_running(config, air):
        await eventually(lambda: len(_problem_lines(caplog, logging.DEBUG, "broker")) >= 2)
    (warning,) = _problem_lines(caplog, logging.WARNING, "broker")
    assert "the broker refused the login" in warning
    assert login.password not in " ".join(r.getMessage() for r in caplog.records)
