"""CPU cost of rendering ``?mirrorstats``, and of its 30-day chart alone (no Redis, no HTTP).

    .venv/bin/python bench/pages/run.py --mirrors 50 --rounds 5

Prints the best per-page time over the rounds: the whole page (table, map, chart) and the
chart's part (SVG text, read back as template nodes, flattened).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.template import XMLString, flattenString

from mirrorbits.model import Mirror
from mirrorbits.web import history_chart
from mirrorbits.web.mirrorstats import HISTORY_DAYS, build_view, render_mirrorstats

NOW = 1_764_806_400.0  # 2025-12-04 00:00 UTC
DAY = date(2025, 12, 4)


def synchronous(coroutine_or_deferred: Any) -> Any:
    """The result of work that finishes at once (no reactor needed)."""
    d = (coroutine_or_deferred if isinstance(coroutine_or_deferred, Deferred)
         else Deferred.fromCoroutine(coroutine_or_deferred))
    results: list[Any] = []
    d.addBoth(results.append)
    assert len(results) == 1, "did not finish synchronously"
    if isinstance(results[0], Exception):
        raise results[0]
    return results[0]


def best_ms(work: Callable[[], object], rounds: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            work()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    pick = random.Random(1)
    mirrors = [Mirror(id=mid, name=f"mirror-{mid}.example.org", http_url=f"http://m{mid}/",
                      enabled=True, http_up=True, latitude=pick.uniform(-60, 70),
                      longitude=pick.uniform(-180, 180))
               for mid in range(1, options.mirrors + 1)]
    earlier = [{m.id: pick.randint(0, 5000) for m in mirrors} for _ in range(HISTORY_DAYS - 1)]
    today = {m.id: pick.randint(0, 5000) for m in mirrors}
    view = build_view(mirrors, today, dict(today), NOW, DAY, earlier)

    def page() -> bytes:
        body: bytes = synchronous(render_mirrorstats(view))
        return body

    def chart() -> bytes:
        nodes = XMLString(history_chart.render_svg(view.history)).load()
        text: bytes = synchronous(flattenString(None, nodes))
        return text

    size = len(page())
    print(f"{options.mirrors} mirrors, {HISTORY_DAYS} days; page {size:,} bytes, "
          f"chart {len(chart()):,} bytes")
    print(f"whole page: {best_ms(page, options.rounds, options.repeat):.1f} ms "
          f"(best of {options.rounds} rounds)")
    print(f"chart part: {best_ms(chart, options.rounds, options.repeat):.1f} ms")


if __name__ == "__main__":
    main()
