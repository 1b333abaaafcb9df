"""The end-to-end rig of the fault tests, and the counting that decides them.

emulated BLE devices (bumble) → the real gateway (:func:`gateway.service.run`, one emulated air
per home) → a private Mosquitto (the project's ACL, per-gateway logins) → ``carebeacon ingest``
as a subprocess (killable) → TimescaleDB → alerts (in ingest's transaction).

Each home is a patient in the diabetes program with a BP cuff and a glucose meter. The readings
are known in advance (:class:`HomePlan`); the expected reading ids are computed from the packets
the emulated devices send (the same ``devices.canonical`` rule the gateway applies), so the
counts below do not trust the code under test. :func:`tally` counts by reading id: sent,
stored, duplicated, lost, plus the episodes expected and opened; :func:`record` prints the
figures and merges them into ``test-artifacts/reliability-faults.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from devices.canonical import DeviceIdentity, canonical_reading
from gateway.config import BleConfig, DeviceEntry, GatewayConfig, MqttConfig
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    EmulatedAir,
    GlucoseMeter,
    GlucoseReading,
    PeripheralIdentity,
)
from lab.homes import Device, HomeSpec, Program, Site, gateway_running, provision_home
from tests.support.broker import PROJECT_ACL, PrivateBroker
from tests.support.db import count
from tests.support.network import free_port

__all__ = [
    "ARTIFACTS",
    "FaultRecord",
    "Fleet",
    "HomeIds",
    "HomePlan",
    "IngestProcess",
    "PgTarget",
    "assert_kept_promises",
    "fleet_broker",
    "metric_sums",
    "new_homes",
    "record",
    "register_homes",
    "stored_count",
    "stored_for",
    "stream_plans",
    "tally",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
FAULTS_FILE = ARTIFACTS / "reliability-faults.json"

CRISIS = (BloodPressureReading(186, 122, pulse=88), BloodPressureReading(182, 119, pulse=84))


# --------------------------------------------------------------------------- homes


@dataclass(frozen=True)
class HomeIds:
    gateway_id: str
    password: str
    patient_id: uuid.UUID
    cuff_id: str
    meter_id: str


def new_homes(count: int) -> list[HomeIds]:
    """Unique ids (a random tag per run): concurrent test sessions never share one."""
    tag = uuid.uuid4().hex[:8]
    return [
        HomeIds(
            gateway_id=f"rel-{tag}-gw{i}",
            password=secrets.token_urlsafe(12),
            patient_id=uuid.uuid4(),
            cuff_id=f"rel-{tag}-bp{i}",
            meter_id=f"rel-{tag}-gm{i}",
        )
        for i in range(count)
    ]


def register_homes(conninfo: str, homes: Sequence[HomeIds]) -> None:
    """Patients with consent in the diabetes program (glucose and BP crisis rules), each served
    by their gateway, with their cuff and meter assigned for the last 30 days."""
    since = datetime.now(UTC) - timedelta(days=30)
    site = Site("rel-site", "Reliability site")
    program = Program("rel-dm", "Diabetes", "diabetes")
    with psycopg.connect(conninfo) as conn:
        for home in homes:
            provision_home(
                conn,
                HomeSpec(
                    site=site,
                    program=program,
                    enrolled_at=since,
                    patient_id=home.patient_id,
                    display_name=f"Reliability {home.gateway_id}",
                    gateway_id=home.gateway_id,
                    devices=(
                        Device(home.cuff_id, "blood_pressure_monitor"),
                        Device(home.meter_id, "glucose_meter"),
                    ),
                ),
            )


# --------------------------------------------------------------------------- what is measured


@dataclass(frozen=True)
class HomePlan:
    """A home's known readings: the first ``bp_backlog`` / ``glucose_backlog`` are on the
    devices when the gateway starts, the rest are measured while the stream runs. ``episodes``:
    family → how many readings must be evidence of that family's one episode."""

    bp: tuple[BloodPressureReading, ...]
    glucose: tuple[GlucoseReading, ...]
    bp_backlog: int
    glucose_backlog: int
    episodes: dict[str, int] = field(default_factory=dict)

    @property
    def readings(self) -> int:
        return len(self.bp) + len(self.glucose)


def _bp(i: int, at: datetime) -> BloodPressureReading:
    return BloodPressureReading(112 + i % 17, 70 + i % 9, pulse=62 + i % 11, time=at)


def _glucose(i: int, at: datetime) -> GlucoseReading:
    return GlucoseReading(95 + (i * 7) % 45, time=at)


def stream_plans(
    count: int, *, bp: int, glucose: int, backlog: float = 0.2, now: datetime | None = None
) -> list[HomePlan]:
    """Plans for ``count`` homes over the last ~90 minutes (device clocks in UTC).

    Home 0 has a hypertensive crisis confirmed by its re-measure (one ``bp_crisis`` episode with
    two readings as evidence), home 1 two low glucose results (one ``glucose_low`` episode, two
    readings); both sit in the live part of the stream, after the backlog. Everything else is
    unremarkable for the diabetes program: no other episode may open."""
    now = now or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    start = now - timedelta(minutes=90)
    bp_step = timedelta(minutes=80) / bp
    glucose_step = timedelta(minutes=80) / glucose
    plans = []
    for home in range(count):
        bps = [_bp(i, start + i * bp_step) for i in range(bp)]
        gls = [_glucose(i, start + i * glucose_step) for i in range(glucose)]
        episodes: dict[str, int] = {}
        if home == 0:
            k = int(bp * 0.6)
            for j, high in enumerate(CRISIS):
                bps[k + j] = BloodPressureReading(
                    high.systolic, high.diastolic, pulse=high.pulse, time=bps[k + j].time
                )
            episodes["bp_crisis"] = 2
        if home == 1:
            k = int(glucose * 0.6)
            gls[k] = GlucoseReading(52, time=gls[k].time)
            gls[k + 2] = GlucoseReading(61, time=gls[k + 2].time)
            episodes["glucose_low"] = 2
        plans.append(
            HomePlan(
                tuple(bps),
                tuple(gls),
                bp_backlog=int(bp * backlog),
                glucose_backlog=int(glucose * backlog),
                episodes=episodes,
            )
        )
    return plans


# --------------------------------------------------------------------------- the broker


def fleet_broker(homes: Sequence[HomeIds]) -> PrivateBroker:
    """A private broker with the project's ACL: ``ingest``, ``admin`` and one login per gateway."""
    users = {"ingest": "ingest-pw", "admin": "admin-pw"}
    users.update({h.gateway_id: h.password for h in homes})
    return PrivateBroker(users, acl=PROJECT_ACL)


# --------------------------------------------------------------------------- ingest subprocess


@dataclass(frozen=True)
class PgTarget:
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_conninfo(cls, conninfo: str) -> PgTarget:
        info = psycopg.conninfo.conninfo_to_dict(conninfo)
        return cls(
            str(info.get("host", "127.0.0.1")),
            int(str(info.get("port", 5432))),
            str(info["user"]),
            str(info.get("password", "")),
            str(info["dbname"]),
        )


class IngestProcess:
    """``carebeacon ingest`` as operators run it: one process, plain subscription (or, scaled
    out, its ``share_group``), persistent session under a fixed client id; metrics on a private
    port; stderr kept in a log file."""

    def __init__(self, pg: PgTarget, mqtt_port: int, log: Path, share_group: str = "") -> None:
        self.pg = pg
        self.share_group = share_group
        self.mqtt_port = mqtt_port
        self.log = log
        self.client_id = f"ingest-rel-{uuid.uuid4().hex[:8]}"
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CAREBEACON_PG_HOST": self.pg.host,
            "CAREBEACON_PG_PORT": str(self.pg.port),
            "CAREBEACON_PG_USER": self.pg.user,
            "CAREBEACON_PG_PASSWORD": self.pg.password,
            "CAREBEACON_PG_DATABASE": self.pg.database,
            "CAREBEACON_MQTT_HOST": "127.0.0.1",
            "CAREBEACON_MQTT_PORT": str(self.mqtt_port),
            "CAREBEACON_MQTT_INGEST_USER": "ingest",
            "CAREBEACON_MQTT_INGEST_PASSWORD": "ingest-pw",
            "CAREBEACON_INGEST_CLIENT_ID": self.client_id,
            "CAREBEACON_INGEST_SHARE_GROUP": self.share_group,
            "CAREBEACON_INGEST_SESSION_EXPIRY_SECONDS": "3600",
            "CAREBEACON_METRICS_PORT": str(self.metrics_port),
            "CAREBEACON_LOG_LEVEL": "INFO",  # ingest logs only its connections at INFO
        }

    def start(self) -> None:
        assert self.process is None
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "carebeacon.cli", "ingest"],
                cwd=ROOT,
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        self.starts += 1

    def connections(self) -> int:
        """How many times an ingest process of this run has connected and subscribed."""
        if not self.log.exists():
            return 0
        return self.log.read_text(encoding="utf-8", errors="replace").count(
            "connected to the broker"
        )

    async def start_connected(self, within: float = 20.0) -> None:
        """Start and wait until it has subscribed (its session then queues what it misses)."""
        before = self.connections()
        self.start()
        deadline = time.monotonic() + within
        while self.connections() <= before:
            if time.monotonic() > deadline or not self.alive():
                raise AssertionError(f"ingest did not connect: {self.log_problems()[-5:]}")
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no drain, no acknowledgement, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None
        self.kills += 1

    def stop(self) -> int:
        """SIGTERM: drain, commit, acknowledge, exit 0."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def metrics_text(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            return str(response.read().decode())

    def metrics(self) -> dict[str, float]:
        """Every sample of ``/metrics`` summed over its labels, by sample name."""
        return metric_sums(self.metrics_text())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log_problems(self) -> list[str]:
        """ERROR/CRITICAL lines and tracebacks in the log. paho logs the broker going away
        ("failed to receive on socket") at ERROR on its own logger: that is the fault under
        test, not an error of ingest's, and ingest reconnects."""
        if not self.log.exists():
            return []
        return [
            line
            for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines()
            if (" ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"))
            and " mqtt: failed to receive on socket" not in line
        ]


def metric_sums(text: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                continue
            sums[sample.name] = sums.get(sample.name, 0.0) + float(sample.value)
    return sums


# --------------------------------------------------------------------------- gateways


def gateway_config(home: HomeIds, port: int, state_dir: Path) -> GatewayConfig:
    return GatewayConfig(
        gateway_id=home.gateway_id,
        state_dir=state_dir,
        timezone="UTC",
        mqtt=MqttConfig(
            host="127.0.0.1",
            port=port,
            tls=False,  # the private broker's plain listener (TLS is covered in tests/gateway)
            username=home.gateway_id,
            password=home.password,
            publish_timeout=5.0,
        ),
        ble=BleConfig(
            connect_timeout=5.0, reconnect_base=0.2, reconnect_cap=2.0, revisit_seconds=0.3
        ),
        devices=(
            DeviceEntry(type="blood_pressure_monitor", id=home.cuff_id),
            DeviceEntry(type="glucose_meter", id=home.meter_id),
        ),
        status_interval=5.0,
        log_level="WARNING",
    )


@dataclass
class _Home:
    ids: HomeIds
    plan: HomePlan
    air: EmulatedAir
    cuff: BloodPressureCuff
    meter: GlucoseMeter
    config: GatewayConfig


class Fleet:
    """One emulated air, cuff, meter and real gateway per home."""

    def __init__(
        self,
        homes: Sequence[HomeIds],
        plans: Sequence[HomePlan],
        broker_port: int,
        state_root: Path,
    ) -> None:
        self.ids = list(homes)
        self.plans = list(plans)
        self.broker_port = broker_port
        self.state_root = state_root
        self.homes: list[_Home] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Fleet]:
        async with contextlib.AsyncExitStack() as stack:
            for ids, plan in zip(self.ids, self.plans, strict=True):
                air = await stack.enter_async_context(EmulatedAir())
                cuff = await air.add(
                    BloodPressureCuff(
                        PeripheralIdentity(serial=ids.cuff_id, model="Cuff BP-7"),
                        readings=plan.bp[: plan.bp_backlog],
                    )
                )
                meter = await air.add(
                    GlucoseMeter(
                        PeripheralIdentity(serial=ids.meter_id, model="Meter G-3"),
                        records=plan.glucose[: plan.glucose_backlog],
                    )
                )
                config = gateway_config(ids, self.broker_port, self.state_root / ids.gateway_id)
                self.homes.append(_Home(ids, plan, air, cuff, meter, config))
            for home in self.homes:
                await stack.enter_async_context(gateway_running(home.config, home.air))
            yield self

    async def stream(self, seconds: float) -> None:
        """Each device takes its remaining measurements, evenly spread over ``seconds``."""

        async def device(measure: Callable[[Any], Any], items: Sequence[Any]) -> None:
            if not items:
                return
            started = time.monotonic()
            for i, item in enumerate(items):
                delay = started + (i + 1) * seconds / len(items) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await measure(item)

        async with asyncio.TaskGroup() as tg:
            for home in self.homes:
                tg.create_task(device(home.cuff.measure, home.plan.bp[home.plan.bp_backlog :]))
                tg.create_task(
                    device(home.meter.measure, home.plan.glucose[home.plan.glucose_backlog :])
                )

    def expected(self) -> dict[uuid.UUID, int]:
        """reading id → number of values, from the packets the devices send (call after the
        stream: the meter numbers its records as they are taken)."""
        out: dict[uuid.UUID, int] = {}
        received = datetime.now(UTC)
        for home in self.homes:
            cuff = DeviceIdentity(home.ids.cuff_id, "blood_pressure_monitor")
            for reading in home.plan.bp:
                packet = home.cuff.encode_reading(reading, 0)
                canonical = canonical_reading("2a35", packet, cuff, received)
                out[canonical.id] = len(canonical.values)
            meter = DeviceIdentity(home.ids.meter_id, "glucose_meter")
            records = home.meter.records
            assert len(records) == len(home.plan.glucose)
            for rec in records:
                canonical = canonical_reading("2a18", rec.measurement, meter, received)
                out[canonical.id] = len(canonical.values)
        return out

    def outbox_depths(self) -> list[int]:
        from gateway import Outbox

        depths = []
        for home in self.homes:
            box = Outbox(home.config.state_dir / "gateway.sqlite3", max_readings=100_000)
            try:
                depths.append(box.depth)
            finally:
                box.close()
        return depths


# --------------------------------------------------------------------------- counting


def stored_count(conninfo: str, ids: Iterable[uuid.UUID]) -> int:
    return count(conninfo, "SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", list(ids))


def stored_for(conninfo: str, homes: Sequence[HomeIds]) -> int:
    """Receipts of these homes' devices so far (progress while the stream runs)."""
    devices = [d for h in homes for d in (h.cuff_id, h.meter_id)]
    return count(
        conninfo, "SELECT count(*) FROM reading_receipts WHERE device_id = ANY(%s)", devices
    )


async def wait_until(predicate: Callable[[], bool], within: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


@dataclass
class FaultRecord:
    fault: str
    readings_sent: int
    stored: int
    duplicated: int
    lost: int
    episodes_expected: int
    episodes_opened: int
    episodes_doubled: int
    quarantined: int
    rows: int
    rows_expected: int
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.fault:<34} sent {self.readings_sent:>5}  stored {self.stored:>5}  "
            f"duplicated {self.duplicated}  lost {self.lost}  episodes "
            f"{self.episodes_opened}/{self.episodes_expected} (doubled {self.episodes_doubled})  "
            f"quarantined {self.quarantined}  {self.seconds:.1f} s"
        )


def tally(
    conninfo: str,
    fault: str,
    homes: Sequence[HomeIds],
    plans: Sequence[HomePlan],
    expected: dict[uuid.UUID, int],
    seconds: float,
    detail: dict[str, Any] | None = None,
) -> FaultRecord:
    """Count by reading id what the database holds for these homes, and their episodes."""
    ids = list(expected)
    patients = [h.patient_id for h in homes]
    devices = [d for h in homes for d in (h.cuff_id, h.meter_id)]
    gateways = [h.gateway_id for h in homes]
    problems: list[str] = []
    with psycopg.connect(conninfo) as conn:

        def one(sql: str, *params: Any) -> int:
            row = conn.execute(sql, params).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        stored = one("SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", ids)
        # a measurement stored under another id, or a value row stored twice, is a duplicate
        strangers = one(
            "SELECT count(*) FROM reading_receipts WHERE device_id = ANY(%s) AND NOT id = ANY(%s)",
            devices,
            ids,
        )
        rows = one("SELECT count(*) FROM readings WHERE device_id = ANY(%s)", devices)
        doubled_rows = one(
            "SELECT count(*) FROM (SELECT reading_id, code FROM readings"
            " WHERE device_id = ANY(%s) GROUP BY 1, 2 HAVING count(*) > 1) d",
            devices,
        )
        quarantined = one(
            "SELECT count(*) FROM quarantine WHERE gateway_id = ANY(%s) OR device_id = ANY(%s)",
            gateways,
            devices,
        )
        episodes = conn.execute(
            "SELECT e.patient_id, e.family, e.state, e.count, cardinality(e.evidence),"
            " (SELECT count(DISTINCT x) FROM unnest(e.evidence) AS x),"
            " (SELECT count(*) FROM alert_episode_events v"
            "   WHERE v.episode_id = e.id AND v.kind = 'opened'),"
            " e.late"
            " FROM alert_episodes e WHERE e.patient_id = ANY(%s)",
            (patients,),
        ).fetchall()
    wanted = {
        (h.patient_id, family): n
        for h, plan in zip(homes, plans, strict=True)
        for family, n in plan.episodes.items()
    }
    found: dict[tuple[uuid.UUID, str], list[tuple[Any, ...]]] = {}
    for row in episodes:
        found.setdefault((row[0], row[1]), []).append(row)
    opened = 0
    doubled = 0
    for key, rows_for_key in found.items():
        doubled += len(rows_for_key) - 1
        if key not in wanted:
            problems.append(f"unexpected episode {key[1]} ({len(rows_for_key)})")
            doubled += 1
            continue
        state, n, evidence, distinct, opened_events, _late = rows_for_key[0][2:]
        if len(rows_for_key) == 1 and state == "open" and opened_events == 1:
            opened += 1
        else:
            problems.append(f"{key[1]}: state {state}, opened events {opened_events}")
        if n != wanted[key] or evidence != distinct or distinct != wanted[key]:
            problems.append(
                f"{key[1]}: count {n}, evidence {evidence} ({distinct} distinct),"
                f" expected {wanted[key]}"
            )
            doubled += max(0, n - wanted[key])
    for key in wanted.keys() - found.keys():
        problems.append(f"episode {key[1]} never opened")
    rows_expected = sum(expected.values())
    return FaultRecord(
        fault=fault,
        readings_sent=len(ids),
        stored=stored,
        duplicated=strangers + doubled_rows,
        lost=len(ids) - stored,
        episodes_expected=len(wanted),
        episodes_opened=opened,
        episodes_doubled=doubled,
        quarantined=quarantined,
        rows=rows,
        rows_expected=rows_expected,
        seconds=round(seconds, 1),
        detail={
            **(detail or {}),
            "late_episodes": sum(1 for row in episodes if row[7]),
            "patients": len(homes),
        },
        problems=problems,
    )


def record(result: FaultRecord) -> None:
    """Print the figures (``pytest -s``) and merge them into the artifact file."""
    print(f"\n[fault] {result.line()}")
    if result.detail:
        print(f"[fault]   detail: {json.dumps(result.detail, sort_keys=True)}")
    for problem in result.problems:
        print(f"[fault]   problem: {problem}")
    ARTIFACTS.mkdir(exist_ok=True)
    data: dict[str, Any] = {}
    if FAULTS_FILE.exists():
        with contextlib.suppress(json.JSONDecodeError):
            data = json.loads(FAULTS_FILE.read_text(encoding="utf-8"))
    data[result.fault] = {**asdict(result), "at": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = FAULTS_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(FAULTS_FILE)


def assert_kept_promises(result: FaultRecord) -> None:
    assert result.problems == [], result.problems
    assert result.lost == 0, f"{result.lost} readings lost"
    assert result.duplicated == 0, f"{result.duplicated} readings duplicated"
    assert result.stored == result.readings_sent
    assert result.rows == result.rows_expected
    assert result.quarantined == 0
    assert result.episodes_opened == result.episodes_expected
    assert result.episodes_doubled == 0
