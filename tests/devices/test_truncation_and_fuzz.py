"""Every prefix shorter than a complete value raises ParseError; random bytes raise nothing
but ParseError (codecs and canonical readings alike)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from devices import (
    CHARACTERISTICS,
    FLAGS,
    MEASUREMENT_CHARACTERISTICS,
    DeviceIdentity,
    ParseError,
    canonical_reading,
    decode,
)
from tests.support.vectors import FULL, RACP_FORMS

DIS = {"2a24", "2a25", "2a26", "2a27", "2a28", "2a29"}  # strings: any length is complete


def test_every_characteristic_has_a_full_vector() -> None:
    assert set(CHARACTERISTICS) - DIS == set(FULL)


@pytest.mark.parametrize("characteristic", sorted(FULL))
def test_every_shorter_prefix_raises_parse_error(characteristic: str) -> None:
    data = bytes.fromhex(FULL[characteristic])
    decode(characteristic, data)  # the complete value parses
    for size in range(len(data)):
        with pytest.raises(ParseError):
            decode(characteristic, data[:size])


@pytest.mark.parametrize("form", RACP_FORMS)
def test_racp_operand_prefixes_raise_parse_error(form: str) -> None:
    data = bytes.fromhex(form)
    decode("2a52", data)
    for size in range(len(data)):
        prefix = data[:size]
        if size == 2 and prefix[0] in (1, 2, 4) and prefix[1] in (0, 1, 5, 6):
            continue  # "report all" etc. is complete at two bytes
        with pytest.raises(ParseError):
            decode("2a52", prefix)


def test_truncated_utf8_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        decode("2a29", "Bürker".encode()[:2])


def test_parse_error_names_sizes_and_flags_never_bytes() -> None:
    data = bytes.fromhex("1e8a00580078")  # flags announce 19 bytes; payload values follow
    with pytest.raises(ParseError) as caught:
        decode("2a35", data)
    message = str(caught.value)
    assert "6 bytes" in message
    assert "needs 19" in message
    assert "flags 0x1e" in message
    assert "8a" not in message.replace("0x1e", "")
    assert (caught.value.size, caught.value.required, caught.value.flags) == (6, 19, 0x1E)
    assert isinstance(caught.value, ValueError)


DEVICE = DeviceIdentity("fuzz", "glucose_meter")
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("characteristic", sorted(CHARACTERISTICS))
def test_fuzz_decoders_raise_only_parse_error(characteristic: str) -> None:
    rng = random.Random(f"carebeacon-fuzz-{characteristic}")
    for _ in range(3000):
        data = rng.randbytes(rng.randint(0, 40))
        try:
            value = decode(characteristic, data)
        except ParseError:
            continue
        assert value is not None


@pytest.mark.parametrize("characteristic", MEASUREMENT_CHARACTERISTICS)
def test_fuzz_canonical_readings_raise_only_parse_error(characteristic: str) -> None:
    rng = random.Random(f"carebeacon-canonical-{characteristic}")
    seed = bytes.fromhex(FULL[characteristic])
    for i in range(3000):
        if i % 2:
            data = rng.randbytes(rng.randint(0, 40))
        else:  # mutate a valid value: keeps the flags plausible, so deeper paths run
            mutable = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                mutable[rng.randrange(len(mutable))] = rng.randrange(256)
            data = bytes(mutable[: rng.randint(0, len(mutable) + 2)])
        try:
            reading = canonical_reading(characteristic, data, DEVICE, RECEIVED)
        except ParseError:
            continue
        assert reading.flags == tuple(sorted(set(reading.flags)))
        assert set(reading.flags) <= set(FLAGS)
        reading.to_json()
