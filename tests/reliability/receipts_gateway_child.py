"""A gateway without a radio for the receipts fault tests (``tests/support/receipts.py``,
:class:`GatewayProcess`): the real publisher on the outbox the test filled, asking for
receipts, until SIGTERM — or SIGKILL, the power cut. Logs at INFO on stderr."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from carebeacon.logs import configure_logging
from tests.support.end_to_end import HomeIds
from tests.support.receipts import publishing, receipts_config


async def main(spec: dict[str, Any]) -> None:
    home = HomeIds(**{**spec["home"], "patient_id": uuid.UUID(spec["home"]["patient_id"])})
    config = receipts_config(
        home, spec["port"], Path(spec["state_dir"]), receipt_timeout=spec["receipt_timeout"]
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with publishing(config):
        await stop.wait()


if __name__ == "__main__":
    configure_logging("INFO")
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
