"""The collaborators of the request path, and what it remembers per file.

Everything here is in memory; Redis is only behind the cache (and the pages that read
statistics through ``get_client``).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from attrs import define, field
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from mirrorbits.cache import LRU, MISSING, MirrorCache
from mirrorbits.config import Config
from mirrorbits.geo import GeoIP
from mirrorbits.metrics.counts import RequestCounts
from mirrorbits.model import FileInfo, Mirror
from mirrorbits.scan.changing import ChangingPaths
from mirrorbits.selection import (
    GenerationIndexes,
    GenerationOutcome,
    Prefiltered,
    RedirectTable,
    Secure,
    SelectionMemo,
    SelectionOptions,
    apply_generations,
    prefilter,
    redirect_table,
)
from mirrorbits.stats import RangeDeduplicator, StatsService
from mirrorbits.store.client import RedisClient
from mirrorbits.web.clientip import ClientAddressPolicy
from mirrorbits.web.digests import FileHeaders, file_headers
from mirrorbits.web.downloadlog import DownloadLog
from mirrorbits.web.generations import IndexView, indexes_in_memory
from mirrorbits.web.paths import EvaluationMemo
from mirrorbits.web.render import RedirectBytes


class FileMemo:
    """What the answers for one file and protocol demand reuse until the cache changes.

    The client-independent selection (:func:`prefilter`), the redirect table and the encoded
    ``Location``/``Link`` values of every usable mirror; the headers about the file sent with
    every redirect (its Metalink's ``Link``, its digests). With ``GenerationIndexes``, what
    the generations did (``generation``) and the cache versions of the index files read
    (``index_versions``: the memo is stale once one of them changes).
    """

    __slots__ = ("file_headers", "generation", "headers", "index_paths", "index_seen",
                 "index_versions", "info", "opts", "pre", "table", "version")

    def __init__(self, version: tuple[int, int], opts: SelectionOptions, info: FileInfo,
                 pre: Prefiltered, memo: SelectionMemo,
                 generation: GenerationOutcome | None = None,
                 index_versions: tuple[tuple[str, tuple[int, int]], ...] = ()) -> None:
        self.version = version
        self.opts = opts
        self.info = info
        self.pre = pre
        self.generation = generation
        self.index_versions = index_versions
        self.index_paths = tuple(path for path, _ in index_versions)
        self.index_seen = tuple(seen for _, seen in index_versions)
        self.table: RedirectTable = redirect_table(pre, memo)
        self.headers = RedirectBytes(
            [(url if not reason else "", mirror.country_fields)
             for mirror, _, url, reason, _ in pre.entries], info.path)
        self.file_headers: FileHeaders = file_headers(info)


@define(eq=False)
class WebContext:
    """The collaborators of the request path (all in memory; Redis only behind the cache)."""

    config: Callable[[], Config]
    cache: MirrorCache
    geo: GeoIP
    stats: StatsService
    dedup: RangeDeduplicator | None
    download_log: DownloadLog | None
    clock: IReactorTime
    server_header: bytes
    get_client: Callable[[], RedisClient]
    # The text of a 503 for "/" (the embedded configuration explains itself), or None.
    root_page: Callable[[], Awaitable[str]] | None = None
    # The paths the repository watch of this process saw change, not yet published.
    changing: ChangingPaths | None = None
    rng: random.Random = field(factory=random.Random)
    # What the selection remembers between requests (distances of recent client locations).
    selection_memo: SelectionMemo = field(factory=SelectionMemo)
    counts: RequestCounts = field(factory=RequestCounts)  # answers by outcome, for the metrics
    _policy_source: tuple[str, ...] | None = None
    _policy: ClientAddressPolicy = field(factory=ClientAddressPolicy)
    _options_source: Config | None = None
    _options: SelectionOptions = field(factory=SelectionOptions)
    _generations: GenerationIndexes = field(factory=GenerationIndexes)
    # About 7 KB per file held by 27 mirrors: 50,000 files (the hot set) stay under 400 MB.
    _prefiltered: LRU[tuple[str, Secure], FileMemo] = field(factory=lambda: LRU(50_000))
    paths: EvaluationMemo = field(init=False)
    # Recent answers of queries that read Redis and not the request (``?mirrors``): key ->
    # (time computed, body); at most a few entries.
    recent: dict[bytes, tuple[float, bytes]] = field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.paths = EvaluationMemo(self.clock)

    def cache_sizes(self) -> dict[str, int]:
        """Entries of each in-memory cache, by name (the metrics)."""
        cache = self.cache
        return {"files": len(cache.files), "file_mirrors": len(cache.file_mirrors),
                "mirrors": len(cache.mirrors), "mirror_files": len(cache.mirror_files),
                "file_memos": len(self._prefiltered)}

    def resize_memos(self, files: int) -> None:
        """Keep at most ``files // 4`` file memos (``CacheFiles``: 50,000 by default)."""
        self._prefiltered.resize(max(1, files // 4))

    async def warm_memos(self, secure: Secure = Secure.UNDEFINED, slice_size: int = 100) -> int:
        """Build the memo of each file the cache holds whole (in the cache's order: the
        start-up fill puts the most downloaded first), as many as the memos may hold, and
        resolve its path in the repository (:attr:`paths`), so that a file's first request
        is answered from memory without touching the disk. Yields to the reactor between
        slices of ``slice_size`` files; returns how many memos were built."""
        config = self.config()
        options = self.selection_options(config)
        cache = self.cache
        paths = self.paths
        built = done = 0
        for path in cache.files.keys()[:self._prefiltered.capacity]:
            info = cache.cached_file(path)
            if not isinstance(info, FileInfo) or info.mod_time_ns is None:
                continue
            entries = cache.cached_candidates(path)
            if entries is MISSING:
                continue
            paths.resolve_ahead(config.repository, path)
            if self.cached_memo(info, secure, options) is None:
                self.remember_memo(info, entries, secure, options, cache.version(path))
                built += 1
            done += 1
            if done % slice_size == 0:
                await deferLater(self.clock, 0)
        return built

    def policy(self, config: Config) -> ClientAddressPolicy:
        if config.trusted_proxies != self._policy_source:
            self._policy = ClientAddressPolicy.from_config(config.trusted_proxies)
            self._policy_source = config.trusted_proxies
        return self._policy

    def selection_options(self, config: Config) -> SelectionOptions:
        if config is not self._options_source:
            self._options = SelectionOptions(
                weight_distribution_range=config.weight_distribution_range,
                allow_outdated_files=config.allow_outdated_files,
                fix_timezone_offsets=config.fix_timezone_offsets,
            )
            self._generations = GenerationIndexes(config.generation_indexes)
            self._options_source = config
        return self._options

    def generation_indexes(self, config: Config) -> GenerationIndexes:
        """``GenerationIndexes`` of ``config``, compiled (memos follow its selection options)."""
        self.selection_options(config)
        return self._generations

    def cached_memo(self, info: FileInfo, secure: Secure,
                    opts: SelectionOptions) -> FileMemo | None:
        """The file's memo, if still valid (no cache change since it was computed)."""
        memo = self._prefiltered.get((info.path, secure))
        if (memo is not MISSING and memo.version == self.cache.version(info.path)
                and memo.opts is opts and memo.info is info
                and (not memo.index_versions or self._indexes_unchanged(memo))):
            return memo
        return None

    def _indexes_unchanged(self, memo: FileMemo) -> bool:
        return tuple(map(self.cache.version, memo.index_paths)) == memo.index_seen

    def cached_prefilter(self, info: FileInfo, secure: Secure,
                         opts: SelectionOptions) -> Prefiltered | None:
        """The client-independent part of the selection, if still valid (no cache change)."""
        memo = self.cached_memo(info, secure, opts)
        return None if memo is None else memo.pre

    def remember_prefilter(self, info: FileInfo, entries: list[tuple[Mirror, FileInfo | None]],
                           secure: Secure, opts: SelectionOptions,
                           version: tuple[int, int]) -> Prefiltered:
        """Compute :func:`prefilter` and keep it until the cache changes."""
        return self.remember_memo(info, entries, secure, opts, version).pre

    def remember_memo(self, info: FileInfo, entries: list[tuple[Mirror, FileInfo | None]],
                      secure: Secure, opts: SelectionOptions, version: tuple[int, int],
                      generations: IndexView | None = None, keep: bool = True) -> FileMemo:
        """Compute the file's memo and keep it (unless not ``keep``) until the cache changes
        (its own entries, or those of the generation indexes covering it: ``generations`` as
        read, else what the cache holds of them; a memo whose indexes are not all in memory
        is not kept)."""
        if generations is None:
            covering = self.generation_indexes(self.config()).covering(info.path)
            generations = indexes_in_memory(self.cache, covering)
            if generations is None:
                keep, generations = False, ((), ())
        indexes, index_versions = generations
        pre = prefilter(info, entries, secure, opts)
        generation = None
        if indexes:
            pre, generation = apply_generations(pre, indexes, opts)
        memo = FileMemo(version, opts, info, pre, self.selection_memo, generation,
                        index_versions)
        if keep:
            self._prefiltered.put((info.path, secure), memo)
        return memo
