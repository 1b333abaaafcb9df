"""The gateway's exception tree: one base class, attributes rather than text."""

from __future__ import annotations

__all__ = ["ConfigError", "GatewayError", "OutboxFull", "PublishDenied"]


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration file (or a server-pushed config) is not valid."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class OutboxFull(GatewayError):
    """The outbox holds ``limit`` unacknowledged readings: nothing new is accepted."""

    def __init__(self, depth: int, limit: int, incoming: int) -> None:
        super().__init__(f"outbox full: {depth} of {limit} readings pending, {incoming} refused")
        self.depth = depth
        self.limit = limit
        self.incoming = incoming


class PublishDenied(GatewayError):
    """The broker answered a QoS 1 publish with an MQTT 5 failure reason code (e.g. 135)."""

    def __init__(self, reason_code: int, reason: str) -> None:
        super().__init__(f"publish refused by the broker: {reason} ({reason_code})")
        self.reason_code = reason_code
        self.reason = reason


class NoSubscribers(GatewayError):
    """The broker took a QoS 1 publish but said no one subscribes to it (MQTT 5 reason 16):
    nothing will store it (e.g. ingest's shared subscription is not yet restored after a broker
    restart), so the readings stay in the outbox and are sent again."""

    def __init__(self) -> None:
        super().__init__("the broker has no subscriber for the readings (reason 16)")
