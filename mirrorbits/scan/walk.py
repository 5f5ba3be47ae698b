"""The file-system half of the local repository scan (spec §5): walking and hashing.

Blocking functions, meant to run in a thread; no Twisted, no Redis, no logging (the
problems met are returned so that the caller logs them on the reactor thread).

* :func:`walk_repository` lists the regular files of a tree in the order of Go's
  ``filepath.Walk``: depth first, the names of each directory sorted by their bytes. Entries
  are examined with ``lstat``: symbolic links (to files or directories, dangling or not),
  directories and special files (FIFOs, sockets, devices) are not indexed, and links are
  never followed. Dot-files are indexed. An entry that cannot be examined, or a directory
  that cannot be listed, is skipped and reported.
* Paths are ``/`` + the path relative to the repository, as text. Names are read as bytes
  and decoded with :func:`os.fsdecode`; a name that is not valid UTF-8 (decoded to lone
  surrogates) cannot be written to Redis as the reference would write it, so the entry —
  and, for a directory, everything below it — is skipped and reported.
* :func:`hash_file` reads a file once and feeds every requested algorithm;
  :func:`needs_hashing` decides whether stored checksums can be kept.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Final

from attrs import frozen

from mirrorbits.model import FileInfo

__all__ = [
    "ALGORITHMS",
    "LocalFile",
    "ScanAborted",
    "WalkProblem",
    "WalkResult",
    "fs_path",
    "hash_file",
    "indexed",
    "needs_hashing",
    "walk_repository",
]

#: The checksums the scan knows, in the order of the ``FILE_<path>`` fields.
ALGORITHMS: Final = ("sha1", "sha256", "md5")

_CHUNK: Final = 1024 * 1024

#: What may stop a long operation early: a ``threading.Event`` or anything with ``is_set``.
StopFlag = threading.Event


class ScanAborted(Exception):
    """The scan was asked to stop before it could finish."""

    def __init__(self) -> None:
        super().__init__("scan aborted")


@frozen
class LocalFile:
    """A regular file of the repository, as seen by ``lstat``."""

    path: str
    size: int
    mod_time_ns: int


@frozen
class WalkProblem:
    """An entry the walk skipped; ``path`` is repository-relative (``/`` for the root)."""

    path: str
    reason: str


@frozen
class WalkResult:
    """The files found, in walk order, the entries skipped on the way, and the directories
    below the root found empty (a mount point not mounted looks so)."""

    files: tuple[LocalFile, ...] = ()
    problems: tuple[WalkProblem, ...] = ()
    empty_directories: tuple[str, ...] = ()


def walk_repository(
    root: str, stop: StopFlag | None = None, on_file: Callable[[], object] | None = None
) -> WalkResult:
    """Every regular file below *root* (which must be an existing directory).

    *on_file* is called (in the walking thread) for each file found, to count progress.

    Raises :class:`FileNotFoundError` (``<root>: No such file or directory``) when *root* does
    not exist, :class:`NotADirectoryError` when it is not a directory, :class:`OSError` when
    it cannot be listed (rather than report an empty repository, which would empty
    ``FILES``) and :class:`ScanAborted` as soon as *stop* is set. *root* itself may be a
    symbolic link to a directory.
    """
    root_bytes = os.fsencode(root)
    try:
        info = os.stat(root_bytes)
    except FileNotFoundError:
        raise FileNotFoundError(f"{root}: No such file or directory") from None
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{root}: Not a directory")
    files: list[LocalFile] = []
    problems: list[WalkProblem] = []
    empty: list[str] = []
    try:
        os.listdir(root_bytes)
    except OSError as err:
        raise OSError(err.errno, f"{root}: {_reason(err)}") from None
    # Depth first, like a recursion: one iterator of sorted entries per open directory.
    stack: list[Iterator[tuple[bytes, str]]] = [_listing(root_bytes, "", problems, empty)]
    while stack:
        if stop is not None and stop.is_set():
            raise ScanAborted()
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        full, path = entry
        try:
            info = os.lstat(full)
        except OSError as err:
            problems.append(WalkProblem(path, _reason(err)))
            continue
        if stat.S_ISDIR(info.st_mode):
            stack.append(_listing(full, path, problems, empty))
        elif stat.S_ISREG(info.st_mode):
            files.append(LocalFile(path, info.st_size, info.st_mtime_ns))
            if on_file is not None:
                on_file()
    return WalkResult(tuple(files), tuple(problems), tuple(empty))


def _listing(
    directory: bytes, relative: str, problems: list[WalkProblem], empty: list[str]
) -> Iterator[tuple[bytes, str]]:
    """The entries of *directory* sorted by name bytes, as (full path, text path) pairs;
    *relative* is added to *empty* when it has none."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as err:
        problems.append(WalkProblem(relative or "/", _reason(err)))
        return iter(())
    if not names and relative:
        empty.append(relative)
    entries: list[tuple[bytes, str]] = []
    for raw_name in names:
        path = f"{relative}/{os.fsdecode(raw_name)}"
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            problems.append(WalkProblem(shown, "name is not valid UTF-8"))
            continue
        entries.append((os.path.join(directory, raw_name), path))
    return iter(entries)


def needs_hashing(
    local: LocalFile, previous: FileInfo | None, enabled: Collection[str], rehash: bool
) -> bool:
    """Whether *local*'s checksums must be computed (again) rather than kept from *previous*.

    Yes when forced, when nothing is stored, when an *enabled* checksum is missing, or when
    the size or the modification time (to the nanosecond) differs.
    """
    if rehash or previous is None:
        return True
    if any(getattr(previous, name) == "" for name in enabled):
        return True
    return previous.size != local.size or previous.mod_time_ns != local.mod_time_ns


def indexed(local: LocalFile, sha1: str = "", sha256: str = "", md5: str = "") -> FileInfo:
    """The ``FILE_<path>`` record of *local* with the given checksums."""
    return FileInfo(path=local.path, size=local.size, mod_time_ns=local.mod_time_ns,
                    sha1=sha1, sha256=sha256, md5=md5)


def fs_path(root: str, path: str) -> bytes:
    """The file-system path of repository *path* (as produced by the walk) under *root*."""
    return os.path.join(os.fsencode(root), os.fsencode(path.lstrip("/")))


def hash_file(
    path: bytes | str,
    algorithms: Collection[str],
    stop: StopFlag | None = None,
) -> dict[str, str]:
    """The lowercase hex digests of the file at *path*, one per name in *algorithms*.

    The file is read once. Raises :class:`OSError` on read errors and :class:`ScanAborted`
    when *stop* is set while reading.
    """
    hashers = {name: hashlib.new(name) for name in ALGORITHMS if name in algorithms}
    if not hashers:
        return {}
    updates: list[Callable[[bytes], None]] = [h.update for h in hashers.values()]
    with open(path, "rb") as stream:
        while True:
            if stop is not None and stop.is_set():
                raise ScanAborted()
            chunk = stream.read(_CHUNK)
            if not chunk:
                break
            for update in updates:
                update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def _reason(err: OSError) -> str:
    return err.strerror or str(err)
