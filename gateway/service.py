"""``carebeacon gateway --config gateway.toml``: BLE devices → durable outbox → MQTT.

One :func:`run` with one task group: the radio (scanning and device sessions) and the publisher
share the outbox and the status board. The bleak backends are parameters: ``None`` is the
platform's own (BlueZ on a Raspberry Pi); tests pass the bumble-emulated ones.

On SIGTERM the radio stops taking work (scanning stops, sessions end, records not yet stored
stay on the devices), the publisher gets a few seconds to drain, publishes ``offline`` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from carebeacon.logs import configure_logging
from gateway.allowlist import Allowlist
from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from gateway.radio import Radio
from gateway.status import StatusBoard

__all__ = ["DRAIN_SECONDS", "main", "run"]

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
OUTBOX_FILE = "gateway.sqlite3"


async def run(
    config: GatewayConfig,
    *,
    scanner_backend: type[Any] | None = None,
    client_backend: type[Any] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the gateway until ``stop`` is set (or forever)."""
    stop = stop or asyncio.Event()
    outbox = Outbox(
        config.state_dir / OUTBOX_FILE,
        max_readings=config.outbox.max_readings,
        delivered_memory=config.outbox.delivered_memory,
    )
    try:
        board = StatusBoard()
        allowlist = Allowlist(config.devices)
        radio = Radio(
            config,
            outbox,
            board,
            allowlist,
            scanner_backend=scanner_backend,
            client_backend=client_backend,
        )
        publisher = Publisher(
            config, outbox, board, allowlist, on_allowlist=radio.allowlist_changed
        )
        logger.info(
            "gateway starting: %d allowlisted devices, %d readings waiting in the outbox",
            len(allowlist.entries),
            outbox.depth,
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(publisher.run(), name="publisher")
            radio_task = tg.create_task(radio.run(), name="radio")
            await stop.wait()
            logger.info("stopping: no new sessions, draining the outbox")
            radio.stopping.set()
            await radio_task
            await publisher.drained(within=DRAIN_SECONDS)
            publisher.stopping.set()
        logger.info("gateway stopped; %d readings left in the outbox", outbox.depth)
    finally:
        outbox.close()


def main(argv: list[str]) -> int:
    if argv[:1] in (["pair"], ["unpair"]):  # installer commands (gateway.pair)
        from gateway.pair import main_pair, main_unpair

        return (main_pair if argv[0] == "pair" else main_unpair)(argv[1:])
    parser = argparse.ArgumentParser(
        prog="carebeacon gateway",
        description="Run a home gateway: BLE health devices, durable outbox, MQTT.",
    )
    parser.add_argument("--config", type=Path, required=True, help="the gateway's TOML file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"carebeacon gateway: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, json=config.log_format == "json")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await run(config, stop=stop)

    asyncio.run(serve())
    return 0
