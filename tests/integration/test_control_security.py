"""The control channel under attack, against a real daemon (twistd) and redis-server.

Wrong passwords are counted per source address: after a few, the source is refused for a
growing time, while the right password from another source still works. Connections come
from several loopback addresses (127.0.0.x), each on its own socket, like separate hosts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mirrorbits.control.throttle import FREE_FAILURES
from tests.daemon import DaemonProcess, base_config, repo_file
from tests.integration.amp_wire import call, error_code
from tests.servers import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "right-password"
ATTACKS = 20


@pytest.fixture
def daemon(tmp_path: Path, redis_server: RedisServer,
           redis_db: redis.Redis) -> Iterator[DaemonProcess]:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    values = base_config(repo, redis_server.address, RPCPassword=PASSWORD)
    process = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    process.start()
    yield process
    process.stop()


def test_wrong_passwords_in_a_row_are_refused_not_checked(daemon: DaemonProcess) -> None:
    codes = []
    started = time.monotonic()
    for number in range(ATTACKS):
        codes.append(error_code(call(daemon.rpc, "Ping", source="127.0.0.2",
                                     password=f"guess-{number}")))
    elapsed = time.monotonic() - started
    # The first wrong passwords are checked (and refused); the next one blocks the source.
    assert codes[:FREE_FAILURES + 1] == ["ACCESS_DENIED"] * (FREE_FAILURES + 1)
    assert codes[FREE_FAILURES + 1:] == ["TOO_MANY_FAILURES"] * (ATTACKS - FREE_FAILURES - 1), (
        codes, elapsed)
    # Even the right password is not looked at while the source is refused...
    refused = call(daemon.rpc, "Ping", source="127.0.0.2", password=PASSWORD)
    assert error_code(refused) == "TOO_MANY_FAILURES"
    assert refused[b"_error_description"].startswith(
        b"too many wrong passwords from 127.0.0.2: try again in ")
    # ... while another source is served as usual, by the real client.
    assert error_code(call(daemon.rpc, "Ping", source="127.0.0.3", password=PASSWORD)) == ""
    listing = daemon.ctl("list")
    assert listing.returncode == 0, listing.stderr
    daemon.wait_log("Control: wrong password from 127.0.0.2, refused for 1 s")
    assert "guess-" not in daemon.log()
    # The block ends: the right password clears the count.
    time.sleep(1.1)
    assert error_code(call(daemon.rpc, "Ping", source="127.0.0.2", password=PASSWORD)) == ""
    assert error_code(call(daemon.rpc, "Ping", source="127.0.0.2", password="again")) \
        == "ACCESS_DENIED"


def test_the_block_grows_and_the_client_says_why(daemon: DaemonProcess) -> None:
    for number in range(FREE_FAILURES + 1):
        call(daemon.rpc, "Ping", password=f"guess-{number}")
    for block in (1, 2):  # a wrong password after each block ends doubles the next one
        time.sleep(block + 0.1)
        assert error_code(call(daemon.rpc, "Ping", password="guess")) == "ACCESS_DENIED"
    daemon.wait_log("Control: wrong password from 127.0.0.1, refused for 4 s")
    refused = daemon.ctl("list")  # the right password, from the blocked source
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        "too many wrong passwords from 127.0.0.1: try again in "), refused.stderr
