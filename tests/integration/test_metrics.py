"""Prometheus metrics on ``MetricsListenAddress``: a real daemon on loopback, scraped with
urllib and read with prometheus_client's own text parser."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon import DaemonProcess, base_config, put_a_txt_on_a_mirror, repo_file
from tests.integration.test_mirror_scan import db, mirror_http, own_redis, rsyncd
from tests.servers import RedisServer, free_port, wait_for_port

__all__ = ["db", "mirror_http", "own_redis", "rsyncd"]  # fixtures of the scan tests

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def get(daemon: DaemonProcess, path: str, **headers: str) -> int:
    host, port = daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status
    finally:
        connection.close()


@pytest.fixture
def daemon(tmp_path: Path, redis_server: RedisServer,
           redis_db: redis.Redis) -> Iterator[DaemonProcess]:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    repo_file(repo, "/b.txt", b"nowhere\n", 1687249800)
    values = base_config(repo, redis_server.address,
                         MetricsListenAddress=f"127.0.0.1:{free_port()}")
    process = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    process.start()
    wait_for_port("127.0.0.1", int(values["MetricsListenAddress"].rpartition(":")[2]))
    yield process
    process.stop()


def wait_indexed(daemon: DaemonProcess, redis_db: redis.Redis) -> None:
    assert daemon.ctl("refresh").returncode == 0
    deadline = time.monotonic() + 20
    while not redis_db.exists("FILE_/b.txt"):
        assert time.monotonic() < deadline, "repository not indexed"
        time.sleep(0.05)


def requests_by_outcome(samples: Samples) -> dict[str, float]:
    return {dict(labels)["outcome"]: value for (name, labels), value in samples.items()
            if name == "mirrorbits_requests_total"}


def test_counts_every_outcome_and_the_mirrors(daemon: DaemonProcess,
                                               redis_db: redis.Redis) -> None:
    metrics = daemon.values["MetricsListenAddress"]
    wait_indexed(daemon, redis_db)
    put_a_txt_on_a_mirror(daemon, redis_db)
    assert daemon.ctl("add", "-http", "https://127.0.0.32/", 'odd"name\\').returncode == 0
    before = scrape(metrics)
    assert set(requests_by_outcome(before).values()) == {0}
    statuses = [get(daemon, "/a.txt") for _ in range(3)]
    statuses.append(get(daemon, "/a.txt", Accept="application/json"))
    statuses.append(get(daemon, "/a.txt", **{"If-Modified-Since": "Sat, 01 Jan 2050 00:00:00 GMT"}))
    statuses += [get(daemon, "/missing.txt"), get(daemon, "/missing.txt")]
    statuses.append(get(daemon, "/b.txt"))  # on no mirror, no fallback: 503
    statuses.append(get(daemon, "//a.txt"))  # the router's 301
    assert statuses == [302, 302, 302, 200, 304, 404, 404, 503, 301]
    daemon.raw = "Fallbacks:\n    - URL: http://fallback.example.org/\n"
    daemon.write_config()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("Reloading configuration")
    assert get(daemon, "/b.txt") == 302

    samples = scrape(metrics)
    assert requests_by_outcome(samples) == {
        "redirect": 3, "fallback": 1, "json": 1, "not_modified": 1, "4xx": 2, "5xx": 1,
        "other": 1}
    redirects = {dict(labels)["mirror"]: value for (name, labels), value in samples.items()
                 if name == "mirrorbits_redirects_total"}
    assert redirects["madrid"] == 3
    assert sum(redirects.values()) == 4  # and the fallback's
    assert samples["mirrorbits_mirror_up", (("mirror", "madrid"), ("protocol", "http"))] == 1
    odd = 'odd"name\\'
    assert samples["mirrorbits_mirror_up", (("mirror", odd), ("protocol", "https"))] == 0
    assert samples["mirrorbits_mirror_excluded", (("mirror", odd), ("reason", "disabled"))] == 1
    assert ("mirrorbits_mirror_excluded", (("mirror", "madrid"), ("reason", "down"))) \
        not in samples
    assert samples["mirrorbits_mirror_enabled", (("mirror", "madrid"),)] == 1
    assert samples["mirrorbits_redis_connected", ()] == 1
    assert samples["mirrorbits_cache_entries", (("cache", "mirrors"),)] >= 1
    assert samples["mirrorbits_cache_entries", (("cache", "files"),)] >= 2
    assert samples["process_cpu_seconds_total", ()] > 0
    with pytest.raises(urllib.error.HTTPError) as elsewhere:
        urllib.request.urlopen(f"http://{metrics}/", timeout=10)
    assert elsewhere.value.code == 404
    assert f"Prometheus metrics at http://{metrics}/metrics" in daemon.log()
    assert "GET /metrics" not in daemon.log()


def test_empty_address_listens_nowhere(tmp_path: Path, redis_server: RedisServer,
                                       redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    values = base_config(repo, redis_server.address, MetricsListenAddress='""')
    process = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    process.start()
    try:
        assert "Prometheus metrics" not in process.log()
    finally:
        process.stop()


class Scraper(threading.Thread):
    """GET /metrics until told to stop (bounded in count and time): on a new connection
    each time, or on one kept-alive connection (reopened only after a ``Connection: close``
    answer, as a client does)."""

    def __init__(self, address: str, keep_alive: bool) -> None:
        super().__init__(daemon=True)
        host, _, port = address.rpartition(":")
        self.host, self.port = host, int(port)
        self.keep_alive = keep_alive
        self.answered = 0
        self.errors: list[str] = []
        self.stop_after: float | None = None  # monotonic time

    def run(self) -> None:
        deadline = time.monotonic() + 40
        connection: http.client.HTTPConnection | None = None
        for _ in range(4000):
            now = time.monotonic()
            if now > deadline or (self.stop_after is not None and now > self.stop_after):
                break
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                connection.request("GET", "/metrics")
                answer = connection.getresponse()
                body = answer.read()
                if answer.status != 200 or b"mirrorbits_requests_total" not in body:
                    self.errors.append(f"status {answer.status}")
                else:
                    self.answered += 1
                if not self.keep_alive or answer.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as err:
                self.errors.append(repr(err))
                connection.close()
                connection = None
                time.sleep(0.1)  # a refused connection is refused at once
            time.sleep(0.01)
        if connection is not None:
            connection.close()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_scrapes_during_an_upgrade_are_all_answered(tmp_path: Path, redis_server: RedisServer,
                                                    redis_db: redis.Redis, workers: str) -> None:
    """The metrics socket passes to the new process like the HTTP one: no scrape is refused
    or cut while the processes change, and the new process answers with its own counts."""
    from tests.integration.test_upgrade import read_pid, running, wait_until

    metrics = f"127.0.0.1:{free_port()}"
    with running(tmp_path, redis_server, ["--no-monitor"], MetricsListenAddress=metrics,
                 Workers=workers) as daemon:
        if workers != "1":
            daemon.wait_log(f"HTTP served by {workers} worker processes", timeout=40)
        wait_for_port("127.0.0.1", int(metrics.rpartition(":")[2]))
        get(daemon, "/missing.txt")  # counted by the old process only
        assert requests_by_outcome(scrape(metrics))["4xx"] == 1
        assert daemon.process is not None
        old = daemon.process
        scrapers = [Scraper(metrics, keep_alive=False), Scraper(metrics, keep_alive=True)]
        for scraper in scrapers:
            scraper.start()
        wait_until(lambda: all(s.answered >= 3 or s.errors for s in scrapers), 10,
                   "the first scrapes")
        upgraded = daemon.ctl("upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        old.wait(20)
        answered_by_then = [scraper.answered for scraper in scrapers]
        wait_until(lambda: read_pid(daemon.pidfile) not in (None, old.pid), 10, "the new pid")
        wait_until(lambda: all(scraper.answered > count + 3 for scraper, count
                               in zip(scrapers, answered_by_then, strict=True)),
                   10, "scrapes answered by the new process")
        for scraper in scrapers:
            scraper.stop_after = time.monotonic()
            scraper.join(15)
            assert not scraper.is_alive()
            assert scraper.errors == [], scraper.errors
        assert requests_by_outcome(scrape(metrics))["4xx"] == 0  # the new process' counts
        assert "Cannot listen" not in daemon.log()


def test_workers_counts_are_summed_and_kept_when_a_worker_stops(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    from tests.integration.test_upgrade import running, serve_from_a_mirror, wait_until
    from tests.integration.test_workers import answers_alone, serving, two_workers, worker_pids

    metrics = f"127.0.0.1:{free_port()}"
    with running(tmp_path, redis_server, ["--no-monitor"], Workers="2",
                 MetricsListenAddress=metrics) as daemon:
        serve_from_a_mirror(serving(daemon), redis_db)
        first, second = two_workers(daemon)
        before = requests_by_outcome(scrape(metrics))["redirect"]
        assert before >= 1
        answers_alone(daemon, first, [second], 5)
        answers_alone(daemon, second, [first], 7)
        samples = scrape(metrics)
        assert requests_by_outcome(samples)["redirect"] == before + 12
        assert samples["mirrorbits_redirects_total", (("mirror", "madrid"),)] == before + 12
        assert samples["mirrorbits_cache_entries", (("cache", "mirrors"),)] >= 2  # both workers
        answers_alone(daemon, second, [first], 3)  # not scraped before the worker stops
        os.kill(second, signal.SIGTERM)
        assert daemon.process is not None
        main = daemon.process.pid
        wait_until(lambda: second not in worker_pids(main), 10, "the worker to stop")
        assert requests_by_outcome(scrape(metrics))["redirect"] == before + 15
        wait_until(lambda: len(worker_pids(main)) == 2, 10, "a new worker")


def test_scan_and_health_check_of_a_real_mirror(
        tmp_path: Path, own_redis: RedisServer, rsyncd: Any, mirror_http: str,
        db: redis.Redis) -> None:
    """An rsync + HTTP mirror, scanned by the CLI and checked by the monitor (1 minute
    interval: one check)."""
    from tests.integration.test_mirror_scan import FIXTURE, write_tree

    repo = tmp_path / "repo"
    write_tree(repo, [f for f in FIXTURE["tree"]
                      if f["path"] in set(FIXTURE["keys"]["FILES"]["value"])])
    metrics = f"127.0.0.1:{free_port()}"
    values = base_config(repo, own_redis.address, MetricsListenAddress=metrics,
                         CheckInterval="1")
    process = DaemonProcess(workdir=tmp_path / "run", values=values)
    process.start()
    try:
        assert process.ctl("add", "-rsync", rsyncd.url("full"), "-http", mirror_http,
                           "m1").returncode == 0
        assert process.ctl("refresh").returncode == 0
        scanned = process.ctl("scan", "-enable", "m1")
        assert "11 files indexed" in scanned.stdout, scanned.stderr
        samples = scrape(metrics)
        assert samples["mirrorbits_scan_files", (("mirror", "m1"),)] == 11
        assert 0 < samples["mirrorbits_scan_duration_seconds", (("mirror", "m1"),)] < 60
        synced = samples["mirrorbits_mirror_last_successful_sync_timestamp_seconds",
                         (("mirror", "m1"),)]
        assert abs(synced - time.time()) < 60
        latency = ("mirrorbits_mirror_check_latency_seconds", (("mirror", "m1"),))
        deadline = time.monotonic() + 20
        while latency not in samples or samples[
                "mirrorbits_mirror_up", (("mirror", "m1"), ("protocol", "http"))] != 1:
            assert time.monotonic() < deadline, "no health check seen"
            time.sleep(0.2)
            samples = scrape(metrics)
        assert 0 < samples[latency] < 10
        assert samples["mirrorbits_mirror_enabled", (("mirror", "m1"),)] == 1
        assert ("mirrorbits_mirror_excluded", (("mirror", "m1"), ("reason", "down"))) \
            not in samples
    finally:
        process.stop()


def test_a_failed_upgrade_serves_the_metrics_again(tmp_path: Path, redis_server: RedisServer,
                                                   redis_db: redis.Redis) -> None:
    from tests.integration.test_upgrade import running, wait_until

    metrics = f"127.0.0.1:{free_port()}"
    with running(tmp_path, redis_server, ["--no-monitor"],
                 MetricsListenAddress=metrics) as daemon:
        wait_for_port("127.0.0.1", int(metrics.rpartition(":")[2]))
        get(daemon, "/missing.txt")
        daemon.config_path.write_text("Repository: [unclosed\n")  # the new process cannot start
        assert daemon.ctl("upgrade").returncode == 1  # refused before anything is spawned

        def scraped() -> bool:
            try:
                return requests_by_outcome(scrape(metrics))["4xx"] == 1  # the same process
            except OSError:
                return False

        wait_until(scraped, 5, "the metrics again")
