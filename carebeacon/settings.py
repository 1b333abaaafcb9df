"""Configuration from ``CAREBEACON_*`` environment variables.

The project's own services (``carebeacon services up``) write their generated credentials to
``$CAREBEACON_STATE_DIR/carebeacon.env``; values found there are used when the variable is not
set in the environment. Secrets are never taken from the command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = ["Settings", "load_env_file", "state_dir"]


def state_dir() -> Path:
    """Where the project's services keep their state (broker data, certificates, secrets)."""
    explicit = os.environ.get("CAREBEACON_STATE_DIR")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/lib/carebeacon")
    return Path.home() / ".local" / "state" / "carebeacon"


def load_env_file(path: Path) -> dict[str, str]:
    """Read ``KEY=value`` lines (no shell quoting, ``#`` comments)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True, slots=True)
class Settings:
    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str
    pg_database: str
    mqtt_host: str
    mqtt_port: int
    mqtt_tls_port: int
    mqtt_ca_file: str
    mqtt_ingest_user: str
    mqtt_ingest_password: str
    mqtt_admin_user: str
    mqtt_admin_password: str
    metrics_port: int

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        file_values = load_env_file(
            Path(env.get("CAREBEACON_ENV_FILE", str(state_dir() / "carebeacon.env")))
        )

        def get(name: str, default: str) -> str:
            key = f"CAREBEACON_{name}"
            return env.get(key) or file_values.get(key) or default

        return cls(
            pg_host=get("PG_HOST", "127.0.0.1"),
            pg_port=int(get("PG_PORT", "55432")),
            pg_user=get("PG_USER", "carebeacon"),
            pg_password=get("PG_PASSWORD", ""),
            pg_database=get("PG_DATABASE", "carebeacon"),
            mqtt_host=get("MQTT_HOST", "127.0.0.1"),
            mqtt_port=int(get("MQTT_PORT", "18883")),
            mqtt_tls_port=int(get("MQTT_TLS_PORT", "18884")),
            mqtt_ca_file=get("MQTT_CA_FILE", str(state_dir() / "mosquitto" / "ca.crt")),
            mqtt_ingest_user=get("MQTT_INGEST_USER", "ingest"),
            mqtt_ingest_password=get("MQTT_INGEST_PASSWORD", ""),
            mqtt_admin_user=get("MQTT_ADMIN_USER", "admin"),
            mqtt_admin_password=get("MQTT_ADMIN_PASSWORD", ""),
            metrics_port=int(get("METRICS_PORT", "9464")),
        )

    def pg_conninfo(self, database: str | None = None) -> str:
        db = database or self.pg_database
        return (
            f"postgresql://{quote(self.pg_user)}:{quote(self.pg_password, safe='')}"
            f"@{self.pg_host}:{self.pg_port}/{quote(db)}"
        )
