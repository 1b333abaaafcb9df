"""``carebeacon bench alerts``: throughput of the live rules (:func:`alerts.evaluate_readings`)
inside ingest's transaction.

    .venv/bin/python -m lab.bench.alerts [--patients 1000] [--batches 20] [--batch-size 500]
        [--per-patient 1] [--active-share F] [--active-level 2|severe]
        [--path batch|per-reading|both] [--profile N]

Builds a throw-away database (migrated): ``--patients`` consenting hypertension patients
(:func:`lab.homes.provision_homes_bulk`) with 7 days of history (a blood pressure every 6 hours),
then stores ``--batches`` batches of ``--batch-size`` new readings, ``--per-patient`` readings
(a minute apart) from each patient in the batch, by COPY (as ingest writes them) and times
``evaluate_readings`` on each batch, each committed. Prints readings/s in evaluation, the median
and p95 time per batch and the wall time (COPY included). The database is dropped afterwards.
No patient data is printed.

Load: without ``--active-share``, every reading is drawn around 130/82 mmHg (history around
128/80), so some patients drift into and out of high-BP episodes. With ``--active-share F``,
that share of the patients has a history and readings at a level-2 high BP (≈160/100: every
batch opens or updates their ``bp_high`` episode) or, with ``--active-level severe``, in the
severe range (≈188/104, > 180 systolic as in ``carebeacon bench ingest``: a crisis episode and
its re-measures), and the others stay clearly normal (110-134 / 65-84, so no rule can speak).
``--path``: the batch path (:func:`alerts.evaluate_readings`), the per-reading path (every
patient through the engine, as before the batch prefilter), or both on the same database,
alternating per batch (each path gets its own batches of new readings).
``--profile N``: cProfile the evaluation and print its top N entries (by own time) to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import math
import os
import pstats
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
from alerts._live import evaluate_per_reading
from carebeacon.settings import Settings
from db.migrations import apply_migrations
from lab.homes import HomeSpec, Program, Site, provision_homes_bulk

__all__ = ["main"]

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the benchmark's "now" (fixed: runs compare)
HISTORY = 28  # a blood pressure every 6 hours for 7 days
PATHS = ("batch", "per-reading")
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


#: the active patients' pressures (mean, sd): level-2 high BP, or the severe range
ACTIVE_LEVELS = {"2": ((160.0, 4.0), (100.0, 3.0)), "severe": ((188.0, 5.0), (104.0, 6.0))}


class Load:
    """The blood pressures of the run: drifting around 130/82 (no ``active`` set), or a high
    one for the ``active`` patients (``ACTIVE_LEVELS[level]``) and a clearly normal one for the
    others."""

    def __init__(self, rng: random.Random, active: set[uuid.UUID] | None, level: str = "2") -> None:
        self.rng = rng
        self.active = active
        self.high = ACTIVE_LEVELS[level]

    def history(self, patient: uuid.UUID, at: datetime) -> StoredReading:
        if self.active is None:
            return _bp(patient, at, self.rng.gauss(128, 12), self.rng.gauss(80, 8))
        return self.reading(patient, at)

    def reading(self, patient: uuid.UUID, at: datetime) -> StoredReading:
        g = self.rng.gauss
        if self.active is None:
            return _bp(patient, at, g(130, 14), g(82, 9))
        if patient in self.active:
            (s_mean, s_sd), (d_mean, d_sd) = self.high
            return _bp(patient, at, g(s_mean, s_sd), g(d_mean, d_sd))
        return _bp(patient, at, min(134, max(110, g(122, 6))), min(84, max(65, g(76, 4))))


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
    conninfo: str,
    args: argparse.Namespace,
    rng: random.Random,
    profiler: cProfile.Profile | None = None,
) -> dict[str, list[float]]:
    """Provision, load the history, then evaluate each batch: seconds per batch, per path."""
    site = Site("bench", "Bench site", "America/New_York")
    program = Program("hypertension-prog", "hypertension", "hypertension")
    specs = [
        HomeSpec(site=site, program=program, enrolled_at=T0 - timedelta(days=30))
        for _ in range(args.patients)
    ]
    with psycopg.connect(conninfo) as conn:
        provision_homes_bulk(conn, specs)
    ids = [spec.patient_id for spec in specs]
    active = (
        None
        if args.active_share is None
        else set(rng.sample(ids, round(args.active_share * len(ids))))
    )
    load = Load(rng, active, args.active_level)
    history = [
        load.history(p, T0 - timedelta(hours=6 * k) + timedelta(minutes=rng.uniform(0, 30)))
        for p in ids
        for k in range(1, HISTORY + 1)
    ]
    paths = list(PATHS) if args.path == "both" else [args.path]
    seconds: dict[str, list[float]] = {p: [] for p in paths}
    per = args.per_patient
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        await _copy(conn, history)
        await conn.commit()
        del history  # stored: the process keeps no copy of it (as ingest keeps none)
        for b in range(args.batches * len(paths)):
            path = paths[b % len(paths)]
            at = T0 + timedelta(minutes=per * b)
            batch = [
                load.reading(p, at + timedelta(minutes=k))
                for p in rng.sample(ids, args.batch_size // per)
                for k in range(per)
            ]
            await _copy(conn, batch)
            now = at + timedelta(minutes=per, seconds=5)
            evaluate = evaluate_readings if path == "batch" else evaluate_per_reading
            started = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            await evaluate(conn, batch, now=now)
            if profiler is not None:
                profiler.disable()
            seconds[path].append(time.perf_counter() - started)
            await conn.commit()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="carebeacon bench alerts", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--per-patient", type=int, default=1)
    parser.add_argument("--active-share", type=float, default=None)
    parser.add_argument("--active-level", choices=tuple(ACTIVE_LEVELS), default="2")
    parser.add_argument("--path", choices=(*PATHS, "both"), default="batch")
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.patients < 1 or args.batches < 1 or args.per_patient < 1:
        parser.error("--patients, --batches and --per-patient must be ≥ 1")
    if not args.per_patient <= args.batch_size <= args.patients * args.per_patient:
        parser.error(
            "--batch-size must be between --per-patient and --patients times --per-patient"
        )
    if args.active_share is not None and not 0 <= args.active_share <= 1:
        parser.error("--active-share must be between 0 and 1")
    settings = Settings.from_env()
    name = f"cbbench_alerts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    profiler = cProfile.Profile() if args.profile else None
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
        seconds = asyncio.run(measure(conninfo, args, rng, profiler))
        wall = time.perf_counter() - started
    finally:
        with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    load = (
        "drifting around 130/82"
        if args.active_share is None
        else f"{args.active_share:.0%} of patients at a"
        f" {'severe' if args.active_level == 'severe' else 'high'} BP, the others normal"
    )
    size = args.batch_size // args.per_patient * args.per_patient
    for path, secs in seconds.items():
        n = len(secs) * size
        ordered = sorted(secs)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        print(
            f"evaluate_readings ({path} path): {n} readings of {args.patients} patients with"
            f" 7 days of history ({load}), batches of {size} ({args.per_patient} per patient):"
            f" {n / sum(secs):,.0f} readings/s in evaluation; per batch median"
            f" {statistics.median(secs) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
            f" ({statistics.median(secs) * 1e6 / size:.1f} ms per 1,000 readings)"
        )
    print(f"{wall:.1f} s wall (provisioning and COPY included)")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(
            os.environ.get("CAREBEACON_PROFILE_SORT", "tottime")
        ).print_stats(args.profile)
        print(out.getvalue(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
