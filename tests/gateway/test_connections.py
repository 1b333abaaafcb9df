"""Connection handling: one attempt at a time per adapter, the scanner filter, the adapter
setting, vendor-only advertisers on the allowlist."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from carebeacon.settings import Settings
from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.service import run
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    BumbleClient,
    EmulatedAir,
    PeripheralIdentity,
    VendorOnlyCuff,
    WeightReading,
    WeightScale,
)
from lab.emulation._matrix import OMRON_COMPANY_ID
from lab.homes import gateway_running
from tests.support.broker import Login, Watcher, watching
from tests.support.gateway import make_config, write_config

pytestmark = [pytest.mark.ble, pytest.mark.broker]

ZONE = ZoneInfo("Europe/Berlin")
NOW = datetime.now(ZONE).replace(tzinfo=None, microsecond=0)


def latest_online(watcher: Watcher) -> dict[str, Any]:
    online = [s for s in watcher.statuses if s.get("state") == "online"]
    return online[-1] if online else {"devices": [], "unknown_devices": 0}


def with_ble(path: Path, *lines: str) -> Path:
    """Add settings to the ``[ble]`` table of a test config file."""
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[ble]\n", "[ble]\n" + "".join(f"{x}\n" for x in lines)))
    return path


class CountingClient(BumbleClient):
    """The emulated client, counting connection attempts in progress (connect → discovery)."""

    running: ClassVar[int] = 0
    most: ClassVar[int] = 0
    attempts: ClassVar[int] = 0

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        cls = type(self)
        cls.attempts += 1
        cls.running += 1
        cls.most = max(cls.most, cls.running)
        try:
            await asyncio.sleep(0.05)  # a second attempt would start now if nothing stopped it
            await super().connect(pair, **kwargs)
        finally:
            cls.running -= 1


def counting_backend(air: EmulatedAir) -> type[CountingClient]:
    class Counting(CountingClient):
        pass

    Counting.air = air
    return Counting


async def test_two_devices_at_the_same_moment_connect_one_after_the_other(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    cuff = await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="SIM-B1"),
            readings=[BloodPressureReading(133, 85, pulse=70, time=NOW)],
        )
    )
    scale = await air.add(
        WeightScale(PeripheralIdentity(serial="SIM-W1"), readings=[WeightReading(80, time=NOW)])
    )
    config = load_config(
        with_ble(
            write_config(
                tmp_path,
                login,
                settings,
                devices=[
                    {"id": "SIM-B1", "type": "blood_pressure_monitor"},
                    {"id": "SIM-W1", "type": "weight_scale"},
                ],
            ),
            'adapter = "hci0"',
        ),
        environ={},
    )
    assert config.ble.adapter == "hci0"
    backend = counting_backend(air)
    stop = asyncio.Event()
    async with watching(settings, login.gateway_id) as watcher:
        task = asyncio.create_task(
            run(config, scanner_backend=air.scanner_backend, client_backend=backend, stop=stop)
        )
        try:
            await watcher.wait_for(lambda: len(watcher.readings) >= 2)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert sorted(r["device"]["id"] for r in watcher.readings) == ["SIM-B1", "SIM-W1"]
    assert backend.attempts >= 2
    assert backend.most == 1, "two connection attempts overlapped on one adapter"
    assert cuff.connection_count >= 1
    assert scale.connection_count >= 1


async def test_vendor_only_advertiser_on_the_allowlist_is_read_and_others_are_not(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    ours = await air.add(
        VendorOnlyCuff(
            PeripheralIdentity(
                serial="VO-B1",
                local_name="BLESmart_0000021F00000000AB01",
                manufacturer_data={OMRON_COMPANY_ID: b"\x01\x00"},
            ),
            readings=[BloodPressureReading(147, 93, pulse=66, time=NOW)],
        )
    )
    neighbour = await air.add(
        VendorOnlyCuff(
            PeripheralIdentity(serial="VO-B2", manufacturer_data={OMRON_COMPANY_ID: b"\x01\x00"}),
            readings=[BloodPressureReading(111, 71, pulse=61, time=NOW)],
        )
    )
    assert ours.advertised_service_uuids == ()
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[{"address": ours.address, "type": "blood_pressure_monitor"}],
    )
    async with watching(settings, login.gateway_id) as watcher, gateway_running(config, air):
        await watcher.wait_for(lambda: len(watcher.readings) >= 1)
        await watcher.wait_for(lambda: bool(latest_online(watcher)["devices"]))
    (reading,) = watcher.readings
    assert reading["device"]["id"] == "VO-B1"
    assert {v["code"]: v["value"] for v in reading["values"]}["systolic"] == 147.0
    # not a health advertiser and not ours: neither connected to nor counted
    assert neighbour.connection_count == 0
    assert latest_online(watcher)["unknown_devices"] == 0


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ('adapter = "usb0"', "ble.adapter"),
        ("adapter = 0", "adapter"),
        ('pause_scan_while_connecting = "yes"', "pause_scan_while_connecting"),
    ],
)
def test_adapter_settings_are_checked(
    tmp_path: Path, settings: Settings, login: Login, setting: str, problem: str
) -> None:
    path = with_ble(write_config(tmp_path, login, settings), setting)
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert refused.value.field == problem


async def test_scanning_pauses_around_each_attempt_when_the_adapter_needs_it(
    tmp_path: Path, settings: Settings, login: Login, air: EmulatedAir
) -> None:
    await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial="PS-B1"),
            readings=[BloodPressureReading(129, 83, pulse=62, time=NOW)],
        )
    )
    config = load_config(
        with_ble(
            write_config(
                tmp_path,
                login,
                settings,
                devices=[{"id": "PS-B1", "type": "blood_pressure_monitor"}],
            ),
            "pause_scan_while_connecting = true",
        ),
        environ={},
    )
    scanning_during_connect: list[bool] = []

    class Observing(BumbleClient):
        async def connect(self, pair: bool, **kwargs: Any) -> None:
            scanning_during_connect.append(air.is_scanning)
            await super().connect(pair, **kwargs)

    Observing.air = air
    stop = asyncio.Event()
    async with watching(settings, login.gateway_id) as watcher:
        task = asyncio.create_task(
            run(config, scanner_backend=air.scanner_backend, client_backend=Observing, stop=stop)
        )
        try:
            await watcher.wait_for(lambda: len(watcher.readings) >= 1)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert scanning_during_connect
    assert not any(scanning_during_connect), "the scanner ran during a connection attempt"
