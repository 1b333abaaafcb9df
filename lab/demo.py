"""``carebeacon demo``: the whole path on one machine, with a demo organisation.

Starts the project's services, migrates a ``carebeacon_demo`` database, seeds two sites of
care, programs and 40 consenting patients with their gateways and devices, starts ingest, and
runs 40 simulated homes publishing over MQTT: a 14-day history compressed into the first
seconds (each home's gateway draining its outbox), then live readings, with scripted events.
Prints what arrives. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devices.uuids import GattCharacteristic
from lab.demo_home import DEVICE_TYPES, SCRIPTED_HOMES, device_serials
from lab.services import forget_ingest_session

__all__ = ["main"]

DEMO_DATABASE = "carebeacon_demo"
SITES = (
    ("riverside-pc", "Riverside Primary Care", "America/New_York"),
    ("north-lhd", "North County Health Department", "America/New_York"),
)
PROGRAMS = (
    ("hypertension", "Hypertension", "hypertension"),
    ("heart_failure", "Heart failure", "heart_failure"),
    ("diabetes", "Diabetes", "diabetes"),
    ("postpartum", "Postpartum hypertension", "maternal_postpartum"),
)
FIRST = ("Ada", "Ben", "Cleo", "Dev", "Eun", "Femi", "Gus", "Hana", "Ivo", "Jade")
LAST = ("Archer", "Brook", "Castillo", "Dahl")
#: scripted events, by patient number
CRISIS, WEIGHT_GAIN, HYPO, SILENT, OFFLINE, CLOCK_RESET = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True, slots=True)
class _Home:
    number: int
    patient_id: uuid.UUID
    program: str
    gateway_id: str
    devices: dict[str, str]  # reading type -> device id


def _homes() -> list[_Home]:
    homes = []
    for n in range(40):
        program = (
            "heart_failure"
            if n == WEIGHT_GAIN
            else "diabetes"
            if n == HYPO
            else PROGRAMS[n % len(PROGRAMS)][0]
        )
        devices = {"blood_pressure": f"demo-cuff-{n:02d}"}
        if program == "heart_failure":
            devices["body_weight"] = f"demo-scale-{n:02d}"
        if program == "diabetes":
            devices["glucose"] = f"demo-meter-{n:02d}"
        if n in SCRIPTED_HOMES:
            devices = device_serials(n)
        homes.append(
            _Home(
                n,
                uuid.uuid5(uuid.NAMESPACE_URL, f"carebeacon-demo/{n}"),
                program,
                f"demo-gw-{n:02d}",
                devices,
            )
        )
    return homes


def _seed(conninfo: str, homes: list[_Home]) -> dict[int, str]:
    """The demo organisation's homes; the scripted homes' gateways get a broker login (home
    number -> its password), the others are simulated with the admin login."""
    import psycopg

    from lab.homes import Device, HomeSpec, Program, Site, provision_home

    since = datetime.now(UTC) - timedelta(days=60)
    sites = [Site(*site) for site in SITES]
    programs = {program[0]: Program(*program) for program in PROGRAMS}
    passwords: dict[int, str] = {}
    with psycopg.connect(conninfo) as conn:
        for home in homes:
            provisioned = provision_home(
                conn,
                HomeSpec(
                    site=sites[home.number % 2],
                    program=programs[home.program],
                    enrolled_at=since,
                    patient_id=home.patient_id,
                    display_name=f"{FIRST[home.number % 10]} {LAST[home.number // 10]}",
                    mrn=f"DEMO{home.number:04d}",
                    risk_tier=1 + home.number % 3,
                    billing_practitioner="Dr. Demo",
                    gateway_id=home.gateway_id,
                    gateway_label=f"home of patient {home.number}",
                    devices=tuple(
                        Device(device_id, DEVICE_TYPES[reading_type], "CareBeacon", "Emulated")
                        for reading_type, device_id in home.devices.items()
                    ),
                ),
                broker_login=home.number in SCRIPTED_HOMES,
            )
            if provisioned.gateway_password is not None:
                passwords[home.number] = provisioned.gateway_password
    return passwords


def _reading(
    home: _Home,
    reading_type: str,
    at: datetime,
    values: dict[str, float],
    flags: list[str],
    rng: random.Random,
    measured_at: datetime | None = None,
) -> dict[str, Any]:
    units = {
        "systolic": "mm[Hg]",
        "diastolic": "mm[Hg]",
        "pulse": "/min",
        "glucose": "mg/dL",
        "body_weight": "kg",
    }
    measured = measured_at if measured_at is not None else at.replace(tzinfo=None, microsecond=0)
    return {
        "id": str(
            uuid.uuid5(
                uuid.NAMESPACE_URL,
                f"{home.devices[reading_type]}/{measured.isoformat()}/{rng.random()}",
            )
        ),
        "device": {
            "id": home.devices[reading_type],
            "type": DEVICE_TYPES[reading_type],
            "manufacturer": "CareBeacon",
            "model": "Emulated",
        },
        "type": reading_type,
        "measured_at": measured.isoformat(),
        "received_at": at.isoformat(),
        "sequence": None,
        "user_index": 1,
        "values": [{"code": c, "value": round(v, 1), "unit": units[c]} for c, v in values.items()],
        "flags": flags,
        "raw": {
            "characteristic": {
                "blood_pressure": GattCharacteristic.BLOOD_PRESSURE_MEASUREMENT,
                "body_weight": GattCharacteristic.WEIGHT_MEASUREMENT,
                "glucose": GattCharacteristic.GLUCOSE_MEASUREMENT,
            }[reading_type].short
        },
    }


def _day_readings(
    home: _Home, day: datetime, days_ago: int, rng: random.Random
) -> list[dict[str, Any]]:
    """One day of a patient's measurements (morning/evening BP, fasting glucose, daily weight)."""
    if home.number == SILENT and days_ago < 4:
        return []
    out = []
    base_sys = 128 + (home.number % 7) * 3
    for hour in (7, 19):
        at = day.replace(hour=hour, minute=rng.randrange(0, 50))
        flags = ["cuff_loose"] if rng.random() < 0.03 else []
        values = {
            "systolic": rng.gauss(base_sys, 7),
            "diastolic": rng.gauss(80, 5),
            "pulse": rng.gauss(70, 6),
        }
        measured = (
            datetime(2000, 1, 1, 0, rng.randrange(60), tzinfo=UTC).replace(tzinfo=None)
            if home.number == CLOCK_RESET and days_ago < 2
            else None
        )
        if measured is not None:
            flags.append("device_clock_reset")
        out.append(_reading(home, "blood_pressure", at, values, flags, rng, measured))
    if "body_weight" in home.devices:
        gain = max(0, 7 - days_ago) * 0.45 if home.number == WEIGHT_GAIN else 0.0
        out.append(
            _reading(
                home,
                "body_weight",
                day.replace(hour=7, minute=5),
                {"body_weight": 82.0 + gain + rng.gauss(0, 0.2)},
                [],
                rng,
            )
        )
    if "glucose" in home.devices:
        glucose = 52.0 if home.number == HYPO and days_ago == 0 else rng.gauss(118, 15)
        out.append(
            _reading(home, "glucose", day.replace(hour=6, minute=50), {"glucose": glucose}, [], rng)
        )
    return [r for r in out if datetime.fromisoformat(r["received_at"]) <= datetime.now(UTC)]


def _run_simulated_homes(settings: Any, homes: list[_Home], stop: list[bool]) -> None:
    """The homes without an emulated BLE gateway: their gateways' MQTT traffic, simulated."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-homes", protocol=mqtt.MQTTv5)
    client.username_pw_set(
        settings.mqtt_admin_user, settings.mqtt_admin_password.get_secret_value()
    )
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    rng = random.Random(2026)  # noqa: S311 - synthetic data
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def publish(home: _Home, readings: list[dict[str, Any]]) -> None:
        for i in range(0, len(readings), 50):
            body = {
                "schema": "carebeacon.readings/1",
                "gateway_id": home.gateway_id,
                "sent_at": datetime.now(UTC).isoformat(),
                "timezone": "UTC",
                "readings": readings[i : i + 50],
            }
            client.publish(
                f"carebeacon/v1/gateways/{home.gateway_id}/readings", json.dumps(body), qos=1
            ).wait_for_publish(10)

    for home in homes:  # each gateway drains two weeks of outbox
        history = [
            r
            for d in range(14, 0, -1)
            for r in _day_readings(home, today - timedelta(days=d), d, rng)
        ]
        publish(home, history)
        state = "online"
        status = {
            "schema": "carebeacon.status/1",
            "gateway_id": home.gateway_id,
            "state": state,
            "sent_at": datetime.now(UTC).isoformat(),
            "software_version": "demo",
            "devices": [],
            "unknown_devices": 0,
            "outbox": {"depth": 0, "oldest_at": None, "full": False},
        }
        client.publish(
            f"carebeacon/v1/gateways/{home.gateway_id}/status",
            json.dumps(status),
            qos=1,
            retain=True,
        )
    for home in homes:  # today so far
        publish(home, _day_readings(home, today, 0, rng))
    while not stop[0]:  # live: a reading from some home every few seconds
        home = rng.choice([h for h in homes if h.number != SILENT])
        at = datetime.now(UTC)
        publish(
            home,
            [
                _reading(
                    home,
                    "blood_pressure",
                    at,
                    {
                        "systolic": rng.gauss(130, 8),
                        "diastolic": rng.gauss(80, 5),
                        "pulse": rng.gauss(70, 5),
                    },
                    [],
                    rng,
                )
            ],
        )
        time.sleep(2)
    client.loop_stop()
    client.disconnect()


DEMO_PASSWORD = "carebeacon-demo"  # noqa: S105 - the demo's printed logins, local only


def _seed_users(conninfo: str) -> dict[str, str]:
    """One user per role for each demo site (username -> role), all with DEMO_PASSWORD."""
    from lab.seed import seed_demo

    users: dict[str, str] = {}
    for site_id, name, zone in SITES:
        accounts = seed_demo(
            conninfo,
            site_id=site_id,
            site_name=name,
            timezone=zone,
            program_id="hypertension",
            password=DEMO_PASSWORD,
            reset_passwords=True,
        )
        users.update(accounts.users)
    return users


async def _demo_overrides(conninfo: str, homes: list[_Home]) -> None:
    """Compress time for the scripted offline gateway: its episode opens after a minute, not 6 h."""
    import psycopg

    from alerts import set_threshold
    from lab.demo_home import OFFLINE

    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        await set_threshold(
            conn,
            scope="patient",
            parameter="gateway_offline.hours",
            value=1 / 60,
            ordered_by="carebeacon demo",
            reason="demo: time compressed",
            valid_from=datetime.now(UTC) - timedelta(days=1),
            patient_id=homes[OFFLINE].patient_id,
        )


def _start_emulated_homes(
    settings: Any, homes: list[_Home], passwords: dict[int, str], env: dict[str, str]
) -> list[subprocess.Popen[bytes]]:
    import tempfile

    state = Path(tempfile.mkdtemp(prefix="carebeacon-demo-gateways-"))
    children = []
    for home in homes:
        if home.number not in passwords:
            continue
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lab.demo_home",
                    str(home.number),
                    "--gateway-id",
                    home.gateway_id,
                    "--state-dir",
                    str(state / home.gateway_id),
                    "--ca-file",
                    settings.mqtt_ca_file,
                    "--port",
                    str(settings.mqtt_tls_port),
                ],
                env=dict(env, CAREBEACON_GATEWAY_PASSWORD=passwords[home.number]),
            )
        )
    time.sleep(1.0)  # the broker reloads its password file
    return children


SETUP_STEPS = (
    "services",
    "database and migrations",
    "sites, patients, devices, users",
    "ingest and web",
    "emulated homes",
)


def main(argv: list[str]) -> int:
    import threading

    import psycopg

    from carebeacon.logs import configure_logging
    from carebeacon.progress import Steps
    from carebeacon.settings import Settings
    from db.migrations import apply_migrations
    from lab import services

    parser = argparse.ArgumentParser(prog="carebeacon demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--web-port", type=int, default=8080)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_format == "json")
    setup = Steps(SETUP_STEPS, desc="demo setup")
    settings = services.up()
    setup.done()
    with psycopg.connect(settings.pg_conninfo("postgres"), autocommit=True) as conn:
        # the demo's timeline starts now: a fresh database every run
        conn.execute(f'DROP DATABASE IF EXISTS "{DEMO_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DEMO_DATABASE}"')
    settings = settings.model_copy(update={"pg_database": DEMO_DATABASE})
    conninfo = settings.pg_conninfo()
    apply_migrations(conninfo)
    setup.done()
    homes = _homes()
    passwords = _seed(conninfo, homes)
    env = dict(
        os.environ,
        CAREBEACON_PG_DATABASE=DEMO_DATABASE,
        CAREBEACON_INGEST_CLIENT_ID="ingest-demo",
    )
    accounts = _seed_users(conninfo)
    asyncio.run(_demo_overrides(conninfo, homes))
    setup.done()
    asyncio.run(forget_ingest_session(settings, env["CAREBEACON_INGEST_CLIENT_ID"]))
    cli = [sys.executable, "-m", "carebeacon.cli"]
    children = [
        subprocess.Popen([*cli, "ingest"], env=env),
        subprocess.Popen([*cli, "web", "--port", str(args.web_port)], env=env),
    ]
    setup.done()
    children += _start_emulated_homes(settings, homes, passwords, env)
    setup.done()
    stop = [False]
    homes_thread = threading.Thread(
        target=_run_simulated_homes,
        args=(settings, [h for h in homes if h.number not in SCRIPTED_HOMES], stop),
        daemon=True,
    )
    print(
        f"CareBeacon demo: database {DEMO_DATABASE}, 2 sites, 40 patients; homes "
        f"{', '.join(str(n) for n in SCRIPTED_HOMES)} run a real gateway with emulated BLE devices, "
        "the others are simulated over MQTT.\n"
        f"Open http://127.0.0.1:{args.web_port}/  logins (password {DEMO_PASSWORD!r}): "
        + ", ".join(f"{user} ({role})" for user, role in sorted(accounts.items()))
        + "\nCtrl-C stops everything.",
        flush=True,
    )
    interrupted = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        time.sleep(1.5)
        homes_thread.start()
        scheduler_at = time.monotonic() + 20  # once the homes have drained their history
        while not interrupted:
            if scheduler_at and time.monotonic() > scheduler_at:
                children.append(subprocess.Popen([*cli, "scheduler", "--interval", "10"], env=env))
                scheduler_at = 0.0
            with psycopg.connect(conninfo) as conn:
                rows = conn.execute(
                    "SELECT type, count(*) FROM reading_receipts GROUP BY type ORDER BY type"
                ).fetchall()
                quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
                offline = conn.execute("SELECT count(*) FROM gateways WHERE NOT online").fetchone()
                episodes = conn.execute(
                    "SELECT rule_id, count(*) FROM alert_episodes WHERE state IN ('open', 'acknowledged')"
                    " GROUP BY rule_id ORDER BY rule_id"
                ).fetchall()
            summary = ", ".join(f"{t} {n}" for t, n in rows) or "none yet"
            print(
                f"{datetime.now(UTC):%H:%M:%S} readings stored: {summary}; quarantined "
                f"{quarantined[0] if quarantined else 0}; gateways offline {offline[0] if offline else 0}; "
                f"open episodes: {', '.join(f'{r} {n}' for r, n in episodes) or 'none'}",
                flush=True,
            )
            for _ in range(50):
                if interrupted:
                    break
                time.sleep(0.1)
    finally:
        stop[0] = True
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        print("demo stopped", flush=True)
    return 0
