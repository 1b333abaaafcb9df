"""The ingest package's exception tree."""

from __future__ import annotations

__all__ = ["IngestError", "RejectedReading"]


class IngestError(Exception):
    """Base of every error raised by ``ingest``."""


class RejectedReading(IngestError):
    """A message or reading that cannot be stored; it goes to quarantine with ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
