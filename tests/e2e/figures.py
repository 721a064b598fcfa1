"""Wall times of the end-to-end runs, printed in pytest's terminal summary (never asserted:
speed targets are reported, not tested)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

FIGURES: list[str] = []


def record(what: str, seconds: float) -> None:
    FIGURES.append(f"{what}: {seconds:.0f} s")


@contextmanager
def timed(what: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        record(what, time.monotonic() - started)


def table(text: str) -> None:
    """A table (several lines) among the figures, e.g. a run's timeline (timeline.py)."""
    FIGURES.append(text.rstrip("\n"))
