"""``carebeacon bench queries``: how fast the database reads behind the pages are with a real-sized
population — p50/p95 of

* the patient trend queries of the clinician's patient page (:func:`web._trends.series` and
  :func:`web._trends.kpis`) for each range, a random patient each run; and every read of the
  page (:func:`web._patient.read_patient_page`: trends, readings table, devices, thresholds,
  episodes, concurrently on pooled connections as the page runs them) for 30 days and a year;
* the care manager's queue listing (:func:`web._queue.queue_rows`, ~2,000 open episodes);
* the 7-day BP averages of a whole program (:func:`web._programs.program_bp_averages`);
* the monthly billing ledger of the site (:func:`web._billing_routes.build_ledger`, last
  complete month);

each printed with its target and PASS/MISS. The functions are the app's own, called on the
app's pool configuration (:func:`web._db.make_pool`), so the figures are the app's database
time without HTTP, rendering or audit writes.

The population (:mod:`lab.population`, default 2,000 patients x 365 days) lives in a
dedicated database (default ``carebeacon_bench_queries``), created and migrated here, reused by
later runs with the same parameters (and re-migrated, so a new index migration applies to it),
rebuilt when they differ or with ``--rebuild``, dropped with ``--drop``. Queries run "as of"
the end of the generated period, so a population reused days later measures the same thing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from carebeacon.progress import Bar, bar
from carebeacon.progress import say as progress_say
from carebeacon.settings import Settings
from db.migrations import apply_migrations, timescale_features
from lab.population import PROGRAMS, SITE, TIMEZONE, PopulationSpec, generate, now_minute
from web import _programs, _queue, _trends
from web._billing_routes import build_ledger
from web._db import make_pool
from web._patient import PageReads, read_patient_page
from web._principal import Principal, Role

__all__ = ["Result", "main"]

DEFAULT_DATABASE = "carebeacon_bench_queries"
GENERATOR_VERSION = 2  # bump when the population changes: older databases are rebuilt
TARGETS_MS = {"trend": 20.0, "queue": 20.0, "program": 500.0, "billing": 5000.0}
_META = "bench_population"
POOL = 4  # connections, as many as the patient page reads on at once
# Untimed runs first: the pool hands its connections out in turn, and psycopg prepares a
# statement from its fifth execution on a connection. The app's long-lived pool is warm.
WARMUP = 6 * POOL


@dataclass(frozen=True, slots=True)
class Population:
    spec: PopulationSpec
    until: datetime
    seconds: float
    rows: dict[str, int]
    reused: bool


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    runs: int
    p50_ms: float
    p95_ms: float
    target_ms: float
    detail: str

    @property
    def passed(self) -> bool:
        return self.p95_ms <= self.target_ms


def _p(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- the population -------------------------------------------------------------------------------


def _exists(settings: Settings, database: str) -> bool:
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
    return row is not None


def _create(settings: Settings, database: str) -> None:
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop_database(settings: Settings, database: str) -> None:
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def _stored(conninfo: str) -> tuple[dict[str, Any], Population] | None:
    """The population recorded in the database, with the parameters it was made with."""
    with psycopg.connect(conninfo) as conn:
        if conn.execute("SELECT to_regclass(%s)", (_META,)).fetchone() == (None,):
            return None
        row = conn.execute(
            sql.SQL("SELECT spec, until, seconds, rows FROM {}").format(sql.Identifier(_META))
        ).fetchone()
    if row is None:
        return None
    spec, until, seconds, rows = row
    params = dict(spec)
    population = Population(
        PopulationSpec(params["patients"], params["days"], params["seed"]),
        until,
        float(seconds),
        {str(k): int(v) for k, v in rows.items()},
        reused=True,
    )
    return params, population


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={params.get(k)}" for k in ("patients", "days", "seed", "generator"))


def ensure_population(
    settings: Settings,
    database: str,
    spec: PopulationSpec,
    *,
    rebuild: bool,
    say: Callable[[str], None],
    progress: bool = False,
) -> Population:
    """The database's population if it was made with ``spec`` (and this generator), else a
    fresh one in a re-created database."""
    conninfo = settings.pg_conninfo(database)
    wanted = {**spec.as_dict(), "generator": GENERATOR_VERSION}
    if _exists(settings, database):
        applied = apply_migrations(conninfo)
        if applied:
            say(f"migrations applied to the existing database: {', '.join(applied)}")
        stored = _stored(conninfo)
        if stored is not None and stored[0] == wanted and not rebuild:
            return stored[1]
        if rebuild:
            say("rebuilding the population (--rebuild)")
        elif stored is None:
            say("the database holds no complete population: rebuilding it")
        else:
            say(
                f"population parameters differ ({_params(stored[0])} → {_params(wanted)}): rebuilding it"
            )
        drop_database(settings, database)
    _create(settings, database)
    apply_migrations(conninfo)
    until = now_minute()
    say(f"generating {spec.patients:,} patients x {spec.days} days (seed {spec.seed}) …")
    started = time.perf_counter()
    rows = generate(conninfo, spec, until, say=say, progress=progress)
    seconds = time.perf_counter() - started
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (spec jsonb NOT NULL, until timestamptz NOT NULL,"
                " seconds float8 NOT NULL, rows jsonb NOT NULL,"
                " generated_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(_META))
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (spec, until, seconds, rows) VALUES (%s, %s, %s, %s)").format(
                sql.Identifier(_META)
            ),
            (Jsonb(wanted), until, seconds, Jsonb(rows)),
        )
    return Population(spec, until, seconds, rows, reused=False)


# --- the measurements -----------------------------------------------------------------------------


async def _timed(
    runs: int, warmup: int, call: Callable[[int], Awaitable[object]], steps: Bar
) -> tuple[list[float], object]:
    result: object = None
    for i in range(warmup):
        await call(-1 - i)
        steps.update(1)
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        result = await call(i)
        samples.append((time.perf_counter() - started) * 1000)
        steps.update(1)
    return samples, result


def _result(name: str, samples: list[float], target: str, detail: str) -> Result:
    return Result(
        name, len(samples), _p(samples, 0.50), _p(samples, 0.95), TARGETS_MS[target], detail
    )


def _previous_month(day: date) -> str:
    last = day.replace(day=1) - timedelta(days=1)
    return f"{last:%Y-%m}"


async def measure(
    conninfo: str,
    population: Population,
    *,
    runs: int,
    billing_runs: int,
    seed: int,
    progress: bool = False,
) -> list[Result]:
    """Time each read; ``progress``: one bar over every run (on a terminal)."""
    rng = random.Random(seed)  # noqa: S311 - which patient to look at, not a secret
    now = population.until
    pool = make_pool(conninfo, min_size=POOL, max_size=POOL)
    await pool.open(wait=True)
    results: list[Result] = []
    timed_reads = len(_trends.RANGES) + 2 + 2  # trends, the page twice, queue, program
    total = timed_reads * (runs + WARMUP) + billing_runs + 1
    steps = bar(total, desc="bench queries", unit="run", quiet=not progress)
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT patient_id FROM reading_receipts ORDER BY patient_id"
            )
            patients = [r["patient_id"] for r in await cur.fetchall()]
            cur = await conn.execute(
                "SELECT id FROM web_users WHERE username = %s", (f"cm.{SITE}",)
            )
            row = await cur.fetchone()
            assert row is not None
            cur = await conn.execute(
                "SELECT e.program_id, count(*) AS n FROM enrollments e GROUP BY 1 ORDER BY 2 DESC"
            )
            program_sizes = {r["program_id"]: r["n"] for r in await cur.fetchall()}
        principal = Principal(
            user_id=row["id"],
            username=f"cm.{SITE}",
            display_name="bench care manager",
            role=Role.CARE_MANAGER,
            sites=frozenset({SITE}),
            via="session",
        )
        if not patients:
            raise RuntimeError("the population has no readings")

        for range_, days in _trends.RANGES.items():
            since = now - timedelta(days=days)
            chosen = [rng.choice(patients) for _ in range(runs + WARMUP)]

            async def trend(
                i: int, since: datetime = since, days: int = days, chosen: list[Any] = chosen
            ) -> object:
                async with pool.connection() as conn:
                    series, _ = await _trends.series(conn, chosen[i], since, days)
                    kpis = await _trends.kpis(conn, chosen[i], since, now)
                return sum(len(s["t"]) for s in series.values()), kpis

            samples, last = await _timed(runs, WARMUP, trend, steps)
            assert isinstance(last, tuple)
            results.append(
                _result(
                    f"patient trends {range_}",
                    samples,
                    "trend",
                    f"series + KPIs, a random patient each run ({last[0]} chart points last)",
                )
            )

        for range_ in ("30d", "1y"):
            days = _trends.RANGES[range_]
            chosen = [rng.choice(patients) for _ in range(runs + WARMUP)]

            async def page(i: int, days: int = days, chosen: list[Any] = chosen) -> object:
                return await read_patient_page(pool, chosen[i], days, now)

            samples, reads = await _timed(runs, WARMUP, page, steps)
            assert isinstance(reads, PageReads)
            results.append(
                _result(
                    f"patient page, all reads {range_}",
                    samples,
                    "trend",
                    "trends + readings table, devices, thresholds, episodes; concurrently"
                    f" as the page runs them ({len(reads.readings)} readings listed last)",
                )
            )

        async def queue(_: int) -> object:
            async with pool.connection() as conn:
                return await _queue.queue_rows(conn, principal)

        samples, rows = await _timed(runs, WARMUP, queue, steps)
        assert isinstance(rows, list)
        results.append(
            _result("queue listing", samples, "queue", f"{len(rows):,} episodes, one care manager")
        )

        program = max(program_sizes, key=lambda p: program_sizes[p])

        async def program_averages(_: int) -> object:
            async with pool.connection() as conn:
                return await _programs.program_bp_averages(conn, program, [SITE], now)

        samples, summary = await _timed(runs, WARMUP, program_averages, steps)
        assert isinstance(summary, _programs.ProgramBpAverages)
        results.append(
            _result(
                "program 7-day BP averages",
                samples,
                "program",
                f"{PROGRAMS[program][0].lower()}: {len(summary.patients):,} patients,"
                f" {summary.with_readings:,} with readings",
            )
        )

        today = now.astimezone(ZoneInfo(TIMEZONE)).date()
        month = _previous_month(today)

        async def ledger(_: int) -> object:
            async with pool.connection() as conn:
                return await build_ledger(conn, SITE, month, today)

        samples, built = await _timed(billing_runs, 1, ledger, steps)
        assert isinstance(built, tuple)
        lines = built[1]
        billable = sum(1 for _, line in lines if line.status == "billable")
        results.append(
            _result(
                f"billing ledger {month}",
                samples,
                "billing",
                f"{len({i['patient_id'] for i, _ in lines}):,} patients,"
                f" {len(lines):,} lines ({billable:,} billable)",
            )
        )
    finally:
        steps.close()
        await pool.close()
    return results


# --- the command ----------------------------------------------------------------------------------


def _report(
    database: str,
    population: Population,
    features: dict[str, bool],
    results: list[Result],
    load: tuple[float, float, int],
) -> str:
    spec = population.spec
    how = "reused (same parameters)" if population.reused else "generated now"
    lines = [
        f"database {database}: {spec.patients:,} patients x {spec.days} days (seed {spec.seed}),"
        f" {how}; generation took {population.seconds:.1f} s; queries as of"
        f" {population.until:%Y-%m-%d %H:%M} UTC",
        "rows: "
        + ", ".join(
            f"{k} {population.rows[k]:,}"
            for k in sorted(population.rows, key=lambda k: -population.rows[k])
        ),
        "timescaledb: "
        + ", ".join(
            f"{k.replace('_', ' ')} {'yes' if v else 'no'}"
            for k, v in features.items()
            if k != "timescaledb"
        )
        + ("" if features["compression"] else " (Apache build: plain hypertable, no rollups)"),
        f"machine: {load[2]} CPUs, load average {load[0]:.1f} before and {load[1]:.1f} after"
        " the measurements (other work on the machine inflates the figures)",
        "",
        f"{'query':<30} {'runs':>4} {'p50':>10} {'p95':>10}  {'target':<16} result  detail",
    ]
    for r in results:
        lines.append(
            f"{r.name:<30} {r.runs:>4} {r.p50_ms:>7.1f} ms {r.p95_ms:>7.1f} ms "
            f" p95 ≤ {_ms(r.target_ms):<10} {'PASS' if r.passed else 'MISS':<6}  {r.detail}"
        )
    return "\n".join(lines)


def _ms(value: float) -> str:
    return f"{value / 1000:g} s" if value >= 1000 else f"{value:g} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="carebeacon bench queries", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--runs", type=int, default=100, help="timed runs per query")
    parser.add_argument("--billing-runs", type=int, default=5, help="timed runs of the ledger")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the population")
    parser.add_argument("--drop", action="store_true", help="drop the database and exit")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.drop:
        drop_database(settings, args.database)
        print(f"dropped database {args.database}")
        return 0
    if args.patients < 1 or args.days < 2 or args.runs < 1 or args.billing_runs < 1:
        parser.error("--patients, --runs and --billing-runs must be ≥ 1, --days ≥ 2")

    def say(text: str) -> None:
        progress_say(text, file=sys.stderr if args.json else sys.stdout)

    spec = PopulationSpec(args.patients, args.days, args.seed)
    population = ensure_population(
        settings, args.database, spec, rebuild=args.rebuild, say=say, progress=not args.json
    )
    conninfo = settings.pg_conninfo(args.database)
    with psycopg.connect(conninfo) as conn:
        features = timescale_features(conn)
    load_before = os.getloadavg()[0]
    results = asyncio.run(
        measure(
            conninfo,
            population,
            runs=args.runs,
            billing_runs=args.billing_runs,
            seed=args.seed,
            progress=not args.json,
        )
    )
    load = (load_before, os.getloadavg()[0], os.cpu_count() or 1)
    if args.json:
        document = {
            "database": args.database,
            "population": {
                **spec.as_dict(),
                "reused": population.reused,
                "generation_seconds": round(population.seconds, 2),
                "until": population.until.isoformat(),
                "rows": population.rows,
            },
            "timescaledb": features,
            "load_average": {"before": load[0], "after": load[1], "cpus": load[2]},
            "results": [{**asdict(r), "passed": r.passed} for r in results],
        }
        print(json.dumps(document, indent=2))
    else:
        print(_report(args.database, population, features, results, load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
