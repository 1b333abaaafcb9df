"""carebeacon.systemd: sd_notify over a real AF_UNIX datagram socket (the protocol of
sd_notify(3): newline-separated KEY=VALUE assignments in one datagram; WATCHDOG_USEC in
microseconds, pings at half of it)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest

from carebeacon import systemd
from carebeacon.settings import Settings
from ingest.service import IngestConfig
from tests.support.systemd import NotifySocket


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify_ready() is False
    assert systemd.watchdog_interval({}) is None


def test_ready_status_stopping_reach_the_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with NotifySocket(tmp_path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
        assert systemd.notify_ready("serving\n3 devices")
        assert systemd.notify_status("no Bluetooth adapter")
        assert systemd.notify_watchdog()
        assert systemd.notify_stopping()
        sock.wait_for("STOPPING")
        assert sock.messages() == [
            {"READY": "1", "STATUS": "serving 3 devices"},
            {"STATUS": "no Bluetooth adapter"},
            {"WATCHDOG": "1"},
            {"STOPPING": "1"},
        ]


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"carebeacon-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify_ready()
        assert sock.recv(100) == b"READY=1"


def test_a_vanished_socket_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert systemd.notify_ready() is False


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], interval: float | None) -> None:
    assert systemd.watchdog_interval(environ) == interval


async def test_watchdog_task_feeds_until_stopped(tmp_path: Path) -> None:
    with NotifySocket(tmp_path) as sock:
        environ = {"NOTIFY_SOCKET": str(sock.path), "WATCHDOG_USEC": "100000"}
        stop = asyncio.Event()
        task = asyncio.create_task(systemd.watchdog_task(stop, environ=environ))
        await asyncio.to_thread(sock.wait_for, "WATCHDOG", count=3)
        stop.set()
        await task
        fed = len(sock.times("WATCHDOG"))
        await asyncio.sleep(0.3)  # three intervals after the stop
        assert len(sock.times("WATCHDOG")) == fed


async def test_a_blocked_loop_or_a_stuck_service_stops_feeding(tmp_path: Path) -> None:
    with NotifySocket(tmp_path) as sock:
        environ = {"NOTIFY_SOCKET": str(sock.path), "WATCHDOG_USEC": "100000"}
        stop = asyncio.Event()
        stuck = False
        task = asyncio.create_task(
            systemd.watchdog_task(stop, alive=lambda: not stuck, environ=environ)
        )
        await asyncio.to_thread(sock.wait_for, "WATCHDOG")
        # the event loop blocked for ten intervals: no ping can leave meanwhile
        blocked_at = time.monotonic()
        time.sleep(0.5)  # noqa: ASYNC251 (the point of the test)
        unblocked_at = time.monotonic()
        await asyncio.sleep(0.2)
        assert not [t for t in sock.times("WATCHDOG") if blocked_at + 0.05 < t < unblocked_at]
        assert sock.times("WATCHDOG")[-1] > unblocked_at  # fed again once the loop runs
        # the service says it is stuck: no more pings
        stuck = True
        await asyncio.sleep(0.15)
        fed = len(sock.times("WATCHDOG"))
        await asyncio.sleep(0.3)
        assert len(sock.times("WATCHDOG")) == fed
        stop.set()
        await task


# --- the server units' processes (Type=notify, WatchdogSec=) --------------------------------


@pytest.mark.db
async def test_the_scheduler_says_ready_and_feeds_the_watchdog(
    tmp_path: Path, database: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alerts.scheduler import run

    with NotifySocket(tmp_path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        stop = asyncio.Event()
        task = asyncio.create_task(
            run(settings, interval=0.05, stop=stop, database=database.rsplit("/", 1)[1])
        )
        await asyncio.to_thread(sock.wait_for, "READY")
        await asyncio.to_thread(sock.wait_for, "WATCHDOG", count=2)
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.mark.db
def test_the_web_app_says_ready_and_feeds_the_watchdog(
    tmp_path: Path, database: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.web import serving
    from web.app import create_app

    with NotifySocket(tmp_path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        app = create_app(settings, conninfo=database, provision_gateway=lambda gw, pw: None)
        with serving(app):
            sock.wait_for("READY")
            sock.wait_for("WATCHDOG", count=2)
        fed = len(sock.times("WATCHDOG"))
        time.sleep(0.3)  # stopped: the lifespan ended the watchdog task
        assert len(sock.times("WATCHDOG")) == fed


@pytest.mark.db
@pytest.mark.broker
async def test_ingest_says_ready_once_subscribed_and_feeds_the_watchdog(
    tmp_path: Path, ingest_config: IngestConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.service import run

    with NotifySocket(tmp_path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(run(ingest_config, stop=stop, ready=ready))
        await asyncio.to_thread(sock.wait_for, "READY")
        assert ready.is_set()  # READY only once the subscriptions are in place
        await asyncio.to_thread(sock.wait_for, "WATCHDOG", count=2)
        stop.set()
        await asyncio.wait_for(task, 15)
        await asyncio.to_thread(sock.wait_for, "STOPPING")
