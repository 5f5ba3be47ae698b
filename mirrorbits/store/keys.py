"""Every Redis key name and pub/sub channel of Mirrorbits' database version 2.

This module is the only place where a key string is spelled. Paths are
repository-relative and start with ``/``; they are not escaped.
"""

from __future__ import annotations

import re

DB_VERSION = "MIRRORBITS_DB_VERSION"
CURRENT_DB_VERSION = 2
LAST_MID = "LAST_MID"
MIRRORS = "MIRRORS"
FILES = "FILES"
FILES_TMP = "FILES_TMP"
SOURCE_REPO_SYNC = "SOURCE_REPO_SYNC"
LOCK_UPGRADE = "LOCK_upgrade"
STATS_TOTAL = "STATS_TOTAL"
STATS_FILE = "STATS_FILE"
STATS_MIRROR = "STATS_MIRROR"
STATS_MIRROR_BYTES = "STATS_MIRROR_BYTES"

# Pub/sub channels (server-wide, not per-DB).
CHANNEL_CLUSTER = "_mirrorbits_cluster"
CHANNEL_FILE_UPDATE = "_mirrorbits_file_update"
CHANNEL_MIRROR_UPDATE = "_mirrorbits_mirror_update"
CHANNEL_MIRROR_FILE_UPDATE = "_mirrorbits_mirror_file_update"
ALL_CHANNELS = (
    CHANNEL_CLUSTER,
    CHANNEL_FILE_UPDATE,
    CHANNEL_MIRROR_UPDATE,
    CHANNEL_MIRROR_FILE_UPDATE,
)


def mirror(mirror_id: int | str) -> str:
    """The hash holding one mirror's record."""
    return f"MIRROR_{mirror_id}"


def mirror_logs(mirror_id: int | str) -> str:
    """The list of one mirror's JSON event entries."""
    return f"MIRRORLOGS_{mirror_id}"


def file(path: str) -> str:
    """The hash describing one local file (size, modTime, hashes)."""
    return f"FILE_{path}"


def mirror_files(mirror_id: int | str) -> str:
    """The set of paths found on a mirror by its last successful scan."""
    return f"MIRRORFILES_{mirror_id}"


def mirror_files_tmp(mirror_id: int | str) -> str:
    """The set being filled while a mirror is scanned."""
    return f"MIRRORFILESTMP_{mirror_id}"


def handled_files_tmp(mirror_id: int | str) -> str:
    """``HANDLEDFILES_<id>`` being rebuilt (ours; the reference uses SINTERSTORE)."""
    return f"HANDLEDFILESTMP_{mirror_id}"


def discarded(key: str) -> str:
    """Where a replaced big value waits to be freed in the background (ours)."""
    return f"DISCARDED_{key}"


def handled_files(mirror_id: int | str) -> str:
    """``FILES`` ∩ ``MIRRORFILES_<id>``, computed after each scan."""
    return f"HANDLEDFILES_{mirror_id}"


def file_mirrors(path: str) -> str:
    """The set of IDs of mirrors that hold ``path``."""
    return f"FILEMIRRORS_{path}"


def file_info(mirror_id: int | str, path: str) -> str:
    """The hash with size and modTime of ``path`` on one mirror."""
    return f"FILEINFO_{mirror_id}_{path}"


def scanning(mirror_id: int | str) -> str:
    """The cluster-wide scan lock of one mirror."""
    return f"SCANNING_{mirror_id}"


def downloaded(client_digest: str, path: str) -> str:
    """The Range-request de-duplication marker."""
    return f"DOWNLOADED_{client_digest}_{path}"


def stats_batch(batch_id: str) -> str:
    """Marks a statistics batch as written, for a while, so that it is never written twice
    (ours: the reference has no such key)."""
    return f"STATSBATCH_{batch_id}"


def stats_suffixes(year: int, month: int, day: int) -> tuple[str, str, str, str]:
    """The day, month, year and total suffixes of the statistics keys."""
    return (f"_{year:04d}_{month:02d}_{day:02d}", f"_{year:04d}_{month:02d}", f"_{year:04d}", "")


#: ``SCAN`` pattern of every statistics key (and of a few others, told apart by
#: :func:`stats_key_period`).
STATS_PATTERN = "STATS_*"
_STATS_PERIOD_SUFFIX = re.compile(
    r"STATS_(?:FILE|MIRROR|MIRROR_BYTES)_([0-9]{4})(?:_([0-9]{2}))?(?:_([0-9]{2}))?")


def stats_key_period(key: str) -> tuple[int, int, int] | None:
    """``(year, month, day)`` of a dated statistics key (``0`` for what a monthly or yearly
    key has not); ``None`` for any other key (the totals, ``STATS_TOTAL``, other keys)."""
    match = _STATS_PERIOD_SUFFIX.fullmatch(key)
    if match is None:
        return None
    year, month, day = match.groups()
    if day is not None and month is None:
        return None
    return int(year), int(month or 0), int(day or 0)


def cluster_announce(redis_db: int, node_id: str) -> str:
    """The message a node publishes every second on ``_mirrorbits_cluster``."""
    return f"HELLO{redis_db} {node_id}"


def mirror_file_update(mirror_id: int | str, path: str) -> str:
    """The message published on ``_mirrorbits_mirror_file_update``."""
    return f"{mirror_id} {path}"


# Older database formats and upgrade scratch space, used only by dbversion.py.
FILE_INFO_PREFIX = "FILEINFO_"
V1_SCRATCH_PREFIX = "V1_"
V2_SCRATCH_PREFIX = "V2_"


def v0_mirror_files(name: str) -> str:
    """Version 0's set of the paths on a mirror, keyed by the mirror's name."""
    return f"MIRROR_{name}_FILES"
