"""The HTTP mirror scanner: walks a mirror's directory index pages (nginx JSON or HTML, Apache).

Used for a mirror that offers neither rsync nor FTP (the reference cannot scan such a mirror).
The pages are read by :mod:`mirrorbits.scan.http_index`. The walk:

* starts at the mirror's HTTP URL (a directory) and only follows links to a direct child of
  the page being read (so never ``..``, another host, a query or a sort link);
* runs at most ``Concurrency`` requests at a time on kept-alive connections, starts two
  requests at least ``Delay`` seconds apart, bounds each request (and its body) by ``Timeout``
  seconds and the whole scan by the scan's timeout; a page is at most :data:`MAX_PAGE_BYTES`,
  a walk at most ``MaxScanEntries`` entries (:data:`MAX_ENTRIES` by default),
  :data:`MAX_DIRECTORIES` directories and
  :data:`MAX_DEPTH` levels; a directory whose listing repeats one of its ancestors' (a link the
  server follows) is a loop and is not entered;
* sizes: an exact size (nginx JSON, nginx HTML in bytes, Apache below 973 bytes) is taken
  from the page; a rounded one (``1.2M``) or none is asked from the file (``HEAD``:
  ``Content-Length``), at most ``MaxHeadRequests`` per scan; a file still without an exact
  size is left out of the listing (a warning counts them) rather than stored with a wrong
  size. Times are the page's (to the second for JSON, to the minute for HTML pages, which
  makes the scan's precision a minute); the ``Last-Modified`` of a ``HEAD`` is used only for a
  page that shows no time (Apache without ``FancyIndexing``);
* rescans: every page's ``ETag`` / ``Last-Modified`` is remembered, in this process's memory,
  per mirror URL, along with the sizes learnt by ``HEAD``; the next scan of that URL asks
  with ``If-None-Match`` (``If-Modified-Since`` when the page had no ``ETag``: a listing dated
  by its directory would not change when a file is rewritten in place), a ``304`` reuses the
  remembered entries (subdirectories are still asked, each conditionally), and
  a file listed with the same rounded size and time as before keeps its size without a new
  ``HEAD``. Only a complete walk replaces what is remembered; a restart forgets it.

A subdirectory answering an error status is skipped with a warning; the top directory, a
network error or a timeout fails the scan (``http error ...``).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from typing import Final

import treq
from attrs import define, field, frozen
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.defer import CancelledError, Deferred, DeferredList, FirstError
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.task import deferLater
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS
from twisted.web.http_headers import Headers

from mirrorbits import version_string
from mirrorbits.config import HttpScan
from mirrorbits.httppool import QuietConnectionPool
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.progress import Progress
from mirrorbits.reactors import IConnectingReactor
from mirrorbits.scan.http_index import (
    SECOND_NS,
    IndexEntry,
    IndexPage,
    NotAnIndex,
    parse_http_date,
    parse_index,
)
from mirrorbits.scan.rsync import ScanError, ScanListing
from mirrorbits.scan.rsync_listing import MAX_SIZE, ListedFile
from mirrorbits.scan.walk import ScanAborted
from mirrorbits.urls import encode_url

__all__ = [
    "MAX_DEPTH",
    "MAX_DIRECTORIES",
    "MAX_ENTRIES",
    "MAX_PAGE_BYTES",
    "HttpScanner",
    "scan_url",
]

log = Logger(namespace="mirrorbits.scan.http")

MAX_PAGE_BYTES: Final = 32 * 1024 * 1024
MAX_ENTRIES: Final = 5_000_000
MAX_DIRECTORIES: Final = 500_000
MAX_DEPTH: Final = 64
#: Warnings logged one by one (then only counted).
MAX_LOGGED_WARNINGS: Final = 20
CONNECT_TIMEOUT: Final = 20.0
#: Mirror URLs whose last walk is remembered (the least recently scanned is forgotten first).
MAX_REMEMBERED: Final = 1000


@frozen
class _Page:
    """A page as the previous scan read it, with its validators."""

    etag: bytes | None
    last_modified: bytes | None
    page: IndexPage


@frozen
class _Sized:
    """A size learnt by ``HEAD`` and what the page showed then (to know it is unchanged)."""

    shown: tuple[str, int]
    size: int
    mod_time_ns: int


@define
class _Memory:
    """What the last complete walk of one mirror URL saw."""

    pages: dict[str, _Page] = field(factory=dict)
    sizes: dict[str, _Sized] = field(factory=dict)


class _TooBig(Exception):
    pass


class _Enough(Exception):
    """The body is not wanted: the connection is dropped."""


@define
class _DirJob:
    url: str
    path: str
    depth: int
    ancestors: tuple[bytes, ...]


@define
class _HeadJob:
    entry: IndexEntry
    path: str


_Job = _DirJob | _HeadJob


def scan_url(mirror: Mirror) -> str:
    """The directory URL the scan starts at: the mirror's HTTP URL (a scheme-less one gets
    ``https://`` when HTTPS is up, else ``http://``), percent-encoded, ending with ``/``."""
    base = mirror.http_url
    if "://" not in base:
        base = ("https://" if mirror.https_up else "http://") + base
    base = encode_url(base)
    return base if base.endswith("/") else base + "/"


class HttpScanner:
    """Lists HTTP mirrors; remembers each mirror URL's pages for the next scan of it.

    ``settings()`` and ``max_entries()`` (``MaxScanEntries``) are read at the start of each
    scan (the configuration may be reloaded). HTTPS certificates are verified against the
    system's CAs, or ``trust_root`` (tests).
    """

    def __init__(
        self, reactor: IConnectingReactor, settings: Callable[[], HttpScan],
        trust_root: IOpenSSLTrustRoot | None = None,
        max_entries: Callable[[], int] = lambda: MAX_ENTRIES,
    ) -> None:
        self._reactor = reactor
        self._settings = settings
        self._max_entries = max_entries
        self._policy = (BrowserLikePolicyForHTTPS(trust_root) if trust_root
                        else BrowserLikePolicyForHTTPS())
        self._memory: dict[str, _Memory] = {}

    async def list(
        self, url: str, timeout: float, name: str = "", progress: Progress | None = None
    ) -> ScanListing:
        """The files under ``url`` (``http://`` or ``https://``, a directory).

        Raises :class:`ScanError` (``http error ...``), or :class:`ScanAborted` when cancelled.
        """
        if not url.startswith(("http://", "https://")):
            raise ScanError(f"{url} does not start with http:// or https://")
        if not url.endswith("/"):
            url += "/"
        settings = self._settings()
        pool = QuietConnectionPool(self._reactor, persistent=True)
        pool.maxPersistentPerHost = settings.concurrency
        agent = Agent(self._reactor, contextFactory=self._policy, pool=pool,
                      connectTimeout=min(CONNECT_TIMEOUT, settings.timeout))
        walk = _Walk(self._reactor, agent, settings, url, name,
                     self._memory.get(url, _Memory()), progress or Progress(self._reactor),
                     self._max_entries())
        log.info("[{name}] Requesting file list via http...", name=name)
        walking: Deferred[ScanListing] = Deferred.fromCoroutine(walk.run())
        walking.addTimeout(timeout, self._reactor)
        try:
            listing = await walking
        except CancelledError:
            raise ScanAborted() from None
        except DeferredTimeoutError:
            raise ScanError(f"http error: no complete listing within {timeout:g} s") from None
        finally:
            await pool.closeCachedConnections()
        self._memory.pop(url, None)
        self._memory[url] = walk.learnt
        while len(self._memory) > MAX_REMEMBERED:
            del self._memory[next(iter(self._memory))]
        return listing


class _Walk:
    """One scan: the queue of pages and ``HEAD`` requests, served by the workers."""

    def __init__(self, reactor: IConnectingReactor, agent: Agent, settings: HttpScan, url: str,
                 name: str, memory: _Memory, progress: Progress,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.reactor = reactor
        self.max_entries = max_entries
        self.client = treq.client.HTTPClient(agent)
        self.settings = settings
        self.url = url
        self.name = name
        self.memory = memory
        self.progress = progress
        self.learnt = _Memory()
        self.headers = {b"User-Agent": [f"Mirrorbits/{version_string()} SCAN".encode()]}
        self.pending: deque[_Job] = deque([_DirJob(url, "", 0, ())])
        self.active = 0
        self.idle: list[Deferred[None]] = []
        self.next_start = 0.0
        self.files: list[ListedFile] = []
        self.entries = 0
        self.directories = 0
        self.heads = 0
        self.unsized = 0
        self.precision_ns = 0
        self.warnings: list[str] = []

    async def run(self) -> ScanListing:
        self.progress.begin("listing")
        workers = [Deferred.fromCoroutine(self._work())
                   for _ in range(max(1, self.settings.concurrency))]
        try:
            await DeferredList(workers, fireOnOneErrback=True, consumeErrors=True)
        except FirstError as error:
            for worker in workers:
                worker.cancel()
            failure = error.subFailure
            if failure.value is not None and isinstance(failure.value, Exception):
                raise failure.value from None
            raise
        if self.unsized:
            self._warn(f"{self.unsized} files left out: their size is not exact in the index "
                       f"and could not be asked with HEAD (MaxHeadRequests "
                       f"{self.settings.max_head_requests})")
        files = sorted(self.files, key=lambda f: f.path)
        return ScanListing(files=tuple(files), precision_ns=self.precision_ns or SECOND_NS,
                           warnings=tuple(self.warnings))

    async def _work(self) -> None:
        while True:
            while not self.pending:
                if self.active == 0:
                    self._wake()
                    return
                waiting: Deferred[None] = Deferred()
                self.idle.append(waiting)
                await waiting
            job = self.pending.popleft()
            self.active += 1
            try:
                if isinstance(job, _DirJob):
                    await self._directory(job)
                else:
                    await self._head(job)
            finally:
                self.active -= 1
                self._wake()

    def _wake(self) -> None:
        idle, self.idle = self.idle, []
        for waiting in idle:
            waiting.callback(None)

    async def _pace(self) -> None:
        """Wait so that two requests start at least ``Delay`` seconds apart."""
        now = self.reactor.seconds()
        start = max(now, self.next_start)
        self.next_start = start + self.settings.delay
        if start > now:
            await deferLater(self.reactor, start - now)

    async def _fetch(self, method: str, url: str,
                     extra: dict[bytes, list[bytes]],
                     want_body: bool = True) -> tuple[int, Headers, bytes]:
        """Status, headers and (for a wanted ``200``) body of one request."""
        await self._pace()
        headers = Headers({**self.headers, **extra})

        async def exchange() -> tuple[int, Headers, bytes]:
            # A redirect is not followed: it could lead off the mirror's tree.
            response = await self.client.request(method, url, headers=headers,
                                                 allow_redirects=False)
            if isinstance(response.length, int) and method != "HEAD":
                # Twisted keeps a GET's Content-Length out of the headers (response.length)
                response.headers.setRawHeaders(b"content-length",
                                               [str(response.length).encode()])
            chunks: list[bytes] = []
            size = 0

            def collect(data: bytes) -> None:
                nonlocal size
                size += len(data)
                if not want_body and size > 64 * 1024:
                    raise _Enough()
                if size > MAX_PAGE_BYTES:
                    raise _TooBig()
                if response.code == 200:
                    chunks.append(data)

            try:
                await treq.collect(response, collect)
            except _Enough:
                chunks.clear()
            return response.code, response.headers, b"".join(chunks)

        exchanging: Deferred[tuple[int, Headers, bytes]] = Deferred.fromCoroutine(exchange())
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            exchanging.cancel()

        timer = self.reactor.callLater(self.settings.timeout, expire)
        try:
            return await exchanging
        except _TooBig:
            raise ScanError(f"http error {url}: larger than {MAX_PAGE_BYTES} bytes") from None
        except Exception as err:
            if timed_out:
                raise ScanError(f"http error {url}: no answer within "
                                f"{self.settings.timeout:g} s") from None
            if _cancelled(err):  # the scan was cancelled (Twisted may wrap the cancellation)
                raise CancelledError() from None
            raise ScanError(f"http error {url}: {_describe(err)}") from None
        finally:
            if timer.active():
                timer.cancel()

    async def _directory(self, job: _DirJob) -> None:
        self.directories += 1
        if self.directories > MAX_DIRECTORIES:
            raise ScanError(f"http error: more than {MAX_DIRECTORIES} directories")
        remembered = self.memory.pages.get(job.url)
        conditions: dict[bytes, list[bytes]] = {}
        if remembered is not None:
            # An ETag alone: a server may date a listing by its directory, which does not
            # change when a file in it is rewritten in place.
            if remembered.etag:
                conditions[b"If-None-Match"] = [remembered.etag]
            elif remembered.last_modified:
                conditions[b"If-Modified-Since"] = [remembered.last_modified]
        code, headers, body = await self._fetch("GET", job.url, conditions)
        if code == 304 and remembered is not None:
            page = remembered.page
            self.learnt.pages[job.url] = remembered
        elif code == 200:
            content_type = (headers.getRawHeaders(b"content-type") or [b""])[0]
            try:
                page = parse_index(body, content_type.decode("latin-1"), job.url)
            except NotAnIndex as err:
                raise ScanError(f"http error {job.url}: {err}") from None
            etag = _header(headers, b"etag")
            modified = _header(headers, b"last-modified")
            if etag or modified:
                self.learnt.pages[job.url] = _Page(etag, modified, page)
        else:
            where = (headers.getRawHeaders(b"location") or [b""])[0]
            status = f"HTTP status {code}" + (f" (to {where.decode('latin-1')})" if where else "")
            if not job.path:
                raise ScanError(f"http error {job.url}: {status}")
            self._warn(f"skipping {job.path}/: {status}")
            return
        if page.rejected:
            self._warn(f"{page.rejected} unusable entries in {job.path or '/'}")
        self.entries += len(page.entries)
        if self.entries > self.max_entries:
            raise ScanError(f"http error: more than {self.max_entries} entries (MaxScanEntries)")
        fingerprint = _fingerprint(page)
        if fingerprint in job.ancestors:
            self._warn(f"directory loop at {job.path}/, not entered")
            return
        ancestors = (*job.ancestors, fingerprint)
        for entry in page.entries:
            path = f"{job.path}/{entry.name}"
            if entry.is_dir:
                if job.depth >= MAX_DEPTH:
                    self._warn(f"{path} is deeper than {MAX_DEPTH} levels")
                else:
                    self.pending.append(_DirJob(entry.href, path, job.depth + 1, ancestors))
            else:
                self._file(entry, path)

    def _file(self, entry: IndexEntry, path: str) -> None:
        if entry.size is not None:
            self._add(path, entry.size, entry.mod_time_ns, entry.precision_ns)
            return
        known = self.memory.sizes.get(entry.href)
        shown = (entry.shown_size, entry.mod_time_ns)
        if known is not None and entry.mod_time_ns and known.shown == shown:
            self.learnt.sizes[entry.href] = known
            self._add(path, known.size, known.mod_time_ns, entry.precision_ns)
        elif self.heads < self.settings.max_head_requests:
            self.heads += 1
            self.pending.append(_HeadJob(entry, path))
        else:
            self.unsized += 1

    async def _head(self, job: _HeadJob) -> None:
        entry = job.entry
        code, headers, _ = await self._fetch("HEAD", entry.href, {})
        length = _size(_header(headers, b"content-length"))
        if code == 200 and length is None:
            # Apache sends no Content-Length for an empty file: ask for its first byte, whose
            # Content-Range (206, or 416 when it is empty) tells the size.
            code, ranged, _ = await self._fetch("GET", entry.href, {b"Range": [b"bytes=0-0"]},
                                                want_body=False)
            if code in (206, 416):
                total = (_header(ranged, b"content-range") or b"").rpartition(b"/")[2]
                length = _size(total)
                code = 200
            elif code == 200:
                length = _size(_header(ranged, b"content-length"))
        if code != 200 or length is None:
            why = f"HTTP status {code}" if code != 200 else "no Content-Length"
            self._warn(f"left out {job.path}: HEAD gave {why}")
            return
        mod_time_ns, precision = entry.mod_time_ns, entry.precision_ns
        if not mod_time_ns:
            modified = (headers.getRawHeaders(b"last-modified") or [b""])[0]
            mod_time_ns = parse_http_date(modified.decode("latin-1")) or 0
            precision = SECOND_NS if mod_time_ns else 0
        size = length
        self.learnt.sizes[entry.href] = _Sized((entry.shown_size, entry.mod_time_ns), size,
                                               mod_time_ns)
        self._add(job.path, size, mod_time_ns, precision)

    def _add(self, path: str, size: int, mod_time_ns: int, precision_ns: int) -> None:
        self.files.append(ListedFile(path=path, size=size, mod_time_ns=mod_time_ns))
        if mod_time_ns:
            self.precision_ns = max(self.precision_ns, precision_ns)
        self.progress.advance()

    def _warn(self, warning: str) -> None:
        if len(self.warnings) < 1000:
            self.warnings.append(warning)
        if len(self.warnings) <= MAX_LOGGED_WARNINGS:
            log.warn("[{name}] {warning}", name=self.name, warning=warning)


def _fingerprint(page: IndexPage) -> bytes:
    digest = hashlib.sha256()
    for entry in sorted(page.entries, key=lambda e: e.name):
        digest.update(f"{entry.name}\0{entry.is_dir}\0{entry.shown_size}\0"
                      f"{entry.mod_time_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.digest()


def _size(text: bytes | None) -> int | None:
    """A size in bytes from a header value; ``None`` if absent or invalid."""
    if text is None or not text.strip().isdigit() or len(text.strip()) > 19:
        return None
    value = int(text)
    return value if value <= MAX_SIZE else None


def _header(headers: Headers, name: bytes) -> bytes | None:
    values = headers.getRawHeaders(name)
    return values[0] if values else None


def _cancelled(error: BaseException) -> bool:
    """Whether ``error`` is, or wraps, a cancellation."""
    if isinstance(error, CancelledError):
        return True
    reasons = getattr(error, "reasons", None)
    return isinstance(reasons, list) and any(
        isinstance(getattr(reason, "value", None), CancelledError) for reason in reasons)


def _describe(error: BaseException) -> str:
    """A short text for a failed request (Twisted wraps the cause in ``reasons``)."""
    reasons = getattr(error, "reasons", None)
    if isinstance(reasons, list) and reasons and getattr(reasons[0], "value", None) is not None:
        return _describe(reasons[0].value)
    text = str(error).strip()
    return text or type(error).__name__
