"""The gateway end to end: emulated devices → bleak (bumble backend) → gateway → Mosquitto.

The gateway code runs unmodified: the emulated bleak backends are passed to ``run()``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carebeacon.settings import Settings
from gateway import address_identity
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    EmulatedAir,
    Faults,
    GlucoseMeter,
    GlucoseReading,
    MiScale,
    MiScaleModel,
    MiScaleReading,
    PeripheralIdentity,
    WeightReading,
    WeightScale,
)
from lab.homes import gateway_running
from tests.support.broker import Login, Watcher, watching
from tests.support.gateway import make_config, read_state
from tests.support.waiting import eventually

pytestmark = [pytest.mark.ble, pytest.mark.broker]

ZONE = ZoneInfo("Europe/Berlin")  # the zone of the test configs: device clocks are set to it
NOW = datetime.now(ZONE).replace(tzinfo=None, microsecond=0)


def values(reading: dict[str, Any]) -> dict[str, float]:
    return {v["code"]: v["value"] for v in reading["values"]}


def no_doubles(watcher: Watcher) -> None:
    assert len(watcher.reading_ids) == len(set(watcher.reading_ids)), "a reading was sent twice"


def latest_online(watcher: Watcher) -> dict[str, Any]:
    online = [s for s in watcher.statuses if s.get("state") == "online"]
    return online[-1] if online else {"devices": [], "unknown_devices": 0}


async def test_blood_pressure_cuff_found_by_its_dis_serial(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-0001", manufacturer="Acme", model="UA-1"),
            readings=[
                BloodPressureReading(138, 88, pulse=61, time=NOW - timedelta(hours=2)),
                BloodPressureReading(121, 79, pulse=58, time=NOW - timedelta(hours=1)),
            ],
            battery_level=64,
            clock=NOW - timedelta(minutes=3),
        )
    )
    config = make_config(
        tmp_path, login, settings, devices=[{"id": "BP-0001", "type": "blood_pressure_monitor"}]
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 2)
        await watcher.wait_for(
            lambda: any(d.get("battery_percent") == 64 for d in latest_online(watcher)["devices"])
        )
    no_doubles(watcher)
    first, second = watcher.readings
    assert first["type"] == "blood_pressure"
    assert first["device"] == {
        "id": "BP-0001",
        "type": "blood_pressure_monitor",
        "manufacturer": "Acme",
        "model": "UA-1",
    }
    assert values(first) == {
        "systolic": 138.0,
        "diastolic": 88.0,
        "mean_arterial": 105.0,
        "pulse": 61.0,
    }
    assert values(second)["systolic"] == 121.0
    assert first["measured_at"] == (NOW - timedelta(hours=2)).isoformat()
    assert watcher.batches[0]["timezone"] == "Europe/Berlin"
    device = latest_online(watcher)["devices"][0]
    assert device["id"] == "BP-0001"
    assert device["last_reading_at"] is not None
    # 3 minutes slow when the module was imported (NOW), and the device clock ticks from then
    late = (datetime.now(ZONE).replace(tzinfo=None) - NOW).total_seconds()
    assert -200 - late < device["clock_drift_seconds"] < -170
    assert cuff.clock_writes, "the gateway sets a writable clock"
    assert cuff.stored == []


async def test_weight_and_body_composition_scales(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    scale = await air.add(
        WeightScale(
            PeripheralIdentity(serial="WS-1"), readings=[WeightReading(Decimal("81.35"), time=NOW)]
        )
    )
    composition = await air.add(
        WeightScale(
            PeripheralIdentity(serial="BCS-1"),
            body_composition=True,
            readings=[WeightReading(Decimal("70.2"), time=NOW, body_fat_percent=Decimal("21.5"))],
        )
    )
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[
            {"address": scale.address, "type": "weight_scale"},
            {"address": composition.address, "type": "body_composition_scale"},
        ],
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(
            lambda: (
                {r["device"]["id"] for r in watcher.readings} == {"WS-1", "BCS-1"}
                and any(r["type"] == "body_composition" for r in watcher.readings)
            )
        )
    no_doubles(watcher)
    by_device: dict[str, list[dict[str, Any]]] = {}
    for reading in watcher.readings:
        by_device.setdefault(reading["device"]["id"], []).append(reading)
    assert [values(r)["body_weight"] for r in by_device["WS-1"]] == [81.35]
    assert by_device["WS-1"][0]["device"]["type"] == "weight_scale"
    kinds = {r["type"] for r in by_device["BCS-1"]}
    assert "body_composition" in kinds
    assert all(r["device"]["type"] == "body_composition_scale" for r in by_device["BCS-1"])
    fat = [values(r).get("body_fat") for r in by_device["BCS-1"] if r["type"] == "body_composition"]
    assert fat == [21.5]


async def test_mi_scales_from_adverts_only_stable_weighings(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    v1 = await air.add(
        MiScale(
            PeripheralIdentity(serial="MI-1"),
            reading=MiScaleReading(Decimal("72.5"), stabilized=False, time=NOW),
        )
    )
    v2 = await air.add(
        MiScale(
            PeripheralIdentity(serial="MI-2"),
            model=MiScaleModel.BODY_COMPOSITION_SCALE_2,
            reading=MiScaleReading(Decimal("64.2"), time=NOW),
        )
    )
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[
            {"id": address_identity(v1.address), "type": "weight_scale"},
            {"address": v2.address, "type": "body_composition_scale"},
        ],
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await eventually(lambda: len(watcher.statuses) >= 1)
        await v1.step_on(MiScaleReading(Decimal("72.6"), time=NOW))
        await v2.step_on(MiScaleReading(Decimal("64.2"), impedance=480, time=NOW))
        await watcher.wait_for(lambda: len(watcher.readings) >= 2)
        await v1.step_on(MiScaleReading(Decimal("72.6"), removed=True, time=NOW))
        await v2.step_on(MiScaleReading(Decimal("64.2"), impedance=480, removed=True, time=NOW))
        await asyncio.sleep(1.0)  # adverts of the same weighing keep coming
    no_doubles(watcher)
    assert len(watcher.readings) == 2
    by_id = {r["device"]["id"]: r for r in watcher.readings}
    assert values(by_id[address_identity(v1.address)]) == {"body_weight": 72.6}
    assert by_id[address_identity(v1.address)]["device"]["manufacturer"] == "Xiaomi"
    assert values(by_id[address_identity(v2.address)]) == {"body_weight": 64.2, "impedance": 480.0}
    assert by_id[address_identity(v2.address)]["type"] == "body_composition"


def glucose(start: int, count: int) -> list[GlucoseReading]:
    return [
        GlucoseReading(90 + i, time=NOW - timedelta(days=30) + timedelta(hours=i))
        for i in range(start, start + count)
    ]


def report_from(sequence: int) -> bytes:
    """RACP "report stored records, sequence ≥ n"."""
    return bytes([0x01, 0x03, 0x01]) + sequence.to_bytes(2, "little")


async def test_glucose_incremental_across_three_sessions(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    meter = await air.add(GlucoseMeter(PeripheralIdentity(serial="GM-1"), records=glucose(0, 5)))
    config = make_config(
        tmp_path, login, settings, devices=[{"address": meter.address, "type": "glucose_meter"}]
    )
    async with watching(settings, login.gateway_id) as watcher:
        async with gateway_running(config, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 5)
        for record in glucose(5, 3):
            await meter.measure(record)
        async with gateway_running(config, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 8)
        assert report_from(6) in meter.racp_requests
        for record in glucose(8, 4):
            await meter.measure(record)
        async with gateway_running(config, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 12)
        assert report_from(9) in meter.racp_requests
    no_doubles(watcher)
    assert [r["sequence"] for r in watcher.readings] == list(range(1, 13))
    assert [values(r)["glucose"] for r in watcher.readings] == [90.0 + i for i in range(12)]
    # only the first session asked for everything
    assert meter.racp_requests.count(bytes([0x01, 0x01])) == 1
    state = read_state(config)
    device = state.device("GM-1")
    assert device is not None
    assert (device.last_sequence, device.record_count) == (12, 12)
    state.close()


async def test_glucose_meter_whose_sequence_restarts(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    meter = await air.add(GlucoseMeter(PeripheralIdentity(serial="GM-2"), records=glucose(0, 6)))
    config = make_config(
        tmp_path, login, settings, devices=[{"address": meter.address, "type": "glucose_meter"}]
    )
    async with watching(settings, login.gateway_id) as watcher:
        async with gateway_running(config, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 6)
        meter.restart_sequence()  # a meter reset: numbering starts at 1 again
        for record in glucose(6, 3):
            await meter.measure(record)
        async with gateway_running(config, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 9)
            await eventually(lambda: meter.racp_requests.count(bytes([0x01, 0x01])) == 2)
    no_doubles(watcher)
    assert [r["sequence"] for r in watcher.readings] == [1, 2, 3, 4, 5, 6, 1, 2, 3]
    assert [values(r)["glucose"] for r in watcher.readings][-3:] == [96.0, 97.0, 98.0]


async def test_glucose_connection_dropped_mid_transfer_resumes(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    meter = await air.add(GlucoseMeter(PeripheralIdentity(serial="GM-3"), records=glucose(0, 3)))
    config = make_config(
        tmp_path, login, settings, devices=[{"address": meter.address, "type": "glucose_meter"}]
    )
    async with watching(settings, login.gateway_id) as watcher:
        async with gateway_running(config, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 3)
        meter.faults = Faults(drop_after_records=4, drop_connections=meter.connection_count + 1)
        for record in glucose(3, 10):
            await meter.measure(record)
        async with gateway_running(config, air):
            await watcher.wait_for(lambda: len(watcher.readings) >= 13)
    no_doubles(watcher)
    assert [r["sequence"] for r in watcher.readings] == list(range(1, 14))
    assert report_from(4) in meter.racp_requests  # the session that was cut
    assert report_from(8) in meter.racp_requests  # resumed after the 4 records it got
    assert meter.racp_requests.count(bytes([0x01, 0x01])) == 1


async def test_unknown_devices_are_counted_never_read(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    stranger = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="NEIGHBOUR-1"), readings=[BloodPressureReading(150, 95)]
        )
    )
    stranger_meter = await air.add(
        GlucoseMeter(PeripheralIdentity(serial="NEIGHBOUR-2"), records=glucose(0, 2))
    )
    ours = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="OURS-1"), readings=[BloodPressureReading(120, 80)]
        )
    )
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[
            {"address": ours.address, "type": "blood_pressure_monitor"},
            # known by its DIS serial only: cuffs nearby may be asked who they are, once
            {"id": "OURS-2", "type": "blood_pressure_monitor"},
        ],
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 1)
        await watcher.wait_for(lambda: latest_online(watcher)["unknown_devices"] >= 2)
        await asyncio.sleep(1.5)  # give the gateway every chance to misbehave
    assert {r["device"]["id"] for r in watcher.readings} == {"OURS-1"}
    assert stranger_meter.connection_count == 0
    assert stranger.connection_count <= 1  # one identity probe, nothing subscribed
    assert len(stranger.stored) == 1  # its reading is still on the cuff
    assert stranger_meter.racp_requests == []


async def test_clock_reset_cuff_is_flagged_and_its_clock_set(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-RESET"),
            readings=[BloodPressureReading(142, 91), BloodPressureReading(139, 90)],
            faults=Faults(clock_reset=True),
        )
    )
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[{"address": cuff.address, "type": "blood_pressure_monitor"}],
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 2)
        await watcher.wait_for(lambda: bool(latest_online(watcher)["devices"]))
    no_doubles(watcher)
    for reading in watcher.readings:
        assert "device_clock_reset" in reading["flags"]
        assert reading["measured_at"].startswith("2000-01-01")
    drift = latest_online(watcher)["devices"][0]["clock_drift_seconds"]
    assert drift < -365 * 24 * 3600  # the cuff thought it was 2000
    assert cuff.clock_writes
    assert abs((cuff.clock.now() - datetime.now(ZONE).replace(tzinfo=None)).total_seconds()) < 60


async def test_cuff_that_accepts_connections_only_briefly_after_measuring(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-WINDOW"),
            faults=Faults(connect_window=1.5, duplicate_records=True),
            current_time_writable=False,
            clock=datetime.now(ZONE).replace(tzinfo=None) + timedelta(seconds=40),
        )
    )
    assert not cuff.is_advertising
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[{"address": cuff.address, "type": "blood_pressure_monitor"}],
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await eventually(lambda: len(watcher.statuses) >= 1)
        await cuff.measure(BloodPressureReading(133, 84, pulse=66))
        await watcher.wait_for(lambda: len(watcher.readings) >= 1)
        await asyncio.sleep(2.0)  # the window closes; the cuff is silent
        await cuff.measure(BloodPressureReading(129, 83, pulse=64))
        await watcher.wait_for(lambda: len(watcher.readings) >= 2)
        await watcher.wait_for(lambda: bool(latest_online(watcher)["devices"]))
    no_doubles(watcher)  # every record was indicated twice (duplicate_records)
    assert [values(r)["systolic"] for r in watcher.readings] == [133.0, 129.0]
    assert cuff.clock_writes == []  # not writable: only the drift is recorded
    drift = latest_online(watcher)["devices"][0]["clock_drift_seconds"]
    assert 35 < drift < 45


async def test_allowlist_pushed_by_the_server_is_followed(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    from tests.support.broker import publish_as_admin

    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="BP-PUSHED"), readings=[BloodPressureReading(126, 81)]
        )
    )
    config = make_config(tmp_path, login, settings, devices=[])
    topic = f"carebeacon/v1/gateways/{login.gateway_id}/config"
    try:
        async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
            await watcher.wait_for(lambda: latest_online(watcher)["unknown_devices"] >= 1)
            assert cuff.connection_count == 0
            await publish_as_admin(
                settings,
                topic,
                b'{"schema": "carebeacon.gateway-config/1", "devices":'
                b' [{"id": "BP-PUSHED", "type": "blood_pressure_monitor"}]}',
            )
            await watcher.wait_for(lambda: len(watcher.readings) >= 1)
        assert watcher.readings[0]["device"]["id"] == "BP-PUSHED"
    finally:
        await publish_as_admin(settings, topic, b"")
