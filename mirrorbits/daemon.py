"""The daemon's service tree: wiring of every component, signals and reload.

Children start in the order they are added and stop in reverse: Redis first,
listeners last, so HTTP and control stop before the things they use.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import platform
import random
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from types import FrameType

from attrs import define, field
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred

from mirrorbits import statsspool, version_info, version_string
from mirrorbits.cache import REFRESH_INTERVAL, MirrorCache
from mirrorbits.cluster import ClusterService, new_node_id, valid_node_id
from mirrorbits.config import Config, ConfigError, load_config
from mirrorbits.confighold import RELOAD_REFUSED, ConfigHolder
from mirrorbits.control.server import ControlBackend, control_factory
from mirrorbits.embedded import DEMO_SUBDIRECTORY, EmbeddedStart
from mirrorbits.embedded_redis import EmbeddedRedis
from mirrorbits.firststeps import (
    NoMirrorHint,
    RootGuide,
    ctl_command,
    ctl_program,
    embedded_lines,
    example_file,
    http_base,
    no_mirror_hint,
)
from mirrorbits.geo import GeoIP, MirrorLocation, locate_mirror
from mirrorbits.health import HealthChecker
from mirrorbits.health.freshness import FreshnessChecker
from mirrorbits.health.liveness import LivenessProbes
from mirrorbits.health.refusals import HeadRefusals
from mirrorbits.health.unrecorded import release_on_message
from mirrorbits.health.verify import FileVerifier
from mirrorbits.helddown import HeldDown
from mirrorbits.listen import AdoptedListener, parse_listen_address
from mirrorbits.logs import Logger, set_debug
from mirrorbits.metrics.merge import CountsReport, report_of
from mirrorbits.metrics.observed import Observations
from mirrorbits.mirmon_export import MirmonExport
from mirrorbits.model import Mirror
from mirrorbits.reactors import IDaemonReactor
from mirrorbits.retention import RetentionService
from mirrorbits.scan.changing import ChangingPaths
from mirrorbits.scan.local import RepositoryScanner
from mirrorbits.scan.scheduler import MirrorScanner, ScanOutcome
from mirrorbits.scan.watch import RepositoryWatcher
from mirrorbits.stats import RangeDeduplicator, StatsService, stats_files, stats_mirror
from mirrorbits.store import keys, outage
from mirrorbits.store.mirrors import MirrorStore, mirror_ids
from mirrorbits.store.pubsub import PubSubService
from mirrorbits.store.redis import RedisService
from mirrorbits.systemd.activation import NOT_ACTIVATED, ActivatedSockets
from mirrorbits.systemd.notify import Notifier
from mirrorbits.twistdlog import leave_rotation_to_logrotate, moved_away, twistd_log_file
from mirrorbits.upgrade import (
    ENV_NODE_ID,
    READY_TIMEOUT,
    HeldListener,
    Successor,
    UpgradeError,
    Upgrader,
    inheritance_from_env,
    ready_within,
    upgrade_hook,
)
from mirrorbits.warmup import WARM_HOLD, CacheWarmer
from mirrorbits.web.downloadlog import DownloadLog
from mirrorbits.web.resource import RedirectResource, WebContext
from mirrorbits.web.site import RedirectorSite
from mirrorbits.workers import WorkerPool, worker_count
from mirrorbits.workers.wire import HELD_DOWN, changing_line

GEO_CHECK_INTERVAL = 5.0
STARTUP_READY_TIMEOUT = 2.0  # seconds a fresh start waits for Redis before serving anyway
# UNIX socket files: the control channel is the daemon user's alone; the HTTP socket is
# what a TCP port on loopback would be, open to the local reverse proxy (restrict it with
# the permissions of its directory, or systemd's SocketMode=).
CONTROL_SOCKET_MODE = 0o600
HTTP_SOCKET_MODE = 0o666

log = Logger()

# What signal.signal takes and returns: a function, SIG_DFL or SIG_IGN, or None (not set
# from Python).
_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None




@define(eq=False, repr=False)
class Daemon(MultiService):
    """The root service: owns the configuration and reacts to signals.

    No attrs ``repr``: its signal handlers are bound methods, whose ``repr`` Twisted formats
    at each ``spawnProcess``; the default one names the object without walking every service.
    """

    holder: ConfigHolder
    reactor: IDaemonReactor
    geo: GeoIP
    download_log: DownloadLog | None = None
    upgrader: Upgrader | None = None
    notifier: Notifier = field(factory=lambda: Notifier(None))
    describe: Callable[[], str] = lambda: "Serving"  # the state, for systemd's STATUS=
    greeting: list[str] = field(factory=list)  # logged at start: what runs where
    workers: WorkerPool | None = None  # the HTTP worker processes, with ``Workers`` > 1
    says_warnings: bool = True  # a worker's are the daemon's, logged by the daemon
    _handing_over: bool = False
    _previous_handlers: dict[int, _Handler] = field(factory=dict)

    def __attrs_post_init__(self) -> None:
        MultiService.__init__(self)

    def bind_listeners(self) -> None:
        """Create every listening socket now, so that an address that cannot be listened on
        stops the start with one line (before twistd daemonizes); ListenAddressError."""
        for child in self:
            if isinstance(child, AdoptedListener | WorkerPool):
                child.bind()

    def startService(self) -> None:
        for line in self.greeting:
            log.info("{line}", line=line)
        outage.stopping(False)
        outage.use_clock(self.reactor.seconds)
        # The handlers before the services: once the control channel says it started, a
        # signal is the daemon's (the handlers only schedule work for the running reactor).
        handlers: list[tuple[int, _Handler]] = [
            (signal.SIGHUP, self._on_sighup), (signal.SIGUSR1, self._on_sigusr1)]
        if self.upgrader is not None:
            handlers += [(signal.SIGUSR2, self._on_sigusr2), (signal.SIGQUIT, self._on_sigquit)]
        for signum, handler in handlers:
            with contextlib.suppress(ValueError):  # not in the main thread (tests)
                self._previous_handlers[signum] = signal.signal(signum, handler)
        log_file = twistd_log_file(self._previous_handlers.get(signal.SIGUSR1))
        if log_file is not None:
            leave_rotation_to_logrotate(log_file)
        super().startService()
        self.geo.start_watching(GEO_CHECK_INTERVAL)  # replaced databases are picked up
        self.reactor.callWhenRunning(tune_garbage_collector)

    def serving(self, main_pid: int | None = None) -> None:
        """HTTP is served (``main_pid``: by this successor, instead of the main process)."""
        self.notifier.ready(self.describe(), main_pid)

    def stopService(self) -> Deferred[None] | None:
        outage.stopping(True)
        if not self._handing_over:  # a successor is the service now: systemd must not stop
            self.notifier.stopping()
        self.geo.stop_watching()
        for signum, previous in self._previous_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, previous)
        self._previous_handlers.clear()
        return Deferred.fromCoroutine(self._stop_in_order())

    async def _stop_in_order(self) -> None:
        """Stop children one at a time, last added first: listeners stop taking work,
        then the stats flush and the download log finish while Redis is still there."""
        Service.stopService(self)
        for child in reversed(list(self)):
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                log.failure("stopping {name} failed", name=child.name)

    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        self.reactor.callFromThread(self.reload_from_signal)

    def _on_sigusr1(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_handlers.get(signal.SIGUSR1)
        log_file = twistd_log_file(previous)
        if log_file is not None and moved_away(log_file):  # logrotate moved it: follow
            self.reactor.callFromThread(log_file.reopen)
        elif callable(previous):  # twistd's own: it renames its log to .1
            previous(signum, frame)
        self.reactor.callFromThread(self.reopen_logs, "SIGUSR1 Received: Re-opening logs...")

    def _on_sigusr2(self, signum: int, frame: FrameType | None) -> None:
        if self.upgrader is not None:
            self.reactor.callFromThread(self.upgrader.upgrade_from_signal)

    def _on_sigquit(self, signum: int, frame: FrameType | None) -> None:
        if self.upgrader is not None:
            self._handing_over = True
            self.reactor.callFromThread(self.upgrader.quit_from_signal)

    def reload_from_signal(self) -> None:
        with contextlib.suppress(ConfigError):  # logged; the running configuration stays
            self.reload()

    def reload(self, asked_by: str = "SIGHUP Received") -> list[str]:
        """Reload the configuration, GeoIP databases and logs; keep everything on error.

        Returns the new file's warnings, also logged. A refused file is logged with the
        warnings that may explain it, and raised (:class:`ConfigError`) for the control channel.
        ``asked_by`` starts the log lines: the signal (the reference's words) or the control.
        """
        self.notifier.reloading()
        try:
            warnings = self.holder.reload()
        except ConfigError as err:
            log.warn("{asked_by}: {refused}: {error}", asked_by=asked_by,
                     refused=RELOAD_REFUSED, error=str(err))
            for warning in err.warnings:
                log.warn("{warning}", warning=warning)
            self.notifier.reloaded(f"{self.describe()}; reload refused: {err}")
            raise
        log.info("{asked_by}: Reloading configuration...", asked_by=asked_by)
        for warning in warnings if self.says_warnings else ():
            log.warn("{warning}", warning=warning)
        self.reopen_logs(None, config_checked=True)
        if self.workers is not None:  # each reads the file again (and reopens its logs)
            self.workers.signal_all(signal.SIGHUP)
        self.notifier.reloaded(self.describe())
        return warnings

    def reopen_logs(self, message: str | None, config_checked: bool = False) -> None:
        if message:
            log.info(message)
        if self.download_log is not None:
            self.download_log.reopen(config_checked)
        if self.workers is not None and message is not None:  # a reload signals them itself
            self.workers.signal_all(signal.SIGUSR1)


#: How a reload asked with ``mirrorbits-ctl reload`` starts its log lines (a SIGHUP's say so).
CONTROL_RELOAD = "Reload asked by mirrorbits-ctl"


#: Collector thresholds once started: a young collection every 10,000 net new objects (about
#: 1.5 ms), a middle one every 5 of those (at most 50,000 objects: 16-31 ms at worst). Under
#: steady load nothing survives and no collection runs; the rankings the first seconds keep
#: are flat tuples the first young collection untracks (selection/fast.py). With (50,000, 20)
#: and tracked rankings the young pauses took 3-57 ms and a middle one, over up to 1,000,000
#: objects, 148-192 ms, inside the first 5 s of bench/redirect.
GC_THRESHOLDS = (10_000, 5, 100)


def tune_garbage_collector() -> None:
    """Objects alive after start-up are never scanned again, and the collections of what the
    first requests keep (rankings, distances) stay short: :data:`GC_THRESHOLDS`.

    Only the young generations are collected before the freeze: a full collection after the
    cache fill scans every cached record (1.6 s for 850,000 objects, 10,000 files on 27
    mirrors each), a stall before the process accepts. What the fill left in the old
    generation is frozen with the cache (the garbage among it, if any, stays: once)."""
    gc.collect(1)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def build_daemon(
    *,
    config: Config,
    config_path: str | None,
    warnings: list[str],
    reactor: IDaemonReactor,
    monitor: bool,
    debug: bool,
    argv: list[str],
    embedded: EmbeddedStart | None = None,
    activated: ActivatedSockets = NOT_ACTIVATED,
    notifier: Notifier | None = None,
    repository: str | None = None,
) -> Daemon:
    """Wire every component of one node. No network I/O happens here: connections start
    with the services, and the listening sockets are bound by :meth:`Daemon.bind_listeners`.

    ``embedded``: how a start without configuration file finds its Redis (None with a
    file); ``repository``: the ``--repository`` option, kept over reloads; ``activated``:
    the sockets systemd passed; ``notifier``: what tells systemd how we are.
    """
    set_debug(debug)
    cwd = os.getcwd()  # before twistd moves to --rundir: the successor starts here
    inherited = inheritance_from_env(os.environ, os.getppid())
    # An upgrade's successor is the same cluster node: its peers see no node leave and
    # join, and the mirrors of its share are not left unchecked until the parent times out.
    node_id = (inherited.node_id if inherited is not None and inherited.node_id
               and valid_node_id(inherited.node_id)
               else new_node_id(socket.gethostname(), random.Random()))
    os.environ.pop(ENV_NODE_ID, None)
    for warning in warnings:
        log.warn("{warning}", warning=warning)
    # read again on reload, after twistd moved to its --rundir
    held_path = os.path.join(cwd, config_path) if config_path is not None else None
    holder = ConfigHolder(current=config, path=held_path, base=cwd,
                          repository=os.path.join(cwd, repository) if repository else None)
    geo = GeoIP(config.geoip_database_path, reactor)
    daemon = Daemon(holder=holder, reactor=reactor, geo=geo)
    if notifier is not None:
        daemon.notifier = notifier
    daemon.setName("mirrorbits")
    successor = None
    if inherited is not None:  # started by an upgrade: take over from the parent; the first
        # service, so that it starts first (log file) and stops last (pid file)
        successor = Successor(reactor, inherited, list(argv), cwd)
        successor.setServiceParent(daemon)
    refusal = _add_embedded_redis(daemon, config, embedded, activated)
    redis, pubsub = _add_redis(daemon, holder, reactor)
    stats, download_log = _add_accounting(daemon, holder, reactor, redis)
    if config.stats_spool_dir:
        daemon.greeting.append(statsspool.start_line(config.stats_spool_dir))
    observations = Observations()
    # What this node's checks found down and Redis would not record (mirrorbits.helddown):
    # owned here, followed by the HTTP side (this process' cache, or the workers').
    held_down = HeldDown()
    pubsub.on_message(keys.CHANNEL_MIRROR_UPDATE,
                      lambda message: release_on_message(held_down, message))
    work = _add_monitoring(daemon, holder, reactor, redis, pubsub, geo, monitor, observations,
                           node_id, held_down)
    backend, control = _add_control(daemon, holder, reactor, redis, geo, work, activated)
    ctl = ctl_command(ctl_program(cwd=cwd), config.rpc_listen_address,
                      bool(config.rpc_password))
    root_page = None
    if embedded is not None:
        root_page = RootGuide(lambda: holder.current.repository, embedded.describe_redis(config),
                              ctl, embedded.demo, work.count_mirrors, reactor,
                              indexed=work.indexed).text
    workers = worker_count(config, from_file=config_path is not None, cores=os.cpu_count())
    http: HeldListener | WorkerPool
    counts: Callable[[], Awaitable[CountsReport]]
    if workers > 1:
        http = _add_workers(daemon, holder, reactor, redis, successor, activated.http, workers,
                            cwd=cwd, repository=repository, debug=debug)
        # The caches are the workers': no file messages here (a storm would cost this
        # process as much as a worker, for nothing).
        pubsub.channels = (keys.CHANNEL_MIRROR_UPDATE, keys.CHANNEL_CLUSTER)
        counts = http.counts
        pool = http
        # The workers hold requests for what the watch saw change, as this process would.
        work.changing.forward = lambda kind, argument: pool.tell_all(
            changing_line(kind, argument))

        def held_down_line() -> bytes:
            return changing_line(HELD_DOWN, held_down.snapshot())

        held_down.listeners.append(lambda _released: pool.tell_all(held_down_line()))
        pool.greeting = lambda: [held_down_line()] if held_down else []
    else:
        http, context = _add_http(daemon, holder, reactor, redis, pubsub, stats, download_log,
                                  geo, successor, activated.http, root_page,
                                  _serving(daemon, redis, successor), work.changing,
                                  held_down)
        counts = local_counts(context)
    metrics = _add_metrics(daemon, holder, reactor, redis, work, observations, counts,
                           activated.metrics, successor)
    if activated.metrics is not None and refusal is None:
        refusal = ("not possible with a metrics socket passed by systemd: use systemctl "
                   "restart (the socket units keep new connections waiting)")
    _add_first_steps(daemon, holder, reactor, redis, work, embedded, ctl,
                     show_hint=monitor and successor is None)

    def describe() -> str:
        state = "" if redis.ready else " (database not ready)"
        return f"Serving HTTP on {http.describe()}{state}"

    daemon.describe = describe
    successor_notifier = daemon.notifier
    daemon.upgrader = Upgrader(
        reactor=reactor, http=http, control=control, metrics=metrics, argv=list(argv), cwd=cwd,
        executable=sys.executable, inherited=inherited, monitors=work.monitors, refusal=refusal,
        env=lambda: {**os.environ, **successor_notifier.environment(), ENV_NODE_ID: node_id},
        preflight=lambda: _successor_would_start(holder),
    )
    backend.upgrade = upgrade_hook(daemon.upgrader)
    return daemon


def _successor_would_start(holder: ConfigHolder) -> None:
    """Raise :class:`UpgradeError` when the configuration file, as it is on disk now, would
    stop the new process at its start: said before spawning it, with the reason."""
    if holder.path is None:
        return
    try:
        load_config(holder.path)
    except ConfigError as err:
        raise UpgradeError(f"the new process would not start: {err}") from None


def _control_tls(config: Config) -> tuple[str, str, str]:
    return config.rpc_tls_certificate, config.rpc_tls_key, config.rpc_tls_client_ca


def _add_embedded_redis(daemon: Daemon, config: Config, embedded: EmbeddedStart | None,
                        activated: ActivatedSockets) -> str | None:
    """The embedded start's greeting and private redis-server (supervised here unless one
    already runs); why this process cannot upgrade, if it cannot."""
    refusal = None
    if activated.control is not None:
        refusal = ("not possible with a control socket passed by systemd: use systemctl "
                   "restart (the socket units keep new connections waiting)")
    if embedded is not None:
        private = embedded.private_redis
        daemon.greeting += embedded_lines(
            config.repository, http_base(config.listen_address), config.rpc_listen_address,
            embedded.describe_redis(config), private.address if private is not None else None)
        if private is not None and private.running_pid is None:
            EmbeddedRedis(private.host, private.port, private.directory,
                          daemon.reactor).setServiceParent(daemon)
            refusal = "not possible while this process runs the embedded redis-server"
    return refusal


def _add_redis(daemon: Daemon, holder: ConfigHolder,
               reactor: IDaemonReactor) -> tuple[RedisService, PubSubService]:
    """The command connection and the pub/sub one, following reloads and failovers."""
    config = holder.current
    redis = RedisService(
        config.redis_address, config.redis_password, config.redis_db,
        config.redis_sentinels, config.redis_sentinel_master_name, reactor,
    )
    redis.setName("redis")
    redis.setServiceParent(daemon)
    holder.subscribe(
        lambda old, new: redis.reconfigure(
            new.redis_address, new.redis_password, new.redis_db,
            new.redis_sentinels, new.redis_sentinel_master_name,
        )
    )
    pubsub = PubSubService(config.redis_address, config.redis_password, reactor,
                           sentinels=config.redis_sentinels,
                           master_name=config.redis_sentinel_master_name)
    holder.subscribe(
        lambda old, new: pubsub.reconfigure(
            new.redis_address, new.redis_password, new.redis_sentinels,
            new.redis_sentinel_master_name,
        )
    )
    pubsub.setName("pubsub")
    pubsub.setServiceParent(daemon)
    redis.on_master(pubsub.follow_master)  # after a Sentinel failover, both move together
    return redis, pubsub


def _add_accounting(daemon: Daemon, holder: ConfigHolder, reactor: IDaemonReactor,
                    redis: RedisService, replays_spool: bool = True,
                    ) -> tuple[StatsService, DownloadLog]:
    """The download counters (flushed to Redis) and the download log. ``replays_spool``:
    this process writes to Redis the counters stopped processes kept in ``StatsSpoolDir``
    (the daemon; its HTTP workers only keep theirs there)."""
    stats = StatsService(redis.session, reactor,
                         spool_dir=lambda: holder.current.stats_spool_dir,
                         replays_spool=replays_spool)
    stats.setName("stats")
    stats.setServiceParent(daemon)
    download_log = DownloadLog(
        holder.current.log_dir, reactor, socket.gethostname(),
        f"Built with CPython {platform.python_version()} for {sys.platform}/{platform.machine()}",
    )
    download_log.setName("downloadlog")
    download_log.setServiceParent(daemon)
    daemon.download_log = download_log

    def follow_log_dir(old: Config, new: Config) -> None:
        download_log.log_dir = new.log_dir

    holder.subscribe(follow_log_dir)
    return stats, download_log


@define(eq=False)
class _Monitoring:
    """The scans and health checks of a node (running only on a monitoring node)."""

    redis: RedisService
    scanner: RepositoryScanner
    mirrors: MirrorStore
    mirror_scanner: MirrorScanner
    monitor: bool
    monitors: list[IService]  # what an upgrade stops before the successor takes over
    changing: ChangingPaths  # what the repository watch saw change, not yet published
    # a mirror to health-check at the next round (within a second), not at its interval
    check_soon: Callable[[int], None] = lambda _mirror_id: None

    async def count_mirrors(self) -> int:
        return len(await mirror_ids(self.redis.client()))

    def indexed(self) -> bool:
        """Whether the repository was indexed (a node that does not scan cannot tell)."""
        return not self.monitor or self.scanner.indexed


def _add_monitoring(daemon: Daemon, holder: ConfigHolder, reactor: IDaemonReactor,
                    redis: RedisService,
                    pubsub: PubSubService, geo: GeoIP, monitor: bool,
                    observations: Observations, node_id: str,
                    held_down: HeldDown) -> _Monitoring:
    """The local scan, the mirror store, and on a monitoring node the cluster, the mirror
    scans, the health checks, the statistics retention and the Mirmon export file (the
    CLI's scan works on every node)."""
    scanner = RepositoryScanner(lambda: holder.current, redis.client, reactor)
    scanner.setName("repository-scan")
    monitors: list[IService] = []
    changing = ChangingPaths(reactor)
    head_refusals = HeadRefusals()  # the mirrors refusing HEAD, as the checks find them
    if monitor:
        monitors.append(scanner)
        scanner.setServiceParent(daemon)
        holder.subscribe(lambda old, new: scanner.config_changed())
        freshness = FreshnessChecker(lambda: holder.current, redis.client, reactor,
                                     lambda mirror_id: cluster.handles(mirror_id),
                                     lost=lambda mirror, path: freshness_lost(mirror, path),
                                     head_refusals=head_refusals)
        freshness.setServiceParent(daemon)
        monitors.append(freshness)
        watcher = RepositoryWatcher(lambda: holder.current, redis.client, reactor, scanner,
                                    freshness.changed, changing)
        watcher.setServiceParent(daemon)
        monitors.append(watcher)
        holder.subscribe(lambda old, new: watcher.config_changed())

    geo.load_and_report()
    holder.subscribe(lambda old, new: _reload_geo(geo, new))

    mirrors = MirrorStore(redis, reactor)
    # Only monitoring nodes join the cluster: a node that neither scans nor checks must not
    # be given a share of the mirrors.
    cluster = ClusterService(redis.client, lambda: holder.current.redis_db, reactor, node_id)
    mirror_scanner = MirrorScanner(lambda: holder.current, redis.client, mirrors, reactor,
                                   handles=cluster.handles, on_scanned=observations.scanned)
    if monitor:
        pubsub.on_message(keys.CHANNEL_CLUSTER, cluster.on_announce)
        cluster.setServiceParent(daemon)
        mirror_scanner.setServiceParent(daemon)
        health = HealthChecker(
            lambda: holder.current, redis.client, mirrors, reactor,
            rescan=lambda mirror_id: mirror_scanner.scan(mirror_id, False, "all", None),
            handles=cluster.handles, observe=observations.checked, held_down=held_down,
            read_client=redis.read_client, head_refusals=head_refusals,
        )
        health.setServiceParent(daemon)
        verifier = FileVerifier(lambda: holder.current, redis.client, mirrors, reactor,
                                health.file_lost, handles=cluster.handles,
                                head_refusals=head_refusals)
        liveness = LivenessProbes(lambda: holder.current, redis.client, mirrors, reactor,
                                  handles=cluster.handles, check_soon=health.check_soon,
                                  answered=verifier.answered_within, held_down=held_down,
                                  read_client=redis.read_client)
        liveness.setServiceParent(daemon)
        verifier.setServiceParent(daemon)

        def freshness_lost(mirror: Mirror, path: str) -> None:
            """A mirror answered 404 for a changed file it held: forget it there, rescan,
            and verify that mirror more often for a while (files go in batches)."""
            health.file_lost(mirror, path)
            verifier.boost(mirror.id)
        retention = RetentionService(lambda: holder.current, redis.client, reactor,
                                     lambda: redis.redis_version >= (4, 0, 0))
        holder.subscribe(lambda old, new: retention.config_changed())
        retention.setServiceParent(daemon)
        mirmon = MirmonExport(lambda: holder.current, mirrors.all_mirrors, reactor)
        pubsub.on_message(keys.CHANNEL_MIRROR_UPDATE, mirmon.mirror_changed)
        pubsub.on_reconnect(mirmon.changed)
        holder.subscribe(lambda old, new: mirmon.changed())
        mirmon.setServiceParent(daemon)
        monitors += [health, liveness, verifier, mirror_scanner, cluster, retention, mirmon]
    work = _Monitoring(redis, scanner, mirrors, mirror_scanner, monitor, monitors, changing)
    if monitor:
        work.check_soon = health.check_soon
    return work


def _add_control(daemon: Daemon, holder: ConfigHolder, reactor: IDaemonReactor,
                 redis: RedisService,
                 geo: GeoIP, work: _Monitoring,
                 activated: ActivatedSockets) -> tuple[ControlBackend, AdoptedListener]:
    """The control channel: what its commands call, and its listener."""

    async def locate(url: str) -> MirrorLocation:
        from twisted.internet.threads import deferToThreadPool

        return await deferToThreadPool(reactor, reactor.getThreadPool(), locate_mirror, geo, url)

    async def reload() -> list[str]:
        return daemon.reload(CONTROL_RELOAD)

    async def refresh(rehash: bool) -> object:
        redis.require_master()  # a replica: refused before the scan starts
        return await work.scanner.refresh(rehash)

    async def file_downloads(pattern: str, first: str, last: str) -> dict[str, int]:
        try:
            regex = re.compile(pattern)
        except re.error as err:
            glob = pattern.startswith(("*", "?", "+"))  # as a shell pattern ("*.iso") is
            hint = " (a regular expression, not a glob: '\\.iso$' for the files ending in .iso)"
            raise ValueError(f"invalid pattern {pattern!r}: {err}{hint if glob else ''}") from None
        return await stats_files(redis.read_client(), regex, _day(first), _day(last))

    async def mirror_downloads(mirror_id: int, first: str, last: str) -> tuple[int, int]:
        return await stats_mirror(redis.read_client(), mirror_id, _day(first), _day(last))

    async def scan(mirror_id: int, auto_enable: bool, protocol: str,
                   timeout: float | None) -> ScanOutcome:
        """``mirrorbits-ctl scan``: a mirror held down because its rescan failed (rsync was
        stopped, say) is checked at once once the operator's scan succeeds, not at its next
        ``CheckInterval``. Refused while only a replica answers, before the mirror is
        scanned."""
        redis.require_master()
        outcome = await work.mirror_scanner.scan(mirror_id, auto_enable, protocol, timeout)
        work.check_soon(mirror_id)
        return outcome

    backend = ControlBackend(
        # Its reads answer from a replica while no master does; its writes are refused then.
        mirrors=MirrorStore(redis, reactor, replica_reads=True),
        locate=locate,
        password=lambda: holder.current.rpc_password,
        reload=reload,
        version=version_info,
        refresh=refresh,
        scan=scan,
        stats_file=file_downloads,
        stats_mirror=mirror_downloads,
        refresh_progress=work.scanner.progress, scan_progress=work.mirror_scanner.progress,
    )
    config = holder.current
    amp_factory = control_factory(backend, reactor, lambda: holder.current.rpc_idle_timeout)
    factory: object = amp_factory
    if config.rpc_tls_certificate:  # TLSSetupError for files that cannot be used
        from mirrorbits.control.tls import ServerTLS, tls_factory

        tls = ServerTLS(*_control_tls(config))
        factory = tls_factory(tls, amp_factory)

        def reread_tls(old: Config, new: Config) -> None:  # a renewed certificate
            if new.rpc_tls_certificate:  # else: warned, TLS stays on until a restart
                tls.reload(*_control_tls(new))

        holder.subscribe(reread_tls)
    control = AdoptedListener(
        parse_listen_address(config.rpc_listen_address, unix_mode=CONTROL_SOCKET_MODE),
        factory,
        reactor,
        inherited_fd=activated.control,
        setting="RPCListenAddress",
        foreign=activated.control is not None,
    )
    control.setName("control")
    control.setServiceParent(daemon)
    return backend, control


def _add_first_steps(daemon: Daemon, holder: ConfigHolder, reactor: IDaemonReactor,
                     redis: RedisService,
                     work: _Monitoring, embedded: EmbeddedStart | None, ctl: str, *,
                     show_hint: bool) -> None:
    """``--demo``'s mirrors, or the hint a node without mirrors logs (``show_hint``)."""
    config = holder.current
    if embedded is not None and embedded.demo:
        from mirrorbits.demo import SCAN_TIMEOUT, DemoMirrors  # twisted.web.static: only here

        def try_url() -> str:
            example = example_file(holder.current.repository) or "/"
            return http_base(holder.current.listen_address) + example

        mirror_scanner = work.mirror_scanner
        DemoMirrors(
            config.repository, os.path.join(embedded.data_dir, DEMO_SUBDIRECTORY, "rsync"),
            reactor, work.mirrors, redis.whenReady, indexed=work.scanner.when_indexed,
            scan=lambda mirror_id: mirror_scanner.scan(mirror_id, True, "RSYNC", SCAN_TIMEOUT),
            try_url=try_url,
        ).setServiceParent(daemon)
    elif show_hint:
        root_url = http_base(config.listen_address) if embedded is not None else None
        NoMirrorHint(redis.whenReady, work.count_mirrors,
                     no_mirror_hint(ctl, config.repository, root_url,
                                    demo_hint=embedded is not None),
                     indexed=work.scanner.when_indexed).setServiceParent(daemon)


def _add_http(
    daemon: Daemon,
    holder: ConfigHolder,
    reactor: IDaemonReactor,
    redis: RedisService,
    pubsub: PubSubService,
    stats: StatsService,
    download_log: DownloadLog,
    geo: GeoIP,
    successor: Successor | None,
    activated_fd: int | None,
    root_page: Callable[[], Awaitable[str]] | None,
    serving: Callable[[], None],
    changing: ChangingPaths | None = None,
    held_down: HeldDown | None = None,
) -> tuple[HeldListener, WebContext]:
    """The redirect resource, its cache fed by pub/sub, and the HTTP listener (on the
    socket inherited from an upgrading parent, if any), accepting once Redis is ready.

    A fresh start waits at most :data:`STARTUP_READY_TIMEOUT` (the kernel queues the first
    connections meanwhile): answers from an empty cache would be fallbacks and 503s. A
    successor waits longer, its parent answering meanwhile. Once serving, ``serving`` is
    called.
    """
    ready_timeout = STARTUP_READY_TIMEOUT if successor is None else READY_TIMEOUT
    cache = MirrorCache(redis.reading_client, reactor,  # a miss during a failover waits
                        refresh_interval=REFRESH_INTERVAL, read_ahead=True,
                        held_down=held_down if held_down is not None else HeldDown())
    cache.resize(holder.current.cache_files)

    def listening_and_ready() -> Deferred[None]:
        """Pub/sub subscribed, then Redis ready: a fill reads only what later messages
        correct (one published before the subscription would be lost to it)."""
        return pubsub.whenReady().addCallback(lambda _: redis.whenReady())

    warmer = CacheWarmer(cache, listening_and_ready, reactor)
    pubsub.on_message(keys.CHANNEL_FILE_UPDATE, cache.on_file_update)
    pubsub.on_message(keys.CHANNEL_MIRROR_UPDATE, cache.on_mirror_update)
    pubsub.on_message(keys.CHANNEL_MIRROR_FILE_UPDATE, cache.on_mirror_file_update)

    def forget_after_reconnect() -> None:
        """Messages may have been missed while pub/sub was away: read the cache again in
        place once the command connection can (answers come from what is known meanwhile)."""
        def read_again(_: object) -> None:
            cache.suspect_all()
            warmer.start()

        redis.whenReady().addCallback(read_again)

    pubsub.on_reconnect(forget_after_reconnect)
    dedup = RangeDeduplicator(
        redis.client,
        holder.current.same_download_interval,
        lambda: redis.redis_version >= (6, 2, 0),
        reactor,
    )

    def follow_interval(old: Config, new: Config) -> None:
        dedup.interval_s = new.same_download_interval

    holder.subscribe(follow_interval)
    context = WebContext(
        config=lambda: holder.current,
        cache=cache,
        geo=geo,
        stats=stats,
        dedup=dedup,
        download_log=download_log,
        clock=reactor,
        server_header=f"Mirrorbits/{version_string()}".encode(),
        get_client=redis.client,
        root_page=root_page,
        changing=changing,
    )
    pubsub.on_message(keys.CHANNEL_FILE_UPDATE, context.paths.forget)
    if changing is not None:  # the repository watch of this process: requests wait for it
        async def reread(paths: list[str]) -> None:
            for path in paths:
                context.paths.forget(path)
            await cache.reread(paths)

        changing.reread = reread
    context.resize_memos(holder.current.cache_files)
    warmer.then = context.warm_memos

    def follow_cache_files(old: Config, new: Config) -> None:
        if old.cache_files != new.cache_files:
            cache.resize(new.cache_files)
            context.resize_memos(new.cache_files)

    holder.subscribe(follow_cache_files)

    async def hold() -> None:
        """Redis ready (or late), then the cache filled (or late): the first requests are
        answered from memory."""
        await ready_within(redis.whenReady(), reactor, ready_timeout)
        if redis.ready:
            warmer.start()
            await warmer.filled_within(WARM_HOLD if successor is None else READY_TIMEOUT)
            tune_garbage_collector()  # the cache's objects are never scanned again either

    site = RedirectorSite(RedirectResource(context), reactor=reactor,
                         read_timeout=lambda: holder.current.http_read_timeout)
    http = HeldListener(
        parse_listen_address(holder.current.listen_address, unix_mode=HTTP_SOCKET_MODE),
        site,
        reactor,
        inherited_fd=activated_fd if successor is None else successor.inherited.fd,
        setting="ListenAddress",
        foreign=successor is None and activated_fd is not None,
        hold=lambda: Deferred.fromCoroutine(hold()),
        on_serving=serving,
    )
    http.setName("http")
    http.setServiceParent(daemon)
    return http, context


def local_counts(context: WebContext) -> Callable[[], Awaitable[CountsReport]]:
    """This process' request counts and cache sizes, for the metrics."""

    async def counts() -> CountsReport:
        return report_of(context.counts, context.cache_sizes())

    return counts


def _add_metrics(daemon: Daemon, holder: ConfigHolder, reactor: IDaemonReactor,
                 redis: RedisService, work: _Monitoring, observations: Observations,
                 counts: Callable[[], Awaitable[CountsReport]],
                 activated_fd: int | None, successor: Successor | None) -> HeldListener | None:
    """The Prometheus metrics listener (``MetricsListenAddress``; empty and no socket from
    systemd: none), showing ``counts`` (this process', or the workers' sum). Added after
    HTTP: it stops first. A successor serves on its parent's socket, once Redis is ready
    (the parent answers meanwhile)."""
    address = holder.current.metrics_listen_address
    inherited_fd = successor.inherited.metrics_fd if successor is not None else None
    if not address and activated_fd is None:
        if inherited_fd is not None:  # the parent's, which the new configuration drops
            with contextlib.suppress(OSError):
                os.close(inherited_fd)
        return None
    from mirrorbits.metrics.endpoint import MetricsSource, metrics_site  # prometheus_client

    source = MetricsSource(counts=counts, observations=observations,
                           redis_connected=lambda: redis.ready,
                           read_mirrors=work.mirrors.all_mirrors, clock=reactor)
    listener = HeldListener(
        parse_listen_address(address or "127.0.0.1:0", unix_mode=HTTP_SOCKET_MODE),
        metrics_site(source, reactor),
        reactor,
        inherited_fd=activated_fd if inherited_fd is None else inherited_fd,
        setting="MetricsListenAddress",
        foreign=activated_fd is not None,
        hold=None if inherited_fd is None else (
            lambda: ready_within(redis.whenReady(), reactor, READY_TIMEOUT)),
    )
    listener.setName("metrics")
    listener.setServiceParent(daemon)
    daemon.greeting.append(f"Prometheus metrics at http://{address}/metrics" if address else
                           "Prometheus metrics on the socket passed by systemd, at /metrics")
    return listener


def _serving(daemon: Daemon, redis: RedisService,
             successor: Successor | None) -> Callable[[], None]:
    """What HTTP's start of service does: systemd is told (a successor also tells it that it
    is the main process now, and asks its parent to go)."""

    def serving() -> None:
        if successor is None:
            daemon.serving()
        else:
            successor.serving()
            daemon.serving(main_pid=os.getpid())
        if not redis.ready:  # served after the wait: say so again once the database is up
            redis.whenReady().addCallback(lambda _: daemon.notifier.status(daemon.describe()))

    return serving


def _add_workers(daemon: Daemon, holder: ConfigHolder, reactor: IDaemonReactor,
                 redis: RedisService, successor: Successor | None, activated_fd: int | None,
                 count: int, *, cwd: str, repository: str | None, debug: bool) -> WorkerPool:
    """``count`` worker processes serving HTTP on this process' listening socket (bound
    here, or inherited from systemd or an upgrading parent); this process does not accept.

    A worker is told the configuration file (absolute: it starts in ``cwd``), the
    ``--repository`` and ``--debug`` options.
    """
    path = holder.path
    assert path is not None  # workers need a configuration file (worker_count)
    arguments = ["--config", os.path.join(cwd, path)]
    if repository is not None:
        arguments += ["--repository", os.path.join(cwd, repository)]
    if debug:
        arguments.append("--debug")
    listener = AdoptedListener(
        parse_listen_address(holder.current.listen_address, unix_mode=HTTP_SOCKET_MODE),
        None,
        reactor,
        inherited_fd=activated_fd if successor is None else successor.inherited.fd,
        setting="ListenAddress",
        foreign=successor is None and activated_fd is not None,
    )
    pool = WorkerPool(listener, count, reactor, arguments, cwd,
                      on_serving=_serving(daemon, redis, successor))
    pool.setName("http")
    pool.setServiceParent(daemon)
    daemon.workers = pool
    return pool


def build_worker(*, config: Config, config_path: str, repository: str | None,
                 reactor: IDaemonReactor, debug: bool, listen_fd: int,
                 serving: Callable[[], None]) -> tuple[Daemon, HeldListener, WebContext]:
    """The service tree of an HTTP worker process (:mod:`mirrorbits.workers`): Redis and
    pub/sub, the counters and the download log, GeoIP, and the HTTP listener on the
    inherited socket ``listen_fd``; nothing that runs once per node."""
    set_debug(debug)
    holder = ConfigHolder(current=config, path=config_path, repository=repository)
    geo = GeoIP(config.geoip_database_path, reactor)
    daemon = Daemon(holder=holder, reactor=reactor, geo=geo)
    daemon.setName("mirrorbits-worker")
    daemon.says_warnings = False
    redis, pubsub = _add_redis(daemon, holder, reactor)
    stats, download_log = _add_accounting(daemon, holder, reactor, redis, replays_spool=False)
    download_log.says_open_failures = False  # the daemon opens the same file and says so
    geo.load_and_report(quiet=True)  # the daemon says what it found, once for the node
    holder.subscribe(lambda old, new: _reload_geo(geo, new))
    http, context = _add_http(daemon, holder, reactor, redis, pubsub, stats, download_log, geo,
                              None, listen_fd, None, serving, ChangingPaths(reactor))
    http.shared = True  # the other workers accept on it too
    return daemon, http, context


def _day(text: str) -> datetime.datetime:
    """A ``YYYY-MM-DD`` day (numbers may be unpadded) as midnight UTC."""
    year, month, day = (int(part) for part in text.split("-"))
    return datetime.datetime(year, month, day, tzinfo=datetime.UTC)


def _reload_geo(geo: GeoIP, config: Config) -> None:
    """A reload's GeoIP part: the databases are copied in a thread, as the watch does, and
    used once ready (a 60-70 MB City database would stop the reactor meanwhile)."""
    geo.use_directory(config.geoip_database_path)

