"""``History`` reads against a brute-force reading of the same points (hypothesis): a window is
every usable point with ``start <= time <= end`` in (time, id) order; ``last`` its last ``n``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts._history import History
from alerts._model import Point

T0 = datetime(2026, 3, 1, tzinfo=UTC)

# (minute, trusted): few distinct minutes, so that many points share a time
_POINTS = st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=60)


def _history(items: list[tuple[int, bool]]) -> tuple[History, list[Point]]:
    points = [
        Point(
            time=T0 + timedelta(minutes=minute),
            reading_id=uuid.UUID(int=(n * 7919) % 1000 + 1 + 1000 * n),
            values={"systolic": 120.0 + n},
            suspect=False,
            time_trusted=trusted,
            device_id="cuff",
        )
        for n, (minute, trusted) in enumerate(items)
    ]
    history = History()
    ordered = sorted(points, key=lambda p: (p.time, p.reading_id))
    history.extend("blood_pressure", ordered)
    return history, ordered


def _brute(ordered: list[Point], start: datetime, end: datetime, trusted_only: bool) -> list[Point]:
    return [p for p in ordered if start <= p.time <= end and (p.time_trusted or not trusted_only)]


@settings(max_examples=300, deadline=None)
@given(
    _POINTS,
    st.integers(-2, 32),
    st.integers(0, 8),
    st.integers(0, 12),
    st.booleans(),
)
def test_windows_and_last_points_are_those_of_a_brute_force_read(
    items: list[tuple[int, bool]], first: int, span: int, n: int, trusted_only: bool
) -> None:
    history, ordered = _history(items)
    start = T0 + timedelta(minutes=first)
    end = start + timedelta(minutes=span)
    expected = _brute(ordered, start, end, trusted_only)
    assert history.window("blood_pressure", start, end, trusted_only=trusted_only) == expected
    trusted = _brute(ordered, start, end, True)
    odd = [p for p in trusted if int(p.values["systolic"]) % 2]
    found = history.first(
        "blood_pressure", start, end, lambda p: int(p.values["systolic"]) % 2 == 1
    )
    assert found == (odd[0] if odd else None)
    last = history.last("blood_pressure", end, n, start, trusted_only=trusted_only)
    assert last == (expected[-n:] if n else [])


def test_last_of_an_unknown_type_or_none_wanted_is_empty() -> None:
    history, _ = _history([(1, True), (2, True)])
    end = T0 + timedelta(hours=1)
    assert history.last("glucose", end, 3, T0) == []
    assert history.last("blood_pressure", end, 0, T0) == []
    assert [p.time for p in history.last("blood_pressure", end, 1, T0)] == [
        T0 + timedelta(minutes=2)
    ]
