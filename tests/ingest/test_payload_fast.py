"""Issue 13: the one-pass msgspec decoder changes speed, never an outcome.

``decode_readings`` takes a message that is wholly good in one msgspec pass and sends anything
else through the field-by-field checks (``_decode_checked``). Both must give the same batch —
the same readings, and the same reasons and details for what is rejected — for well-formed,
unusual and mutated messages alike.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.errors import RejectedReading
from ingest.payload import ReadingsBatch, _decode_checked, _decode_fast, decode_readings
from tests.support.readings import batch, bp_reading

GATEWAY = "gw-fast"

_FIELDS = (
    "id",
    "device_id",
    "device_type",
    "manufacturer",
    "model",
    "type",
    "time",
    "measured_at",
    "received_at",
    "sequence",
    "user_index",
    "values",
    "flags",
    "raw",
    "source",
)


def _outcome(decode: Any, payload: bytes) -> Any:
    try:
        result: ReadingsBatch = decode(GATEWAY, payload)
    except RejectedReading as why:
        return ("rejected", why.reason, why.detail)
    readings = [
        tuple((getattr(r, f), type(getattr(r, f))) for f in _FIELDS) for r in result.readings
    ]
    rejected = [(i, item, why.reason, why.detail) for i, item, why in result.rejected]
    return (result.gateway_id, result.sent_at, result.timezone, readings, rejected, result.receipts)


def _same(payload: bytes) -> None:
    assert _outcome(decode_readings, payload) == _outcome(_decode_checked, payload)


def _body(**reading: Any) -> bytes:
    r = bp_reading("cuff-1")
    r.update(reading)
    return batch(GATEWAY, [r, bp_reading("cuff-2")])


def test_a_good_message_takes_the_fast_path_and_gives_the_same_batch() -> None:
    payload = batch(GATEWAY, [bp_reading("cuff-1", flags=["cuff_loose"]) for _ in range(5)])
    fast = _decode_fast(GATEWAY, payload)  # raises if the fast path declines
    assert len(fast.readings) == 5
    assert not fast.receipts
    _same(payload)


def test_a_gateway_asking_for_receipts_takes_the_fast_path_too() -> None:
    """``carebeacon.readings/2`` (issue 19) is the same batch; only ``receipts`` differs."""
    body = json.loads(batch(GATEWAY, [bp_reading("cuff-1") for _ in range(3)]))
    body["schema"] = "carebeacon.readings/2"
    payload = json.dumps(body).encode()
    fast = _decode_fast(GATEWAY, payload)
    assert fast.receipts
    assert len(fast.readings) == 3
    _same(payload)


UNUSUAL = [
    _body(id="A3BB189E-8BF9-3888-9912-ACE4E6543002"),  # upper case: both accept
    _body(id="a3bb189e8bf938889912ace4e6543002"),  # no hyphens
    _body(id="{a3bb189e-8bf9-3888-9912-ace4e6543002}"),  # braces: uuid.UUID accepts
    _body(id="urn:uuid:a3bb189e-8bf9-3888-9912-ace4e6543002"),
    _body(id=12345678901234567890123456789012),  # a number that reads as 32 hex digits
    _body(id="not-a-uuid"),
    _body(sequence=True),
    _body(sequence=2**63),
    _body(sequence=-1),
    _body(user_index=256),
    _body(user_index=1.0),
    _body(flags=["b", "a", "a"]),
    _body(flags=["Upper"]),
    _body(flags=["trailing\n"]),  # `$` matches before a final newline, in both
    _body(flags=None),
    _body(raw=None),
    _body(raw={"k": ["x\u0000y"]}),
    _body(raw={"k": "back\\u0000slash"}),  # an escaped backslash, not a NUL
    _body(device={"id": "", "type": "blood_pressure_monitor"}),
    _body(device={"id": "x" * 129, "type": "blood_pressure_monitor"}),
    _body(device={"id": "c\u0000", "type": "blood_pressure_monitor"}),
    _body(device={"id": "c", "type": "blood_pressure_monitor", "model": 5}),
    _body(device={"id": "c", "type": "blood_pressure_monitor", "model": "m" * 201}),
    _body(device={"id": "c", "type": "toaster"}),
    _body(type="weight"),
    _body(received_at="2026-01-01T00:00:00"),
    _body(received_at="yesterday"),
    _body(measured_at="2026-01-01T00:00:00+00:00"),
    _body(measured_at="1970-01-01T00:00:00"),
    _body(measured_at="1970-01-01T00:00:00", flags=["device_clock_reset"]),
    _body(measured_at="0001-01-01T00:00:00"),
    _body(values=[{"code": "systolic", "value": 120, "unit": "mm[Hg]"}]),  # an int
    _body(values=[{"code": "systolic", "value": True, "unit": "mm[Hg]"}]),
    _body(values=[{"code": "systolic", "value": 301, "unit": "mm[Hg]"}]),
    _body(values=[{"code": "systolic", "value": 30, "unit": "mm[Hg]"}]),  # the bound itself
    _body(values=[{"code": "systolic", "value": 120, "unit": "mmHg"}]),
    _body(values=[{"code": "sugar", "value": 120, "unit": "mg/dL"}]),
    _body(values=[{"value": 120, "unit": "mm[Hg]"}]),
    _body(values=[{"code": "pulse", "value": 60, "unit": "/min"}] * 2),
    _body(values=[]),
    _body(values=[{"code": "pulse", "value": 60, "unit": "/min", "extra": 1}]),
    _body(extra_field={"anything": [1, 2]}),
    b'{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","readings":[],"timezone":"Mars/Base"}',
    b'{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","readings":[],"sent_at":5}',
    b'{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","readings":[],"sent_at":null}',
    b'{"schema":"carebeacon.readings/1","gateway_id":"other","readings":[]}',
    b'{"schema":"carebeacon.readings/2","gateway_id":"gw-fast","readings":[]}',
    b'{"schema":"carebeacon.readings/9","gateway_id":"gw-fast","readings":[]}',
    b'{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","gateway_id":"x","readings":[]}',
    b'{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","readings":[]} trailing',
    b'\xef\xbb\xbf{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","readings":[]}',
    json.dumps({"schema": "carebeacon.readings/1", "gateway_id": GATEWAY, "readings": []}).encode(
        "utf-16"
    ),
    b'{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","readings":[],"x":NaN}',
    b'{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","readings":[],"x":"\\ud800"}',
    b'{"schema":"carebeacon.readings/1","gateway_id":"gw-fast","readings":[],"x":"a\tb"}',
    b"[]",
    b"null",
]


@pytest.mark.parametrize("payload", UNUSUAL, ids=range(len(UNUSUAL)))
def test_unusual_messages_give_the_same_outcome_on_both_paths(payload: bytes) -> None:
    _same(payload)


def test_mutated_messages_give_the_same_outcome_on_both_paths() -> None:
    rng = random.Random(13)
    good = batch(
        GATEWAY,
        [
            bp_reading(
                "cuff-1",
                measured_at=datetime(2026, 1, 1, 8, 0, tzinfo=UTC).replace(tzinfo=None),
                flags=["cuff_loose"],
            ),
            bp_reading("cuff-2"),
        ],
    )
    fast = 0
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.4:
                data[pos] = rng.choice(b'0123456789abcdefAF-:.,"{}[]\\ ntTuel\x00')
            elif choice < 0.7:
                del data[pos]
            else:
                data.insert(pos, rng.randrange(256))
        payload = bytes(data)
        try:
            _decode_fast(GATEWAY, payload)
            fast += 1
        except Exception:  # noqa: S110 - only counting which path took it
            pass
        _same(payload)
    assert fast > 0  # some mutations stay valid (a digit for a digit) and go the fast way


def test_the_time_of_a_fast_reading_follows_the_batch_time_zone() -> None:
    reading = bp_reading(
        "cuff-1", measured_at=datetime(2026, 1, 1, 8, 0, tzinfo=UTC).replace(tzinfo=None)
    )
    body = json.loads(batch(GATEWAY, [reading]))
    body["timezone"] = "America/New_York"
    decoded = decode_readings(GATEWAY, json.dumps(body).encode())
    # 08:00 in New York in January (EST, UTC-5) is 13:00 UTC
    assert decoded.readings[0].time == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
