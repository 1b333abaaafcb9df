"""No patient data in logs or metrics: a planted name and id appear in neither (ids only as
opaque UUIDs at DEBUG), and no value appears at all."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY, generate_latest

from alerts.scheduler import tick
from tests.support.alerts import T0, bp, make_patient, store

pytestmark = pytest.mark.db

NAME = "Zebulon Quattlebaum"


async def test_no_patient_data_in_logs_or_metrics(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="alerts")
    async with await psycopg.AsyncConnection.connect(database) as conn:
        pid = await make_patient(conn, "hypertension", site="site-privacy")
        await conn.execute("UPDATE patients SET display_name = %s WHERE id = %s", (NAME, pid))
        await store(
            conn,
            [bp(pid, T0, 187.3, 121.7), bp(pid, T0 + timedelta(minutes=4), 186.9, 120.3)],
            now=T0 + timedelta(minutes=5),
        )
        await conn.commit()
        await tick(conn, now=T0 + timedelta(hours=2), periodic=True)
        cur = await conn.execute(
            "SELECT count(*) FROM alert_episodes WHERE patient_id = %s", (pid,)
        )
        row: Any = await cur.fetchone()
        assert row[0] >= 1
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records  # the path did log
    for secret in (NAME, "187.3", "121.7", "186.9", "120.3"):
        assert secret not in text
    for record in caplog.records:
        if str(pid) in record.getMessage():
            assert record.levelno == logging.DEBUG
    metrics = generate_latest(REGISTRY).decode()
    assert "carebeacon_alert_episodes_opened_total" in metrics
    assert str(pid) not in metrics
    assert NAME not in metrics
