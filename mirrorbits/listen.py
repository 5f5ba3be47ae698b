"""Listening sockets created in one place, from sockets this process owns.

Every listener (HTTP, control) goes through :func:`open_listener`: the socket is
created (or inherited) here and handed to the reactor with ``adoptStreamPort``.
Stopping an adopted port only closes this process' copy, so a socket shared with
a successor process or with sibling workers keeps working (``listenTCP`` would
``shutdown()`` it for everyone).
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any

from attrs import define, frozen
from twisted.application.service import Service
from twisted.internet.interfaces import IListeningPort, IReactorSocket

from mirrorbits.logs import Logger


class ListenAddressError(ValueError):
    """An address that cannot be listened on, with the reason for the operator."""


@frozen
class ListenAddress:
    """A parsed ``ListenAddress``/``RPCListenAddress`` value."""

    family: socket.AddressFamily
    host: str = ""
    port: int = 0
    path: str = ""
    mode: int | None = None

    def __str__(self) -> str:
        if self.family == socket.AF_UNIX:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_listen_address(text: str, unix_mode: int | None = None) -> ListenAddress:
    """Parse ``host:port``, ``:port``, ``[v6]:port`` or ``unix:/path``."""
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise ListenAddressError(f"{text!r}: empty UNIX socket path")
        return ListenAddress(socket.AF_UNIX, path=path, mode=unix_mode)
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ListenAddressError(f"{text!r}: expected host:port or unix:/path")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ListenAddressError(f"{text!r}: invalid port {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ListenAddressError(f"{text!r}: port out of range")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host == "":
        family = socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET
    return ListenAddress(family, host=host, port=port)


def create_socket(address: ListenAddress, backlog: int = 1024) -> socket.socket:
    """A bound, listening, non-blocking socket for ``address``."""
    if address.family == socket.AF_UNIX:
        return _unix_socket(address, backlog)
    host = address.host
    if host and address.family == socket.AF_INET and not _is_ip(host):
        infos = socket.getaddrinfo(host, address.port, type=socket.SOCK_STREAM)
        if not infos:
            raise ListenAddressError(f"{address}: cannot resolve {host!r}")
        family, _, _, _, sockaddr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        bind_to: Any = sockaddr
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


def _unix_socket(address: ListenAddress, backlog: int) -> socket.socket:
    path = address.path
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            _remove_if_stale(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177) if address.mode is not None else None
        try:
            sock.bind(path)
        finally:
            if old_umask is not None:
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


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return False
    return True


@define(eq=False)
class AdoptedListener(Service):
    """A service listening on a socket it owns, adopted by the reactor at start.

    ``inherited_fd`` lets a successor process serve on a socket it received.
    """

    address: ListenAddress
    factory: Any  # a ServerFactory; Site and AMP factories are typed differently
    reactor: IReactorSocket
    inherited_fd: int | None = None
    port: IListeningPort | None = None
    _socket: socket.socket | None = None
    log = Logger()

    def bind(self) -> None:
        """Create the socket now (so errors surface before the reactor runs)."""
        if self._socket is not None:
            return
        if self.inherited_fd is not None:
            self._socket = socket.socket(fileno=self.inherited_fd)
            self._socket.setblocking(False)
        else:
            self._socket = create_socket(self.address)

    def privilegedStartService(self) -> None:
        self.bind()
        super().privilegedStartService()

    def startService(self) -> None:
        self.bind()
        assert self._socket is not None
        super().startService()
        self.port = self.reactor.adoptStreamPort(
            self._socket.fileno(), self._socket.family, self.factory
        )

    def fileno(self) -> int:
        """The descriptor to hand to a successor process."""
        assert self._socket is not None
        return self._socket.fileno()

    def stopService(self) -> Any:
        super().stopService()
        port, self.port = self.port, None
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()
        if port is None:
            return None
        return port.stopListening()
