"""``carebeacon gateway doctor``: one line per check, exit 1 when something blocks, 2 when the
configuration cannot be read. It runs here, on a machine without D-Bus, BlueZ or an adapter,
against the project's real Mosquitto (TLS listener)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carebeacon.settings import Settings
from devices.canonical import DeviceIdentity, canonical_reading
from gateway.clock import TIME_ERROR, TIME_OK, ClockSync
from gateway.doctor import SYSFS_BLUETOOTH, run_checks
from gateway.outbox import Outbox
from tests.support.vectors import FULL

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
NO_ADAPTER = not (SYSFS_BLUETOOTH.is_dir() and any(SYSFS_BLUETOOTH.glob("hci*")))


def _config(directory: Path, settings: Settings, *, host: str = "127.0.0.1", ca: str = "") -> Path:
    (directory / "mqtt-password").write_text("not-used\n", encoding="utf-8")
    path = directory / "gateway.toml"
    path.write_text(
        "\n".join(
            [
                'gateway_id = "gw-doctor"',
                f'state_dir = "{directory / "state"}"',
                "[mqtt]",
                f'host = "{host}"',
                f"port = {settings.mqtt_tls_port}",
                f'ca_file = "{ca or settings.mqtt_ca_file}"',
                "[outbox]",
                "max_readings = 10",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return path


def _doctor(config: Path) -> tuple[int, dict[str, str]]:
    """The real command line, in a fresh process; check name → its line."""
    result = subprocess.run(
        [sys.executable, "-m", "carebeacon.cli", "gateway", "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.strip()}
    return result.returncode, lines


@pytest.mark.broker
def test_doctor_here_reports_no_bluetooth_and_a_good_broker(
    tmp_path: Path, settings: Settings
) -> None:
    config = _config(tmp_path, settings)
    # an outbox with one reading waiting (as a stopped gateway leaves it)
    (tmp_path / "state").mkdir()
    outbox = Outbox(tmp_path / "state" / "gateway.sqlite3", max_readings=10)
    reading = canonical_reading(
        "2a35",
        bytes.fromhex(FULL["2a35"]),
        DeviceIdentity("BP-1", "blood_pressure_monitor"),
        datetime.now(UTC),
    )
    outbox.add([reading])
    outbox.close()
    code, lines = _doctor(config)
    assert list(lines) == [
        "config", "bluez", "bluetoothd", "adapter", "permissions", "agent", "time", "broker",
        "outbox",
    ]  # fmt: skip
    assert lines["config"].startswith("ok")
    assert lines["broker"].startswith("ok")
    assert "TLS verified" in lines["broker"]
    assert lines["outbox"].startswith("ok")
    assert "1 of 10 readings waiting" in lines["outbox"]
    assert lines["agent"].startswith("?")
    if NO_ADAPTER:  # this machine: no D-Bus system bus, no BlueZ, no controller
        assert lines["adapter"].startswith("FAIL")
        assert "no Bluetooth adapter" in lines["adapter"]
        assert code == 1


@pytest.mark.broker
@pytest.mark.skipif(not SYSTEM_CA_BUNDLE.exists(), reason="no system CA bundle")
async def test_a_broker_signed_by_another_ca_is_a_tls_failure(
    tmp_path: Path, settings: Settings
) -> None:
    # a real, valid CA bundle, that did not sign the project's broker certificate
    bundle = SYSTEM_CA_BUNDLE
    checks = {c.name: c for c in await run_checks(_config(tmp_path, settings, ca=str(bundle)))}
    assert checks["broker"].status == "FAIL"
    assert "not trusted" in checks["broker"].detail


async def test_time_check_follows_the_kernel(tmp_path: Path, settings: Settings) -> None:
    config = _config(tmp_path, settings, host="broker.invalid")
    synced = ClockSync(adjtimex=lambda: TIME_OK)
    unsynced = ClockSync(adjtimex=lambda: TIME_ERROR, timesync_file=tmp_path / "absent")
    assert {c.name: c for c in await run_checks(config, clock_sync=synced)}["time"].status == "ok"
    unsynced_checks = {c.name: c for c in await run_checks(config, clock_sync=unsynced)}
    assert unsynced_checks["time"].status == "warn"
    assert not unsynced_checks["time"].blocking
    # the .invalid top-level domain never resolves (RFC 6761)
    assert unsynced_checks["broker"].status == "FAIL"
    assert "does not resolve" in unsynced_checks["broker"].detail


def test_a_config_that_cannot_be_read_exits_2(tmp_path: Path) -> None:
    code, lines = _doctor(tmp_path / "missing.toml")
    assert code == 2
    assert lines["config"].startswith("FAIL")
    assert lines["broker"].startswith("?")
