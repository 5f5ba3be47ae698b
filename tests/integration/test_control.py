"""The control channel end to end: a real AMP server over a real Redis, the CLI as a process.

The daemon side runs in this process (``ControlBackend`` over ``MirrorStore`` on the
session's redis-server, GeoIP from ``tests/fixtures/geo``); every ``mirrorbits-ctl`` call is a
separate Python process, so its stdout, stderr and exit code are exactly what a user sees.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
import redis
from twisted.internet import reactor
from twisted.internet.defer import maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols import amp

from mirrorbits.config import ConfigError
from mirrorbits.control import commands as c
from mirrorbits.control.server import ControlBackend, ControlLocator, control_factory
from mirrorbits.geo import GeoIP, MirrorLocation, locate_mirror
from mirrorbits.model import Mirror
from mirrorbits.store import keys
from mirrorbits.store.mirrors import MirrorStore
from mirrorbits.store.records import mirror_to_fields
from mirrorbits.store.redis import RedisService
from tests.integration.store_support import started_service, within
from tests.servers import RedisServer, env_without_proxies, free_port
from tests.terminal import run_on_terminal

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GEO = ROOT / "tests" / "fixtures" / "geo"
PASSWORD = "secret"
DATE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC"
MADRID_ADDED = (
    "Mirror location:\nLatitude:  40.4168\nLongitude: -3.7038\nContinent: EU\n"
    "Country:   Spain\nASN:       Madrid Mirror Net (65101)\n\n"
    "Mirror 'madrid' added successfully\nEnable this mirror using\n"
    "  $ mirrorbits-ctl -h 127.0.0.1 -p {port} enable madrid\n"
)


@attrs.define
class Rig:
    """The in-process daemon side."""

    port: int
    redis: RedisService
    store: MirrorStore
    listening: IListeningPort
    factory: Any
    reloads: list[str] = attrs.field(factory=list)
    fail_locate: bool = False
    reload_warnings: list[str] = attrs.field(factory=list)
    reload_error: ConfigError | None = None


@pytest_twisted.async_yield_fixture
async def rig(redis_db: redis.Redis, redis_server: RedisServer) -> AsyncIterator[Rig]:
    service = await started_service(redis_server)
    store = MirrorStore(service, reactor)
    geo = GeoIP(str(GEO), reactor)
    geo.load()
    state: dict[str, Any] = {}

    async def locate(url: str) -> MirrorLocation:
        if state["rig"].fail_locate:
            raise RuntimeError("GeoIP exploded")
        return locate_mirror(geo, url)

    async def reload() -> list[str]:
        state["rig"].reloads.append("reload")
        if state["rig"].reload_error is not None:
            raise state["rig"].reload_error
        return list(state["rig"].reload_warnings)

    backend = ControlBackend(
        mirrors=store,
        locate=locate,
        password=lambda: PASSWORD,
        reload=reload,
        version=lambda: {"Version": "v9.9.9", "Build": "test", "PythonVersion": "3.11",
                         "OperatingSystem": "linux", "Architecture": "x86_64"},
    )
    factory = control_factory(backend, reactor)
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    port: int = listening.getHost().port  # type: ignore[attr-defined]
    state["rig"] = Rig(port, service, store, listening, factory)
    try:
        yield state["rig"]
    finally:
        await within(maybeDeferred(listening.stopListening))
        await within(service.stopService())
        geo.close()


async def ctl(
    target: Rig | str,
    *args: str,
    password: str | None = PASSWORD,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
) -> tuple[str, str, int]:
    """Run ``mirrorbits-ctl`` against the rig (or ``-h target``); stdout, stderr, exit code."""
    address = ["-h", "127.0.0.1", "-p", str(target.port)] if isinstance(target, Rig) else [
        "-h", target]
    secret = ["-P", password] if password is not None else []
    environ = env_without_proxies()
    environ["PYTHONIOENCODING"] = "utf-8"
    environ.update(env or {})
    out, err, code = await within(
        getProcessOutputAndValue(
            sys.executable,
            ["-m", "mirrorbits.ctl", *address, *secret, *args],
            env=environ,
            path=str(ROOT),
            stdinBytes=stdin,
        ),
        60,
    )
    return out.decode("utf-8"), err.decode("utf-8"), code


async def add_madrid(rig: Rig) -> None:
    out, err, code = await ctl(
        rig, "add", "-http", "http://127.0.0.31:8080/", "-rsync", "rsync://127.0.0.1:8931/madrid",
        "-sponsor-name", "Madrid Sponsor S.L.", "-score", "-5", "-comment", "first mirror",
        "madrid",
    )
    assert (out, err, code) == (MADRID_ADDED.format(port=rig.port), "", 0)


@pytest_twisted.ensureDeferred
async def test_add_with_port_show_list_logs(rig: Rig, redis_db: redis.Redis) -> None:
    await add_madrid(rig)
    assert redis_db.hgetall(keys.MIRRORS) == {"1": "madrid"}
    stored = redis_db.hgetall(keys.mirror(1))
    assert stored["http"] == "http://127.0.0.31:8080/"
    assert stored["rsync"] == "rsync://127.0.0.1:8931/madrid/"
    assert (stored["latitude"], stored["longitude"]) == ("40.4168", "-3.7038")
    assert (stored["countryCodes"], stored["continentCode"], stored["asnum"]) == ("ES", "EU",
                                                                                  "65101")
    assert (stored["enabled"], stored["httpsUp"], stored["score"]) == ("0", "0", "-5")

    out, err, code = await ctl(rig, "show", "MAD")
    assert (err, code) == ("", 0)
    assert out.startswith("Name: madrid\nHttpURL: http://127.0.0.31:8080/\n")
    assert 'FtpURL: ""\nSponsorName: Madrid Sponsor S.L.\n' in out
    assert out.endswith("ASNum: 65101\nEnabled: false\nAllowRedirects: null\n\n"
                        "Comment:\nfirst mirror\n")

    out, err, code = await ctl(rig, "list", "-score", "-http", "-location")
    assert (out, err, code) == (
        "Identifier \tSCORE\tHTTP \t\t\tLOCATION \tSTATE\t\tSINCE\n"
        "madrid \t\t-5 \thttp://127.0.0.31:8080/ ES (EU) \tdisabled \t"
        "(never)\n",
        "",
        0,
    )

    out, err, code = await ctl(rig, "logs", "madrid")
    assert (err, code) == ("", 0)
    assert re.fullmatch(f"Printing logs for madrid:\n{DATE}: Mirror added\n", out)


@pytest_twisted.ensureDeferred
async def test_duplicate_name_and_unlocatable_mirror(rig: Rig, redis_db: redis.Redis) -> None:
    await add_madrid(rig)
    out, err, code = await ctl(rig, "add", "-http", "127.0.0.32/", "madrid")
    assert (out, err, code) == ("", "Mirror madrid already exists!\n", 1)
    assert redis_db.hgetall(keys.MIRRORS) == {"1": "madrid"}

    out, err, code = await ctl(rig, "add", "-http", "https://127.0.0.99/", "nowhere")
    assert (err, code) == ("", 0)
    assert out == (
        "Warning: unable to guess the geographic location of this mirror\n\n"
        "Mirror 'nowhere' added successfully\nEnable this mirror using\n"
        f"  $ mirrorbits-ctl -h 127.0.0.1 -p {rig.port} enable nowhere\n"
    )
    assert redis_db.hget(keys.mirror(2), "httpUp") == "0"


@pytest_twisted.ensureDeferred
async def test_scan_urls_with_another_scheme_are_refused(rig: Rig, redis_db: redis.Redis,
                                                        tmp_path: Path) -> None:
    """rsync's own ``host::module`` is not a URL: refused at once, with the URL to write,
    instead of a mirror whose every scan fails (``does not start with rsync://``)."""
    out, err, code = await ctl(rig, "add", "-http", "http://127.0.0.31:8080/", "-rsync",
                               "127.0.0.31::pub", "madrid")
    assert (out, err, code) == ("", "The rsync URL must start with rsync:// (or rsyncs://), "
                                "not '127.0.0.31::pub': write it rsync://127.0.0.31/pub\n", 1)
    out, err, code = await ctl(rig, "add", "-http", "http://127.0.0.31:8080/", "-ftp",
                               "http://127.0.0.31/pub/", "madrid")
    assert (out, err, code) == (
        "", "The FTP URL must start with ftp://, not 'http://127.0.0.31/pub/'\n", 1)
    assert redis_db.hgetall(keys.MIRRORS) == {}

    # The daemon refuses them too, whatever client sends them.
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", rig.port)
    client = await within(connectProtocol(endpoint, amp.AMP()))
    try:
        mirror = c.mirror_to_json(Mirror(name="madrid", http_url="http://127.0.0.31:8080/",
                                         rsync_url="rsync:///pub/"))
        with pytest.raises(c.InvalidArgument, match="Can't parse rsync URL 'rsync:///pub/'"):
            await within(client.callRemote(c.AddMirror, password=PASSWORD, mirror=mirror))
    finally:
        client.transport.loseConnection()
    assert redis_db.hgetall(keys.MIRRORS) == {}

    await add_madrid(rig)
    editor = write_editor(
        tmp_path, "text = open(path).read().replace('FtpURL: \"\"', 'FtpURL: 127.0.0.31/pub')\n"
                  "open(path, 'w').write(text)")
    out, err, code = await ctl(rig, "edit", "madrid", env={"EDITOR": editor})
    assert out == ("The FTP URL must start with ftp://, not '127.0.0.31/pub'\n"
                   "Retry? [Y/n]\n")
    assert (err, code) == ("Aborted\n", 1)
    assert redis_db.hget(keys.mirror(1), "ftp") == ""


@pytest_twisted.ensureDeferred
async def test_exact_name_wins_over_longer_names(rig: Rig) -> None:
    for name, ip in (("mirror2", "127.0.0.33"), ("mirror", "127.0.0.32")):
        _, err, code = await ctl(rig, "add", "-http", f"http://{ip}/", name)
        assert (err, code) == ("", 0)
    out, err, code = await ctl(rig, "show", "mirror")
    assert out.startswith("Name: mirror\nHttpURL: http://127.0.0.32/\n") and code == 0
    out, err, code = await ctl(rig, "show", "irr")
    assert (out, err, code) == ("", "Multiple match:\n  mirror\n  mirror2\n", 1)
    out, err, code = await ctl(rig, "show", "lima")
    assert (out, err, code) == ("", "No match for 'lima'\n", 1)


def write_editor(tmp_path: Path, body: str) -> str:
    """An executable "editor" that rewrites the file it is given with ``body``."""
    script = tmp_path / "editor.py"
    script.write_text(f"#!{sys.executable}\nimport sys\npath = sys.argv[1]\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest_twisted.ensureDeferred
async def test_edit_through_an_editor(rig: Rig, redis_db: redis.Redis, tmp_path: Path) -> None:
    await add_madrid(rig)
    editor = write_editor(
        tmp_path,
        "text = open(path).read()\n"
        "text = text.replace('ExcludedCountryCodes: \"\"', 'ExcludedCountryCodes: pt, be')\n"
        "text = text.replace('first mirror', 'edited comment')\n"
        "open(path, 'w').write(text)",
    )
    out, err, code = await ctl(rig, "edit", "madrid", env={"EDITOR": editor})
    assert (out, err, code) == (
        '- ExcludedCountryCodes: ""\n+ ExcludedCountryCodes: PT BE\n\n'
        "Mirror 'madrid' edited successfully\n",
        "",
        0,
    )
    stored = redis_db.hgetall(keys.mirror(1))
    assert (stored["excludedCountryCodes"], stored["comment"]) == ("PT BE", "edited comment")
    assert redis_db.llen(keys.mirror_logs(1)) == 2

    out, err, code = await ctl(rig, "edit", "madrid", env={"EDITOR": "true"})
    assert (out, err, code) == (
        "Aborted - settings are unmodified, so there is nothing to change.\n", "", 0)


@pytest_twisted.ensureDeferred
async def test_edit_with_broken_yaml_and_no_answer(rig: Rig, tmp_path: Path) -> None:
    await add_madrid(rig)
    editor = write_editor(tmp_path, "open(path, 'w').write('Score: [unclosed\\n')")
    out, err, code = await ctl(rig, "edit", "madrid", env={"EDITOR": editor})
    assert out.startswith("yaml: line 2:")
    assert out.endswith("\nRetry? [Y/n]\n")
    assert (err, code) == ("Aborted\n", 1)
    out, _, _ = await ctl(rig, "show", "madrid")
    assert "Score: -5\n" in out


@pytest_twisted.ensureDeferred
async def test_enable_disable_and_their_logs(rig: Rig, redis_db: redis.Redis) -> None:
    await add_madrid(rig)
    assert await ctl(rig, "enable", "madrid") == ("Mirror 'madrid' enabled successfully\n", "",
                                                  0)
    assert redis_db.hget(keys.mirror(1), "enabled") == "1"
    assert await ctl(rig, "disable", "madrid") == ("Mirror 'madrid' disabled successfully\n",
                                                   "", 0)
    assert redis_db.hget(keys.mirror(1), "enabled") == "0"
    out, _, _ = await ctl(rig, "logs", "-l", "2", "madrid")
    assert re.fullmatch(
        f"Printing logs for madrid:\n{DATE}: Mirror enabled\n{DATE}: Mirror disabled\n", out
    )


@pytest_twisted.ensureDeferred
async def test_remove_asks_and_empty_answer_means_no(rig: Rig, redis_db: redis.Redis) -> None:
    await add_madrid(rig)
    out, err, code = await ctl(rig, "remove", "madrid")
    assert (out, err, code) == ("Removing madrid, are you sure? [y/N]\n", "Aborted\n", 1)
    assert redis_db.exists(keys.mirror(1))
    out, err, code = await ctl(rig, "remove", "madrid", stdin=b"y\n")
    assert (out, err, code) == (
        "Removing madrid, are you sure? [y/N]Mirror 'madrid' removed successfully\n", "", 0)
    assert not redis_db.exists(keys.mirror(1)) and redis_db.hgetall(keys.MIRRORS) == {}


@pytest_twisted.ensureDeferred
async def test_remove_forced(rig: Rig, redis_db: redis.Redis) -> None:
    await add_madrid(rig)
    assert await ctl(rig, "remove", "-f", "madrid") == (
        "Mirror 'madrid' removed successfully\n", "", 0)
    assert not redis_db.exists(keys.mirror(1), keys.mirror_logs(1))


@pytest_twisted.ensureDeferred
async def test_passwords(rig: Rig) -> None:
    assert await ctl(rig, "list", password="wrong") == ("", "Password refused\n", 1)
    assert await ctl(rig, "list", password=None) == (
        "", "Please set the server password with the -P option.\n", 1)


@pytest_twisted.ensureDeferred
async def test_a_daemon_without_its_redis_says_where_to_look(rig: Rig) -> None:
    """It said only "database not ready", which does not say that Redis is the problem."""
    await within(rig.redis.stopService())
    try:
        assert await ctl(rig, "list") == (
            "", "database not ready: the daemon cannot use its Redis now (down, unreachable or "
            "not a master); its log says why (\"Database is down: ...\")\n", 1)
    finally:
        rig.redis.startService()
        await within(rig.redis.whenReady())


@pytest_twisted.ensureDeferred
async def test_no_daemon_listening() -> None:
    port = free_port()
    out, err, code = await ctl("127.0.0.1", "-p", str(port), "list")
    assert (out, code) == ("", 1)
    assert err == f"rpc: cannot connect to the daemon at 127.0.0.1:{port}: connection refused\n"


@pytest_twisted.ensureDeferred
async def test_geoupdate(rig: Rig, redis_db: redis.Redis) -> None:
    await add_madrid(rig)
    redis_db.hset(keys.mirror(1), mapping={"latitude": "1", "countryCodes": "FR BE"})
    out, err, code = await ctl(rig, "geoupdate", "-f", "madrid")
    assert (out, err, code) == (
        "- Latitude: 1\n+ Latitude: 40.4168\n- CountryCodes: FR BE\n+ CountryCodes: ES\n"
        "Mirror 'madrid' updated successfully\n",
        "",
        0,
    )
    assert redis_db.hget(keys.mirror(1), "countryCodes") == "ES"
    assert await ctl(rig, "geoupdate", "madrid") == (
        "Geolocation is up to date, there is nothing to change.\n", "", 0)


@pytest_twisted.ensureDeferred
async def test_geoupdate_all(rig: Rig, redis_db: redis.Redis) -> None:
    """After a GeoIP update, for a timer: coordinates that moved are saved, a change of
    country (what ``CountryOnly`` and the users follow) is left to a person, exit 33."""
    await add_madrid(rig)
    added = await ctl(rig, "add", "-http", "http://127.0.0.32/", "valencia")
    assert added[2] == 0, added
    await ctl(rig, "add", "-http", "http://127.0.0.35/", "warsaw")
    redis_db.hset(keys.mirror(1), mapping={"latitude": "40.5"})  # the point moved
    redis_db.hset(keys.mirror(2), mapping={"countryCodes": "PT"})  # the country changed
    out, err, code = await ctl(rig, "geoupdate", "-all", "-f")
    assert (out, err, code) == (
        "madrid:\n- Latitude: 40.5\n+ Latitude: 40.4168\nMirror 'madrid' updated successfully\n"
        "valencia:\n- CountryCodes: PT\n+ CountryCodes: ES\n"
        "Left unchanged: more than its coordinates would change "
        "(mirrorbits-ctl geoupdate valencia)\n",
        "1 mirror(s) left unchanged: valencia\n", 33)
    assert redis_db.hget(keys.mirror(1), "latitude") == "40.4168"
    assert redis_db.hget(keys.mirror(2), "countryCodes") == "PT"
    # asked for each change without -f: "y" saves it
    assert await ctl(rig, "geoupdate", "-all", stdin=b"y\n") == (
        "valencia:\n- CountryCodes: PT\n+ CountryCodes: ES\nUpdate mirror valencia? [y/N]"
        "Mirror 'valencia' updated successfully\n", "", 0)
    assert redis_db.hget(keys.mirror(2), "countryCodes") == "ES"
    assert await ctl(rig, "geoupdate", "-all", "-f") == ("", "", 0)
    assert (await ctl(rig, "geoupdate"))[2] == 2
    assert (await ctl(rig, "geoupdate", "-all", "madrid"))[2] == 2


@pytest_twisted.ensureDeferred
async def test_version_reload_and_later_commands(rig: Rig) -> None:
    out, err, code = await ctl(rig, "version")
    assert (err, code) == ("", 0)
    assert out.startswith("Client:\n Version:          v")
    assert " Python version:   " in out
    assert out.endswith(
        "\nServer:\n Version:          v9.9.9\n Build:            test\n"
        " Python version:   3.11\n Operating System: linux\n Architecture:     x86_64\n"
    )
    assert await ctl(rig, "RELOAD") == ("", "", 0)
    assert rig.reloads == ["reload"]
    assert await ctl(rig, "refresh") == (
        "Refreshing the local repository... \n", "refresh: not available yet\n", 1)
    assert await ctl(rig, "upgrade") == ("", "upgrade: not available yet\n", 1)


@pytest_twisted.ensureDeferred
async def test_thousands_of_mirrors_are_listed_in_pages(rig: Rig, redis_db: redis.Redis) -> None:
    """Three pages, the last one partial; a comment and custom data larger than an AMP value."""
    count = 1234
    pipe = redis_db.pipeline(transaction=False)
    for mirror_id in range(1, count + 1):
        mirror = Mirror(id=mirror_id, name=f"m{mirror_id:04d}", http_url=f"http://h{mirror_id}/",
                        comment="x" * (100_000 if mirror_id == 7 else 10))
        pipe.hset(keys.mirror(mirror_id), mapping=dict(mirror_to_fields(mirror)))
        pipe.hset(keys.MIRRORS, str(mirror_id), mirror.name)
    pipe.execute()

    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", rig.port)
    client = await within(connectProtocol(endpoint, amp.AMP()))
    try:
        names: list[str] = []
        pages = 0
        offset = 0
        for _ in range(100):
            reply = await within(client.callRemote(c.List, password=PASSWORD, offset=offset,
                                                   limit=c.LIST_PAGE_SIZE))
            pages += 1
            names += [item["name"] for item in reply["mirrors"]]
            if not reply["more"]:
                break
            offset += c.LIST_PAGE_SIZE
        assert reply["total"] == count and pages == 3
        assert names == [f"m{i:04d}" for i in range(1, count + 1)]
        info = await within(client.callRemote(c.MirrorInfo, password=PASSWORD, id=7))
        assert len(info["mirror"]["comment"]) == 100_000
        bigger = dict(info["mirror"], custom_data="y" * 70_000)
        reply = await within(client.callRemote(c.UpdateMirror, password=PASSWORD, mirror=bigger))
        assert reply["diff"] == f"- CustomData: \"\"\n+ CustomData: {'y' * 70_000}\n"
        assert len(redis_db.hget(keys.mirror(7), "customData") or "") == 70_000
    finally:
        client.transport.loseConnection()

    out, err, code = await ctl(rig, "list", "-state=false")
    assert (err, code) == ("", 0)
    assert out.splitlines() == ["Identifier "] + [f"m{i:04d} " for i in range(1, count + 1)]


@pytest_twisted.ensureDeferred
async def test_failures_keep_the_connection(rig: Rig) -> None:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", rig.port)
    client = await within(connectProtocol(endpoint, amp.AMP()))
    try:
        with pytest.raises(c.AccessDenied):
            await within(client.callRemote(c.Ping))  # no password at all
        with pytest.raises(c.MirrorNotFound):
            await within(client.callRemote(c.MirrorInfo, password=PASSWORD, id=42))
        with pytest.raises(c.InvalidArgument, match="invalid mirror id"):
            await within(client.callRemote(c.MirrorInfo, password=PASSWORD, id=0))
        with pytest.raises(c.InvalidArgument, match="The identifier cannot contain a space"):
            await within(client.callRemote(
                c.AddMirror, password=PASSWORD,
                mirror=c.mirror_to_json(Mirror(name="a b", http_url="http://h/"))))
        rig.fail_locate = True
        with pytest.raises(c.ServerError, match="GeoIP exploded"):
            await within(client.callRemote(
                c.AddMirror, password=PASSWORD,
                mirror=c.mirror_to_json(Mirror(name="ab", http_url="http://h/"))))
        with pytest.raises(c.NotAvailable, match="scan: not available yet"):
            await within(client.callRemote(c.ScanMirror, password=PASSWORD, id=1))
        assert await within(client.callRemote(c.Ping, password=PASSWORD)) == {}
    finally:
        client.transport.loseConnection()
    out, err, code = await ctl(rig, "add", "-http", "http://127.0.0.31/", "m")
    assert (out, err, code) == ("", "GeoIP exploded\n", 1)


@pytest_twisted.ensureDeferred
async def test_unix_control_socket(rig: Rig, tmp_path: Path) -> None:
    await add_madrid(rig)
    path = str(tmp_path / "control.sock")
    unix: Any = reactor
    listening = unix.listenUNIX(path, rig.factory, mode=0o600)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        out, err, code = await ctl(f"unix:{path}", "list", "-state=false")
        assert (out, err, code) == ("Identifier \nmadrid \n", "", 0)
    finally:
        await within(maybeDeferred(listening.stopListening))


class _OlderLocator(ControlLocator):
    """The responders of a daemon from before ``GetProgress``."""

    def locateResponder(self, name: bytes) -> Any:
        return None if name == b"GetProgress" else super().locateResponder(name)


@pytest_twisted.ensureDeferred
async def test_terminal_progress_with_a_daemon_that_has_none(rig: Rig) -> None:
    """A new ``mirrorbits-ctl`` on a terminal against an older daemon: no progress, same
    result (the unknown command is answered with an error, the connection stays)."""
    refreshed: list[bool] = []

    async def slow_refresh(rehash: bool) -> None:
        await deferLater(reactor, 1.6, lambda: None)  # three progress polls
        refreshed.append(rehash)

    backend = ControlBackend(mirrors=rig.store, locate=locate_nowhere, password=lambda: PASSWORD,
                             reload=nothing, version=dict, refresh=slow_refresh)
    factory = Factory.forProtocol(lambda: amp.AMP(locator=_OlderLocator(backend)))
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    port = listening.getHost().port  # type: ignore[attr-defined]
    try:
        shown = await deferToThread(run_on_terminal, [
            sys.executable, "-m", "mirrorbits.ctl", "-h", "127.0.0.1", "-p", str(port),
            "-P", PASSWORD, "refresh", "-rehash"], timeout=60)
    finally:
        await within(maybeDeferred(listening.stopListening))
    assert (shown.stderr, shown.returncode) == ("", 0)
    assert shown.screen == b"Refreshing the local repository... done\r\n"
    assert refreshed == [True]


async def locate_nowhere(url: str) -> MirrorLocation:
    raise RuntimeError("not used")


async def nothing() -> list[str]:
    return []


TYPO = ("unknown configuration key 'Repositry'; did you mean 'Repository'? "
        "(line 1 in /etc/mirrorbits.conf)")
ZERO_CHECKS = ("CheckInterval: 0 health-checks every mirror every second; it is a number of "
               "minutes, 1 by default")


@pytest_twisted.ensureDeferred
async def test_reload_prints_the_warnings_and_the_refusal(rig: Rig) -> None:
    rig.reload_warnings = [TYPO, ZERO_CHECKS]
    assert await ctl(rig, "reload") == (
        "", f"warning: {TYPO}\nwarning: {ZERO_CHECKS}\n", 0)
    rig.reload_error = ConfigError("WeightDistributionRange must be > 0, not 0", [TYPO])
    assert await ctl(rig, "reload") == (
        "", f"warning: {TYPO}\nReload refused, the daemon keeps its running configuration: "
            "WeightDistributionRange must be > 0, not 0\n", 1)
    rig.reload_error = ConfigError("Path to local repository not configured", [TYPO] * 5000)
    out, err, code = await ctl(rig, "reload")  # far more than AMP carries in one error
    lines = err.splitlines()
    assert (out, code, len(lines)) == ("", 1, c.MAX_REFUSAL_WARNINGS + 2)
    assert lines[-2:] == [
        "warning: ... and 4980 more in the daemon's log",
        "Reload refused, the daemon keeps its running configuration: Path to local repository "
        "not configured"]
    assert rig.reloads == ["reload"] * 3


class _OlderReload(amp.Command):
    """``Reload`` as clients and daemons before its answer carried warnings declared it."""

    commandName = b"Reload"
    arguments = [(b"password", amp.Unicode(optional=True))]
    response: list[tuple[bytes, amp.Argument]] = []
    errors = c.ERRORS


@pytest_twisted.ensureDeferred
async def test_an_older_client_ignores_the_warnings_of_the_answer(rig: Rig) -> None:
    rig.reload_warnings = [TYPO]
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", rig.port)
    client = await within(connectProtocol(endpoint, amp.AMP()))
    try:
        assert await within(client.callRemote(_OlderReload, password=PASSWORD)) == {}
        rig.reload_error = ConfigError("RedisDB must be >= 0, not -1", [TYPO])
        with pytest.raises(c.ServerError, match="RedisDB must be >= 0, not -1"):
            await within(client.callRemote(_OlderReload, password=PASSWORD))
    finally:
        client.transport.loseConnection()


class _OlderReloadLocator(amp.CommandLocator):
    """A daemon whose ``Reload`` answers nothing."""

    reloads = 0

    @c.Ping.responder
    def ping(self, password: str | None) -> dict[str, Any]:
        return {}

    @_OlderReload.responder
    def reload(self, password: str | None) -> dict[str, Any]:
        _OlderReloadLocator.reloads += 1
        return {}


@pytest_twisted.ensureDeferred
async def test_reload_against_an_older_daemon_is_silent() -> None:
    factory = Factory.forProtocol(lambda: amp.AMP(locator=_OlderReloadLocator()))
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    port = listening.getHost().port  # type: ignore[attr-defined]
    try:
        assert await ctl("127.0.0.1", "-p", str(port), "reload") == ("", "", 0)
    finally:
        await within(maybeDeferred(listening.stopListening))
    assert _OlderReloadLocator.reloads == 1


class _OlderRemoveLocator(amp.CommandLocator):
    """A daemon that does not know ``CheckWritable`` (before 2026-12-05)."""

    removed: list[int] = []

    @c.Ping.responder
    def ping(self, password: str | None) -> dict[str, Any]:
        return {}

    @c.MatchMirror.responder
    def match(self, password: str | None, pattern: str) -> dict[str, Any]:
        return {"mirrors": [[4, "madrid"]]}

    @c.RemoveMirror.responder
    def remove(self, password: str | None, id: int) -> dict[str, Any]:
        _OlderRemoveLocator.removed.append(id)
        return {"name": "madrid"}


@pytest_twisted.ensureDeferred
async def test_a_question_before_a_write_still_works_with_an_older_daemon() -> None:
    factory = Factory.forProtocol(lambda: amp.AMP(locator=_OlderRemoveLocator()))
    listening = reactor.listenTCP(0, factory, interface="127.0.0.1")
    port = listening.getHost().port  # type: ignore[attr-defined]
    try:
        out, err, code = await ctl("127.0.0.1", "-p", str(port), "remove", "madrid",
                                   stdin=b"y\n")
    finally:
        await within(maybeDeferred(listening.stopListening))
    assert (code, err) == (0, ""), out
    assert out.endswith("Mirror 'madrid' removed successfully\n")
    assert _OlderRemoveLocator.removed == [4]
