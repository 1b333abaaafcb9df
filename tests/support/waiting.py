"""Waiting in async tests for state that the code under test changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["eventually"]


async def eventually(
    predicate: Callable[[], object], within: float = 20.0, step: float = 0.05
) -> None:
    """Poll ``predicate()`` until it holds; AssertionError after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached in {within} s")
        await asyncio.sleep(step)
