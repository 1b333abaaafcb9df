"""Throughput of ``evaluate_readings`` inside a transaction (a benchmark: prints, no timing
assertion). Run with ``pytest -m slow tests/alerts/test_bench.py -s``."""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from alerts import StoredReading, evaluate_readings
from tests.alerts.helpers import T0, bp, make_patient

pytestmark = [pytest.mark.db, pytest.mark.slow]


async def _copy_readings(conn: psycopg.AsyncConnection[Any], readings: list[StoredReading]) -> None:
    async with (
        conn.cursor() as cur,
        cur.copy(
            "COPY readings (time, patient_id, code, value, unit, reading_id, device_id,"
            " gateway_id, received_at, flags) FROM STDIN"
        ) as copy,
    ):
        for r in readings:
            for code, value in r.values.items():
                await copy.write_row(
                    (
                        r.time,
                        r.patient_id,
                        code,
                        value,
                        "x",
                        r.reading_id,
                        r.device_id,
                        r.gateway_id,
                        r.received_at,
                        list(r.flags),
                    )
                )


@pytest.mark.timeout(600)
async def test_evaluate_readings_throughput(database: str) -> None:
    rng = random.Random(7)
    async with await psycopg.AsyncConnection.connect(database) as conn:
        patients = [await make_patient(conn, "hypertension", site="bench") for _ in range(1000)]
        history = [
            bp(
                p,
                T0 - timedelta(hours=6 * k) + timedelta(minutes=rng.uniform(0, 30)),
                rng.gauss(128, 12),
                rng.gauss(80, 8),
            )
            for p in patients
            for k in range(1, 29)
        ]
        await _copy_readings(conn, history)
        await conn.commit()
        batches = 20
        total = 0.0
        started = time.perf_counter()
        for b in range(batches):
            chosen = rng.sample(patients, 500)
            batch = [
                bp(p, T0 + timedelta(minutes=b), rng.gauss(130, 14), rng.gauss(82, 9))
                for p in chosen
            ]
            await _copy_readings(conn, batch)
            t = time.perf_counter()
            await evaluate_readings(conn, batch, now=T0 + timedelta(minutes=b, seconds=5))
            total += time.perf_counter() - t
            await conn.commit()
        wall = time.perf_counter() - started
        n = batches * 500
        print(
            f"\nevaluate_readings: {n} readings of 1000 patients with 7 days of history,"
            f" batches of 500: {n / total:,.0f} readings/s in evaluation"
            f" ({total / batches * 1000:.1f} ms per batch; {wall:.1f} s wall incl. COPY)"
        )
        assert uuid.UUID(int=0) not in patients
