"""Migrations marked ``-- carebeacon: no-transaction``: run statement by statement outside a
transaction, so that an index build on the readings hypertable commits chunk by chunk
(``timescaledb.transaction_per_chunk``) while ingest keeps inserting. Run on a private cluster:
the shared one is never loaded or locked."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from db.migrations import MigrationError, apply_migrations, discover
from tests.support.timescale import PrivateTimescale

pytestmark = pytest.mark.db

PER_CHUNK = (
    "-- carebeacon: no-transaction\n"
    "-- an index on the hypertable built one chunk per transaction\n"
    "CREATE INDEX IF NOT EXISTS readings_device_time ON readings (device_id, time DESC)\n"
    "    WITH (timescaledb.transaction_per_chunk);\n"
)
ONE_TRANSACTION = "CREATE INDEX readings_gateway_time ON readings (gateway_id, time DESC);\n"


def _copy_migrations(directory: Path) -> None:
    for migration in discover():
        (directory / f"{migration.version:03d}_{migration.name}.sql").write_text(migration.sql)


def test_marker_and_statements(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text(
        "-- carebeacon: no-transaction\n-- why\n\nCREATE INDEX a ON t (x);\n"
        "CREATE INDEX b\n    ON t (y);\n-- trailing comment\n"
    )
    (tmp_path / "002_b.sql").write_text("-- a comment\nCREATE TABLE t (x int);\n")
    first, second = discover(tmp_path)
    assert first.no_transaction
    assert not second.no_transaction
    assert first.statements() == ["CREATE INDEX a ON t (x);", "CREATE INDEX b\n    ON t (y);"]


@pytest.mark.parametrize(
    "body",
    [
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n",
        "CREATE INDEX a ON t (x)\n",
    ],
)
def test_unsplittable_file_is_refused(tmp_path: Path, body: str) -> None:
    (tmp_path / "001_a.sql").write_text("-- carebeacon: no-transaction\n" + body)
    (migration,) = discover(tmp_path)
    with pytest.raises(MigrationError):
        migration.statements()


def _fill(conninfo: str, days: int = 70, per_day: int = 6000) -> int:
    """Readings spread over ``days`` (several 14-day chunks) ending now."""
    start = datetime.now(UTC) - timedelta(days=days)
    with (
        psycopg.connect(conninfo) as conn,
        conn.cursor() as cur,
        cur.copy(
            "COPY readings (time, patient_id, code, value, unit, reading_id, device_id,"
            " gateway_id, received_at) FROM STDIN"
        ) as copy,
    ):
        patient = uuid.uuid4()
        for i in range(days * per_day):
            at = start + timedelta(seconds=i * 86400 / per_day)
            copy.write_row(
                (at, patient, "body_weight", 80.0, "kg", uuid.uuid4(), f"dev-{i % 50}",
                 f"gw-{i % 50}", at)
            )  # fmt: skip
    return days * per_day


class Writer(threading.Thread):
    """Ingest's shape of write: one committed insert after another into the newest chunk; keeps
    the longest wait for a commit."""

    def __init__(self, conninfo: str) -> None:
        super().__init__(daemon=True)
        self.conninfo = conninfo
        self.stop = threading.Event()
        self.committed = 0
        self.longest = 0.0
        self.patient = uuid.uuid4()

    def run(self) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self.stop.is_set():
                now = datetime.now(UTC)
                started = time.monotonic()
                conn.execute(
                    "INSERT INTO readings (time, patient_id, code, value, unit, reading_id,"
                    " device_id, gateway_id, received_at)"
                    " VALUES (%s, %s, 'body_weight', 80, 'kg', %s, 'dev-w', 'gw-w', %s)",
                    (now, self.patient, uuid.uuid4(), now),
                )
                self.longest = max(self.longest, time.monotonic() - started)
                self.committed += 1
                time.sleep(0.002)


def _migrate_while_writing(conninfo: str, directory: Path) -> tuple[list[str], Writer, float]:
    writer = Writer(conninfo)
    writer.start()
    time.sleep(0.3)
    started = time.monotonic()
    try:
        applied = apply_migrations(conninfo, directory)
    finally:
        took = time.monotonic() - started
        time.sleep(0.3)
        writer.stop.set()
        writer.join(30)
    return applied, writer, took


def test_index_build_on_the_hypertable_while_ingest_writes(
    private_cluster: PrivateTimescale, tmp_path: Path
) -> None:
    conninfo = private_cluster.create_database(f"online_{uuid.uuid4().hex[:8]}")
    rows = _fill(conninfo)
    _copy_migrations(tmp_path)
    version = max(m.version for m in discover()) + 1
    (tmp_path / f"{version:03d}_per_chunk_index.sql").write_text(PER_CHUNK)
    applied, per_chunk, per_chunk_took = _migrate_while_writing(conninfo, tmp_path)
    assert applied == [f"{version:03d}_per_chunk_index"]

    (tmp_path / f"{version + 1:03d}_one_transaction_index.sql").write_text(ONE_TRANSACTION)
    applied, whole, whole_took = _migrate_while_writing(conninfo, tmp_path)
    assert applied == [f"{version + 1:03d}_one_transaction_index"]
    print(
        f"\nindex build on {rows} readings (14-day chunks over 70 days) while a writer inserts:"
        f"\n  per chunk (no-transaction):  build {per_chunk_took:.2f} s, longest insert"
        f" {per_chunk.longest * 1000:.0f} ms, {per_chunk.committed} inserts"
        f"\n  one transaction:             build {whole_took:.2f} s, longest insert"
        f" {whole.longest * 1000:.0f} ms, {whole.committed} inserts"
    )
    with psycopg.connect(conninfo) as conn:
        valid = conn.execute(
            "SELECT indexrelid::regclass::text, indisvalid FROM pg_index"
            " WHERE indrelid = 'readings'::regclass"
            " AND indexrelid::regclass::text IN ('readings_device_time', 'readings_gateway_time')"
            " ORDER BY 1"
        ).fetchall()
        assert valid == [("readings_device_time", True), ("readings_gateway_time", True)]
        # every chunk has its copy of the per-chunk index
        chunks = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'"
        ).fetchone()
        chunk_indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = '_timescaledb_internal'"
            " AND indexname LIKE '%readings_device_time'"
        ).fetchone()
        assert chunks is not None
        assert chunk_indexes is not None
        assert chunks[0] >= 5
        assert chunk_indexes[0] == chunks[0]
        # nothing the writers committed is missing
        written = conn.execute(
            "SELECT count(*) FROM readings WHERE patient_id = ANY(%s)",
            ([per_chunk.patient, whole.patient],),
        ).fetchone()
        assert written == (per_chunk.committed + whole.committed,)


def test_a_failed_per_chunk_build_is_not_recorded(
    private_cluster: PrivateTimescale, tmp_path: Path
) -> None:
    conninfo = private_cluster.create_database(f"online_{uuid.uuid4().hex[:8]}")
    _fill(conninfo, days=30, per_day=50)
    with psycopg.connect(conninfo) as conn:  # a row the index expression fails on (1 / 0)
        conn.execute(
            "INSERT INTO readings (time, patient_id, code, value, unit, reading_id, device_id,"
            " gateway_id, received_at) VALUES (now() - interval '25 days', gen_random_uuid(),"
            " 'pulse', 0, '/min', gen_random_uuid(), 'zero', 'g', now())"
        )
    _copy_migrations(tmp_path)
    version = max(m.version for m in discover()) + 1
    name = f"{version:03d}_failing_per_chunk"
    (tmp_path / f"{name}.sql").write_text(
        "-- carebeacon: no-transaction\n"
        "CREATE INDEX IF NOT EXISTS readings_inverse ON readings ((1 / value), time)\n"
        "    WITH (timescaledb.transaction_per_chunk);\n"
    )
    with pytest.raises(MigrationError, match="failed"):
        apply_migrations(conninfo, tmp_path)
    # run again: IF NOT EXISTS skips the half-built index, which is invalid: refused, and
    # nothing is recorded either time
    with pytest.raises(MigrationError, match="left invalid indexes"):
        apply_migrations(conninfo, tmp_path)
    with psycopg.connect(conninfo) as conn:
        recorded = conn.execute(
            "SELECT count(*) FROM schema_migrations WHERE version = %s", (version,)
        ).fetchone()
        assert recorded == (0,)
        # the operator drops what failed and fixes the data that made it fail; then it completes
        conn.execute("DROP INDEX readings_inverse")
        conn.execute("DELETE FROM readings WHERE device_id = 'zero'")
        conn.commit()
    assert apply_migrations(conninfo, tmp_path) == [name]
