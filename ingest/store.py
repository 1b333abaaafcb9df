"""Storing a batch of MQTT messages in one transaction: readings exactly once, the rest quarantined.

``store_messages`` validates every message, resolves each device to the patient it is assigned
to at the reading's time, checks that the gateway serves that patient and that the patient's
consent is on file, inserts the new readings (a reading id that is already stored is a duplicate
and makes no row), quarantines everything else with a reason, hands the readings that were
actually inserted to the alert rules — all in the caller's transaction. The caller commits and
only then acknowledges the messages to the broker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts import StoredReading
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
    "Decoded",
    "Evaluator",
    "Message",
    "QuarantineLimits",
    "StoreResult",
    "decode_message",
    "message_digest",
    "quarantine_unstorable",
    "store_messages",
]

logger = logging.getLogger(__name__)

Evaluator = Callable[[psycopg.AsyncConnection[Any], Sequence[StoredReading]], Awaitable[None]]

# Each batch is COPYed (binary) into a per-connection temporary table, one row per reading with
# its values as arrays; one statement then inserts the receipts that are new and expands their
# values into the hypertable, returning the new ids. Duplicates cost one index probe each.
_STAGE_COLUMNS = (
    ("id", "uuid"),
    ("patient_id", "uuid"),
    ("type", "text"),
    ("time", "timestamptz"),
    ("measured_at", "timestamp"),
    ("received_at", "timestamptz"),
    ("device_id", "text"),
    ("gateway_id", "text"),
    ("sequence", "int8"),
    ("user_index", "int2"),
    ("flags", "text[]"),
    ("raw", "jsonb"),
    ("codes", "text[]"),
    ("vals", "float8[]"),
    ("units", "text[]"),
)
_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_stage ("
    + ", ".join(f"{name} {kind}" for name, kind in _STAGE_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY ingest_stage ({', '.join(n for n, _ in _STAGE_COLUMNS)}) FROM STDIN"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_INSERT_FROM_STAGE = """
WITH new AS (
    INSERT INTO reading_receipts
        (id, patient_id, type, time, measured_at, received_at, device_id, gateway_id,
         sequence, user_index, flags, raw)
    SELECT id, patient_id, type, time, measured_at, received_at, device_id, gateway_id,
           sequence, user_index, flags, raw
    FROM ingest_stage
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), stored_values AS (
    INSERT INTO readings
        (time, patient_id, code, value, unit, reading_id, device_id, gateway_id,
         measured_at, received_at, flags)
    SELECT s.time, s.patient_id, v.code, v.value, v.unit, s.id, s.device_id, s.gateway_id,
           s.measured_at, s.received_at, s.flags
    FROM ingest_stage s
    JOIN new USING (id)
    CROSS JOIN LATERAL unnest(s.codes, s.vals, s.units) AS v(code, value, unit)
)
SELECT id FROM new
"""


def _copy_text(value: str) -> str:
    """A field of COPY's text format."""
    return value.translate(_COPY_ESCAPES)


def _stage_line(gateway_id: str, patient: uuid.UUID, r: IncomingReading) -> str:
    """One reading as a line of COPY text (built in Python: psycopg's per-row array dumping is
    the slowest part of a batch otherwise). Codes, units and flags are validated identifiers, so
    their array literals need no quoting; free text (ids, raw JSON) is escaped."""
    return (
        "\t".join(
            (
                str(r.id),
                str(patient),
                r.type,
                r.time.isoformat(),
                r.measured_at.isoformat() if r.measured_at is not None else "\\N",
                r.received_at.isoformat(),
                _copy_text(r.device_id),
                _copy_text(gateway_id),
                str(r.sequence) if r.sequence is not None else "\\N",
                str(r.user_index) if r.user_index is not None else "\\N",
                "{" + ",".join(r.flags) + "}",
                _copy_text(json.dumps(r.raw, separators=(",", ":"))),
                "{" + ",".join(code for code, _, _ in r.values) + "}",
                "{" + ",".join(repr(value) for _, value, _ in r.values) + "}",
                "{" + ",".join(unit for _, _, unit in r.values) + "}",
            )
        )
        + "\n"
    )


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

#: a summary row keeps this much of the first over-budget payload
SUMMARY_SAMPLE_BYTES = 1024


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
    #: gateway id -> {"stored" | "duplicate" | "quarantined": reading ids} (ingest/receipts.py)
    outcomes: dict[str, dict[str, list[uuid.UUID]]] = field(default_factory=dict)

    def outcome(self, gateway_id: str, kind: str, reading_id: uuid.UUID) -> None:
        lists = self.outcomes.setdefault(
            gateway_id, {"stored": [], "duplicate": [], "quarantined": []}
        )
        lists[kind].append(reading_id)

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
        for gateway_id, lists in other.outcomes.items():
            for kind, ids in lists.items():
                for reading_id in ids:
                    self.outcome(gateway_id, kind, reading_id)


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


def message_digest(message: Message) -> str:
    """A stable key for a message: redeliveries of it quarantine nothing twice."""
    return hashlib.sha256(message.topic.encode() + b"\0" + message.payload).hexdigest()[:40]


def _reading_id(item: Any) -> uuid.UUID | None:
    """The id of a reading that failed validation, if it has a readable one (for its receipt)."""
    try:
        return uuid.UUID(str(item["id"])) if isinstance(item, dict) else None
    except (KeyError, ValueError):
        return None


def _reading_bytes(item: Any) -> bytes:
    try:
        return json.dumps(item, separators=(",", ":"), default=str).encode()
    except (TypeError, ValueError):
        return repr(item).encode()


@dataclass(slots=True)
class _Directory:
    """What the database knows about the devices, gateways and patients of one batch."""

    gateways: set[str]
    devices: set[str]
    assignments: dict[str, list[tuple[int | None, uuid.UUID, datetime, datetime | None]]]
    served: set[tuple[str, uuid.UUID]]
    consents: dict[uuid.UUID, list[tuple[datetime, datetime | None]]]

    def resolve(self, gateway_id: str, reading: IncomingReading, now: datetime) -> uuid.UUID:
        if reading.device_id not in self.devices:
            raise RejectedReading("unknown_device", "the device is not registered")
        candidates = [
            (user_index, patient)
            for user_index, patient, start, end in self.assignments.get(reading.device_id, [])
            if start <= reading.time
            and (end is None or reading.time < end)
            and (user_index is None or user_index == reading.user_index)
        ]
        if not candidates:
            raise RejectedReading(
                "device_not_assigned",
                "the device is not assigned to a patient at the reading's time",
            )
        # a user-specific assignment beats an any-user one
        candidates.sort(key=lambda c: c[0] is None)
        patient = candidates[0][1]
        if (gateway_id, patient) not in self.served:
            raise RejectedReading(
                "device_not_on_gateway", "the device's patient is not served by this gateway"
            )
        if not any(
            given <= reading.time and (withdrawn is None or withdrawn > now)
            for given, withdrawn in self.consents.get(patient, [])
        ):
            raise RejectedReading(
                "no_consent", "the patient has no consent on file for the reading's time"
            )
        return patient


async def _directory(
    conn: psycopg.AsyncConnection[Any], gateway_ids: set[str], device_ids: set[str]
) -> _Directory:
    directory = _Directory(set(), set(), defaultdict(list), set(), defaultdict(list))
    async with conn.cursor() as cur:
        await cur.execute("SELECT id FROM gateways WHERE id = ANY(%s)", (list(gateway_ids),))
        directory.gateways = {row[0] for row in await cur.fetchall()}
        if not device_ids:
            return directory
        await cur.execute(
            "SELECT d.id, a.user_index, a.patient_id, a.valid_from, a.valid_to"
            " FROM devices d LEFT JOIN device_assignments a ON a.device_id = d.id"
            " WHERE d.id = ANY(%s)",
            (list(device_ids),),
        )
        patients: set[uuid.UUID] = set()
        for device_id, user_index, patient_id, start, end in await cur.fetchall():
            directory.devices.add(device_id)
            if patient_id is not None:
                directory.assignments[device_id].append((user_index, patient_id, start, end))
                patients.add(patient_id)
        if not patients:
            return directory
        await cur.execute(
            "SELECT gateway_id, patient_id FROM gateway_patients"
            " WHERE gateway_id = ANY(%s) AND patient_id = ANY(%s)",
            (list(gateway_ids), list(patients)),
        )
        directory.served = {(g, p) for g, p in await cur.fetchall()}
        await cur.execute(
            # the consent history (migration 060): every window, re-consents included
            "SELECT e.patient_id, w.given_at, w.withdrawn_at FROM consent_windows w"
            " JOIN enrollments e ON e.id = w.enrollment_id WHERE e.patient_id = ANY(%s)",
            (list(patients),),
        )
        for patient_id, given, withdrawn in await cur.fetchall():
            directory.consents[patient_id].append((given, withdrawn))
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
) -> StoreResult:
    """Store ``messages`` (raw, or already :func:`decode_message`-d) in the caller's open
    transaction (see the module docstring). Without ``traffic`` (a released reading, not a
    message just received) the gateways' liveness is left as it is."""
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
                rejected_id = _reading_id(reading_item)
                if rejected_id is not None:
                    result.outcome(gateway_id, "quarantined", rejected_id)
        accepted.extend((gateway_id, message, batch.timezone, r) for r in batch.readings)

    directory = await _directory(
        conn,
        heard | {s.gateway_id for _, s in statuses},
        {r.device_id for *_, r in accepted},
    )
    rows: dict[uuid.UUID, tuple[str, uuid.UUID, IncomingReading]] = {}
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
        if reading.id in rows:
            result.duplicates += 1  # the same reading twice in one delivery
            result.outcome(gateway_id, "duplicate", reading.id)
            continue
        rows[reading.id] = (gateway_id, patient, reading)

    async with conn.cursor() as cur:
        inserted: set[uuid.UUID] = set()
        if rows:
            # every batch: a mark kept on the connection would outlive a rolled-back creation
            await cur.execute(_CREATE_STAGE)
            async with cur.copy(_COPY_STAGE) as copy:
                await copy.write(
                    "".join(
                        _stage_line(gateway_id, patient, r)
                        for gateway_id, patient, r in rows.values()
                    ).encode()
                )
            await cur.execute(_INSERT_FROM_STAGE)
            inserted = {row[0] for row in await cur.fetchall()}
        result.duplicates += len(rows) - len(inserted)
        for reading_id, (gateway_id, _, _) in rows.items():
            result.outcome(
                gateway_id, "stored" if reading_id in inserted else "duplicate", reading_id
            )
        if inserted:
            for reading_id in inserted:
                gateway_id, patient, r = rows[reading_id]
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
        # readings traffic first: a status in the same delivery (a last will) has the last word
        for gateway_id in sorted(heard & directory.gateways) if traffic else ():
            await _gateway_seen(cur, gateway_id, now, now, True, None)
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
        result.readings.sort(key=lambda s: (s.patient_id, s.time))
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
    if decoded.readings is not None and decoded.gateway_id is not None:
        for reading in decoded.readings.readings:
            result.outcome(decoded.gateway_id, "quarantined", reading.id)
    return result
