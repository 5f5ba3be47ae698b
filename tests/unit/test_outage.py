"""mirrorbits.store.outage: one line per service and Redis outage, nothing while stopping."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import txredisapi
from twisted.internet.defer import FirstError
from twisted.logger import Logger
from twisted.python.failure import Failure

from mirrorbits.store import outage
from mirrorbits.store.errors import DatabaseNotReady
from tests.logcapture import captured_log

log = Logger(namespace="mirrorbits.test_outage")


@pytest.fixture(autouse=True)
def running() -> Iterator[None]:
    outage.stopping(False)
    outage.connected()
    outage._failed.clear()  # no quiet minute carried over from another test
    yield
    outage.stopping(False)


def lost() -> Failure:
    return Failure(txredisapi.ConnectionError("Lost connection"))


def test_one_line_per_service_and_outage() -> None:
    with captured_log("mirrorbits.test_outage") as said:
        for _ in range(3):
            outage.report(log, "Liveness", lost(), "round failed")
            outage.report(log, "Health check", lost(), "round failed")
        outage.connected()
        outage.report(log, "Liveness", lost(), "round failed")
    assert said == ["Liveness: Redis unavailable (Lost connection); retried once it is back",
                    "Health check: Redis unavailable (Lost connection); retried once it is back",
                    "Liveness: Redis unavailable (Lost connection); retried once it is back"]


def test_redis_failure_inside_gather_results_is_an_outage() -> None:
    inner = Failure(DatabaseNotReady("database not ready"))
    assert outage.redis_cause(FirstError(inner, 0)) is inner.value
    assert outage.redis_cause(ValueError("bug")) is None


def test_other_failures_keep_their_traceback_and_stopping_is_silent() -> None:
    try:
        raise ValueError("a bug")
    except ValueError:
        bug = Failure()
    with captured_log("mirrorbits.test_outage") as said:
        outage.report(log, "Liveness", bug, "round failed")
        outage.stopping(True)
        outage.report(log, "Liveness", bug, "round failed")
        outage.report(log, "Scan scheduling", lost(), "round failed")
    assert len(said) == 1 and said[0].startswith("round failed")


def test_a_refused_write_says_so_and_what_follows_for_the_users() -> None:
    """Redis read-only (a replica, NOREPLICAS...) is reachable: "unavailable" sent the
    operator looking at a Redis that answered; the health services' findings are not
    recorded meanwhile, so a dead mirror keeps its users (docs/reliability.md)."""
    refused = txredisapi.ResponseError("NOREPLICAS Not enough good replicas to write.")
    with captured_log("mirrorbits.test_outage") as said:
        outage.report(log, "Liveness", Failure(refused), "round failed")
        outage.report(log, "File verification",
                      Failure(txredisapi.ResponseError("READONLY You can't write against a "
                                                       "read only replica.")), "round failed")
        outage.report(log, "Liveness", Failure(refused), "round failed")
    assert said == [
        "Liveness: Redis refuses writes (NOREPLICAS Not enough good replicas to write.); "
        "retried once it accepts them; meanwhile a mirror it finds down is held down in "
        "memory: this node sends no user there",
        "File verification: Redis refuses writes (READONLY You can't write against a read only "
        "replica.); retried once it accepts them"]


def test_a_failure_after_a_quiet_minute_is_said_again_without_a_reconnection() -> None:
    """``CONFIG SET min-replicas-to-write 1``, then 0, then 1 again: Redis never went away,
    so no "Connected to redis master" started a new outage, and the second refusal was
    silent (seen walking). A minute without failure makes the next one news."""
    now = [1000.0]
    outage.use_clock(lambda: now[0])
    refused = Failure(txredisapi.ResponseError("NOREPLICAS Not enough good replicas to write."))
    try:
        with captured_log("mirrorbits.test_outage") as said:
            for _ in range(30):  # one outage, a failure a second: one line
                outage.report(log, "Health check", refused, "round failed")
                now[0] += 1.0
            now[0] += outage.QUIET  # writes accepted meanwhile: nothing failed
            outage.report(log, "Health check", refused, "round failed")
            outage.report(log, "Health check", refused, "round failed")
    finally:
        outage.use_clock(time.monotonic)
    assert len(said) == 2 and all(line.startswith("Health check: Redis refuses writes")
                                  for line in said), said


def test_an_error_answer_is_not_an_outage() -> None:
    """Redis answered (a key of another type, an unknown script): "unavailable" sent the
    operator looking for a Redis that was there; a passing state (LOADING) is an outage."""
    wrong = txredisapi.ResponseError(
        "WRONGTYPE Operation against a key holding the wrong kind of value")
    loading = txredisapi.ResponseError("LOADING Redis is loading the dataset in memory")
    with captured_log("mirrorbits.test_outage") as said:
        outage.report(log, "Scan scheduling", Failure(wrong), "round failed")
        outage.report(log, "Liveness", Failure(loading), "round failed")
    assert said == [
        "Scan scheduling: Redis answered an error (WRONGTYPE Operation against a key holding "
        "the wrong kind of value); retried later",
        "Liveness: Redis unavailable (LOADING Redis is loading the dataset in memory); "
        "retried once it is back"]
