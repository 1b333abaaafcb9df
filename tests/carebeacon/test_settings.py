"""Settings: the environment, then the generated env file, then the README's defaults; no
secret in any repr, str, dump or log line (only the conninfo string carries the password)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
from pydantic import SecretStr

from carebeacon.settings import Settings
from ingest.service import IngestConfig
from web.app import create_app

PLANTED = "Pl4nted/pass word%&@"  # URL-reserved characters: the conninfo must quote them


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment (no CAREBEACON_* variable) whose env file is a fresh temp file."""
    for name in list(os.environ):
        if name.startswith("CAREBEACON_"):
            monkeypatch.delenv(name)
    path = tmp_path / "carebeacon.env"
    path.write_text("", encoding="utf-8")
    monkeypatch.setenv("CAREBEACON_ENV_FILE", str(path))
    return path


def test_defaults_are_the_readmes(env_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREBEACON_STATE_DIR", "/srv/cb-state")
    settings = Settings.from_env()
    # README.md, Configuration
    assert (settings.pg_host, settings.pg_port, settings.pg_user, settings.pg_database) == (
        "127.0.0.1",
        55432,
        "carebeacon",
        "carebeacon",
    )
    assert (settings.mqtt_host, settings.mqtt_port, settings.mqtt_tls_port) == (
        "127.0.0.1",
        18883,
        18884,
    )
    assert settings.mqtt_ingest_user == "ingest"
    assert settings.ingest_client_id.startswith("ingest-")
    assert settings.ingest_share_group == ""
    assert (settings.ingest_batch_messages, settings.ingest_flush_ms) == (1000, 0)
    assert settings.metrics_port == 9464
    assert settings.state_dir == Path("/srv/cb-state")
    assert settings.mqtt_ca_file == "/srv/cb-state/mosquitto/ca.crt"
    assert (settings.log_level, settings.log_format) == ("INFO", "plain")


def test_environment_then_env_file_then_default(
    env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file.write_text(
        "# generated\n"
        "CAREBEACON_PG_HOST=db.from-file\n"
        "CAREBEACON_PG_PORT=6001\n"
        "CAREBEACON_PG_PASSWORD=from-file\n"
        "CAREBEACON_SOMETHING_ELSE=ignored\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CAREBEACON_PG_PORT", "6002")
    monkeypatch.setenv("CAREBEACON_PG_HOST", "")  # empty counts as unset
    monkeypatch.setenv("CAREBEACON_LOG_FORMAT", "json")
    monkeypatch.setenv("CAREBEACON_LOG_LEVEL", "debug")
    settings = Settings.from_env()
    assert settings.pg_host == "db.from-file"
    assert settings.pg_port == 6002
    assert settings.pg_password.get_secret_value() == "from-file"
    assert settings.pg_user == "carebeacon"
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    derived = settings.model_copy(update={"pg_database": "other"})
    assert (derived.pg_database, settings.pg_database) == ("other", "carebeacon")


def test_no_secret_in_any_repr_or_log(
    env_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env_file.write_text(f"CAREBEACON_MQTT_ADMIN_PASSWORD={PLANTED}-admin\n", encoding="utf-8")
    monkeypatch.setenv("CAREBEACON_PG_PASSWORD", PLANTED)
    monkeypatch.setenv("CAREBEACON_MQTT_INGEST_PASSWORD", f"{PLANTED}-ingest")
    settings = Settings.from_env()
    ingest = IngestConfig.from_env(settings)
    app = create_app(settings, provision_gateway=lambda gateway_id, password: None)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("carebeacon.test").info("settings %s, ingest %r", settings, ingest)
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
        repr(ingest),
        str(ingest),
        repr(app.state.cb),
        caplog.text,
    ]
    for text in shown:
        assert "Pl4nted" not in text
        assert "pass word" not in text
    # the one string that carries it: the conninfo, quoted
    conninfo = settings.pg_conninfo("x")
    assert PLANTED not in conninfo  # reserved characters are quoted…
    assert unquote(urlsplit(conninfo).password or "") == PLANTED  # …and it round-trips
    assert settings.mqtt_ingest_password.get_secret_value() == f"{PLANTED}-ingest"
    assert settings.mqtt_admin_password.get_secret_value() == f"{PLANTED}-admin"


@pytest.mark.db
def test_a_refused_login_does_not_echo_the_password(
    settings: Settings, env_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = settings.model_copy(update={"pg_password": SecretStr(PLANTED)})
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(wrong.pg_conninfo("postgres"), connect_timeout=5).close()
    assert "Pl4nted" not in str(refused.value)
    assert "Pl4nted" not in repr(refused.value)
