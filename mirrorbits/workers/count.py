"""How many HTTP worker processes a node runs (pure)."""

from __future__ import annotations

from mirrorbits.config import Config


def worker_count(config: Config, *, embedded: bool, cores: int | None) -> int:
    """``Workers``, else one per core (``cores``; None when unknown: 1).

    The embedded configuration (no file, a trial or ``--demo``) keeps one process: nothing
    can set ``Workers`` there, and its private redis-server and demo mirrors are small.
    """
    if embedded:
        return 1
    if config.workers is not None:
        return config.workers
    return max(1, cores or 1)
