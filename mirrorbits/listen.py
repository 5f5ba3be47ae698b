"""Listening sockets created in one place, from sockets this process owns.

Every listener (HTTP, control) goes through :class:`AdoptedListener`: the socket is
created here (or inherited from systemd or an upgrading parent) and handed to the
reactor. Stopping an adopted port only closes this process' copy, so a socket shared
with a successor process or with systemd keeps working (``listenTCP`` would
``shutdown()`` it for everyone).

UNIX sockets need more care than Twisted's adoption gives them: its UNIX port makes the
file mode 0666, listens again with a backlog of 50, and at stop shuts the socket down and
deletes the file. :func:`adopt` keeps the mode asked for (0600 for the control channel),
the backlog, and an inherited socket's file.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from typing import Any

from attrs import define
from twisted.application.service import Service
from twisted.internet import tcp, unix
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorSocket
from twisted.python.failure import Failure

from mirrorbits.addresses import (
    ListenAddress,
    ListenAddressError,
    is_ipv4,
    join_host_port,
    parse_listen_address,
)
from mirrorbits.logs import Logger

__all__ = [
    "BACKLOG",
    "AdoptedListener",
    "ListenAddress",
    "ListenAddressError",
    "adopt",
    "create_socket",
    "inherited_socket",
    "parse_listen_address",
]

BACKLOG = 1024
# Names bound only to a loopback address whatever the resolver says (/etc/hosts may be odd).
LOOPBACK_NAMES = ("localhost", "localhost.")


def create_socket(address: ListenAddress, backlog: int = BACKLOG) -> socket.socket:
    """A bound, listening, non-blocking socket for ``address``."""
    if address.family == socket.AF_UNIX:
        return _unix_socket(address, backlog)
    host = address.host
    if host and address.family == socket.AF_INET and not is_ipv4(host):
        try:
            infos = socket.getaddrinfo(host, address.port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise ListenAddressError(
                f"cannot listen on {address}: {host!r} does not resolve ({err.strerror})"
            ) from None
        if host.lower() in LOOPBACK_NAMES:  # the default RPCListenAddress: loopback only
            infos = [info for info in infos if _is_loopback(info[4][0])]
            if not infos:
                raise ListenAddressError(
                    f"cannot listen on {address}: {host!r} resolves to no loopback address")
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        bind_to: tuple[object, ...] | str | bytes = sockaddr
    else:
        sock = socket.socket(address.family, socket.SOCK_STREAM)
        bind_to = (host or "::", address.port) if address.family == socket.AF_INET6 else (
            host or "0.0.0.0", address.port)
        if address.family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(bind_to)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise ListenAddressError(f"cannot listen on {address}: {err.strerror}") from None
    return sock


def _is_loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _unix_socket(address: ListenAddress, backlog: int) -> socket.socket:
    # Absolute: twistd may change directory (--rundir) between here and the adoption.
    path = os.path.abspath(address.path)
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            _remove_if_stale(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise ListenAddressError(f"cannot listen on {address}: {err.strerror}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Created without any access for others: nobody connects before the mode is set.
        old_umask = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        if address.mode is not None:
            os.chmod(path, address.mode)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise ListenAddressError(f"cannot listen on {address}: {err.strerror}") from None
    return sock


def _remove_if_stale(path: str) -> None:
    """Delete a UNIX socket file that nobody accepts on any more."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
    else:
        raise ListenAddressError(f"unix:{path}: another process is listening there")
    finally:
        probe.close()


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket at descriptor ``fd`` (systemd's or an upgrading parent's)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as err:
        raise ListenAddressError(f"descriptor {fd}: {err.strerror}") from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()
        raise ListenAddressError(f"descriptor {fd} is not a listening stream socket")
    sock.setblocking(False)
    return sock


class _SharedTCPPort(tcp.Port):
    """Twisted's TCP port accepting one connection per wake-up (:func:`adopt`, ``shared``)."""

    @property
    def numberAccepts(self) -> int:
        return 1

    @numberAccepts.setter
    def numberAccepts(self, value: int) -> None:
        pass  # Twisted raises it to accept a burst at once: one process would take it all


class _UNIXPort(unix.Port):
    """Twisted's UNIX port that can leave its socket file in place when it stops."""

    keep_file = False
    one_accept = False

    @property
    def numberAccepts(self) -> int:
        return 1 if self.one_accept else self._accepts

    @numberAccepts.setter
    def numberAccepts(self, value: int) -> None:
        self._accepts = value

    _accepts = 100  # Twisted's initial value

    def connectionLost(self, reason: Failure) -> None:
        if self.keep_file:
            self._bindPath = "\0"  # Twisted deletes any path outside the abstract namespace
        super().connectionLost(reason)


def adopt(reactor: IReactorSocket, sock: socket.socket, factory: Any, *,
          mode: int | None = None, foreign: bool = False,
          shared: bool = False) -> IListeningPort:
    """Serve ``factory`` on the listening ``sock`` (this process keeps its own copy).

    A UNIX socket file gets ``mode`` (None: it keeps the mode it has). A ``foreign`` socket
    belongs to a process that outlives ours (systemd): its file stays at stop, and its
    backlog is not lowered. A ``shared`` socket is accepted on by several processes at once
    (HTTP workers): each takes one connection per wake-up, so that a burst of connections
    is spread over the processes, a busy one taking fewer.
    """
    if sock.family != socket.AF_UNIX:
        if not shared:
            return reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
        # What reactor.adoptStreamPort does, with the one-accept port.
        tcp_port = _SharedTCPPort._fromListeningDescriptor(reactor, sock.fileno(), sock.family,
                                                           factory)
        tcp_port.startListening()
        adopted: IListeningPort = tcp_port
        return adopted
    # What reactor.adoptStreamPort does for AF_UNIX, with our mode, backlog and file.
    port = _UNIXPort._fromListeningDescriptor(reactor, sock.fileno(), factory)
    path = sock.getsockname()
    in_file_system = isinstance(path, str) and path[:1] not in ("", "\0")
    if mode is None and in_file_system:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode is not None:
        port.mode = mode
    port.backlog = socket.SOMAXCONN if foreign else BACKLOG
    port._shouldShutdown = False  # shutdown() would stop every process sharing the socket
    port.keep_file = foreign
    port.one_accept = shared
    port.startListening()
    listening: IListeningPort = port
    return listening


@define(eq=False)
class AdoptedListener(Service):
    """A service listening on a socket it owns, adopted by the reactor at start.

    ``inherited_fd`` lets the process serve on a socket it received instead of ``address``:
    from an upgrading parent (then it is ours), or from systemd (``foreign``: systemd keeps
    it). ``setting`` names the configuration key in errors.
    """

    address: ListenAddress
    factory: Any  # a ServerFactory; Site and AMP factories are typed differently
    reactor: IReactorSocket
    inherited_fd: int | None = None
    setting: str = ""
    foreign: bool = False
    shared: bool = False  # other processes accept on it at the same time (HTTP workers)
    port: IListeningPort | None = None
    _socket: socket.socket | None = None
    log = Logger()

    def bind(self) -> None:
        """Create the socket now (so errors surface before the reactor runs).

        Raises :class:`ListenAddressError` naming the setting, the address and the reason.
        """
        if self._socket is not None:
            return
        try:
            if self.inherited_fd is not None:
                self._socket = inherited_socket(self.inherited_fd)
            else:
                self._socket = create_socket(self.address)
        except ListenAddressError as err:
            raise ListenAddressError(f"{self.setting}: {err}" if self.setting else str(err)) \
                from None

    def privilegedStartService(self) -> None:
        self.bind()
        super().privilegedStartService()

    def startService(self) -> None:
        self.bind()
        assert self._socket is not None
        super().startService()
        inherited = self.inherited_fd is not None
        self.port = adopt(self.reactor, self._socket, self.factory, foreign=self.foreign,
                          mode=None if inherited else self.address.mode, shared=self.shared)

    def fileno(self) -> int:
        """The descriptor to hand to a successor process."""
        assert self._socket is not None
        return self._socket.fileno()

    def socket_file(self) -> str | None:
        """The path of a UNIX socket in the file system (None: TCP, abstract or unbound)."""
        if self._socket is None or self._socket.family != socket.AF_UNIX:
            return None
        name = self._socket.getsockname()
        return name if isinstance(name, str) and name[:1] not in ("", "\0") else None

    def describe(self) -> str:
        """Where this listener accepts: its bound address, else the configured one."""
        if self._socket is not None:
            name = self._socket.getsockname()
            if isinstance(name, str):
                return f"unix:{name}" if name else "an unnamed UNIX socket"
            if isinstance(name, tuple):
                return join_host_port(name[0], name[1])
        return str(self.address)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        port, self.port = self.port, None
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
        if port is None:
            return None
        return port.stopListening()
