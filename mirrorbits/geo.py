"""GeoIP: locate clients and mirrors with the GeoLite2 City and ASN databases (spec §10, §4.3).

Differences from the reference, on purpose:

* A database file replaced or rewritten on disk is picked up by :meth:`GeoIP.reload_if_changed`
  (cheap ``stat`` calls, meant for a ``LoopingCall``; :meth:`GeoIP.start_watching` runs one), so
  updating GeoLite2 no longer needs a SIGHUP (upstream issue #93).
* Each database is copied into private memory before it is mapped, so copying a new file over the
  one in use (what issue #93 describes) cannot corrupt lookups or crash the process with SIGBUS.
* The watch (:meth:`GeoIP.start_watching`) copies and opens a changed file in the reactor's
  thread pool (:meth:`GeoIP.reload_in_thread`) and swaps the readers in the reactor thread once
  the copy is done: copying a 60-70 MB City database no longer stops every process from answering
  (all at the same moment, each checking the same files), and requests answered meanwhile use the
  reader loaded before. The ``stat`` calls that tell whether a file changed stay in the reactor
  thread (cheap); an unchanged file is not copied. The result of a copy is dropped (its reader
  closed, nothing logged) when the database was (re)loaded by other means meanwhile (a
  configuration reload, another check started later), or the watch stopped or :meth:`GeoIP.close`
  ran: an older copy never replaces a newer one. A configuration reload (SIGHUP, ``mirrorbits-ctl
  reload``, in the daemon and in each HTTP worker) goes through the same check
  (:meth:`GeoIP.use_directory`), a ``GeoipDatabasePath`` changed included; a file already being
  copied is not copied again. Only the first load, before serving
  (:meth:`GeoIP.load_and_report`), is synchronous; so is the watch on a clock without a thread
  pool (a test's ``Clock``).
* Mirror geolocation resolves the URL's host *without* its port (spec §20, item 1).
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import shutil
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import BinaryIO, cast
from urllib.parse import urlsplit

import maxminddb
from attrs import define, field, frozen
from maxminddb import InvalidDatabaseError, Reader
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from mirrorbits.float32 import f32
from mirrorbits.logs import Logger
from mirrorbits.model import GeoRecord

CITY_DATABASE = "GeoLite2-City.mmdb"
ASN_DATABASE = "GeoLite2-ASN.mmdb"
UPDATED_SUFFIX = ".updated"
CACHE_SIZE = 65536
NETWORK_LIMIT = 65536  # networks whose answer is remembered (then it starts over)
PROBED_LENGTHS = 4  # prefix lengths tried before reading the databases (the most answering)

WARNING_SEVERAL_ADDRESSES = (
    "Warning: the hostname returned more than one address. "
    "Assuming they're sharing the same location."
)
WARNING_NO_LOCATION = "Warning: unable to guess the geographic location of this mirror"

_EMPTY = GeoRecord()
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# What identifies one version of a file: path, device, inode, size, mtime (ns).
_FileStamp = tuple[str, int, int, int, int]


class GeoIPUnavailable(Exception):
    """Neither the City nor the ASN database could be loaded."""


class HostLookupError(OSError):
    """A host name did not resolve (text like Go's: ``lookup <host>: no such host``)."""


class MirrorLookupError(Exception):
    """A mirror's URL could not be turned into an IP address (``IP lookup failed: ...``)."""


@define(eq=False)
class _Database:
    """One of the two databases: its reader and what it was loaded from."""

    name: str
    reader: Reader | None = None
    epoch: int | None = None
    stamp: _FileStamp | None = None
    problem: str = ""  # why the last attempt to open it failed
    # Changes on each (re)load, and when a copy starts in a thread or the watch stops: the copy
    # is used only if it is still the same when the copy is done (none newer, nothing since).
    version: int = 0
    copying: bool = False  # a copy of ``pending`` runs in a thread, for the current version
    pending: _FileStamp | None = None

    def expected(self) -> _FileStamp | None:
        """The file this database was loaded from, or is being copied from."""
        return self.pending if self.copying else self.stamp

    def supersede(self) -> int:
        """Make any copy in flight stale (a newer load, a stop); return the new version."""
        self.version += 1
        self.copying = False
        return self.version


@frozen
class _Attempt:
    """What opening one file gave: a reader and its build epoch, or why not (blocking work)."""

    path: str
    stamp: _FileStamp | None
    reader: Reader | None = None
    epoch: int = 0
    reason: str = ""

    @classmethod
    def of(cls, path: str) -> _Attempt:
        """Copy ``path`` into memory and open it (seconds on a slow disk: run it in a thread
        when serving)."""
        try:
            reader, stamp = _open_private(path)
        except (OSError, ValueError, InvalidDatabaseError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            return cls(path, _stat(path), reason=str(reason))
        return cls(path, stamp, reader, int(reader.metadata().build_epoch))

    def discard(self) -> None:
        if self.reader is not None:
            self.reader.close()


@define(eq=False)
class GeoIP:
    """The City + ASN readers of ``directory``, with a bounded lookup cache.

    Besides the answer per address, the answer per network is remembered: the readers give
    the prefix of the network each record covers, and every address of the smaller of the
    two networks has the same City and ASN records, so a new address in a network already
    seen costs no database read and no record building.

    ``clock`` drives :meth:`start_watching` (the global reactor when ``None``); when it also
    provides :class:`~twisted.internet.interfaces.IReactorThreads` (a real reactor), the watch
    copies a changed file in its thread pool.
    """

    directory: str
    clock: IReactorTime | None = None
    _city: _Database = field(init=False, factory=lambda: _Database(CITY_DATABASE))
    _asn: _Database = field(init=False, factory=lambda: _Database(ASN_DATABASE))
    _cached: functools._lru_cache_wrapper[GeoRecord] = field(init=False)
    _watcher: LoopingCall | None = field(init=False, default=None)
    _log: Logger = field(init=False, factory=Logger)
    _reported: str | None = field(init=False, default=None)  # the last warning logged
    # (IP version, prefix length, address >> host bits) -> the answer for that network
    _networks: dict[tuple[int, int, int], GeoRecord] = field(init=False, factory=dict)
    _prefixes: dict[int, list[int]] = field(init=False, factory=lambda: {4: [], 6: []})

    def __attrs_post_init__(self) -> None:
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._lookup_uncached)

    def _forget(self) -> None:
        """Drop every remembered answer (a reader changed)."""
        self._cached.cache_clear()
        self._networks.clear()
        for lengths in self._prefixes.values():
            lengths.clear()

    @property
    def city_available(self) -> bool:
        return self._city.reader is not None

    @property
    def asn_available(self) -> bool:
        return self._asn.reader is not None

    def load(self) -> list[str]:
        """(Re)open both databases; return the messages to log.

        A loaded database whose file did not change (path, inode, size, mtime) is not read
        again; one whose build epoch did not change keeps its current reader (no message). A
        database that fails to open keeps the reader it had, if any. Raises
        :class:`GeoIPUnavailable` when neither database is usable afterwards.
        """
        messages: list[str] = []
        swapped = False
        for database in (self._city, self._asn):
            changed, message, _ = self._open(database, force=False)
            swapped = swapped or changed
            if message:
                messages.append(message)
        if swapped:
            self._forget()
        if not (self.city_available or self.asn_available):
            raise GeoIPUnavailable("; ".join(messages))
        return messages

    def load_and_report(self, quiet: bool = False) -> None:
        """(Re)open both databases and log it: each database loaded (info), a replaced file
        that cannot be read while the previous one stays in use (warning), and what is
        missing (one warning, :meth:`missing_warning`, not repeated while it is the same).

        ``quiet``: log nothing this time, what is missing counting as said (an HTTP worker's
        first load: the daemon, reading the same files, has just said it).
        """
        swapped = False
        for database in (self._city, self._asn):
            changed, message, failed = self._open(database, force=False)
            swapped = swapped or changed
            if not quiet:
                self._log_outcome(database, message, failed)
        if swapped:
            self._forget()
        if quiet:
            self._reported = self.missing_warning()
        else:
            self._report_missing()

    def _log_outcome(self, database: _Database, message: str, failed: bool) -> None:
        if not message:
            return
        if not failed:
            self._log.info("{message}", message=message)
        elif database.reader is not None:
            self._log.warn("{message}; the database loaded before stays in use",
                           message=message)

    def missing_warning(self) -> str | None:
        """One line saying which database could not be loaded from where, what follows for
        the redirects, and where the README explains how to get them; None if both are."""
        missing = [db for db in (self._city, self._asn) if db.reader is None]
        if not missing:
            return None
        names = " and ".join(db.name for db in missing)
        reasons = "; ".join(dict.fromkeys(db.problem for db in missing if db.problem))
        if self._city.reader is None:
            effect = ("clients are not located, so each redirect goes to a mirror drawn at "
                      "random among those holding the file")
        else:
            effect = ("clients' networks are unknown: no same-network bonus, and ASOnly "
                      "mirrors receive nobody")
        return (f"GeoIP: cannot load {names} from {self.directory} ({reasons}): {effect}. "
                'How to get and update them: "GeoIP databases" in README.md')

    def _report_missing(self) -> None:
        warning = self.missing_warning()
        if warning is not None and warning != self._reported:
            self._log.warn("{warning}", warning=warning)
        self._reported = warning

    def reload_if_changed(self) -> bool:
        """Reopen each database whose file changed on disk; True if a reader was swapped.

        A file counts as changed when its path (``.updated`` appearing or going), device, inode,
        size or mtime differ from the last attempt. Messages go to the log. The copies are made
        in the calling thread: :meth:`reload_in_thread` makes them in a thread.
        """
        changed = self._changed()
        return self._swap(changed, [_Attempt.of(path) for _, path, _ in changed])

    def reload_in_thread(self) -> Deferred[bool]:
        """:meth:`reload_if_changed`, copying and opening the changed files in the reactor's
        thread pool, then swapping the readers in the reactor thread; lookups meanwhile use the
        readers loaded before. A file already being copied is not copied again. Synchronous
        when ``clock`` has no thread pool."""
        reactor = self._threads()
        if reactor is None:
            return succeed(self.reload_if_changed())
        changed = self._changed()
        if not changed:
            return succeed(self._swap(changed, []))
        paths = [path for _, path, _ in changed]
        copying = deferToThreadPool(reactor, reactor.getThreadPool(),
                                    lambda: [_Attempt.of(path) for path in paths])
        return copying.addCallback(lambda attempts: self._swap(changed, attempts))

    def _threads(self) -> IReactorThreads | None:
        """The reactor whose thread pool copies the files, if ``clock`` has one."""
        if self.clock is None:
            from twisted.internet import reactor

            return cast(IReactorThreads, reactor)
        return cast(IReactorThreads, self.clock) if IReactorThreads.providedBy(self.clock) else None

    def _changed(self) -> list[tuple[_Database, str, int]]:
        """The databases whose file changed since the last attempt (or since the copy in
        flight started), with the path to open and the version an attempt of theirs must find
        to be used; such a copy in flight is made stale."""
        changed = []
        for database in (self._city, self._asn):
            path = self._path_of(database.name)
            stamp = _stat(path)
            if stamp == database.expected():
                continue
            version = database.supersede()
            if stamp == database.stamp:  # back to the file loaded: nothing to copy
                continue
            database.copying, database.pending = True, stamp
            changed.append((database, path, version))
        return changed

    def _swap(self, changed: list[tuple[_Database, str, int]],
              attempts: list[_Attempt]) -> bool:
        """Use each attempt whose database did not change meanwhile, log it, drop the others."""
        swapped = False
        fresh = not changed
        for (database, _, version), attempt in zip(changed, attempts, strict=True):
            if database.version != version:  # reloaded, closed or not watched since: stale
                attempt.discard()
                continue
            fresh = True
            used, message, failed = self._use(database, attempt, force=True)
            swapped = swapped or used
            self._log_outcome(database, message, failed)
        if swapped:
            self._forget()
        if fresh:  # else closed, or said by whatever loaded the databases meanwhile
            self._report_missing()
        return swapped

    def use_directory(self, directory: str) -> Deferred[None]:
        """Take the databases from ``directory`` (a configuration reload): as the watch does,
        the files that are not the ones loaded are copied and opened in the thread pool, and
        used once ready (:meth:`check`)."""
        self.directory = directory
        return self.check()

    def check(self) -> Deferred[None]:
        """:meth:`reload_in_thread`, an unexpected error logged: what the watch runs."""
        try:
            checking = self.reload_in_thread()
        except Exception:
            checking = fail()
        return checking.addCallbacks(lambda _: None, self._check_failed)

    def _check_failed(self, failure: Failure) -> None:
        self._log.failure("Checking the GeoIP databases for changes failed", failure)

    def start_watching(self, interval: float = 5.0) -> None:
        """Call :meth:`check` every ``interval`` seconds until :meth:`close`."""
        if self._watcher is not None:
            return
        watcher = LoopingCall(self.check)  # waits for a check's copies before the next
        if self.clock is not None:
            watcher.clock = self.clock
        self._watcher = watcher
        watcher.start(interval, now=False)

    def stop_watching(self) -> None:
        """Stop the checks started by :meth:`start_watching`; a copy still running in a
        thread is dropped when it is done (its reader closed, nothing logged)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher.running:
            watcher.stop()
        for database in (self._city, self._asn):
            database.supersede()

    def close(self) -> None:
        """Stop watching and release both readers."""
        self.stop_watching()
        for database in (self._city, self._asn):
            if database.reader is not None:
                database.reader.close()
            database.reader = database.epoch = database.stamp = None
            database.supersede()
        self._forget()

    def lookup(self, ip: str) -> GeoRecord:
        """What the databases know about ``ip`` (empty record if invalid or unknown).

        Accepts IPv4, IPv6, ``[v6]`` in brackets, a ``%zone`` suffix and IPv4-mapped IPv6.
        """
        return self._cached(ip)

    def _lookup_uncached(self, ip: str) -> GeoRecord:
        address = parse_ip(ip)
        if address is None:
            return _EMPTY
        number = int(address)
        version = address.version
        bits = address.max_prefixlen
        networks = self._networks
        lengths = self._prefixes[version]
        for position, length in enumerate(lengths):
            if position == PROBED_LENGTHS:  # a rarer length: the readers are as quick
                break
            known = networks.get((version, length, number >> (bits - length)))
            if known is not None:
                if position:  # the lengths that answer most drift to the front
                    lengths[position - 1], lengths[position] = length, lengths[position - 1]
                return known
        city_reader, asn_reader = self._city.reader, self._asn.reader
        try:
            city, city_length = (city_reader.get_with_prefix_len(address)
                                 if city_reader is not None else (None, 0))
            asn, asn_length = (asn_reader.get_with_prefix_len(address)
                               if asn_reader is not None else (None, 0))
        except (InvalidDatabaseError, ValueError):
            return _EMPTY
        record = _record(city, asn)
        length = max(city_length, asn_length)
        if 0 < length <= bits:
            if len(networks) >= NETWORK_LIMIT:
                networks.clear()
            networks[(version, length, number >> (bits - length))] = record
            if length not in lengths:
                lengths.append(length)
        return record

    def _path_of(self, name: str) -> str:
        path = os.path.join(self.directory, name)
        updated = path + UPDATED_SUFFIX
        return updated if os.path.exists(updated) else path

    def _open(self, database: _Database, force: bool) -> tuple[bool, str, bool]:
        """Try to (re)open ``database``: (reader swapped, message, failed)."""
        path = self._path_of(database.name)
        if not force and database.reader is not None and _stat(path) == database.stamp:
            return False, "", False  # the same file: not copied again (a reload stays quick)
        return self._use(database, _Attempt.of(path), force)

    def _use(self, database: _Database, attempt: _Attempt,
             force: bool) -> tuple[bool, str, bool]:
        """Take what opening ``database``'s file gave: (reader swapped, message, failed)."""
        database.supersede()  # a copy started before this one is stale now
        database.stamp = attempt.stamp
        if attempt.reader is None:
            database.problem = attempt.reason
            return False, (f"Can't load the {database.name} database ({attempt.path}): "
                           f"{attempt.reason}"), True
        reader, epoch = attempt.reader, attempt.epoch
        database.problem = ""
        if not force and database.reader is not None and database.epoch == epoch:
            reader.close()
            return False, "", False
        # The previous reader is not closed: a lookup running in a thread may still hold it,
        # and it is unmapped as soon as the last reference goes.
        database.reader, database.epoch = reader, epoch
        return True, f"Loading {database.name} database (built on {_built_on(epoch)})", False



def parse_ip(text: str) -> _IPAddress | None:
    """``text`` as an address (brackets and zone removed, IPv4-mapped made IPv4), or None."""
    if text.startswith("["):
        end = text.find("]")
        text = text[1:end] if end > 0 else text[1:]
    zone = text.find("%")
    if zone >= 0:
        text = text[:zone]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _record(city: object, asn: object) -> GeoRecord:
    """Map the raw City and ASN records (dicts, as the readers decode them) to a GeoRecord,
    reading only the fields it holds (missing or malformed parts stay empty)."""
    country = _part(city, "country")
    location = _part(city, "location")
    latitude = _part(location, "latitude")
    longitude = _part(location, "longitude")
    number = _part(asn, "autonomous_system_number")
    return GeoRecord(  # by position (cheaper): the fields' order
        _text(_part(country, "iso_code")),
        _text(_part(_part(city, "continent"), "code")),
        _text(_part(_part(_part(city, "city"), "names"), "en")),
        _text(_part(_part(country, "names"), "en")),
        f32(latitude) if isinstance(latitude, int | float) else 0.0,
        f32(longitude) if isinstance(longitude, int | float) else 0.0,
        _text(_part(asn, "autonomous_system_organization")),
        number if isinstance(number, int) and number >= 0 else 0,
    )


def _part(data: object, key: str) -> object:
    """``data[key]`` when ``data`` is a dict holding it, else None."""
    return data.get(key) if isinstance(data, dict) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _stat(path: str) -> _FileStamp | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return _stamp(path, info)


def _stamp(path: str, info: os.stat_result) -> _FileStamp:
    return (path, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _open_private(path: str) -> tuple[Reader, _FileStamp]:
    """Open a private in-memory copy of ``path`` (immune to later writes to the file)."""
    with open(path, "rb") as source:
        stamp = _stamp(path, os.fstat(source.fileno()))
        return _reader_of_copy(source), stamp


def _reader_of_copy(source: BinaryIO) -> Reader:
    """The fast C reader over an anonymous memory file, else the pure-Python in-memory reader."""
    if hasattr(os, "memfd_create"):
        memory = os.memfd_create("mirrorbits-geoip", os.MFD_CLOEXEC)
        try:
            _copy_into(source, memory)
            return maxminddb.open_database(f"/proc/self/fd/{memory}", maxminddb.MODE_MMAP_EXT)
        except (OSError, ValueError):  # no /proc or no C extension: use the portable reader
            source.seek(0)
        finally:
            os.close(memory)
    return maxminddb.open_database(source, maxminddb.MODE_FD)


def _copy_into(source: BinaryIO, memory: int) -> None:
    """Copy ``source`` into the file descriptor ``memory``: in the kernel (``sendfile``, the GIL
    released for the whole copy, one copy of the bytes instead of two) when ``source`` is a
    regular file, else through a buffer (a pipe, an older kernel). In the thread pool, the
    buffered copy took the GIL back after each 1 MB and could keep it while the loaded machine
    ran something else: the reactor thread waited for it."""
    offset = 0
    try:
        while sent := os.sendfile(memory, source.fileno(), offset, 1 << 30):
            offset += sent
        return
    except OSError as error:
        if offset or error.errno not in (errno.EINVAL, errno.ENOSYS, errno.ESPIPE):
            raise
    with open(memory, "wb", closefd=False) as copy:
        shutil.copyfileobj(source, copy, 1 << 20)


def _built_on(epoch: int) -> str:
    """Go's ``time.Time.String()`` of a Unix time in the local zone (without fraction)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %z %Z")


def lookup_host_addresses(host: str) -> list[str]:
    """All addresses of ``host`` (no port), blocking: run it in a thread.

    An IP literal (``[v6]`` brackets allowed) is returned as is, without any DNS query.
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if parse_ip(literal) is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        unknown = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
        reason = "no such host" if error.errno in unknown else error.strerror
        raise HostLookupError(errno.ENOENT, f"lookup {host}: {reason}") from error
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise HostLookupError(errno.ENOENT, f"lookup {host}: no such host")
    return addresses


@frozen
class MirrorLocation:
    """Where GeoIP puts a mirror (``add`` / ``geoupdate``), with the warnings to print.

    The fields are only meaningful when :attr:`valid`; otherwise the mirror keeps its own.
    """

    latitude: float = 0.0
    longitude: float = 0.0
    continent_code: str = ""
    country_code: str = ""
    country_name: str = ""
    as_num: int = 0
    as_name: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.country_code != ""


def mirror_host(http_url: str) -> str:
    """The host of a mirror's HttpURL, without port or brackets (scheme-less URLs allowed)."""
    url = http_url if "://" in http_url else "http://" + http_url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError as error:
        raise MirrorLookupError(f"IP lookup failed: {error}") from error
    if not host:
        raise MirrorLookupError(f"IP lookup failed: no host in {http_url!r}")
    return host


def locate_mirror(
    geo: GeoIP,
    http_url: str,
    resolve: Callable[[str], list[str]] = lookup_host_addresses,
) -> MirrorLocation:
    """Geolocate a mirror from its HttpURL (spec §4.3, server side; blocking if ``resolve`` is).

    Raises :class:`MirrorLookupError` when the host has no address.
    """
    host = mirror_host(http_url)
    try:
        addresses = resolve(host)
    except OSError as error:
        raise MirrorLookupError(f"IP lookup failed: {error.strerror or error}") from error
    if not addresses:
        raise MirrorLookupError(f"IP lookup failed: lookup {host}: no such host")
    warnings: list[str] = []
    if len(addresses) > 1:
        warnings.append(WARNING_SEVERAL_ADDRESSES)
    record = geo.lookup(addresses[0])
    if not record.is_valid:
        warnings.append(WARNING_NO_LOCATION)
    return MirrorLocation(
        latitude=record.latitude,
        longitude=record.longitude,
        continent_code=record.continent_code,
        country_code=record.country_code,
        country_name=record.country,
        as_num=record.as_num,
        as_name=record.as_name,
        warnings=tuple(warnings),
    )
