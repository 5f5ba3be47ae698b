"""Held connections: one idle TCP connection to each up mirror endpoint, so that a mirror
whose server process stops or dies is seen at once, not at the next probes
(docs/freshness.md).

When a server process exits, its kernel closes every connection it held: ours is lost
within milliseconds. It is then opened again at once (one opening per endpoint per ``gap``
seconds on average, two in a row at most, so a server that closes idle connections quickly
costs no more than the probes): refused means nothing listens any more, and the owner
marks the protocol down; made, it is held in turn (a server's idle timeout closes
connections too); any other failure counts as one failed probe. No request is ever sent on
a held connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from attrs import define, field
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from mirrorbits.connect import connect_quietly
from mirrorbits.health.endpoint import Endpoint, client_endpoint
from mirrorbits.logs import Logger
from mirrorbits.reactors import IConnectingReactor

#: (mirror id, protocol): what one held connection is for.
Key = tuple[int, int]

#: Openings of one endpoint's connection allowed in a row (then one per gap).
BURST = 2.0

log = Logger()


@define
class OpeningGate:
    """When each endpoint's connection may be opened again (pure timing): one opening per
    ``gap`` seconds on average, a burst of two at most, so that a connection lost soon
    after it was opened is still opened again at once (a token bucket per endpoint)."""

    _tokens: dict[Key, tuple[float, float]] = field(factory=dict)  # (tokens, when)

    def _available(self, key: Key, now: float, gap: float) -> float:
        tokens, when = self._tokens.get(key, (BURST, now))
        return min(BURST, tokens + max(0.0, now - when) / gap)

    def delay(self, key: Key, now: float, gap: float) -> float:
        """Seconds to wait before opening ``key``'s connection (0: now)."""
        return max(0.0, (1.0 - self._available(key, now, gap)) * gap)

    def opening(self, key: Key, now: float, gap: float) -> None:
        self._tokens[key] = (self._available(key, now, gap) - 1.0, now)

    def keep_only(self, keys: Iterable[Key]) -> None:
        """Forget the endpoints no longer followed."""
        kept = set(keys)
        for key in set(self._tokens) - kept:
            del self._tokens[key]


class _Held(Protocol):
    """An idle connection: reports its loss unless we closed it."""

    def __init__(self, lost: Callable[[_Held], None]) -> None:
        self._lost = lost
        self.closing = False

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        pass  # a server may say why it closes (a 408): the close itself is what counts

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.closing:
            self._lost(self)


@define(eq=False)
class HeldConnections:
    """One held connection per followed endpoint (:meth:`follow`); a lost one is opened
    again at once, and the answer reported: ``refused(key, error)`` when the connection is
    refused, ``failed(key, error)`` for any other failure."""

    _reactor: IConnectingReactor
    _refused: Callable[[Key, str], None]
    _failed: Callable[[Key, str], None]
    _gate: OpeningGate = field(factory=OpeningGate, init=False)
    _where: dict[Key, Endpoint] = field(factory=dict, init=False)
    _held: dict[Key, _Held] = field(factory=dict, init=False)
    _opening: set[Key] = field(factory=set, init=False)
    _timers: dict[Key, IDelayedCall] = field(factory=dict, init=False)
    _gap: float = field(default=1.0, init=False)
    _timeout: float = field(default=2.0, init=False)

    @property
    def held(self) -> frozenset[Key]:
        """The endpoints a connection is held to now."""
        return frozenset(self._held)

    def follow(self, wanted: Mapping[Key, Endpoint], gap: float, timeout: float) -> None:
        """Hold a connection to each of ``wanted`` (opened at most once per ``gap``
        seconds, within ``timeout``); close the others."""
        self._gap, self._timeout = gap, timeout
        for key, endpoint in list(self._where.items()):
            if wanted.get(key) != endpoint:
                self._drop(key)
        self._where = dict(wanted)
        self._gate.keep_only(wanted)
        for key in wanted:
            if key not in self._held and key not in self._opening and key not in self._timers:
                self._open_when_allowed(key, after_loss=False)

    def close_all(self) -> None:
        for key in list(self._where):
            self._drop(key)
        self._where.clear()

    def _drop(self, key: Key) -> None:
        self._where.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()
        held = self._held.pop(key, None)
        if held is not None:
            held.close()

    def _open_when_allowed(self, key: Key, after_loss: bool) -> None:
        delay = self._gate.delay(key, self._reactor.seconds(), self._gap)
        if delay > 0:
            self._timers[key] = self._reactor.callLater(delay, self._open, key, after_loss)
        else:
            self._open(key, after_loss)

    def _open(self, key: Key, after_loss: bool) -> None:
        self._timers.pop(key, None)
        endpoint = self._where.get(key)
        if endpoint is None:
            return
        self._gate.opening(key, self._reactor.seconds(), self._gap)
        self._opening.add(key)
        held = _Held(lambda lost: self._lost(key, lost))
        connecting = client_endpoint(self._reactor, endpoint, self._timeout)
        attempt = connect_quietly(connecting, held)  # no factory lines per connection
        attempt.addTimeout(self._timeout + 1.0, self._reactor)  # also bounds the resolution

        def made(_: object) -> None:
            self._opening.discard(key)
            if self._where.get(key) != endpoint:
                held.close()  # no longer followed meanwhile
            else:
                self._held[key] = held

        def not_made(failure: Failure) -> None:
            self._opening.discard(key)
            if not after_loss or self._where.get(key) != endpoint:
                return  # a first opening that fails: the probes judge the mirror
            error = str(failure.value) or type(failure.value).__name__
            if failure.check(ConnectionRefusedError):
                self._refused(key, error)
            else:
                self._failed(key, error)

        attempt.addCallbacks(made, not_made)

    def _lost(self, key: Key, lost: _Held) -> None:
        if self._held.get(key) is not lost:
            return
        del self._held[key]
        if key in self._where:
            log.debug("Held connection to mirror {id} lost; connecting again", id=key[0])
            self._open_when_allowed(key, after_loss=True)
