"""How many HTTP worker processes a node runs (pure)."""

from __future__ import annotations

from mirrorbits.config import Config


def worker_count(config: Config, *, from_file: bool, cores: int | None) -> int:
    """``Workers``, else one per core (``cores``; None when unknown: 1).

    A configuration not read from a file (the embedded one: a trial or ``--demo``) keeps one
    process: nothing can set ``Workers`` there, and a worker reads the file.
    """
    if not from_file:
        return 1
    if config.workers is not None:
        return config.workers
    return max(1, cores or 1)
