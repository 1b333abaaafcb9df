"""``BatchHistogram``: the series prometheus_client's ``Histogram`` exposes for the same values
(a value equal to a bound counts in that bucket: Prometheus ``le``)."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingest._histogram import BatchHistogram

BUCKETS = (0.005, 0.05, 0.25, 1, 60, 86400)
VALUES = [0.0, 0.005, 0.0050001, 0.05, 0.2, 0.25, 0.9, 1.0, 59.9, 60.0, 3600.0, 86400.0, 1e6]


def _series(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_batch_gives_the_series_of_one_observe_per_value() -> None:
    reference, batched = CollectorRegistry(), CollectorRegistry()
    one_by_one = Histogram("lag_seconds", "lag", buckets=BUCKETS, registry=reference)
    for value in VALUES:
        one_by_one.observe(value)
    histogram = BatchHistogram("lag_seconds", "lag", BUCKETS, registry=batched)
    histogram.observe_many(VALUES[:5])
    histogram.observe_many(VALUES[5:])
    histogram.observe_many([])
    assert _series(batched) == _series(reference)
    series = _series(batched)
    # by the Prometheus rule, not by either implementation: le="0.005" holds 0 and 0.005
    assert series[("lag_seconds_bucket", (("le", "0.005"),))] == 2
    assert series[("lag_seconds_bucket", (("le", "+Inf"),))] == len(VALUES)
    assert series[("lag_seconds_count", ())] == len(VALUES)
    assert math.isclose(series[("lag_seconds_sum", ())], sum(VALUES))
    assert "lag_seconds_created" in generate_latest(batched).decode()


def test_nan_and_bad_buckets_are_refused() -> None:
    histogram = BatchHistogram("h_seconds", "h", (1.0,), registry=None)
    with pytest.raises(ValueError, match="NaN"):
        histogram.observe_many([1.0, math.nan])
    with pytest.raises(ValueError, match="buckets"):
        BatchHistogram("g_seconds", "g", (1.0, 1.0), registry=None)
