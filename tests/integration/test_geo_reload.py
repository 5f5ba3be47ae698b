"""A GeoIP database changed on disk is copied in the reactor's thread pool, on the real reactor.

The copy is made slow by serving the new database through a FIFO (``GeoLite2-City.mmdb.updated``)
that a thread writes a chunk at a time: the copy in the watch reads it until the writer closes.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as global_reactor
from twisted.internet.task import LoopingCall, deferLater

from mirrorbits.geo import CITY_DATABASE, UPDATED_SUFFIX, GeoIP
from tests.geodata import CityRecord, write_city_db, write_test_databases
from tests.logcapture import captured_log

pytestmark = pytest.mark.integration

REACTOR: Any = global_reactor
EPOCH = 1687249800
PORTO = CityRecord("100.96.1.0/24", "Porto (test replacement)", "PT", "Portugal", "EU",
                   41.1579, -8.6291, "Europe/Lisbon")  # fmt: skip
CLIENT = "100.96.1.10"  # Lisbon in the conformance databases, Porto in the new one
TICK = 0.02  # the period of the timer whose lateness is measured
CHUNKS = 30
CHUNK_PAUSE = 0.05  # 30 chunks: the copy lasts at least 1.5 s


class SlowWriter(threading.Thread):
    """Writes ``content`` into the FIFO ``path`` a chunk at a time once a reader opens it;
    then puts a regular file with the same content at ``path`` (later checks copy that one, and
    never wait on the FIFO again) and closes its end, which ends the reader's copy."""

    def __init__(self, path: Path, content: bytes, pause: float) -> None:
        super().__init__(daemon=True)
        self.path, self.content, self.pause = path, content, pause
        self.opened = threading.Event()
        self.started_at = self.finished_at = 0.0

    def start(self) -> None:
        os.mkfifo(self.path)  # from now on, the City database is read from the FIFO
        super().start()

    def run(self) -> None:
        with open(self.path, "wb", buffering=0) as fifo:  # blocks until the copy opens it
            self.started_at = time.monotonic()
            self.opened.set()
            step = -(-len(self.content) // CHUNKS)
            for start in range(0, len(self.content), step):
                fifo.write(self.content[start:start + step])
                time.sleep(self.pause)
            staging = self.path.with_name("staging")
            staging.write_bytes(self.content)
            os.replace(staging, self.path)
            self.finished_at = time.monotonic()

    def release(self) -> None:
        """Unblock a writer that no reader opened (a failing test), so the test can end."""
        if not self.is_alive():
            return
        if not self.opened.is_set():
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
        self.join(10)


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await deferLater(REACTOR, 0.01)


def _mapped_copies() -> int:
    """How many private copies of a database this process has mapped (readers open)."""
    with open("/proc/self/maps") as maps:
        return sum("mirrorbits-geoip" in line for line in maps)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    write_test_databases(tmp_path, build_epoch=EPOCH)
    write_city_db(tmp_path / "new.mmdb", [PORTO], build_epoch=EPOCH + 86400)
    return tmp_path


@pytest.fixture
def writer(directory: Path) -> Iterator[SlowWriter]:
    slow = SlowWriter(directory / (CITY_DATABASE + UPDATED_SUFFIX),
                      (directory / "new.mmdb").read_bytes(), CHUNK_PAUSE)
    yield slow
    slow.release()


@pytest_twisted.ensureDeferred
async def test_timers_run_while_a_changed_database_is_copied(directory: Path,
                                                            writer: SlowWriter) -> None:
    geo = GeoIP(str(directory), REACTOR)
    geo.load()
    seen: list[tuple[float, str]] = []  # (when, the city a lookup gave)
    ticker = LoopingCall(lambda: seen.append((time.monotonic(), geo.lookup(CLIENT).city)))
    ticker.clock = REACTOR
    ticker.start(TICK)
    with captured_log("") as log:
        writer.start()
        geo.start_watching(0.1)
        try:
            await wait_until(lambda: bool(seen) and seen[-1][1] == PORTO.city)
        finally:
            geo.stop_watching()
            ticker.stop()
    assert writer.opened.is_set() and writer.finished_at
    assert writer.finished_at - writer.started_at >= CHUNKS * CHUNK_PAUSE * 0.9
    ticks = [when for when, _ in seen]
    lateness = max(later - earlier - TICK for earlier, later in itertools.pairwise(ticks)
                   if later >= writer.started_at and earlier <= writer.finished_at)
    assert lateness < 0.3, lateness  # the timer stays on time (the copy blocking it: >= 1.5 s)
    assert sum(writer.started_at <= when <= writer.finished_at for when in ticks) >= 20
    # Lookups during the copy used the reader loaded before; the swap came after the copy.
    assert {city for when, city in seen if when <= writer.finished_at} == {"Lisbon"}
    swapped_at = min(when for when, city in seen if city == PORTO.city)
    assert swapped_at > writer.finished_at
    assert [line for line in log if "GeoLite2" in line] == [
        f"Loading {CITY_DATABASE} database (built on "
        + next(line for line in log if "built on" in line).split("built on ", 1)[1]
    ]
    assert not [line for line in log if "failed" in line or "Traceback" in line]
    geo.close()


@pytest.mark.parametrize("stop", ["close", "stop_watching"])
@pytest_twisted.ensureDeferred
async def test_stopping_during_a_copy_drops_it(directory: Path, writer: SlowWriter,
                                               stop: str) -> None:
    """The copy in flight ends in the thread; its reader is closed, nothing swapped or said."""
    before = _mapped_copies()
    geo = GeoIP(str(directory), REACTOR)
    geo.load()
    pool = REACTOR.getThreadPool()
    with captured_log("") as log:
        writer.start()
        geo.start_watching(0.05)
        await wait_until(writer.opened.is_set)
        getattr(geo, stop)()
        await wait_until(lambda: not writer.is_alive() and not pool.working)
        await deferLater(REACTOR, 0.1)  # the copy's result reaches the reactor thread
    assert [line for line in log if "GeoLite2" in line or "failed" in line] == []
    if stop == "close":
        assert not geo.city_available and not geo.asn_available
        assert _mapped_copies() == before  # the copy made in the thread was closed too
    else:
        assert geo.lookup(CLIENT).city == "Lisbon"  # not swapped after the watch stopped
        geo.close()
        assert _mapped_copies() == before
