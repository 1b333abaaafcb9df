"""Gateway configuration files for tests, and a look at a stopped gateway's state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from carebeacon.settings import Settings
from gateway import Outbox
from gateway.config import GatewayConfig, load_config
from tests.support.broker import Login

__all__ = ["make_config", "read_state", "write_config"]


def write_config(
    directory: Path,
    login: Login,
    settings: Settings,
    *,
    port: int | None = None,
    devices: list[dict[str, str]] | None = None,
    extra: str = "",
    state_dir: Path | None = None,
) -> Path:
    (directory / "password").write_text(login.password + "\n", encoding="utf-8")
    lines = [
        f'gateway_id = "{login.gateway_id}"',
        f'state_dir = "{state_dir or directory / "state"}"',
        'timezone = "Europe/Berlin"',
        "status_interval = 5",
        extra,
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {port or settings.mqtt_tls_port}",
        f'ca_file = "{settings.mqtt_ca_file}"',
        'password_file = "password"',
        "publish_timeout = 5",
        "[ble]",
        "reconnect_base = 0.2",
        "reconnect_cap = 2.0",
        "revisit_seconds = 0.5",
        "connect_timeout = 5.0",
    ]
    for device in devices or []:
        lines.append("[[devices]]")
        lines += [f'{key} = "{value}"' for key, value in device.items()]
    path = directory / "gateway.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_config(directory: Path, login: Login, settings: Settings, **kwargs: Any) -> GatewayConfig:
    return load_config(write_config(directory, login, settings, **kwargs), environ={})


def read_state(config: GatewayConfig) -> Outbox:
    """A read-only look at the gateway's database (after it stopped)."""
    return Outbox(config.state_dir / "gateway.sqlite3", max_readings=config.outbox.max_readings)
