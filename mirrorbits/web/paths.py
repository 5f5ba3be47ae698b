"""Request paths: cleaning (the router's 301) and evaluation against the repository.

Pure functions, apart from :func:`evaluate` which resolves symlinks on disk (and
:class:`EvaluationMemo`, which remembers its answers for a second).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from attrs import frozen
from twisted.internet.interfaces import IReactorTime


def decode_path(raw: bytes) -> str:
    """Percent-decode a request path (``+`` stays a ``+``); invalid UTF-8 survives as escapes."""
    if b"%" not in raw:
        return raw.decode("utf-8", "surrogateescape")
    return unquote_to_bytes(raw).decode("utf-8", "surrogateescape")


def clean_path(path: str) -> str:
    """The canonical form of ``path``: ``.``/``..`` and ``//`` removed, trailing ``/`` kept."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path  # nothing to remove (the common case)
    return _normalise(path)


def _normalise(path: str) -> str:
    if not path:
        return "/"
    if path[0] != "/":
        path = "/" + path
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _query_unescape(text: bytes) -> bytes | None:
    """``+`` as space and ``%XX`` decoded; None for a malformed escape."""
    if _BAD_ESCAPE.search(text):
        return None
    return unquote_to_bytes(text.replace(b"+", b" "))


def parse_query(uri: bytes) -> dict[bytes, list[bytes]]:
    """The query arguments of a request URI, as Go's ``URL.Query()`` reads them.

    Keys without ``=`` count (``?md5`` -> ``{b"md5": [b""]}``), values keep their order,
    and pairs containing ``;`` or a malformed escape are dropped.
    """
    _, sep, query = uri.partition(b"?")
    args: dict[bytes, list[bytes]] = {}
    if not sep:
        return args
    for pair in query.split(b"&"):
        if not pair or b";" in pair:
            continue
        raw_key, _, raw_value = pair.partition(b"=")
        key, value = _query_unescape(raw_key), _query_unescape(raw_value)
        if key is None or value is None:
            continue
        args.setdefault(key, []).append(value)
    return args


class Forbidden(Exception):
    """The path leaves the repository (403)."""


class NotFound(Exception):
    """The path does not exist on the local disk (404)."""


@frozen
class LocalPath:
    """A request path mapped onto the repository."""

    path: str  # repository-relative, starts with "/"; "" for the repository root
    is_file: bool


_O_PATH = getattr(os, "O_PATH", 0)
_PROC_FD = "/proc/self/fd/"
_FAST_RESOLVE = bool(_O_PATH) and os.path.isdir(_PROC_FD)


def _resolve(absolute: str) -> tuple[str, bool]:
    """The path with every symlink resolved, and whether it is a regular file.

    On Linux one ``open(O_PATH)`` resolves the whole path (4 system calls instead of one
    ``lstat`` per component); elsewhere ``realpath``. Raises OSError when it does not exist.
    """
    if _FAST_RESOLVE:
        fd = os.open(absolute, _O_PATH | os.O_CLOEXEC)
        try:
            resolved = os.readlink(_PROC_FD + str(fd))
            is_file = stat.S_ISREG(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return resolved, is_file
    resolved = os.path.realpath(absolute, strict=True)
    return resolved, os.path.isfile(resolved)


def evaluate(repository: str, path: str,
             resolve: Callable[[str], tuple[str, bool]] | None = None) -> LocalPath:
    """Map a clean request path to the repository (spec §8.2); symlinks are resolved.

    Raises :class:`Forbidden` for a path outside the repository (also through a
    symlink) and :class:`NotFound` for a missing or dangling one. ``resolve``: how the
    absolute path is resolved (:func:`_resolve`; the memo's records what it finds).
    """
    root = repository.rstrip("/") or "/"
    absolute = posixpath.normpath(root + "/" + path.lstrip("/"))
    prefix = root if root.endswith("/") else root + "/"
    if absolute != root and not absolute.startswith(prefix):
        raise Forbidden(path)
    try:
        resolved, is_file = (resolve or _resolve)(absolute)
    except (OSError, ValueError):
        raise NotFound(path) from None
    if resolved != absolute:
        real_root = os.path.realpath(root)
        real_prefix = real_root if real_root.endswith("/") else real_root + "/"
        if resolved == real_root:
            absolute = root
        elif resolved.startswith(real_prefix):
            absolute = prefix + resolved[len(real_prefix):]
        else:
            raise Forbidden(path)
    relative = absolute[len(root):] if absolute != root else ""
    return LocalPath(relative.rstrip("/") if relative != "/" else "", is_file)


_Outcome = tuple[float, LocalPath | None, type[Exception] | None]
# A folder's memo: the repository, when it expires, the folder's real path and its path in
# the repository (both None unless it is a directory of the repository, resolved).
_Folder = tuple[str, float, str | None, str | None]


class EvaluationMemo:
    """:func:`evaluate` answers reused for ``ttl`` seconds of the injected clock.

    A requested file is then resolved on disk at most once per ``ttl`` instead of on every
    request. Missing and forbidden paths are remembered too, so a flood of requests for them
    does not reach the disk either. A file added, removed or re-linked in the repository is
    seen within ``ttl`` (5 s by default), or at once when its change is published
    (:meth:`forget`, fed by ``_mirrorbits_file_update``: the repository watch publishes
    within a second). Memory is bounded by ``capacity`` paths (the memo starts over when
    full).

    Each folder's answer is remembered the same way (and for the same ``ttl``) with its real
    path, so that evaluating a file is one ``lstat`` of its name in that real folder (four
    system calls for the whole path otherwise) unless the name is a symlink: the file is the
    folder's path and its name. A file's answer never outlives the folder's it was made
    from, so a change anywhere on the path is still seen within ``ttl``.
    """

    __slots__ = ("_clock", "_folders", "_memo", "capacity", "ttl")

    def __init__(self, clock: IReactorTime, ttl: float = 5.0, capacity: int = 100_000) -> None:
        self._clock = clock
        self.ttl = ttl
        self.capacity = capacity
        self._memo: dict[str, tuple[str, _Outcome]] = {}  # path -> repository, outcome
        self._folders: dict[str, _Folder] = {}  # a path's folder (as in the path) -> folder

    def evaluate(self, repository: str, path: str) -> LocalPath:
        """Like :func:`evaluate` (same result, same exceptions), from memory when fresh."""
        now = self._clock.seconds()
        known = self._memo.get(path)
        if known is None or known[0] != repository or known[1][0] <= now:
            outcome = self._outcome(repository, path, now)
            if len(self._memo) >= self.capacity:
                self._memo.clear()
            self._memo[path] = (repository, outcome)
        else:
            outcome = known[1]
        if outcome[2] is not None:
            raise outcome[2](path)
        return outcome[1]  # type: ignore[return-value]

    def resolve_ahead(self, repository: str, path: str) -> None:
        """Resolve ``path`` now unless a fresh answer is remembered: a file the first
        requests are expected to ask for, resolved before they come (missing or forbidden
        paths are remembered as such, as :meth:`evaluate` does)."""
        with contextlib.suppress(Forbidden, NotFound):
            self.evaluate(repository, path)

    def forget(self, path: str) -> None:
        """The repository's ``path`` changed (published): resolve it again when next asked,
        its folder too."""
        self._memo.pop(path, None)
        self._folders.pop(path.rpartition("/")[0], None)

    def _outcome(self, repository: str, path: str, now: float) -> _Outcome:
        """What :func:`evaluate` answers for ``path`` now, and until when it holds."""
        folder_path, _, name = path.rpartition("/")
        if name and path.startswith("/") and "//" not in path and "/." not in path:
            # A clean path: an entry of its folder, whose own answer may be remembered.
            _, expires, real, relative = self._folder(repository, folder_path, now)
            if real is not None and relative is not None:  # expires no later than the folder
                try:
                    mode = os.lstat(real + "/" + name).st_mode
                except (OSError, ValueError):
                    return expires, None, NotFound
                if not stat.S_ISLNK(mode):
                    return expires, LocalPath(relative + "/" + name, stat.S_ISREG(mode)), None
        try:
            return now + self.ttl, evaluate(repository, path), None
        except (Forbidden, NotFound) as error:
            return now + self.ttl, None, type(error)

    def _folder(self, repository: str, folder_path: str, now: float) -> _Folder:
        """The memo of the folder ``folder_path`` (a clean request path, "" for the root)."""
        known = self._folders.get(folder_path)
        if known is not None and known[0] == repository and known[1] > now:
            return known
        real = relative = None
        if repository.rstrip("/"):  # below "/", the paths the memo's answers are made of
            found: list[str] = []

            def resolve(absolute: str) -> tuple[str, bool]:
                resolved = _resolve(absolute)
                found.append(resolved[0])
                return resolved

            with contextlib.suppress(Forbidden, NotFound):
                local = evaluate(repository, folder_path or "/", resolve)
                if not local.is_file:
                    real, relative = found[0], local.path
        if len(self._folders) >= self.capacity:
            self._folders.clear()
        folder = self._folders[folder_path] = (repository, now + self.ttl, real, relative)
        return folder
