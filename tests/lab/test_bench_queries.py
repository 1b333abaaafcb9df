"""``carebeacon bench queries`` end to end with a tiny population (20 patients x 30 days): the
output's structure and plausible numbers, the reuse of a populated database, ``--drop``. Not
timed: the figures of a shared test machine are no assertion."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from carebeacon.settings import Settings
from lab.bench.queries import TARGETS_MS, main

pytestmark = pytest.mark.db

QUERIES = {
    "patient trends 7d": "trend",
    "patient trends 30d": "trend",
    "patient trends 90d": "trend",
    "patient trends 1y": "trend",
    "patient page, all reads 30d": "trend",
    "patient page, all reads 1y": "trend",
    "queue listing": "queue",
    "program 7-day BP averages": "program",
}


@pytest.fixture
def bench_database(settings: Settings) -> Iterator[str]:
    name = f"cbtest_bq_{uuid.uuid4().hex[:8]}"
    yield name
    assert main(["--database", name, "--drop"]) == 0
    with psycopg.connect(settings.pg_conninfo("postgres")) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is None


def test_tiny_population(bench_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--patients", "20", "--days", "30", "--runs", "3", "--billing-runs", "1"]
    args += ["--database", bench_database]
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    assert "generating 20 patients x 30 days" in captured.err
    doc = json.loads(captured.out)

    population = doc["population"]
    assert (population["patients"], population["days"], population["reused"]) == (20, 30, False)
    assert population["generation_seconds"] > 0
    rows = population["rows"]
    assert rows["patients"] == rows["enrollments"] == rows["gateways"] == 20
    # two BP readings, a weight (and a fasting glucose in the diabetes program) a day, with gaps
    assert 20 * 30 * 0.5 <= rows["reading_receipts"] <= 20 * 30 * 4
    assert rows["reading_receipts"] * 2 <= rows["readings"] <= rows["reading_receipts"] * 4
    assert rows["alert_episodes"] > 0
    assert rows["care_time_entries"] > 0
    assert {"compression", "continuous_aggregates"} <= set(doc["timescaledb"])

    results = {r["name"]: r for r in doc["results"]}
    billing = [name for name in results if name.startswith("billing ledger ")]
    assert len(billing) == 1
    assert re.fullmatch(r"billing ledger \d{4}-\d{2}", billing[0])
    assert set(results) == {*QUERIES, *billing}
    for name, r in results.items():
        kind = QUERIES.get(name, "billing")
        assert r["target_ms"] == TARGETS_MS[kind]
        assert r["runs"] == (1 if kind == "billing" else 3)
        assert 0 < r["p50_ms"] <= r["p95_ms"] < 60_000
        assert r["passed"] is (r["p95_ms"] <= r["target_ms"])
    queue = re.match(r"([\d,]+) episodes", results["queue listing"]["detail"])
    assert queue is not None
    assert 0 < int(queue.group(1).replace(",", "")) <= rows["alert_episodes"]
    assert re.search(
        r"\d+ patients, \d+ with readings", results["program 7-day BP averages"]["detail"]
    )

    # the same parameters again: the population is reused, the table printed
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "20 patients x 30 days (seed 7), reused (same parameters)" in out
    assert "generating" not in out
    for name in [*QUERIES, billing[0]]:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert re.search(r" \d+ +[\d.]+ ms +[\d.]+ ms +p95 ≤ [\d.]+ m?s +(PASS|MISS) ", line), line
