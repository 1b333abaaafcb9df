"""The device matrix (gateway/README.md), end to end: each row's emulated profile → bleak →
the unmodified gateway (pairing as the row needs) → Mosquitto → ingest → TimescaleDB.

Expected values are what each device encodes (lab/emulation/_matrix.py), in the canonical
units of the README (mg/dL, kg, mm[Hg]).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from carebeacon.settings import Settings
from gateway.allowlist import Bonds
from gateway.pair import pair_device
from lab.emulation import MATRIX, DeviceProfile, EmulatedAir, PairingMethod, PrivateBluez
from lab.homes import Device, HomeSpec, gateway_running, provision_home
from tests.support.broker import Login, wait_login
from tests.support.gateway import make_config
from tests.support.homes import PROGRAM, SITE
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker, pytest.mark.ble]

ZONE = ZoneInfo("Europe/Berlin")


def stored(conninfo: str, device_id: str) -> list[tuple[str, float]]:
    with psycopg.connect(conninfo) as conn:
        return [
            (str(code), float(value))
            for code, value in conn.execute(
                "SELECT code, value FROM readings WHERE device_id = %s ORDER BY time, code",
                (device_id,),
            )
        ]


@pytest.mark.usefixtures("ingest_running")
@pytest.mark.parametrize("profile", MATRIX, ids=[p.key for p in MATRIX])
async def test_device_matrix_row_end_to_end(
    profile: DeviceProfile,
    tmp_path: Path,
    settings: Settings,
    database: str,
    air: EmulatedAir,
    bluez: PrivateBluez,
    retained_topics: set[str],
) -> None:
    tag = uuid.uuid4().hex[:8]
    serial = f"MX{tag}".upper()
    gateway_id = f"gw-mx-{tag}"
    retained_topics.add(gateway_id)
    with psycopg.connect(database) as conn:
        home = provision_home(
            conn,
            HomeSpec(
                site=SITE,
                program=PROGRAM,
                enrolled_at=datetime.now(UTC) - timedelta(days=30),
                display_name=f"Matrix Patient {tag}",
                gateway_id=gateway_id,
                devices=(Device(serial, profile.type, profile.manufacturer, profile.model),),
            ),
            broker_login=True,
        )
    assert home.gateway_password is not None
    login = Login(gateway_id, home.gateway_password)
    await wait_login(settings, login)

    taken = datetime.now(ZONE).replace(tzinfo=None, second=0, microsecond=0) - timedelta(hours=1)
    device: Any = await air.add(profile.build(serial, taken))
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[{"id": serial, "address": device.address, "type": profile.type}],
    )
    if profile.needs_installer:
        assert profile.pairing is not None

        async def read_display(_address: str) -> int | None:
            await eventually(lambda: device.displayed, within=10)
            return int(device.displayed[-1])

        async def compare(_address: str, number: int) -> bool:
            await eventually(lambda: device.displayed, within=10)
            return bool(number == device.displayed[-1])

        await pair_device(
            config,
            device.address,
            prompt=read_display if profile.pairing.method is PairingMethod.PASSKEY_ENTRY else None,
            confirm=compare if profile.pairing.method is PairingMethod.NUMERIC_COMPARISON else None,
            scanner_backend=air.scanner_backend,
            client_backend=air.client_backend,
        )

    codes = {code for values in profile.expected for code in values}
    wanted = sum(len(values) for values in profile.expected)
    async with gateway_running(config, air):
        await eventually(
            lambda: len([row for row in stored(database, serial) if row[0] in codes]) >= wanted,
            within=30,
        )
    rows = [row for row in stored(database, serial) if row[0] in codes]
    expected = sorted(
        (code, float(value)) for values in profile.expected for code, value in values.items()
    )
    assert sorted(rows) == expected
    if profile.pairing is None:
        assert Bonds(config.state_dir).bonded() == {}
    else:
        assert Bonds(config.state_dir).is_bonded(device.address)
        assert await device.bonded_peers() != []
