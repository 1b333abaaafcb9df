"""``carebeacon bench ingest``: ingest throughput and latency against its ceilings.

``bench ingest`` runs against the project's real Mosquitto and TimescaleDB, in a fresh database:

* the broker/client ceiling — a subscriber that only receives and counts the same QoS 1 stream;
* the database ceiling — a bare binary COPY of the same rows into the same hypertable;
* CareBeacon's ingest (one or more processes on the shared subscription, alert rules on),
  fed by simulated gateways; sustained readings/s (by the database's clock: the transactions'
  start times), publish → committed-and-evaluated latency
  (p50/p99 from the ingest's own histogram), lost and duplicated readings, ingest RSS;

and prints each ingest figure as a ratio to its ceiling. Medians of ``--repeat`` runs; each
repeat measures the ceilings and then ingest, and a ratio is the median of the repeats' own
ratios (the machine's speed drifts between minutes: ceilings measured all together at the start
would put that drift into the ratio).

The load (issue 13): ``--gateways`` homes, one patient and one BP cuff each; every
``ALERTING``-th gateway's cuff (20 % of patients) sends severe-range pressures (> 180 mmHg
systolic, AHA/ACC 2025), which open or update episodes; the others stay below 130/80. Each run
prints the episodes opened and the share of patients whose episodes changed.

``--backlog N`` measures back-pressure instead: N one-reading messages are published while
ingest is stopped (its persistent session queues them in the broker), then ingest starts and
drains them; printed are the drain rate and ingest's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "VALUES",
    "BenchEnv",
    "count",
    "drop_database",
    "main",
    "publish_main",
    "setup_database",
    "start_publisher",
]

VALUES = ("systolic", "diastolic", "mean_arterial", "pulse")
_COPY_READINGS = (
    "COPY readings (time, patient_id, code, value, unit, reading_id, device_id, gateway_id,"
    " measured_at, received_at, flags) FROM STDIN (FORMAT BINARY)"
)
_COPY_READINGS_TYPES = [
    "timestamptz",
    "uuid",
    "text",
    "float8",
    "text",
    "uuid",
    "text",
    "text",
    "timestamp",
    "timestamptz",
    "text[]",
]


#: every ALERTING-th gateway's patient has severe-range pressures: 20 % of patients
ALERTING = 5


def _pressures(rng: random.Random, gateway: int) -> tuple[float, float]:
    """Systolic and diastolic for a reading from ``gateway``: severe (> 180 and/or > 120, the
    2025 AHA/ACC severe hypertension limits) for every ``ALERTING``-th gateway; otherwise below
    130/80 (no rule's threshold)."""
    if gateway % ALERTING == 0:
        return max(181.0, rng.gauss(188, 5)), max(60.0, rng.gauss(104, 6))
    return min(128.0, max(95.0, rng.gauss(116, 7))), min(79.0, max(55.0, rng.gauss(72, 5)))


def _gateway(prefix: str, i: int) -> str:
    """Gateway ``i`` of one bench run (``prefix``: the run's; concurrent runs on the same broker
    must not feed one another's ingest)."""
    return f"bench-{prefix}-gw-{i:04d}"


def _cuff(prefix: str, i: int) -> str:
    return f"bench-{prefix}-cuff-{i:04d}"


# --- the simulated gateways (a separate process, paho with a bounded in-flight window) --------


def publish_main(argv: list[str]) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    parser = argparse.ArgumentParser(prog="carebeacon bench _publish")
    parser.add_argument("--gateways", type=int, required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--per-message", type=int, required=True)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="readings/s; 0 = as fast as possible"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)
    password = os.environ["CAREBEACON_BENCH_MQTT_PASSWORD"]
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(os.environ["CAREBEACON_BENCH_MQTT_USER"], password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    rng = random.Random(7)  # noqa: S311 - synthetic data
    window: collections.deque[Any] = collections.deque()
    message_rate = args.rate / args.per_message if args.rate else 0.0

    def payload(i: int) -> tuple[str, str]:
        g = i % args.gateways
        at = datetime.now(UTC)
        now = at.isoformat()
        measured = at.replace(tzinfo=None).isoformat()  # the cuff's clock: UTC, no offset
        readings = []
        for _ in range(args.per_message):
            sys_, dia = _pressures(rng, g)
            values = (
                (sys_, "mm[Hg]"),
                (dia, "mm[Hg]"),
                ((sys_ + 2 * dia) / 3, "mm[Hg]"),
                (rng.gauss(72, 9), "/min"),
            )
            readings.append(
                f'{{"id":"{uuid.uuid4()}","device":{{"id":"{_cuff(args.prefix, g)}","type":"blood_pressure_monitor"}},'
                f'"type":"blood_pressure","measured_at":"{measured}","received_at":"{now}","sequence":null,'
                f'"user_index":null,"values":['
                + ",".join(
                    f'{{"code":"{code}","value":{max(40.0, v):.1f},"unit":"{unit}"}}'
                    for code, (v, unit) in zip(VALUES, values, strict=True)
                )
                + '],"flags":[],"raw":{}}'
            )
        body = (
            f'{{"schema":"carebeacon.readings/1","gateway_id":"{_gateway(args.prefix, g)}","sent_at":"{now}",'
            f'"readings":[{",".join(readings)}]}}'
        )
        return f"carebeacon/v1/gateways/{_gateway(args.prefix, g)}/readings", body

    # As fast as possible: payloads are made up front so that the publisher is not the limit
    # (their received_at is then not a publish time: latency is measured in --rate runs only).
    prepared = [] if message_rate else [payload(i) for i in range(args.messages)]
    started = time.monotonic()
    for i in range(args.messages):
        if message_rate:
            delay = started + i / message_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        topic, body = prepared[i] if prepared else payload(i)
        window.append(client.publish(topic, body, qos=1))
        while len(window) > 900:
            window.popleft().wait_for_publish(30)
    while window:
        window.popleft().wait_for_publish(30)
    elapsed = time.monotonic() - started
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"messages": args.messages, "seconds": elapsed}))
    return 0


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchEnv:
    conninfo: str = field(repr=False)  # carries the database password
    database: str
    mqtt_port: int
    admin_user: str
    admin_password: str = field(repr=False)
    prefix: str = ""  # this run's gateway and cuff ids: bench-<prefix>-gw-NNNN

    @property
    def topic_prefix(self) -> str:
        return f"carebeacon/v1/gateways/bench-{self.prefix}-"


def start_publisher(
    env: BenchEnv, gateways: int, messages: int, per_message: int, rate: float
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "carebeacon.cli",
            "bench",
            "_publish",
            "--gateways",
            str(gateways),
            "--messages",
            str(messages),
            "--per-message",
            str(per_message),
            "--rate",
            str(rate),
            "--port",
            str(env.mqtt_port),
            "--prefix",
            env.prefix,
        ],
        env=dict(
            os.environ,
            CAREBEACON_BENCH_MQTT_USER=env.admin_user,
            CAREBEACON_BENCH_MQTT_PASSWORD=env.admin_password,
        ),
        stdout=subprocess.PIPE,
    )


def setup_database(gateways: int) -> BenchEnv:
    import psycopg

    from carebeacon.settings import Settings
    from db.migrations import apply_migrations
    from lab.homes import Device, HomeSpec, Program, Site, provision_homes_bulk

    settings = Settings.from_env()
    prefix = uuid.uuid4().hex[:8]
    name = f"cbbench_{prefix}"
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = settings.pg_conninfo(name)
    apply_migrations(conninfo)
    since = datetime.now(UTC) - timedelta(days=365)
    site = Site("bench", "Bench site")
    program = Program("htn", "Hypertension", "hypertension")
    with psycopg.connect(conninfo) as conn:
        provision_homes_bulk(
            conn,
            [
                HomeSpec(
                    site=site,
                    program=program,
                    enrolled_at=since,
                    display_name=f"Bench {i}",
                    gateway_id=_gateway(prefix, i),
                    devices=(Device(_cuff(prefix, i), "blood_pressure_monitor"),),
                )
                for i in range(gateways)
            ],
        )
    return BenchEnv(
        conninfo,
        name,
        settings.mqtt_port,
        settings.mqtt_admin_user,
        settings.mqtt_admin_password.get_secret_value(),
        prefix,
    )


def drop_database(env: BenchEnv) -> None:
    import psycopg

    from carebeacon.settings import Settings

    with psycopg.connect(Settings.from_env().pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{env.database}" WITH (FORCE)')


def count(env: BenchEnv, sql: str) -> int:
    import psycopg

    with psycopg.connect(env.conninfo) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


def _rss_mib(pid: int, field: str = "VmHWM") -> float:
    """A process's peak resident memory (``VmHWM``), or its current one (``VmRSS``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _metric_total(ports: list[int], name: str) -> int:
    """The sum of a counter's samples over the ingest processes (0 while one is starting)."""
    total = 0.0
    for port in ports:
        try:
            text = _metrics_text(port)
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _quantiles(metrics_text: list[str], name: str) -> tuple[float, float]:
    """p50 and p99 from summed Prometheus histogram buckets (linear within a bucket)."""
    buckets: dict[float, float] = collections.defaultdict(float)
    for text in metrics_text:
        for line in text.splitlines():
            if line.startswith(f"{name}_bucket{{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                buckets[float("inf") if le == "+Inf" else float(le)] += float(
                    line.rsplit(" ", 1)[1]
                )
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0

    def quantile(q: float) -> float:
        if not total:
            return float("nan")
        rank, previous_edge, previous_count = q * total, 0.0, 0.0
        for edge in edges:
            if buckets[edge] >= rank:
                if edge == float("inf"):
                    return previous_edge
                span = buckets[edge] - previous_count
                fraction = (rank - previous_count) / span if span else 1.0
                return previous_edge + (edge - previous_edge) * fraction
            previous_edge, previous_count = edge, buckets[edge]
        return previous_edge

    return quantile(0.5), quantile(0.99)


# --- the three measurements ------------------------------------------------------------------


async def _subscriber_ceiling(
    env: BenchEnv, gateways: int, messages: int, per_message: int
) -> float:
    import aiomqtt

    async with aiomqtt.Client(
        "127.0.0.1",
        env.mqtt_port,
        username=env.admin_user,
        password=env.admin_password,
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        await client.subscribe(
            f"$share/ceiling-{uuid.uuid4().hex[:6]}/carebeacon/v1/gateways/+/readings", qos=1
        )
        publisher = start_publisher(env, gateways, messages, per_message, 0.0)
        received, first, last = 0, 0.0, 0.0
        async for msg in client.messages:
            if not msg.topic.value.startswith(env.topic_prefix):
                continue  # another run's gateways on the same broker
            last = time.monotonic()
            if received == 0:
                first = last
            received += 1
            if received == messages:
                break
        publisher.wait()
    return (messages - 1) * per_message / max(last - first, 1e-9)


def _copy_ceiling(env: BenchEnv, readings: int) -> float:
    import psycopg

    now = datetime.now(UTC)
    patient, device = uuid.uuid4(), _cuff(env.prefix, 0)
    batch = 5000
    started = time.monotonic()
    with psycopg.connect(env.conninfo) as conn:
        done = 0
        while done < readings:
            with conn.cursor() as cur, cur.copy(_COPY_READINGS) as copy:
                copy.set_types(_COPY_READINGS_TYPES)
                for _ in range(min(batch, readings - done)):
                    rid = uuid.uuid4()
                    for code in VALUES:
                        copy.write_row(
                            (
                                now,
                                patient,
                                code,
                                120.0,
                                "mm[Hg]",
                                rid,
                                device,
                                _gateway(env.prefix, 0),
                                None,
                                now,
                                [],
                            )
                        )
            conn.commit()
            done += batch
        elapsed = time.monotonic() - started
        # Its rows go, and the table is vacuumed and analysed again: left in, one made-up
        # patient's rows at one instant would be what the planner's statistics describe during
        # the ingest runs (before db/sql/075 they planned ingest's history query on a time
        # index, a full scan of the window per patient: 10 s per query).
        conn.execute("DELETE FROM readings WHERE patient_id = %s", (patient,))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE) readings")
    return readings / elapsed


def _start_ingest(
    env: BenchEnv,
    index: int,
    group: str,
    metrics_port: int,
    session_expiry: int = 120,
    alerts: bool = True,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "carebeacon.cli", "ingest", *([] if alerts else ["--no-alerts"])],
        env=dict(
            os.environ,
            CAREBEACON_PG_DATABASE=env.database,
            CAREBEACON_INGEST_CLIENT_ID=f"{group}-{index}",
            CAREBEACON_INGEST_SHARE_GROUP=group,
            CAREBEACON_INGEST_SESSION_EXPIRY_SECONDS=str(session_expiry),
            CAREBEACON_METRICS_PORT=str(metrics_port),
            CAREBEACON_LOG_LEVEL="WARNING",
        ),
    )


def _ingest_run(
    env: BenchEnv, gateways: int, messages: int, per_message: int, processes: int, rate: float
) -> dict[str, float]:
    from carebeacon.progress import bar

    group = f"bench-{uuid.uuid4().hex[:6]}"
    ports = [19464 + i + random.randrange(0, 500) * 4 for i in range(processes)]  # noqa: S311
    before = count(env, "SELECT count(*) FROM reading_receipts")
    rows_before = count(env, "SELECT count(*) FROM readings")
    episodes_before = count(env, "SELECT count(*) FROM alert_episodes")
    started_at = _db_now(env)
    procs = [_start_ingest(env, i, group, port) for i, port in enumerate(ports)]
    expected = messages * per_message
    steps = bar(expected, desc=f"ingest x{processes}", unit="reading")
    try:
        _wait_subscribed(ports)
        publisher = start_publisher(env, gateways, messages, per_message, rate)
        deadline = time.monotonic() + 600
        first_at, first_count = 0.0, 0
        moved_at, last = time.monotonic(), 0
        # progress from the ingest processes' own counters, once a second (a count(*) query
        # in a tight loop would take CPU from what is being measured, and so does each scrape:
        # the rate itself comes from the commit times, ``_committed_rate``)
        while (
            stored := _metric_total(ports, "carebeacon_ingest_readings_stored_total")
        ) < expected:
            if stored and not first_at:
                first_at, first_count = time.monotonic(), stored  # the stream has begun
            if stored != last:
                moved_at, last = time.monotonic(), stored
            stalled = publisher.poll() is not None and time.monotonic() - moved_at > 20
            if (
                stalled  # all published, nothing stored for 20 s: the rest is lost
                or time.monotonic() > deadline
                or any(p.poll() is not None for p in procs)
            ):
                break
            steps.update(stored - steps.n)
            time.sleep(1.0)
        elapsed = (time.monotonic() if stored >= expected else moved_at) - first_at
        publisher.wait()
        time.sleep(0.5)
        stored = count(env, "SELECT count(*) FROM reading_receipts") - before
        rows = count(env, "SELECT count(*) FROM readings") - rows_before
        texts = [_metrics_text(port) for port in ports]
        p50, p99 = _quantiles(texts, "carebeacon_ingest_lag_seconds")
        rss = max(_rss_mib(p.pid) for p in procs)
    finally:
        steps.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        _forget_sessions(group, len(procs))
    return {
        "readings_per_s": _committed_rate(env, started_at) or (stored - first_count) / elapsed,
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
        "lost": float(expected - stored),
        "duplicated": float(rows - stored * len(VALUES)),
        "rss_mib": rss,
        **_episodes(env, episodes_before, started_at, gateways),
    }


def _forget_sessions(group: str, processes: int) -> None:
    """Discard the persistent sessions of a run's ingest processes (``_start_ingest``'s client
    ids): left at the broker, each would queue every later run's messages until it expires, and
    the broker would write them all out at every save, stalling the runs that follow."""
    from carebeacon.settings import Settings
    from lab.services import forget_ingest_session

    settings = Settings.from_env()
    for index in range(processes):
        asyncio.run(forget_ingest_session(settings, f"{group}-{index}"))


def _wait_subscribed(ports: list[int]) -> None:
    """Until every ingest process has subscribed (``carebeacon_ingest_subscribed``): a message
    published before its subscription reaches no session."""
    deadline = time.monotonic() + 60
    for port in ports:
        while time.monotonic() < deadline:
            try:
                if "\ncarebeacon_ingest_subscribed 1.0" in _metrics_text(port):
                    break
            except OSError:
                pass
            time.sleep(0.2)


def _db_now(env: BenchEnv) -> datetime:
    import psycopg

    with psycopg.connect(env.conninfo) as conn:
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        return row[0]  # type: ignore[no-any-return]


def _committed_rate(env: BenchEnv, since: datetime) -> float | None:
    """Readings/s by the database's clock: the readings of every ingest transaction since
    ``since`` but the last, over the time from the first transaction's start to the last's
    (``ingested_at`` is its transaction's start). Exact where the progress polling is not: a
    run of 50-reading messages lasts a few seconds, the polling's step is 0.25 s. ``None``
    when all came in one transaction."""
    import psycopg

    with psycopg.connect(env.conninfo) as conn:
        row = conn.execute(
            """
            WITH run AS (SELECT ingested_at FROM reading_receipts WHERE ingested_at >= %s),
                 edges AS (SELECT min(ingested_at) AS first, max(ingested_at) AS last FROM run)
            SELECT count(*) FILTER (WHERE run.ingested_at < edges.last),
                   extract(epoch FROM edges.last - edges.first)::float8
            FROM run CROSS JOIN edges GROUP BY edges.first, edges.last
            """,
            (since,),
        ).fetchone()
    if row is None or not row[1]:
        return None
    return float(row[0]) / float(row[1])


def _episodes(
    env: BenchEnv, episodes_before: int, since: datetime, gateways: int
) -> dict[str, float]:
    """Episodes opened in a run, and the share of the patients whose episodes changed."""
    import psycopg

    with psycopg.connect(env.conninfo) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT patient_id) FROM alert_episodes WHERE updated_at >= %s",
            (since,),
        ).fetchone()
    changed = row[0] if row else 0
    return {
        "episodes": float(count(env, "SELECT count(*) FROM alert_episodes") - episodes_before),
        "patients_changed": changed / gateways,
    }


def _backlog_run(env: BenchEnv, gateways: int, messages: int, alerts: bool) -> dict[str, float]:
    """Publish ``messages`` one-reading messages while ingest is stopped, then let it drain."""
    from carebeacon.progress import bar

    group = f"bench-{uuid.uuid4().hex[:6]}"
    port = 19464 + random.randrange(0, 500) * 4  # noqa: S311
    before = count(env, "SELECT count(*) FROM reading_receipts")
    rows_before = count(env, "SELECT count(*) FROM readings")
    # a first start makes the persistent session (and its subscription) that will hold the
    # backlog; it stops before anything is published
    first = _start_ingest(env, 0, group, port, session_expiry=3600, alerts=alerts)
    try:
        _wait_subscribed([port])
    finally:
        first.terminate()
        first.wait(30)
    publisher = start_publisher(env, gateways, messages, 1, 0.0)
    publisher.wait()
    proc = _start_ingest(env, 0, group, port, session_expiry=3600, alerts=alerts)
    steps = bar(messages, desc="backlog drain", unit="reading")
    rss_samples: list[float] = []
    try:
        started = time.monotonic()
        deadline = started + 1800
        while (stored := _metric_total([port], "carebeacon_ingest_readings_stored_total")) < (
            messages
        ):
            if time.monotonic() > deadline or proc.poll() is not None:
                break
            rss_samples.append(_rss_mib(proc.pid, "VmRSS"))
            steps.update(stored - steps.n)
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        stored = count(env, "SELECT count(*) FROM reading_receipts") - before
        rows = count(env, "SELECT count(*) FROM readings") - rows_before
        peak = _rss_mib(proc.pid)
    finally:
        steps.close()
        proc.terminate()
        proc.wait(30)
        _forget_sessions(group, 1)
    return {
        "readings_per_s": stored / elapsed,
        "lost": float(messages - stored),
        "duplicated": float(rows - stored * len(VALUES)),
        "rss_peak_mib": peak,
        "rss_median_mib": statistics.median(rss_samples) if rss_samples else 0.0,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="carebeacon bench ingest", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--gateways", type=int, default=200)
    parser.add_argument("--readings", type=int, default=30000, help="readings per run and mode")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="1,50", help="readings per message, comma separated")
    parser.add_argument(
        "--processes", default="1,2", help="ingest process counts to run (1-reading mode)"
    )
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=1000.0,
        help="readings/s for the latency run; 0 = skip",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="instead: N one-reading messages queued at the broker, then drained; peak RSS",
    )
    parser.add_argument(
        "--no-alerts", action="store_true", help="with --backlog: ingest without alert rules"
    )
    args = parser.parse_args(argv)
    env = setup_database(args.gateways)
    if args.backlog:
        try:
            r = _backlog_run(env, args.gateways, args.backlog, not args.no_alerts)
        finally:
            drop_database(env)
        print(
            f"bench ingest --backlog: {args.backlog:,} one-reading messages queued at the broker "
            f"while ingest{' (no alerts)' if args.no_alerts else ''} was stopped, then drained at {r['readings_per_s']:,.0f} readings/s; "
            f"ingest peak RSS (VmHWM) {r['rss_peak_mib']:.0f} MiB, median while draining "
            f"{r['rss_median_mib']:.0f} MiB; lost {r['lost']:.0f}, duplicated {r['duplicated']:.0f}"
        )
        return 0
    print(
        f"bench ingest: {args.gateways} gateways, {args.readings} readings per run, median of {args.repeat}; "
        f"the cuffs of {1 / ALERTING:.0%} of the patients send severe-range pressures"
    )
    try:
        for per_message in (int(m) for m in args.modes.split(",")):
            messages = args.readings // per_message
            process_counts = (
                [int(p) for p in args.processes.split(",")] if per_message == 1 else [1]
            )
            # Each repeat measures both ceilings and then ingest, one after the other, and each
            # ratio is ingest's readings/s over the ceilings of its own repeat: the machine's
            # speed drifts by a fifth within minutes here, so ceilings measured together at the
            # start and divided into runs made minutes later would measure the drift too.
            ceilings: list[tuple[float, float]] = []
            by_count: dict[int, list[dict[str, float]]] = {p: [] for p in process_counts}
            for _ in range(args.repeat):
                ceilings.append(
                    (
                        asyncio.run(_subscriber_ceiling(env, args.gateways, messages, per_message)),
                        _copy_ceiling(env, args.readings),
                    )
                )
                for processes in process_counts:
                    by_count[processes].append(
                        _ingest_run(env, args.gateways, messages, per_message, processes, 0.0)
                    )
            print(
                f"\n{per_message} reading(s)/message: subscriber-only ceiling "
                f"{statistics.median(c[0] for c in ceilings):,.0f} readings/s; bare COPY ceiling "
                f"{statistics.median(c[1] for c in ceilings):,.0f} readings/s"
                f" (runs: {', '.join(f'{a:,.0f}/{b:,.0f}' for a, b in ceilings)})"
            )
            for processes in process_counts:
                done = by_count[processes]
                med = {k: statistics.median(r[k] for r in done) for k in done[0]}
                rates = [r["readings_per_s"] for r in done]
                of_sub = statistics.median(r / c[0] for r, c in zip(rates, ceilings, strict=True))
                of_copy = statistics.median(r / c[1] for r, c in zip(rates, ceilings, strict=True))
                print(
                    f"  ingest x{processes}: {med['readings_per_s']:,.0f} readings/s "
                    f"({of_sub:.0%} of subscriber ceiling, {of_copy:.0%} of COPY ceiling: "
                    f"medians of each repeat's ratio); "
                    f"lost {max(r['lost'] for r in done):.0f}, duplicated {max(r['duplicated'] for r in done):.0f}; "
                    f"RSS {med['rss_mib']:.0f} MiB; runs: {', '.join(format(r, ',.0f') for r in rates)}; "
                    # per run: the first opens the episodes, the later ones update them
                    f"episodes opened {', '.join(format(r['episodes'], '.0f') for r in done)}, "
                    f"patients with episode changes {med['patients_changed']:.0%}"
                )
        if args.latency_rate:
            n = int(args.latency_rate * 20)
            runs = [
                _ingest_run(env, args.gateways, n, 1, 1, args.latency_rate)
                for _ in range(args.repeat)
            ]
            print(
                f"\nlatency at {args.latency_rate:,.0f} readings/s (1/message, 20 s): publish → committed-and-evaluated "
                f"p50 {statistics.median(r['p50_ms'] for r in runs):.0f} ms, p99 {statistics.median(r['p99_ms'] for r in runs):.0f} ms; "
                f"lost {max(r['lost'] for r in runs):.0f}, duplicated {max(r['duplicated'] for r in runs):.0f}; "
                f"patients with episode changes {statistics.median(r['patients_changed'] for r in runs):.0%}"
            )
    finally:
        drop_database(env)
    return 0
