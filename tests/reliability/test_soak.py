"""Load: a steady stream plus bursts against ``carebeacon ingest``; memory flat, lag flat, no
errors, nothing lost or doubled.

* steady: 500 readings/s (``CAREBEACON_SOAK_RATE``), one reading per message, QoS 1, from 200
  simulated gateways (``carebeacon bench _publish``: paho, a bounded in-flight window, each
  reading stamped with its publish time as ``received_at``);
* bursts: every ``CAREBEACON_SOAK_BURST_SECONDS`` (180 s; 20 s in the quick run) one gateway
  drains 2,000 readings at once, as a gateway's outbox does (40 messages of 50);
* one ``carebeacon ingest`` process with the alert rules on, a private Mosquitto (the shared one
  would hand this load to every other ingest subscribed to it) and a fresh database.

Every ~10 s the test samples ingest's RSS and CPU, and from its ``/metrics`` the readings stored
and the lag histogram (publish → committed and evaluated): p50/p99 per interval from the bucket
deltas. The series goes to ``test-artifacts/soak-<seconds>s.csv``; a per-minute summary is
printed (``pytest -s``). ``make test`` runs 60 s; ``make soak`` (``-m slow``) runs
``CAREBEACON_SOAK_SECONDS`` (1800).
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.bench import ingest as bench
from tests.support.broker import PrivateBroker
from tests.support.end_to_end import ARTIFACTS, IngestProcess, PgTarget, metric_sums

pytestmark = [pytest.mark.db, pytest.mark.broker]

GATEWAYS = 200
BURST_READINGS = 2000
BURST_PER_MESSAGE = 50  # the gateway's outbox batch
LAG = "carebeacon_ingest_lag_seconds"


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, "") or default)


@dataclass
class Sample:
    t: float
    stored: int
    rate: float
    rss_mib: float
    cpu_percent: float
    lag_p50_ms: float
    lag_p99_ms: float
    pending: int
    bursts: int
    buckets: dict[float, float] = field(repr=False)  # lag histogram delta of the interval


def lag_buckets(text: str) -> dict[float, float]:
    """Cumulative counts of the lag histogram by upper bound."""
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != LAG:
            continue
        for sample in family.samples:
            if sample.name == f"{LAG}_bucket":
                out[float(sample.labels["le"])] = float(sample.value)
    return out


def quantile(buckets: dict[float, float], q: float) -> float:
    """The ``q`` quantile of a cumulative histogram, linear within a bucket (as Prometheus'
    ``histogram_quantile``); NaN when empty."""
    edges = sorted(buckets)
    total = buckets[edges[-1]] if edges else 0.0
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return lower
            inside = buckets[edge] - below
            return lower + (edge - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = edge, buckets[edge]
    return lower


def delta(now: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {edge: count - before.get(edge, 0.0) for edge, count in now.items()}


def per_minute(
    samples: Sequence[Sample], interval: float
) -> list[tuple[int, float, float, float, float]]:
    """(minute, RSS MiB at its end, readings/s, lag p50 ms, lag p99 ms) per minute of the run;
    a sample belongs to the minute that holds the middle of its interval."""

    def minute_of(s: Sample) -> int:
        return int((s.t - interval / 2) // 60)

    rows = []
    for minute in sorted({minute_of(s) for s in samples}):
        group = [s for s in samples if minute_of(s) == minute]
        merged: dict[float, float] = {}
        for s in group:
            for edge, n in s.buckets.items():
                merged[edge] = merged.get(edge, 0.0) + n
        rows.append(
            (
                minute,
                group[-1].rss_mib,
                statistics.fmean(s.rate for s in group),
                quantile(merged, 0.5) * 1000,
                quantile(merged, 0.99) * 1000,
            )
        )
    return rows


async def soak(seconds: float, tmp_path: Path) -> None:
    rate = _env_float("CAREBEACON_SOAK_RATE", 500.0)
    burst_every = _env_float("CAREBEACON_SOAK_BURST_SECONDS", 180.0 if seconds > 300 else 20.0)
    interval = min(10.0, seconds / 12)
    broker = PrivateBroker({"ingest": "ingest-pw", "admin": "admin-pw"})
    broker.start()
    env = await asyncio.to_thread(bench.setup_database, GATEWAYS)
    env = dataclasses.replace(
        env, mqtt_port=broker.port, admin_user="admin", admin_password="admin-pw"
    )
    ingest = IngestProcess(
        PgTarget.from_conninfo(env.conninfo), broker.port, tmp_path / "ingest.log"
    )
    steady_messages = int(rate * seconds)
    publishers: list[subprocess.Popen[bytes]] = []
    samples: list[Sample] = []
    try:
        await ingest.start_connected()
        began = time.monotonic()
        publishers.append(bench.start_publisher(env, GATEWAYS, steady_messages, 1, rate))
        bursts_due = [burst_every * k for k in range(1, int(seconds // burst_every) + 1)]
        bursts_due = [t for t in bursts_due if t <= seconds - 10]
        bursts = 0
        before_buckets: dict[float, float] = {}
        before_stored, before_cpu, before_t = 0, ingest.cpu_seconds(), 0.0
        while True:
            await asyncio.sleep(max(0.0, before_t + interval - (time.monotonic() - began)))
            t = time.monotonic() - began
            while bursts_due and bursts_due[0] <= t:
                bursts_due.pop(0)
                publishers.append(
                    bench.start_publisher(
                        env, 1, BURST_READINGS // BURST_PER_MESSAGE, BURST_PER_MESSAGE, 0.0
                    )
                )
                bursts += 1
            text = await asyncio.to_thread(ingest.metrics_text)
            sums = metric_sums(text)
            buckets = lag_buckets(text)
            stored = int(sums.get("carebeacon_ingest_readings_stored_total", 0))
            cpu = ingest.cpu_seconds()
            step = delta(buckets, before_buckets)
            samples.append(
                Sample(
                    t=round(t, 1),
                    stored=stored,
                    rate=(stored - before_stored) / (t - before_t),
                    rss_mib=ingest.rss_mib(),
                    cpu_percent=100 * (cpu - before_cpu) / (t - before_t),
                    lag_p50_ms=quantile(step, 0.5) * 1000,
                    lag_p99_ms=quantile(step, 0.99) * 1000,
                    pending=int(sums.get("carebeacon_ingest_pending_messages", 0)),
                    bursts=bursts,
                    buckets=step,
                )
            )
            before_buckets, before_stored, before_cpu, before_t = buckets, stored, cpu, t
            if t >= seconds and all(p.poll() is not None for p in publishers):
                break
            if t > seconds + 300:
                raise AssertionError("the publishers did not finish")
        # the stream has ended: what was published must all be stored, soon
        expected = steady_messages + bursts * BURST_READINGS
        drain_began = time.monotonic()
        while (
            int(
                metric_sums(await asyncio.to_thread(ingest.metrics_text)).get(
                    "carebeacon_ingest_readings_stored_total", 0
                )
            )
            < expected
        ):
            if time.monotonic() - drain_began > 120:
                break
            await asyncio.sleep(0.5)
        drain_seconds = time.monotonic() - drain_began
        final = metric_sums(await asyncio.to_thread(ingest.metrics_text))
        exit_code = await asyncio.to_thread(ingest.stop)
        receipts = bench.count(env, "SELECT count(*) FROM reading_receipts")
        rows = bench.count(env, "SELECT count(*) FROM readings")
        quarantined = bench.count(env, "SELECT count(*) FROM quarantine")
        published = [json.loads(p.communicate()[0] or b"{}") for p in publishers]
    finally:
        for p in publishers:
            if p.poll() is None:
                p.kill()
                p.wait()
        if ingest.alive():
            await asyncio.to_thread(ingest.stop)
        broker.remove()
        await asyncio.to_thread(bench.drop_database, env)
    # flat memory and flat lag: the last third against the first, after the warm-up (until
    # the first burst has been absorbed: the burst sets the high-water mark)
    warm_up = min(burst_every, seconds / 2) + 2 * interval
    steady = [s for s in samples if warm_up <= s.t <= seconds + 1]
    third = max(1, len(steady) // 3)
    first, last = steady[:third], steady[-third:]
    verdict = {
        "rss_first_mib": statistics.median(s.rss_mib for s in first),
        "rss_last_mib": statistics.median(s.rss_mib for s in last),
        "lag_p50_first_ms": statistics.median(s.lag_p50_ms for s in first),
        "lag_p50_last_ms": statistics.median(s.lag_p50_ms for s in last),
        "lag_p99_first_ms": statistics.median(s.lag_p99_ms for s in first),
        "lag_p99_last_ms": statistics.median(s.lag_p99_ms for s in last),
        # readings/s stored between the first and last steady samples, bursts taken out
        "sustained_per_s": (
            steady[-1].stored
            - steady[0].stored
            - (steady[-1].bursts - steady[0].bursts) * BURST_READINGS
        )
        / (steady[-1].t - steady[0].t),
    }
    report(seconds, rate, burst_every, interval, samples, published, drain_seconds, verdict)
    # nothing lost, nothing doubled, no errors
    assert [p.returncode for p in publishers] == [0] * len(publishers)
    assert receipts == expected, f"{expected - receipts} readings lost"
    assert rows == len(bench.VALUES) * receipts, "value rows doubled or missing"
    assert quarantined == 0
    assert final.get("carebeacon_ingest_database_errors_total", 0) == 0
    assert final.get("carebeacon_ingest_readings_duplicate_total", 0) == 0
    assert exit_code == 0
    assert ingest.log_problems() == []
    assert verdict["rss_last_mib"] <= verdict["rss_first_mib"] * 1.10 + 8, verdict
    # a backlog that grows shows as seconds of lag; tens of ms come and go with the machine
    assert verdict["lag_p50_last_ms"] <= 2 * verdict["lag_p50_first_ms"] + 100, verdict
    assert verdict["sustained_per_s"] >= 0.95 * rate, verdict  # it kept up
    assert drain_seconds < 30


def report(
    seconds: float,
    rate: float,
    burst_every: float,
    interval: float,
    samples: Sequence[Sample],
    published: Sequence[dict[str, float]],
    drain_seconds: float,
    verdict: dict[str, float],
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"soak-{seconds:.0f}s.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "t_s",
                "stored_total",
                "readings_per_s",
                "rss_mib",
                "cpu_percent",
                "lag_p50_ms",
                "lag_p99_ms",
                "pending_messages",
                "bursts_started",
            ]
        )
        for s in samples:
            writer.writerow(
                [
                    s.t,
                    s.stored,
                    round(s.rate, 1),
                    round(s.rss_mib, 1),
                    round(s.cpu_percent, 1),
                    round(s.lag_p50_ms, 1),
                    round(s.lag_p99_ms, 1),
                    s.pending,
                    s.bursts,
                ]
            )
    steady = published[0] if published else {}
    print(
        f"\n[soak] {seconds:.0f} s at {rate:.0f} readings/s (1/message, {GATEWAYS} gateways) + a "
        f"{BURST_READINGS}-reading burst every {burst_every:.0f} s; publisher sent "
        f"{steady.get('messages', 0):.0f} messages in {steady.get('seconds', 0):.1f} s; "
        f"drained {drain_seconds:.1f} s after the end; series in {path}"
    )
    print(
        "[soak] after warm-up, first third → last third: RSS "
        f"{verdict['rss_first_mib']:.1f} → {verdict['rss_last_mib']:.1f} MiB, lag p50 "
        f"{verdict['lag_p50_first_ms']:.0f} → {verdict['lag_p50_last_ms']:.0f} ms, p99 "
        f"{verdict['lag_p99_first_ms']:.0f} → {verdict['lag_p99_last_ms']:.0f} ms; steady rate "
        f"sustained {verdict['sustained_per_s']:.0f} readings/s (bursts excluded)"
    )
    print("[soak] minute   RSS MiB   readings/s   lag p50 ms   lag p99 ms")
    for minute, rss, per_s, p50, p99 in per_minute(samples, interval):
        print(f"[soak] {minute:>6} {rss:>9.1f} {per_s:>12.0f} {p50:>12.0f} {p99:>12.0f}")
    if seconds <= 180:  # a short run: every sample
        print("[soak]    t s   RSS MiB   readings/s   lag p50 ms   lag p99 ms   CPU %")
        for s in samples:
            print(
                f"[soak] {s.t:>6.0f} {s.rss_mib:>9.1f} {s.rate:>12.0f} {s.lag_p50_ms:>12.0f}"
                f" {s.lag_p99_ms:>12.0f} {s.cpu_percent:>7.0f}"
            )


@pytest.mark.timeout(300)
async def test_soak_quick(tmp_path: Path) -> None:
    """The quick version in ``make test``: 60 s, bursts every 20 s."""
    await soak(60.0, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(_env_float("CAREBEACON_SOAK_SECONDS", 1800.0) + 900)
async def test_soak(tmp_path: Path) -> None:
    """``make soak``: ``CAREBEACON_SOAK_SECONDS`` (default 30 minutes), bursts every 3 minutes."""
    await soak(_env_float("CAREBEACON_SOAK_SECONDS", 1800.0), tmp_path)
