"""One encoder engine shared by many threads, with short calls served before bulk ones.

A chat turn embeds one or two texts; a background SHAP explanation or an ingest embeds hundreds
in one call. Behind a plain lock such a bulk call held the engine for its whole length (SHAP
sends 64 texts at a time), so every turn queued behind the explanation of an earlier
turn, and lowering the explanation thread's priority did not help: the turn was waiting for the
lock, not for the CPU. Here bulk calls run in slices and, between slices, step aside for any
waiting short call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Measured with E5 on 2 cores: a one-text query sent during a 64-text call waited 60 ms (median
# of 3) instead of 768 ms, and the 64-text call took 0.86 s in slices of 8 against 0.80 s whole.
SLICE = 8


class SharedEngine:
    """Serialises calls of a non-thread-safe engine; calls of up to `slice_size` items go first."""

    def __init__(self, slice_size: int = SLICE) -> None:
        if slice_size < 1:
            raise ValueError(f"slice_size must be positive, got {slice_size}")
        self.slice_size = slice_size
        self._state = threading.Condition()
        self._busy = False
        self._short_waiting = 0

    def run(self, work: Callable[[Sequence[T]], R], items: Sequence[T]) -> list[R]:
        """`work` over `items` in slices, one caller at a time; the results in order."""
        short = len(items) <= self.slice_size
        results = []
        for start in range(0, len(items), self.slice_size):
            self._acquire(short)
            try:
                results.append(work(items[start : start + self.slice_size]))
            finally:
                self._release()
        return results

    def _acquire(self, short: bool) -> None:
        with self._state:
            if short:
                self._short_waiting += 1
            try:
                while self._busy or (not short and self._short_waiting):
                    self._state.wait()
            finally:
                if short:
                    self._short_waiting -= 1
            self._busy = True

    def _release(self) -> None:
        with self._state:
            self._busy = False
            self._state.notify_all()
