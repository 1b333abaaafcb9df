"""Properties of the engine over arbitrary reading sequences (hypothesis)."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import TEMPLATES, StoredReading
from tests.support.alerts import T0, Sim

_FLAGS = st.sampled_from(
    [
        "body_movement",
        "cuff_loose",
        "irregular_pulse",
        "control_solution",
        "result_too_high",
        "result_too_low",
        "device_clock_reset",
        "systolic_nan",
        "made_up_flag",
    ]
)
_VALUE = st.one_of(
    st.floats(min_value=-50, max_value=1200, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0]),
)


@st.composite
def _readings(draw: st.DrawFn) -> list[tuple[str, float, dict[str, float], tuple[str, ...]]]:
    items = []
    for _ in range(draw(st.integers(1, 25))):
        type_ = draw(st.sampled_from(["blood_pressure", "glucose", "body_weight"]))
        codes = {
            "blood_pressure": ("systolic", "diastolic"),
            "glucose": ("glucose",),
            "body_weight": ("body_weight",),
        }[type_]
        values = {c: draw(_VALUE) for c in codes}
        hours = draw(st.floats(min_value=0, max_value=24 * 20))
        flags = tuple(draw(st.lists(_FLAGS, max_size=2)))
        items.append((type_, hours, values, flags))
    return items


def _stored(
    patient: uuid.UUID, items: list[tuple[str, float, dict[str, float], tuple[str, ...]]]
) -> list[StoredReading]:
    out = []
    for n, (type_, hours, values, flags) in enumerate(items):
        at = T0 + timedelta(hours=hours)
        out.append(
            StoredReading(
                reading_id=uuid.UUID(int=n + 1),
                patient_id=patient,
                type=type_,
                time=at,
                received_at=at + timedelta(minutes=1),
                device_id="d",
                gateway_id="g",
                flags=flags,
                values=values,
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(items=_readings(), template=st.sampled_from(sorted(TEMPLATES)))
def test_never_raises_and_duplicates_change_nothing(
    items: list[tuple[str, float, dict[str, float], tuple[str, ...]]], template: str
) -> None:
    once, twice = Sim(template), Sim(template)
    readings = _stored(once.patient, items)
    copies = _stored(twice.patient, items)
    for r in sorted(readings, key=lambda r: r.received_at):
        once.feed([r], now=r.received_at)
    for r in sorted(copies, key=lambda r: r.received_at):
        twice.feed([r, r], now=r.received_at)
        twice.feed([r], now=r.received_at + timedelta(seconds=1))
    assert once.kinds() == twice.kinds()
    for ep in once.episodes.values():
        assert ep.explanation
        assert ep.state in ("pending", "open", "acknowledged", "resolved")
        assert math.isfinite(ep.worst_value)
