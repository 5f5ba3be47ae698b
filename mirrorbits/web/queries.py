"""The answers to queries that ask for something else than the file itself (spec §8.8–§8.10):
``?mirrorlist`` (the page), ``?mirrorstats``, ``?stats[=period]`` and the checksums
``?md5``, ``?sha1``, ``?sha256``, the Metalink ``?meta4``, ``?mirrors`` and ``?trace``. Each is a
:data:`~mirrorbits.web.decision.Decision`; none is logged or counted as a download.
"""

from __future__ import annotations

from typing import Final

from mirrorbits.config import Config
from mirrorbits.gojson import dumps
from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo
from mirrorbits.selection import Secure
from mirrorbits.stats import file_stats, utc_date
from mirrorbits.store import outage
from mirrorbits.store.errors import REDIS_FAILURES, DatabaseNotReady, StoreError
from mirrorbits.store.mirrors import mirror_file_counts, mirror_ids
from mirrorbits.web.context import WebContext
from mirrorbits.web.decision import Decision, ErrorText, Page
from mirrorbits.web.head import RequestHead
from mirrorbits.web.lookup import (
    Choice,
    choose,
    client_ip,
    evaluate,
    read_info,
    read_memo,
    secure_of,
)
from mirrorbits.web.metalink import CONTENT_TYPE as METALINK_TYPE
from mirrorbits.web.metalink import metalink_document
from mirrorbits.web.mirrorlist import fromip_override, mirrorlist_page
from mirrorbits.web.mirrorsapi import mirrors_document
from mirrorbits.web.mirrorstats import (
    MirrorListUnavailable,
    MirrorstatsError,
    mirrorstats_view,
    render_mirrorstats,
)
from mirrorbits.web.paths import LocalPath
from mirrorbits.web.respond import HTML, JSON, TEXT
from mirrorbits.web.trace import trace_document

log = Logger()

CHECKSUMS: Final = (b"md5", b"sha1", b"sha256")
# The query keys answered here, in the order they take precedence.
QUERIES: Final = (b"mirrorlist", b"stats", b"mirrorstats", *CHECKSUMS, b"meta4", b"mirrors",
                   b"trace")
# How long a ``?mirrors`` document is reused (it reads every mirror's file count).
MIRRORS_REUSED_S: Final = 5.0


def query_of(args: dict[bytes, list[bytes]]) -> bytes | None:
    """The query key of ``args`` answered here (the first in :data:`QUERIES`), or None."""
    for key in QUERIES:
        if key in args:
            return key
    return None


async def answer_query(ctx: WebContext, query: bytes, head: RequestHead, config: Config,
                       path: str) -> Decision:
    """The answer to ``query`` (a key of :data:`QUERIES`) for the request path ``path``."""
    if query == b"mirrorlist":
        return await mirrorlist(ctx, head, config, path)
    if query == b"stats":
        return await downloads(ctx, head, path)
    if query == b"mirrorstats":
        return await mirrorstats(ctx, config)
    if query == b"meta4":
        return await metalink(ctx, head, config, path)
    if query == b"mirrors":
        return await mirrors(ctx, b"pretty" in head.args)
    if query == b"trace":
        return await trace(ctx, head, config, path)
    return await checksum(ctx, head, config, path)


async def choice_for(ctx: WebContext, head: RequestHead, config: Config, local: LocalPath,
                     ip: str, *, mirrorlist: bool) -> tuple[FileInfo, Secure, Choice]:
    """The file's record, the request's protocol and the mirrors chosen for client ``ip``
    (the reads and the selection the mirrorlist, Metalink and trace answers share)."""
    info = await read_info(ctx, local)
    secure = secure_of(head, config)
    memo, failed = None, False
    if info.mod_time_ns is not None:
        memo, failed = await read_memo(ctx, info, secure, ctx.selection_options(config))
    return info, secure, choose(ctx, config, info, local.is_file, ip, ctx.geo.lookup(ip),
                                secure, memo, failed, mirrorlist=mirrorlist)


async def mirrorlist(ctx: WebContext, head: RequestHead, config: Config, path: str) -> Decision:
    """The ``?mirrorlist`` page (§8.8): never a 304 (§20 item 19); a 503 without mirrors."""
    local = evaluate(ctx, config, path)
    if isinstance(local, ErrorText):
        return local
    ip = fromip_override(head.args, client_ip(ctx, head, config))
    info, _, choice = await choice_for(ctx, head, config, local, ip, mirrorlist=True)
    body = await mirrorlist_page(config, info, choice.ip, choice.client, choice.mirrors,
                                 choice.excluded, choice.fallback, choice.cause,
                                 choice.generation)
    return Page(200 if choice.mirrors else 503, HTML, body, no_cache=True)


async def metalink(ctx: WebContext, head: RequestHead, config: Config, path: str) -> Decision:
    """The file's Metalink 4 (RFC 5854): its size, hashes and the mirrors a download would
    choose from, in order; a 404 for a directory, a 503 without mirror nor fallback."""
    local = evaluate(ctx, config, path)
    if isinstance(local, ErrorText):
        return local
    if not local.is_file:
        return ErrorText(404, "Not Found")
    info, _, choice = await choice_for(ctx, head, config, local, client_ip(ctx, head, config),
                                       mirrorlist=False)
    if not choice.mirrors:
        return ErrorText(503, "Service Unavailable")
    generator = ctx.server_header.decode("ascii", "replace")
    return Page(200, METALINK_TYPE, metalink_document(info, choice.mirrors, generator),
                no_cache=True)


async def mirrors(ctx: WebContext, pretty: bool) -> Decision:
    """``?mirrors``: every enabled mirror as JSON (:mod:`mirrorbits.web.mirrorsapi`), computed
    at most once per :data:`MIRRORS_REUSED_S` (two Redis round trips and the cache's records);
    a database that is down or not ready is a 503, other Redis errors a 500."""
    key = b"mirrors pretty" if pretty else b"mirrors"
    now = ctx.clock.seconds()
    recent = ctx.recent.get(key)
    if recent is not None and 0 <= now - recent[0] < MIRRORS_REUSED_S:
        return Page(200, JSON, recent[1], no_cache=True)
    try:
        client = ctx.get_client()
        ids = await mirror_ids(client)
        records = [await ctx.cache.mirror(mirror_id) for mirror_id in ids]
        enabled = [mirror for mirror in records if mirror is not None and mirror.enabled]
        counts = await mirror_file_counts(client, [mirror.id for mirror in enabled])
    except DatabaseNotReady:
        return ErrorText(503, "Service Unavailable")
    except REDIS_FAILURES:  # lost or refused mid-read: no traceback, nothing per request
        return ErrorText(500, str(MirrorListUnavailable()))
    body = mirrors_document(enabled, counts, pretty)
    ctx.recent[key] = (now, body)
    return Page(200, JSON, body, no_cache=True)


async def trace(ctx: WebContext, head: RequestHead, config: Config, path: str) -> Decision:
    """``?trace``: the choice of mirrors for this request explained (:mod:`.trace`); the same
    reads as ``?mirrorlist`` (``fromip`` too), the same 403/404; never a download."""
    local = evaluate(ctx, config, path)
    if isinstance(local, ErrorText):
        return local
    ip = fromip_override(head.args, client_ip(ctx, head, config))
    info, secure, choice = await choice_for(ctx, head, config, local, ip, mirrorlist=True)
    return Page(200, JSON, trace_document(info, choice.ip, choice.client, secure,
                                          choice.mirrors, choice.excluded, choice.fallback,
                                          choice.cause, b"pretty" in head.args,
                                          choice.generation),
                no_cache=True)


async def checksum(ctx: WebContext, head: RequestHead, config: Config, path: str) -> Decision:
    """``?md5``, ``?sha1``, ``?sha256``: ``<digest>  <file name>`` (§8.10)."""
    local = evaluate(ctx, config, path)
    if isinstance(local, ErrorText):
        return local
    try:
        info = await ctx.cache.file_info(local.path) if local.is_file else None
    except Exception as err:
        if outage.redis_cause(err) is None:  # Redis down: the Redis service says so
            log.failure("checksum lookup of {path} failed", path=local.path)
        return ErrorText(503, "Service Unavailable")
    digest = ""
    if info is not None:
        for name in CHECKSUMS:
            if name in head.args:
                digest = getattr(info, name.decode())
                break
    if not digest:
        return ErrorText(404, "Hash type not supported")
    basename = local.path.rsplit("/", 1)[-1]
    return Page(200, b"text/plain; charset=UTF-8",
                f"{digest}  {basename}".encode("utf-8", "surrogateescape"))


async def mirrorstats(ctx: WebContext, config: Config) -> Decision:
    """The ``?mirrorstats`` page (§8.9); Redis errors are plain-text 500s, and a database
    that is down or not ready yet is a 503, as for downloads without fallback."""
    try:
        view = await mirrorstats_view(ctx.get_client(), ctx.clock.seconds())
    except DatabaseNotReady:
        return ErrorText(503, "Service Unavailable")
    except MirrorstatsError as err:
        return ErrorText(500, str(err))
    except StoreError:
        return ErrorText(500, str(MirrorListUnavailable()))
    return Page(200, HTML, await render_mirrorstats(view, config.templates))


async def downloads(ctx: WebContext, head: RequestHead, path: str) -> Decision:
    """``?stats`` (§8.10): Redis errors are 500s with their text; a database that is down
    or not ready yet is a 503, as for ``?mirrorstats``."""
    values = head.args.get(b"stats") or [b""]
    period = values[0].decode("utf-8", "replace")
    try:
        client = ctx.get_client()
        today = utc_date(ctx.clock.seconds())
        doc = await file_stats(client, path, period or None, today)
    except ValueError:
        return ErrorText(400, "Invalid period")
    except DatabaseNotReady:
        return ErrorText(503, "Service Unavailable")
    except Exception as err:
        return ErrorText(500, str(err))
    return Page(200, TEXT, dumps(doc, pretty=True))
