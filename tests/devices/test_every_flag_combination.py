"""Byte-level: for EVERY combination of a flags field's bits (uint8 flags: all 256 values,
reserved bits included; Body Composition's uint16: all 2**13 defined-bit combinations, each with
random reserved bits 13-15), a payload with seeded random field contents decodes and
re-encodes to the same bytes."""

from __future__ import annotations

import random

import pytest

from devices import decode

#: characteristic → size of its flags field in bytes
FLAGGED = {"2a35": 1, "2a36": 1, "2a18": 1, "2a34": 1, "2a9d": 1, "2a9c": 2}


@pytest.mark.parametrize("characteristic", sorted(FLAGGED))
def test_every_flags_value_round_trips_byte_exact(characteristic: str) -> None:
    size = FLAGGED[characteristic]
    rng = random.Random(f"carebeacon-flags-{characteristic}")
    for combination in range(1 << 8 if size == 1 else 1 << 13):
        flags = combination if size == 1 else combination | rng.randrange(8) << 13
        for tail in (0, 3):  # exactly the announced fields, and with trailing bytes
            body = rng.randbytes(48)
            data = flags.to_bytes(size, "little") + body
            full = decode(characteristic, data)
            used = len(data) - len(full.extra)  # type: ignore[attr-defined]
            data = data[: used + tail]
            value = decode(characteristic, data)
            assert bytes(value) == data  # type: ignore[call-overload]
