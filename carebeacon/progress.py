"""Progress bars for operations that take more than a few seconds (tqdm, on stderr).

A bar shows only on a terminal (stderr is a tty) and never when the caller is ``quiet`` (a
``--json`` mode): pipes, logs and captured output stay clean, and stdout is never written.
Text printed while a bar runs goes through :func:`say`, which moves the bar out of its way.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import NoReturn, TextIO, TypeAlias, TypeVar

from tqdm import tqdm

__all__ = ["Bar", "Steps", "bar", "say", "shown", "track"]

T = TypeVar("T")
Bar: TypeAlias = "tqdm[NoReturn]"  # what bar() returns: update(n), set_postfix_str, close


def shown(*, quiet: bool = False) -> bool:
    """Whether a bar would be drawn: not ``quiet`` and stderr is a terminal."""
    return not quiet and sys.stderr.isatty()


def bar(total: int | None = None, *, desc: str, unit: str = "it", quiet: bool = False) -> Bar:
    """A bar to ``update(n)`` by hand (a ``with`` block closes it); a no-op when not shown."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not shown(quiet=quiet),
        leave=False,
        dynamic_ncols=True,
    )


def track(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    quiet: bool = False,
) -> Iterator[T]:
    """``iterable``'s items, with a bar while they are consumed."""
    if not shown(quiet=quiet):
        yield from iterable
        return
    yield from tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )


class Steps:
    """A bar over named steps that shows the one under way; :meth:`done` after each."""

    def __init__(self, names: Sequence[str], *, desc: str, quiet: bool = False) -> None:
        self._names = tuple(names)
        self._done = 0
        self._bar = bar(len(self._names), desc=desc, unit="step", quiet=quiet)
        self._bar.set_postfix_str(self._names[0] if self._names else "")

    def done(self) -> None:
        self._done += 1
        self._bar.update(1)
        if self._done < len(self._names):
            self._bar.set_postfix_str(self._names[self._done])
        else:
            self.close()

    def close(self) -> None:
        self._bar.close()


def say(text: str, *, file: TextIO | None = None) -> None:
    """Print a line (default stdout) without tearing a running bar."""
    out = file or sys.stdout
    tqdm.write(text, file=out)
    out.flush()
