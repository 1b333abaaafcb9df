"""IEEE 11073 SFLOAT / FLOAT: exact decode, special values as data, exact encode."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import EncodeError, SpecialValue, decode_float, decode_sfloat, encode_float
from devices.ieee11073 import float_from_raw, float_to_raw, sfloat_from_raw, sfloat_to_raw

SETTINGS = settings(database=None, deadline=None, max_examples=300)


@pytest.mark.parametrize(
    ("hex_", "expected"),
    [
        # Nordic Android-BLE-Common-Library BloodPressureMeasurementDataCallbackTest
        ("8a00", Decimal("138")),
        ("bdf0", Decimal("18.9")),  # mantissa 189, exponent -1
        ("9ff0", Decimal("15.9")),
        ("0b00", Decimal("11")),
        # IEEE 11073-20601 special values (GATT Specification Supplement, SFLOAT)
        ("ff07", SpecialValue.NAN),
        ("0008", SpecialValue.NRES),
        ("fe07", SpecialValue.POSITIVE_INFINITY),
        ("0208", SpecialValue.NEGATIVE_INFINITY),
        ("0108", SpecialValue.RESERVED),
        # two's complement on both parts (the exponent-sign trap of public parsers)
        ("ffff", Decimal("-0.1")),  # exponent -1, mantissa -1
        ("0170", Decimal("1E+7")),  # exponent 7, mantissa 1
        ("0180", Decimal("1E-8")),  # exponent -8, mantissa 1
        ("0008"[::-1], Decimal("128")),  # 0x0080: exponent 0, mantissa 128
        ("00f8", Decimal("-204.8")),  # exponent -1, mantissa -2048
        ("ff17", Decimal("20470")),  # exponent 1, mantissa 2047: a number, not NaN
    ],
)
def test_sfloat_vectors(hex_: str, expected: Decimal | SpecialValue) -> None:
    assert decode_sfloat(bytes.fromhex(hex_)) == expected


@pytest.mark.parametrize(
    ("hex_", "expected"),
    [
        ("ffff7f00", SpecialValue.NAN),
        ("00008000", SpecialValue.NRES),
        ("feff7f00", SpecialValue.POSITIVE_INFINITY),
        ("02008000", SpecialValue.NEGATIVE_INFINITY),
        ("01008000", SpecialValue.RESERVED),
        ("6c0100fe", Decimal("3.64")),  # exponent -2, mantissa 364 (body temperature style)
        ("ffffffff", Decimal("-0.1")),
        ("01000007", Decimal("1E+7")),
    ],
)
def test_float_vectors(hex_: str, expected: Decimal | SpecialValue) -> None:
    assert decode_float(bytes.fromhex(hex_)) == expected


def test_exactness_is_kept() -> None:
    value = decode_sfloat(bytes.fromhex("bdf0"))
    assert isinstance(value, Decimal)
    assert str(value) == "18.9"


@pytest.mark.parametrize(
    "value", ["2046", "2047", "-2046", "-2047", "-2048", "0.000001234", "2045E+8"]
)
def test_values_without_exact_sfloat_are_refused(value: str) -> None:
    with pytest.raises(EncodeError):
        sfloat_to_raw(Decimal(value))


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity")])
def test_decimal_specials_are_refused(value: Decimal) -> None:
    with pytest.raises(EncodeError):
        encode_float(value)


def test_encoder_normalises_exponents() -> None:
    assert sfloat_to_raw(Decimal("1E+8")) == 0x700A  # 10 x 10^7
    assert sfloat_to_raw(Decimal("12000.000")) == 0x14B0  # 1200 x 10^1
    assert sfloat_to_raw(Decimal("0.00")) == 0xE000  # a zero keeps its exponent
    assert sfloat_to_raw(Decimal(0)) == 0


@SETTINGS
@given(st.integers(0, 0xFFFF))
def test_sfloat_raw_round_trip(raw: int) -> None:
    value = sfloat_from_raw(raw)
    assert sfloat_from_raw(sfloat_to_raw(value)) == value


@SETTINGS
@given(st.integers(0, 0xFFFFFFFF))
def test_float_raw_round_trip(raw: int) -> None:
    value = float_from_raw(raw)
    assert float_from_raw(float_to_raw(value)) == value


@SETTINGS
@given(st.integers(-2045, 2045), st.integers(-8, 7))
def test_sfloat_numbers_round_trip(mantissa: int, exponent: int) -> None:
    value = Decimal(mantissa).scaleb(exponent)
    assert sfloat_from_raw(sfloat_to_raw(value)) == value


@SETTINGS
@given(st.integers(-(2**23) + 3, 2**23 - 3), st.integers(-128, 127))
def test_float_numbers_round_trip(mantissa: int, exponent: int) -> None:
    value = Decimal(mantissa).scaleb(exponent)
    assert float_from_raw(float_to_raw(value)) == value


def test_every_sfloat_raw_value_re_encodes_to_itself() -> None:
    for raw in range(0x10000):
        assert sfloat_to_raw(sfloat_from_raw(raw)) == raw


@SETTINGS
@given(st.integers(0, 0xFFFFFFFF))
def test_float_raw_values_re_encode_to_themselves(raw: int) -> None:
    assert float_to_raw(float_from_raw(raw)) == raw
