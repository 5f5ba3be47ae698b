"""The daemon side of the control channel: AMP responders over a :class:`ControlBackend`.

Each responder checks the password (in constant time; a source sending wrong ones is refused
for a growing time, see :mod:`mirrorbits.control.throttle`), calls the backend and answers.
Store errors become the matching declared errors; any other exception becomes
:class:`ServerError` with its message (logged here), so a failing command never closes
the connection. A connection that does nothing is closed (:mod:`mirrorbits.control.idle`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import attrs
from attrs import define
from OpenSSL import SSL
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.protocols import amp
from twisted.python.failure import Failure

from mirrorbits.config import ConfigError
from mirrorbits.control import commands as c
from mirrorbits.control.idle import IDLE_TIMEOUT, IdleTimeout
from mirrorbits.control.mirror_yaml import FIELDS, yaml_diff
from mirrorbits.control.throttle import FailedPasswords, source_of
from mirrorbits.control.tls import tls_reason
from mirrorbits.control.validate import (
    MirrorValidationError,
    check_http_url,
    check_identifier,
    check_scan_urls,
)
from mirrorbits.geo import MirrorLocation, MirrorLookupError
from mirrorbits.logs import Logger
from mirrorbits.model import Mirror
from mirrorbits.progress import ProgressReport
from mirrorbits.scan.scheduler import EXPECTED_FAILURES, ScanOutcome
from mirrorbits.store import errors as store_errors
from mirrorbits.store.commands import gather
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.records import normalize_url, sanitize_location_codes
from mirrorbits.upgrade.handover import UpgradeError

log = Logger()

#: A responder's answer: the command's response arguments by name.
Answer = dict[str, object]
_Hook = TypeVar("_Hook")

DEFAULT_LOG_LINES = 500
# Mirror attributes a client may change with UpdateMirror (the YAML fields and the comment).
EDITABLE = (*(attr for _, attr, _ in FIELDS), "comment")


class ScanHook(Protocol):
    def __call__(
        self, mirror_id: int, auto_enable: bool, protocol: str, timeout: float | None
    ) -> Awaitable[ScanOutcome]: ...


@define(eq=False)
class ControlBackend:
    """What the control channel needs from the daemon."""

    mirrors: MirrorStore
    locate: Callable[[str], Awaitable[MirrorLocation]]
    password: Callable[[], str]
    reload: Callable[[], Awaitable[Sequence[str]]]  # the warnings; raises ConfigError
    version: Callable[[], dict[str, str]]
    refresh: Callable[[bool], Awaitable[object]] | None = None
    upgrade: Callable[[], Awaitable[None]] | None = None
    scan: ScanHook | None = None
    # (pattern, first day, end day excluded, as YYYY-MM-DD) -> {path: downloads}
    stats_file: Callable[[str, str, str], Awaitable[dict[str, int]]] | None = None
    # (mirror ID, first day, end day excluded) -> (downloads, bytes)
    stats_mirror: Callable[[int, str, str], Awaitable[tuple[int, int]]] | None = None
    # How far the running local scan, or this node's scan of a mirror, got (None: none runs)
    refresh_progress: Callable[[], ProgressReport | None] | None = None
    scan_progress: Callable[[int], ProgressReport | None] | None = None


class _ControlFactory(ServerFactory):
    """Builds one AMP protocol (with its own locator) per control connection."""

    noisy = False  # no "Starting factory" / "Stopping factory" lines

    def __init__(self, backend: ControlBackend, clock: IReactorTime,
                 idle_timeout: Callable[[], float]) -> None:
        self.backend = backend
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.failures = FailedPasswords(clock)

    def logPrefix(self) -> str:
        """How Twisted's port lines name this listener (``Control starting on 3390``)."""
        return "Control"

    def buildProtocol(self, addr: object) -> amp.AMP:
        source = source_of(getattr(addr, "host", None))
        locator = ControlLocator(self.backend, self.failures, source)
        protocol = _ControlProtocol(locator=locator)
        locator.activity = protocol.idle = IdleTimeout(
            self.clock, protocol.close_idle, protocol.abort, idle_timeout=self.idle_timeout())
        protocol.factory = self
        return protocol


class _ControlProtocol(amp.AMP):
    """An AMP connection whose long commands stop when the client goes away, and that is
    closed when it does nothing (``idle``).

    Connections come and go with each ``mirrorbits-ctl`` command: they are logged at debug
    level only (AMP logs both ends of every connection at info level).
    """

    idle: IdleTimeout | None = None

    def makeConnection(self, transport: ITransport) -> None:
        log.debug("Control connection from {peer}", peer=transport.getPeer())
        amp.BinaryBoxProtocol.makeConnection(self, transport)
        if self.idle is not None:
            self.idle.connected()

    def close_idle(self) -> None:
        transport = self.transport
        if transport is not None:
            log.debug("Control connection from {peer} closed: idle", peer=transport.getPeer())
            transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection without waiting for its last bytes to leave."""
        abort = getattr(self.transport, "abortConnection", None)
        if callable(abort):
            abort()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.idle is not None:
            self.idle.disconnected()
        locator = self.locator
        if isinstance(locator, ControlLocator):
            locator.cancel_running()
            if reason.check(SSL.Error):  # no client certificate, another CA's, not TLS...
                log.info("Control: TLS with {source} failed: {reason}", source=locator.source,
                         reason=tls_reason(reason.value))
        log.debug("Control connection closed")
        amp.BinaryBoxProtocol.connectionLost(self, reason)
        self.transport = None


def control_factory(backend: ControlBackend, clock: IReactorTime,
                    idle_timeout: Callable[[], float] = lambda: IDLE_TIMEOUT) -> ServerFactory:
    """The AMP server factory of the control channel (wrong passwords and idle connections
    timed on ``clock``; ``idle_timeout`` is read for each new connection)."""
    return _ControlFactory(backend, clock, idle_timeout)


def _to_remote_error(failure: Failure, command: str = "") -> Failure:
    """Any failure of a responder as a declared AMP error (the connection stays up).

    What the client sent wrong (a bad pattern, a host that does not resolve) and a file system
    error (a repository gone) are one log line; only an unexpected error is logged with its
    traceback.
    """
    if failure.check(amp.RemoteAmpError):
        return failure
    error = failure.value
    message = str(error)
    if isinstance(error, store_errors.MirrorNotFound):
        return Failure(amp.RemoteAmpError(c.ERRORS[c.MirrorNotFound], message or "no such mirror"))
    if isinstance(error, store_errors.NameTaken):
        return Failure(amp.RemoteAmpError(c.ERRORS[c.NameTaken], message or "name already taken"))
    if isinstance(error, MirrorValidationError):
        return Failure(amp.RemoteAmpError(c.ERRORS[c.InvalidArgument], message))
    if isinstance(error, ValueError | MirrorLookupError | store_errors.ReadOnlyReplica):
        log.info("Control command {command} refused: {message}", command=command,
                 message=message)
    elif isinstance(error, UpgradeError):  # why this process cannot upgrade now: still serving
        log.warn("Upgrade refused: {message}", message=message)
    elif isinstance(error, OSError):  # the repository missing or unreadable: the path and why
        log.warn("Control command {command} failed: {message}", command=command,
                 message=message)
    elif not isinstance(error, store_errors.StoreError | ConfigError):  # those say it all
        log.failure("control command {command} failed", failure, command=command)
    return Failure(amp.RemoteAmpError(c.ERRORS[c.ServerError], message or type(error).__name__))


_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\U0010ffff]")
_RSYNC_ROLE = re.compile(r"^rsync: (?:\[\w+\] )?")


def scan_failure(error: Exception) -> str:
    """A failed scan's message for ``mirrorbits-ctl``, with the scanner's own first complaint
    when its exit status alone says little: rsync's "Error in socket I/O" becomes
    ``rsync: Error in socket I/O: failed to connect to HOST (HOST): Connection refused (111)``.
    The mirror's log keeps the message alone (the reference's)."""
    message = str(error)
    for line in getattr(error, "stderr_tail", ()):
        if line.startswith("rsync error:") or not line.strip():
            continue  # rsync's own summary of its exit status: the message already
        cause = _UNPRINTABLE.sub("?", _RSYNC_ROLE.sub("", line.strip()))[:300]
        return f"{message}: {cause}"
    return message


T = TypeVar("T")


def _after(result: T, call: Callable[[], None]) -> T:
    """``result`` passed on, once ``call`` was made (a Deferred's callback and errback)."""
    call()
    return result


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


class ControlLocator(amp.CommandLocator):
    """The responders of every control command, for one connection from ``source``.

    ``failures``: the wrong passwords of every source (None: not counted).
    """

    def __init__(self, backend: ControlBackend, failures: FailedPasswords | None = None,
                 source: str = "local") -> None:
        self.backend = backend
        self.failures = failures
        self.source = source
        self.activity: IdleTimeout | None = None  # told of commands and right passwords
        self._running: set[Deferred[ScanOutcome]] = set()

    def cancel_running(self) -> None:
        """Cancel the scans started by this connection (the CLI disconnected)."""
        for running in list(self._running):
            running.cancel()

    def locateResponder(self, name: bytes) -> Callable[[amp.AmpBox], Deferred[amp.AmpBox]] | None:
        responder = super().locateResponder(name)
        if responder is None:
            return None

        command = name.decode("ascii", "replace")

        def guarded(box: amp.AmpBox) -> Deferred[amp.AmpBox]:
            activity = self.activity
            if activity is None:
                answer: Deferred[amp.AmpBox] = maybeDeferred(responder, box)
                return answer.addErrback(_to_remote_error, command)
            activity.command_started()
            answer = maybeDeferred(responder, box).addErrback(_to_remote_error, command)
            return answer.addBoth(_after, activity.command_ended)

        return guarded

    def _check(self, password: str | None) -> None:
        failures = self.failures
        if failures is not None:
            wait = failures.refused_for(self.source)
            if wait > 0:
                raise c.TooManyFailures(
                    f"too many wrong passwords from {self.source}: "
                    f"try again in {math.ceil(wait)} s")
        if not same_password(self.backend.password(), password or ""):
            if failures is not None:
                refused = failures.failed(self.source)
                if refused:
                    log.warn("Control: wrong password from {source}, refused for {seconds:g} s",
                             source=self.source, seconds=refused)
            raise c.AccessDenied("access denied")
        if failures is not None:
            failures.succeeded(self.source)
        if self.activity is not None:
            self.activity.authenticated()

    @c.Ping.responder
    def ping(self, password: str | None) -> Answer:
        self._check(password)
        return {}

    @c.GetVersion.responder
    def get_version(self, password: str | None) -> Answer:
        self._check(password)
        return {"fields": dict(self.backend.version())}

    @c.Reload.responder
    async def reload(self, password: str | None) -> Answer:
        self._check(password)
        try:
            warnings = await self.backend.reload()
        except ConfigError as err:
            raise c.ServerError(c.reload_refusal(str(err), err.warnings)) from None
        return {"warnings": list(warnings)}

    @c.Upgrade.responder
    async def upgrade(self, password: str | None) -> Answer:
        self._check(password)
        hook = _available(self.backend.upgrade, "upgrade")
        await hook()
        return {}

    @c.CheckWritable.responder
    def check_writable(self, password: str | None) -> Answer:
        self._check(password)
        self.backend.mirrors.require_master()  # a replica: the refusal a write would get
        return {}

    @c.ChangeStatus.responder
    async def change_status(self, password: str | None, id: int, enabled: bool) -> Answer:
        self._check(password)
        self.backend.mirrors.require_master()  # a replica: refused, nothing written
        mirror = await self.backend.mirrors.get_mirror(_valid_id(id))
        await self.backend.mirrors.set_enabled(mirror.id, enabled)
        return {"name": mirror.name}

    @c.List.responder
    async def list_mirrors(
        self, password: str | None, offset: int | None, limit: int | None
    ) -> Answer:
        self._check(password)
        start = max(offset or 0, 0)
        size = min(max(limit or c.LIST_PAGE_SIZE, 1), c.LIST_MAX_PAGE_SIZE)
        ids = sorted(mirror_id for mirror_id, _ in await self.backend.mirrors.match(""))
        found = await gather(
            Deferred.fromCoroutine(self._maybe_mirror(i)) for i in ids[start : start + size]
        )
        page = [c.mirror_to_json(mirror) for mirror in found if mirror is not None]
        return {"mirrors": page, "more": start + size < len(ids), "total": len(ids)}

    async def _maybe_mirror(self, mirror_id: int) -> Mirror | None:
        try:
            return await self.backend.mirrors.get_mirror(mirror_id)
        except store_errors.MirrorNotFound:
            return None  # removed meanwhile

    @c.MirrorInfo.responder
    async def mirror_info(self, password: str | None, id: int) -> Answer:
        self._check(password)
        mirror = await self.backend.mirrors.get_mirror(_valid_id(id))
        return {"mirror": c.mirror_to_json(mirror)}

    @c.AddMirror.responder
    async def add_mirror(self, password: str | None, mirror: object) -> Answer:
        self._check(password)
        self.backend.mirrors.require_master()  # a replica: refused, nothing written
        new = sanitize(c.mirror_from_json(mirror))
        if new.id != 0:
            raise c.InvalidArgument("unexpected ID")
        check_identifier(new.name)
        check_http_url(new.http_url)
        check_scan_urls(new.rsync_url, new.ftp_url)
        location = await self.backend.locate(new.http_url)
        if location.valid:
            new = attrs.evolve(
                new,
                latitude=location.latitude,
                longitude=location.longitude,
                continent_code=location.continent_code,
                country_codes=location.country_code,
                asnum=location.as_num,
            )
        saved = await self.backend.mirrors.add_mirror(new)
        return {
            "name": saved.name,
            "latitude": location.latitude,
            "longitude": location.longitude,
            "country": location.country_name,
            "continent": location.continent_code,
            "as_name": location.as_name,
            "as_num": location.as_num,
            "located": location.valid,
            "warnings": list(location.warnings),
        }

    @c.UpdateMirror.responder
    async def update_mirror(self, password: str | None, mirror: object) -> Answer:
        self._check(password)
        self.backend.mirrors.require_master()  # a replica: refused, nothing written
        wanted = sanitize(c.mirror_from_json(mirror))
        current = await self.backend.mirrors.get_mirror(_valid_id(wanted.id))
        check_identifier(wanted.name)
        check_http_url(wanted.http_url)
        check_scan_urls(wanted.rsync_url, wanted.ftp_url)
        changes = {attr: getattr(wanted, attr) for attr in EDITABLE}
        saved = await self.backend.mirrors.update_mirror(attrs.evolve(current, **changes))
        return {"diff": yaml_diff(current, saved)}

    @c.RemoveMirror.responder
    async def remove_mirror(self, password: str | None, id: int) -> Answer:
        self._check(password)
        self.backend.mirrors.require_master()  # a replica: refused, nothing written
        name = await self.backend.mirrors.remove_mirror(_valid_id(id))
        return {"name": name}

    @c.GeoUpdateMirror.responder
    async def geo_update_mirror(self, password: str | None, id: int) -> Answer:
        self._check(password)
        current = await self.backend.mirrors.get_mirror(_valid_id(id))
        location = await self.backend.locate(current.http_url)
        updated = relocated(current, location)
        return {
            "mirror": c.mirror_to_json(updated),
            "diff": yaml_diff(current, updated),
            "warnings": list(location.warnings),
        }

    @c.RefreshRepository.responder
    async def refresh_repository(self, password: str | None, rehash: bool | None) -> Answer:
        self._check(password)
        hook = _available(self.backend.refresh, "refresh")
        await hook(bool(rehash))
        return {}

    @c.ScanMirror.responder
    async def scan_mirror(
        self,
        password: str | None,
        id: int,
        auto_enable: bool | None,
        protocol: str | None,
        scan_timeout: float | None,
    ) -> Answer:
        self._check(password)
        hook = _available(self.backend.scan, "scan")
        running = Deferred.fromCoroutine(_awaited(
            hook(_valid_id(id), bool(auto_enable), protocol or "all", scan_timeout)))
        self._running.add(running)
        try:
            outcome = await running
        except EXPECTED_FAILURES as err:  # the message says it all: no traceback logged
            raise amp.RemoteAmpError(c.ERRORS[c.ServerError], scan_failure(err)) from None
        finally:
            self._running.discard(running)
        return attrs.asdict(outcome)

    @c.GetProgress.responder
    def get_progress(self, password: str | None, operation: str, id: int | None) -> Answer:
        self._check(password)
        report: ProgressReport | None = None
        if operation == "refresh":
            if self.backend.refresh_progress is not None:
                report = self.backend.refresh_progress()
        elif operation == "scan":
            if self.backend.scan_progress is not None:
                report = self.backend.scan_progress(_valid_id(id or 0))
        else:
            raise c.InvalidArgument(f"unknown operation {operation!r}")
        if report is None:
            return {"running": False, "phase": "", "done": 0, "total": 0, "seconds": 0.0}
        return {"running": True, **attrs.asdict(report)}

    @c.StatsFile.responder
    async def stats_file(
        self, password: str | None, pattern: str, start: str, end: str
    ) -> Answer:
        self._check(password)
        hook = _available(self.backend.stats_file, "stats")
        return {"files": dict(await hook(pattern, start, end))}

    @c.StatsMirror.responder
    async def stats_mirror(
        self, password: str | None, id: int, start: str, end: str
    ) -> Answer:
        self._check(password)
        hook = _available(self.backend.stats_mirror, "stats")
        mirror = await self.backend.mirrors.get_mirror(_valid_id(id))
        requests, size = await hook(mirror.id, start, end)
        return {"mirror": c.mirror_to_json(mirror), "requests": requests, "bytes": size}

    @c.GetMirrorLogs.responder
    async def get_mirror_logs(
        self, password: str | None, id: int, max_results: int
    ) -> Answer:
        self._check(password)
        count = max_results if max_results > 0 else DEFAULT_LOG_LINES
        lines: Sequence[str] = await self.backend.mirrors.logs(_valid_id(id), count)
        return {"lines": list(lines)}

    @c.MatchMirror.responder
    async def match_mirror(self, password: str | None, pattern: str) -> Answer:
        self._check(password)
        hits = await self.backend.mirrors.match(pattern)
        return {"mirrors": [[mirror_id, name] for mirror_id, name in hits]}


def same_password(expected: str, given: str) -> bool:
    """Whether ``given`` is ``expected``, in a time that depends on neither (not even lengths)."""
    def digest(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    return hmac.compare_digest(digest(expected), digest(given))


def _available(hook: _Hook | None, what: str) -> _Hook:
    if hook is None:
        raise c.NotAvailable(f"{what}: not available yet")
    return hook


def _valid_id(mirror_id: int) -> int:
    if mirror_id <= 0:
        raise c.InvalidArgument("invalid mirror id")
    return mirror_id


def sanitize(mirror: Mirror) -> Mirror:
    """Trailing ``/`` on URLs, upper-case single-spaced location codes."""
    return attrs.evolve(
        mirror,
        http_url=normalize_url(mirror.http_url),
        rsync_url=normalize_url(mirror.rsync_url),
        ftp_url=normalize_url(mirror.ftp_url),
        continent_code=sanitize_location_codes(mirror.continent_code),
        country_codes=sanitize_location_codes(mirror.country_codes),
        excluded_country_codes=sanitize_location_codes(mirror.excluded_country_codes),
    )


def relocated(mirror: Mirror, location: MirrorLocation) -> Mirror:
    """``mirror`` moved where GeoIP puts it (countries replaced only if the new one is missing)."""
    if not location.valid:
        return mirror
    countries = mirror.country_codes
    if location.country_code.upper() not in mirror.country_fields:
        countries = location.country_code.upper()
    return attrs.evolve(
        mirror,
        latitude=location.latitude,
        longitude=location.longitude,
        continent_code=location.continent_code,
        country_codes=countries,
        asnum=location.as_num,
    )
