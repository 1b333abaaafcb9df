"""ingest: MQTT consumer, validation, device→patient resolution, idempotent storage, quarantine."""

from ingest.errors import IngestError, RejectedReading

__all__ = ["IngestError", "RejectedReading"]
