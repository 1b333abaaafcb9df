"""A gateway process for resource measurements (``test_resources``): the real ``run()`` with the
emulated air in the same process, idle first, then a glucose meter with stored records appears.

Prints ``idle``, ``transfer`` and ``done`` on stdout at the phase boundaries; the parent reads
``/proc/<pid>`` at each one.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from pathlib import Path

from gateway import Outbox, load_config
from gateway.service import run
from lab.emulation import EmulatedAir, GlucoseMeter, GlucoseReading, PeripheralIdentity


async def main(config_path: Path, records: int, idle_seconds: float) -> None:
    config = load_config(config_path)
    now = datetime.now(config.zone).replace(tzinfo=None, microsecond=0)
    async with EmulatedAir() as air:
        stop = asyncio.Event()
        gateway = asyncio.create_task(
            run(
                config,
                scanner_backend=air.scanner_backend,
                client_backend=air.client_backend,
                stop=stop,
            )
        )
        await asyncio.sleep(3.0)  # connected, scanning, status published
        print("idle", flush=True)
        await asyncio.sleep(idle_seconds)
        meter = GlucoseMeter(
            PeripheralIdentity(serial="GM-RES"),
            records=[
                GlucoseReading(80 + i % 150, time=now - timedelta(minutes=records - i))
                for i in range(records)
            ],
        )
        print("transfer", flush=True)
        await air.add(meter)
        reader = Outbox(config.state_dir / "gateway.sqlite3", max_readings=10**9)
        while True:
            delivered = reader._db.execute("SELECT count(*) FROM delivered").fetchone()[0]
            if delivered >= records and reader._count() == 0:
                break
            await asyncio.sleep(0.05)
        print("done", flush=True)
        await air.remove(meter)
        await asyncio.sleep(0.5)
        print("idle2", flush=True)
        await asyncio.sleep(idle_seconds)
        print("end", flush=True)
        reader.close()
        stop.set()
        await gateway


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
