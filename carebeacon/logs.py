"""Logging setup: one ``dictConfig`` for every entry point, plain text or JSON lines on stderr.

``configure_logging(level, json=False)`` replaces the root logger's handlers (calling it twice
leaves one handler). A JSON line is one object: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message`` and, for an exception, ``exception``. Libraries that print Bluetooth addresses,
payloads or URL paths (which carry patient ids) stay at WARNING whatever the level: bleak and
its D-Bus layer, bumble, aiomqtt, uvicorn's access log.

Standard library only: the gateway (without the server extra) uses it too.
"""

from __future__ import annotations

import json as _json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

__all__ = ["QUIET_LOGGERS", "JsonFormatter", "configure_logging", "logging_config"]

QUIET_LOGGERS = (
    "bleak",
    "bleak_retry_connector",
    "dbus_fast",
    "bumble",
    "aiomqtt",
    "devices",
    "uvicorn.access",
)
"""Held at WARNING whatever the configured level (they print addresses, payloads or paths)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _json.dumps(entry, ensure_ascii=False)


def logging_config(level: str = "INFO", *, json: bool = False) -> dict[str, Any]:
    """The ``dictConfig`` schema that :func:`configure_logging` applies."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if json
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"carebeacon": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "carebeacon",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"level": "WARNING"} for name in QUIET_LOGGERS},
    }


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Log to stderr at ``level``, as plain text or (``json``) JSON lines."""
    logging.config.dictConfig(logging_config(level, json=json))
