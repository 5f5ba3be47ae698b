"""The connection of ``mirrorbits-ctl`` to the daemon: connect, authenticate, call."""

from __future__ import annotations

import getpass
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from attrs import define, frozen
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import defer
from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.error import (
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
    DNSLookupError,
)
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.protocols import amp
from twisted.python.failure import Failure

from mirrorbits.control import commands as c
from mirrorbits.ctl.exits import EXIT_INTERRUPTED, Exit, fail
from mirrorbits.ctl.prompt import interruptible
from mirrorbits.model import Mirror
from mirrorbits.reactors import IConnectingReactor

#: A command's answer: its response arguments by name, of the types the command declares.
Reply = dict[str, Any]

CONNECT_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
REMOVE_TIMEOUT = 60.0
# Seconds :meth:`Session.resume` lets the reactor read what came while the operator was busy.
RESUME_READ = 0.05
#: What the daemon answers while it cannot use Redis, and what the operator can do about it.
DATABASE_NOT_READY = "database not ready"
DATABASE_HINT = (": the daemon cannot use its Redis now (down, unreachable or not a master); "
                 "its log says why (\"Database is down: ...\")")


def _explained(message: str) -> str:
    """The daemon's error message, with what to look at when it alone would puzzle."""
    return message + DATABASE_HINT if message == DATABASE_NOT_READY else message


@frozen
class TLSFiles:
    """What ``mirrorbits-ctl`` needs for TLS: the daemon's CA, its own certificate and key."""

    ca: str
    certificate: str = ""
    key: str = ""


@define
class Session:
    """An authenticated AMP connection to the daemon (``reconnect``: how to open another)."""

    reactor: IReactorTime
    protocol: amp.AMP
    password: str
    target: str
    tls: bool = False
    reconnect: Callable[[], Awaitable[amp.AMP]] | None = None

    async def resume(self) -> None:
        """Call after waiting for the operator (an editor, a question): the daemon closes a
        connection idle for ``RPCIdleTimeout`` seconds, so connect again if it did."""
        await deferLater(self.reactor, RESUME_READ, lambda: None)  # a close is read meanwhile
        if self.reconnect is None or not getattr(self.protocol, "lost", False):
            return
        self.protocol = await self.reconnect()
        await self.call(c.Ping)

    async def call(
        self,
        command: type[amp.Command],
        timeout: float | None = CALL_TIMEOUT,
        messages: dict[type[Exception], str] | None = None,
        unhandled: Reply | None = None,
        **kwargs: object,
    ) -> Reply:
        """Run ``command``; daemon errors come back as :class:`Exit` (code 1).

        ``messages`` replaces the daemon's message for some error classes; ``unhandled``:
        the answer to take from a daemon that does not know the command (an older one).
        """
        d = self.protocol.callRemote(command, password=self.password, **kwargs)
        if timeout is not None:
            d.addTimeout(timeout, self.reactor)
        try:
            result: Reply = await d
        except tuple(messages or ()) as error:
            assert messages is not None
            raise fail(messages[type(error)]) from None
        except c.AccessDenied:
            if self.password:
                raise fail("Password refused") from None
            raise fail("Please set the server password with the -P option.") from None
        except c.ControlError as error:
            raise fail(_explained(error.message or type(error).__name__)) from None
        except defer.TimeoutError:
            raise fail(f"rpc: {self.target} did not answer within {timeout:g} seconds") from None
        except amp.UnhandledCommand as error:
            if unhandled is None:
                raise fail(f"rpc: the daemon refused the command: {error}") from None
            return dict(unhandled)
        except amp.UnknownRemoteError as error:
            raise fail(f"rpc: the daemon refused the command: {error}") from None
        except (SSL.Error, VerificationError) as error:
            raise fail(f"rpc: TLS with {self.target} failed: {tls_failure(error)}") from None
        except Exception as error:
            hint = ""
            if isinstance(error, ConnectionLost | ConnectionDone) and not self.tls:
                hint = " (if the daemon uses TLS: give -tls-ca, -tls-cert and -tls-key)"
            raise fail(f"rpc: connection to {self.target} lost: {error}{hint}") from None
        return result

    async def require_writes(self) -> None:
        """Before the operator is asked for anything (an editor, a confirmation) ahead of a
        write: exit with the refusal the write would get when the daemon cannot write now
        (its Redis a read-only replica), so that nothing the operator typed is lost."""
        await self.call(c.CheckWritable, unhandled={})

    async def all_mirrors(self) -> list[Mirror]:
        """Every mirror, fetched page by page."""
        mirrors: list[Mirror] = []
        offset = 0
        for _ in range(10_000_000):  # a bound only: the daemon says when there is no more
            reply = await self.call(c.List, offset=offset, limit=c.LIST_PAGE_SIZE)
            mirrors.extend(c.mirror_from_json(item) for item in reply["mirrors"])
            if not reply["more"]:
                break
            offset += c.LIST_PAGE_SIZE
        return mirrors

    async def resolve(self, pattern: str) -> tuple[int, str]:
        """The ``(id, name)`` an identifier designates (see ``output.resolve_match``)."""
        from mirrorbits.ctl.output import ResolveError, resolve_match

        reply = await self.call(c.MatchMirror, pattern=pattern)
        hits = [(int(mirror_id), str(name)) for mirror_id, name in reply["mirrors"]]
        try:
            return resolve_match(pattern, hits)
        except ResolveError as error:
            raise fail(str(error)) from None


# What OpenSSL's reasons mean for the operator of mirrorbits-ctl.
_TLS_REASONS = {
    "certificate required": "the daemon requires a client certificate (-tls-cert, -tls-key)",
    "unknown ca": "the daemon does not accept this client certificate (its CA is not the "
                  "daemon's RPCTLSClientCA)",
    "certificate verify failed": "the daemon's certificate does not come from the -tls-ca CA",
    "wrong version number": "the daemon does not speak TLS on this port",
    "packet length too long": "the daemon does not speak TLS on this port",
}


def tls_failure(error: Exception) -> str:
    """Why a TLS connection failed, in one line."""
    if isinstance(error, VerificationError):
        return f"the daemon's certificate is not for this host name or address ({error})"
    from mirrorbits.control.tls import tls_reason

    reasons = tls_reason(error)
    for known, meaning in _TLS_REASONS.items():
        if known in reasons:
            return meaning
    return reasons


def target_text(host: str, port: int) -> str:
    return host if host.startswith("unix:") else f"{host}:{port}"


async def connect(reactor: IConnectingReactor, host: str, port: int,
                  tls: TLSFiles | None = None) -> amp.AMP:
    """An AMP connection to the daemon (over TLS with ``tls``); :class:`Exit` with a clear
    message if impossible."""
    target = target_text(host, port)
    if host.startswith("unix:"):
        endpoint: IStreamClientEndpoint = UNIXClientEndpoint(
            reactor, host[len("unix:"):], timeout=CONNECT_TIMEOUT)
    else:
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        endpoint = HostnameEndpoint(reactor, bare, port, timeout=CONNECT_TIMEOUT)
        if tls is not None:
            from mirrorbits.control.tls import TLSSetupError, client_options

            try:
                options = client_options(bare, tls.ca, tls.certificate, tls.key)
            except TLSSetupError as error:
                raise fail(str(error)) from None
            endpoint = wrapClientTLS(options, endpoint)
    try:
        protocol: amp.AMP = await connectProtocol(endpoint, _ClientAMP())
    except ConnectionRefusedError:
        raise fail(f"rpc: cannot connect to the daemon at {target}: connection refused") from None
    except DNSLookupError:
        raise fail(f"rpc: cannot connect to the daemon at {target}: unknown host") from None
    except (ConnectError, OSError) as error:
        reason = getattr(error, "osError", None) or error
        raise fail(f"rpc: cannot connect to the daemon at {target}: {reason}") from None
    return protocol


class _ClientAMP(amp.AMP):
    """The client's AMP connection, which knows whether the daemon closed it."""

    lost = False

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        super().connectionLost(reason)


def ask_password() -> str:
    """Read the password without echo; a closed input gives an empty password."""
    try:
        with interruptible(), warnings.catch_warnings():
            # Without a terminal (cron, a pipe) getpass reads stdin; its own one line says
            # so ("Password input may be echoed"), its warning would add Python source lines.
            warnings.simplefilter("ignore", getpass.GetPassWarning)
            return getpass.getpass("Password: ")
    except EOFError:
        return ""
    except KeyboardInterrupt:
        raise Exit(EXIT_INTERRUPTED, "\nInterrupted\n") from None
