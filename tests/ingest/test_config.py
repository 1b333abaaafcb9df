"""Issue 19: ``CAREBEACON_INGEST_*`` come from the one settings source — the environment, then the
env file (``CAREBEACON_ENV_FILE``), then the README's defaults — none silently ignored."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from ingest.service import IngestConfig


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("CAREBEACON_"):
            monkeypatch.delenv(name)
    path = tmp_path / "carebeacon.env"
    monkeypatch.setenv("CAREBEACON_ENV_FILE", str(path))
    return path


def test_every_ingest_setting_in_the_env_file_reaches_the_service(env_file: Path) -> None:
    env_file.write_text(
        "CAREBEACON_INGEST_CLIENT_ID=ingest-from-file\n"
        "CAREBEACON_INGEST_SHARE_GROUP=group-from-file\n"
        "CAREBEACON_INGEST_BATCH_MESSAGES=123\n"
        "CAREBEACON_INGEST_BATCH_READINGS=4567\n"
        "CAREBEACON_INGEST_FLUSH_MS=25\n"
        "CAREBEACON_INGEST_SESSION_EXPIRY_SECONDS=3600\n"
        "CAREBEACON_INGEST_RECEIVE_MAXIMUM=250\n",
        encoding="utf-8",
    )
    config = IngestConfig.from_env()
    assert config.client_id == "ingest-from-file"
    assert config.share_group == "group-from-file"
    assert config.readings_filter == "$share/group-from-file/carebeacon/v1/gateways/+/readings"
    assert (config.batch_messages, config.batch_readings) == (123, 4567)
    assert config.flush_seconds == 0.025
    assert config.session_expiry_seconds == 3600
    assert config.receive_maximum == 250


def test_the_environment_overrides_the_env_file(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file.write_text(
        "CAREBEACON_INGEST_BATCH_MESSAGES=123\nCAREBEACON_INGEST_RECEIVE_MAXIMUM=250\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CAREBEACON_INGEST_RECEIVE_MAXIMUM", "40")
    config = IngestConfig.from_env()
    assert (config.batch_messages, config.receive_maximum) == (123, 40)


def test_the_defaults_are_the_readmes(env_file: Path) -> None:
    config = IngestConfig.from_env()
    # README, Configuration
    assert (config.batch_messages, config.batch_readings, config.flush_seconds) == (1000, 5000, 0)
    assert config.receive_maximum == 2000
    assert config.session_expiry_seconds == 604800
    assert config.readings_filter == "carebeacon/v1/gateways/+/readings"


@pytest.mark.parametrize("value", ["0", "65536"])
def test_a_receive_window_mqtt_cannot_carry_is_refused(
    env_file: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # MQTT 5.0, 3.1.2.11.3: Receive Maximum is 1..65535 ("It is a Protocol Error to include the
    # Receive Maximum value more than once or for it to have the value 0")
    monkeypatch.setenv("CAREBEACON_INGEST_RECEIVE_MAXIMUM", value)
    with pytest.raises(ValidationError):
        IngestConfig.from_env()
