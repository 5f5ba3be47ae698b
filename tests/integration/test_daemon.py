"""The daemon as an operator runs it: twistd, a config file, mirrorbits-ctl, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mirrorbits.daemon import CONTROL_RELOAD
from tests.daemon import (
    BIN,
    DaemonProcess,
    base_config,
    put_a_txt_on_a_mirror,
    repo_file,
    run_twistd,
)
from tests.servers import RedisServer, free_port, wait_for_port

ROOT = Path(__file__).parents[2]


@pytest.fixture
def daemon(tmp_path: Path, redis_server: RedisServer,
           redis_db: redis.Redis) -> Iterator[DaemonProcess]:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    process = DaemonProcess(workdir=tmp_path / "run",
                            values=base_config(repo, redis_server.address),
                            args=["--no-monitor"])
    process.start()
    yield process
    process.stop()


def test_plugin_is_found_with_its_options() -> None:
    result = run_twistd("mirrorbits", "--help")
    assert result.returncode == 0
    for option in ("--config", "--no-monitor", "--debug", "--repository"):
        assert option in result.stdout


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    result = run_twistd("-n", "--pidfile=", "mirrorbits", "--config", str(tmp_path / "nope.conf"),
                        cwd=tmp_path)
    assert result.returncode != 0
    message = (result.stderr + result.stdout).strip()
    assert "nope.conf" in message
    assert "Traceback" not in message


def test_invalid_config_is_refused_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.conf"
    config.write_text(f"Repository: {tmp_path}\nOutputMode: bogus\n")
    result = run_twistd("-n", "--pidfile=", "mirrorbits", "-c", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert "outputMode can only be set to 'auto', 'json' or 'redirect'" in (
        result.stderr + result.stdout)


def test_mirror_management_through_the_cli(daemon: DaemonProcess, redis_db: redis.Redis) -> None:
    added = daemon.ctl("add", "-http", "http://127.0.0.31:8080/pub", "-rsync",
                       "rsync://127.0.0.31/pub", "-score", "5", "madrid")
    assert added.returncode == 0, added.stderr
    assert "Mirror 'madrid' added successfully" in added.stdout
    assert "Country:   Spain" in added.stdout
    record = redis_db.hgetall("MIRROR_1")
    assert record["name"] == "madrid"
    assert record["http"] == "http://127.0.0.31:8080/pub/"
    assert record["rsync"] == "rsync://127.0.0.31/pub/"
    assert record["score"] == "5"
    assert record["enabled"] == "0"
    assert record["httpsUp"] == "0"
    assert record["latitude"] == "40.4168"
    assert record["countryCodes"] == "ES"
    assert record["asnum"] == "65101"
    assert redis_db.hgetall("MIRRORS") == {"1": "madrid"}
    assert redis_db.get("LAST_MID") == "1"
    assert redis_db.get("MIRRORBITS_DB_VERSION") == "2"
    entry = json.loads(redis_db.lrange("MIRRORLOGS_1", 0, -1)[0])
    assert list(entry) == ["Type", "MirrorID", "Timestamp"]
    assert entry["Type"] == 2 and entry["MirrorID"] == 1

    enabled = daemon.ctl("enable", "madrid")
    assert enabled.returncode == 0 and "enabled successfully" in enabled.stdout
    assert redis_db.hget("MIRROR_1", "enabled") == "1"

    listed = daemon.ctl("list")
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[1].startswith("madrid ")

    shown = daemon.ctl("show", "madrid")
    assert "HttpURL: http://127.0.0.31:8080/pub/" in shown.stdout

    taken = daemon.ctl("add", "-http", "http://127.0.0.32/", "madrid")
    assert taken.returncode != 0 and "already exists" in taken.stderr

    refused = daemon.ctl("list", password="wrong")
    assert refused.returncode != 0 and "Password refused" in refused.stderr

    removed = daemon.ctl("remove", "-f", "madrid")
    assert removed.returncode == 0
    assert redis_db.exists("MIRROR_1") == 0


def test_reload_keeps_running_config_on_error(daemon: DaemonProcess) -> None:
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good + "WeightDistributionRange: 0\n")
    daemon.signal(signal.SIGHUP)
    # one line saying the file was refused and the running configuration kept, and why
    daemon.wait_log("SIGHUP Received: Reload refused, the daemon keeps its running "
                    "configuration: WeightDistributionRange must be > 0")
    assert daemon.ctl("list").returncode == 0

    failed = daemon.ctl("reload")
    assert failed.returncode != 0
    assert "WeightDistributionRange must be > 0" in failed.stderr
    daemon.wait_log(f"{CONTROL_RELOAD}: Reload refused, the daemon keeps its running "
                    "configuration: WeightDistributionRange", timeout=30)
    assert "Traceback" not in daemon.log()  # an operator's mistake, not a crash

    daemon.config_path.unlink()
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("could not be read")
    assert daemon.process is not None and daemon.process.poll() is None

    daemon.config_path.write_text(good.replace("RPCPassword: test-rpc", "RPCPassword: new-one"))
    assert daemon.ctl("reload").returncode == 0
    assert daemon.ctl("list").returncode != 0
    assert daemon.ctl("list", password="new-one").returncode == 0


def test_redirect_and_counted_download_survive_sigterm(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    process = DaemonProcess(workdir=tmp_path / "run",
                            values=base_config(repo, redis_server.address), args=[])
    process.start()
    try:
        wait_until(lambda: redis_db.sismember("FILES", "/a.txt"))
        put_a_txt_on_a_mirror(process, redis_db)
        host, port = process.http

        def location() -> str | None:
            request = urllib.request.Request(
                f"http://{host}:{port}/a.txt", headers={"X-Forwarded-For": "100.96.2.10"})
            opener = urllib.request.build_opener(NoRedirect())
            try:
                opener.open(request, timeout=5)
            except urllib.error.HTTPError as err:
                return err.headers.get("Location") if err.code == 302 else None
            return None

        wait_until(lambda: location() == "http://127.0.0.31/a.txt")
    finally:
        assert process.stop() in (0, -signal.SIGTERM)  # twistd re-raises SIGTERM after a clean stop
    day_keys = [k for k in redis_db.keys("STATS_FILE_*") if k.count("_") == 4]
    assert day_keys, "download not flushed at stop"
    assert redis_db.hget("STATS_FILE", "/a.txt") is not None
    assert int(redis_db.hget("STATS_MIRROR", "1") or 0) >= 1
    assert "Server stopped" in process.log() or "Main loop terminated" in process.log()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def wait_until(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_tac_file_runs_the_same_service(tmp_path: Path, redis_server: RedisServer) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"x", 1687249800)
    values = base_config(repo, redis_server.address)
    config = tmp_path / "mirrorbits.conf"
    config.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    process = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", "-y", str(ROOT / "mirrorbits.tac")],
        cwd=tmp_path, env={"MIRRORBITS_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        host, _, port = values["ListenAddress"].rpartition(":")
        wait_for_port(host, int(port), timeout=20)
        with pytest.raises(urllib.error.HTTPError) as answer:
            # the port accepts before the reactor runs: the answer comes once it does
            urllib.request.urlopen(f"http://{host}:{port}/missing", timeout=30)
        assert answer.value.code == 404
    finally:
        process.terminate()
        process.wait(20)


def test_wheel_ships_the_plugin(tmp_path: Path) -> None:
    """``pip install .`` puts the plugin where twistd finds it."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    assert (target / "twisted" / "plugins" / "mirrorbits_plugin.py").exists()
    assert not (target / "twisted" / "plugins" / "__init__.py").exists()
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from twisted.plugin import getPlugins;"
        "from twisted.application.service import IServiceMaker;"
        "import twisted.plugins;"
        "print([p.tapname for p in getPlugins(IServiceMaker, twisted.plugins)])"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(target)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert "'mirrorbits'" in result.stdout, result.stderr
    # ... and a mirrorbits-ctl that runs (its entry point names a module that exists).
    ctl = subprocess.run([str(target / "bin" / "mirrorbits-ctl"), "help"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert ctl.returncode == 0, ctl.stderr
    assert ctl.stdout.startswith("Usage: mirrorbits-ctl [OPTIONS] COMMAND"), ctl.stdout


def test_daemon_starts_while_redis_is_down_and_serves_fallbacks(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"x", 1687249800)
    redis_port = free_port()
    values = base_config(repo, f"127.0.0.1:{redis_port}")
    process = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"],
                            raw="Fallbacks:\n    - URL: http://fallback.example.org/\n"
                                "      CountryCode: fr\n      ContinentCode: eu\n")
    process.start()
    server = RedisServer(workdir=tmp_path / "redis", port=redis_port)
    try:
        host, port = process.http
        opener = urllib.request.build_opener(NoRedirect())
        with pytest.raises(urllib.error.HTTPError) as answer:
            opener.open(f"http://{host}:{port}/a.txt", timeout=5)
        assert answer.value.code == 302
        assert answer.value.headers["Location"] == "http://fallback.example.org/a.txt"
        process.wait_log("Database is down")
        server.start()
        process.wait_log("Connected to redis master", timeout=20)
    finally:
        process.stop()
        server.stop()


def test_refresh_indexes_new_files_and_rehash_recomputes(
    daemon: DaemonProcess, redis_db: redis.Redis
) -> None:
    repo = Path(daemon.values["Repository"])
    repo_file(repo, "/new/b.bin", b"", 1687249800)
    result = daemon.ctl("refresh")
    assert result.returncode == 0, result.stderr
    assert "Refreshing the local repository... done" in result.stdout
    assert redis_db.smembers("FILES") == {"/a.txt", "/new/b.bin"}
    assert redis_db.hget("FILE_/new/b.bin", "sha256") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    redis_db.hset("FILE_/new/b.bin", "sha256", "forged")
    assert daemon.ctl("refresh").returncode == 0
    assert redis_db.hget("FILE_/new/b.bin", "sha256") == "forged"
    assert daemon.ctl("refresh", "-rehash").returncode == 0
    assert redis_db.hget("FILE_/new/b.bin", "sha256").startswith("e3b0c442")


def test_refresh_of_a_vanished_repository_is_one_line_and_keeps_the_index(
    daemon: DaemonProcess, redis_db: redis.Redis
) -> None:
    """The repository's mount gone (or a reload naming a directory that does not exist): the
    refresh used to log a traceback ("control command RefreshRepository failed")."""
    assert daemon.ctl("refresh").returncode == 0
    repo = Path(daemon.values["Repository"])
    repo.rename(repo.with_name("moved"))
    try:
        result = daemon.ctl("refresh")
        assert result.returncode == 1
        assert result.stderr.splitlines()[-1] == f"{repo}: No such file or directory"
        daemon.wait_log(f"Control command RefreshRepository failed: {repo}: No such file")
        assert "Traceback" not in daemon.log(), daemon.log()
        assert redis_db.smembers("FILES") == {"/a.txt"}  # the index is kept
    finally:
        repo.with_name("moved").rename(repo)
    assert daemon.ctl("refresh").returncode == 0


def test_reload_moves_to_another_redis(tmp_path: Path, redis_server: RedisServer,
                                       redis_db: redis.Redis) -> None:
    other = RedisServer(workdir=tmp_path / "other-redis")
    other.start()
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"x", 1687249800)
    process = DaemonProcess(workdir=tmp_path / "run", args=["--no-monitor"],
                            values=base_config(repo, redis_server.address))
    process.start()
    try:
        process.values["RedisAddress"] = other.address
        process.write_config()
        assert process.ctl("reload").returncode == 0
        process.wait_log(f"Connected to redis master {other.address}")
        added = process.ctl("add", "-http", "http://127.0.0.31/", "moved")
        assert added.returncode == 0, added.stderr
        moved = redis.Redis(host=other.host, port=other.port, decode_responses=True)
        assert moved.hget("MIRRORS", "1") == "moved"
        assert redis_db.hget("MIRRORS", "1") is None
        moved.close()
    finally:
        process.stop()
        other.stop()


def test_monitoring_daemons_announce_themselves_and_see_their_peers(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    """Cluster (§15.1): ``HELLO<db> <host>-NNNNN`` every second, peers logged as they join."""
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    listener = redis_db.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("_mirrorbits_cluster")
    monitor = DaemonProcess(workdir=tmp_path / "monitor",
                            values=base_config(repo, redis_server.address), args=[])
    quiet = DaemonProcess(workdir=tmp_path / "quiet",
                          values=base_config(repo, redis_server.address), args=["--no-monitor"])
    monitor.start()
    quiet.start()
    try:
        announced: set[str] = set()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # bounded: about four announces
            redis_db.publish("_mirrorbits_cluster", "HELLO0 zz-peer-00001")
            redis_db.publish("_mirrorbits_cluster", "HELLO7 other-db-00002")
            message = listener.get_message(timeout=0.5)
            if message is not None:
                announced.add(str(message["data"]))
        ours = {m for m in announced if "peer" not in m and "other-db" not in m}
        assert len(ours) == 1, announced  # the --no-monitor node does not join
        node = ours.pop()
        assert re.fullmatch(r"HELLO0 .+-\d{5}", node), node
        wait_until(lambda: "-> Node zz-peer-00001 joined the cluster" in monitor.log())
        assert "other-db" not in monitor.log()
        assert "joined the cluster" not in quiet.log()
    finally:
        listener.close()
        monitor.stop()
        quiet.stop()


@pytest.mark.parametrize("how", ["SIGHUP", "mirrorbits-ctl reload"])
def test_repository_option_survives_a_reload(tmp_path: Path, redis_server: RedisServer,
                                             redis_db: redis.Redis, how: str) -> None:
    """``--repository D`` overrides the file's ``Repository`` after a reload too."""
    in_file = tmp_path / "in-file"
    repo_file(in_file, "/from-file.txt", b"file\n", 1687249800)
    given = tmp_path / "given"
    repo_file(given, "/given.txt", b"given\n", 1687249800)
    process = DaemonProcess(workdir=tmp_path / "run", values=base_config(in_file,
                            redis_server.address), args=["--no-monitor", "--repository",
                                                         str(given)])
    process.start()
    try:
        assert process.ctl("refresh").returncode == 0
        assert redis_db.smembers("FILES") == {"/given.txt"}
        if how == "SIGHUP":
            process.signal(signal.SIGHUP)
            process.wait_log("SIGHUP Received: Reloading configuration...")
        else:
            assert process.ctl("reload").returncode == 0
        repo_file(given, "/later.txt", b"later\n", 1687249800)
        result = process.ctl("refresh")
        assert result.returncode == 0, result.stderr
        assert redis_db.smembers("FILES") == {"/given.txt", "/later.txt"}
    finally:
        process.stop()


def test_repository_option_stands_for_a_file_without_repository(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    """walked: ``--config F --repository D`` with no ``Repository`` in F was refused at start
    ("not configured ... not set in F") although the option replaces the file's."""
    given = tmp_path / "given"
    repo_file(given, "/given.txt", b"given\n", 1687249800)
    values = base_config(given, redis_server.address)
    del values["Repository"]
    process = DaemonProcess(workdir=tmp_path / "run", values=values,
                            args=["--no-monitor", "--repository", str(given)])
    process.start()
    try:
        assert process.ctl("refresh").returncode == 0
        assert redis_db.smembers("FILES") == {"/given.txt"}
        assert process.ctl("reload").returncode == 0
    finally:
        process.stop()
    assert "not configured" not in process.log()


def test_first_request_after_start_is_answered_from_the_filled_cache(
    tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    mod_time = "2023-06-20 08:30:00 +0000 UTC"
    redis_db.set("MIRRORBITS_DB_VERSION", "2")
    redis_db.hset("MIRRORS", "1", "one")
    redis_db.hset("MIRROR_1", mapping={"ID": "1", "name": "one", "http": "http://127.0.0.31/",
                                       "enabled": "1", "httpUp": "1", "httpsUp": "1"})
    redis_db.sadd("FILES", "/a.txt")
    redis_db.hset("FILE_/a.txt", mapping={"size": "6", "modTime": mod_time})
    redis_db.sadd("FILEMIRRORS_/a.txt", "1")
    redis_db.hset("FILEINFO_1_/a.txt", mapping={"size": "6", "modTime": mod_time})
    process = DaemonProcess(workdir=tmp_path / "run",
                            values=base_config(repo, redis_server.address),
                            args=["--no-monitor"])
    process.start()
    try:
        process.wait_log("Cache filled with 1 files")
        assert "(1 selections ready)" in process.log()
        redis_db.config_resetstat()
        host, port = process.http
        request = urllib.request.Request(f"http://{host}:{port}/a.txt",
                                         headers={"X-Forwarded-For": "100.96.2.10"})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.build_opener(NoRedirect()).open(request, timeout=5)
        assert answer.value.code == 302
        assert answer.value.headers["Location"] == "http://127.0.0.31/a.txt"
        reads = {name for name in redis_db.info("commandstats")
                 if name in ("cmdstat_hmget", "cmdstat_smembers", "cmdstat_eval",
                             "cmdstat_hgetall")}
        assert reads == set()  # nothing read from Redis for it
    finally:
        process.stop()
