"""A real daemon health-checking real HTTP mirrors on loopback that refuse the checker, not
the users: one behind a WAF (``HEAD`` answered 403, a ranged ``GET`` 206), one rate limiting
it for a while (429 with ``Retry-After``), one rate limiting it for good."""

from __future__ import annotations

import http.server
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import redis

from tests.daemon import DaemonProcess, add_mirrors_holding, base_config, repo_file
from tests.integration.test_health import state_changes
from tests.servers import RedisServer, http_server

pytestmark = pytest.mark.integration

CONTENT = b"hello\n"


class Mirror:
    """What one scripted mirror answers for ``/a.txt`` (nothing else is there): ``head`` to
    ``HEAD``; ``limited`` answers 429 (with ``Retry-After: retry_after``) first; ``seen`` is
    (monotonic time, method) per request for it."""

    def __init__(self, head: int = 200, limited: int = 0, retry_after: str = "") -> None:
        self.head, self.limited, self.retry_after = head, limited, retry_after
        self.seen: list[tuple[float, str]] = []
        self.lock = threading.Lock()


def handler_for(mirror: Mirror) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if body and self.command == "GET":
                self.wfile.write(body)
            self.close_connection = True

        def do_HEAD(self) -> None:
            self.respond()

        def do_GET(self) -> None:
            self.respond()

        def respond(self) -> None:
            if self.path != "/a.txt":  # the scan's index pages, the trace file
                self.answer(404, {"Content-Length": "0"})
                return
            with mirror.lock:
                mirror.seen.append((time.monotonic(), self.command))
                limited = mirror.limited > 0
                mirror.limited -= limited
            if limited:
                headers = {"Content-Length": "0"}
                if mirror.retry_after:
                    headers["Retry-After"] = mirror.retry_after
                self.answer(429, headers)
            elif self.command == "HEAD" and mirror.head != 200:
                self.answer(mirror.head, {"Content-Length": "0"})
            elif self.headers.get("Range") == "bytes=0-0":
                self.answer(206, {"Content-Range": f"bytes 0-0/{len(CONTENT)}",
                                  "Content-Length": "1"}, CONTENT[:1])
            else:
                self.answer(200, {"Content-Length": str(len(CONTENT))}, CONTENT)

    return Handler


def serving(mirror: Mirror, host: str) -> AbstractContextManager[str]:
    return http_server(handler_for(mirror), host)


def wait_for(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_mirrors_refusing_the_checker_stay_in_rotation_until_they_refuse_for_long(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis) -> None:
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", CONTENT, 1687249800)
    guarded = Mirror(head=403)
    limited = Mirror(limited=2, retry_after="2")
    refusing = Mirror(limited=1000, retry_after="1")
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, redis_server.address, CheckInterval="0",
                                              ScanInterval="1000"))
    with serving(guarded, "127.0.0.81") as guarded_url, \
            serving(limited, "127.0.0.82") as limited_url, \
            serving(refusing, "127.0.0.83") as refusing_url:
        daemon.start()
        try:
            add_mirrors_holding(daemon, redis_db, [("guarded", guarded_url),
                                                   ("limited", limited_url),
                                                   ("refusing", refusing_url)],
                                {"/a.txt": len(CONTENT)})
            up_throughout = []

            def settled() -> bool:
                up_throughout.append(redis_db.hget("MIRROR_2", "httpUp"))
                return (redis_db.hget("MIRROR_3", "httpUp") == "0"
                        and len(limited.seen) >= 3 and len(guarded.seen) >= 3)

            wait_for(settled, 30, "the checks did not come")
            listed = daemon.ctl("list", "-down")
            log = daemon.log()
        finally:
            daemon.stop()
    # behind a WAF: up, and asked with GET after the first refused HEAD
    assert redis_db.hget("MIRROR_1", "httpUp") == "1"
    assert [method for _, method in guarded.seen[:3]] == ["HEAD", "GET", "GET"]
    assert "guarded: HEAD answered 403, a ranged GET 206: checked with GET" in log
    # rate limited twice (Retry-After: 2), then answering: never out of rotation
    assert set(up_throughout) == {"1"}
    assert [change for change in state_changes(redis_db, 2) if not change["Up"]] == []
    first, second, third = (when for when, _ in limited.seen[:3])
    assert second - first >= 1.9 and third - second >= 1.9  # not every second: Retry-After
    assert "limited      HTTP  Rate limited! Status: 429" in log
    # rate limited for good: down at the third check in a row, and list -down says why
    reason = "Rate limited (error 429) for 3 checks in a row"
    assert [change for change in state_changes(redis_db, 3) if not change["Up"]] == [
        {"Proto": 1, "Up": False, "Reason": reason}]
    assert len(refusing.seen) >= 3
    assert (listed.returncode, listed.stderr) == (0, "")
    rows = {row.split()[0]: row.split("\t")[-1] for row in listed.stdout.splitlines()[1:]}
    assert rows == {"refusing": reason}
    assert "Traceback" not in log
