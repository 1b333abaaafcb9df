"""A patient's recent readings, indexed by type and clinical time, for the windowed rules."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable
from datetime import datetime

from alerts._model import REPORT_TYPES, Point, Quality, StoredReading, assess

__all__ = ["History"]

_MAX_UUID = uuid.UUID(int=(1 << 128) - 1)
_MIN_UUID = uuid.UUID(int=0)


class History:
    """Usable points per reading type, sorted by (time, reading id). Excluded readings (control
    solution, HI/LO, failures) are not points; they still count as the patient taking a reading
    unless they are control-solution tests."""

    __slots__ = ("_keys", "_points", "_seen", "last_time")

    def __init__(self) -> None:
        self._points: dict[str, list[Point]] = {}
        self._keys: dict[str, list[tuple[datetime, uuid.UUID]]] = {}
        self._seen: set[uuid.UUID] = set()
        self.last_time: datetime | None = None

    def __contains__(self, reading_id: object) -> bool:
        return reading_id in self._seen

    def add(self, reading: StoredReading, quality: Quality | None = None) -> Point | None:
        """Add a reading once (a second add of the same id is ignored); returns its point."""
        if reading.reading_id in self._seen:
            return None
        self._seen.add(reading.reading_id)
        q = quality or assess(reading)
        if (
            "control_solution" not in reading.flags
            and reading.type not in REPORT_TYPES
            and (self.last_time is None or reading.time > self.last_time)
        ):
            self.last_time = reading.time
        if q.excluded or not q.values:
            return None
        point = Point(
            time=reading.time,
            reading_id=reading.reading_id,
            values=q.values,
            suspect=q.suspect,
            time_trusted=q.time_trusted,
            device_id=reading.device_id,
        )
        key = (reading.time, reading.reading_id)
        keys = self._keys.setdefault(reading.type, [])
        points = self._points.setdefault(reading.type, [])
        i = bisect.bisect_right(keys, key)
        keys.insert(i, key)
        points.insert(i, point)
        return point

    def extend(self, type_: str, points: list[Point]) -> None:
        """Add points already known to be usable and sorted by (time, reading id) — the bulk
        path of the live loader. Ids already present are skipped."""
        keys = self._keys.setdefault(type_, [])
        existing = self._points.setdefault(type_, [])
        for point in points:
            if point.reading_id in self._seen:
                continue
            self._seen.add(point.reading_id)
            key = (point.time, point.reading_id)
            if not keys or key > keys[-1]:
                keys.append(key)
                existing.append(point)
            else:
                i = bisect.bisect_right(keys, key)
                keys.insert(i, key)
                existing.insert(i, point)

    def _span(
        self, type_: str, start: datetime, end: datetime, include_end: bool = True
    ) -> tuple[list[Point], range]:
        """The points of ``type_`` and the indexes of those with ``start <= time <= end``
        (``< end`` unless include_end)."""
        keys = self._keys.get(type_)
        if not keys:
            return [], range(0)
        lo = bisect.bisect_left(keys, (start, _MIN_UUID))
        hi = bisect.bisect_right(keys, (end, _MAX_UUID if include_end else _MIN_UUID))
        return self._points[type_], range(lo, hi)

    def window(
        self,
        type_: str,
        start: datetime,
        end: datetime,
        *,
        include_end: bool = True,
        trusted_only: bool = True,
        exclude: uuid.UUID | None = None,
    ) -> list[Point]:
        """Points with ``start <= time <= end`` (``< end`` unless include_end)."""
        points, span = self._span(type_, start, end, include_end)
        return [
            p
            for p in points[span.start : span.stop]
            if (p.time_trusted or not trusted_only) and (exclude is None or p.reading_id != exclude)
        ]

    def first(
        self, type_: str, start: datetime, end: datetime, where: Callable[[Point], bool]
    ) -> Point | None:
        """The oldest trusted point of :meth:`window` for which ``where`` holds: read from the
        start, it stops there (a meter's upload puts many readings in one window)."""
        points, span = self._span(type_, start, end)
        for i in span:
            p = points[i]
            if p.time_trusted and where(p):
                return p
        return None

    def count_after(self, type_: str, after: datetime, end: datetime) -> int:
        """How many points (trusted or not) have ``after < time <= end``."""
        keys = self._keys.get(type_)
        if not keys:
            return 0
        lo = bisect.bisect_right(keys, (after, _MAX_UUID))
        hi = bisect.bisect_right(keys, (end, _MAX_UUID))
        return max(0, hi - lo)

    def last(
        self, type_: str, end: datetime, n: int, start: datetime, *, trusted_only: bool = True
    ) -> list[Point]:
        """The last ``n`` points with ``start <= time <= end``, oldest first (read from the
        end: the cost is ``n``, not the window's size)."""
        points, span = self._span(type_, start, end)
        out: list[Point] = []
        if n > 0:
            for i in reversed(span):
                p = points[i]
                if p.time_trusted or not trusted_only:
                    out.append(p)
                    if len(out) == n:
                        break
        out.reverse()
        return out
