"""Issue 19: end-to-end receipts, counted by reading id — real gateway publishers asking for
receipts (``carebeacon.readings/2``) → a private Mosquitto with the project's ACL →
``carebeacon ingest`` (a subprocess) → TimescaleDB, and the receipts back.

* receipts arrive and the outboxes empty;
* Mosquitto SIGKILLed right after it PUBACKed a burst, before its autosave (ingest offline
  meanwhile, so the whole burst sits in the broker's memory when it dies): the gateways still
  hold every reading without a receipt and send it again — all stored once; a gateway that
  does not ask for receipts (``/1``, forgets on PUBACK) runs beside them as the control;
* a gateway's power cut while it waits for receipts (ingest offline, so none can come): after
  ingest stores the burst its receipts find no one; the restarted gateway sends everything
  again — all stored once, as duplicates the second time;
* ingest SIGKILLed mid-stream again and again: what it had not committed the broker redelivers,
  a receipt it never published is made good by the gateway's re-send after its timeout.

Figures (sent / stored / lost / duplicated) are printed (``pytest -s``) and merged into
``test-artifacts/reliability-faults.json``. Quick versions run in ``make test``; the ``slow``
ones have more gateways, readings and rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import pytest

from gateway.publisher import Publisher
from tests.support.end_to_end import (
    IngestProcess,
    PgTarget,
    fleet_broker,
    new_homes,
    record,
    register_homes,
    stored_count,
    wait_until,
)
from tests.support.readings import fake_readings
from tests.support.receipts import (
    GatewayProcess,
    figures,
    fill_outbox,
    outbox_depth,
    publishing,
    receipts_config,
)

pytestmark = [pytest.mark.db, pytest.mark.broker, pytest.mark.timeout(300)]


async def test_receipts_arrive_and_the_outboxes_empty(tmp_path: Path, database: str) -> None:
    homes = new_homes(2)
    await asyncio.to_thread(register_homes, database, homes)
    broker = fleet_broker(homes)
    broker.start()
    ingest = IngestProcess(PgTarget.from_conninfo(database), broker.port, tmp_path / "ingest.log")
    started = time.monotonic()
    try:
        await ingest.start_connected()
        configs = [receipts_config(h, broker.port, tmp_path / h.gateway_id) for h in homes]
        sent = [
            i for h, c in zip(homes, configs, strict=True) for i in fill_outbox(c, h.meter_id, 120)
        ]
        async with contextlib.AsyncExitStack() as stack:
            publishers = [await stack.enter_async_context(publishing(c)) for c in configs]
            emptied = await wait_until(lambda: all(p.outbox.depth == 0 for p in publishers), 60)
            receipted = [p.receipted_readings for p in publishers]
            resent = [p.resent_readings for p in publishers]
        metrics = await asyncio.to_thread(ingest.metrics)
        assert await asyncio.to_thread(ingest.stop) == 0
    finally:
        if ingest.alive():
            await asyncio.to_thread(ingest.stop)
        broker.remove()
    result = await asyncio.to_thread(
        figures,
        database,
        "receipts: outboxes emptied by receipts",
        sent,
        homes,
        time.monotonic() - started,
        {"receipted": receipted, "resent": resent},
    )
    record(result)
    assert emptied
    assert receipted == [120, 120]  # each reading left its outbox on its own receipt
    assert (result.stored, result.lost, result.duplicated) == (240, 0, 0)
    assert result.rows == result.rows_expected
    assert metrics.get("carebeacon_ingest_receipts_total", 0) >= 1
    assert ingest.log_problems() == []


@pytest.mark.parametrize(
    ("gateways", "burst", "rounds"),
    [
        pytest.param(2, 300, 1, id="quick"),
        pytest.param(4, 1500, 3, id="slow", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
async def test_broker_sigkill_after_puback_loses_nothing_with_receipts(
    tmp_path: Path, database: str, gateways: int, burst: int, rounds: int
) -> None:
    homes = new_homes(gateways + 1)
    control, asking = homes[0], homes[1:]
    await asyncio.to_thread(register_homes, database, homes)
    broker = fleet_broker(homes)
    broker.start()
    ingest = IngestProcess(PgTarget.from_conninfo(database), broker.port, tmp_path / "ingest.log")
    configs = [receipts_config(h, broker.port, tmp_path / h.gateway_id) for h in asking]
    control_config = receipts_config(
        control, broker.port, tmp_path / control.gateway_id, receipts=False
    )
    sent: list[uuid.UUID] = []
    control_sent: list[uuid.UUID] = []
    started = time.monotonic()
    emptied: list[bool] = []
    try:
        await ingest.start_connected()  # its persistent session queues what follows
        async with contextlib.AsyncExitStack() as stack:
            publishers = [await stack.enter_async_context(publishing(c)) for c in configs]
            legacy = await stack.enter_async_context(publishing(control_config))
            for round_ in range(rounds):
                await asyncio.to_thread(ingest.stop)
                acked = [p.published_messages for p in publishers]
                start = 1 + round_ * burst
                for home, publisher in zip(asking, publishers, strict=True):
                    sent += _add(publisher, home.meter_id, burst, start)
                control_sent += _add(legacy, control.meter_id, burst, start)

                def pubacked(acked: list[int] = acked) -> bool:
                    """Every message of the burst PUBACKed (the control forgot its readings)."""
                    return legacy.outbox.depth == 0 and all(
                        p.published_messages - n >= burst // 50
                        for p, n in zip(publishers, acked, strict=True)
                    )

                assert await wait_until(pubacked, 60, step=0.02)
                await asyncio.to_thread(broker.kill)  # before its autosave
                await asyncio.to_thread(broker.start)
                await ingest.start_connected()
                # each round on its own: the gateways' re-sends are stored and receipted
                emptied.append(
                    await wait_until(lambda: all(p.outbox.depth == 0 for p in publishers), 120)
                )
            resent = sum(p.resent_readings for p in publishers)
        duplicates = (await asyncio.to_thread(ingest.metrics)).get(
            "carebeacon_ingest_readings_duplicate_total", 0.0
        )
        assert await asyncio.to_thread(ingest.stop) == 0
    finally:
        if ingest.alive():
            await asyncio.to_thread(ingest.stop)
        broker.remove()
    seconds = time.monotonic() - started
    result = await asyncio.to_thread(
        figures,
        database,
        f"broker SIGKILL x{rounds} after PUBACK, receipts",
        sent,
        asking,
        seconds,
        {"resent_readings": resent, "duplicates_seen_by_last_ingest": int(duplicates)},
    )
    control_result = await asyncio.to_thread(
        figures,
        database,
        f"broker SIGKILL x{rounds} after PUBACK, no receipts (control)",
        control_sent,
        [control],
        seconds,
    )
    record(result)
    record(control_result)
    assert emptied == [True] * rounds
    assert (result.stored, result.lost, result.duplicated) == (len(sent), 0, 0)
    assert result.rows == result.rows_expected
    assert result.quarantined == 0
    # the fault really struck: what only the broker held died with it
    assert control_result.lost == len(control_sent)
    assert ingest.log_problems() == []


def _add(publisher: Publisher, device_id: str, count: int, start: int) -> list[uuid.UUID]:
    readings = fake_readings(device_id, count, start=start)
    publisher.outbox.add(readings)
    return [r.id for r in readings]


@pytest.mark.parametrize(
    ("gateways", "burst"),
    [
        pytest.param(2, 200, id="quick"),
        pytest.param(4, 2000, id="slow", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
async def test_gateway_power_cut_during_a_receipt_timeout(
    tmp_path: Path, database: str, gateways: int, burst: int
) -> None:
    homes = new_homes(gateways)
    await asyncio.to_thread(register_homes, database, homes)
    broker = fleet_broker(homes)
    broker.start()
    ingest = IngestProcess(PgTarget.from_conninfo(database), broker.port, tmp_path / "ingest.log")
    timeout = 120.0  # the power cut falls inside it
    configs = [
        receipts_config(h, broker.port, tmp_path / h.gateway_id, receipt_timeout=timeout)
        for h in homes
    ]
    processes = [
        GatewayProcess(h, broker.port, c.state_dir, timeout)
        for h, c in zip(homes, configs, strict=True)
    ]
    started = time.monotonic()
    try:
        await ingest.start_connected()
        await asyncio.to_thread(ingest.stop)  # its session queues; no receipt can come
        sent = [
            i
            for h, c in zip(homes, configs, strict=True)
            for i in fill_outbox(c, h.meter_id, burst)
        ]
        for process in processes:
            process.start()
        assert await wait_until(lambda: all(p.sent() >= burst for p in processes), 60)
        for process in processes:
            process.power_cut()
        waiting_at_cut = [outbox_depth(c) for c in configs]
        await ingest.start_connected()
        assert await wait_until(lambda: stored_count(database, sent) == len(sent), 120)
        # stored and receipted, but nobody heard the receipts: the outboxes still hold it all
        still_waiting = [outbox_depth(c) for c in configs]
        for process in processes:
            process.start()
        emptied = await wait_until(lambda: all(outbox_depth(c) == 0 for c in configs), 120)
        exits = [process.stop() for process in processes]
        duplicates = (await asyncio.to_thread(ingest.metrics)).get(
            "carebeacon_ingest_readings_duplicate_total", 0.0
        )
        assert await asyncio.to_thread(ingest.stop) == 0
    finally:
        for process in processes:
            if process.process is not None:
                process.power_cut()
        if ingest.alive():
            await asyncio.to_thread(ingest.stop)
        broker.remove()
    result = await asyncio.to_thread(
        figures,
        database,
        "gateway power cut during a receipt timeout",
        sent,
        homes,
        time.monotonic() - started,
        {
            "outbox_at_power_cut": waiting_at_cut,
            "outbox_after_ingest_stored_all": still_waiting,
            "duplicates_seen_by_ingest": int(duplicates),
            "sent_by_gateways": [p.sent() for p in processes],
        },
    )
    record(result)
    assert waiting_at_cut == [burst] * gateways
    assert still_waiting == [burst] * gateways
    assert emptied
    assert exits == [0] * gateways
    assert (result.stored, result.lost, result.duplicated) == (len(sent), 0, 0)
    assert result.rows == result.rows_expected
    assert duplicates == len(sent)  # the re-sends after the restart, each stored once already
    assert ingest.log_problems() == []


@pytest.mark.parametrize(
    ("gateways", "steps", "kills"),
    [
        pytest.param(2, 24, 3, id="quick"),
        pytest.param(4, 120, 6, id="slow", marks=[pytest.mark.slow, pytest.mark.timeout(900)]),
    ],
)
async def test_ingest_sigkill_mid_stream_receipts_lost_with_it_are_made_good(
    tmp_path: Path, database: str, gateways: int, steps: int, kills: int
) -> None:
    """Ingest dies between commits, acks and receipts: what it had not committed the broker
    redelivers; a receipt it never published the gateway makes good by sending again after its
    timeout (a duplicate, receipted)."""
    homes = new_homes(gateways)
    await asyncio.to_thread(register_homes, database, homes)
    broker = fleet_broker(homes)
    broker.start()
    ingest = IngestProcess(PgTarget.from_conninfo(database), broker.port, tmp_path / "ingest.log")
    configs = [
        receipts_config(h, broker.port, tmp_path / h.gateway_id, receipt_timeout=2.0) for h in homes
    ]
    sent: list[uuid.UUID] = []
    started = time.monotonic()
    try:
        await ingest.start_connected()
        async with contextlib.AsyncExitStack() as stack:
            publishers = [await stack.enter_async_context(publishing(c)) for c in configs]

            async def stream() -> None:
                for step in range(steps):
                    for home, publisher in zip(homes, publishers, strict=True):
                        sent.extend(_add(publisher, home.meter_id, 25, 1 + step * 25))
                    await asyncio.sleep(0.25)

            streaming = asyncio.create_task(stream())
            at_kills: list[int] = []
            for _ in range(kills):
                before = await asyncio.to_thread(stored_count, database, sent)
                assert await wait_until(
                    lambda b=before: stored_count(database, sent) > b,  # type: ignore[misc]
                    30,
                    step=0.05,
                )
                ingest.kill()
                at_kills.append(await asyncio.to_thread(stored_count, database, sent))
                await asyncio.sleep(0.5)
                await ingest.start_connected()
            await streaming
            emptied = await wait_until(lambda: all(p.outbox.depth == 0 for p in publishers), 120)
            resent = sum(p.resent_readings for p in publishers)
        assert await asyncio.to_thread(ingest.stop) == 0
    finally:
        if ingest.alive():
            await asyncio.to_thread(ingest.stop)
        broker.remove()
    result = await asyncio.to_thread(
        figures,
        database,
        f"ingest SIGKILL x{kills} mid-stream, receipts",
        sent,
        homes,
        time.monotonic() - started,
        {"stored_at_kills": at_kills, "resent_readings": resent},
    )
    record(result)
    assert emptied
    assert len(sent) == gateways * steps * 25
    assert at_kills[-1] < len(sent)  # the last kill struck mid-stream
    assert (result.stored, result.lost, result.duplicated) == (len(sent), 0, 0)
    assert result.rows == result.rows_expected
    assert ingest.log_problems() == []
