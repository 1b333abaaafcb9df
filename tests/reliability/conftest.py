"""Fixtures of the reliability tests that run their own broker, cluster or ingest processes."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from lab.backup import Archive
from lab.services import _root_postgres_ids
from tests.support.broker import PROJECT_ACL, PrivateBroker
from tests.support.end_to_end import IngestProcess, PgTarget
from tests.support.homes import Home, register_home
from tests.support.timescale import PrivateTimescale


@pytest.fixture
def gateway_home(database: str) -> Home:
    """A home whose gateway logs in to a private broker only (not the project's)."""
    return dataclasses.replace(register_home(database), password=secrets.token_urlsafe(18))


@pytest.fixture
def shared_broker(gateway_home: Home) -> Iterator[PrivateBroker]:
    """A private Mosquitto (the project's binary and persistence settings, its ACL)."""
    assert gateway_home.password is not None
    broker = PrivateBroker(
        {
            "ingest": "ingest-pw",
            "admin": "admin-pw",
            gateway_home.gateway_id: gateway_home.password,
        },
        acl=PROJECT_ACL,
    )
    broker.start()
    yield broker
    broker.remove()


@pytest.fixture
def shared_ingests(
    database: str, shared_broker: PrivateBroker, tmp_path: Path
) -> Iterator[list[IngestProcess]]:
    """Two ingest processes (not started) in one share group on :func:`shared_broker`."""
    group = f"scale-{uuid.uuid4().hex[:8]}"
    pg = PgTarget.from_conninfo(database)
    processes = [
        IngestProcess(pg, shared_broker.port, tmp_path / f"ingest-{i}.log", group) for i in (0, 1)
    ]
    yield processes
    for process in processes:
        if process.alive():
            process.stop()


@pytest.fixture
def archived_cluster() -> Iterator[tuple[PrivateTimescale, Archive]]:
    cluster = PrivateTimescale()
    uid, gid = _root_postgres_ids(cluster.root)
    archive = Archive(
        root=cluster.root,
        uid=uid,
        gid=gid,
        data=PurePosixPath(cluster.inside) / "data",
        socket_dir=PurePosixPath(cluster.inside) / "run",
        port=cluster.port,
        user=cluster.user,
        repository=PurePosixPath(cluster.inside) / "backup",
        archive_timeout_seconds=1,
    )
    try:
        cluster.init()
        archive.write_config()
        with (cluster.outside / "data" / "postgresql.conf").open("a", encoding="utf-8") as fh:
            fh.write(archive.postgresql_settings())
        cluster.start()
        yield cluster, archive
    finally:
        cluster.remove()
