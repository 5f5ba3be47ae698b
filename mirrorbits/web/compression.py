"""Gzip of answer bodies when configured and accepted (spec §8.6)."""

from __future__ import annotations

import gzip

from mirrorbits.config import Config


def gzipped(config: Config, accept_encoding: bytes | None, body: bytes) -> bytes | None:
    """``body`` compressed when ``Gzip`` is on and the client accepts gzip, else None."""
    if config.gzip and accept_encoding is not None and b"gzip" in accept_encoding:
        return gzip.compress(body, compresslevel=1, mtime=0)
    return None
