"""The whole path: emulated cuff and scale → bleak → gateway → Mosquitto → ingest → TimescaleDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from carebeacon.settings import Settings
from lab.emulation import (
    BloodPressureCuff,
    BloodPressureReading,
    EmulatedAir,
    PeripheralIdentity,
    WeightReading,
    WeightScale,
)
from lab.homes import gateway_running
from tests.support.broker import Login, wait_login
from tests.support.gateway import make_config
from tests.support.homes import register_home
from tests.support.waiting import eventually

pytestmark = [pytest.mark.db, pytest.mark.broker, pytest.mark.ble]

ZONE = ZoneInfo("Europe/Berlin")


def rows(conninfo: str, gateway_id: str) -> list[tuple[str, float, str, datetime, list[str]]]:
    with psycopg.connect(conninfo) as conn:
        return [
            (str(r[0]), float(r[1]), str(r[2]), r[3], list(r[4]))
            for r in conn.execute(
                "SELECT code, value, device_id, time, flags FROM readings"
                " WHERE gateway_id = %s ORDER BY time, code",
                (gateway_id,),
            )
        ]


@pytest.mark.usefixtures("ingest_running")
async def test_emulated_devices_to_timescaledb(
    tmp_path: Path,
    settings: Settings,
    database: str,
    air: EmulatedAir,
    retained_topics: set[str],
) -> None:
    home = register_home(database, broker_login=True)
    retained_topics.add(home.gateway_id)
    assert home.password is not None
    login = Login(home.gateway_id, home.password)
    await wait_login(settings, login)
    taken = datetime.now(ZONE).replace(tzinfo=None, microsecond=0) - timedelta(hours=1)
    await air.add(
        BloodPressureCuff(
            PeripheralIdentity(serial=home.cuff_id),
            readings=[BloodPressureReading(141, 92, pulse=70, time=taken)],
        )
    )
    await air.add(
        WeightScale(
            PeripheralIdentity(serial=home.scale_id),
            readings=[WeightReading(Decimal("88.4"), time=taken + timedelta(minutes=5))],
        )
    )
    config = make_config(
        tmp_path,
        login,
        settings,
        devices=[
            {"id": home.cuff_id, "type": "blood_pressure_monitor"},
            {"id": home.scale_id, "type": "weight_scale"},
        ],
    )
    async with gateway_running(config, air):
        await eventually(lambda: len(rows(database, home.gateway_id)) >= 5, within=30)
    stored = rows(database, home.gateway_id)
    assert [(code, value, device) for code, value, device, _, _ in stored] == [
        ("diastolic", 92.0, home.cuff_id),
        ("mean_arterial", 108.0, home.cuff_id),
        ("pulse", 70.0, home.cuff_id),
        ("systolic", 141.0, home.cuff_id),
        ("body_weight", 88.4, home.scale_id),
    ]
    # the naive device time was read in the gateway's zone
    assert stored[0][3] == taken.replace(tzinfo=ZONE).astimezone(UTC)
    with psycopg.connect(database) as conn:
        quarantined = conn.execute(
            "SELECT count(*) FROM quarantine WHERE gateway_id = %s", (home.gateway_id,)
        ).fetchone()
    assert quarantined is not None
    assert quarantined[0] == 0
