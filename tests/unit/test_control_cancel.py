"""A scan started from the CLI stops when the CLI's connection goes away."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from mirrorbits.control.server import ControlBackend, ScanOutcome, control_factory


def test_disconnect_cancels_the_running_scan() -> None:
    started: list[Deferred[ScanOutcome]] = []
    cancelled: list[bool] = []

    def scan(mirror_id: int, auto_enable: bool, protocol: str,
             timeout: float | None) -> Deferred[ScanOutcome]:
        d: Deferred[ScanOutcome] = Deferred(lambda _: cancelled.append(True))
        started.append(d)
        return d

    backend = ControlBackend(mirrors=None, locate=None, password=lambda: "pw",  # type: ignore[arg-type]
                             reload=None, version=dict, scan=scan)  # type: ignore[arg-type]
    protocol: Any = control_factory(backend, Clock()).buildProtocol(None)
    protocol.makeConnection(StringTransport())
    answer = Deferred.fromCoroutine(protocol.locator.scan_mirror(
        password="pw", id=1, auto_enable=False, protocol="all", scan_timeout=None))
    assert started and not cancelled
    protocol.connectionLost(Failure(ConnectionDone()))
    assert cancelled == [True]
    failures: list[Failure] = []
    answer.addErrback(failures.append)
    assert failures and failures[0].check(CancelledError)


def test_a_finished_scan_is_not_cancelled_later() -> None:
    outcome = ScanOutcome(enabled=True, files_indexed=1, known_indexed=1, removed=0)

    async def scan(mirror_id: int, auto_enable: bool, protocol: str,
                   timeout: float | None) -> ScanOutcome:
        return outcome

    backend = ControlBackend(mirrors=None, locate=None, password=lambda: "pw",  # type: ignore[arg-type]
                             reload=None, version=dict, scan=scan)  # type: ignore[arg-type]
    protocol: Any = control_factory(backend, Clock()).buildProtocol(None)
    protocol.makeConnection(StringTransport())
    results: list[Any] = []
    Deferred.fromCoroutine(protocol.locator.scan_mirror(
        password="pw", id=1, auto_enable=False, protocol="all", scan_timeout=None)
    ).addCallback(results.append)
    assert results and results[0]["files_indexed"] == 1
    protocol.connectionLost(Failure(ConnectionDone()))
