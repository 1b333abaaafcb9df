"""The schema package's exception tree."""

from __future__ import annotations

__all__ = ["MigrationError", "SchemaError"]


class SchemaError(Exception):
    """Base class of the schema package's errors."""


class MigrationError(SchemaError):
    """A migration cannot be applied (changed after it was applied, or failed)."""
