"""A short call gets the shared engine between the slices of a bulk call already running."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from retrieval.encoders.sharing import SharedEngine


def test_short_call_goes_between_slices_of_a_bulk_call() -> None:
    engine = SharedEngine(slice_size=2)
    order: list[str] = []
    first_slice_running = threading.Event()
    short_waiting = threading.Event()

    def bulk(part: Sequence[int]) -> int:
        order.append(f"bulk{part[0]}")
        if part[0] == 0:
            first_slice_running.set()
            assert short_waiting.wait(5)
            # Give the short caller time to register as waiting on the engine.
            while engine._short_waiting == 0:
                threading.Event().wait(0.001)
        return sum(part)

    def short(part: Sequence[int]) -> int:
        order.append("short")
        return sum(part)

    results: list[int] = []
    runner = threading.Thread(target=lambda: results.extend(engine.run(bulk, list(range(6)))))
    runner.start()
    assert first_slice_running.wait(5)
    short_waiting.set()
    assert engine.run(short, [10]) == [10]
    runner.join(5)
    assert results == [1, 5, 9]
    assert order == ["bulk0", "short", "bulk2", "bulk4"]


def test_results_come_back_in_order_of_the_slices() -> None:
    assert SharedEngine(slice_size=3).run(list, list(range(7))) == [[0, 1, 2], [3, 4, 5], [6]]


def test_slice_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slice_size must be positive"):
        SharedEngine(slice_size=0)
