"""Shared wire helpers: length checks and the little-endian integer layouts."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context

from devices.errors import EncodeError, ParseError

__all__ = [
    "EXACT",
    "SINT16",
    "UINT8",
    "UINT16",
    "UINT32",
    "BitField",
    "check_length",
    "check_sint",
    "check_uint",
    "join_fields",
    "read_uint",
    "split_fields",
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


def read_uint(layout: struct.Struct, data: bytes, what: str) -> tuple[int, bytes]:
    """The unsigned integer ``layout`` at the start of ``data`` and the bytes after it (a
    characteristic's ``extra``); :class:`ParseError` when ``data`` is too short."""
    check_length(data, layout.size, what)
    return layout.unpack_from(data)[0], bytes(data[layout.size :])


@dataclass(frozen=True, slots=True)
class BitField:
    """A multi-bit field inside a flags word (e.g. a resolution in a Feature characteristic)."""

    name: str
    shift: int
    width: int

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift


def split_fields(value: int, fields: Sequence[BitField]) -> tuple[int, tuple[int, ...]]:
    """``value`` without the bits of ``fields`` (the single-bit flags, unknown ones kept), and
    the value of each field."""
    bits = value
    for field in fields:
        bits &= ~field.mask
    return bits, tuple((value & field.mask) >> field.shift for field in fields)


def join_fields(bits: int, size: int, fields: Sequence[tuple[BitField, int]], what: str) -> int:
    """The ``size``-bit word ``what`` of the single-bit flags ``bits`` and each field's value;
    :class:`EncodeError` when a value does not fit or ``bits`` overlap a field."""
    value = check_uint(bits, size, what)
    for field, field_value in fields:
        if bits & field.mask:
            raise EncodeError(f"{what} bits overlap the {field.name} field")
        value |= check_uint(field_value, field.width, field.name) << field.shift
    return value
