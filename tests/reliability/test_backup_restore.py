"""A database lost and brought back: continuous archiving with pgBackRest (``lab.backup``, what
``carebeacon services backup|restore`` run), on a private cluster — readings written, a base
backup, more readings, the data directory destroyed, the latest backup restored and the
archived WAL replayed: every committed reading is back.

The archive is as current as its last finished WAL segment: production closes one at least
every ``archive_timeout`` (60 s); this cluster every second, and the test destroys the data
directory only once the WAL of its last commit is archived (what a minute's wait gives in
production)."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from lab.backup import Archive, BackupError
from tests.support.timescale import PrivateTimescale
from tests.support.waiting import eventually

pytestmark = pytest.mark.db


def _write(conninfo: str, readings: int, per_commit: int = 10) -> list[uuid.UUID]:
    """Readings as ingest commits them: a few per transaction."""
    ids: list[uuid.UUID] = []
    patient = uuid.uuid4()
    with psycopg.connect(conninfo) as conn:
        for start in range(0, readings, per_commit):
            with conn.transaction(), conn.cursor() as cur:
                rows = []
                for i in range(start, min(start + per_commit, readings)):
                    reading_id = uuid.uuid4()
                    ids.append(reading_id)
                    at = datetime.now(UTC) - timedelta(minutes=i)
                    rows.append(
                        (at, patient, "body_weight", 70 + i % 30, "kg", reading_id, "d", "g", at)
                    )
                cur.executemany(
                    "INSERT INTO readings (time, patient_id, code, value, unit, reading_id,"
                    " device_id, gateway_id, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s,"
                    " %s, %s)",
                    rows,
                )
    return ids


def _one(conninfo: str, sql: str, *params: object) -> object:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]


def test_restore_to_the_latest_point_after_the_data_directory_is_lost(
    archived_cluster: tuple[PrivateTimescale, Archive],
) -> None:
    pg, archive = archived_cluster
    conninfo = pg.create_database("restore_test")
    with pytest.raises(BackupError, match="no backup"):
        archive.restore()
    archive.ensure_stanza()
    before = _write(conninfo, 3000)
    started = time.monotonic()
    info = archive.backup("incr")  # the first one is full
    backup_seconds = time.monotonic() - started
    assert "full backup" in info
    after = _write(conninfo, 3000)
    last = str(_one(conninfo, "SELECT pg_current_wal_insert_lsn()::text"))

    def archived() -> bool:
        return bool(
            _one(
                conninfo,
                "SELECT coalesce(last_archived_wal >= pg_walfile_name(%s::pg_lsn), false)"
                " FROM pg_stat_archiver",
                last,
            )
        )

    asyncio.run(eventually(archived, within=60, step=0.2))

    pg.stop("immediate")  # a crash, then the disk with the data directory is gone
    data = pg.outside / "data"
    shutil.rmtree(data)
    assert not data.exists()

    started = time.monotonic()
    archive.restore()
    pg.start()
    asyncio.run(
        eventually(
            lambda: _one(pg.conninfo("postgres"), "SELECT NOT pg_is_in_recovery()"), within=120
        )
    )
    restore_seconds = time.monotonic() - started

    ids = before + after
    back = _one(
        conninfo, "SELECT count(*) FROM readings WHERE reading_id = ANY(%s)", [str(i) for i in ids]
    )
    print(
        f"\nbackup/restore: {len(before)} readings before the base backup, {len(after)} after;"
        f" base backup {backup_seconds:.1f} s, restore + WAL replay {restore_seconds:.1f} s;"
        f" {back} of {len(ids)} back"
    )
    assert back == len(ids)
    # the restored cluster takes writes again, and keeps archiving
    assert len(_write(conninfo, 10)) == 10
    assert os.stat(data).st_uid == archive.uid


@pytest.mark.slow  # ~45 s: a full backup, then a restore of a running cluster
def test_services_backup_and_restore_commands(
    archived_cluster: tuple[PrivateTimescale, Archive], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``carebeacon services backup`` and ``restore`` themselves, pointed at the private
    cluster (its data directory, socket and repository in place of the project's)."""
    from carebeacon.settings import Settings
    from lab import services

    pg, archive = archived_cluster
    conninfo = pg.create_database("services_restore")
    monkeypatch.setattr(services, "PG_DATA_IN_ROOT", str(archive.data))
    monkeypatch.setattr(services, "PG_SOCKET_IN_ROOT", str(archive.socket_dir))
    monkeypatch.setattr(services, "PG_BACKUP_IN_ROOT", str(archive.repository))
    settings = Settings(pg_port=pg.port, pg_user=pg.user, pg_database="services_restore")
    archive.ensure_stanza()
    before = _write(conninfo, 500)
    assert services.backup(settings, "full") == 0
    after = _write(conninfo, 500)
    last = str(_one(conninfo, "SELECT pg_current_wal_insert_lsn()::text"))
    asyncio.run(
        eventually(
            lambda: _one(
                conninfo,
                "SELECT coalesce(last_archived_wal >= pg_walfile_name(%s::pg_lsn), false)"
                " FROM pg_stat_archiver",
                last,
            ),
            within=60,
            step=0.2,
        )
    )
    assert services.restore(settings) == 0
    ids = [str(i) for i in before + after]
    assert _one(conninfo, "SELECT count(*) FROM readings WHERE reading_id = ANY(%s)", ids) == 1000
    kept = sorted(p.name for p in pg.outside.iterdir() if p.name.startswith("pgdata.before"))
    assert len(kept) == 1  # the replaced data directory is kept, not deleted
