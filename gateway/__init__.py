"""CareBeacon home gateway: BLE health devices → durable outbox → MQTT.

Run it with ``carebeacon gateway --config gateway.toml`` (:func:`gateway.service.main`).
"""

from gateway.allowlist import Allowlist, address_identity
from gateway.backoff import Backoff
from gateway.config import DeviceEntry, GatewayConfig, load_config, parse_config
from gateway.errors import ConfigError, GatewayError, OutboxFull, PublishDenied
from gateway.outbox import DeviceState, Outbox
from gateway.status import StatusBoard, build_status

__all__ = [
    "Allowlist",
    "Backoff",
    "ConfigError",
    "DeviceEntry",
    "DeviceState",
    "GatewayConfig",
    "GatewayError",
    "Outbox",
    "OutboxFull",
    "PublishDenied",
    "StatusBoard",
    "address_identity",
    "build_status",
    "load_config",
    "parse_config",
]
