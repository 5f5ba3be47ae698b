"""Counted downloads that a stopping process could not write to Redis, kept on disk.

A process that stops while Redis is unreachable (``SIGTERM``, ``systemctl restart``, the
process a seamless upgrade retires) writes the batches it still holds to one file of
``StatsSpoolDir``; the daemon that starts next (or the same one, still running) sends them
once Redis takes writes, then deletes the file. Each batch keeps its id, so a batch that did
reach Redis before the stop (a lost reply) is recognised and not counted twice, as long as
its record lives (``statsflush.BATCH_TTL``, an hour).

The file: one JSON object, ``{"format": ..., "version": 1, "sha256": ..., "batches": [{"id":
..., "downloads": N, "arguments": [base64, ...]}, ...]}``, written to a temporary name,
synced, then renamed (the directory made if missing, and synced). A file that is not whole,
or whose batches are not the flush script's arguments, is refused (:class:`SpoolError`): it is
set aside rather than sent. No Redis here: only the files.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Sequence

from attrs import frozen

from mirrorbits.files import replace_file
from mirrorbits.store import keys

FORMAT = "mirrorbits-stats-spool"
VERSION = 1
PREFIX = "stats-"
SUFFIX = ".json"
ASIDE_SUFFIX = ".unreadable"  # a file that could not be read, kept for a look
_NAME = re.compile(re.escape(PREFIX) + r"[0-9]+-[0-9a-f]+" + re.escape(SUFFIX))
_DIGITS = re.compile(rb"[0-9]+")


@frozen
class SpooledBatch:
    """One batch as the flush script takes it."""

    batch_id: str
    downloads: int
    arguments: tuple[bytes, ...]


class SpoolError(Exception):
    """A spool file that cannot be read or is not whole; the message says why."""


def _digest(batches: list[dict[str, object]]) -> str:
    text = json.dumps(batches, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def encode(batches: Sequence[SpooledBatch]) -> bytes:
    """The content of a spool file."""
    items: list[dict[str, object]] = [
        {"id": batch.batch_id, "downloads": batch.downloads,
         "arguments": [base64.b64encode(argument).decode() for argument in batch.arguments]}
        for batch in batches]
    return json.dumps({"format": FORMAT, "version": VERSION, "sha256": _digest(items),
                       "batches": items}).encode() + b"\n"


def decode(data: bytes) -> list[SpooledBatch]:
    """The batches of a spool file's content; :class:`SpoolError` unless it is whole and
    each batch has the shape the script takes (a file edited by hand, or damaged)."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise SpoolError(f"not JSON: {err}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SpoolError("not a statistics spool file")
    if document.get("version") != VERSION:
        raise SpoolError(f"unknown version {document.get('version')!r}")
    items = document.get("batches")
    if not isinstance(items, list) or document.get("sha256") != _digest(items):
        raise SpoolError("checksum mismatch")
    return [_batch(item) for item in items]


def _batch(item: object) -> SpooledBatch:
    if not isinstance(item, dict):
        raise SpoolError("a batch is not an object")
    batch_id, downloads, encoded = item.get("id"), item.get("downloads"), item.get("arguments")
    if (not isinstance(batch_id, str) or not batch_id or not isinstance(downloads, int)
            or isinstance(downloads, bool) or downloads < 0 or not isinstance(encoded, list)
            or not all(isinstance(text, str) for text in encoded)):
        raise SpoolError("a batch lacks its id, count or arguments")
    try:
        arguments = tuple(base64.b64decode(text, validate=True) for text in encoded)
    except (binascii.Error, ValueError):
        raise SpoolError("an argument is not base64") from None
    prefixes = (keys.STATS_FILE.encode(), keys.STATS_MIRROR.encode(),
                keys.STATS_MIRROR_BYTES.encode())
    if (len(arguments) < 6 or (len(arguments) - 6) % 4 or arguments[:3] != prefixes
            or not _DIGITS.fullmatch(arguments[3]) or not _DIGITS.fullmatch(arguments[5])):
        raise SpoolError("a batch's arguments are not those of the statistics script")
    return SpooledBatch(batch_id, downloads, arguments)


def start_line(directory: str) -> str:
    """What the daemon says at its start of where the spool is."""
    return (f"Statistics spool: {directory} (StatsSpoolDir): counted downloads that Redis "
            "cannot take at a stop are kept there until it can")


def save(directory: str, batches: Sequence[SpooledBatch]) -> str:
    """Write ``batches`` to a new file of ``directory`` (made if missing), atomically and
    durably; its path. Raises ``OSError``."""
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}")
    replace_file(final, encode(batches).decode())
    _sync_directory(directory)
    return final


def _sync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def spooled_files(directory: str) -> list[str]:
    """The spool files of ``directory``, oldest first (none when it is missing);
    temporary and set-aside files are not listed. Raises ``OSError`` if unreadable."""
    try:
        with os.scandir(directory) as entries:
            names = [entry for entry in entries
                     if _NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []
    names.sort(key=lambda entry: (_mtime(entry), entry.name))
    return [entry.path for entry in names]


def _mtime(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat(follow_symlinks=False).st_mtime_ns
    except OSError:  # gone meanwhile (read by another process): its turn does not matter
        return 0


def load(path: str) -> list[SpooledBatch]:
    """The batches of one spool file; :class:`SpoolError` if unreadable or damaged,
    ``FileNotFoundError`` if gone meanwhile (read and deleted by another process)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise SpoolError(err.strerror or str(err)) from None
    return decode(data)


def set_aside(path: str) -> str:
    """Rename an unusable spool file so that it is no longer read; its new path."""
    aside = path + ASIDE_SUFFIX
    os.replace(path, aside)
    return aside


def remove(path: str) -> None:
    """Delete a spool file whose batches are all written (already gone: fine)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
