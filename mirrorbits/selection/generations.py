"""Repository generations (``GenerationIndexes``, docs/freshness.md): pure rules.

An index file (``dists/<suite>/InRelease``, ``.../repodata/repomd.xml``) names the files of
its directory tree by checksum: a client that fetched one copy of the index and then a file
of that tree from a mirror of another *generation* (another copy of the index) gets a "Hash
Sum mismatch". The generation of a tree is the origin's copy of its index (size and
modification time, as every copy is compared); a mirror holds it when its recorded copy of
the index matches the origin's, exactly.

The *scope* of an index is its directory and everything below: for
``dists/bookworm/InRelease``, ``dists/bookworm/**`` (``Release``, ``Packages``, ``by-hash``...);
for ``os/repodata/repomd.xml``, ``os/repodata/**`` (``primary.xml.gz``...). Package files
(``pool/``, ``Packages/``) are outside: their names change with their versions, so the
per-file comparison is enough for them, and a pool shared by several suites has no one index.

:func:`apply_generations` excludes, from the mirrors that pass rules 1 to 3 for a file of a
scope, those that do not hold the current generation of every index covering it, when one
mirror usable by every client (no country, continent or AS restriction) holds it; otherwise
nothing changes (the choice is file by file, as without generations) and the outcome says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase

from attrs import field, frozen

from mirrorbits.model import FileInfo
from mirrorbits.selection.filter import Prefiltered, _FileCheck
from mirrorbits.selection.types import SelectionOptions

_GLOB = frozenset("*?[")


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a ``GenerationIndexes`` entry, or None when it can."""
    segments = pattern.strip("/").split("/")
    name = segments[-1]
    if not pattern.strip("/"):
        return "names no file"
    if any(segment in ("", ".", "..") for segment in segments):
        return "has an empty, '.' or '..' segment"
    if _GLOB & set(name) or name == "**":
        return ("must end with the index file's own name (no '*', '?' or '['), "
                "e.g. 'dists/*/InRelease'")
    if any(_unclosed_bracket(segment) for segment in segments):
        return "has a '[' without its ']' (a typo? '[' starts a set of characters, e.g. [ab])"
    return None


def _unclosed_bracket(segment: str) -> bool:
    """Whether a ``[`` of ``segment`` has no ``]`` closing it, as ``fnmatch`` reads a set
    (``[!...]``, a ``]`` first is a member); it would then match a ``[`` literally."""
    start = segment.find("[")
    while start != -1:
        end = start + 1
        if segment[end:end + 1] == "!":
            end += 1
        if segment[end:end + 1] == "]":
            end += 1
        close = segment.find("]", end)
        if close == -1:
            return True
        start = segment.find("[", close + 1)
    return False


def _matches(pattern: Sequence[str], segments: Sequence[str]) -> bool:
    """Whether directory ``segments`` match ``pattern`` (``*``, ``?``, ``[...]`` within one
    segment, ``**`` any number of segments, none included)."""
    if not pattern:
        return not segments
    first = pattern[0]
    if first == "**":
        return any(_matches(pattern[1:], segments[skip:]) for skip in range(len(segments) + 1))
    return bool(segments) and fnmatchcase(segments[0], first) and _matches(pattern[1:],
                                                                            segments[1:])


@frozen
class GenerationIndexes:
    """The ``GenerationIndexes`` patterns, relative to the repository (a leading ``/`` is
    allowed); empty: generations are off."""

    patterns: tuple[str, ...] = ()
    # (directory segments, index file name) of each usable pattern
    _parts: tuple[tuple[tuple[str, ...], str], ...] = field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        parts = []
        for pattern in self.patterns:
            if pattern_problem(pattern) is None:
                *directory, name = pattern.strip("/").split("/")
                parts.append((tuple(directory), name))
        object.__setattr__(self, "_parts", tuple(parts))

    def __bool__(self) -> bool:
        return bool(self._parts)

    def covering(self, path: str) -> tuple[str, ...]:
        """The index paths whose scope holds ``path`` (``/a/b``), innermost first."""
        parts = self._parts
        if not parts:
            return ()
        directories = path.strip("/").split("/")[:-1]
        found: list[str] = []
        for depth in range(len(directories), -1, -1):
            prefix = directories[:depth]
            for pattern, name in parts:
                if _matches(pattern, prefix):
                    index = "/" + "/".join([*prefix, name])
                    if index not in found:
                        found.append(index)
        return tuple(found)


@frozen
class IndexCopies:
    """One index file: the origin's record (None: not in the repository) and each mirror's
    recorded copy, by mirror ID (a mirror absent from ``copies`` does not hold it)."""

    path: str
    origin: FileInfo | None
    copies: Mapping[int, FileInfo | None]


@frozen
class GenerationOutcome:
    """What the generations did to one file's choice: the indexes covering it, whether
    mirrors of another generation were excluded, and how many mirrors hold the current one."""

    indexes: tuple[str, ...]
    applied: bool
    current: int

    @property
    def text(self) -> str:
        names = ", ".join(self.indexes)
        if self.applied:
            return f"only mirrors holding the current {names} ({self.current})"
        return (f"no usable mirror open to every client holds the current {names}: "
                "chosen file by file")


def exclusion_reason(index: str) -> str:
    """The exclusion reason of a mirror whose copy of ``index`` is not the origin's."""
    return f"Not the current generation ({index})"


def apply_generations(pre: Prefiltered, indexes: Sequence[IndexCopies],
                      opts: SelectionOptions) -> tuple[Prefiltered, GenerationOutcome | None]:
    """``pre`` with the usable mirrors of another generation excluded (see the module), and
    the outcome; ``pre`` unchanged and None when no covering index is in the repository."""
    # Exact copies only: AllowOutdatedFiles never makes an old index the current one.
    strict = SelectionOptions(fix_timezone_offsets=opts.fix_timezone_offsets)
    checks = [(index, _FileCheck(index.origin, strict)) for index in indexes
              if index.origin is not None and index.origin.mod_time_ns is not None]
    if not checks:
        return pre, None
    names = tuple(index.path for index, _ in checks)
    missed: list[str] = []
    anchored = False
    for mirror, _, _, reason, restricted in pre.entries:
        miss = ""
        if not reason:
            for index, check in checks:
                if mirror.id not in index.copies or check(mirror, index.copies[mirror.id]):
                    miss = index.path
                    break
            anchored = anchored or (not miss and not restricted)
        missed.append(miss)
    current = sum(1 for entry, miss in zip(pre.entries, missed, strict=True)
                  if not entry[3] and not miss)
    if not anchored:
        return pre, GenerationOutcome(names, False, current)
    entries = tuple((mirror, info, url, exclusion_reason(miss) if miss else reason, restricted)
                    for (mirror, info, url, reason, restricted), miss
                    in zip(pre.entries, missed, strict=True))
    return Prefiltered(entries), GenerationOutcome(names, True, current)
