"""web/ over real HTTP: the app served by uvicorn on a free port, a client that logs in like a
browser (CSRF pre-session cookie, then the session cookie; cookies are ``Secure``, so the header
is sent by hand over plain HTTP), and the rows the web tests start from."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import uvicorn

from lab.homes import Device, HomeSpec, Program, Site, provision_home
from tests.support.network import free_port

__all__ = [
    "PASSWORD",
    "PROGRAM",
    "SITE_A",
    "SITE_B",
    "Client",
    "Server",
    "World",
    "audit_rows",
    "crisis_through_alerts",
    "enrolled_patient",
    "insert_episode",
    "insert_reading",
    "serving",
    "user",
]

PASSWORD = "correct-horse-battery"
SITE_A, SITE_B = "wt-site-a", "wt-site-b"
#: the program ``seed_demo(program_id="wt-htn")`` creates
PROGRAM = Program("wt-htn", "Hypertension", "hypertension")


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


@contextlib.contextmanager
def serving(app: Any, *, log_level: str = "warning") -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
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


def enrolled_patient(
    conninfo: str,
    site: str,
    name: str,
    *,
    history_days: int = 10,
    mrn: str | None = None,
    gateway_id: str | None = None,
    devices: tuple[Device, ...] = (),
) -> uuid.UUID:
    """A consenting patient of the wt-htn (hypertension) program since 60 days with some plain
    history; with ``gateway_id`` and ``devices``, at home with them."""
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn:
        home = provision_home(
            conn,
            HomeSpec(
                site=Site(site, site),
                program=PROGRAM,
                enrolled_at=now - timedelta(days=60),
                display_name=name,
                mrn=mrn,
                billing_practitioner="dr-x",
                gateway_id=gateway_id,
                devices=devices,
            ),
        )
        pid = home.patient_id
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


def audit_rows(conninfo: str, **where: Any) -> list[dict[str, Any]]:
    clauses = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
    with psycopg.connect(conninfo, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            f"SELECT * FROM audit_events WHERE {clauses} ORDER BY id", where
        ).fetchall()
