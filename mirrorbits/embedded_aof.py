"""The private redis-server's append-only file: at most a second of writes lost to a kill.

A redis-server started with ``--appendonly yes`` loads its append-only file only: on a data
directory holding a snapshot (``dump.rdb``, written by earlier versions) and no such file,
it would start empty. So the server starts with ``--appendonly no`` until the directory has
one, and once it answers (its data loaded), ``CONFIG SET appendonly yes``
(:func:`mirrorbits.store.appendonly.turn_on_append_only`) writes the file from the loaded
data. Redis ≥ 7 keeps it as a manifest and files under ``appendonlydir/``,
Redis 6 as one ``appendonly.aof``.
"""

from __future__ import annotations

import os

APPEND_FILE = "appendonly.aof"  # --appendfilename: Redis 6's file, Redis 7's names' stem
APPEND_DIR = "appendonlydir"  # Redis 7's default --appenddirname (Redis 6 refuses the option)
POLL_INTERVAL = 0.1  # seconds between two looks at a server still starting


def has_append_only_file(directory: str) -> bool:
    """Whether a redis-server started with ``--appendonly yes`` in ``directory`` loads data
    from an append-only file there (else it would start empty)."""
    manifest = os.path.join(directory, APPEND_DIR, f"{APPEND_FILE}.manifest")
    if os.path.isfile(manifest):
        return True
    try:
        # Redis 6 creates the file empty when told to start one, fills it when done
        return os.path.getsize(os.path.join(directory, APPEND_FILE)) > 0
    except OSError:
        return False


class NotReady(Exception):
    """The server at the address is not the expected one yet, or still loads its data."""
