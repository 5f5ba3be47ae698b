"""Which probe answers mean a mirror lost the checked file (pure rules of health/lost.py)."""

from __future__ import annotations

import pytest

from mirrorbits.health.lost import lost_because
from mirrorbits.health.outcome import ProbeResult


@pytest.mark.parametrize(
    ("result", "local_size", "why"),
    [
        (ProbeResult(status=404), 100, "404"),
        (ProbeResult(status=404), None, "404"),
        (ProbeResult(status=200, content_length="99"), 100, "99 bytes instead of 100"),
        (ProbeResult(status=200, content_length=" 100 "), 100, ""),
        (ProbeResult(status=200), 100, ""),  # no length said: nothing to compare
        (ProbeResult(status=200, content_length="many"), 100, ""),
        (ProbeResult(status=200, content_length="99"), None, ""),
        (ProbeResult(status=500), 100, ""),  # the mirror's fault, not one file's
        (ProbeResult(error="refused"), 100, ""),
    ],
)
def test_lost_because(result: ProbeResult, local_size: int | None, why: str) -> None:
    assert lost_because(result, local_size) == why
