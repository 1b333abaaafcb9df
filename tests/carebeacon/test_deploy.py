"""The server side's systemd units (``deploy/systemd/``): each runs a real subcommand with the
settings from the env file that systemd reads, restarts on failure, and is hardened."""

from __future__ import annotations

import os
import shlex
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
