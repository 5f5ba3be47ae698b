"""The redirect resource: one leaf answering every path (spec §8).

Everything a request needs comes from memory (the pub/sub-fed cache, GeoIP
readers, the live configuration). When the cache already holds the path the
whole answer is computed synchronously; a miss awaits Redis once and fills it.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from attrs import define, field, frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.http import stringToDatetime
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mirrorbits.cache import LRU, MISSING
from mirrorbits.config import Config
from mirrorbits.encoding import format_http_date
from mirrorbits.gojson import dumps
from mirrorbits.logs import Logger
from mirrorbits.model import FileInfo, GeoRecord, Mirror
from mirrorbits.selection import (
    Candidate,
    Prefiltered,
    RedirectTable,
    Secure,
    SelectionMemo,
    SelectionOptions,
    fallback_candidates,
    prefilter,
    redirect_order,
    redirect_table,
    select,
)
from mirrorbits.stats import file_stats, utc_date
from mirrorbits.store.errors import DatabaseNotReady, StoreError
from mirrorbits.urls import encode_path
from mirrorbits.web.clientip import ClientAddressPolicy
from mirrorbits.web.downloadlog import format_download_line
from mirrorbits.web.mirrorlist import fromip_override, mirrorlist_page
from mirrorbits.web.mirrorstats import (
    MirrorListUnavailable,
    MirrorstatsError,
    mirrorstats_view,
    render_mirrorstats,
)
from mirrorbits.web.paths import (
    EvaluationMemo,
    Forbidden,
    LocalPath,
    NotFound,
    clean_path,
    decode_path,
    parse_query,
)
from mirrorbits.web.render import (
    RedirectBytes,
    link_headers,
    redirect_url,
    results_document,
    unavailable_document,
)
from mirrorbits.web.unavailable import NoMirrorCause, no_mirror_cause

log = Logger()

_HTML = b"text/html; charset=utf-8"
_JSON = b"application/json; charset=utf-8"
_TEXT = b"text/plain; charset=utf-8"
_NO_CACHE = b"private, no-cache"
_CHECKSUMS = (b"md5", b"sha1", b"sha256")
# Query keys that ask for something else than the file itself (dispatched by ``_answer``).
_NOT_STANDARD = (b"mirrorlist", b"stats", b"mirrorstats", *_CHECKSUMS)


class RequestHead(Protocol):
    """What the in-memory redirect reads of a request (a twisted.web ``Request`` has it)."""

    method: bytes
    path: bytes
    args: dict[bytes, list[bytes]]

    def getHeader(self, key: bytes) -> bytes | None: ...

    def getClientAddress(self) -> Any: ...


class MemoryRedirect:
    """A redirect computed from memory: its mirrors, header values and what to log and count.

    ``order`` is the selection (entry indices and distances, first = the target) and
    ``encoded`` the file's encoded header values; the alternatives become ``Link`` headers.
    """

    __slots__ = ("client", "distance", "encoded", "info", "ip", "location", "mirror", "order")

    def __init__(self, order: list[tuple[int, float]], encoded: RedirectBytes, mirror: Mirror,
                 info: FileInfo, ip: str, client: GeoRecord) -> None:
        first, distance = order[0]
        self.order = order
        self.encoded = encoded
        self.location = encoded.location(first)
        self.mirror = mirror
        self.distance = distance
        self.info = info
        self.ip = ip
        self.client = client


class FileMemo:
    """What the answers for one file and protocol demand reuse until the cache changes.

    The client-independent selection (:func:`prefilter`), the redirect table and the encoded
    ``Location``/``Link`` values of every usable mirror.
    """

    __slots__ = ("headers", "info", "opts", "pre", "table", "version")

    def __init__(self, version: tuple[int, int], opts: SelectionOptions, info: FileInfo,
                 pre: Prefiltered, memo: SelectionMemo) -> None:
        self.version = version
        self.opts = opts
        self.info = info
        self.pre = pre
        self.table: RedirectTable = redirect_table(pre, memo)
        self.headers = RedirectBytes(
            [(url if not reason else "", mirror.country_fields)
             for mirror, _, url, reason, _ in pre.entries], info.path)


@frozen
class Choice:
    """The mirrors chosen for one request: the first is the target.

    When no mirror qualifies, ``cause`` says why and ``mirrors`` holds the fallbacks
    (``fallback``), or nothing when none is configured (a download gets a 503).
    """

    ip: str
    client: GeoRecord
    mirrors: list[Candidate]
    excluded: list[Candidate]
    fallback: bool
    cause: NoMirrorCause | None


@define(eq=False)
class WebContext:
    """The collaborators of the request path (all in memory; Redis only behind the cache)."""

    config: Callable[[], Config]
    cache: Any  # mirrorbits.cache.MirrorCache
    geo: Any  # mirrorbits.geo.GeoIP
    stats: Any  # mirrorbits.stats.StatsService
    dedup: Any  # mirrorbits.stats.RangeDeduplicator
    download_log: Any  # mirrorbits.web.downloadlog.DownloadLog
    clock: IReactorTime
    server_header: bytes
    get_client: Callable[[], Any]
    # The text of a 503 for "/" (the embedded configuration explains itself), or None.
    root_page: Callable[[], Awaitable[str]] | None = None
    rng: random.Random = field(factory=random.Random)
    # What the selection remembers between requests (distances of recent client locations).
    selection_memo: SelectionMemo = field(factory=SelectionMemo)
    _policy_source: tuple[str, ...] | None = None
    _policy: ClientAddressPolicy = field(factory=ClientAddressPolicy)
    _options_source: Config | None = None
    _options: SelectionOptions = field(factory=SelectionOptions)
    # About 7 KB per file held by 27 mirrors: 50,000 files (the hot set) stay under 400 MB.
    _prefiltered: LRU[tuple[str, Secure], FileMemo] = field(factory=lambda: LRU(50_000))
    paths: EvaluationMemo = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.paths = EvaluationMemo(self.clock)

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
            self._options_source = config
        return self._options

    def cached_memo(self, info: FileInfo, secure: Secure,
                    opts: SelectionOptions) -> FileMemo | None:
        """The file's memo, if still valid (no cache change since it was computed)."""
        memo = self._prefiltered.get((info.path, secure))
        if (memo is not MISSING and memo.version == self.cache.version(info.path)
                and memo.opts is opts and memo.info is info):
            return memo
        return None

    def cached_prefilter(self, info: FileInfo, secure: Secure,
                         opts: SelectionOptions) -> Prefiltered | None:
        """The client-independent part of the selection, if still valid (no cache change)."""
        memo = self.cached_memo(info, secure, opts)
        return None if memo is None else memo.pre

    def remember_memo(self, info: FileInfo, entries: list[tuple[Mirror, FileInfo | None]],
                      secure: Secure, opts: SelectionOptions,
                      version: tuple[int, int]) -> FileMemo:
        """Compute the file's memo (:func:`prefilter`, the redirect table) and keep it until
        the cache changes."""
        memo = FileMemo(version, opts, info, prefilter(info, entries, secure, opts),
                        self.selection_memo)
        self._prefiltered.put((info.path, secure), memo)
        return memo

    def remember_prefilter(self, info: FileInfo, entries: list[tuple[Mirror, FileInfo | None]],
                           secure: Secure, opts: SelectionOptions,
                           version: tuple[int, int]) -> Prefiltered:
        """Compute :func:`prefilter` and keep it until the cache changes."""
        return self.remember_memo(info, entries, secure, opts, version).pre


class RedirectResource(Resource):
    """Answers every request: redirect, JSON, checksum, statistics or an error."""

    isLeaf = True
    fast_redirects = True  # tests turn it off to compare with the general path

    def __init__(self, ctx: WebContext) -> None:
        super().__init__()
        self.ctx = ctx

    def render(self, request: Request) -> bytes | int:
        body = self._answer(request)
        if isinstance(body, int) or (request.code != 304 and not (
                body and request.method == b"HEAD")):
            return body
        # Left to Twisted, a 304 would get "Content-Length: 0" and every HEAD answer with a
        # body (404, 301...) a logged warning.
        self._finish(request, body)
        return NOT_DONE_YET

    def _answer(self, request: Request) -> bytes | int:
        request.defaultContentType = None
        raw_path = request.path
        path = decode_path(raw_path)
        cleaned = clean_path(path)
        if cleaned != path:
            return self._moved(request, cleaned)
        request.setHeader(b"server", self.ctx.server_header)
        config = self.ctx.config()
        # Twisted drops keys without "=" (``?md5``): read the query as the reference does.
        args = request.args = parse_query(request.uri)
        if b"mirrorlist" in args:
            return self._deferred(request, config, self._mirrorlist(request, config, path))
        if b"stats" in args:
            return self._deferred(request, config, self._file_stats(request, config, path))
        if b"mirrorstats" in args:
            return self._deferred(request, config, self._mirrorstats(request, config))
        for algorithm in _CHECKSUMS:
            if algorithm in args:
                return self._deferred(
                    request, config, self._checksum(request, config, path, algorithm.decode())
                )
        if self.fast_redirects:
            body = self._fast_redirect(request, config, path)
            if body is not None:
                return body
        return self._deferred(request, config, self._standard(request, config, path))

    # --- plumbing --------------------------------------------------------------------------

    def _deferred(self, request: Request, config: Config, coro: Any) -> bytes | int:
        """Run ``coro``; answer synchronously when it finished without waiting."""
        d: Deferred[bytes] = Deferred.fromCoroutine(coro)
        result: list[Any] = []

        def keep(outcome: Any) -> Any:
            result.append(outcome)
            return outcome

        d.addBoth(keep)
        if result:
            outcome = result[0]
            if isinstance(outcome, Failure):
                return self._internal_error(request, config, outcome)
            return outcome  # type: ignore[no-any-return]

        def write(body: Any) -> None:
            if isinstance(body, Failure):
                body = self._internal_error(request, config, body)
            if request.finished or request.channel is None:
                return
            self._finish(request, body)

        d.addBoth(write)
        request.notifyFinish().addErrback(lambda _: None)
        return NOT_DONE_YET

    @staticmethod
    def _finish(request: Request, body: bytes) -> None:
        """Send ``body`` with its length; no body for HEAD, no length for a 304."""
        if request.code != 304:
            request.setHeader(b"content-length", b"%d" % len(body))
            if request.method != b"HEAD":
                request.write(body)
        request.finish()

    def _internal_error(self, request: Request, config: Config, failure: Failure) -> bytes:
        log.failure("request for {path} failed", failure, path=request.path)
        return self._error(request, config, 500, "Internal Server Error")

    def _moved(self, request: Request, cleaned: str) -> bytes:
        """The router's 301 for unclean paths (no Server header, like the reference)."""
        request.responseHeaders.removeHeader(b"server")
        location = encode_path(cleaned).encode("ascii")
        if request.uri.find(b"?") >= 0:
            location += b"?" + request.uri.split(b"?", 1)[1]
        request.setResponseCode(301)
        request.setHeader(b"location", location)
        request.setHeader(b"content-type", _HTML)
        href = location.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
        href = href.replace(b'"', b"&#34;").replace(b"'", b"&#39;")
        return b'<a href="' + href + b'">Moved Permanently</a>.\n\n'

    def _error(self, request: Request, config: Config, code: int, message: str) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", _TEXT)
        request.setHeader(b"x-content-type-options", b"nosniff")
        return self._body(request, config, message.encode("utf-8", "replace") + b"\n")

    def _body(self, request: Request, config: Config, body: bytes) -> bytes:
        """Gzip the body when configured and accepted (spec §8.6)."""
        if config.gzip:
            accept = request.getHeader(b"accept-encoding")
            if accept is not None and b"gzip" in accept:
                request.setHeader(b"content-encoding", b"gzip")
                return gzip.compress(body, compresslevel=1, mtime=0)
        return body

    def _evaluate(self, request: Request, config: Config, path: str) -> LocalPath | bytes:
        """The request path in the repository, or the 403/404 answer (spec §8.2)."""
        try:
            return self.ctx.paths.evaluate(config.repository, path)
        except Forbidden:
            return self._error(request, config, 403, "Forbidden")
        except NotFound:
            return self._error(request, config, 404, "Not Found")

    # --- STANDARD: redirect or JSON ---------------------------------------------------------

    async def _standard(self, request: Request, config: Config, path: str) -> bytes:
        local = self._evaluate(request, config, path)
        if isinstance(local, bytes):
            return local
        info = await self._local_info(local)
        if request.method in (b"GET", b"HEAD"):
            not_modified = self._not_modified(request, info)
            if not_modified is not None:
                return not_modified
        choice = await self._choose(request, config, info, local.is_file, mirrorlist=False)
        wants_json = _wants_json(request, config)
        if not choice.mirrors:
            if wants_json:
                return self._unavailable_json(request, config, info, choice)
            message = "Service Unavailable"
            if local.path == "" and self.ctx.root_page is not None:
                message = await self.ctx.root_page()
            return self._error(request, config, 503, message)
        ip, client, mirrors, excluded, fallback = (choice.ip, choice.client, choice.mirrors,
                                                   choice.excluded, choice.fallback)
        first = mirrors[0]
        if wants_json:
            request.setHeader(b"cache-control", _NO_CACHE)
            request.setHeader(b"content-type", _JSON)
            body = results_document(info, ip, client, mirrors, excluded, fallback,
                                    config.local_js_path, b"pretty" in request.args)
            self._record(request, "JSON", 200, info, ip, client, first.mirror, first.distance,
                         fallback)
            return self._body(request, config, body)
        _redirect_headers(request, redirect_url(first, info.path),
                          link_headers(mirrors, info.path, config.max_link_headers))
        self._record(request, "REDIRECT", 302, info, ip, client, first.mirror, first.distance,
                     fallback)
        return self._body(request, config, b"")

    def _unavailable_json(self, request: Request, config: Config, info: FileInfo,
                          choice: Choice) -> bytes:
        """The 503 of a JSON request that no mirror can serve, with the reasons (not logged,
        like the reference's plain 503)."""
        assert choice.cause is not None
        request.setResponseCode(503)
        request.setHeader(b"cache-control", _NO_CACHE)
        request.setHeader(b"content-type", _JSON)
        body = unavailable_document(info, choice.ip, choice.client, choice.excluded,
                                    choice.cause, config.local_js_path,
                                    b"pretty" in request.args)
        return self._body(request, config, body)

    def _fast_redirect(self, request: Request, config: Config, path: str) -> bytes | None:
        """The common answer from memory alone, or None to take :meth:`_standard`."""
        found = self._memory_redirect(request, config, path)
        if found is None:
            return None
        _redirect_headers(request, found.location,
                          found.encoded.links(found.order, config.max_link_headers))
        self._account(request, found)
        return self._body(request, config, b"")

    def answer_head(self, head: RequestHead, date: bytes) -> bytes | None:
        """The whole response to a request read by the channel, or None to let Twisted answer.

        The channel calls this for a complete, ordinary GET or HEAD request (see
        :mod:`mirrorbits.web.quickhttp`); the answer is the one :meth:`render` would give,
        byte for byte, when :meth:`_memory_redirect` finds one.
        """
        if not self.fast_redirects:
            return None
        path = decode_path(head.path)
        if clean_path(path) != path:
            return None
        config = self.ctx.config()
        if config.gzip:
            return None
        args = head.args
        if args and any(key in args for key in _NOT_STANDARD):
            return None
        found = self._memory_redirect(head, config, path)
        if found is None:
            return None
        self._account(head, found)
        return b"".join((
            b"HTTP/1.1 302 Found\r\nDate: ", date, b"\r\nServer: ", self.ctx.server_header,
            b"\r\nCache-Control: private, no-cache\r\nContent-Type: ", _HTML,
            b"\r\nLocation: ", found.location, b"\r\n",
            found.encoded.link_lines(found.order, config.max_link_headers),
            # twisted.web sends no length for HEAD (its body would be dropped anyway).
            b"Content-Length: 0\r\n\r\n" if head.method == b"GET" else b"\r\n"))

    def _memory_redirect(self, request: RequestHead, config: Config,
                         path: str) -> MemoryRedirect | None:
        """The redirect for ``path`` if everything it needs is in memory, else None.

        Only for a GET or HEAD redirect whose file info and prefiltered mirrors are cached and
        that some mirror can serve. JSON, If-Modified-Since, cache misses and fallbacks return
        None: :meth:`_standard` answers them, and gives the same answer as this (the same
        headers, the same draw for the same random state). Nothing but the random state
        changes here; the caller accounts for the download.
        """
        method = request.method
        if method != b"GET" and method != b"HEAD":
            return None
        if _wants_json(request, config):
            return None
        if request.getHeader(b"if-modified-since") is not None:
            return None
        ctx = self.ctx
        try:
            local = ctx.paths.evaluate(config.repository, path)
        except (Forbidden, NotFound):
            return None
        if not local.is_file:
            return None
        info = ctx.cache.cached_file(local.path)
        if info is MISSING or info is None or info.mod_time_ns is None:
            return None
        secure = self._secure(request, config)
        options = ctx.selection_options(config)
        memo = ctx.cached_memo(info, secure, options)
        if memo is None:
            return None
        ip = self._client_ip(request, config)
        client = ctx.geo.lookup(ip)
        order = redirect_order(memo.table, client, options.weight_distribution_range,
                               ctx.rng, 1 + max(0, config.max_link_headers))
        if not order:
            return None
        return MemoryRedirect(order, memo.headers, memo.pre.entries[order[0][0]][0], info, ip,
                              client)

    def _account(self, request: RequestHead, found: MemoryRedirect) -> None:
        """Log and count a redirect answered from memory."""
        self._record(request, "REDIRECT", 302, found.info, found.ip, found.client, found.mirror,
                     found.distance, False)

    def _record(self, request: RequestHead, kind: str, status: int, info: FileInfo, ip: str,
                client: GeoRecord, mirror: Mirror, distance: float, fallback: bool) -> None:
        """Log an answered download; count it when it is a GET redirect."""
        self._log_download(request, kind, status, info.path, ip, client, mirror, distance,
                           fallback)
        if kind == "REDIRECT" and request.method == b"GET":
            self._count(request, ip, info, mirror.id)

    async def _choose(self, request: Request, config: Config, info: FileInfo, is_file: bool,
                      mirrorlist: bool) -> Choice:
        """Locate the client and select mirrors for ``info``; fallbacks when none qualifies.

        When no mirror qualifies the choice says why, and holds the fallbacks, or no mirror
        at all (no fallback configured: a download gets a 503). The mirrorlist page honours
        ``fromip`` and keeps every mirror (mirrorlist mode of the selection).
        """
        ctx = self.ctx
        ip = self._client_ip(request, config)
        if mirrorlist:
            ip = fromip_override(request.args, ip)
        client = ctx.geo.lookup(ip)
        secure = self._secure(request, config)
        mirrors: list[Candidate] = []
        excluded: list[Candidate] = []
        failed = False
        if info.mod_time_ns is not None:
            options = ctx.selection_options(config)
            memo = ctx.cached_memo(info, secure, options)
            if memo is None:
                version = ctx.cache.version(info.path)
                try:
                    entries = await ctx.cache.candidates(info.path)
                except StoreError:
                    failed = True
                except Exception:
                    log.failure("reading the mirrors of {path} failed", path=info.path)
                    failed = True
                else:
                    memo = ctx.remember_memo(info, entries, secure, options, version)
            if memo is not None:
                selection = select(info, (), client, secure, options, ctx.rng,
                                   mirrorlist=mirrorlist, table=memo.table)
                mirrors, excluded = selection.mirrors, selection.excluded
        if not failed and mirrors:
            return Choice(ip, client, mirrors, excluded, False, None)
        cause = no_mirror_cause(is_file, info.mod_time_ns is not None, failed, len(excluded))
        if not config.fallbacks:
            return Choice(ip, client, [], excluded, False, cause)
        return Choice(ip, client, fallback_candidates(config.fallbacks, client, secure, ctx.rng),
                      excluded, True, cause)

    def _client_ip(self, request: RequestHead, config: Config) -> str:
        peer = request.getClientAddress()
        return self.ctx.policy(config).client_ip(
            getattr(peer, "host", ""), request.getHeader(b"x-forwarded-for"))

    async def _local_info(self, local: LocalPath) -> FileInfo:
        """The file's indexed info; unknown (not scanned, Redis down) => empty info."""
        empty = FileInfo(path=local.path)
        if not local.is_file:
            return empty
        try:
            info = await self.ctx.cache.file_info(local.path)
        except Exception:
            return empty
        return info if info is not None else empty

    def _not_modified(self, request: Request, info: FileInfo) -> bytes | None:
        header = request.getHeader(b"if-modified-since")
        if header is None or not info.mod_time_ns:
            return None
        try:
            since = stringToDatetime(header)
        except (ValueError, IndexError, KeyError):
            return None
        mtime = info.mod_time_ns // 1_000_000_000
        if mtime > since:
            return None
        request.setResponseCode(304)
        request.setHeader(b"last-modified", _http_date(mtime))
        return b""

    def _secure(self, request: RequestHead, config: Config) -> Secure:
        secure = Secure.UNDEFINED
        proto = request.getHeader(b"x-forwarded-proto")
        if proto is not None:
            proto = proto.lower()
            if proto == b"https":
                secure = Secure.WITH_TLS
            elif proto == b"http" and not config.allow_http_to_https_redirects:
                secure = Secure.WITHOUT_TLS
        values = request.args.get(b"https")
        if values:
            if values[0] == b"1":
                secure = Secure.WITH_TLS
            elif values[0] == b"0":
                secure = Secure.WITHOUT_TLS
        return secure

    def _log_download(self, request: RequestHead, kind: str, status: int, path: str, ip: str,
                      client: GeoRecord, mirror: Mirror, distance: float,
                      fallback: bool) -> None:
        download_log = self.ctx.download_log
        if download_log is None or not download_log.log_dir:
            return
        line = format_download_line(
            self.ctx.clock.seconds(), kind, status, request.method.decode("ascii", "replace"),
            path, ip, mirror.name, fallback, mirror.asnum, client.as_num, distance,
            mirror.country_fields, None,
        )
        download_log.write_line(line)

    def _count(self, request: RequestHead, ip: str, info: FileInfo, mirror_id: int) -> None:
        if not info.path:
            return
        stats = self.ctx.stats
        if request.getHeader(b"range") is None or self.ctx.config().same_download_interval <= 0:
            stats.count_download(mirror_id, info.path, info.size)
            return
        agent = (request.getHeader(b"user-agent") or b"").decode("latin-1")

        def counted(should: bool) -> None:
            if should:
                stats.count_download(mirror_id, info.path, info.size)

        d = Deferred.fromCoroutine(self.ctx.dedup.should_count(ip, agent, info.path, True))
        d.addCallback(counted)
        d.addErrback(lambda f: log.failure("range de-duplication failed", f))

    # --- MIRRORLIST: the HTML page ------------------------------------------------------------

    async def _mirrorlist(self, request: Request, config: Config, path: str) -> bytes:
        """The ``?mirrorlist`` page (§8.8): never a 304 (§20 item 19), not logged, not counted."""
        local = self._evaluate(request, config, path)
        if isinstance(local, bytes):
            return local
        info = await self._local_info(local)
        choice = await self._choose(request, config, info, local.is_file, mirrorlist=True)
        if not choice.mirrors:
            request.setResponseCode(503)  # the reference's status, with the page
        body = await mirrorlist_page(config, info, choice.ip, choice.client, choice.mirrors,
                                     choice.excluded, choice.fallback, choice.cause)
        request.setHeader(b"cache-control", _NO_CACHE)
        request.setHeader(b"content-type", _HTML)
        return self._body(request, config, body)

    # --- CHECKSUM and FILESTATS ---------------------------------------------------------------

    async def _checksum(self, request: Request, config: Config, path: str, algorithm: str) -> bytes:
        local = self._evaluate(request, config, path)
        if isinstance(local, bytes):
            return local
        try:
            info = await self.ctx.cache.file_info(local.path) if local.is_file else None
        except Exception:
            log.failure("checksum lookup of {path} failed", path=local.path)
            return self._error(request, config, 503, "Service Unavailable")
        args = request.args
        digest = ""
        if info is not None:
            for name in ("md5", "sha1", "sha256"):
                if name.encode() in args:
                    digest = getattr(info, name)
                    break
        if not digest:
            return self._error(request, config, 404, "Hash type not supported")
        request.setHeader(b"content-type", b"text/plain; charset=UTF-8")
        basename = local.path.rsplit("/", 1)[-1]
        return self._body(request, config,
                          f"{digest}  {basename}".encode("utf-8", "surrogateescape"))

    async def _mirrorstats(self, request: Request, config: Config) -> bytes:
        """The ``?mirrorstats`` page (§8.9); Redis errors are plain-text 500s, and a
        database that is down or not ready yet is a 503, as for downloads without fallback."""
        try:
            view = await mirrorstats_view(self.ctx.get_client(), self.ctx.clock.seconds())
        except DatabaseNotReady:
            return self._error(request, config, 503, "Service Unavailable")
        except MirrorstatsError as err:
            return self._error(request, config, 500, str(err))
        except StoreError:
            return self._error(request, config, 500, str(MirrorListUnavailable()))
        body = await render_mirrorstats(view, config.templates)
        request.setHeader(b"content-type", _HTML)
        return self._body(request, config, body)

    async def _file_stats(self, request: Request, config: Config, path: str) -> bytes:
        """``?stats`` (§8.10): Redis errors are 500s with their text; a database that is
        down or not ready yet is a 503, as for ``?mirrorstats``."""
        values = request.args.get(b"stats") or [b""]
        period = values[0].decode("utf-8", "replace")
        try:
            client = self.ctx.get_client()
            today = utc_date(self.ctx.clock.seconds())
            doc = await file_stats(client, path, period or None, today)
        except ValueError:
            return self._error(request, config, 400, "Invalid period")
        except DatabaseNotReady:
            return self._error(request, config, 503, "Service Unavailable")
        except Exception as err:
            return self._error(request, config, 500, str(err))
        request.setHeader(b"content-type", _TEXT)
        return self._body(request, config, dumps(doc, pretty=True))


def _wants_json(request: RequestHead, config: Config) -> bool:
    """Whether a standard request gets the JSON document rather than a redirect (§8.5)."""
    mode = config.output_mode
    return mode == "json" or (
        mode == "auto" and b"application/json" in (request.getHeader(b"accept") or b""))


def _redirect_headers(request: Request, location: bytes, links: list[bytes]) -> None:
    """The headers of a 302 to ``location`` with ``links`` as ``Link`` alternatives."""
    request.setHeader(b"cache-control", _NO_CACHE)
    request.setResponseCode(302)
    request.setHeader(b"content-type", _HTML)
    request.setHeader(b"location", location)
    if links:
        request.responseHeaders.setRawHeaders(b"link", links)


def _http_date(seconds: int) -> bytes:
    return format_http_date(seconds).encode("ascii")


