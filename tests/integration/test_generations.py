# mypy: disable-error-code="untyped-decorator,import-untyped"
"""Repository generations (``GenerationIndexes``, docs/freshness.md) on a real daemon, a real
redis-server and two real HTTP mirrors on loopback: after the origin publishes a new
``dists/stable`` (``Packages`` and ``InRelease``), the mirror that copied the new ``Packages``
but still serves the old ``InRelease`` gets no user for any file of ``dists/stable/`` while
the mirror holding the whole new generation does; with generations off, both get them, as
before, until a reload turns generations on. The mirrors' copies are recorded by the targeted
freshness check, as in production."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path
from typing import Any

import pytest
import redis

from mirrorbits.store import keys
from tests.daemon import DaemonProcess, base_config, record_mirror_files, redirect, repo_file
from tests.integration.test_repository_watch import T0, go_time, wait_until
from tests.mirrorlist_html import parse_tree
from tests.servers import RedisServer, StaticHTTPServer

pytestmark = pytest.mark.integration

INRELEASE = "/dists/stable/InRelease"
PACKAGES = "/dists/stable/main/binary-amd64/Packages"
TRANSLATION = "/dists/stable/main/i18n/Translation-en"  # never changes
DEB = "/pool/main/h/hello_1.0_amd64.deb"  # outside every generation
OLD = {INRELEASE: b"old InRelease", PACKAGES: b"old Packages", TRANSLATION: b"Translation",
       DEB: b"hello deb"}
NEW = {INRELEASE: b"new InRelease, longer", PACKAGES: b"new Packages, longer too"}
T1 = T0 + 3600  # whole seconds: HTTP shows seconds
REASON = f"Not the current generation ({INRELEASE})"


def install(root: Path, path: str, content: bytes) -> None:
    """Written aside, then renamed into place, its time kept (``rsync -t``)."""
    final = root / path.lstrip("/")
    temporary = final.with_name(f".{final.name}.tmp")
    temporary.write_bytes(content)
    os.utime(temporary, (T1, T1))
    os.rename(temporary, final)


def targets(daemon: DaemonProcess, path: str, draws: int = 30) -> set[str]:
    """The mirrors (base URLs) ``draws`` redirects for ``path`` went to."""
    found = set()
    for _ in range(draws):
        status, location = redirect(daemon, path)
        assert status == 302, (path, status)
        found.add(location[: -len(path) + 1])
    return found


def redirected_to(daemon: DaemonProcess, path: str, draws: int) -> set[str] | None:
    """:func:`targets`, or None while some answer is not a redirect yet (a record read again
    after its message is on its way: the daemon still answers from what it had)."""
    try:
        return targets(daemon, path, draws)
    except AssertionError:
        return None


def trace(daemon: DaemonProcess, path: str) -> dict[str, Any]:
    host, port = daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path + "?trace")
        response = connection.getresponse()
        assert response.status == 200
        document: dict[str, Any] = json.loads(response.read())
        return document
    finally:
        connection.close()


def mirrorlist_generation(daemon: DaemonProcess, path: str) -> tuple[str, str] | None:
    """The class and text of the mirror list page's one generation line (None: not shown)."""
    host, port = daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path + "?mirrorlist")
        response = connection.getresponse()
        assert response.status == 200
        page = parse_tree(response.read().decode())
    finally:
        connection.close()
    shown = page.find_all(id="generation")
    assert len(shown) <= 1
    return (shown[0].attrs["class"], " ".join(shown[0].text().split())) if shown else None


def reasons(daemon: DaemonProcess, path: str) -> dict[str, str]:
    return {c["Name"]: c["ExcludeReason"] for c in trace(daemon, path)["Candidates"]}


@pytest.mark.parametrize("generations", [True, False], ids=["on", "off"])
def test_a_mirror_with_new_packages_but_the_old_inrelease_gets_no_user_for_that_tree(
        tmp_path: Path, redis_server: RedisServer, redis_db: redis.Redis,
        generations: bool) -> None:
    repo = tmp_path / "repo"
    roots = {name: tmp_path / name for name in ("partial", "complete", "reverse")}
    servers = {}
    for root in (repo, *roots.values()):
        for path, content in OLD.items():
            repo_file(root, path, content, T0)
    for number, (name, root) in enumerate(roots.items()):
        servers[name] = StaticHTTPServer(root, host=f"127.0.0.{61 + number}")
        servers[name].start()
    partial, complete, reverse = (servers[name].url for name in roots)
    extra = {"GenerationIndexes": '["dists/*/InRelease"]'} if generations else {}
    daemon = DaemonProcess(workdir=tmp_path / "run", values=base_config(
        repo, redis_server.address, ScanInterval="1000", CheckInterval="1000", **extra))
    daemon.start()
    try:
        daemon.wait_log("Watching", timeout=30)
        for number, name in enumerate(servers, 1):
            assert daemon.ctl("add", "-http", servers[name].url, name).returncode == 0
            # as their scan would have found them: the old generation, complete
            record_mirror_files(redis_db, number, {p: len(c) for p, c in OLD.items()},
                                go_time(T0))
            assert daemon.ctl("enable", name).returncode == 0
        wait_until(lambda: len(redirected_to(daemon, TRANSLATION, 10) or ()) == 3, 20)
        for name in servers:  # the scans that enabling starts end before the origin publishes
            daemon.wait_log(f"[{name}] Indexed", timeout=30)

        for path, content in NEW.items():  # the origin publishes a new dists/stable
            install(repo, path, content)
        wait_until(lambda: redirect(daemon, INRELEASE)[0] != 302, 10)
        # No mirror holds the new generation yet: the other files are chosen one by one.
        assert targets(daemon, TRANSLATION) == {partial, complete, reverse}
        if generations:
            outcome = trace(daemon, TRANSLATION)["Generation"]
            assert (outcome["Indexes"], outcome["Applied"], outcome["CurrentMirrors"]) == (
                [INRELEASE], False, 0)
            assert "chosen file by file" in outcome["Text"]
            assert mirrorlist_generation(daemon, TRANSLATION) == (
                "file-by-file", f"Repository generation: {outcome['Text']}.")

        install(roots["partial"], PACKAGES, NEW[PACKAGES])  # its InRelease stays old
        for path, content in NEW.items():
            install(roots["complete"], path, content)
        install(roots["reverse"], INRELEASE, NEW[INRELEASE])  # its Packages stays old
        # the freshness check records what each copied
        for number, path in ((1, PACKAGES), (2, PACKAGES), (2, INRELEASE), (3, INRELEASE)):
            wait_until(lambda number=number, path=path: redis_db.hget(
                keys.file_info(number, path), "size") == str(len(NEW[path])), 30)
        wait_until(lambda: redirected_to(daemon, INRELEASE, 10) == {complete, reverse}, 10)
        assert redis_db.hget(keys.file_info(1, INRELEASE), "size") == str(len(OLD[INRELEASE]))
        assert redis_db.hget(keys.file_info(3, PACKAGES), "size") == str(len(OLD[PACKAGES]))

        assert targets(daemon, DEB, 40) == {partial, complete, reverse}  # outside dists/
        assert targets(daemon, INRELEASE) == {complete, reverse}  # per file already
        if generations:
            assert targets(daemon, PACKAGES) == {complete}
            assert targets(daemon, TRANSLATION) == {complete, reverse}
            assert reasons(daemon, TRANSLATION) == {"complete": "", "reverse": "",
                                                    "partial": REASON}
            outcome = trace(daemon, PACKAGES)["Generation"]
            assert (outcome["Applied"], outcome["CurrentMirrors"]) == (True, 1)
            assert mirrorlist_generation(daemon, PACKAGES) == (
                "applied", f"Repository generation: {outcome['Text']}.")
            assert trace(daemon, DEB)["Generation"] is None
            assert mirrorlist_generation(daemon, DEB) is None

            install(roots["partial"], INRELEASE, NEW[INRELEASE])  # it finishes its sync
            wait_until(lambda: len(redirected_to(daemon, TRANSLATION, 10) or ()) == 3, 30)
            assert targets(daemon, PACKAGES) == {partial, complete}
        else:
            # Today's choice: every mirror whose copy of the file itself matches.
            assert targets(daemon, PACKAGES) == {partial, complete}
            assert targets(daemon, TRANSLATION, 40) == {partial, complete, reverse}
            assert trace(daemon, TRANSLATION)["Generation"] is None
            assert mirrorlist_generation(daemon, TRANSLATION) is None
            # turned on by a reload: the memos follow at once
            daemon.values["GenerationIndexes"] = '["dists/*/InRelease"]'
            daemon.write_config()
            assert daemon.ctl("reload").returncode == 0
            assert targets(daemon, TRANSLATION) == {complete, reverse}
            assert targets(daemon, PACKAGES) == {complete}
        log = daemon.log()
    finally:
        daemon.stop()
        for server in servers.values():
            server.stop()
    assert "Traceback" not in log
