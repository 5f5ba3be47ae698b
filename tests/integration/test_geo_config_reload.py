"""A reload that points ``GeoipDatabasePath`` elsewhere, on a real daemon: the new databases are
copied in a thread while every request is answered, with the databases loaded before, until they
are ready.

The new City database is larger than a real one (160 MB, GeoLite2-City is 60-70 MB), and read
from the disk, not the page cache, so that its copy lasts long enough to tell a stall from noise:
a small generated database with zeros between its data and its metadata (never read).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from attrs import frozen

from mirrorbits.geo import ASN_DATABASE, CITY_DATABASE, _Attempt
from tests.daemon import FIXTURES, DaemonProcess, base_config, repo_file
from tests.geodata import CityRecord, write_city_db
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

EPOCH = 1687249800
PORTO = CityRecord("100.96.1.0/24", "Porto (new directory)", "PT", "Portugal", "EU",
                   41.1579, -8.6291, "Europe/Lisbon")  # fmt: skip
CLIENT = "100.96.1.10"  # Lisbon in tests/fixtures/geo, Porto in the new directory
PADDING = 160 << 20  # the new City database: 160 MB
METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
PERIOD = 0.01  # a request every 10 ms


def write_large_city_db(path: Path, record: CityRecord, padding: int,
                        epoch: int = EPOCH + 86400) -> None:
    """A City database holding ``record``, ``padding`` bytes larger than it needs."""
    write_city_db(path, [record], build_epoch=epoch)
    data = path.read_bytes()
    metadata = data.rindex(METADATA_MARKER)
    with open(path, "wb") as out:
        out.write(data[:metadata])
        out.write(bytes(padding))
        out.write(data[metadata:])


def copy_time(path: Path) -> float:
    """How long copying and opening ``path`` takes here (the best of three)."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        attempt = _Attempt.of(str(path))
        times.append(time.monotonic() - started)
        assert attempt.reader is not None, attempt.reason
        attempt.discard()
    return min(times)


def evict(path: Path) -> None:
    """Drop ``path`` from the page cache: the daemon reads it from the disk, as after an update
    (the reload takes longer; how long a request waits must not)."""
    with open(path, "rb+") as file:
        os.fsync(file.fileno())
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


@frozen
class Answer:
    """One request of :class:`Client`: when it was sent, how long it waited, the city said."""

    sent: float
    waited: float
    city: str


class Client(threading.Thread):
    """Asks where ``CLIENT`` is (``?trace&fromip=``) every :data:`PERIOD` on one connection."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.answers: list[Answer] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        while not self.stopping.is_set():
            sent = time.monotonic()
            try:
                connection.request("GET", f"/a.txt?trace&fromip={CLIENT}")
                response = connection.getresponse()
                body = response.read()
                city = json.loads(body)["Client"]["City"]
            except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
                self.errors.append(repr(error))
                connection.close()
                continue
            self.answers.append(Answer(sent, time.monotonic() - sent, city))
            time.sleep(max(0.0, sent + PERIOD - time.monotonic()))
        connection.close()

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(30)


@pytest.mark.parametrize(("asked_by", "workers"), [("SIGHUP", "1"), ("ctl", "2")])
def test_requests_are_answered_while_a_reload_copies_new_databases(
        tmp_path: Path, redis_server: RedisServer, asked_by: str, workers: str) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", EPOCH)
    new = tmp_path / "geo-new"
    new.mkdir()
    write_large_city_db(new / CITY_DATABASE, PORTO, PADDING)
    shutil.copy(FIXTURES / "geo" / ASN_DATABASE, new / ASN_DATABASE)
    copying = copy_time(new / CITY_DATABASE)
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address, Workers=workers))
    client = Client(*daemon.http)
    daemon.start()
    try:
        if workers != "1":
            daemon.wait_log(f"HTTP served by {workers} worker processes", timeout=30)
        daemon.wait_log("[source] Indexed 1 files", timeout=30)
        client.start()
        deadline = time.monotonic() + 30
        while len(client.answers) < 20:  # on time and located with the databases loaded before
            assert time.monotonic() < deadline and not client.errors, client.errors
            time.sleep(0.05)
        daemon.values["GeoipDatabasePath"] = f"{new}/"
        daemon.write_config()
        evict(new / CITY_DATABASE)
        asked_at = time.monotonic()
        if asked_by == "SIGHUP":
            daemon.signal(signal.SIGHUP)
        else:  # answered once the daemon signalled its workers (on main: after its own copy)
            reloaded = daemon.ctl("reload")
            assert (reloaded.returncode, reloaded.stderr) == (0, "")
        reloaded_at = time.monotonic()
        while not client.answers or client.answers[-1].city != PORTO.city:
            assert time.monotonic() < deadline + 30 and not client.errors, client.errors
            time.sleep(0.02)
        time.sleep(0.3)  # some more answers, all with the new databases
    finally:
        client.stop()
        daemon.stop()
    log = daemon.log()
    answers = client.answers
    assert client.errors == []
    before = [answer for answer in answers if answer.sent < asked_at]
    assert {answer.city for answer in before} == {"Lisbon"}
    swapped = next(index for index, answer in enumerate(answers) if answer.city == PORTO.city)
    assert {answer.city for answer in answers[swapped:]} == {PORTO.city}
    # No request waited for the copy (on main, the reactor made it: the requests sent meanwhile
    # waited until the new databases were ready, 0.4-0.6 s here). The copy, measured here from
    # the page cache, takes about a tenth of a second on a quiet machine; in the daemon, from
    # the disk, with three processes copying at once on a loaded machine, up to seconds.
    ready = answers[swapped].sent + answers[swapped].waited - reloaded_at
    longest = max(answer.waited for answer in answers)
    assert longest < max(copying, ready) / 2, (longest, ready, copying)
    processes = 1 if workers == "1" else int(workers) + 1
    # Said at start by the daemon (its workers keep quiet), then by each process at the reload.
    assert log.count(f"Loading {CITY_DATABASE} database") == 1 + processes
    assert "Traceback" not in log
