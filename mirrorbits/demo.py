"""``--demo``: two local mirrors of the repository, registered, scanned and enabled.

Each demo mirror serves the repository directory itself on a loopback address of its own
(127.0.0.2 and 127.0.0.3): over HTTP from this process (downloads and health checks), and
over rsync from an ``rsync --daemon`` child (scans), with its files under
``<data-dir>/demo/rsync``. At start the demo waits for the database, adds the mirrors (or
points those of the last run at this start's ports, disabled until scanned: nothing listens
on the old ones, which a health check must not try), waits for the repository's index, scans
them and enables them, as ``mirrorbits-ctl add`` and ``scan -enable`` would; the monitor's
health check then marks them up, and the demo says so with a command to try.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Awaitable, Callable

import attrs
from attrs import define, field, frozen
from twisted.application.service import Service
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import Agent
from twisted.web.http import HTTPChannel, Request
from twisted.web.server import Site
from twisted.web.static import File

from mirrorbits.connect import connect_quietly
from mirrorbits.httppool import QuietConnectionPool
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.reactors import IDaemonReactor
from mirrorbits.store.errors import ScanInProgress
from mirrorbits.store.mirrors import MirrorStore

HOSTS = (("demo-a", "127.0.0.2"), ("demo-b", "127.0.0.3"))
RSYNC_MODULE = "repository"
SCAN_TIMEOUT = 120.0  # seconds for one demo scan
LISTEN_TIMEOUT = 10.0  # seconds for an rsync daemon to accept connections
UP_TIMEOUT = 90.0  # seconds to wait for the health checks to find the mirrors up
POLL_INTERVAL = 0.2

log = Logger()


class _QuietChannel(HTTPChannel):
    """An HTTP channel that closes an idle connection without a line: the health checks keep
    theirs open, and Twisted's "Timing out client" every half minute is not news."""

    def timeoutConnection(self) -> None:
        if self.abortTimeout is not None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()


class _QuietSite(Site):
    """A static-file site without access log, factory or idle-connection lines."""

    noisy = False
    protocol = _QuietChannel  # type: ignore[assignment]  # HTTP/1.1 only, as the main site

    def log(self, request: Request) -> None:
        """No line per request."""

    def logPrefix(self) -> str:
        return "Demo HTTP"


class _RsyncDaemon(ProcessProtocol):
    """One ``rsync --daemon`` child; ``ended`` fires when it exits."""

    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


def rsyncd_config(repository: str, workdir: str, name: str) -> str:
    """The configuration of a demo mirror's rsync daemon: one read-only module."""
    return "\n".join([
        "use chroot = no", f"uid = {os.getuid()}", f"gid = {os.getgid()}",
        f"pid file = {os.path.join(workdir, name + '.pid')}",
        f"log file = {os.path.join(workdir, name + '.log')}",
        f"[{RSYNC_MODULE}]", f"path = {repository}", "read only = yes", "",
    ])


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@frozen
class DemoMirror:
    """One demo mirror: its name and where it serves."""

    name: str
    host: str
    http_port: int
    rsync_port: int

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}/"

    @property
    def rsync_url(self) -> str:
        return f"rsync://{self.host}:{self.rsync_port}/{RSYNC_MODULE}/"


@define(eq=False)
class DemoMirrors(Service):
    """Serves, registers, scans and enables the demo mirrors (see the module docstring).

    ``ready()`` fires when the database is; ``indexed()`` when the repository scan that the
    start runs anyway has indexed it (the mirrors' scans need it; no second scan);
    ``scan(mirror_id)`` scans one mirror over rsync and enables it; ``try_url()``: the
    ``http://`` URL of a file, redirected once the mirrors are up.
    """

    repository: str
    workdir: str
    reactor: IDaemonReactor
    mirrors: MirrorStore
    ready: Callable[[], Deferred[None]]
    indexed: Callable[[], Awaitable[object]]
    scan: Callable[[int], Awaitable[object]]
    try_url: Callable[[], str]
    served: list[DemoMirror] = field(factory=list, init=False)
    _ports: list[IListeningPort] = field(factory=list, init=False)
    _daemons: list[_RsyncDaemon] = field(factory=list, init=False)
    _setup: Deferred[None] | None = field(default=None, init=False)

    def startService(self) -> None:
        super().startService()
        rsync = shutil.which("rsync")
        if rsync is None:
            log.error("Demo: rsync is not installed (apt-get install rsync): no demo mirrors")
            return
        try:
            os.makedirs(self.workdir, mode=0o700, exist_ok=True)
            self.served = [self._serve(rsync, name, host) for name, host in HOSTS]
        except Exception as err:  # CannotListenError: 127.0.0.2 is not loopback everywhere
            log.error("Demo: cannot serve the demo mirrors: {error}", error=str(err))
            self._stop_serving()
            return
        self._setup = Deferred.fromCoroutine(self._register_all())
        self._setup.addErrback(self._setup_failed)

    def _serve(self, rsync: str, name: str, host: str) -> DemoMirror:
        site = _QuietSite(File(self.repository))  # a ServerFactory of HTTP channels, which
        # Twisted's annotation of listenTCP (a ServerFactory of any protocol) does not accept
        http = self.reactor.listenTCP(0, site, interface=host)  # type: ignore[arg-type]
        self._ports.append(http)
        config = os.path.join(self.workdir, name + ".conf")
        with open(config, "w") as stream:
            stream.write(rsyncd_config(self.repository, self.workdir, name))
        port = _free_port(host)
        daemon = _RsyncDaemon()
        self.reactor.spawnProcess(
            daemon, rsync, [rsync, "--daemon", "--no-detach", f"--config={config}",
                            f"--port={port}", f"--address={host}"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, path=self.workdir)
        self._daemons.append(daemon)
        address = http.getHost()
        assert isinstance(address, IPv4Address)
        return DemoMirror(name, host, address.port, port)

    def _setup_failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            log.error("Demo: setting up the demo mirrors failed: {error}",
                      error=failure.getErrorMessage())

    async def _register_all(self) -> None:
        await self.ready()
        # This start's ports first: mirrors kept from the last run name the old ones, where
        # nothing listens now, and a health check there marked them down for a CheckInterval.
        registered = [await self._register(demo) for demo in self.served]
        await self.indexed()
        for demo, mirror in zip(self.served, registered, strict=True):
            await self._accepting(demo.host, demo.rsync_port)
            try:
                await self.scan(mirror.id)
            except ScanInProgress:  # the monitor got there first
                await self.mirrors.set_enabled(mirror.id, True)
            log.info("Demo: mirror {name} serves {repository} on {http} and {rsync}: scanned "
                     "and enabled", name=demo.name, repository=self.repository,
                     http=demo.http_url, rsync=demo.rsync_url)
        await self._wait_up()

    async def _accepting(self, host: str, port: int) -> None:
        """Wait until the rsync daemon at ``host:port`` accepts connections."""
        waited = 0.0
        while True:
            try:
                probe = await connect_quietly(TCP4ClientEndpoint(self.reactor, host, port),
                                              Protocol())
            except Exception:
                if waited >= LISTEN_TIMEOUT:
                    raise
                await deferLater(self.reactor, POLL_INTERVAL, lambda: None)
                waited += POLL_INTERVAL
            else:
                if probe.transport is not None:
                    probe.transport.loseConnection()
                return

    async def _register(self, demo: DemoMirror) -> Mirror:
        """Add the mirror, or point an existing one of that name at this start's ports."""
        hits = [mid for mid, name in await self.mirrors.match(demo.name) if name == demo.name]
        if not hits:
            return await self.mirrors.add_mirror(Mirror(
                name=demo.name, http_url=demo.http_url, rsync_url=demo.rsync_url,
                comment="served by twistd mirrorbits --demo"))
        current = await self.mirrors.get_mirror(hits[0])
        if (current.http_url, current.rsync_url) == (demo.http_url, demo.rsync_url):
            return current
        # disabled in the same write: no health check until its scan enables it again
        return await self.mirrors.update_mirror(attrs.evolve(
            current, http_url=demo.http_url, rsync_url=demo.rsync_url, ftp_url="",
            enabled=False))

    async def _wait_up(self) -> None:
        """Say so once the redirector answers the try URL with a redirect (the health check
        found a mirror up), or that it does not after :data:`UP_TIMEOUT` seconds."""
        url = self.try_url()
        if not url.startswith("http://"):  # HTTP on a UNIX socket: nothing to try here
            return
        agent = Agent(self.reactor, pool=QuietConnectionPool(self.reactor, 64 * 1024))
        waited = 0.0
        while waited < UP_TIMEOUT:
            try:
                response = await agent.request(b"HEAD", url.encode("ascii"))
                redirected = response.code == 302
            except Exception:
                redirected = False
            if redirected:
                log.info("Demo: downloads are redirected to the demo mirrors now. Try: "
                         "curl -i {url}", url=url)
                return
            await deferLater(self.reactor, POLL_INTERVAL, lambda: None)
            waited += POLL_INTERVAL
        log.warn("Demo: {url} is not redirected after {seconds:g} s: see the health check "
                 "lines above, and mirrorbits-ctl list", url=url, seconds=UP_TIMEOUT)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        setup, self._setup = self._setup, None
        if setup is not None:
            setup.cancel()
        return self._stop_serving()

    def _stop_serving(self) -> Deferred[None]:
        ports, self._ports = self._ports, []
        daemons, self._daemons = self._daemons, []
        waiting: list[Deferred[None]] = [Deferred.fromCoroutine(_stop(port)) for port in ports]
        for daemon in daemons:
            if daemon.transport is not None and not daemon.ended.called:
                try:
                    daemon.transport.signalProcess("TERM")
                except Exception:
                    continue
                waiting.append(daemon.ended)
        if not waiting:
            return succeed(None)
        return DeferredList(waiting, consumeErrors=True).addCallback(lambda _: None)


async def _stop(port: IListeningPort) -> None:
    stopping = port.stopListening()
    if stopping is not None:
        await stopping
