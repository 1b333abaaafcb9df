"""The gateway process killed between publish and PUBACK, then restarted: nothing lost, the
re-sent readings carry the same ids (ingest drops the duplicates), the Last Will says offline.

A TCP proxy between the gateway and Mosquitto lets the gateway's publishes through but, once
the readings start to flow, holds back everything the broker sends: the broker has the
messages, the gateway never sees a PUBACK. The gateway runs as ``carebeacon gateway --config``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from carebeacon.settings import Settings
from gateway import Outbox
from tests.support.broker import Login, watching
from tests.support.gateway import write_config
from tests.support.network import GatedProxy
from tests.support.readings import fake_readings
from tests.support.waiting import eventually

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


def start_gateway(config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "carebeacon.cli", "gateway", "--config", str(config_path)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


async def test_killed_between_publish_and_puback(
    tmp_path: Path, settings: Settings, login: Login
) -> None:
    state_dir = tmp_path / "state"
    expected = {str(r.id) for r in fake_readings("meter-k", 500)}
    seed = Outbox(state_dir / "gateway.sqlite3", max_readings=100_000)
    seed.add(fake_readings("meter-k", 500))
    seed.close()

    proxy = GatedProxy(settings.mqtt_tls_port, upstream_limit=16_384)
    async with watching(settings, login.gateway_id) as watcher, proxy.serving() as port:
        config_path = write_config(tmp_path, login, settings, port=port, state_dir=state_dir)
        child = start_gateway(config_path, tmp_path / "gateway.log")
        try:
            # the broker has received readings the gateway was never told about
            await watcher.wait_for(lambda: len(watcher.reading_ids) >= 200, within=30)
            await asyncio.sleep(0.5)
            assert proxy.held_bytes > 0
        finally:
            child.send_signal(signal.SIGKILL)
            await asyncio.to_thread(child.wait)
        await watcher.wait_for(
            lambda: watcher.statuses[-1].get("state") == "offline", within=30
        )  # the Last Will
        first_round = list(watcher.reading_ids)
        assert len(first_round) == 200  # four batches in flight, then no PUBACK: the window
        after_kill = Outbox(state_dir / "gateway.sqlite3", max_readings=100_000)
        assert after_kill.integrity_check() == "ok"
        assert after_kill.depth == 500  # nothing was deleted without a PUBACK
        after_kill.close()

        config_path = write_config(tmp_path, login, settings, state_dir=state_dir)
        child = start_gateway(config_path, tmp_path / "gateway.log")
        try:
            await watcher.wait_for(lambda: set(watcher.reading_ids) == expected, within=30)
            await watcher.wait_for(
                lambda: (
                    watcher.statuses[-1].get("state") == "online"
                    and watcher.statuses[-1]["outbox"]["depth"] == 0
                ),
                within=30,
            )
        finally:
            child.send_signal(signal.SIGTERM)
            await asyncio.to_thread(child.wait)
        log = (tmp_path / "gateway.log").read_text(encoding="utf-8")
        assert child.returncode == 0, log[-2000:]
        assert "delivered 50 readings" in log
    resent = watcher.reading_ids[len(first_round) :]
    assert sorted(resent) == sorted(expected)  # everything unacknowledged went again ...
    assert set(first_round) <= set(resent)  # ... with the same ids
    assert len(watcher.reading_ids) == 700
    final = Outbox(state_dir / "gateway.sqlite3", max_readings=100_000)
    assert final.depth == 0
    final.close()
    await eventually(lambda: watcher.statuses[-1].get("state") == "offline")  # clean stop
