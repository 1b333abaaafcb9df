"""A patient's recent readings, indexed by type and clinical time, for the windowed rules."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from alerts._model import REPORT_TYPES, Point, Quality, StoredReading, assess

__all__ = ["History"]

# Points are keyed by (microseconds since the epoch, the reading id's integer): the order of
# (time, reading id), since a UUID orders by its integer, compared in C. Aware datetimes of
# different zones compare through their UTC offsets, and UUIDs in Python: a window's bisection
# compared a dozen such pairs.
_MAX_ID = (1 << 128) - 1
_MIN_ID = 0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


class History:
    """Usable points per reading type, sorted by (time, reading id). Excluded readings (control
    solution, HI/LO, failures) are not points; they still count as the patient taking a reading
    unless they are control-solution tests."""

    __slots__ = ("_keys", "_points", "_seen", "last_time")

    def __init__(self) -> None:
        self._points: dict[str, list[Point]] = {}
        self._keys: dict[str, list[tuple[int, int]]] = {}
        self._seen: set[int] = set()  # the reading ids' integers
        self.last_time: datetime | None = None

    def __contains__(self, reading_id: object) -> bool:
        return isinstance(reading_id, uuid.UUID) and reading_id.int in self._seen

    def add(self, reading: StoredReading, quality: Quality | None = None) -> Point | None:
        """Add a reading once (a second add of the same id is ignored); returns its point."""
        rid = reading.reading_id.int
        if rid in self._seen:
            return None
        self._seen.add(rid)
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
        key = (_us(reading.time), rid)
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
            rid = point.reading_id.int
            if rid in self._seen:
                continue
            self._seen.add(rid)
            key = (_us(point.time), rid)
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
        lo = bisect.bisect_left(keys, (_us(start), _MIN_ID))
        hi = bisect.bisect_right(keys, (_us(end), _MAX_ID if include_end else _MIN_ID))
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
        lo = bisect.bisect_right(keys, (_us(after), _MAX_ID))
        hi = bisect.bisect_right(keys, (_us(end), _MAX_ID))
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
