"""The server side's systemd units (``deploy/systemd/``): each runs a real subcommand with the
settings from the env file that systemd reads, restarts on failure, and is hardened."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from carebeacon.cli import SUBCOMMANDS
from carebeacon.settings import Settings

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SERVER = ("ingest", "scheduler", "web")


def _service(name: str) -> dict[str, list[str]]:
    """The [Service] section's assignments (a key may repeat)."""
    text = (UNITS / f"carebeacon-{name}.service").read_text(encoding="utf-8")
    section = text.split("[Service]")[1].split("\n[")[0]
    values: dict[str, list[str]] = {}
    for line in section.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("name", SERVER)
def test_server_unit_runs_its_subcommand_hardened(name: str) -> None:
    service = _service(name)
    argv = shlex.split(service["ExecStart"][0])
    assert argv[1] == name
    assert name in SUBCOMMANDS
    assert service["EnvironmentFile"] == ["/var/lib/carebeacon/carebeacon.env"]
    assert service["Restart"] == ["on-failure"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key
    assert not any("PASSWORD" in v for values in service.values() for v in values)


@pytest.mark.parametrize("name", SERVER)
def test_server_unit_settings_come_from_the_environment_systemd_sets(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What systemd passes: the unit's Environment= lines, then the env file's lines on top;
    the service itself must not need to read the (root-only) env file."""
    for variable in list(os.environ):
        if variable.startswith("CAREBEACON_"):
            monkeypatch.delenv(variable)
    for line in _service(name).get("Environment", []):
        for assignment in shlex.split(line):
            key, _, value = assignment.partition("=")
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("CAREBEACON_PG_PASSWORD", "from-the-env-file")  # EnvironmentFile=
    settings = Settings.from_env()
    assert settings.state_dir == Path("/var/lib/carebeacon")
    assert settings.mqtt_ca_file == "/var/lib/carebeacon/mosquitto/ca.crt"
    assert settings.pg_password.get_secret_value() == "from-the-env-file"
    # nothing else was read from a file (the env file lacked it, so it is unset)
    assert settings.mqtt_admin_password.get_secret_value() == ""


ALL = ("gateway", *SERVER)


@pytest.mark.parametrize("name", ALL)
def test_units_are_notify_with_a_watchdog(name: str) -> None:
    """sd_notify(3): Type=notify waits for READY=1; WatchdogSec= restarts a service that stops
    sending WATCHDOG=1; NotifyAccess=main accepts them from the main process only."""
    service = _service(name)
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    (watchdog,) = service["WatchdogSec"]
    assert int(watchdog) >= 10
    assert service["Restart"] in (["always"], ["on-failure"])
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict"}.items():
        assert service[key] == [value], key


def test_gateway_unit_starts_after_bluetooth_and_time_sync() -> None:
    text = (UNITS / "carebeacon-gateway.service").read_text(encoding="utf-8")
    unit = text.split("[Unit]")[1].split("\n[")[0]
    after = " ".join(
        line.partition("=")[2] for line in unit.splitlines() if line.startswith("After=")
    ).split()
    assert {"bluetooth.target", "time-sync.target"} <= set(after)
    assert _service("gateway")["Restart"] == ["always"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on copies whose ExecStart names an executable that exists
    here (verify refuses a missing binary; /opt/… is where an install puts it)."""
    executable = Path(sys.executable).parent / "carebeacon"
    assert executable.exists()
    for name in ALL:
        text = (UNITS / f"carebeacon-{name}.service").read_text(encoding="utf-8")
        text = re.sub(r"/opt/carebeacon[a-z-]*/bin/carebeacon", str(executable), text)
        (tmp_path / f"carebeacon-{name}.service").write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def _extras() -> dict[str, list[str]]:
    pyproject = tomllib.loads((UNITS.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    extras: dict[str, list[str]] = pyproject["project"]["optional-dependencies"]
    return extras


def _names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()
        for requirement in requirements
    }


def test_the_gateway_extra_pulls_no_server_or_emulation_dependency() -> None:
    """``pip install carebeacon[gateway]`` on a Raspberry Pi: BLE and MQTT only."""
    extras = _extras()
    gateway = _names(extras["gateway"])
    assert not any(name.startswith("carebeacon") for name in gateway)  # no other extra
    assert gateway <= {"bleak", "aiomqtt", "paho-mqtt"}
    server_only = _names(extras["server"]) - {"aiomqtt", "paho-mqtt"}
    assert "psycopg" in server_only
    assert "fastapi" in server_only
    assert not gateway & server_only
    assert "bumble" not in gateway
    project = tomllib.loads((UNITS.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    base = _names(project["project"].get("dependencies", []))
    assert not base & (server_only | {"bumble"})


def test_the_gateway_imports_nothing_from_the_server_or_lab_side() -> None:
    """What ``carebeacon gateway`` and ``carebeacon gateway doctor`` import, in a fresh
    interpreter: nothing that only the server or lab extras install."""
    probe = (
        "import sys, gateway.service, gateway.doctor, carebeacon.cli;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=UNITS.parents[1],
        env={**os.environ, "PYTHONPATH": str(UNITS.parents[1])},
    )
    loaded = set(result.stdout.split())
    forbidden = {
        "psycopg",
        "psycopg_pool",
        "fastapi",
        "starlette",
        "uvicorn",
        "numpy",
        "polars",
        "pydantic",
        "pydantic_settings",
        "prometheus_client",
        "bumble",
        "lab",
        "db",
        "ingest",
        "alerts",
        "web",
        "jinja2",
        "tqdm",
    }
    assert not loaded & forbidden
    assert {"bleak", "aiomqtt", "gateway", "devices"} <= loaded
