"""The durable outbox and per-device state: one SQLite database (WAL) under the state directory.

Every reading is committed here before anything else happens to it. It leaves the ``outbox``
table only when it is acknowledged — by ingest's receipt when the gateway asks for receipts
(``[outbox] receipts = true``: the reading is stored, already stored, or quarantined for good),
else by the broker's PUBACK of the message that carried it; its id then moves to
``delivered``, so that a meter replaying its memory (or a re-read after a crash) does not send it
again. A reading sent and not yet receipted stays here: after a restart it is sent again. ``synchronous=FULL``: a commit that returned survives a power cut; an interrupted one is
rolled back by SQLite on the next open, never half-applied.

When ``max_readings`` unacknowledged readings are waiting, :meth:`Outbox.add` refuses new ones
with :class:`OutboxFull` (nothing stored is ever discarded) and the status reports ``full``;
the BLE side then stops reading records, leaving them on the devices.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gateway.errors import OutboxFull

__all__ = ["DeviceState", "Outbox", "PendingReading", "ReadingLike"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS delivered (
    id TEXT PRIMARY KEY,
    delivered_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delivered_at_idx ON delivered (delivered_at);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    manufacturer TEXT,
    model TEXT,
    last_sequence INTEGER,
    record_count INTEGER,
    last_reading_at TEXT,
    battery_percent INTEGER,
    clock_drift_seconds REAL,
    last_seen_at TEXT,
    dis_read INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS addresses (
    address TEXT PRIMARY KEY,
    device_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""


class ReadingLike(Protocol):
    """What the outbox needs of a canonical reading (``devices.canonical.CanonicalReading``)."""

    @property
    def id(self) -> uuid.UUID | str: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class PendingReading:
    seq: int
    id: str
    body: str  # the reading's JSON object, as stored


@dataclass(frozen=True, slots=True)
class DeviceState:
    id: str
    type: str
    manufacturer: str | None
    model: str | None
    last_sequence: int | None
    record_count: int | None
    last_reading_at: datetime | None
    battery_percent: int | None
    clock_drift_seconds: float | None
    last_seen_at: datetime | None
    dis_read: bool


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


class Outbox:
    """Synchronous and small: each call is one short transaction on the event loop's thread."""

    def __init__(self, path: Path, *, max_readings: int, delivered_memory: int = 50_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_readings = max_readings
        #: room beyond ``max_readings`` for measurements a device pushed during a session that
        #: started before the outbox filled up (the BLE stack has confirmed them already)
        self.reserve = max(64, max_readings // 100)
        self.delivered_memory = delivered_memory
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
        #: set whenever readings are added; the publisher waits on it
        self.changed = asyncio.Event()
        self._depth = self._count()

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _count(self) -> int:
        row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()

    def integrity_check(self) -> str:
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- readings -------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def full(self) -> bool:
        return self._depth >= self.max_readings

    def free(self) -> int:
        return max(0, self.max_readings - self._depth)

    def oldest_at(self) -> datetime | None:
        row = self._db.execute("SELECT stored_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return _parse_iso(row[0]) if row else None

    def add(
        self,
        readings: Sequence[ReadingLike],
        *,
        now: datetime | None = None,
        device_update: tuple[str, Mapping[str, Any]] | None = None,
        use_reserve: bool = False,
    ) -> int:
        """Store readings (all or none); returns how many were new.

        Readings already waiting or already delivered are skipped. ``device_update`` =
        ``(device_id, {column: value})`` is applied in the same transaction (e.g. the glucose
        meter's last sequence, so that it never runs ahead of the stored records).
        Raises :class:`OutboxFull` if the new ones do not fit (``use_reserve``: in
        ``max_readings`` + :attr:`reserve`).
        """
        stamp = _iso(now or datetime.now(UTC))
        rows = []
        for reading in readings:
            body = reading.to_json()
            rows.append((str(reading.id), str(body["device"]["id"]), stamp, json.dumps(body)))
        with self._transaction() as db:
            fresh = [
                row
                for row in rows
                if db.execute(
                    "SELECT 1 FROM outbox WHERE id = ? UNION ALL SELECT 1 FROM delivered WHERE id = ?",
                    (row[0], row[0]),
                ).fetchone()
                is None
            ]
            fresh = list({row[0]: row for row in fresh}.values())
            depth = self._count()
            limit = self.max_readings + (self.reserve if use_reserve else 0)
            if fresh and depth + len(fresh) > limit:
                raise OutboxFull(depth, self.max_readings, len(fresh))
            db.executemany(
                "INSERT INTO outbox (id, device_id, stored_at, body) VALUES (?, ?, ?, ?)", fresh
            )
            if device_update is not None:
                self._update_device(db, *device_update)
            self._depth = depth + len(fresh)
        if fresh:
            self.changed.set()
        return len(fresh)

    def pending(self, *, after: int = 0, limit: int = 50) -> list[PendingReading]:
        """The oldest waiting readings with ``seq > after``."""
        return [
            PendingReading(seq, id_, body)
            for seq, id_, body in self._db.execute(
                "SELECT seq, id, body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
        ]

    def waiting(self, ids: Iterable[str]) -> list[PendingReading]:
        """Those of ``ids`` still waiting (not acknowledged since), oldest first."""
        wanted = list(dict.fromkeys(ids))
        found: list[PendingReading] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found += [
                PendingReading(seq, id_, body)
                for seq, id_, body in self._db.execute(
                    f"SELECT seq, id, body FROM outbox WHERE id IN ({marks})",
                    chunk,
                )
            ]
        return sorted(found, key=lambda p: p.seq)

    def acknowledge(self, ids: Iterable[str], *, now: datetime | None = None) -> int:
        """Acknowledged (receipt, or PUBACK without receipts): forget their bodies, remember
        their ids. Returns how many were waiting."""
        stamp = _iso(now or datetime.now(UTC))
        id_list = list(ids)
        before = self._depth
        with self._transaction() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in id_list])
            db.executemany(
                "INSERT OR REPLACE INTO delivered (id, delivered_at) VALUES (?, ?)",
                [(i, stamp) for i in id_list],
            )
            self._depth = self._count()
            excess = int(db.execute("SELECT count(*) FROM delivered").fetchone()[0]) - (
                self.delivered_memory
            )
            if excess > 0:
                db.execute(
                    "DELETE FROM delivered WHERE id IN"
                    " (SELECT id FROM delivered ORDER BY delivered_at LIMIT ?)",
                    (excess,),
                )
        return before - self._depth

    def was_delivered(self, reading_id: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM delivered WHERE id = ?", (reading_id,)).fetchone()
            is not None
        )

    def known(self, reading_id: str) -> bool:
        """Waiting or delivered."""
        return (
            self._db.execute(
                "SELECT 1 FROM outbox WHERE id = ? UNION ALL SELECT 1 FROM delivered WHERE id = ?",
                (reading_id, reading_id),
            ).fetchone()
            is not None
        )

    # -- devices --------------------------------------------------------------------------

    _DEVICE_COLUMNS = frozenset(
        {
            "type",
            "manufacturer",
            "model",
            "last_sequence",
            "record_count",
            "last_reading_at",
            "battery_percent",
            "clock_drift_seconds",
            "last_seen_at",
            "dis_read",
        }
    )

    def _update_device(
        self, db: sqlite3.Connection, device_id: str, values: Mapping[str, Any]
    ) -> None:
        unknown = set(values) - self._DEVICE_COLUMNS
        if unknown:
            raise ValueError(f"unknown device columns: {sorted(unknown)}")
        converted = {k: _iso(v) if isinstance(v, datetime) else v for k, v in values.items()}
        db.execute(
            "INSERT INTO devices (id, type) VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
            (device_id, converted.get("type", "unknown")),
        )
        if converted:
            assignments = ", ".join(f"{column} = ?" for column in converted)
            db.execute(
                f"UPDATE devices SET {assignments} WHERE id = ?",
                (*converted.values(), device_id),
            )

    def update_device(self, device_id: str, **values: Any) -> None:
        with self._transaction() as db:
            self._update_device(db, device_id, values)

    def device(self, device_id: str) -> DeviceState | None:
        row = self._db.execute(
            "SELECT id, type, manufacturer, model, last_sequence, record_count, last_reading_at,"
            " battery_percent, clock_drift_seconds, last_seen_at, dis_read"
            " FROM devices WHERE id = ?",
            (device_id,),
        ).fetchone()
        return None if row is None else self._device_row(row)

    def devices(self) -> list[DeviceState]:
        rows = self._db.execute(
            "SELECT id, type, manufacturer, model, last_sequence, record_count, last_reading_at,"
            " battery_percent, clock_drift_seconds, last_seen_at, dis_read"
            " FROM devices ORDER BY id"
        ).fetchall()
        return [self._device_row(row) for row in rows]

    @staticmethod
    def _device_row(row: tuple[Any, ...]) -> DeviceState:
        return DeviceState(
            id=row[0],
            type=row[1],
            manufacturer=row[2],
            model=row[3],
            last_sequence=row[4],
            record_count=row[5],
            last_reading_at=_parse_iso(row[6]),
            battery_percent=row[7],
            clock_drift_seconds=row[8],
            last_seen_at=_parse_iso(row[9]),
            dis_read=bool(row[10]),
        )

    def bind_address(self, address: str, device_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO addresses (address, device_id) VALUES (?, ?)",
                (address, device_id),
            )

    def device_for_address(self, address: str) -> str | None:
        row = self._db.execute(
            "SELECT device_id FROM addresses WHERE address = ?", (address,)
        ).fetchone()
        return None if row is None else str(row[0])

    # -- settings (e.g. the last allowlist pushed by the server) ---------------------------

    def get_setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str | None) -> None:
        with self._transaction() as db:
            if value is None:
                db.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value)
                )
