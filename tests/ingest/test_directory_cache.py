"""A writer keeps the directory between its batches (``ingest.store.DirectoryCache``) and reads
it again when any of it has changed (``ingest_directory_version``, db/sql/080): a reading is
never resolved by an assignment, a gateway's patient or a consent that has ended, and a device
assigned a moment ago resolves at the next batch."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ingest.store import DirectoryCache, Message, StoreResult, _Directory, store_messages
from tests.support.db import count
from tests.support.homes import Home, register_home
from tests.support.readings import batch, bp_reading, topic

pytestmark = pytest.mark.db


async def _store(database: str, cache: DirectoryCache, home: Home) -> tuple[uuid.UUID, StoreResult]:
    reading = bp_reading(home.cuff_id)
    async with await psycopg.AsyncConnection.connect(database) as conn, conn.transaction():
        result = await store_messages(
            conn,
            [Message(topic(home.gateway_id), batch(home.gateway_id, [reading]))],
            directory_cache=cache,
        )
    return uuid.UUID(reading["id"]), result


def _version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT version FROM ingest_directory_version").fetchone()
    assert row is not None
    return int(row[0])


def _version_of(database: str) -> int:
    with psycopg.connect(database) as conn:
        return _version(conn)


@pytest.fixture
def cache() -> DirectoryCache:
    """One writer's cache, kept across the batches of a test."""
    return DirectoryCache()


def _change(database: str, *statements: str, **params: object) -> None:
    with psycopg.connect(database) as conn:
        for statement in statements:
            conn.execute(statement, params)


async def test_the_cache_serves_the_next_batch_and_ingest_leaves_the_version_alone(
    database: str, home: Home, cache: DirectoryCache
) -> None:
    before = _version_of(database)
    first, result = await _store(database, cache, home)
    assert result.stored["blood_pressure"] == 1
    # storing readings and hearing the gateway (last_seen_at, online) change no directory row
    assert _version_of(database) == before
    assert cache.get(before, {home.gateway_id}, {home.cuff_id}) is not None
    second, result = await _store(database, cache, home)
    assert result.stored["blood_pressure"] == 1
    assert (
        count(database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", [first, second])
        == 2
    )


# each change, in its own committed transaction between two batches of the same writer, and
# the reason the second batch's reading is then refused with
CHANGES = {
    "assignment ended": (
        (
            "UPDATE device_assignments SET valid_to = now() - interval '1 minute'"
            " WHERE device_id = %(cuff)s",
        ),
        "device_not_assigned",
    ),
    "gateway no longer serves the patient": (
        ("DELETE FROM gateway_patients WHERE gateway_id = %(gateway)s",),
        "device_not_on_gateway",
    ),
    "consent withdrawn": (
        (
            "INSERT INTO consent_events (enrollment_id, kind, at)"
            " SELECT id, 'withdrawn', now() - interval '1 minute' FROM enrollments"
            " WHERE patient_id = %(patient)s",
        ),
        "no_consent",
    ),
    "gateway deleted": (("DELETE FROM gateways WHERE id = %(gateway)s",), "unknown_gateway"),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_of_the_directory_applies_at_the_next_batch(
    database: str, home: Home, cache: DirectoryCache, change: str
) -> None:
    _, result = await _store(database, cache, home)
    assert result.stored["blood_pressure"] == 1
    statements, reason = CHANGES[change]
    before = _version_of(database)
    _change(
        database, *statements, cuff=home.cuff_id, gateway=home.gateway_id, patient=home.patient_id
    )
    assert _version_of(database) > before
    _, result = await _store(database, cache, home)
    assert result.stored["blood_pressure"] == 0
    assert result.quarantined[reason] == 1


async def test_a_device_handed_to_another_patient_is_theirs_at_the_next_batch(
    database: str, home: Home, cache: DirectoryCache
) -> None:
    other = register_home(database)
    first, _ = await _store(database, cache, home)
    _change(
        database,
        "UPDATE device_assignments SET valid_to = %(at)s WHERE device_id = %(cuff)s",
        "INSERT INTO device_assignments (device_id, patient_id, user_index, valid_from)"
        " VALUES (%(cuff)s, %(other)s, NULL, %(at)s)",
        "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES (%(gateway)s, %(other)s)",
        at=datetime.now(UTC) - timedelta(minutes=1),  # before the next reading's time
        cuff=home.cuff_id,
        gateway=home.gateway_id,
        other=other.patient_id,
    )
    second, result = await _store(database, cache, home)
    assert result.stored["blood_pressure"] == 1
    owners = {
        rid: count(
            database,
            "SELECT count(*) FROM reading_receipts WHERE id = %s AND patient_id = %s",
            rid,
            owner,
        )
        for rid, owner in ((first, home.patient_id), (second, other.patient_id))
    }
    assert owners == {first: 1, second: 1}


def test_what_a_batch_read_under_an_older_version_is_not_kept() -> None:
    cache = DirectoryCache()
    cache.keep(7, {"gw-b"}, set(), _Directory(gateways={"gw-b"}))
    cache.keep(6, {"gw-a"}, set(), _Directory(gateways={"gw-a"}))  # read before the change
    assert cache.get(7, {"gw-a"}, set()) is None
    kept = cache.get(7, {"gw-b"}, set())
    assert kept is not None
    assert kept.gateways == {"gw-b"}
    assert cache.get(6, {"gw-b"}, set()) is None
    cache.keep(8, {"gw-c"}, set(), _Directory(gateways={"gw-c"}))  # newer: the rest goes
    assert cache.get(8, {"gw-b"}, set()) is None
    kept = cache.get(8, {"gw-c"}, set())
    assert kept is not None
    assert kept.gateways == {"gw-c"}


def test_the_cache_starts_over_past_its_size() -> None:
    cache = DirectoryCache(size=3)
    for i in range(3):
        cache.keep(1, {f"gw-{i}"}, {f"dev-{i}"}, _Directory(gateways={f"gw-{i}"}))
    # 2 ids, then 4 (past 3): the third batch starts it over
    assert (cache.gateways, cache.devices) == ({"gw-2"}, {"dev-2"})
    assert cache.get(1, {"gw-0"}, set()) is None
    assert cache.get(1, {"gw-2"}, {"dev-2"}) is not None


# statements that move the version, and statements that must not (each in a transaction that
# is rolled back: the version is read inside it, after the statement's triggers)
MOVES = [
    "INSERT INTO devices (id, type) VALUES ('cache-probe-device', 'weight_scale')",
    "UPDATE enrollments SET patient_id = patient_id WHERE patient_id = %(patient)s",
    *(
        f"TRUNCATE {table} CASCADE"
        for table in (
            "gateways",
            "devices",
            "enrollments",
            "device_assignments",
            "gateway_patients",
            "consent_events",
        )
    ),
]
STAYS = [
    "UPDATE gateways SET last_seen_at = now(), online = true WHERE id = %(gateway)s",
    "UPDATE devices SET model = 'C2' WHERE id = %(cuff)s",
    "UPDATE enrollments SET billing_practitioner = 'dr-x' WHERE patient_id = %(patient)s",
]


@pytest.mark.parametrize(
    ("statement", "moves"), [(s, True) for s in MOVES] + [(s, False) for s in STAYS]
)
def test_what_moves_the_version(database: str, home: Home, statement: str, moves: bool) -> None:
    with psycopg.connect(database) as conn:
        before = _version(conn)
        conn.execute(
            statement,
            {"patient": home.patient_id, "gateway": home.gateway_id, "cuff": home.cuff_id},
        )
        assert (_version(conn) > before) is moves
        conn.rollback()
