"""Benchmark of the two pages that must stay fast: the queue of a care manager with 2,000 open
episodes, and the patient page of a patient with a year of readings (every range).

    .venv/bin/python -m lab.bench.pages [--episodes 2000] [--days 365] [--runs 30]

Builds a throw-away database (migrated, seeded), serves the app with uvicorn on a free port,
logs in over HTTP and requests each page ``--runs`` times. Prints the median and p95 of the
server time (the app's ``Server-Timing`` header) and of the client round trip. The database is
dropped afterwards. No patient data is printed.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import socket
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import psycopg
import uvicorn

from carebeacon.progress import Bar, bar
from carebeacon.settings import Settings
from db.migrations import apply_migrations
from lab.homes import Device, HomeSpec, Program, Site, provision_homes_bulk
from lab.population import (
    COPY_EPISODES,
    FAMILIES,
    Home,
    Measurement,
    copy_frame,
    episode_frame,
    write_readings,
)
from lab.seed import seed_demo
from web.app import create_app

__all__ = ["main"]

SITE = "bench-site"
# one patient's home with chatty devices: BP and glucose four times a day, a daily weight
HEAVY_SCHEDULE = (
    *(Measurement("blood_pressure", h, 20) for h in (7.5, 12.5, 18.5, 22.5)),
    *(Measurement("glucose", h, 20) for h in (6.5, 11.5, 17.5, 21.5)),
    Measurement("body_weight", 7.5, 20),
)


def build(conninfo: str, n_episodes: int, days: int, password: str) -> uuid.UUID:
    """The queue of one care manager with ``n_episodes`` open episodes (seven families per
    patient) and one patient with ``days`` of readings from chatty devices; the readings and
    episodes come from :mod:`lab.population`, as for ``carebeacon bench queries``."""
    rng = random.Random(7)  # noqa: S311 - synthetic data, not secrets
    seed_demo(conninfo, site_id=SITE, site_name="Bench", password=password)
    now = datetime.now(UTC)
    families = list(FAMILIES)
    n_patients = (n_episodes + len(families) - 1) // len(families) * 2
    enrolled = now - timedelta(days=days + 5)
    site = Site(SITE, "Bench")
    program = Program("htn", "Hypertension", "hypertension")
    heavy_index = n_patients - 1  # one chatty device for every reading type
    specs = [
        HomeSpec(
            site=site,
            program=program,
            enrolled_at=enrolled,
            display_name=f"Bench Patient {i}",
            mrn=f"B{i:06d}",
            risk_tier=1 + i % 3,
            billing_practitioner="dr",
            devices=(Device("bench-dev", "blood_pressure_monitor"),) if i == heavy_index else (),
        )
        for i in range(n_patients)
    ]
    patients = [spec.patient_id for spec in specs]
    with psycopg.connect(conninfo) as conn:
        provision_homes_bulk(conn, specs)
        episodes = [
            {
                "patient_id": patients[i // len(families)],
                "family": families[i % len(families)],
                "site_id": SITE,
                "program_id": "htn",
                "opened_at": now - timedelta(minutes=rng.randint(1, 60 * 72)),
                "threshold_version": "hypertension@bench",
            }
            for i in range(n_episodes)
        ]
        copy_frame(conn, COPY_EPISODES, episode_frame(episodes))
    heavy = patients[-1]
    start = now - timedelta(days=days)
    home = Home(
        patient_id=heavy,
        devices=dict.fromkeys(("blood_pressure", "glucose", "body_weight"), "bench-dev"),
        gateway_id="bench-gw",
        schedule=HEAVY_SCHEDULE,
        irregular_pulse=0.05,
    )
    receipts, values = write_readings(
        conninfo, [home], start.date(), days, until=now, rng=np.random.default_rng(7)
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(
        f"built: {n_episodes} open episodes, {receipts} readings ({values} values)"
        f" over {days} days",
        file=sys.stderr,
    )
    return heavy


def _login(client: httpx.Client, username: str, password: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    pre = page.headers["set-cookie"].split(";")[0]
    resp = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        headers={"Cookie": pre},
    )
    session = next(
        h.split(";")[0] for h in resp.headers.get_list("set-cookie") if h.startswith("cb_session=")
    )
    client.headers["Cookie"] = session


def measure(
    client: httpx.Client, url: str, runs: int, steps: Bar | None = None
) -> tuple[list[float], list[float], int]:
    server, total = [], []
    size = 0
    for _ in range(runs):
        if steps is not None:
            steps.update(1)
        t0 = time.perf_counter()
        resp = client.get(url, headers={"Accept": "text/html"})
        total.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
        size = len(resp.content)
        match = re.search(r"dur=([0-9.]+)", resp.headers.get("server-timing", ""))
        server.append(float(match.group(1)) if match else float("nan"))
    return server, total, size


def _p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.bench.pages", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    name = f"cbbench_web_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    conninfo = settings.pg_conninfo(name)
    try:
        apply_migrations(conninfo)
        password = uuid.uuid4().hex
        heavy = build(conninfo, args.episodes, args.days, password)
        app = create_app(settings, conninfo=conninfo, provision_gateway=lambda g, p: None)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=2,
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        out = io.StringIO()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _login(client, f"cm.{SITE}", password)
            pages = [("queue (2,000 open episodes)", "/queue")]
            pages += [
                (f"patient page, range {r}", f"/patients/{heavy}?range={r}")
                for r in ("7d", "30d", "90d", "1y")
            ]
            steps = bar(len(pages) * (3 + args.runs), desc="bench pages", unit="request")
            for label, url in pages:
                measure(client, url, 3, steps)  # warm up
                srv, tot, size = measure(client, url, args.runs, steps)
                print(
                    f"{label:<32} server median {statistics.median(srv):7.1f} ms"
                    f"  p95 {_p95(srv):7.1f} ms | round trip median {statistics.median(tot):7.1f} ms"
                    f" | {size / 1024:7.0f} KiB",
                    file=out,
                )
            steps.close()
        server.should_exit = True
        thread.join(10)
        print(out.getvalue(), end="")
    finally:
        with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
