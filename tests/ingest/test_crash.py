"""SIGKILL the ingest process while it consumes a QoS 1 stream: every reading stored exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import aiomqtt
import pytest

from ingest.service import IngestConfig
from lab.services import forget_ingest_session
from tests.support.db import count
from tests.support.homes import Home
from tests.support.readings import batch, bp_reading, topic
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker]


def _start_ingest(config: IngestConfig) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        CAREBEACON_PG_DATABASE=config.settings.pg_database,
        CAREBEACON_INGEST_CLIENT_ID=f"{config.client_id}-proc",
        CAREBEACON_INGEST_SHARE_GROUP=f"{config.share_group}-proc",
        CAREBEACON_INGEST_SESSION_EXPIRY_SECONDS="600",
        CAREBEACON_METRICS_PORT="0",
        CAREBEACON_LOG_LEVEL="INFO",  # ingest logs only its connections at INFO
    )
    return subprocess.Popen(
        [sys.executable, "-m", "carebeacon.cli", "ingest"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def _close(proc: subprocess.Popen[str]) -> None:
    if proc.stderr is not None:
        proc.stderr.close()


async def _subscribed(proc: subprocess.Popen[str]) -> None:
    """Until the process logs its connection, which follows its subscriptions: from then on its
    persistent session queues whatever it misses (a fixed sleep raced a slow start)."""

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "connected to the broker" in line:
                return
        raise AssertionError("ingest exited before it connected")

    await asyncio.wait_for(asyncio.to_thread(read), 30)


async def test_sigkill_mid_stream_loses_nothing_and_doubles_nothing(
    ingest_config: IngestConfig, publisher: aiomqtt.Client, database: str, home: Home
) -> None:
    total = 600
    proc = _start_ingest(ingest_config)
    try:
        await _subscribed(proc)
        ids = []

        def stored() -> int:
            return count(
                database,
                "SELECT count(*) FROM reading_receipts WHERE patient_id = %s",
                home.patient_id,
            )

        for i in range(total):
            reading = bp_reading(home.cuff_id, systolic=100 + i % 50)
            ids.append(uuid.UUID(reading["id"]))
            await publisher.publish(
                topic(home.gateway_id), batch(home.gateway_id, [reading]), qos=1
            )
            if i == total // 3:
                await eventually(lambda: stored() > 0)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                _close(proc)
                killed_at = stored()
            if i % 20 == 0:
                await asyncio.sleep(0.01)
        assert 0 < killed_at < total
        proc = _start_ingest(ingest_config)
        await eventually(lambda: stored() == total, within=60)
        await asyncio.sleep(1.0)  # anything redelivered late must still not double
        assert stored() == total
        assert (
            count(database, "SELECT count(*) FROM readings WHERE patient_id = %s", home.patient_id)
            == 3 * total
        )
        assert (
            count(database, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", ids)
            == total
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            _close(proc)
            await forget_ingest_session(ingest_config.settings, f"{ingest_config.client_id}-proc")
        assert proc.returncode == 0
