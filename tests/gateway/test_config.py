"""Configuration: TOML, password sources, allowlist, server-pushed config, backoff."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gateway import Allowlist, Backoff, ConfigError, DeviceEntry, address_identity, load_config
from gateway.config import parse_server_config

MINIMAL = """
gateway_id = "gw-1"
state_dir = "state"
timezone = "Europe/Berlin"
[mqtt]
host = "mqtt.example.org"
ca_file = "ca.crt"
{password}
[[devices]]
id = "BP-1"
type = "blood_pressure_monitor"
[[devices]]
address = "c0:00:00:00:00:01"
type = "glucose_meter"
"""


def write(tmp_path: Path, password: str = 'password_file = "secret"') -> Path:  # noqa: S107
    (tmp_path / "secret").write_text("s3cret\n", encoding="utf-8")
    path = tmp_path / "gateway.toml"
    path.write_text(MINIMAL.format(password=password), encoding="utf-8")
    return path


def test_file_is_read_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), environ={})
    assert config.gateway_id == "gw-1"
    assert config.state_dir == tmp_path / "state"
    assert config.mqtt.password == "s3cret"
    assert config.mqtt.username == "gw-1"
    assert (config.mqtt.port, config.mqtt.tls) == (8883, True)
    assert config.mqtt.ca_file == str(tmp_path / "ca.crt")
    assert config.outbox.batch_size == 50
    assert config.zone.key == "Europe/Berlin"
    assert config.devices == (
        DeviceEntry("blood_pressure_monitor", id="BP-1"),
        DeviceEntry("glucose_meter", address="C0:00:00:00:00:01"),
    )
    assert "s3cret" not in repr(config)


def test_password_from_environment_or_systemd_credential(tmp_path: Path) -> None:
    path = write(tmp_path, password="")
    assert load_config(path, environ={"CAREBEACON_GATEWAY_PASSWORD": "env"}).mqtt.password == "env"
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "mqtt-password").write_text("cred\n", encoding="utf-8")
    config = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")})
    assert config.mqtt.password == "cred"
    with pytest.raises(ConfigError, match=r"mqtt\.password"):
        load_config(path, environ={})


def test_password_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        load_config(write(tmp_path, password='password = "x"'), environ={})


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (('timezone = "Europe/Berlin"', 'timezone = "Mars/Olympus"'), "timezone"),
        (('gateway_id = "gw-1"', 'gateway_id = "gw/1"'), "gateway_id"),
        (('type = "glucose_meter"', 'type = "toaster"'), "devices[1].type"),
        (('host = "mqtt.example.org"', "host = 3"), "host"),
        (("[mqtt]", "[outbox]\nbatch_size = 500\n[mqtt]"), "outbox.batch_size"),
        (("[mqtt]", "[outbox]\nreceipt_timeout = 0\n[mqtt]"), "outbox.receipt_timeout"),
        (("[mqtt]", "[outbox]\nreceipts = 1\n[mqtt]"), "receipts"),
    ],
)
def test_invalid_values_name_the_field(tmp_path: Path, edit: tuple[str, str], field: str) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.field == field


def test_server_config_replaces_the_file_allowlist() -> None:
    allowlist = Allowlist((DeviceEntry("glucose_meter", address="C0:00:00:00:00:01"),))
    assert allowlist.by_address("c0-00-00-00-00-01") is not None
    entries = parse_server_config(
        b'{"schema": "carebeacon.gateway-config/1", "devices": ['
        b'{"id": "BP-9", "type": "blood_pressure_monitor"},'
        b'{"id": "'
        + address_identity("C0:00:00:00:00:07").encode()
        + b'", "type": "weight_scale"}]}'
    )
    allowlist.set_server(entries)
    assert allowlist.by_address("C0:00:00:00:00:01") is None
    assert allowlist.by_address("C0:00:00:00:00:07") == DeviceEntry(
        "weight_scale", id=address_identity("C0:00:00:00:00:07")
    )
    assert [e.id for e in allowlist.awaiting_identity("blood_pressure_monitor")] == ["BP-9"]
    assert parse_server_config(b"") is None
    with pytest.raises(ConfigError):
        parse_server_config(b'{"schema": "other", "devices": []}')
    with pytest.raises(ConfigError):
        parse_server_config(b"not json")


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(base=1.0, cap=10.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(5.0 <= d <= 10.0 for d in delays[5:])
    assert len(set(delays)) == len(delays)
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_shipped_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "gateway.example.toml"
    config = load_config(
        example,
        environ={
            "STATE_DIRECTORY": "/var/lib/carebeacon-gateway",
            "CAREBEACON_GATEWAY_PASSWORD": "x",
        },
    )
    assert config.gateway_id == "gw-0042"
    assert str(config.state_dir) == "/var/lib/carebeacon-gateway"
    assert len(config.devices) == 3


def test_systemd_unit_uses_credentials_and_the_bluetooth_group() -> None:
    unit = (
        Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "carebeacon-gateway.service"
    ).read_text(encoding="utf-8")
    for line in (
        "SupplementaryGroups=bluetooth",
        "StateDirectory=carebeacon-gateway",
        "LoadCredential=mqtt-password:",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ):
        assert line in unit
    assert "PASSWORD" not in unit.split("[Service]")[1]


def test_log_format_is_plain_or_json(tmp_path: Path) -> None:
    path = write(tmp_path)
    assert load_config(path).log_format == "plain"
    text = path.read_text(encoding="utf-8")
    path.write_text('log_format = "JSON"\n' + text, encoding="utf-8")
    assert load_config(path).log_format == "json"
    path.write_text('log_format = "xml"\n' + text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert refused.value.field == "log_format"
