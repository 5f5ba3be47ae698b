"""``/metrics`` on ``MetricsListenAddress``: the text exposition of one scrape.

A scrape reads the mirror records from Redis (bounded by :data:`READ_TIMEOUT`; without them
the mirror families are empty), then renders this process' counts and observations, and the
process metrics of ``prometheus_client``. Nothing is logged per scrape.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from attrs import define
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from mirrorbits.logs import Logger
from mirrorbits.metrics.families import Snapshot, families
from mirrorbits.metrics.merge import CountsReport
from mirrorbits.metrics.observed import Observations
from mirrorbits.model import Mirror
from mirrorbits.store import outage

PATH = b"/metrics"
READ_TIMEOUT = 2.0

log = Logger()


@define(eq=False)
class MetricsSource:
    """Where a scrape's numbers come from."""

    counts: Callable[[], Awaitable[CountsReport]]  # this process' or the workers' sum
    observations: Observations
    redis_connected: Callable[[], bool]
    read_mirrors: Callable[[], Awaitable[Sequence[Mirror]]]
    clock: IReactorTime

    async def snapshot(self) -> Snapshot:
        mirrors: Sequence[Mirror] | None = None
        if self.redis_connected():
            reading: Deferred[Sequence[Mirror]] = Deferred.fromCoroutine(self._read())
            try:
                mirrors = await reading.addTimeout(READ_TIMEOUT, self.clock)
            except Exception as err:
                log.debug("metrics: mirrors not read: {error}", error=err)
        counts = await self.counts()
        return Snapshot(outcomes=counts.outcomes, redirects=counts.redirects,
                        mirrors=mirrors, observations=self.observations,
                        redis_connected=self.redis_connected(), caches=counts.caches)

    async def _read(self) -> Sequence[Mirror]:
        return await self.read_mirrors()


class _SnapshotCollector(Collector):
    """Yields the families of the snapshot taken for the scrape being rendered."""

    def __init__(self) -> None:
        self.current: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        if self.current is not None:
            yield from families(self.current)


def new_registry() -> tuple[CollectorRegistry, _SnapshotCollector]:
    """A registry of this process' metrics: ours and the library's process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    ours = _SnapshotCollector()
    registry.register(ours)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry, ours


class MetricsResource(Resource):
    """Answers ``GET /metrics``; 404 elsewhere."""

    isLeaf = True

    def __init__(self, source: MetricsSource) -> None:
        super().__init__()
        self.source = source
        self.registry, self._collector = new_registry()

    def render_GET(self, request: Request) -> bytes | int:
        if request.path != PATH:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Not Found: the metrics are at /metrics\n"
        Deferred.fromCoroutine(self._answer(request))
        return NOT_DONE_YET

    async def _answer(self, request: Request) -> None:
        try:
            snapshot = await self.source.snapshot()
            self._collector.current = snapshot
            try:
                body = generate_latest(self.registry)
            finally:
                self._collector.current = None
        except Exception:
            outage.report(log, "Metrics", Failure(), "metrics scrape failed")
            request.setResponseCode(500)
            body = b"Internal Server Error\n"
            content_type = "text/plain; charset=utf-8"
        else:
            content_type = CONTENT_TYPE_LATEST
        if request.finished or request._disconnected:
            return
        request.setHeader(b"content-type", content_type.encode("ascii"))
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        request.write(body)
        request.finish()


class MetricsChannel(http.HTTPChannel):
    """A metrics connection that an upgrade can end cleanly (it is ``Drainable``, see
    :class:`mirrorbits.upgrade.HeldListener`): the scrape being answered finishes, the
    connection closes after it."""

    closing = False  # every answer from now on says "Connection: close"

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        if self.closing:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            return False
        return bool(super().checkPersistence(request, version))

    def close_after_answer(self) -> None:
        self.closing = True
        for request in self.requests:
            if not request.startedWriting:
                request.responseHeaders.setRawHeaders(b"connection", [b"close"])
                self.persistent = False

    def close_if_idle(self) -> bool:
        """Close the connection if no scrape is being answered or waits unread; whether it
        was closed."""
        transport = self.transport
        if transport is None or self.requests or _bytes_waiting(transport):
            return False
        transport.loseConnection()
        return True


def _bytes_waiting(transport: Any) -> bool:
    """Whether the kernel holds bytes the client sent that the reactor has not read yet."""
    try:
        return bool(transport.getHandle().recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, AttributeError, OSError):
        return False


class MetricsSite(Site):
    """The metrics listener's site: no access log, no factory log lines."""

    noisy = False
    protocol = MetricsChannel  # type: ignore[assignment]

    def log(self, request: http.Request) -> None:
        pass


def metrics_site(source: MetricsSource, reactor: object) -> MetricsSite:
    site = MetricsSite(MetricsResource(source), reactor=reactor)
    site.displayTracebacks = False
    return site
