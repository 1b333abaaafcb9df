"""A Prometheus histogram observed a batch at a time.

prometheus_client's ``Histogram.observe`` takes a lock and searches the buckets in Python for
each value; ingest observes one lag per reading, tens of thousands a second. This collector
counts a whole batch in one numpy pass and is exposed through prometheus_client's public
custom-collector API with the series a ``Histogram`` has (``_bucket`` with ``le``, ``_count``,
``_sum``, ``_created``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

__all__ = ["BatchHistogram"]


class BatchHistogram:
    """A histogram without labels; ``buckets`` are the finite upper bounds (``+Inf`` is added)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        bounds = sorted(float(b) for b in buckets if b != float("inf"))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError("buckets must be distinct finite bounds, at least one")
        self.name = name
        self.documentation = documentation
        self._bounds = np.array(bounds, dtype=np.float64)
        self._labels = [floatToGoString(b) for b in bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._counts = np.zeros(len(bounds) + 1, dtype=np.int64)
        self._sum = 0.0
        self._created = time.time()
        self._lock = threading.Lock()  # the metrics server's thread reads while ingest adds
        if registry is not None:
            registry.register(self)

    def observe_many(self, values: npt.ArrayLike) -> None:
        """Count ``values``: each in the first bucket whose bound is at or above it
        (Prometheus ``le``); NaN is refused, as ``Histogram.observe`` would count it nowhere."""
        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size == 0:
            return
        if np.isnan(array).any():
            raise ValueError("a histogram observation cannot be NaN")
        counts = np.bincount(
            np.searchsorted(self._bounds, array, side="left"), minlength=len(self._counts)
        )
        total = float(array.sum())
        with self._lock:
            self._counts += counts
            self._sum += total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            cumulative = np.cumsum(self._counts).tolist()
            total = self._sum
        family = HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(self._labels, cumulative, strict=True)),
            sum_value=total,
        )
        family.add_sample(f"{self.name}_created", {}, self._created)
        yield family
