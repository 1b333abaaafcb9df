"""``carebeacon gateway --config gateway.toml``: BLE devices → durable outbox → MQTT.

One :func:`run` with one task group: the radio (scanning and device sessions) and the publisher
share the outbox and the status board. The bleak backends are parameters: ``None`` is the
platform's own (BlueZ on a Raspberry Pi); tests pass the bumble-emulated ones.

On SIGTERM the radio stops taking work (scanning stops, sessions end, records not yet stored
stay on the devices), the publisher gets a few seconds to drain, publishes ``offline`` and exits.

Under systemd (``Type=notify``) the gateway sends ``READY=1`` once its tasks run, feeds the
watchdog from its event loop (a blocked loop, or a radio or publisher task that ended, stops
feeding it: systemd restarts the process), puts its current problem in ``STATUS=`` and sends
``STOPPING=1`` when it stops.

``carebeacon gateway doctor --config …`` checks the installation (:mod:`gateway.doctor`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carebeacon import systemd
from carebeacon.logs import configure_logging
from gateway.allowlist import Allowlist
from gateway.clock import ClockSync
from gateway.config import GatewayConfig, load_config, preflight
from gateway.errors import ConfigError
from gateway.outbox import Outbox
from gateway.publisher import Publisher
from gateway.radio import Radio
from gateway.status import StatusBoard

__all__ = ["COMMANDS", "DRAIN_SECONDS", "main", "run"]

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
OUTBOX_FILE = "gateway.sqlite3"


async def run(
    config: GatewayConfig,
    *,
    scanner_backend: type[Any] | None = None,
    client_backend: type[Any] | None = None,
    stop: asyncio.Event | None = None,
    clock_sync: ClockSync | None = None,
) -> None:
    """Run the gateway until ``stop`` is set (or forever). ``clock_sync`` answers whether the
    gateway's clock is synchronised (``None``: the kernel's answer, :mod:`gateway.clock`)."""
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
            clock_sync=clock_sync,
        )
        publisher = Publisher(
            config, outbox, board, allowlist, on_allowlist=radio.allowlist_changed
        )
        logger.info(
            "gateway starting: %d allowlisted devices, %d readings waiting in the outbox",
            len(allowlist.entries),
            outbox.depth,
        )
        watchdog_stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            publisher_task = tg.create_task(publisher.run(), name="publisher")
            radio_task = tg.create_task(radio.run(), name="radio")
            tg.create_task(
                systemd.watchdog_task(
                    watchdog_stop,
                    alive=lambda: stop.is_set() or not (publisher_task.done() or radio_task.done()),
                ),
                name="watchdog",
            )
            systemd.notify_ready(f"{len(allowlist.entries)} devices allowlisted")
            await stop.wait()
            logger.info("stopping: no new sessions, draining the outbox")
            systemd.notify_stopping("draining the outbox")
            radio.stopping.set()
            await radio_task
            await publisher.drained(within=DRAIN_SECONDS)
            publisher.stopping.set()
            await publisher_task
            watchdog_stop.set()
        logger.info("gateway stopped; %d readings left in the outbox", outbox.depth)
    finally:
        outbox.close()


#: ``carebeacon gateway <command> …``: further commands, each ``module:function(argv) -> int``
COMMANDS: dict[str, str] = {
    "doctor": "gateway.doctor:main",
}


def main(argv: list[str]) -> int:
    if argv and argv[0] in COMMANDS:
        module_name, func_name = COMMANDS[argv[0]].split(":")
        command: Callable[[list[str]], int] = getattr(
            importlib.import_module(module_name), func_name
        )
        return command(argv[1:])
    parser = argparse.ArgumentParser(
        prog="carebeacon gateway",
        description="Run a home gateway: BLE health devices, durable outbox, MQTT."
        f" Other commands: {', '.join(COMMANDS)} (carebeacon gateway doctor --help).",
    )
    parser.add_argument("--config", type=Path, required=True, help="the gateway's TOML file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        preflight(config)
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
