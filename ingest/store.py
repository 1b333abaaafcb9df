"""Storing a batch of MQTT messages in one transaction: readings exactly once, the rest quarantined.

``store_messages`` validates every message, resolves each device to the patient it is assigned
to at the reading's time, checks that the gateway serves that patient and that the patient's
consent is on file, inserts the new readings (a reading id that is already stored is a duplicate
and makes no row), quarantines everything else with a reason, hands the readings that were
actually inserted to the alert rules — all in the caller's transaction. The caller commits and
only then acknowledges the messages to the broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import struct
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts import StoredReading, lock_patients
from carebeacon.settings import Settings
from ingest.errors import RejectedReading
from ingest.payload import (
    MAX_PAYLOAD_BYTES,
    IncomingReading,
    ReadingsBatch,
    StatusMessage,
    decode_readings,
    decode_status,
    gateway_from_topic,
)

__all__ = [
    "OUTCOMES",
    "Decoded",
    "DirectoryCache",
    "Evaluator",
    "Message",
    "QuarantineLimits",
    "StoreResult",
    "Turn",
    "decode_message",
    "message_digest",
    "quarantine_unstorable",
    "store_messages",
]

logger = logging.getLogger(__name__)

Evaluator = Callable[[psycopg.AsyncConnection[Any], Sequence[StoredReading]], Awaitable[None]]

# PostgreSQL's binary COPY format (protocol docs, "COPY ... BINARY"): a header, then per row the
# field count and each field as a length and its binary send format; -1 is NULL.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_NULL = struct.pack(">i", -1)
_UUID_FIELD = struct.pack(">i", 16)
_INT64_FIELD = struct.Struct(">iq")  # length 8, an int8 or a timestamp (µs since 2000-01-01)
_INT16_FIELD = struct.Struct(">ih")
_LENGTH = struct.Struct(">i")
_TEXT_OID = 25
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_NAIVE = _PG_EPOCH.replace(tzinfo=None)
_MICROSECOND = timedelta(microseconds=1)
_EMPTY_JSONB = struct.pack(">i", 3) + b"\x01{}"


def _text(value: str) -> bytes:
    """A text field. A lone surrogate is sent as is for PostgreSQL to refuse (the message is
    then quarantined as ``storage_error``) rather than failing the writer here."""
    data = value.encode("utf-8", "surrogatepass")
    return _LENGTH.pack(len(data)) + data


def _text_array(items: Sequence[str]) -> bytes:
    if not items:
        body = struct.pack(">iii", 0, 0, _TEXT_OID)
    else:
        body = struct.pack(">iiiii", 1, 0, _TEXT_OID, len(items), 1) + b"".join(
            _text(item) for item in items
        )
    return _LENGTH.pack(len(body)) + body


@lru_cache(maxsize=256)
def _cached_text_array(items: tuple[str, ...]) -> bytes:
    """The flags array of a reading (a few shapes recur)."""
    return _text_array(items)


def _jsonb(value: dict[str, Any]) -> bytes:
    """A jsonb field: version 1, then the JSON text."""
    # json, not msgspec: an infinite float (the checked path lets one through in raw) must stay
    # Infinity for PostgreSQL to refuse, not become null
    data = b"\x01" + json.dumps(value, separators=(",", ":")).encode()
    return _LENGTH.pack(len(data)) + data


# The direct path: new readings are COPYed (binary) straight into their tables, a receipt row
# and a row per value, as fast as a bare COPY of the same rows. The primary key of
# reading_receipts keeps them exactly once: a reading already stored makes the COPY fail, and
# the batch is copied again without what is stored (``_insert_new``).
_RECEIPT_COLUMNS = (
    "id, patient_id, type, time, measured_at, received_at, device_id, gateway_id, sequence,"
    " user_index, flags, raw"
)
_VALUE_COLUMNS = (
    "time, patient_id, code, value, unit, reading_id, device_id, gateway_id, measured_at,"
    " received_at, flags"
)
_COPY_TABLES = (
    f"COPY reading_receipts ({_RECEIPT_COLUMNS}) FROM STDIN (FORMAT BINARY)",
    f"COPY readings ({_VALUE_COLUMNS}) FROM STDIN (FORMAT BINARY)",
)
_RECEIPT_ROW_START = struct.pack(">h", 12)
_VALUE_ROW_START = struct.pack(">h", 11)
_FLOAT8_FIELD = struct.Struct(">id")
#: COPY attempts of a batch: after a conflict, the next leaves out what is stored by then; a
#: reading stored again meanwhile (by another ingest process) takes a further attempt; past
#: these, the statement that settles each conflict on its own
_COPY_ATTEMPTS = 3
#: the savepoint the COPY attempts of a batch roll back to (``_insert_new``)
_COPY_SAVEPOINT = "ingest_copy"
# That statement: the same two COPY streams into per-connection temporary tables of the same
# columns; one statement inserts the receipts that are new and the values of those, returning
# the new ids (the tables are created every time: a mark kept on the connection would outlive
# a rolled-back creation)
_CREATE_STAGES = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_receipts_stage ON COMMIT DELETE ROWS"
    f" AS SELECT {_RECEIPT_COLUMNS} FROM reading_receipts WITH NO DATA",
    "CREATE TEMP TABLE IF NOT EXISTS ingest_values_stage ON COMMIT DELETE ROWS"
    f" AS SELECT {_VALUE_COLUMNS} FROM readings WITH NO DATA",
)
_COPY_STAGES = (
    f"COPY ingest_receipts_stage ({_RECEIPT_COLUMNS}) FROM STDIN (FORMAT BINARY)",
    f"COPY ingest_values_stage ({_VALUE_COLUMNS}) FROM STDIN (FORMAT BINARY)",
)
_INSERT_FROM_STAGES = f"""
WITH new AS (
    INSERT INTO reading_receipts ({_RECEIPT_COLUMNS})
    SELECT {_RECEIPT_COLUMNS} FROM ingest_receipts_stage
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), stored_values AS (
    INSERT INTO readings ({_VALUE_COLUMNS})
    SELECT {_VALUE_COLUMNS} FROM ingest_values_stage JOIN new ON new.id = reading_id
)
SELECT id FROM new
"""


@lru_cache(maxsize=1024)
def _vocabulary(value: str) -> bytes:
    """A text field from a small vocabulary (reading types, value codes, units)."""
    return _text(value)


def _copy_data(rows: Iterable[tuple[str, uuid.UUID, IncomingReading]]) -> tuple[bytes, bytes]:
    """The binary COPY streams of new readings: into ``reading_receipts`` (``_RECEIPT_COLUMNS``)
    and into ``readings`` (``_VALUE_COLUMNS``, a row per value)."""
    texts: dict[str, bytes] = {}  # device and gateway ids, each encoded once per batch
    receipts = [_COPY_HEADER]
    values = [_COPY_HEADER]
    for gateway_id, patient, r in rows:
        gateway = texts.get(gateway_id)
        if gateway is None:
            gateway = texts[gateway_id] = _text(gateway_id)
        device = texts.get(r.device_id)
        if device is None:
            device = texts[r.device_id] = _text(r.device_id)
        reading_id = _UUID_FIELD + r.id.bytes
        patient_id = _UUID_FIELD + patient.bytes
        at = _INT64_FIELD.pack(8, (r.time - _PG_EPOCH) // _MICROSECOND)
        measured = (
            _NULL
            if r.measured_at is None
            else _INT64_FIELD.pack(8, (r.measured_at - _PG_EPOCH_NAIVE) // _MICROSECOND)
        )
        received = _INT64_FIELD.pack(8, (r.received_at - _PG_EPOCH) // _MICROSECOND)
        flags = _cached_text_array(r.flags)
        receipts.append(
            b"".join(
                (
                    _RECEIPT_ROW_START,
                    reading_id,
                    patient_id,
                    _vocabulary(r.type),
                    at,
                    measured,
                    received,
                    device,
                    gateway,
                    _NULL if r.sequence is None else _INT64_FIELD.pack(8, r.sequence),
                    _NULL if r.user_index is None else _INT16_FIELD.pack(2, r.user_index),
                    flags,
                    _EMPTY_JSONB if not r.raw else _jsonb(r.raw),
                )
            )
        )
        shared = reading_id + device + gateway + measured + received + flags
        for code, value, unit in r.values:
            values.append(
                b"".join(
                    (
                        _VALUE_ROW_START,
                        at,
                        patient_id,
                        _vocabulary(code),
                        _FLOAT8_FIELD.pack(8, value),
                        _vocabulary(unit),
                        shared,
                    )
                )
            )
    receipts.append(_COPY_TRAILER)
    values.append(_COPY_TRAILER)
    return b"".join(receipts), b"".join(values)


async def _insert_new(
    cur: psycopg.AsyncCursor[Any],
    rows: dict[int, tuple[str, uuid.UUID, IncomingReading]],
    streams: tuple[bytes, bytes] | None = None,
    attempts: int = _COPY_ATTEMPTS,
) -> dict[int, tuple[str, uuid.UUID, IncomingReading]]:
    """Insert the readings of ``rows`` (keyed by the reading ids' integers) that are not stored
    yet; return those rows (``rows`` itself when all were new). Runs in the
    savepoint ``_COPY_SAVEPOINT``, which the caller has opened (in the round trip of a query
    before) and releases (with its statements after): a reading already stored (a redelivery,
    a resend, another ingest process) fails a COPY attempt, which rolls back to the savepoint,
    and the next attempt leaves out what is stored by then. ``streams``:
    ``_copy_data(rows.values())``, if the caller built it already."""
    new = rows
    for attempt in range(attempts):
        if attempt:  # only after a conflict: the look-up costs an index probe per reading
            await cur.execute(
                "SELECT id FROM reading_receipts WHERE id = ANY(%s)",
                ([r.id for _, _, r in new.values()],),
            )
            stored = {row[0].int for row in await cur.fetchall()}
            new = {rid: row for rid, row in new.items() if rid not in stored}
            streams = None
        if not new:
            return {}
        try:
            await _copy(cur, _COPY_TABLES, streams or _copy_data(new.values()))
        except psycopg.errors.UniqueViolation:
            await cur.execute(f"ROLLBACK TO SAVEPOINT {_COPY_SAVEPOINT}")
            continue
        return new
    # still racing another process: the statement that settles each conflict on its own
    for create in _CREATE_STAGES:
        await cur.execute(create)
    await _copy(cur, _COPY_STAGES, _copy_data(new.values()))
    await cur.execute(_INSERT_FROM_STAGES)
    inserted = (row[0].int for row in await cur.fetchall())
    return {key: new[key] for key in inserted}


async def _copy(
    cur: psycopg.AsyncCursor[Any], statements: tuple[str, str], streams: tuple[bytes, bytes]
) -> None:
    """COPY the receipts stream, then the values stream, each with its statement."""
    for statement, data in zip(statements, streams, strict=True):
        async with cur.copy(statement) as copy:
            await copy.write(data)


_INSERT_QUARANTINE = """
INSERT INTO quarantine (dedup_key, reason, detail, topic, gateway_id, reading_id, device_id,
                        payload, payload_bytes, payload_sha256, timezone)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (dedup_key) DO NOTHING
RETURNING reason
"""

_UPSERT_SUMMARY = """
INSERT INTO quarantine (dedup_key, reason, detail, topic, gateway_id, payload, payload_bytes,
                        payload_sha256, summary, occurrences)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, %s)
ON CONFLICT (dedup_key) DO UPDATE
SET occurrences = quarantine.occurrences + EXCLUDED.occurrences,
    payload_bytes = quarantine.payload_bytes + EXCLUDED.payload_bytes
RETURNING xmax = 0
"""

# what each gateway (NULL: messages whose topic names none) quarantined in the last 24 hours
_QUARANTINE_USAGE = """
SELECT coalesce(gateway_id, ''), count(*), coalesce(sum(octet_length(payload)), 0)
FROM quarantine
WHERE (gateway_id = ANY(%s) OR (gateway_id IS NULL AND %s))
  AND quarantined_at > %s - interval '24 hours' AND NOT summary
GROUP BY 1
"""

# one lock per gateway's quarantine budget ("" for messages whose topic names none), taken in
# key order (no lock-order deadlock between two transactions)
_BUDGET_LOCK_CLASS = 0x51524E54  # "QRNT"
_LOCK_BUDGETS = """
SELECT count(pg_advisory_xact_lock(%s, k))
FROM (SELECT DISTINCT hashtext(g) AS k FROM unnest(%s::text[]) AS g ORDER BY 1) AS keys
"""

#: a summary row keeps this much of the first over-budget payload
SUMMARY_SAMPLE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Turn:
    """The order of two batches in flight on different connections (the service overlaps the
    database work of one with the rules of the other). A batch writes its readings and takes
    its patients' locks (:func:`alerts.lock_patients`, held to its commit) only once the batch
    before it has done both (``after``), and says when it has (``locked``). So a patient in both
    is evaluated in the order the batches arrived (the later batch's rules read the earlier
    one's readings), and the earlier batch never waits in the database for the later one (on a
    reading id both carry, or a chunk the later one creates): no wait goes both ways. An attempt
    that fails on the database gives its turn up: after an outage, a patient's batches may swap
    (as between two ingest processes)."""

    after: asyncio.Event
    locked: asyncio.Event


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Decoded:
    """A message validated without the database: its readings or its status, or why the whole
    message is rejected (an empty message — a retained message being cleared — has none)."""

    message: Message
    gateway_id: str | None
    readings: ReadingsBatch | None = None
    status: StatusMessage | None = None
    rejection: RejectedReading | None = None


def decode_message(message: Message, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> Decoded:
    """Validate ``message`` (pure; the service calls it on receipt, so that validation overlaps
    the database work of the batch before). Never raises: anything unexpected is a rejection.

    An empty payload is a retained message being cleared (the only way MQTT clears one; a
    subscriber cannot tell it from a live empty publish): neither readings nor a status, nothing
    to quarantine. A payload over ``max_payload_bytes`` (``CAREBEACON_MQTT_MAX_PAYLOAD_BYTES``)
    is ``oversized``."""
    gateway_id: str | None = None
    try:
        gateway_id, kind = gateway_from_topic(message.topic)
        if not message.payload:
            return Decoded(message, gateway_id)
        if len(message.payload) > max_payload_bytes:
            raise RejectedReading(
                "oversized",
                f"payload of {len(message.payload)} bytes exceeds {max_payload_bytes}",
            )
        if kind == "status":
            return Decoded(message, gateway_id, status=decode_status(gateway_id, message.payload))
        return Decoded(message, gateway_id, readings=decode_readings(gateway_id, message.payload))
    except RejectedReading as why:
        return Decoded(message, gateway_id, rejection=why)
    except Exception as exc:  # a validator bug must not stop the service or lose the message
        logger.error("validation failed unexpectedly (%s); quarantined", type(exc).__name__)
        rejection = RejectedReading("invalid_payload", f"validation failed ({type(exc).__name__})")
        return Decoded(message, gateway_id, rejection=rejection)


#: what became of a reading in a batch (``StoreResult.outcomes``)
OUTCOMES = ("stored", "duplicate", "quarantined")


@dataclass(slots=True)
class StoreResult:
    stored: Counter[str] = field(default_factory=Counter)  # reading type -> count
    duplicates: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)  # reason -> quarantine rows made
    summarised: Counter[str] = field(default_factory=Counter)  # reason -> over-budget messages
    repeated: int = 0  # already quarantined (sent again, redelivered, retained): no new row
    empty: int = 0  # empty payloads (retained messages being cleared)
    statuses: int = 0
    unknown_statuses: int = 0  # statuses of gateways this deployment does not know: counted only
    readings: list[StoredReading] = field(default_factory=list)
    #: gateway id → outcome ("stored", "duplicate", "quarantined") → the ids of the readings
    #: of this batch with that outcome (readings whose id could be read; what receipts carry)
    outcomes: dict[str, dict[str, list[uuid.UUID]]] = field(default_factory=dict)

    def for_gateway(self, gateway_id: str) -> dict[str, list[uuid.UUID]]:
        """The outcomes of ``gateway_id``'s readings (made empty at first)."""
        by_outcome = self.outcomes.get(gateway_id)
        if by_outcome is None:
            by_outcome = self.outcomes[gateway_id] = {
                "stored": [],
                "duplicate": [],
                "quarantined": [],
            }  # OUTCOMES
        return by_outcome

    def outcome(self, gateway_id: str, outcome: str, reading_id: uuid.UUID) -> None:
        """Note that ``reading_id`` from ``gateway_id`` had ``outcome``."""
        self.for_gateway(gateway_id)[outcome].append(reading_id)

    def add(self, other: StoreResult) -> None:
        self.stored.update(other.stored)
        self.duplicates += other.duplicates
        self.quarantined.update(other.quarantined)
        self.summarised.update(other.summarised)
        self.repeated += other.repeated
        self.empty += other.empty
        self.statuses += other.statuses
        self.unknown_statuses += other.unknown_statuses
        self.readings.extend(other.readings)
        for gateway_id, by_outcome in other.outcomes.items():
            for outcome, ids in by_outcome.items():
                for reading_id in ids:
                    self.outcome(gateway_id, outcome, reading_id)


@dataclass(frozen=True, slots=True)
class QuarantineLimits:
    """How much of the quarantine one gateway may fill in 24 hours, and how much of a payload
    is kept (README, Ingest). Past the budget, a gateway's quarantined messages are counted in
    one summary row per reason and day, with a sample of the first."""

    payload_bytes: int = 65_536
    rows_per_gateway: int = 1000
    bytes_per_gateway: int = 8_388_608

    @classmethod
    def from_settings(cls, settings: Settings) -> QuarantineLimits:
        return cls(
            payload_bytes=settings.ingest_quarantine_payload_bytes,
            rows_per_gateway=settings.ingest_quarantine_rows_per_gateway,
            bytes_per_gateway=settings.ingest_quarantine_bytes_per_gateway,
        )


@dataclass(frozen=True, slots=True)
class _Quarantine:
    dedup_key: str
    reason: str
    detail: str
    topic: str
    gateway_id: str | None
    reading_id: uuid.UUID | None
    device_id: str | None
    payload: bytes
    timezone: str | None = None  # of the reading's batch: what a release needs besides it


def _reading_id(item: Any) -> uuid.UUID | None:
    """The id of a reading as received, if it has one that reads as a UUID."""
    if not isinstance(item, dict):
        return None
    try:
        return uuid.UUID(str(item["id"]))
    except (KeyError, ValueError):
        return None


def _payload_reading_ids(payload: bytes) -> list[uuid.UUID]:
    """The ids of the readings in a readings message rejected whole, as far as they can be read."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return []
    readings = body.get("readings") if isinstance(body, dict) else None
    if not isinstance(readings, list):
        return []
    return [i for i in map(_reading_id, readings) if i is not None]


def message_digest(message: Message) -> str:
    """A stable key for a message: redeliveries of it quarantine nothing twice."""
    return hashlib.sha256(message.topic.encode() + b"\0" + message.payload).hexdigest()[:40]


def _reading_bytes(item: Any) -> bytes:
    try:
        return json.dumps(item, separators=(",", ":"), default=str).encode()
    except (TypeError, ValueError):
        return repr(item).encode()


_Assignment = tuple[int | None, uuid.UUID, datetime, datetime | None]


@dataclass(slots=True)
class _Directory:
    """What the database knows about some devices, gateways and patients: for each of them
    all there is (a gateway's patients, a device's assignments, a patient's consent windows),
    so that one read of a batch's gateways and devices serves any reading of theirs."""

    gateways: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    assignments: dict[str, list[_Assignment]] = field(default_factory=dict)
    served: dict[str, set[int]] = field(default_factory=dict)  # gateway -> patient ids' integers
    consents: dict[int, list[tuple[datetime, datetime | None]]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[tuple[Any, ...]]) -> _Directory:
        """From the rows of ``_DIRECTORY``."""
        directory = cls()
        for kind, key, patient_id, user_index, start, end in rows:
            if kind == "g":
                directory.gateways.add(key)
            elif kind == "d":
                directory.devices.add(key)
                if patient_id is not None:
                    directory.assignments.setdefault(key, []).append(
                        (user_index, patient_id, start, end)
                    )
            elif kind == "s":
                directory.served.setdefault(key, set()).add(patient_id.int)
            else:
                directory.consents.setdefault(patient_id.int, []).append((start, end))
        return directory

    def merge(self, other: _Directory) -> None:
        """Add ``other`` (read under the same version: where both know a key, they agree)."""
        self.gateways |= other.gateways
        self.devices |= other.devices
        self.assignments.update(other.assignments)
        self.served.update(other.served)
        self.consents.update(other.consents)

    def resolve(self, gateway_id: str, reading: IncomingReading, now: datetime) -> uuid.UUID:
        if reading.device_id not in self.devices:
            raise RejectedReading("unknown_device", "the device is not registered")
        at = reading.time
        patient: uuid.UUID | None = None
        for user_index, candidate, start, end in self.assignments.get(reading.device_id, ()):
            if start <= at and (end is None or at < end):
                if user_index is None:
                    if patient is None:
                        patient = candidate  # the first any-user assignment, unless ...
                elif user_index == reading.user_index:
                    patient = candidate  # ... a user-specific one (it wins)
                    break
        if patient is None:
            raise RejectedReading(
                "device_not_assigned",
                "the device is not assigned to a patient at the reading's time",
            )
        key = patient.int
        if key not in self.served.get(gateway_id, ()):
            raise RejectedReading(
                "device_not_on_gateway", "the device's patient is not served by this gateway"
            )
        for given, withdrawn in self.consents.get(key, ()):
            if given <= at and (withdrawn is None or withdrawn > now):
                return patient
        raise RejectedReading(
            "no_consent", "the patient has no consent on file for the reading's time"
        )


class DirectoryCache:
    """A writer's directory kept between batches: valid while the version it was read under
    (``ingest_directory_version``, db/sql/080) has not moved, and each batch reads the version
    first. Holds the gateways and devices read under that version, whether they exist or not;
    past ``size`` of them it starts over (a flood of made-up ids grows it no further)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self.version: int | None = None
        self.directory = _Directory()
        self.gateways: set[str] = set()
        self.devices: set[str] = set()

    def get(self, version: int, gateway_ids: set[str], device_ids: set[str]) -> _Directory | None:
        """The directory, if it holds all of these under ``version``."""
        if version != self.version or not (
            gateway_ids <= self.gateways and device_ids <= self.devices
        ):
            return None
        return self.directory

    def keep(
        self, version: int, gateway_ids: set[str], device_ids: set[str], directory: _Directory
    ) -> None:
        """Keep what a batch read of these gateways and devices under ``version``."""
        if self.version is not None and version < self.version:
            return  # read before a change that a later batch has seen
        if version != self.version or len(self.gateways) + len(self.devices) > self.size:
            self.version = version
            self.directory = _Directory()
            self.gateways = set()
            self.devices = set()
        self.directory.merge(directory)
        self.gateways |= gateway_ids
        self.devices |= device_ids


# The directory of a batch in one round trip: the gateways that exist, with every patient each
# serves; the devices with their assignments; the consent windows of the assigned patients
# (migration 060: every window, re-consents included; OFFSET 0 keeps the view's subquery
# apart, so that it is read per enrollment of the batch by its index instead of being computed
# for every enrollment). Read when the version has moved, or for gateways and devices the
# writer's cache does not hold: a device assigned a second ago resolves.
_DIRECTORY = """
SELECT 'g', id, NULL::uuid, NULL::int, NULL::timestamptz, NULL::timestamptz
FROM gateways WHERE id = ANY(%(gateways)s)
UNION ALL
SELECT 'd', d.id, a.patient_id, a.user_index::int, a.valid_from, a.valid_to
FROM devices d LEFT JOIN device_assignments a ON a.device_id = d.id
WHERE d.id = ANY(%(devices)s)
UNION ALL
SELECT 's', gateway_id, patient_id, NULL, NULL, NULL FROM gateway_patients
WHERE gateway_id = ANY(%(gateways)s)
UNION ALL
SELECT 'c', NULL, e.patient_id, NULL, w.given_at, w.withdrawn_at
FROM enrollments e
CROSS JOIN LATERAL (SELECT given_at, withdrawn_at FROM consent_windows
                    WHERE enrollment_id = e.id OFFSET 0) w
WHERE e.patient_id IN (SELECT patient_id FROM device_assignments WHERE device_id = ANY(%(devices)s))
"""
_DIRECTORY_VERSION = "SELECT version FROM ingest_directory_version"


async def _read_directory(
    conn: psycopg.AsyncConnection[Any],
    gateway_ids: set[str],
    device_ids: set[str],
    cache: DirectoryCache | None,
    savepoint: bool,
) -> _Directory:
    """The directory of a batch's gateways and devices, with the COPY's savepoint opened in the
    same round trip (``savepoint``). With ``cache``, that round trip reads the version, and the
    directory is read only if the cache does not hold it under that version."""
    params = {"gateways": list(gateway_ids), "devices": list(device_ids)}
    async with conn.pipeline() as pipeline, conn.cursor() as cur:
        if cache is None:
            await cur.execute(_DIRECTORY, params)
        else:
            await cur.execute(_DIRECTORY_VERSION)
        if savepoint:
            await conn.execute(f"SAVEPOINT {_COPY_SAVEPOINT}")
        await pipeline.sync()
        rows = await cur.fetchall()
    if cache is None:
        return _Directory.of(rows)
    version = rows[0][0]
    directory = cache.get(version, gateway_ids, device_ids)
    if directory is None:
        async with conn.cursor() as cur:
            await cur.execute(_DIRECTORY, params)
            directory = _Directory.of(await cur.fetchall())
        cache.keep(version, gateway_ids, device_ids, directory)
    return directory


#: the one place that decides a gateway's liveness (README, Ingest): any message it sends (a
#: readings batch or a status) is traffic and moves ``last_seen_at`` (ingest's clock); its
#: ``online`` follows a status (``state``) or, for a readings batch, is true; a status or batch
#: older than the newest status applied (``status_at``, the gateway's clock) changes neither
#: ``online`` nor the stored status.
_GATEWAY_SEEN = """
UPDATE gateways SET
    last_seen_at = greatest(last_seen_at, %(now)s),
    online = CASE WHEN status_at IS NULL OR status_at <= %(at)s THEN %(online)s ELSE online END,
    status = CASE WHEN %(status)s::jsonb IS NOT NULL AND (status_at IS NULL OR status_at <= %(at)s)
                  THEN %(status)s::jsonb ELSE status END,
    status_at = CASE WHEN %(status)s::jsonb IS NOT NULL
                          AND (status_at IS NULL OR status_at <= %(at)s)
                     THEN %(at)s ELSE status_at END
WHERE id = %(id)s
"""


# ``_GATEWAY_SEEN`` for gateways that sent readings (no status, ``at`` = ``now``), all in one
# statement; rows locked in id order like the loop it replaces (no deadlock between processes)
_GATEWAYS_HEARD = """
UPDATE gateways g SET
    last_seen_at = greatest(g.last_seen_at, %(now)s),
    online = CASE WHEN g.status_at IS NULL OR g.status_at <= %(now)s THEN true ELSE g.online END
FROM (SELECT id FROM gateways WHERE id = ANY(%(ids)s) ORDER BY id FOR UPDATE) locked
WHERE g.id = locked.id
"""


async def _gateway_seen(
    cur: psycopg.AsyncCursor[Any],
    gateway_id: str,
    now: datetime,
    at: datetime,
    online: bool,
    status: dict[str, Any] | None,
) -> None:
    await cur.execute(
        _GATEWAY_SEEN,
        {
            "id": gateway_id,
            "now": now,
            "at": at,
            "online": online,
            "status": Jsonb(status) if status is not None else None,
        },
    )


async def store_messages(
    conn: psycopg.AsyncConnection[Any],
    messages: Sequence[Message | Decoded],
    evaluate: Evaluator | None = None,
    *,
    now: datetime | None = None,
    limits: QuarantineLimits | None = None,
    traffic: bool = True,
    turn: Turn | None = None,
    directory_cache: DirectoryCache | None = None,
) -> StoreResult:
    """Store ``messages`` (raw, or already :func:`decode_message`-d) in the caller's open
    transaction (see the module docstring). Without ``traffic`` (a released reading, not a
    message just received) the gateways' liveness is left as it is. With ``evaluate``, the
    patients of the new readings are locked right after they are written; with ``turn``
    (batches in parallel), the readings are written after ``turn.after`` and ``turn.locked`` is
    set once they are written and locked. With ``directory_cache`` (a writer's, kept between its
    batches), the directory is read only when it has changed or holds new gateways or devices."""
    now = now or datetime.now(UTC)
    result = StoreResult()
    quarantine: list[_Quarantine] = []
    accepted: list[tuple[str, Message, str | None, IncomingReading]] = []
    statuses: list[tuple[Message, StatusMessage]] = []
    heard: set[str] = set()  # gateways that sent a readings batch: alive, status or not
    for item in messages:
        decoded = item if isinstance(item, Decoded) else decode_message(item)
        message, gateway_id = decoded.message, decoded.gateway_id
        if decoded.rejection is not None:
            why = decoded.rejection
            quarantine.append(
                _Quarantine(
                    f"m:{message_digest(message)}",
                    why.reason,
                    why.detail,
                    message.topic,
                    gateway_id,
                    None,
                    None,
                    message.payload,
                )
            )
            if gateway_id is not None and message.topic.endswith("/readings"):
                for reading_id in _payload_reading_ids(message.payload):
                    result.outcome(gateway_id, "quarantined", reading_id)
            continue
        if decoded.status is not None:
            statuses.append((message, decoded.status))
            continue
        batch = decoded.readings
        if batch is None or gateway_id is None:
            result.empty += 1  # a retained message being cleared: nothing to record
            continue
        heard.add(gateway_id)
        if batch.rejected:
            digest = message_digest(message)
            for index, reading_item, rejection in batch.rejected:
                rejected_id = _reading_id(reading_item)
                if rejected_id is not None:
                    result.outcome(gateway_id, "quarantined", rejected_id)
                quarantine.append(
                    _Quarantine(
                        f"m:{digest}:{index}",
                        rejection.reason,
                        rejection.detail,
                        message.topic,
                        gateway_id,
                        None,
                        None,
                        _reading_bytes(reading_item),
                    )
                )
        accepted.extend((gateway_id, message, batch.timezone, r) for r in batch.readings)

    savepoint = bool(accepted)  # for the COPY (``_insert_new``), in the directory's round trip
    directory = await _read_directory(
        conn,
        heard | {s.gateway_id for _, s in statuses},
        {item[3].device_id for item in accepted},
        directory_cache,
        savepoint,
    )
    # keyed by the reading ids' integers (hashed in C; a UUID hashes in Python)
    rows: dict[int, tuple[str, uuid.UUID, IncomingReading]] = {}
    for gateway_id, message, zone, reading in accepted:
        try:
            if gateway_id not in directory.gateways:
                raise RejectedReading("unknown_gateway", "the gateway is not registered")
            patient = directory.resolve(gateway_id, reading, now)
        except RejectedReading as why:
            quarantine.append(
                _Quarantine(
                    f"r:{reading.id}:{why.reason}",
                    why.reason,
                    why.detail,
                    message.topic,
                    gateway_id,
                    reading.id,
                    reading.device_id,
                    _reading_bytes(reading.source),
                    zone,
                )
            )
            result.outcome(gateway_id, "quarantined", reading.id)
            continue
        key = reading.id.int
        if key in rows:
            result.duplicates += 1  # the same reading twice in one delivery
            result.outcome(gateway_id, "duplicate", reading.id)
            continue
        rows[key] = (gateway_id, patient, reading)

    # built before the turn: while the batch before writes, not after
    streams = _copy_data(rows.values()) if rows else None
    live = heard & directory.gateways if traffic else set()
    async with conn.cursor() as cur:
        if turn is not None:
            await turn.after.wait()
        fresh = await _insert_new(cur, rows, streams) if rows else rows
        # the patients to lock for the rules (keyed by the ids' integers: they hash in C, a UUID
        # hashes in Python)
        patients = {patient.int: patient for _, patient, _ in fresh.values()} if evaluate else {}
        if savepoint or patients or live:
            # one round trip: the savepoint released, the patients locked, the gateways heard
            # (readings traffic first: a status in the same delivery, a last will, has the last
            # word)
            async with conn.pipeline():
                if savepoint:
                    await cur.execute(f"RELEASE SAVEPOINT {_COPY_SAVEPOINT}")
                if patients:
                    await lock_patients(conn, patients.values())
                if live:
                    await cur.execute(_GATEWAYS_HEARD, {"ids": sorted(live), "now": now})
        if turn is not None:
            turn.locked.set()
        result.duplicates += len(rows) - len(fresh)
        for key, (gateway_id, patient, r) in rows.items():
            by_outcome = result.outcomes.get(gateway_id) or result.for_gateway(gateway_id)
            if fresh is not rows and key not in fresh:
                by_outcome["duplicate"].append(r.id)
                continue
            by_outcome["stored"].append(r.id)
            result.stored[r.type] += 1
            result.readings.append(
                StoredReading(
                    reading_id=r.id,
                    patient_id=patient,
                    type=r.type,
                    time=r.time,
                    received_at=r.received_at,
                    device_id=r.device_id,
                    gateway_id=gateway_id,
                    flags=r.flags,
                    values={code: value for code, value, _ in r.values},
                )
            )
        for _message, status in statuses:
            if status.gateway_id not in directory.gateways:
                # gateway ids are global on a shared broker: another deployment's gateway (or a
                # retained status left under a reused id) is counted, not quarantined (issue 16)
                result.unknown_statuses += 1
                continue
            await _gateway_seen(
                cur, status.gateway_id, now, status.sent_at or now, status.online, status.body
            )
            result.statuses += 1
        await _quarantine(cur, quarantine, limits or QuarantineLimits(), now, result)
    if result.readings and evaluate is not None:
        # by patient (UUID order: their 128-bit integers, compared in C) and time
        result.readings.sort(key=lambda s: (s.patient_id.int, s.time))
        await evaluate(conn, result.readings)
    return result


async def _quarantine(
    cur: psycopg.AsyncCursor[Any],
    entries: list[_Quarantine],
    limits: QuarantineLimits,
    now: datetime,
    result: StoreResult,
) -> None:
    """Quarantine ``entries`` within each gateway's budget; count in ``result`` the rows made
    (what is already quarantined makes none: it is a repeat) and the messages summarised."""
    if not entries:
        return
    await cur.execute(
        "SELECT dedup_key FROM quarantine WHERE dedup_key = ANY(%s)",
        ([q.dedup_key for q in entries],),
    )
    seen = {row[0] for row in await cur.fetchall()}
    fresh: list[_Quarantine] = []
    for q in entries:
        if q.dedup_key in seen:
            result.repeated += 1
            continue
        seen.add(q.dedup_key)
        fresh.append(q)
    if not fresh:
        return
    buckets = {q.gateway_id or "" for q in fresh}
    # the budget is read and spent under a lock per gateway, held to the commit: a batch in
    # flight beside this one (or another ingest process) reads it after this one has spent
    await cur.execute(_LOCK_BUDGETS, (_BUDGET_LOCK_CLASS, sorted(buckets)))
    await cur.execute(_QUARANTINE_USAGE, (sorted(b for b in buckets if b), "" in buckets, now))
    usage = {bucket: [rows, size] for bucket, rows, size in await cur.fetchall()}
    rows: list[tuple[Any, ...]] = []
    summaries: dict[str, tuple[_Quarantine, list[int]]] = {}
    for q in fresh:
        kept = q.payload[: limits.payload_bytes]
        used = usage.setdefault(q.gateway_id or "", [0, 0])
        if (
            used[0] + 1 <= limits.rows_per_gateway
            and used[1] + len(kept) <= limits.bytes_per_gateway
        ):
            used[0] += 1
            used[1] += len(kept)
            rows.append(
                (
                    q.dedup_key,
                    q.reason,
                    q.detail,
                    q.topic,
                    q.gateway_id,
                    q.reading_id,
                    q.device_id,
                    kept,
                    len(q.payload),
                    hashlib.sha256(q.payload).hexdigest(),
                    q.timezone,
                )
            )
            continue
        key = f"s:{now.date().isoformat()}:{q.gateway_id or ''}:{q.reason}"
        first, tally = summaries.setdefault(key, (q, [0, 0]))
        tally[0] += 1
        tally[1] += len(q.payload)
    if rows:
        await cur.executemany(_INSERT_QUARANTINE, rows, returning=True)
        while True:
            row = await cur.fetchone()
            if row is not None:
                result.quarantined[row[0]] += 1
            if not cur.nextset():
                break
    for key, (first, (occurrences, size)) in summaries.items():
        await cur.execute(
            _UPSERT_SUMMARY,
            (
                key,
                first.reason,
                f"over the gateway's quarantine budget ({limits.rows_per_gateway} rows,"
                f" {limits.bytes_per_gateway} bytes in 24 h): messages counted in occurrences,"
                f" payload_bytes their total size; the payload is a sample of the first"
                f" ({first.detail})",
                first.topic,
                first.gateway_id,
                first.payload[: min(SUMMARY_SAMPLE_BYTES, limits.payload_bytes)],
                size,
                hashlib.sha256(first.payload).hexdigest(),
                occurrences,
            ),
        )
        inserted = await cur.fetchone()
        if inserted is not None and inserted[0]:
            result.quarantined[first.reason] += 1
        result.summarised[first.reason] += occurrences


async def quarantine_unstorable(
    conn: psycopg.AsyncConnection[Any],
    decoded: Decoded,
    detail: str,
    limits: QuarantineLimits | None = None,
) -> StoreResult:
    """Quarantine a message the database refused (``storage_error``), within its gateway's
    budget, in the caller's transaction."""
    result = StoreResult()
    message = decoded.message
    entry = _Quarantine(
        f"e:{message_digest(message)}",
        "storage_error",
        detail,
        message.topic,
        decoded.gateway_id,
        None,
        None,
        message.payload,
    )
    async with conn.cursor() as cur:
        await _quarantine(cur, [entry], limits or QuarantineLimits(), datetime.now(UTC), result)
    if decoded.gateway_id is not None and message.topic.endswith("/readings"):
        for reading_id in _payload_reading_ids(message.payload):
            result.outcome(decoded.gateway_id, "quarantined", reading_id)
    return result
