"""``carebeacon bench alerts``: throughput of the live rules (:func:`alerts.evaluate_readings`)
inside ingest's transaction.

    .venv/bin/python -m lab.bench.alerts [--patients 1000] [--batches 20] [--batch-size 500]

Builds a throw-away database (migrated): ``--patients`` consenting hypertension patients
(:func:`lab.homes.provision_homes_bulk`) with 7 days of history (a blood pressure every 6 hours),
then stores ``--batches`` batches of ``--batch-size`` new readings, each from a different
patient, by COPY (as ingest writes them) and times ``evaluate_readings`` on each batch, each
committed. Prints readings/s in evaluation, the median and p95 time per batch and the wall time
(COPY included). The database is dropped afterwards. No patient data is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from alerts import StoredReading, evaluate_readings
from carebeacon.settings import Settings
from db.migrations import apply_migrations
from lab.homes import HomeSpec, Program, Site, provision_homes_bulk

__all__ = ["main"]

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the benchmark's "now" (fixed: runs compare)
HISTORY = 28  # a blood pressure every 6 hours for 7 days
_COPY_READINGS = (
    "COPY readings (time, patient_id, code, value, unit, reading_id, device_id, gateway_id,"
    " received_at, flags) FROM STDIN"
)
_UNITS = {"systolic": "mm[Hg]", "diastolic": "mm[Hg]", "pulse": "/min"}


def _bp(patient: uuid.UUID, at: datetime, systolic: float, diastolic: float) -> StoredReading:
    return StoredReading(
        reading_id=uuid.uuid4(),
        patient_id=patient,
        type="blood_pressure",
        time=at,
        received_at=at,
        device_id="bench-cuff",
        gateway_id="bench-gw",
        flags=(),
        values={"systolic": systolic, "diastolic": diastolic, "pulse": 70.0},
    )


async def _copy(conn: psycopg.AsyncConnection[Any], readings: Sequence[StoredReading]) -> None:
    async with conn.cursor() as cur, cur.copy(_COPY_READINGS) as copy:
        for r in readings:
            for code, value in r.values.items():
                await copy.write_row(
                    (
                        r.time,
                        r.patient_id,
                        code,
                        value,
                        _UNITS[code],
                        r.reading_id,
                        r.device_id,
                        r.gateway_id,
                        r.received_at,
                        list(r.flags),
                    )
                )


async def measure(
    conninfo: str, patients: int, batches: int, batch_size: int, rng: random.Random
) -> list[float]:
    """Provision, load the history, then evaluate each batch: seconds per batch."""
    site = Site("bench", "Bench site", "America/New_York")
    program = Program("hypertension-prog", "hypertension", "hypertension")
    specs = [
        HomeSpec(site=site, program=program, enrolled_at=T0 - timedelta(days=30))
        for _ in range(patients)
    ]
    with psycopg.connect(conninfo) as conn:
        provision_homes_bulk(conn, specs)
    ids = [spec.patient_id for spec in specs]
    history = [
        _bp(
            p,
            T0 - timedelta(hours=6 * k) + timedelta(minutes=rng.uniform(0, 30)),
            rng.gauss(128, 12),
            rng.gauss(80, 8),
        )
        for p in ids
        for k in range(1, HISTORY + 1)
    ]
    seconds: list[float] = []
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        await _copy(conn, history)
        await conn.commit()
        for b in range(batches):
            batch = [
                _bp(p, T0 + timedelta(minutes=b), rng.gauss(130, 14), rng.gauss(82, 9))
                for p in rng.sample(ids, batch_size)
            ]
            await _copy(conn, batch)
            started = time.perf_counter()
            await evaluate_readings(conn, batch, now=T0 + timedelta(minutes=b, seconds=5))
            seconds.append(time.perf_counter() - started)
            await conn.commit()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="carebeacon bench alerts", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.patients < 1 or args.batches < 1 or not 1 <= args.batch_size <= args.patients:
        parser.error("--patients and --batches must be ≥ 1, --batch-size between 1 and --patients")
    settings = Settings.from_env()
    name = f"cbbench_alerts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        conninfo = settings.pg_conninfo(name)
        apply_migrations(conninfo)
        print(
            f"setting up: {args.patients} patients, {HISTORY} readings of history each",
            file=sys.stderr,
            flush=True,
        )
        started = time.perf_counter()
        rng = random.Random(args.seed)  # noqa: S311 - synthetic data, not secrets
        seconds = asyncio.run(measure(conninfo, args.patients, args.batches, args.batch_size, rng))
        wall = time.perf_counter() - started
    finally:
        with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    n = args.batches * args.batch_size
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    print(
        f"evaluate_readings: {n} readings of {args.patients} patients with 7 days of history,"
        f" batches of {args.batch_size}: {n / sum(seconds):,.0f} readings/s in evaluation;"
        f" per batch median {statistics.median(seconds) * 1000:.1f} ms,"
        f" p95 {p95 * 1000:.1f} ms; {wall:.1f} s wall (provisioning and COPY included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
