"""The durable outbox: idempotent writes, bounded size, acknowledgement, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway import Outbox, OutboxFull
from tests.support.readings import fake_readings


def test_add_is_idempotent_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, max_readings=100)
    readings = fake_readings("dev-1", 10)
    assert outbox.add(readings) == 10
    assert outbox.add(readings[:5]) == 0  # re-read: nothing new
    assert outbox.depth == 10
    outbox.close()
    reopened = Outbox(path, max_readings=100)
    assert reopened.depth == 10
    assert [p.id for p in reopened.pending(limit=100)] == [str(r.id) for r in readings]
    assert reopened.oldest_at() is not None


def test_acknowledged_readings_are_not_stored_again(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_readings=100)
    readings = fake_readings("dev-1", 5)
    outbox.add(readings)
    outbox.acknowledge(p.id for p in outbox.pending(limit=3))
    assert outbox.depth == 2
    assert outbox.add(readings) == 0  # a meter replaying its memory
    assert outbox.was_delivered(str(readings[0].id))
    assert [p.id for p in outbox.pending()] == [str(r.id) for r in readings[3:]]


def test_delivered_memory_is_bounded(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_readings=100, delivered_memory=10)
    for start in range(1, 40, 5):
        outbox.add(fake_readings("dev-1", 5, start=start))
        outbox.acknowledge(p.id for p in outbox.pending())
    count = outbox._db.execute("SELECT count(*) FROM delivered").fetchone()[0]
    assert count == 10


def test_full_outbox_refuses_whole_batches_and_drops_nothing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_readings=10)
    outbox.add(fake_readings("dev-1", 8))
    with pytest.raises(OutboxFull) as caught:
        outbox.add(fake_readings("dev-1", 5, start=100))
    assert (caught.value.depth, caught.value.limit, caught.value.incoming) == (8, 10, 5)
    assert outbox.depth == 8
    assert outbox.free() == 2
    outbox.add(fake_readings("dev-1", 2, start=100))
    assert outbox.full
    assert outbox.add(fake_readings("dev-1", 2, start=100)) == 0  # duplicates still fine
    outbox.acknowledge(p.id for p in outbox.pending(limit=3))
    assert not outbox.full


def test_device_state_moves_with_the_readings(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_readings=3)
    outbox.add(
        fake_readings("meter", 2),
        device_update=("meter", {"type": "glucose_meter", "last_sequence": 2}),
    )
    with pytest.raises(OutboxFull):
        outbox.add(
            fake_readings("meter", 2, start=3),
            device_update=("meter", {"last_sequence": 4}),
        )
    state = outbox.device("meter")
    assert state is not None
    assert state.last_sequence == 2  # never ahead of what was stored
    assert state.type == "glucose_meter"
    outbox.update_device("meter", battery_percent=80, clock_drift_seconds=-3.5)
    state = outbox.device("meter")
    assert state is not None
    assert (state.battery_percent, state.clock_drift_seconds) == (80, -3.5)
    with pytest.raises(ValueError, match="unknown device columns"):
        outbox.update_device("meter", patient="x")


_WRITER = """
import sys
from pathlib import Path
from gateway import Outbox
from tests.support.readings import fake_readings
outbox = Outbox(Path(sys.argv[1]), max_readings=10_000_000)
n = 1
while True:
    outbox.add(fake_readings("dev-power", 7, start=n),
               device_update=("dev-power", {"type": "glucose_meter", "last_sequence": n + 6}))
    n += 7
    if n % 5 == 1:
        outbox.acknowledge(p.id for p in outbox.pending(limit=3))
    print(n - 1, flush=True)
"""


@pytest.mark.parametrize("kill_after", [0.05, 0.3, 0.7])
def test_kill_during_writes_loses_nothing_committed(tmp_path: Path, kill_after: float) -> None:
    """SIGKILL mid-write (the nearest a test gets to pulling the plug), then reopen."""
    path = tmp_path / "o.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    first = child.stdout.readline()  # writing has started (imports can be slow under load)
    time.sleep(kill_after)
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    confirmed = [int(line) for line in (first + out).decode().split()]
    outbox = Outbox(path, max_readings=10_000_000)
    assert outbox.integrity_check() == "ok"
    state = outbox.device("dev-power")
    assert state is not None
    assert state.last_sequence is not None
    assert state.last_sequence >= confirmed[-1]
    # every reading up to the device's recorded sequence is either waiting or delivered
    for reading in fake_readings("dev-power", state.last_sequence):
        assert outbox.known(str(reading.id)), reading.number
    assert not outbox.known(str(fake_readings("dev-power", 1, start=state.last_sequence + 1)[0].id))


def test_waiting_and_acknowledge_count_only_what_still_waits(tmp_path: Path) -> None:
    """Receipts may name a reading twice, or one already forgotten: nothing is counted twice."""
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, max_readings=100)
    readings = fake_readings("dev-r", 6)
    ids = [str(r.id) for r in readings]
    outbox.add(readings)
    assert [p.id for p in outbox.waiting([ids[4], ids[1], "not-there"])] == [ids[1], ids[4]]
    assert outbox.acknowledge(ids[:2]) == 2
    assert outbox.acknowledge(ids[:3]) == 1
    assert outbox.waiting(ids[:3]) == []
    outbox.close()
    reopened = Outbox(path, max_readings=100)  # what has no receipt is still there after a restart
    assert [p.id for p in reopened.pending()] == ids[3:]
    reopened.close()
