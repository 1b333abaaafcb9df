"""The batch prefilter: which patients' new readings can open, change or clear nothing.

A patient is *settled* for a batch of new readings when

- no active episode belongs to a family that a per-reading rule of those readings' types
  speaks for (the rule may coalesce into it, clear it or confirm it),
- no active episode waits on time (a re-measure deadline, a clearing hold),
- no missing-data item is active (a reading may end it),

and every reading is *quiet*: for every per-reading rule the patient runs on its type,
:meth:`alerts._rules.Rule.quiet` proves with vector comparisons, from the reading's own values
and flags and the patient's thresholds at the reading's time, that the rule finds nothing in it
whatever the history. The engine would then change nothing (no episode, no event), so the live
path skips such a patient (no history query, no engine) and the replay only adds the readings
to its history. Anything not proven goes through the engine. :func:`per_reading` switches the
prefilter off: every patient through the engine, the reference the tests compare with.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextvars import ContextVar

import numpy as np

from alerts._engine import Episode, PatientContext, rules_for
from alerts._model import ReadingColumns, StoredReading
from alerts._rules import RULES, Mask

__all__ = ["per_reading", "prefilter_enabled", "quiet_mask", "settled"]

_PREFILTER: ContextVar[bool] = ContextVar("alerts_batch_prefilter", default=True)


def prefilter_enabled() -> bool:
    """Whether the live path and the replay skip settled patients (the default)."""
    return _PREFILTER.get()


@contextlib.contextmanager
def per_reading() -> Iterator[None]:
    """Inside: no prefilter, every patient's readings through the per-reading engine."""
    token = _PREFILTER.set(False)
    try:
        yield
    finally:
        _PREFILTER.reset(token)


@functools.lru_cache(maxsize=1024)
def _families(enabled: frozenset[str], type_: str) -> frozenset[str]:
    """The episode families the per-reading rules of ``type_`` speak for."""
    return frozenset(RULES[rid].family for rid in rules_for(enabled, type_))


def settled(ctx: PatientContext, active: Iterable[Episode], types: Collection[str]) -> bool:
    """No active episode of the patient that readings of ``types`` could change by
    themselves or that time is about to change (see the module docstring)."""
    families: set[str] = set()
    for t in types:
        families |= _families(ctx.thresholds.enabled, t)
    for ep in active:
        if (
            ep.family in families
            or ep.family == "missing_data"
            or ep.confirm_by is not None
            or (ep.clear_candidate_at is not None and ep.cleared_at is None)
        ):
            return False
    return True


def quiet_mask(readings: Sequence[StoredReading], contexts: Sequence[PatientContext]) -> Mask:
    """Per reading (``contexts[i]`` is the context of ``readings[i]``'s patient): True when no
    per-reading rule of the patient can find anything in it while its family is inactive."""
    out = np.zeros(len(readings), dtype=np.bool_)
    by_type: dict[str, list[int]] = {}
    for i, (r, ctx) in enumerate(zip(readings, contexts, strict=True)):
        end = ctx.thresholds.postpartum_end
        if end is not None and r.time >= end:
            continue  # the set in force changes at the end of the window: the engine decides
        by_type.setdefault(r.type, []).append(i)
    for type_, rows in by_type.items():
        cols = ReadingColumns.of(type_, [readings[i] for i in rows])
        # per threshold set (patients without overrides share theirs): scalar parameters
        groups: dict[int, tuple[PatientContext, list[int]]] = {}
        for k, i in enumerate(rows):
            ctx = contexts[i]
            group = groups.get(id(ctx.thresholds))
            if group is None:
                groups[id(ctx.thresholds)] = (ctx, [k])
            else:
                group[1].append(k)
        index = np.array(rows)
        for ctx, ks in groups.values():
            sub = cols if len(groups) == 1 else cols.take(np.array(ks))
            mask = np.ones(len(ks), dtype=np.bool_)
            for rid in rules_for(ctx.thresholds.enabled, type_):
                q = RULES[rid].quiet(sub, ctx.thresholds.rule(rid))
                if q is None:
                    mask[:] = False
                    break
                mask &= q
            out[index if len(groups) == 1 else index[ks]] = mask
    return out
