"""An ``IntEnum`` that keeps values the specification reserves instead of failing on them."""

from __future__ import annotations

from enum import IntEnum
from typing import Self

__all__ = ["OpenIntEnum"]


class OpenIntEnum(IntEnum):
    """``Cls(value)`` for a value with no member returns a pseudo-member ``RESERVED_<value>``.

    Reserved codes on the wire are data: they must survive a decode/encode round trip.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"RESERVED_{value}"
            member._value_ = value
            return member
        return None
