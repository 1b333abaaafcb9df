"""Gateway configuration: a TOML file, the broker password from a file or the environment.

```toml
gateway_id = "gw-0042"
state_dir = "/var/lib/carebeacon-gateway"
timezone = "Europe/Berlin"          # IANA zone the device clocks are set to

[mqtt]
host = "mqtt.example.org"
port = 8883
ca_file = "/etc/carebeacon-gateway/ca.crt"
# username defaults to gateway_id; the password comes from password_file, else the environment
# variable CAREBEACON_GATEWAY_PASSWORD, else $CREDENTIALS_DIRECTORY/mqtt-password (systemd).

[outbox]
max_readings = 100000               # unacknowledged readings held before reading stops
receipts = true                     # keep each reading until ingest's receipt (readings/2)

[[devices]]                         # the allowlist: by stable identity and/or address
id = "A&D-5123001"
type = "blood_pressure_monitor"
```

The password is never accepted on the command line or in the TOML file itself.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import ConfigError

__all__ = [
    "DEVICE_TYPES",
    "PASSWORD_ENV",
    "SERVER_CONFIG_SCHEMA",
    "BleConfig",
    "DeviceEntry",
    "GatewayConfig",
    "MqttConfig",
    "OutboxConfig",
    "load_config",
    "normalise_address",
    "parse_config",
    "parse_server_config",
    "preflight",
]

PASSWORD_ENV = "CAREBEACON_GATEWAY_PASSWORD"  # noqa: S105 (a variable name)
CREDENTIAL_NAME = "mqtt-password"
SERVER_CONFIG_SCHEMA = "carebeacon.gateway-config/1"
DEVICE_TYPES = frozenset(
    {"blood_pressure_monitor", "glucose_meter", "weight_scale", "body_composition_scale"}
)
_GATEWAY_ID = re.compile(r"^[^/#+:\s]{1,64}$")
_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
_DEVICE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


def normalise_address(address: str) -> str:
    """``aa-bb-…`` / ``aa:bb:…`` → ``AA:BB:…`` (BlueZ form). Other platforms' ids pass unchanged."""
    candidate = address.strip().upper().replace("-", ":")
    return candidate if _ADDRESS.match(candidate) else address.strip()


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One allowlisted device: its type, and its stable identity and/or its BLE address."""

    type: str
    id: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    port: int = 8883
    tls: bool = True
    ca_file: str | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    keepalive: int = 30
    publish_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    max_readings: int = 100_000
    batch_size: int = 50
    max_in_flight: int = 4
    delivered_memory: int = 50_000
    #: ask ingest for receipts (``carebeacon.readings/2``): a reading leaves the outbox on its
    #: receipt, not on the broker's PUBACK, and is sent again after ``receipt_timeout`` seconds
    #: (doubling per attempt, at most an hour); at most ``max_unreceipted`` readings wait for one
    receipts: bool = False
    receipt_timeout: float = 60.0
    max_unreceipted: int = 2000


@dataclass(frozen=True, slots=True)
class BleConfig:
    connect_timeout: float = 15.0
    reconnect_base: float = 1.0
    reconnect_cap: float = 300.0
    #: a device seen advertising is not connected to again within this many seconds of a
    #: complete session (cuffs and scales advertise for a while after each measurement)
    revisit_seconds: float = 30.0
    #: the BlueZ adapter to use (``hci0``, ``hci1`` for a USB dongle); None = BlueZ's default
    adapter: str | None = None
    #: stop scanning during each connection attempt (adapters that cannot do both)
    pause_scan_while_connecting: bool = False


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    gateway_id: str
    state_dir: Path
    timezone: str
    mqtt: MqttConfig
    outbox: OutboxConfig = OutboxConfig()
    ble: BleConfig = BleConfig()
    devices: tuple[DeviceEntry, ...] = ()
    status_interval: float = 300.0
    log_level: str = "INFO"
    log_format: str = "plain"  # or "json": one JSON object per line (carebeacon.logs)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_OUTBOXCONFIG_DEFAULT = OutboxConfig()
_BLECONFIG_DEFAULT = BleConfig()


def _take(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(key, "must be a number")
    if not isinstance(value, kind):
        raise ConfigError(key, f"must be of type {getattr(kind, '__name__', kind)}")
    return value


def _positive(value: float, key: str) -> None:
    if value <= 0:
        raise ConfigError(key, "must be positive")


def _device_entries(items: Any, where: str) -> tuple[DeviceEntry, ...]:
    if not isinstance(items, list):
        raise ConfigError(where, "must be a list of tables")
    entries: list[DeviceEntry] = []
    for index, item in enumerate(items):
        name = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ConfigError(name, "must be a table")
        kind = item.get("type")
        if kind not in DEVICE_TYPES:
            raise ConfigError(f"{name}.type", f"must be one of {sorted(DEVICE_TYPES)}")
        device_id = item.get("id")
        address = item.get("address")
        if device_id is None and address is None:
            raise ConfigError(name, "needs an id, an address, or both")
        if device_id is not None and (
            not isinstance(device_id, str) or not _DEVICE_ID.match(device_id)
        ):
            raise ConfigError(f"{name}.id", "must be 1-128 printable characters")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ConfigError(f"{name}.address", "must be a non-empty string")
        entries.append(
            DeviceEntry(
                type=kind,
                id=device_id,
                address=normalise_address(address) if address is not None else None,
            )
        )
    return tuple(entries)


def _password(mqtt: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str]) -> str:
    if "password" in mqtt:
        raise ConfigError("mqtt.password", "not allowed in the file; use password_file")
    password_file = _take(mqtt, "password_file", str, None)
    if password_file is not None:
        path = base_dir / str(password_file)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError("mqtt.password_file", f"cannot be read ({exc.strerror})") from exc
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV]
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL_NAME).is_file():
        return (Path(credentials) / CREDENTIAL_NAME).read_text(encoding="utf-8").strip()
    raise ConfigError(
        "mqtt.password",
        f"none given: set password_file, {PASSWORD_ENV}, or a systemd credential "
        f"{CREDENTIAL_NAME!r}",
    )


def parse_config(
    data: Mapping[str, Any], *, base_dir: Path, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate a decoded TOML document; relative paths are taken from ``base_dir``."""
    env = os.environ if environ is None else environ
    gateway_id = data.get("gateway_id")
    if not isinstance(gateway_id, str) or not _GATEWAY_ID.match(gateway_id):
        raise ConfigError("gateway_id", "1-64 characters without '/#+:' or whitespace")
    state_dir = _take(data, "state_dir", str, None)
    if state_dir is None:
        state_dir = env.get("STATE_DIRECTORY", "").split(":")[0] or None
    if state_dir is None:
        raise ConfigError("state_dir", "required (or $STATE_DIRECTORY from systemd)")
    timezone = _take(data, "timezone", str, "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError("timezone", "not a known IANA zone name") from exc

    mqtt_table = _take(data, "mqtt", dict, None)
    if mqtt_table is None:
        raise ConfigError("mqtt", "section required")
    host = _take(mqtt_table, "host", str, None)
    if not host:
        raise ConfigError("mqtt.host", "required")
    tls = _take(mqtt_table, "tls", bool, True)
    ca_file = _take(mqtt_table, "ca_file", str, None)
    if ca_file is not None:
        ca_file = str(base_dir / ca_file)
    mqtt = MqttConfig(
        host=host,
        port=_take(mqtt_table, "port", int, 8883 if tls else 1883),
        tls=tls,
        ca_file=ca_file,
        username=_take(mqtt_table, "username", str, gateway_id),
        password=_password(mqtt_table, base_dir, env),
        keepalive=_take(mqtt_table, "keepalive", int, 30),
        publish_timeout=float(_take(mqtt_table, "publish_timeout", (int, float), 30.0)),
    )
    if not 0 < mqtt.port < 65536:
        raise ConfigError("mqtt.port", "must be 1-65535")

    outbox_table = _take(data, "outbox", dict, {})
    outbox = OutboxConfig(
        max_readings=_take(outbox_table, "max_readings", int, _OUTBOXCONFIG_DEFAULT.max_readings),
        batch_size=_take(outbox_table, "batch_size", int, _OUTBOXCONFIG_DEFAULT.batch_size),
        max_in_flight=_take(
            outbox_table, "max_in_flight", int, _OUTBOXCONFIG_DEFAULT.max_in_flight
        ),
        delivered_memory=_take(
            outbox_table, "delivered_memory", int, _OUTBOXCONFIG_DEFAULT.delivered_memory
        ),
        receipts=_take(outbox_table, "receipts", bool, False),
        receipt_timeout=float(_take(outbox_table, "receipt_timeout", (int, float), 60.0)),
        max_unreceipted=_take(outbox_table, "max_unreceipted", int, 2000),
    )
    for key in (
        "max_readings",
        "batch_size",
        "max_in_flight",
        "delivered_memory",
        "receipt_timeout",
        "max_unreceipted",
    ):
        _positive(getattr(outbox, key), f"outbox.{key}")
    if outbox.batch_size > 50:
        raise ConfigError("outbox.batch_size", "at most 50 readings per message")
    if outbox.max_in_flight > 100:
        raise ConfigError("outbox.max_in_flight", "at most 100 messages")

    ble_table = _take(data, "ble", dict, {})
    ble = BleConfig(
        connect_timeout=float(
            _take(ble_table, "connect_timeout", (int, float), _BLECONFIG_DEFAULT.connect_timeout)
        ),
        reconnect_base=float(
            _take(ble_table, "reconnect_base", (int, float), _BLECONFIG_DEFAULT.reconnect_base)
        ),
        reconnect_cap=float(
            _take(ble_table, "reconnect_cap", (int, float), _BLECONFIG_DEFAULT.reconnect_cap)
        ),
        revisit_seconds=float(
            _take(ble_table, "revisit_seconds", (int, float), _BLECONFIG_DEFAULT.revisit_seconds)
        ),
        adapter=_take(ble_table, "adapter", str, None),
        pause_scan_while_connecting=_take(ble_table, "pause_scan_while_connecting", bool, False),
    )
    if ble.adapter is not None and not re.fullmatch(r"hci[0-9]{1,3}", ble.adapter):
        raise ConfigError("ble.adapter", "a BlueZ adapter name such as hci0 or hci1")
    for key in ("connect_timeout", "reconnect_base", "reconnect_cap"):
        _positive(getattr(ble, key), f"ble.{key}")

    status_interval = float(_take(data, "status_interval", (int, float), 300.0))
    _positive(status_interval, "status_interval")
    log_level = str(_take(data, "log_level", str, "INFO")).upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("log_level", "DEBUG, INFO, WARNING or ERROR")
    log_format = str(_take(data, "log_format", str, "plain")).lower()
    if log_format not in {"plain", "json"}:
        raise ConfigError("log_format", "plain or json")
    return GatewayConfig(
        gateway_id=gateway_id,
        state_dir=base_dir / state_dir,
        timezone=timezone,
        mqtt=mqtt,
        outbox=outbox,
        ble=ble,
        devices=_device_entries(_take(data, "devices", list, []), "devices"),
        status_interval=status_interval,
        log_level=log_level,
        log_format=log_format,
    )


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"invalid TOML ({exc})") from exc
    return parse_config(data, base_dir=path.parent.resolve(), environ=environ)


def parse_server_config(payload: bytes) -> tuple[DeviceEntry, ...] | None:
    """The allowlist from the retained ``…/config`` message; ``None`` for an empty (cleared) one.

    ``{"schema": "carebeacon.gateway-config/1", "devices": [{"id": …, "address": …, "type": …}]}``
    """
    if not payload.strip():
        return None
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("config", "not JSON") from exc
    if not isinstance(body, dict) or body.get("schema") != SERVER_CONFIG_SCHEMA:
        raise ConfigError("config.schema", f"must be {SERVER_CONFIG_SCHEMA!r}")
    return _device_entries(body.get("devices"), "config.devices")


class _Resolver(Protocol):
    def __call__(self, host: str, port: int, *, type: int) -> object: ...


def _resolve(host: str, port: int, *, type: int) -> object:
    return socket.getaddrinfo(host, port, type=type)


def preflight(
    config: GatewayConfig, *, resolve: _Resolver | None = _resolve, create: bool = True
) -> None:
    """What a valid file can still get wrong, checked once at start (``ConfigError``, exit 2):
    the state directory is writable (created if ``create``), the CA file is a usable
    certificate, the broker host has a name (unless ``resolve`` is ``None``). A DNS that does
    not answer *yet* (boot, network down) is not an error here: the publisher retries and says
    why."""
    state = config.state_dir
    if create:
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "state_dir",
                f"{state} cannot be created ({exc.strerror}); create it for the gateway",
            ) from exc
    if state.exists() and not os.access(state, os.W_OK | os.X_OK):
        raise ConfigError("state_dir", f"{state} is not writable by this user")
    mqtt = config.mqtt
    if mqtt.tls and mqtt.ca_file is not None:
        if not Path(mqtt.ca_file).is_file():
            raise ConfigError(
                "mqtt.ca_file",
                f"{mqtt.ca_file} does not exist; copy the broker's CA certificate (ca.crt) there",
            )
        try:
            ssl.create_default_context(cafile=mqtt.ca_file)
        except (OSError, ssl.SSLError) as exc:
            problem = "no PEM certificate in it" if isinstance(exc, ssl.SSLError) else exc.strerror
            raise ConfigError(
                "mqtt.ca_file", f"{mqtt.ca_file} is not a usable CA certificate ({problem})"
            ) from exc
    if resolve is None:
        return
    try:
        resolve(mqtt.host, mqtt.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise ConfigError(
                "mqtt.host", f"{mqtt.host} does not resolve; check the broker's host name"
            ) from exc
    except UnicodeError as exc:
        raise ConfigError("mqtt.host", f"{mqtt.host!r} is not a valid host name") from exc
