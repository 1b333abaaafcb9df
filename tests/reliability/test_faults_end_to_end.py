"""Faults end to end, checked by counting: emulated devices → real gateways → Mosquitto →
``carebeacon ingest`` → TimescaleDB → alerts (rig and counting: ``tests/support/end_to_end.py``).

Each run streams a known set of readings from several homes (a BP cuff and a glucose meter
each; home 0 has a hypertensive crisis confirmed by its re-measure, home 1 two low glucose
results) while one fault strikes:

* ingest SIGKILLed again and again mid-stream;
* Mosquitto (private, persistent) restarted twice mid-stream;
* TimescaleDB unreachable (a cut TCP proxy) for 10 s — 60 s in the ``slow`` run;
* TimescaleDB restarted twice mid-stream, once as a crash (``immediate``: WAL recovery) and
  once cleanly (``fast``) — a private cluster from the project's trixie root, so the shared one
  on 55432 is never restarted;
* six gateways offline for a simulated week (7 days of readings in their outboxes, the last
  hours still on the devices) coming back at once and draining thousands of readings.

Result each time: every reading stored exactly once (receipts and value rows counted by reading
id), each expected episode opened exactly once with exactly its readings as evidence, no other
episode, nothing quarantined. The figures are printed (``pytest -s``) and merged into
``test-artifacts/reliability-faults.json``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.canonical import CanonicalReading, DeviceIdentity, canonical_reading
from gateway import Outbox
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    GlucoseMeter,
    GlucoseReading,
    PeripheralIdentity,
)
from tests.support.broker import PrivateBroker
from tests.support.end_to_end import (
    CRISIS,
    FaultRecord,
    Fleet,
    HomeIds,
    HomePlan,
    IngestProcess,
    PgTarget,
    assert_kept_promises,
    fleet_broker,
    new_homes,
    record,
    register_homes,
    stored_count,
    stored_for,
    stream_plans,
    tally,
    wait_until,
)
from tests.support.network import Proxy, free_port
from tests.support.timescale import PrivateTimescale, private_timescale

pytestmark = [pytest.mark.db, pytest.mark.broker, pytest.mark.ble, pytest.mark.timeout(240)]

HOMES = 4
BP_READINGS = 80  # per home
GLUCOSE_READINGS = 30  # per home
STREAM_SECONDS = 18.0


@dataclass
class Run:
    """What a fault can act on while the stream runs."""

    conninfo: str
    homes: list[HomeIds]
    ingest: IngestProcess
    broker: PrivateBroker
    streaming: asyncio.Event
    total: int

    async def stored(self) -> int:
        return await asyncio.to_thread(stored_for, self.conninfo, self.homes)

    async def metric(self, name: str) -> float:
        return (await asyncio.to_thread(self.ingest.metrics)).get(name, 0.0)


Fault = Callable[[Run], Coroutine[Any, Any, dict[str, Any]]]


def progressed(run: Run, since: int) -> bool:
    return stored_for(run.conninfo, run.homes) > since


async def scenario(
    name: str,
    tmp_path: Path,
    conninfo: str,
    fault: Fault,
    *,
    ingest_pg: PgTarget | None = None,
    stream_seconds: float = STREAM_SECONDS,
    within: float = 120.0,
) -> tuple[FaultRecord, dict[str, Any]]:
    """Register the homes, start broker, ingest and gateways, stream while ``fault`` strikes,
    wait until everything is stored (or ``within`` runs out), count."""
    homes = new_homes(HOMES)
    plans = stream_plans(HOMES, bp=BP_READINGS, glucose=GLUCOSE_READINGS)
    await asyncio.to_thread(register_homes, conninfo, homes)
    broker = fleet_broker(homes)
    broker.start()
    ingest = IngestProcess(
        ingest_pg or PgTarget.from_conninfo(conninfo), broker.port, tmp_path / "ingest.log"
    )
    started = time.monotonic()
    detail: dict[str, Any] = {}
    exit_code = 0
    try:
        await ingest.start_connected()
        fleet = Fleet(homes, plans, broker.port, tmp_path)
        async with fleet.running():
            run = Run(
                conninfo, homes, ingest, broker, asyncio.Event(), sum(p.readings for p in plans)
            )

            async def stream() -> None:
                run.streaming.set()
                try:
                    await fleet.stream(stream_seconds)
                finally:
                    run.streaming.clear()

            async with asyncio.TaskGroup() as tg:
                tg.create_task(stream())
                faulted = tg.create_task(fault(run))
            detail = faulted.result()
            expected = fleet.expected()
            complete = await wait_until(
                lambda: stored_count(conninfo, expected) >= len(expected), within
            )
            await asyncio.sleep(2.0)  # a late redelivery must still not double anything
            detail["complete_after_s"] = round(time.monotonic() - started, 1)
            detail["all_stored_in_time"] = complete
            detail["gateway_outbox_depths"] = fleet.outbox_depths()
        detail["duplicates_seen_by_last_ingest"] = int(
            await run.metric("carebeacon_ingest_readings_duplicate_total")
        )
        detail["ingest_starts"] = ingest.starts
        exit_code = await asyncio.to_thread(ingest.stop)  # the loop runs the proxies
    finally:
        if ingest.alive():
            await asyncio.to_thread(ingest.stop)
        broker.remove()
    result = await asyncio.to_thread(
        tally, conninfo, name, homes, plans, expected, time.monotonic() - started, detail
    )
    record(result)
    assert_kept_promises(result)
    assert detail["gateway_outbox_depths"] == [0] * HOMES
    assert exit_code == 0
    assert ingest.log_problems() == []
    return result, detail


# --------------------------------------------------------------------------- (a) ingest SIGKILL


async def test_ingest_killed_again_and_again(tmp_path: Path, database: str) -> None:
    kills = 4

    async def fault(run: Run) -> dict[str, Any]:
        at_kill: list[int] = []
        in_flight: list[int] = []
        while_streaming: list[bool] = []
        duplicates = 0
        for _ in range(kills):
            before = await run.stored()
            await asyncio.sleep(0.5)
            # kill it while it works: something stored since it (re)started, and messages
            # received but not yet committed and acknowledged, if we can catch that moment
            assert await wait_until(functools.partial(progressed, run, before), 20)
            deadline = time.monotonic() + 3.0
            while True:
                metrics = await asyncio.to_thread(run.ingest.metrics)
                pending = int(metrics.get("carebeacon_ingest_pending_messages", 0))
                if pending or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.005)
            run.ingest.kill()
            duplicates += int(metrics.get("carebeacon_ingest_readings_duplicate_total", 0))
            in_flight.append(pending)
            at_kill.append(await run.stored())
            while_streaming.append(run.streaming.is_set())
            await asyncio.sleep(0.3)
            await run.ingest.start_connected()
        return {
            "kills": kills,
            "stored_at_kills": at_kill,
            "unacknowledged_messages_at_kills": in_flight,
            "duplicates_seen_by_killed_ingests": duplicates,
            "streaming_at_kills": while_streaming,
        }

    _, detail = await scenario("ingest SIGKILL x4", tmp_path, database, fault, stream_seconds=24.0)
    assert detail["streaming_at_kills"] == [True] * kills  # the kills really were mid-stream
    assert all(n > 0 for n in detail["stored_at_kills"])
    assert sum(detail["unacknowledged_messages_at_kills"]) > 0  # some kills caught work in flight


# --------------------------------------------------------------------------- (b) broker restart


async def test_broker_restarted_mid_stream(tmp_path: Path, database: str) -> None:
    async def fault(run: Run) -> dict[str, Any]:
        at_restart: list[int] = []
        while_streaming: list[bool] = []
        for _ in range(2):
            await asyncio.sleep(5.0)
            at_restart.append(await run.stored())
            while_streaming.append(run.streaming.is_set())
            await asyncio.to_thread(run.broker.stop)  # graceful: persistence written
            await asyncio.sleep(2.0)
            await asyncio.to_thread(run.broker.start)
        return {
            "restarts": 2,
            "down_seconds": 2.0,
            "stored_at_restarts": at_restart,
            "streaming_at_restarts": while_streaming,
        }

    _, detail = await scenario("mosquitto restarted x2", tmp_path, database, fault)
    assert detail["streaming_at_restarts"] == [True, True]


# --------------------------------------------------------------------------- (c) TimescaleDB


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(10.0, id="10s"),
        pytest.param(60.0, id="60s", marks=[pytest.mark.slow, pytest.mark.timeout(400)]),
    ],
)
async def test_timescaledb_unreachable(tmp_path: Path, database: str, outage: float) -> None:
    target = PgTarget.from_conninfo(database)
    proxy = Proxy(target.host, target.port)
    await proxy.start()
    via_proxy = PgTarget(target.host, proxy.port, target.user, target.password, target.database)

    async def fault(run: Run) -> dict[str, Any]:
        await asyncio.sleep(4.0)
        errors = await run.metric("carebeacon_ingest_database_errors_total")
        cpu = run.ingest.cpu_seconds()
        streaming = run.streaming.is_set()
        await proxy.cut()
        await asyncio.sleep(1.0)  # a commit in flight at the cut may still land
        frozen = await run.stored()
        await asyncio.sleep(outage - 1.0)
        during = await run.stored() - frozen
        errors = await run.metric("carebeacon_ingest_database_errors_total") - errors
        cpu = run.ingest.cpu_seconds() - cpu
        await proxy.start()  # back on the same port
        return {
            "outage_seconds": outage,
            "streaming_at_cut": streaming,
            "stored_during_outage": during,
            "database_errors_during_outage": int(errors),
            "ingest_cpu_seconds_during_outage": round(cpu, 2),
        }

    try:
        _, detail = await scenario(
            f"timescaledb unreachable {outage:.0f}s",
            tmp_path,
            database,
            fault,
            ingest_pg=via_proxy,
            within=120.0 + outage,
        )
    finally:
        await proxy.cut()
    assert detail["streaming_at_cut"]
    assert detail["stored_during_outage"] == 0
    # capped exponential backoff: a handful of attempts, not a spin
    assert 1 <= detail["database_errors_during_outage"] <= 12 + outage / 30
    assert detail["ingest_cpu_seconds_during_outage"] < 0.25 * outage


@pytest.fixture
def cluster() -> Any:
    # needs the trixie root that `carebeacon services up` (a prerequisite of `make pytest`) builds:
    # without it the test fails rather than skipping silently
    with private_timescale() as c:
        yield c


async def test_timescaledb_restarted_mid_stream(tmp_path: Path, cluster: PrivateTimescale) -> None:
    conninfo = await asyncio.to_thread(cluster.create_database, "carebeacon_faults")

    async def fault(run: Run) -> dict[str, Any]:
        at_restart: list[int] = []
        while_streaming: list[bool] = []
        downtime: list[float] = []
        for mode in ("immediate", "fast"):
            await asyncio.sleep(5.0)
            at_restart.append(await run.stored())
            while_streaming.append(run.streaming.is_set())
            began = time.monotonic()
            await asyncio.to_thread(cluster.restart, mode=mode, down_seconds=1.0)
            downtime.append(round(time.monotonic() - began, 2))
        return {
            "restarts": ["immediate (crash, WAL recovery)", "fast (clean)"],
            "stored_at_restarts": at_restart,
            "streaming_at_restarts": while_streaming,
            "downtime_seconds": downtime,
        }

    _, detail = await scenario("timescaledb restarted x2", tmp_path, conninfo, fault)
    assert detail["streaming_at_restarts"] == [True, True]


# --------------------------------------------------------------------------- (d) a week offline

WEEK_HOMES = 6
WEEK_DAYS = 7
BP_EVERY = timedelta(minutes=30)
GLUCOSE_EVERY = timedelta(hours=2)
ON_DEVICE = timedelta(hours=6)  # the newest readings are still on the devices


def week_of_readings(
    home: HomeIds, index: int, now: datetime
) -> tuple[list[CanonicalReading], HomePlan]:
    """What a gateway collected while its uplink was down for a week (received over the
    week, each a couple of minutes after it was measured), and the plan of what is still on the
    devices. Home 0: a confirmed hypertensive crisis three days ago (late data: the episode
    opens, marked late); home 1: two low glucose results in the last hours (fresh)."""
    start = now - timedelta(days=WEEK_DAYS)
    cutoff = now - ON_DEVICE
    cuff = BloodPressureCuff(PeripheralIdentity(serial=home.cuff_id))
    bp_id = DeviceIdentity(home.cuff_id, "blood_pressure_monitor", "CareBeacon Emulated")
    gm_id = DeviceIdentity(home.meter_id, "glucose_meter", "CareBeacon Emulated")
    crisis_at = now - timedelta(days=3)
    seeded: list[CanonicalReading] = []
    on_device_bp: list[BloodPressureReading] = []
    at, i = start, 0
    while at < now:
        reading = BloodPressureReading(112 + i % 17, 70 + i % 9, pulse=62 + i % 11, time=at)
        if index == 0 and crisis_at <= at < crisis_at + 2 * BP_EVERY:
            high = CRISIS[0] if at < crisis_at + BP_EVERY else CRISIS[1]
            reading = BloodPressureReading(high.systolic, high.diastolic, pulse=high.pulse, time=at)
        if at < cutoff:
            packet = cuff.encode_reading(reading, 0)
            received = (at + timedelta(minutes=2)).replace(tzinfo=UTC)
            seeded.append(canonical_reading("2a35", packet, bp_id, received))
        else:
            on_device_bp.append(reading)
        at, i = at + BP_EVERY, i + 1
    seeded_glucose: list[GlucoseReading] = []
    on_device_glucose: list[GlucoseReading] = []
    at, i = start, 0
    while at < now:
        sequence = i + 1  # the meter numbers its records; the gateway reads them by number
        if at < cutoff:
            seeded_glucose.append(GlucoseReading(95 + (i * 7) % 45, time=at, sequence=sequence))
        else:
            low = index == 1 and len(on_device_glucose) < 2
            value = (52, 61)[len(on_device_glucose)] if low else 95 + (i * 7) % 45
            on_device_glucose.append(GlucoseReading(value, time=at, sequence=sequence))
        at, i = at + GLUCOSE_EVERY, i + 1
    for rec in GlucoseMeter(
        PeripheralIdentity(serial=home.meter_id), records=seeded_glucose
    ).records:
        assert rec.time is not None
        received = (rec.time + timedelta(minutes=2)).replace(tzinfo=UTC)
        seeded.append(canonical_reading("2a18", rec.measurement, gm_id, received))
    episodes = {0: {"bp_crisis": 2}, 1: {"glucose_low": 2}}.get(index, {})
    plan = HomePlan(
        tuple(on_device_bp),
        tuple(on_device_glucose),
        bp_backlog=len(on_device_bp),
        glucose_backlog=len(on_device_glucose),
        episodes=episodes,
    )
    return seeded, plan


async def test_gateways_offline_for_a_week_drain_at_once(tmp_path: Path, database: str) -> None:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    homes = new_homes(WEEK_HOMES)
    weeks = [week_of_readings(home, i, now) for i, home in enumerate(homes)]
    plans = [plan for _, plan in weeks]
    await asyncio.to_thread(register_homes, database, homes)
    seeded = 0
    for home, (readings, _) in zip(homes, weeks, strict=True):
        box = Outbox(tmp_path / home.gateway_id / "gateway.sqlite3", max_readings=100_000)
        seeded += box.add(readings)
        box.close()
    on_devices = sum(p.readings for p in plans)
    broker = fleet_broker(homes)
    broker.start()
    uplink = Proxy("127.0.0.1", broker.port)  # the homes' internet: down until the test says
    uplink.port = free_port()
    ingest = IngestProcess(PgTarget.from_conninfo(database), broker.port, tmp_path / "ingest.log")
    started = time.monotonic()
    detail: dict[str, Any] = {"seeded_in_outboxes": seeded, "read_from_devices_offline": on_devices}
    try:
        await ingest.start_connected()
        fleet = Fleet(homes, plans, uplink.port, tmp_path)
        async with fleet.running():
            # offline, the gateways still read their devices into the outbox
            full = seeded + on_devices
            assert await wait_until(lambda: sum(fleet.outbox_depths()) == full, 60)
            detail["outbox_depths_before"] = fleet.outbox_depths()
            expected = fleet.expected()
            for readings, _ in weeks:
                expected.update({r.id: len(r.values) for r in readings})
            back = time.monotonic()
            await uplink.start()  # the uplink returns: every gateway drains at once
            complete = await wait_until(
                lambda: stored_count(database, expected) >= len(expected), 120
            )
            drained = time.monotonic() - back
            detail["all_stored_in_time"] = complete
            detail["drain_seconds"] = round(drained, 1)
            detail["drain_readings_per_s"] = round(len(expected) / drained)
            await asyncio.sleep(2.0)
            detail["gateway_outbox_depths"] = fleet.outbox_depths()
        exit_code = await asyncio.to_thread(ingest.stop)  # the loop runs the proxies
    finally:
        if ingest.alive():
            await asyncio.to_thread(ingest.stop)
        await uplink.cut()
        broker.remove()
    result = await asyncio.to_thread(
        tally,
        database,
        f"gateways offline {WEEK_DAYS} days",
        homes,
        plans,
        expected,
        time.monotonic() - started,
        detail,
    )
    record(result)
    assert_kept_promises(result)
    assert result.readings_sent >= 2000  # thousands at once
    assert result.detail["late_episodes"] == 1  # the crisis of three days ago: late data
    assert detail["gateway_outbox_depths"] == [0] * WEEK_HOMES
    assert exit_code == 0
    assert ingest.log_problems() == []
