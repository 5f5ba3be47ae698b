"""What the plan reads, from memory when it can: the path on disk, the file's info, its
mirrors (the per-file memo), the client; and the choice of mirrors (spec §8.2, §8.3, §9).

Each read has a synchronous form that answers from memory or says it cannot (``None``),
and an asynchronous one that reads through the cache (Redis on a miss).
"""

from __future__ import annotations

from attrs import frozen

from mirrorbits.cache import MISSING
from mirrorbits.config import Config
from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo, GeoRecord
from mirrorbits.selection import (
    Candidate,
    GenerationOutcome,
    Secure,
    SelectionOptions,
    fallback_candidates,
    select,
)
from mirrorbits.store import outage
from mirrorbits.store.errors import StoreError
from mirrorbits.web.context import FileMemo, WebContext
from mirrorbits.web.decision import ErrorText
from mirrorbits.web.generations import read_indexes
from mirrorbits.web.head import RequestHead
from mirrorbits.web.paths import Forbidden, LocalPath, NotFound
from mirrorbits.web.unavailable import NoMirrorCause, no_mirror_cause

log = Logger()


def evaluate(ctx: WebContext, config: Config, path: str) -> LocalPath | ErrorText:
    """The request path in the repository, or the 403/404 answer (spec §8.2)."""
    try:
        return ctx.paths.evaluate(config.repository, path)
    except Forbidden:
        return ErrorText(403, "Forbidden")
    except NotFound:
        return ErrorText(404, "Not Found")


def memory_info(ctx: WebContext, local: LocalPath) -> FileInfo | None:
    """The file's indexed info if memory can tell (see :func:`read_info`), else None."""
    if not local.is_file:
        return FileInfo(path=local.path)
    cached = ctx.cache.cached_file(local.path)
    if cached is None:
        return FileInfo(path=local.path)
    if isinstance(cached, FileInfo):
        return cached
    return None


async def read_info(ctx: WebContext, local: LocalPath) -> FileInfo:
    """The file's indexed info; unknown (not scanned, Redis down) => empty info."""
    empty = FileInfo(path=local.path)
    if not local.is_file:
        return empty
    try:
        info = await ctx.cache.file_info(local.path)
    except Exception:
        return empty
    return info if info is not None else empty


async def read_memo(ctx: WebContext, info: FileInfo, secure: Secure,
                    options: SelectionOptions) -> tuple[FileMemo | None, bool]:
    """The file's memo, its mirrors read through the cache; and whether reading failed."""
    memo = ctx.cached_memo(info, secure, options)
    if memo is not None:
        return memo, False
    version = ctx.cache.version(info.path)
    covering = ctx.generation_indexes(ctx.config()).covering(info.path)
    try:
        entries = await ctx.cache.candidates(info.path)
        generations = await read_indexes(ctx.cache, covering)
    except StoreError:
        return None, True
    except Exception as err:
        if outage.redis_cause(err) is not None:
            return memo_in_memory(ctx, info, secure, options)
        log.failure("reading the mirrors of {path} failed", path=info.path)
        return None, True
    return ctx.remember_memo(info, entries, secure, options, version, generations), False


def memo_in_memory(ctx: WebContext, info: FileInfo, secure: Secure,
                   options: SelectionOptions) -> tuple[FileMemo | None, bool]:
    """While Redis cannot be read: the memo of what the cache holds, not kept, the mirror
    records a message made it forget and no read replaced yet included (before, each
    download of a file whose mirrors were all forgotten got a 503 for the whole outage)."""
    entries = ctx.cache.held_candidates(info.path)
    if entries is MISSING:
        return None, True
    return ctx.remember_memo(info, entries, secure, options, ctx.cache.version(info.path),
                             keep=False), False


def client_ip(ctx: WebContext, head: RequestHead, config: Config) -> str:
    """The client's address: the peer, or what a trusted proxy says (``X-Forwarded-For``)."""
    return ctx.policy(config).client_ip(head.client_host, head.getHeader(b"x-forwarded-for"))


def secure_of(head: RequestHead, config: Config) -> Secure:
    """The protocol the client demands: ``X-Forwarded-Proto``, overridden by ``?https=``."""
    secure = Secure.UNDEFINED
    proto = head.getHeader(b"x-forwarded-proto")
    if proto is not None:
        proto = proto.lower()
        if proto == b"https":
            secure = Secure.WITH_TLS
        elif proto == b"http" and not config.allow_http_to_https_redirects:
            secure = Secure.WITHOUT_TLS
    values = head.args.get(b"https")
    if values:
        if values[0] == b"1":
            secure = Secure.WITH_TLS
        elif values[0] == b"0":
            secure = Secure.WITHOUT_TLS
    return secure


def wants_json(head: RequestHead, config: Config) -> bool:
    """Whether a standard request gets the JSON document rather than a redirect (§8.5)."""
    mode = config.output_mode
    return mode == "json" or (
        mode == "auto" and b"application/json" in (head.getHeader(b"accept") or b""))


@frozen
class Choice:
    """The mirrors chosen for one request: the first is the target.

    When no mirror qualifies, ``cause`` says why and ``mirrors`` holds the fallbacks
    (``fallback``), or nothing when none is configured (a download gets a 503).
    ``generation``: what ``GenerationIndexes`` did to the choice (None: no index covers it).
    """

    ip: str
    client: GeoRecord
    mirrors: list[Candidate]
    excluded: list[Candidate]
    fallback: bool
    cause: NoMirrorCause | None
    generation: GenerationOutcome | None = None


def choose(ctx: WebContext, config: Config, info: FileInfo, is_file: bool, ip: str,
           client: GeoRecord, secure: Secure, memo: FileMemo | None, failed: bool,
           mirrorlist: bool) -> Choice:
    """Select mirrors for ``info`` from its memo (prefiltered mirrors and redirect table);
    fallbacks when none qualifies.

    ``failed``: its mirrors could not be read. The mirrorlist page keeps every mirror
    (mirrorlist mode of the selection). Draws from ``ctx.rng``.
    """
    mirrors: list[Candidate] = []
    excluded: list[Candidate] = []
    generation = None if memo is None else memo.generation
    if memo is not None:
        selection = select(info, (), client, secure, ctx.selection_options(config), ctx.rng,
                           mirrorlist=mirrorlist, table=memo.table)
        mirrors, excluded = selection.mirrors, selection.excluded
    if not failed and mirrors:
        return Choice(ip, client, mirrors, excluded, False, None, generation)
    cause = no_mirror_cause(is_file, info.mod_time_ns is not None, failed, len(excluded))
    if not config.fallbacks:
        return Choice(ip, client, [], excluded, False, cause, generation)
    return Choice(ip, client, fallback_candidates(config.fallbacks, client, secure, ctx.rng),
                  excluded, True, cause, generation)
