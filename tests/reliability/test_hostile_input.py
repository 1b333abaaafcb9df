"""Ingest fed thousands of malformed, oversized, wrongly typed, wrongly versioned and replayed
payloads: it stays up, every bad one lands in quarantine with a reason, good neighbours are stored."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import aiomqtt
import pytest

from tests.support.db import count
from tests.support.homes import Home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]


def _mutations(rng: random.Random, home: Home) -> list[tuple[bytes, str | None]]:
    """(payload, expected reason) pairs; None = the expected reason depends on the mutation."""
    good = bp_reading(home.cuff_id)
    gw = home.gateway_id
    out: list[tuple[bytes, str | None]] = [
        (b"\x00", "bad_json"),  # an empty payload clears a retained message: not junk
        (b"\xff\xfe\x00garbage", "bad_json"),
        (b"[1, 2, 3]", "invalid_payload"),
        (
            b'{"schema": "carebeacon.readings/9", "gateway_id": "%s", "readings": []}'
            % gw.encode(),
            "unknown_schema",
        ),
        (
            json.dumps(
                {"schema": "carebeacon.readings/1", "gateway_id": gw, "readings": {}}
            ).encode(),
            "invalid_payload",
        ),
        (
            json.dumps(
                {"schema": "carebeacon.readings/1", "gateway_id": gw, "readings": [good] * 1001}
            ).encode(),
            "oversized",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "bad_json"),
        (
            b'{"schema": "carebeacon.readings/1", "gateway_id": "' + b"x" * 500_000 + b'"}',
            "gateway_mismatch",
        ),
    ]
    fields: list[tuple[str, Any]] = [
        ("id", 42),
        ("id", None),
        ("device", "cuff"),
        ("device", {"id": ""}),
        ("type", "mood"),
        ("received_at", "yesterday"),
        ("received_at", "2026-11-23T07:00:00"),
        ("measured_at", 17),
        ("values", "high"),
        ("values", [{"code": "systolic", "value": "120", "unit": "mm[Hg]"}]),
        ("values", [{"code": "systolic", "value": 120, "unit": "kPa"}]),
        ("values", [{"code": "systolic", "value": True, "unit": "mm[Hg]"}]),
        ("values", [{"code": "systolic", "value": 1e308 * 10, "unit": "mm[Hg]"}]),
        ("flags", ["<script>alert(1)</script>"]),
        ("flags", "cuff_loose"),
        ("sequence", -1),
        ("user_index", 1000),
        ("raw", [1]),
    ]
    for _ in range(300):
        reading = dict(bp_reading(home.cuff_id))
        key, value = rng.choice(fields)
        reading[key] = value
        out.append((batch(gw, [reading]), None))
    return out


async def test_thousands_of_bad_payloads_are_quarantined_and_good_ones_stored(
    ingest_running: object, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    rng = random.Random(1234)
    bad = _mutations(rng, home)
    good_ids: list[uuid.UUID] = []
    for index, (payload, _) in enumerate(bad):
        await publisher.publish(topic(home.gateway_id), payload, qos=1)
        if index % 10 == 0:  # a good neighbour in its own message, and one inside a bad batch
            reading = bp_reading(home.cuff_id)
            good_ids.append(uuid.UUID(reading["id"]))
            mixed = json.loads(batch(home.gateway_id, [reading, {"id": "broken"}]))
            await publisher.publish(topic(home.gateway_id), json.dumps(mixed).encode(), qos=1)
    # replays of good readings are duplicates, not new rows
    await eventually(
        lambda: (
            count(database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", good_ids)
            == len(good_ids)
        ),
        within=60,
    )
    expected_bad = len(bad) + len(good_ids)  # every bad message or reading is quarantined once
    await eventually(
        lambda: (
            count(
                database,
                "SELECT count(*) FROM quarantine WHERE gateway_id = %s OR topic = %s",
                home.gateway_id,
                topic(home.gateway_id),
            )
            >= expected_bad
        ),
        within=60,
    )
    assert count(
        database, "SELECT count(*) FROM reading_receipts WHERE gateway_id = %s", home.gateway_id
    ) == len(good_ids)
    reasons = count(
        database,
        "SELECT count(DISTINCT reason) FROM quarantine WHERE topic = %s",
        topic(home.gateway_id),
    )
    assert reasons >= 5
    for _payload, reason in bad:
        if reason is not None:
            assert (
                count(
                    database,
                    "SELECT count(*) FROM quarantine WHERE topic = %s AND reason = %s",
                    topic(home.gateway_id),
                    reason,
                )
                >= 1
            ), reason
