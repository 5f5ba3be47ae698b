"""The plan: one request in, one :data:`~mirrorbits.web.decision.Decision` out (spec §8).

Both ways a request arrives take this one path: the channel's quick parser
(:mod:`mirrorbits.web.site`) and twisted.web (:meth:`RedirectResource.render
<mirrorbits.web.resource.RedirectResource.render>`). In order:

1. the path is percent-decoded and cleaned (an unclean path is the router's 301);
2. a query asking for something else (``?mirrorlist``, ``?stats``, ``?mirrorstats``,
   checksums, ``?meta4`` or ``Accept: application/metalink4+xml``) is answered by
   :mod:`mirrorbits.web.queries`;
3. the path is evaluated on disk (403, 404), the file's info read (``If-Modified-Since``
   may answer 304), its mirrors (the per-file memo) and the client located;
4. the mirrors are chosen: a redirect, the JSON document, a fallback, or a 503.

:meth:`Planner.plan` runs synchronously as far as memory allows and returns
:class:`~mirrorbits.web.decision.Pending` at the first read that has to wait, before any
random draw: the caller awaits it (twisted.web) or leaves the request to twisted.web (the
channel). A request whose file and mirrors are in memory is decided without waiting.
"""

from __future__ import annotations

from functools import partial

from mirrorbits.config import Config
from mirrorbits.model import FileInfo
from mirrorbits.selection import Secure, SelectionOptions, redirect_order
from mirrorbits.urls import encode_path
from mirrorbits.web.conditional import not_modified
from mirrorbits.web.context import FileMemo, WebContext
from mirrorbits.web.decision import (
    Decision,
    Download,
    ErrorText,
    Json,
    Moved,
    Pending,
    Redirect,
)
from mirrorbits.web.digests import file_headers
from mirrorbits.web.head import RequestHead
from mirrorbits.web.lookup import (
    choose,
    client_ip,
    evaluate,
    memory_info,
    read_info,
    read_memo,
    secure_of,
    wants_json,
)
from mirrorbits.web.metalink import CONTENT_TYPE as METALINK
from mirrorbits.web.paths import LocalPath, clean_path, decode_path
from mirrorbits.web.queries import answer_query, query_of
from mirrorbits.web.render import (
    link_headers,
    redirect_url,
    results_document,
    unavailable_document,
)

_GET = b"GET"
_HEAD = b"HEAD"


async def settle(planned: Decision | Pending) -> Decision:
    """The decision, once what ``planned`` waits for has arrived."""
    if isinstance(planned, Pending):
        return await planned.resume()
    return planned


class Planner:
    """Decides the answer to each request from the context's memory (and Redis, on a miss).

    ``redirect_tables``: redirects of files whose memo is in memory are drawn from the
    memo's redirect table (:func:`~mirrorbits.selection.redirect_order`); without it,
    every answer goes through the general selection (tests compare the two).
    """

    __slots__ = ("ctx", "redirect_tables")

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.redirect_tables = True

    def plan(self, head: RequestHead, hold: bool = True) -> Decision | Pending:
        """The decision for ``head``, or what it must wait for first (``hold``: the
        publication of its path when the repository watch just saw it change)."""
        path = decode_path(head.path)
        cleaned = clean_path(path)
        if cleaned != path:
            return _moved(cleaned, head.uri)
        ctx = self.ctx
        config = ctx.config()
        if head.args:
            query = query_of(head.args)
            if query is not None:
                return Pending(partial(answer_query, ctx, query, head, config, path))
        accept = head.getHeader(b"accept")
        if accept is not None and accept.find(METALINK) >= 0:
            return Pending(partial(answer_query, ctx, b"meta4", head, config, path))
        changing = ctx.changing
        if hold and changing and path in changing:
            return Pending(partial(self._after_change, head, path))
        local = evaluate(ctx, config, path)
        if isinstance(local, ErrorText):
            return local
        if hold and changing and local.path in changing:
            return Pending(partial(self._after_change, head, local.path))
        info = memory_info(ctx, local)
        if info is None:
            return Pending(partial(self._after_info, head, config, local))
        return self._with_info(head, config, local, info)

    async def _after_change(self, head: RequestHead, path: str) -> Decision:
        """Once ``path``'s change is published here (or after a bound), plan again."""
        changing = self.ctx.changing
        if changing is not None:
            await changing.wait(path)
        return await settle(self.plan(head, hold=False))

    async def _after_info(self, head: RequestHead, config: Config,
                          local: LocalPath) -> Decision:
        info = await read_info(self.ctx, local)
        return await settle(self._with_info(head, config, local, info))

    def _with_info(self, head: RequestHead, config: Config, local: LocalPath,
                   info: FileInfo) -> Decision | Pending:
        method = head.method
        if method in (_GET, _HEAD):
            unchanged = not_modified(head.getHeader(b"if-modified-since"), info)
            if unchanged is not None:
                return unchanged
        ctx = self.ctx
        secure = secure_of(head, config)
        options = ctx.selection_options(config)
        memo = None
        if info.mod_time_ns is not None:
            memo = ctx.cached_memo(info, secure, options)
            if memo is None:
                return Pending(partial(self._after_memo, head, config, local, info, secure,
                                       options))
        if local.path == "" and ctx.root_page is not None:
            return Pending(partial(self._root, head, config, local, info, secure, memo, False))
        return self._decide(head, config, local, info, secure, memo, False, options)

    async def _after_memo(self, head: RequestHead, config: Config, local: LocalPath,
                          info: FileInfo, secure: Secure,
                          options: SelectionOptions) -> Decision:
        memo, failed = await read_memo(self.ctx, info, secure, options)
        return await self._root(head, config, local, info, secure, memo, failed)

    async def _root(self, head: RequestHead, config: Config, local: LocalPath, info: FileInfo,
                    secure: Secure, memo: FileMemo | None, failed: bool) -> Decision:
        """:meth:`_decide`, with the root's own text in a plain 503 for "/" when set."""
        decision = self._decide(head, config, local, info, secure, memo, failed,
                                self.ctx.selection_options(config))
        root_page = self.ctx.root_page
        if (local.path == "" and root_page is not None and isinstance(decision, ErrorText)
                and decision.status == 503):
            return ErrorText(503, await root_page())
        return decision

    def _decide(self, head: RequestHead, config: Config, local: LocalPath, info: FileInfo,
                secure: Secure, memo: FileMemo | None, failed: bool,
                options: SelectionOptions) -> Decision:
        """Choose the mirrors and the answer (draws from the random source)."""
        ctx = self.ctx
        json = wants_json(head, config)
        ip = client_ip(ctx, head, config)
        client = ctx.geo.lookup(ip)
        if (memo is not None and self.redirect_tables and not json and local.is_file
                and head.method in (_GET, _HEAD)):
            # The redirect table gives the same draw as the general selection, faster.
            order = redirect_order(memo.table, client, options.weight_distribution_range,
                                   ctx.rng, 1 + max(0, config.max_link_headers))
            if order:
                first, distance = order[0]
                encoded = memo.headers
                return Redirect(encoded.location(first),
                                encoded.links(order, config.max_link_headers),
                                Download("REDIRECT", 302, info, ip, client,
                                         memo.pre.entries[first][0], distance, False),
                                memo.file_headers)
        choice = choose(ctx, config, info, local.is_file, ip, client, secure,
                        memo, failed, mirrorlist=False)
        mirrors, excluded, fallback = choice.mirrors, choice.excluded, choice.fallback
        pretty = b"pretty" in head.args
        if not mirrors:
            if json:
                assert choice.cause is not None
                return Json(503, unavailable_document(info, ip, client, excluded, choice.cause,
                                                      config.local_js_path, pretty), None)
            return ErrorText(503, "Service Unavailable")
        first_mirror = mirrors[0]
        if json:
            return Json(200, results_document(info, ip, client, mirrors, excluded, fallback,
                                              config.local_js_path, pretty),
                        Download("JSON", 200, info, ip, client, first_mirror.mirror,
                                 first_mirror.distance, fallback))
        return Redirect(redirect_url(first_mirror, info.path),
                        link_headers(mirrors, info.path, config.max_link_headers),
                        Download("REDIRECT", 302, info, ip, client, first_mirror.mirror,
                                 first_mirror.distance, fallback),
                        memo.file_headers if memo is not None
                        else file_headers(info) if local.is_file else ())


def _moved(cleaned: str, uri: bytes) -> Moved:
    """The router's 301 for an unclean path, its query kept."""
    location = encode_path(cleaned).encode("ascii")
    if uri.find(b"?") >= 0:
        location += b"?" + uri.split(b"?", 1)[1]
    return Moved(location)
