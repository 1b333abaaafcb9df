"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) numbers, exact.

A number is ``mantissa * 10**exponent`` with both parts in two's complement: SFLOAT has a
4-bit exponent (high nibble) and a 12-bit mantissa, FLOAT an 8-bit exponent (high byte) and a
24-bit mantissa. Decoding gives a :class:`~decimal.Decimal` (exact: ``18.9`` stays ``18.9``).

Five raw values (exponent 0, mantissa at the top of the range) are not numbers: NaN, NRes
(not at this resolution), +INFINITY, -INFINITY and one reserved value. They decode to a
:class:`SpecialValue`, which is data: it is never turned into a float.

The special values are recognised by the whole raw value (as Nordic's Android BLE library
does); a raw value with a non-zero exponent is always a number. The encoder keeps the
``Decimal``'s own exponent when it fits, otherwise drops trailing zeros or grows the mantissa,
and never emits a number whose raw value would read back as a special value (2046 with
exponent 0, for instance, has no exact SFLOAT: :class:`EncodeError`).
"""

from __future__ import annotations

import enum
import struct
from decimal import Decimal
from typing import TypeAlias

from devices._codec import EXACT, unpack_at
from devices.errors import EncodeError

__all__ = [
    "FLOAT_SIZE",
    "SFLOAT_SIZE",
    "Number",
    "SpecialValue",
    "decode_float",
    "decode_sfloat",
    "encode_float",
    "encode_sfloat",
    "float_from_raw",
    "float_to_raw",
    "sfloat_from_raw",
    "sfloat_to_raw",
]


class SpecialValue(enum.Enum):
    """A value that IEEE 11073 reserves: it names a condition, it is not a number."""

    NAN = "nan"
    NRES = "nres"
    POSITIVE_INFINITY = "positive_infinity"
    NEGATIVE_INFINITY = "negative_infinity"
    RESERVED = "reserved"


#: what an SFLOAT or FLOAT field holds: an exact number or a special value
Number: TypeAlias = Decimal | SpecialValue

SFLOAT_SIZE = 2
FLOAT_SIZE = 4

_SFLOAT = struct.Struct("<H")
_FLOAT = struct.Struct("<I")

_SFLOAT_SPECIAL: dict[int, SpecialValue] = {
    0x07FF: SpecialValue.NAN,
    0x0800: SpecialValue.NRES,
    0x07FE: SpecialValue.POSITIVE_INFINITY,
    0x0802: SpecialValue.NEGATIVE_INFINITY,
    0x0801: SpecialValue.RESERVED,
}
_FLOAT_SPECIAL: dict[int, SpecialValue] = {
    0x007FFFFF: SpecialValue.NAN,
    0x00800000: SpecialValue.NRES,
    0x007FFFFE: SpecialValue.POSITIVE_INFINITY,
    0x00800002: SpecialValue.NEGATIVE_INFINITY,
    0x00800001: SpecialValue.RESERVED,
}
_SFLOAT_RAW = {special: raw for raw, special in _SFLOAT_SPECIAL.items()}
_FLOAT_RAW = {special: raw for raw, special in _FLOAT_SPECIAL.items()}


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _from_raw(raw: int, mbits: int, ebits: int, specials: dict[int, SpecialValue]) -> Number:
    special = specials.get(raw)
    if special is not None:
        return special
    mantissa = _signed(raw & ((1 << mbits) - 1), mbits)
    exponent = _signed(raw >> mbits, ebits)
    return Decimal(mantissa).scaleb(exponent, EXACT)


def _to_raw(
    value: Number,
    mbits: int,
    ebits: int,
    specials: dict[int, SpecialValue],
    raws: dict[SpecialValue, int],
    name: str,
) -> int:
    if isinstance(value, SpecialValue):
        return raws[value]
    if not isinstance(value, Decimal) or not value.is_finite():
        raise EncodeError(f"{name} encodes finite Decimals and SpecialValue members only")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    exp: int = exponent
    mantissa = int("".join(map(str, digits)) or "0")
    if sign:
        mantissa = -mantissa
    mmax, mmin = (1 << (mbits - 1)) - 1, -(1 << (mbits - 1))
    emax, emin = (1 << (ebits - 1)) - 1, -(1 << (ebits - 1))
    if mantissa == 0:  # keep a zero's exponent (byte-exact round trips), clamped to range
        exp = max(emin, min(emax, exp))
    # drop trailing zeros while the mantissa or the exponent is out of range
    while (not mmin <= mantissa <= mmax or exp < emin) and mantissa % 10 == 0 and mantissa:
        mantissa //= 10
        exp += 1
    # then bring a too large exponent down by growing the mantissa
    while exp > emax and mmin <= mantissa * 10 <= mmax:
        mantissa *= 10
        exp -= 1
    if not (mmin <= mantissa <= mmax and emin <= exp <= emax):
        raise EncodeError(f"{name} cannot represent this value exactly")
    raw = ((exp & ((1 << ebits) - 1)) << mbits) | (mantissa & ((1 << mbits) - 1))
    if raw in specials:
        # mantissa at the top of the range with exponent 0: try one step either way
        if mantissa % 10 == 0:
            mantissa, exp = mantissa // 10, exp + 1
        elif mmin <= mantissa * 10 <= mmax and exp - 1 >= emin:
            mantissa, exp = mantissa * 10, exp - 1
        else:
            raise EncodeError(
                f"{name} cannot represent this value: it collides with a special value"
            )
        raw = ((exp & ((1 << ebits) - 1)) << mbits) | (mantissa & ((1 << mbits) - 1))
    return raw


def sfloat_from_raw(raw: int) -> Number:
    """The number (or special value) of a 16-bit SFLOAT given as an unsigned integer."""
    return _from_raw(raw & 0xFFFF, 12, 4, _SFLOAT_SPECIAL)


def sfloat_to_raw(value: Number) -> int:
    """The 16-bit SFLOAT of ``value``; :class:`EncodeError` if it is not exactly representable."""
    return _to_raw(value, 12, 4, _SFLOAT_SPECIAL, _SFLOAT_RAW, "SFLOAT")


def float_from_raw(raw: int) -> Number:
    """The number (or special value) of a 32-bit FLOAT given as an unsigned integer."""
    return _from_raw(raw & 0xFFFFFFFF, 24, 8, _FLOAT_SPECIAL)


def float_to_raw(value: Number) -> int:
    """The 32-bit FLOAT of ``value``; :class:`EncodeError` if it is not exactly representable."""
    return _to_raw(value, 24, 8, _FLOAT_SPECIAL, _FLOAT_RAW, "FLOAT")


def decode_sfloat(data: bytes, offset: int = 0) -> Number:
    """The SFLOAT at ``offset`` (little-endian); too few bytes raise :class:`ParseError`."""
    return sfloat_from_raw(unpack_at(_SFLOAT, data, offset, "SFLOAT")[0])


def encode_sfloat(value: Number) -> bytes:
    return _SFLOAT.pack(sfloat_to_raw(value))


def decode_float(data: bytes, offset: int = 0) -> Number:
    """The FLOAT at ``offset`` (little-endian); too few bytes raise :class:`ParseError`."""
    return float_from_raw(unpack_at(_FLOAT, data, offset, "FLOAT")[0])


def encode_float(value: Number) -> bytes:
    return _FLOAT.pack(float_to_raw(value))
