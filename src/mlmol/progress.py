"""Progress of long work: a tqdm bar on a terminal, and a plain line every 30 seconds when the output
goes to a log file or a pipe (where a bar would be one endless line, or nothing)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
LOG_EVERY_S = 30.0


class _Lines:
    """A stream that turns tqdm's carriage-return refreshes into whole lines."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             initial: int = 0, enabled: bool = True) -> tqdm:
    """A progress bar over ``iterable`` (or of ``total`` updates) on standard error.

    Arguments:
        iterable: what to iterate over, or None to call ``update`` by hand.
        total: the number of updates (default: ``len(iterable)``).
        desc: the label.
        unit: what one update counts (a step, a frame).
        initial: updates already done (a resumed run).
        enabled: False shows nothing.

    On a terminal a bar refreshes every second; elsewhere a line is written every 30 s and at the end.

    Example:
        >>> for _ in progress(range(3), desc="demo", enabled=False):
        ...     pass
    """
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True, mininterval=1.0)
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, file=_Lines(sys.stderr), ncols=100,
                mininterval=LOG_EVERY_S, maxinterval=LOG_EVERY_S)
