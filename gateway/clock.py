"""Is the gateway's own clock synchronised? Device clocks are set only when it is.

A Raspberry Pi has no battery-backed clock: after a power cut it boots at the last saved time
(fake-hwclock) until NTP answers. Writing that time into a cuff would stamp its next readings
wrong, so :class:`ClockSync` answers from, in order:

1. the kernel: ``adjtimex(2)`` with ``modes = 0`` (read only) returns ``TIME_ERROR`` while
   ``STA_UNSYNC`` is set, i.e. until an NTP client (systemd-timesyncd, chrony, ntpd) has
   disciplined the clock, and again when it stops doing so. This is what ``timedatectl``
   shows as "System clock synchronized".
2. where the kernel cannot be asked: under systemd's ``ProtectClock=yes`` or a
   ``SystemCallFilter=`` without ``@clock`` (the shipped unit has both) even the read-only
   call fails with ``EPERM`` (systemd#26413). Then systemd-timesyncd's flag file
   ``/run/systemd/timesync/synchronized``, touched on every successful synchronisation
   (systemd-timesyncd.service(8)), decides; Raspberry Pi OS uses timesyncd.
3. otherwise: unknown, treated as not synchronised (no clock write; drift is still recorded).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TIMESYNC_FILE", "TIME_ERROR", "TIME_OK", "ClockSync", "SyncState", "kernel_adjtimex"]

#: adjtimex(2) return values (clock states)
TIME_OK = 0
TIME_ERROR = 5
TIMESYNC_FILE = Path("/run/systemd/timesync/synchronized")
_TIMEX_BYTES = 512  # larger than struct timex on every Linux ABI; modes (the first field) = 0


def kernel_adjtimex() -> int:
    """The kernel clock state from a read-only ``adjtimex``; ``OSError`` when refused."""
    name = ctypes.util.find_library("c")
    if name is None:
        raise OSError(errno.ENOSYS, "no C library")
    libc = ctypes.CDLL(name, use_errno=True)
    buffer = ctypes.create_string_buffer(_TIMEX_BYTES)
    state = int(libc.adjtimex(buffer))
    if state < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return state


@dataclass(frozen=True, slots=True)
class SyncState:
    #: ``True`` synchronised, ``False`` not, ``None`` unknown (treated as not)
    synchronised: bool | None
    #: "kernel", "timesyncd" or "none"
    source: str
    detail: str


class ClockSync:
    """``adjtimex`` and ``timesync_file`` are injectable (tests answer for the kernel)."""

    def __init__(
        self,
        *,
        adjtimex: Callable[[], int] = kernel_adjtimex,
        timesync_file: Path = TIMESYNC_FILE,
    ) -> None:
        self._adjtimex = adjtimex
        self._timesync_file = timesync_file

    def state(self) -> SyncState:
        try:
            clock_state = self._adjtimex()
        except OSError as exc:
            refused = f"the kernel cannot be asked ({errno.errorcode.get(exc.errno or 0, exc)})"
        else:
            if clock_state == TIME_ERROR:
                return SyncState(False, "kernel", "the kernel reports the clock unsynchronised")
            return SyncState(True, "kernel", "the kernel reports the clock synchronised")
        if self._timesync_file.exists():
            return SyncState(True, "timesyncd", f"{refused}; systemd-timesyncd has synchronised")
        return SyncState(
            None, "none", f"{refused}; no {self._timesync_file} (systemd-timesyncd not synced)"
        )

    def synchronised(self) -> bool:
        return self.state().synchronised is True
