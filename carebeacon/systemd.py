"""systemd's notification protocol (``sd_notify``) over ``$NOTIFY_SOCKET``, stdlib only.

A unit with ``Type=notify`` waits for ``READY=1``; with ``WatchdogSec=`` systemd sets
``$WATCHDOG_USEC`` and restarts the service when no ``WATCHDOG=1`` arrives within it. Outside
systemd (no ``$NOTIFY_SOCKET``) every call is a no-op that returns ``False``.

Services start :func:`watchdog_task` in their task group and call :func:`notify_ready` once
they serve::

    async with asyncio.TaskGroup() as tg:
        tg.create_task(watchdog_task(stop))
        ...
        notify_ready()

The watchdog is fed from the event loop itself, so a loop that is blocked (or a service whose
``alive()`` says it is stuck) stops feeding it and systemd restarts the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping

__all__ = [
    "notify",
    "notify_ready",
    "notify_status",
    "notify_stopping",
    "notify_watchdog",
    "watchdog_interval",
    "watchdog_task",
]

NOTIFY_SOCKET = "NOTIFY_SOCKET"


def _address(value: str) -> str | None:
    if value.startswith("@"):  # abstract namespace
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. vsock: (not used on a gateway or a server unit)


def notify(*assignments: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``KEY=value`` lines in one datagram; ``False`` when not run by systemd (or the
    socket is gone). Never raises: a service must not fail because its supervisor left."""
    env = os.environ if environ is None else environ
    address = _address(env.get(NOTIFY_SOCKET, ""))
    if address is None or not assignments:
        return False
    message = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError:
        return False
    return True


def notify_ready(status: str | None = None) -> bool:
    """``READY=1`` (and a ``STATUS=`` line): the service is up."""
    return notify("READY=1", *([_status(status)] if status else []))


def notify_stopping(status: str | None = None) -> bool:
    return notify("STOPPING=1", *([_status(status)] if status else []))


def notify_status(status: str) -> bool:
    """A one-line text ``systemctl status`` shows (e.g. the current problem)."""
    return notify(_status(status))


def notify_watchdog() -> bool:
    return notify("WATCHDOG=1")


def _status(text: str) -> str:
    return "STATUS=" + " ".join(text.split())


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled
    advises), or ``None`` when systemd asked for no watchdog, or asked another process."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


async def watchdog_task(
    stop: asyncio.Event,
    *,
    alive: Callable[[], bool] | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Feed the watchdog until ``stop`` is set (returns at once without a watchdog). A ping is
    sent only when the event loop gets to run this task and ``alive()`` (if given) is true."""
    interval = watchdog_interval(environ)
    if interval is None:
        return
    while not stop.is_set():
        if alive is None or alive():
            notify("WATCHDOG=1", environ=environ)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
