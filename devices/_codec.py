"""Shared wire helpers: length checks and the little-endian integer layouts."""

from __future__ import annotations

import struct
from decimal import ROUND_HALF_EVEN, Context

from devices.errors import EncodeError, ParseError

__all__ = [
    "EXACT",
    "SINT16",
    "UINT8",
    "UINT16",
    "UINT32",
    "check_length",
    "check_sint",
    "check_uint",
    "unpack_at",
]

#: the decimal context of every computation in this package: wide enough that products of wire
#: values and conversion factors are exact whatever the caller's thread context says
EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN)

UINT8 = struct.Struct("<B")
UINT16 = struct.Struct("<H")
SINT16 = struct.Struct("<h")
UINT32 = struct.Struct("<I")


def check_length(data: bytes, required: int, what: str, flags: int | None = None) -> None:
    """Raise :class:`ParseError` unless ``data`` holds at least ``required`` bytes."""
    if len(data) < required:
        raise ParseError(what, size=len(data), required=required, flags=flags)


def unpack_at(layout: struct.Struct, data: bytes, offset: int, what: str) -> tuple[int, ...]:
    """``layout`` read at ``offset``: :class:`ParseError` (not ``struct.error``) when ``data``
    is too short, and for a negative offset (``unpack_from`` would count it from the end)."""
    if offset < 0:
        raise ParseError(what, size=len(data), reason="negative offset")
    try:
        return layout.unpack_from(data, offset)
    except struct.error as exc:
        raise ParseError(what, size=len(data), required=offset + layout.size) from exc


def check_uint(value: int, bits: int, field: str) -> int:
    """``value`` if it fits an unsigned field of ``bits`` bits, else :class:`EncodeError`."""
    if not 0 <= value < (1 << bits):
        raise EncodeError(f"{field} does not fit an unsigned {bits}-bit field")
    return value


def check_sint(value: int, bits: int, field: str) -> int:
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise EncodeError(f"{field} does not fit a signed {bits}-bit field")
    return value
