"""The collector's thresholds once a process serves keep each collection short: the middle
generation holds at most 50,000 objects (with (50,000, 20) it held up to 1,000,000, and one
collection stopped a worker for 148-192 ms in its first seconds under load)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mirrorbits.daemon import tune_garbage_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_the_middle_generation_stays_small() -> None:
    tune_garbage_collector()
    young, middle, _ = gc.get_threshold()
    assert young * middle <= 50_000
    assert young >= 5_000  # requests' garbage, short-lived, is not collected every few turns
    assert gc.get_freeze_count() > 0  # what the start-up built is never scanned again
