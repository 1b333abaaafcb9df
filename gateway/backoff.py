"""Capped exponential backoff with jitter, for BLE reconnects and the broker connection."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """``base · 2^attempt`` capped at ``cap``, then scaled by a random factor in [0.5, 1].

    "Equal jitter": never less than half the nominal delay, so a flapping link is not hammered,
    and gateways that lost the broker together do not come back in lockstep.
    """

    base: float = 0.5
    cap: float = 60.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        nominal = min(self.cap, self.base * 2 ** min(self.attempt, 32))
        self.attempt += 1
        return float(nominal * (0.5 + self.rng.random() / 2))

    def reset(self) -> None:
        self.attempt = 0
