"""web/ over real HTTP: the app under uvicorn on a free port, against a fresh migrated database.

Two sites (A and B), one user per role on each (``seed_demo``), patients with readings,
devices and a gateway, and helpers to log in like a browser (CSRF pre-session cookie, then the
session cookie; cookies are ``Secure``, so the header is sent by hand over plain HTTP)."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from carebeacon.settings import Settings
from lab.seed import seed_demo
from web.app import create_app

PASSWORD = "correct-horse-battery"
SITE_A, SITE_B = "wt-site-a", "wt-site-b"


@dataclass
class Server:
    url: str
    conninfo: str
    provisioned: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class World:
    patient_a: uuid.UUID
    patient_b: uuid.UUID
    device_a: str
    gateway_a: str
    reading_ids: list[uuid.UUID]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(settings: Settings, database: str) -> Iterator[Server]:
    provisioned: list[tuple[str, str]] = []
    seed_demo(database, site_id=SITE_A, site_name="Site A", program_id="wt-htn", password=PASSWORD)
    seed_demo(
        database,
        site_id=SITE_B,
        site_name="Site B",
        timezone="UTC",
        program_id="wt-htn",
        password=PASSWORD,
    )
    app = create_app(
        settings,
        conninfo=database,
        provision_gateway=lambda gw, pw: provisioned.append((gw, pw)),
    )
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", database, provisioned)
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def insert_reading(
    conn: psycopg.Connection[Any],
    patient_id: uuid.UUID,
    t: datetime,
    values: dict[str, float],
    *,
    kind: str = "blood_pressure",
    device_id: str = "wt-dev-a",
    gateway_id: str = "wt-gw-a",
    flags: tuple[str, ...] = (),
) -> uuid.UUID:
    rid = uuid.uuid4()
    conn.execute(
        "INSERT INTO reading_receipts (id, patient_id, type, time, received_at, device_id,"
        " gateway_id, flags) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (rid, patient_id, kind, t, t, device_id, gateway_id, list(flags)),
    )
    units = {
        "systolic": "mm[Hg]",
        "diastolic": "mm[Hg]",
        "pulse": "/min",
        "glucose": "mg/dL",
        "body_weight": "kg",
    }
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (time, patient_id, code, value, unit, reading_id, device_id,"
            " gateway_id, received_at, flags) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (t, patient_id, code, v, units[code], rid, device_id, gateway_id, t, list(flags))
                for code, v in values.items()
            ],
        )
    return rid


def insert_episode(
    conn: psycopg.Connection[Any],
    patient_id: uuid.UUID,
    site_id: str,
    *,
    family: str = "bp_high",
    rule_id: str = "bp_high",
    severity: str = "high",
    priority: int = 2,
    explanation: str = "3 of the last 5 readings at or above 160/100",
    opened_ago: timedelta = timedelta(minutes=5),
) -> uuid.UUID:
    """An open episode as alerts/ would store it (fixture data for the queue tests)."""
    eid = uuid.uuid4()
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO alert_episodes (id, patient_id, family, rule_id, state, severity, priority,"
        " site_id, program_id, opened_at, last_at, created_at, updated_at, value_code,"
        " first_value, last_value, worst_value, explanation, threshold_version, sla_due_at)"
        " VALUES (%s, %s, %s, %s, 'open', %s, %s, %s, 'wt-htn', %s, %s, %s, now(), 'systolic',"
        " 165, 168, 170, %s, 'hypertension@test', %s)",
        (
            eid,
            patient_id,
            family,
            rule_id,
            severity,
            priority,
            site_id,
            now - opened_ago,
            now - opened_ago,
            now,
            explanation,
            now + timedelta(hours=4) - opened_ago,
        ),
    )
    return eid


def enrolled_patient(conninfo: str, site: str, name: str, *, history_days: int = 10) -> uuid.UUID:
    """A consenting patient of the wt-htn (hypertension) program with some plain history."""
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "INSERT INTO patients (display_name, site_id) VALUES (%s, %s) RETURNING id",
            (name, site),
        ).fetchone()
        assert row is not None
        pid = uuid.UUID(str(row[0]))
        conn.execute(
            "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at,"
            " consent_given_at, billing_practitioner) VALUES (%s, 'wt-htn', %s, %s, %s, 'dr-x')",
            (pid, site, now - timedelta(days=60), now - timedelta(days=60)),
        )
        for day in range(1, history_days + 1):
            t = now - timedelta(days=day, hours=2)
            insert_reading(conn, pid, t, {"systolic": 128 + day, "diastolic": 82, "pulse": 66})
            insert_reading(conn, pid, t, {"body_weight": 90 - day / 10}, kind="weight")
            insert_reading(conn, pid, t, {"glucose": 100 + day}, kind="glucose")
    return pid


def crisis_through_alerts(conninfo: str, patient_id: uuid.UUID) -> None:
    """What ingest does with a BP crisis and its repeat 5 minutes later: store the readings
    and run alerts/'s live rules in the same transaction. Opens a critical bp_crisis episode."""
    from alerts import StoredReading, evaluate_readings

    async def run() -> None:
        now = datetime.now(UTC)
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            for minutes_ago, (sys_, dia) in ((6, (186.0, 104.0)), (1, (184.0, 102.0))):
                t = now - timedelta(minutes=minutes_ago)
                values = {"systolic": sys_, "diastolic": dia, "pulse": 88.0}
                rid = await asyncio.to_thread(_insert_sync, conninfo, patient_id, t, values)
                reading = StoredReading(
                    reading_id=rid,
                    patient_id=patient_id,
                    type="blood_pressure",
                    time=t,
                    received_at=t,
                    device_id="wt-dev-a",
                    gateway_id="wt-gw-a",
                    flags=(),
                    values=values,
                )
                # the first as it was evaluated when it arrived; the repeat now (wall clock)
                await evaluate_readings(
                    conn, [reading], now=t + timedelta(seconds=20) if minutes_ago > 1 else None
                )
                await conn.commit()

    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]


def _insert_sync(
    conninfo: str, patient_id: uuid.UUID, t: datetime, values: dict[str, float]
) -> uuid.UUID:
    with psycopg.connect(conninfo) as conn:
        return insert_reading(conn, patient_id, t, values)


@pytest.fixture(scope="session")
def world(server: Server) -> World:
    now = datetime.now(UTC)
    with psycopg.connect(server.conninfo) as conn:
        pa = conn.execute(
            "INSERT INTO patients (display_name, mrn, birth_date, site_id) VALUES"
            " ('Zed Testpatient-A', 'WT-MRN-A-1', '1950-02-03', %s) RETURNING id",
            (SITE_A,),
        ).fetchone()
        pb = conn.execute(
            "INSERT INTO patients (display_name, mrn, site_id) VALUES"
            " ('Yara Testpatient-B', 'WT-MRN-B-1', %s) RETURNING id",
            (SITE_B,),
        ).fetchone()
        assert pa is not None
        assert pb is not None
        patient_a, patient_b = pa[0], pb[0]
        for pid, site in ((patient_a, SITE_A), (patient_b, SITE_B)):
            conn.execute(
                "INSERT INTO enrollments (patient_id, program_id, site_id, enrolled_at,"
                " consent_given_at, billing_practitioner) VALUES (%s, 'wt-htn', %s, %s, %s, 'dr-x')",
                (pid, site, now - timedelta(days=400), now - timedelta(days=400)),
            )
        conn.execute(
            "INSERT INTO devices (id, type, manufacturer, model) VALUES"
            " ('wt-dev-a', 'blood_pressure_monitor', 'Acme', 'BP-1'),"
            " ('serial:WT/1', 'blood_pressure_monitor', 'Acme', 'BP-1')"
        )
        conn.execute(
            "INSERT INTO device_assignments (device_id, patient_id, valid_from) VALUES"
            " ('wt-dev-a', %s, %s), ('serial:WT/1', %s, %s)",
            (patient_a, now - timedelta(days=400), patient_b, now - timedelta(days=400)),
        )
        conn.execute("INSERT INTO gateways (id, label, online) VALUES ('wt-gw-a', 'home A', true)")
        conn.execute(
            "INSERT INTO gateway_patients (gateway_id, patient_id) VALUES ('wt-gw-a', %s)",
            (patient_a,),
        )
        ids = []
        for day in range(10):
            t = now - timedelta(days=day, hours=1)
            ids.append(
                insert_reading(
                    conn,
                    patient_a,
                    t,
                    {"systolic": 150 + day, "diastolic": 90, "pulse": 70},
                    flags=("irregular_pulse",) if day == 0 else (),
                )
            )
        insert_reading(
            conn, patient_a, now - timedelta(hours=3), {"glucose": 110.0}, kind="glucose"
        )
        insert_reading(
            conn,
            patient_a,
            now - timedelta(hours=4),
            {"glucose": 300.0},
            kind="glucose",
            flags=("control_solution",),
        )
        insert_reading(
            conn, patient_a, now - timedelta(hours=2), {"body_weight": 80.0}, kind="weight"
        )
        insert_reading(
            conn, patient_a, now - timedelta(days=1, hours=2), {"body_weight": 79.0}, kind="weight"
        )
        insert_reading(
            conn,
            patient_b,
            now - timedelta(hours=1),
            {"systolic": 130, "diastolic": 80},
            device_id="serial:WT/1",
        )
    return World(patient_a, patient_b, "wt-dev-a", "wt-gw-a", ids)


class Client:
    """A logged-in user over HTTP (session cookie + CSRF header), or anonymous."""

    def __init__(self, base_url: str, username: str | None = None) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10, follow_redirects=False)
        self.csrf: str | None = None
        self.username = username
        if username is not None:
            self.login(username, PASSWORD)

    def login(self, username: str, password: str) -> httpx.Response:
        page = self.http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        pre = page.cookies.get("cb_login_csrf") or _cookie(page, "cb_login_csrf")
        resp = self.http.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
            headers={"Cookie": f"cb_login_csrf={pre}"},
        )
        session = _cookie(resp, "cb_session")
        if session:
            self.http.headers["Cookie"] = f"cb_session={session}"
            me = self.http.get("/api/me")
            assert me.status_code == 200, me.text
            self.csrf = me.json()["csrf_token"]
        return resp

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.http.get(url, **kw)

    def post(self, url: str, *, csrf: bool = True, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        return self.http.post(url, headers=headers, **kw)

    def patch(self, url: str, **kw: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        return self.http.patch(url, headers=headers, **kw)

    def close(self) -> None:
        self.http.close()


def _cookie(resp: httpx.Response, name: str) -> str | None:
    for header in resp.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    return None


def user(role: str, site: str) -> str:
    prefix = {"care_manager": "cm", "clinician": "clin", "supervisor": "sup", "admin": "admin"}
    return f"{prefix[role]}.{site}"


@pytest.fixture(scope="session")
def clients(server: Server) -> Iterator[dict[str, Client]]:
    made: dict[str, Client] = {}
    for role in ("care_manager", "clinician", "supervisor", "admin"):
        for site in (SITE_A, SITE_B):
            name = user(role, site)
            made[name] = Client(server.url, name)
    made["anonymous"] = Client(server.url)
    yield made
    for c in made.values():
        c.close()


@pytest.fixture
def new_client(server: Server) -> Iterator[Callable[[str | None], Client]]:
    """Make clients inside a test; they are closed even when the test fails."""
    made: list[Client] = []

    def make(username: str | None = None) -> Client:
        made.append(Client(server.url, username))
        return made[-1]

    yield make
    for c in made:
        c.close()


def audit_rows(conninfo: str, **where: Any) -> list[dict[str, Any]]:
    clauses = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    with psycopg.connect(conninfo, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            f"SELECT * FROM audit_events WHERE {clauses} ORDER BY id", where
        ).fetchall()
