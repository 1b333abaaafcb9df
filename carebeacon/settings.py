"""Configuration: one source, the ``CAREBEACON_*`` variables.

Each setting is read from, in order: the environment; the generated env file
(``$CAREBEACON_STATE_DIR/carebeacon.env``, or ``$CAREBEACON_ENV_FILE``), where
``carebeacon services up`` writes the development credentials; the default. An empty value
counts as unset. ``CAREBEACON_STATE_DIR`` and ``CAREBEACON_ENV_FILE`` locate the file, so they
are read from the environment only. Secrets are ``SecretStr``: no repr, str, log line or JSON
dump shows them (``pg_conninfo()`` is the one string that carries the database password); they
are never taken from the command line.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = ["ENV_PREFIX", "Settings", "env_file", "read_env_file", "state_dir"]

ENV_PREFIX = "CAREBEACON_"


def state_dir() -> Path:
    """Where the project's services keep their state (broker data, certificates, secrets)."""
    explicit = os.environ.get(f"{ENV_PREFIX}STATE_DIR")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/lib/carebeacon")
    return Path.home() / ".local" / "state" / "carebeacon"


def env_file() -> Path:
    """The generated env file: ``$CAREBEACON_ENV_FILE``, else ``<state dir>/carebeacon.env``."""
    explicit = os.environ.get(f"{ENV_PREFIX}ENV_FILE")
    return Path(explicit) if explicit else state_dir() / "carebeacon.env"


def read_env_file(path: Path) -> dict[str, str]:
    """The file's ``KEY=value`` lines (the parser the settings use; missing file: empty)."""
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "carebeacon"


def _ca_file(data: dict[str, Any]) -> str:
    return str(Path(data["state_dir"]) / "mosquitto" / "ca.crt")


class Settings(BaseSettings):
    """The server side's settings (README, Configuration). Immutable: derive a variant with
    ``settings.model_copy(update={"pg_database": name})``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,  # a validation error must not echo a secret
    )

    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_user: str = "carebeacon"
    pg_password: SecretStr = SecretStr("")
    pg_database: str = "carebeacon"
    state_dir: Path = Field(default_factory=state_dir)
    cache_dir: Path = Field(default_factory=_cache_dir)
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 18883
    mqtt_tls_port: int = 18884
    mqtt_tls_bind: str = "127.0.0.1"  # the development broker's gateway listener address
    mqtt_ca_file: str = Field(default_factory=_ca_file)
    mqtt_ingest_user: str = "ingest"
    mqtt_ingest_password: SecretStr = SecretStr("")
    mqtt_admin_user: str = "admin"
    mqtt_admin_password: SecretStr = SecretStr("")
    # the broker's log, for ingest to count the publishes its ACL refused (empty: not followed)
    mqtt_log_file: str = ""
    ingest_client_id: str = Field(default_factory=lambda: f"ingest-{socket.gethostname()}")
    ingest_share_group: str = ""
    ingest_batch_messages: int = Field(default=1000, ge=1)
    ingest_batch_readings: int = Field(default=5000, ge=1)
    # the receive window: messages delivered to ingest and not yet acknowledged (MQTT 5
    # Receive Maximum, at most 65535); a larger backlog waits in the broker
    ingest_receive_maximum: int = Field(default=2000, ge=1, le=65535)
    ingest_writers: int = Field(default=2, ge=1, le=8)
    ingest_flush_ms: float = 0.0
    ingest_session_expiry_seconds: int = 7 * 24 * 3600
    # the largest message payload ingest accepts (larger: quarantined as ``oversized``); the
    # broker's max_packet_size is rendered from it, with room for the topic and headers
    mqtt_max_payload_bytes: int = Field(default=1_048_576, ge=1024)
    # quarantine: a payload is kept up to this many bytes (with its full size and SHA-256); a
    # gateway fills at most this many rows and bytes in 24 h, then its quarantined messages
    # are counted in one summary row per reason and day
    ingest_quarantine_payload_bytes: int = Field(default=65_536, ge=1024)
    ingest_quarantine_rows_per_gateway: int = Field(default=1000, ge=1)
    ingest_quarantine_bytes_per_gateway: int = Field(default=8_388_608, ge=1024)
    metrics_port: int = 9464
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["plain", "json"] = "plain"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the env file's place is known only when the settings are read
        return (
            init_settings,
            env_settings,
            DotEnvSettingsSource(settings_cls, env_file=env_file()),
        )

    @classmethod
    def from_env(cls) -> Settings:
        """The environment, then the env file, then the defaults."""
        return cls()

    def pg_conninfo(self, database: str | None = None) -> str:
        """A libpq URI for the database (default ``pg_database``); it carries the password."""
        db = database or self.pg_database
        password = quote(self.pg_password.get_secret_value(), safe="")
        return (
            f"postgresql://{quote(self.pg_user)}:{password}"
            f"@{self.pg_host}:{self.pg_port}/{quote(db)}"
        )
