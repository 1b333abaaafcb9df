"""Gateways that ask for receipts, without a radio, for the receipts fault tests: the real
:class:`gateway.publisher.Publisher` on an outbox the test fills, in this process
(:func:`publishing`) or as a child process that can lose its power (:class:`GatewayProcess`);
and the counting by reading id (:func:`figures`), in the fault table's terms."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from gateway import Allowlist, Outbox, StatusBoard
from gateway.config import GatewayConfig, OutboxConfig
from gateway.publisher import Publisher
from tests.support.end_to_end import ROOT, FaultRecord, HomeIds, gateway_config
from tests.support.readings import fake_readings

__all__ = [
    "GatewayProcess",
    "figures",
    "fill_outbox",
    "outbox_depth",
    "publishing",
    "receipts_config",
]


def receipts_config(
    home: HomeIds,
    port: int,
    state_dir: Path,
    *,
    receipts: bool = True,
    receipt_timeout: float = 3.0,
) -> GatewayConfig:
    """The fault rig's gateway (plain listener, its own login), asking for receipts or not."""
    base = gateway_config(home, port, state_dir)
    return dataclasses.replace(
        base, outbox=OutboxConfig(receipts=receipts, receipt_timeout=receipt_timeout)
    )


def fill_outbox(
    config: GatewayConfig, device_id: str, count: int, start: int = 1
) -> list[uuid.UUID]:
    """``count`` glucose readings of ``device_id`` committed to the gateway's outbox, as its
    radio would; their ids."""
    readings = fake_readings(device_id, count, start=start)
    outbox = Outbox(config.state_dir / "gateway.sqlite3", max_readings=config.outbox.max_readings)
    try:
        outbox.add(readings)
    finally:
        outbox.close()
    return [r.id for r in readings]


def outbox_depth(config: GatewayConfig) -> int:
    """Readings waiting in a gateway's outbox, read without a write lock (it may be running)."""
    path = config.state_dir / "gateway.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


@contextlib.asynccontextmanager
async def publishing(config: GatewayConfig) -> AsyncIterator[Publisher]:
    """The gateway's publisher in this process; stopped cleanly when the block ends."""
    outbox = Outbox(config.state_dir / "gateway.sqlite3", max_readings=config.outbox.max_readings)
    publisher = Publisher(config, outbox, StatusBoard(), Allowlist(config.devices))
    task = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        publisher.stopping.set()
        await asyncio.wait_for(task, 15)
        outbox.close()


_SENT = re.compile(r"\bsent (\d+) readings\b")


class GatewayProcess:
    """``tests/reliability/receipts_gateway_child.py``: the publisher of one gateway in its own
    process, its log in ``log``. :meth:`power_cut` is SIGKILL."""

    def __init__(self, home: HomeIds, port: int, state_dir: Path, receipt_timeout: float) -> None:
        self.spec = state_dir.parent / f"{home.gateway_id}.json"
        self.spec.write_text(
            json.dumps(
                {
                    "home": dataclasses.asdict(home) | {"patient_id": str(home.patient_id)},
                    "port": port,
                    "state_dir": str(state_dir),
                    "receipt_timeout": receipt_timeout,
                }
            ),
            encoding="utf-8",
        )
        self.log = state_dir.parent / f"{home.gateway_id}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.receipts_gateway_child", str(self.spec)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )

    def sent(self) -> int:
        """Readings published and PUBACKed so far, over every start (from its log)."""
        if not self.log.exists():
            return 0
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return sum(int(n) for n in _SENT.findall(text))

    def power_cut(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> int:
        if self.process is None:
            return 0
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        return process.wait(30)


def figures(
    conninfo: str,
    fault: str,
    sent: Sequence[uuid.UUID],
    homes: Sequence[HomeIds],
    seconds: float,
    detail: dict[str, Any] | None = None,
) -> FaultRecord:
    """Count by reading id what the database holds of ``sent`` (one value row each)."""
    ids = list(sent)
    devices = [h.meter_id for h in homes]
    gateways = [h.gateway_id for h in homes]
    with psycopg.connect(conninfo) as conn:

        def one(sql: str, *params: Any) -> int:
            row = conn.execute(sql, params).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        stored = one("SELECT count(*) FROM reading_receipts WHERE id = ANY(%s)", ids)
        strangers = one(
            "SELECT count(*) FROM reading_receipts WHERE device_id = ANY(%s) AND NOT id = ANY(%s)",
            devices,
            ids,
        )
        rows = one("SELECT count(*) FROM readings WHERE reading_id = ANY(%s)", ids)
        doubled_rows = one(
            "SELECT count(*) FROM (SELECT reading_id, code FROM readings"
            " WHERE reading_id = ANY(%s) GROUP BY 1, 2 HAVING count(*) > 1) d",
            ids,
        )
        quarantined = one("SELECT count(*) FROM quarantine WHERE gateway_id = ANY(%s)", gateways)
    return FaultRecord(
        fault=fault,
        readings_sent=len(ids),
        stored=stored,
        duplicated=strangers + doubled_rows,
        lost=len(ids) - stored,
        episodes_expected=0,
        episodes_opened=0,
        episodes_doubled=0,
        quarantined=quarantined,
        rows=rows,
        rows_expected=len(ids),
        seconds=round(seconds, 1),
        detail={**(detail or {}), "gateways": len(homes)},
    )
