"""The in-memory redirect path answers exactly what the general path answers.

Two copies of the redirect resource serve the same data set (mirrors on every continent,
restricted, disabled and down mirrors, outdated copies, a real generated GeoIP database)
through real ``HTTPChannel``s: one with the fast path, one without. With the same random
seed, every response, download-log line and counted download must be identical.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.server import Site

from bench.redirect import dataset
from bench.redirect.inprocess import daemon_site
from mirrorbits.web import plan as plan_module
from mirrorbits.web.downloadlog import DownloadLog

_DATE = re.compile(rb"\r\ndate: [^\r]*", re.IGNORECASE)


def _site(root: Path, plan: dataset.Plan, clock: Clock, seed: int, fast: bool) -> Site:
    site = daemon_site(root, plan, clock)
    resource: Any = site.resource
    config = attrs.evolve(resource.ctx.config(), same_download_interval=0)  # no Redis here
    resource.ctx.config = lambda: config
    resource.fast_redirects = fast
    resource.ctx.rng = random.Random(seed)
    resource.ctx.download_log = DownloadLog(str(root / "logs"), clock, "host", "mirrorbits")
    return site


def _twin_sites(root: Path, plan: dataset.Plan, clock: Clock, seed: int) -> tuple[Site, Site]:
    """The same data behind two sites, with and without the in-memory paths."""
    return (_site(root / "fast", plan, clock, seed, fast=True),
            _site(root / "slow", plan, clock, seed, fast=False))


# Odd file names (each a copy of a file of the data set, in /odd/): every character a URL
# treats specially, non-ASCII, a leading "-", and an escape-like "%41".
ODD_NAMES = ("notes #1 100%.txt", "what?.iso", "a+b c.tar.gz", "gu\u00eda-r\u00e1pida.pdf",
             "\u65e5\u672c/\u65e5\u672c\u8a9e.txt", "semi;colon&a=b.txt", "it's (1).txt",
             "-leading.txt", "%41.txt", "tab\there.txt", "quote\"<>.txt", "caret^`{|}~.txt")


def _target(path: str, index: int = 0) -> str:
    """``path`` as a client writes it in a request: fully or minimally percent-encoded."""
    if index % 2:
        return quote(path, safe="/!$&'()*+,;=:@")  # sub-delimiters left raw
    return quote(path, safe="/")


def _get(path: str, ip: str) -> bytes:
    """A plain GET of ``path`` for the client ``ip``."""
    return f"GET {_target(path)} HTTP/1.1\r\nX-Forwarded-For: {ip}\r\n\r\n".encode()


class _Client:
    """One keep-alive connection to a site; ``get`` returns the raw response bytes."""

    def __init__(self, site: Site) -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
        self.channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4000))
        assert self.channel is not None
        self.channel.makeConnection(self.transport)

    def get(self, raw: bytes, split: bool = False) -> bytes:
        """Send ``raw`` (in two reads when ``split``) and return the answer without Date."""
        self.transport.clear()
        if split:
            self.channel.dataReceived(raw[:10])
            self.channel.dataReceived(raw[10:])
        else:
            self.channel.dataReceived(raw)
        return _DATE.sub(b"", self.transport.value())


def _request(index: int, path: str, ip: str) -> bytes:
    """Requests of every shape the fast path must handle or hand over."""
    method, target, extra = "GET", _target(path, index // 10), ""
    match index % 10:
        case 1:
            method = "HEAD"
        case 2:
            extra = "X-Forwarded-Proto: https\r\n"
        case 3:
            target += "?https=0"
        case 4:
            target += "?https=1"
        case 5:
            extra = "Accept: application/json\r\n"  # JSON: the general path in both
        case 6:
            extra = "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n"
        case 7:
            extra = "Connection: keep-alive\r\nUser-Agent: Mozilla/5.0 (X11)\r\n"
        case 8:
            target += "?sha256"  # a checksum, never a redirect
        case 9:
            target += "?mirrorlist&https=0"  # the page, never a redirect
    return (f"{method} {target} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {ip}\r\n{extra}\r\n"
            .encode())


@pytest.fixture(scope="module")
def plan() -> dataset.Plan:
    """The benchmark's data set, led by copies of its first files under odd names."""
    data = dataset.plan(seed=11, mirrors=40, files=300, networks=300, clients=600)
    odd = tuple(attrs.evolve(entry, path=f"/odd/{name}")
                for entry, name in zip(data.files, ODD_NAMES, strict=False))
    return attrs.evolve(data, files=odd + data.files)


def test_fast_and_general_paths_give_identical_answers(
    plan: dataset.Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    clock.advance(1_750_000_000)
    fast_site, slow_site = _twin_sites(tmp_path, plan, clock, seed=5)
    fast_resource: Any = fast_site.resource
    taken = {"redirect_order": 0, "answer_head": 0}
    original_answer = fast_resource.answer_head

    def answer_head(*args: Any) -> bytes | None:  # the channel's answer without a Request
        body = original_answer(*args)
        taken["answer_head"] += body is not None
        return body

    fast_resource.answer_head = answer_head
    original_order = plan_module.redirect_order

    def redirect_order(*args: Any) -> Any:  # a redirect drawn from the file's memo
        order = original_order(*args)
        taken["redirect_order"] += bool(order)
        return order

    monkeypatch.setattr(plan_module, "redirect_order", redirect_order)
    fast, slow = _Client(fast_site), _Client(slow_site)
    paths = [entry.path for entry in plan.files]
    ips = [*plan.client_ips, "10.255.0.1", "2001:db8::1"]  # two unknown to GeoIP
    for warm in paths:  # the first request of a path reads through the cache
        fast.get(_request(0, warm, ips[0]))
        slow.get(_request(0, warm, ips[0]))
    statuses: dict[bytes, int] = {}
    for index in range(4000):
        raw = _request(index, paths[index % len(paths)], ips[(index * 7) % len(ips)])
        split = index % 3 == 0  # two reads: not for the channel, for twisted.web's parser
        answer = fast.get(raw, split)
        assert answer == slow.get(raw, split), raw
        status = answer.split(b"\r\n", 1)[0]
        statuses[status] = statuses.get(status, 0) + 1
    assert taken["answer_head"] >= 1200  # most answers came from memory...
    assert taken["redirect_order"] >= taken["answer_head"] + 600  # and through twisted.web
    assert statuses[b"HTTP/1.1 200 OK"] >= 800  # checksums, pages and JSON
    assert statuses[b"HTTP/1.1 302 Found"] >= 2400  # ...and were redirects
    fast_ctx: Any = fast_resource.ctx
    slow_ctx: Any = slow_site.resource.ctx  # type: ignore[attr-defined]
    assert fast_ctx.download_log._buffer == slow_ctx.download_log._buffer
    assert fast_ctx.stats._batch == slow_ctx.stats._batch
    assert fast_ctx.rng.getstate() == slow_ctx.rng.getstate()


def test_redirect_headers_are_the_mirror_urls_of_the_data_set(
    plan: dataset.Plan, tmp_path: Path
) -> None:
    clock = Clock()
    client = _Client(_site(tmp_path / "fast", plan, clock, seed=1, fast=True))
    allowed = plan.allowed_locations()
    checked = 0
    odd_checked = 0
    for index, entry in enumerate(plan.files):
        client.get(_request(0, entry.path, plan.client_ips[0]))  # warm
        answer = client.get(_request(0, entry.path, plan.client_ips[index % 50]))
        if not answer.startswith(b"HTTP/1.1 302 "):
            continue
        head = answer.split(b"\r\n\r\n", 1)[0].decode()
        location = re.search(r"(?im)^location: ([^\r]*)\r?$", head)
        assert location is not None and location.group(1) in allowed[entry.path]
        for link in re.findall(r"(?im)^link: <([^>]*)>; rel=duplicate; pri=\d+; geo=\w*\r?$",
                               head):
            assert link in allowed[entry.path]
        checked += 1
        odd_checked += entry.path.startswith("/odd/")
    assert checked >= 250
    assert odd_checked == len(ODD_NAMES)  # each odd name redirected, percent-encoded


def test_unusual_traffic_gets_the_answers_twisted_gives(
    plan: dataset.Plan, tmp_path: Path
) -> None:
    """Pipelining, split reads, HTTP/1.0, bodies and closing: the same bytes either way."""
    clock = Clock()
    fast_site, slow_site = _twin_sites(tmp_path, plan, clock, seed=3)
    paths = [entry.path for entry in plan.files[:40]]
    ip = plan.client_ips[0]

    conversation = [
        *[_get(path, ip) for path in paths],  # fills the caches of both
        _get(paths[0], ip) + _get(paths[1], ip),  # two pipelined requests in one read
        _get(paths[2], ip) + _get(paths[3], ip)[:12],  # one and the start of the next...
        _get(paths[3], ip)[12:],  # ...finished in the next read
        _get(paths[4], ip),  # an ordinary request after all that
        f"POST {_target(paths[5])} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".encode(),
        _get(paths[6], ip),
        f"GET {_target(paths[7])} HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n".encode(),
        f"GET {_target(paths[8])} HTTP/1.0\r\n\r\n".encode(),  # HTTP/1.0 closes the connection
    ]
    answers = []
    for site in (fast_site, slow_site):
        client = _Client(site)
        answers.append([client.get(raw) for raw in conversation])
        answers[-1].append(b"closed" if client.transport.disconnecting else b"open")
    assert answers[0] == answers[1]
    assert answers[0][-1] == b"closed"
    assert answers[0][len(paths)].count(b"HTTP/1.1 302 Found") == 2
    assert all(answer.startswith(b"HTTP/1.1 302 Found") for answer in answers[0][:len(paths)])


def test_the_channel_answers_by_itself_only_when_twisted_holds_nothing(
    plan: dataset.Plan, tmp_path: Path
) -> None:
    """The channel's own records say when twisted.web holds a request or part of one."""
    site = _site(tmp_path / "fast", plan, Clock(), seed=1, fast=True)
    resource: Any = site.resource
    original = resource.answer_head
    answered: list[bool] = []

    def answer_head(*args: Any) -> bytes | None:
        answer = original(*args)
        answered.append(answer is not None)
        return answer

    resource.answer_head = answer_head
    raw = _get(plan.files[0].path, plan.client_ips[0])
    client = _Client(site)
    channel: Any = client.channel
    client.get(raw)  # the first request of a file reads through the cache: twisted.web
    assert answered == [False] and channel.idle()
    assert client.get(raw).startswith(b"HTTP/1.1 302 ") and answered[-1]  # from memory
    client.get(raw, split=True)  # half a request, then the rest: twisted.web's
    assert len(answered) == 2 and channel.idle()  # a whole request again: idle
    client.get(raw)
    assert len(answered) == 3 and answered[-1]
    assert client.get(raw + raw).count(b"HTTP/1.1 302 ") == 2  # pipelined: twisted.web's
    assert not channel.idle()  # for good: what it keeps is unknown
    client.get(raw)
    assert len(answered) == 3


_ODDITIES: list[tuple[str, str]] = [
    *[("method", m) for m in ("HEAD", "get", "POST", "OPTIONS", "G\x00T", "GET ")],
    *[("suffix", x) for x in ("?https=1", "?https=0&https=1", "?md5", "?x=%zz", "/../a", "//x",
                              " x", "\x00", "%00", "%2e%2e/", "#f", "?mirrorlist", "?stats",
                              "\xe9", "%c3%a9", "?;", "?a=b=c")],
    *[("target", t) for t in ("*", "http://h/a", "", "/", "/../../x")],
    *[("version", v) for v in ("HTTP/1.0", "HTTP/1.2", "http/1.1", "HTTP/1.1 ", "")],
    *[("header", h) for h in (
        "X-Forwarded-For: 10.0.0.1, 1.2.3.4", "X-Forwarded-For:", "X-Forwarded-For: nonsense",
        "X-Forwarded-For: [2001:db8::1]", "Host: x", "Host:x", "X-Forwarded-Proto: HTTPS",
        "X-Forwarded-Proto: http", "Accept: application/json", "Connection: keep-alive",
        "Connection: close", "Connection: Keep-Alive, Upgrade", "Content-Length: 0",
        "Content-Length: 3", "Content-Length: -1", "Transfer-Encoding: chunked",
        "Expect: 100-continue", "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT",
        "If-Modified-Since: garbage", "Range: bytes=0-1", "User-Agent: \x01\x7f",
        "Bad Name: v", ": empty", "NoColon", " folded", "X-A: a\x00b", "X-Long: " + "a" * 300,
        "Accept-Encoding: gzip", "x-forwarded-for: 1.2.3.4")],
    ("eol", "\n"),
    *[("tail", t) for t in ("abc", "GET", "\r\n", "GET / HTTP/1.1\r\n\r\n")],
]


def _hostile_requests(paths: list[str], ip: str) -> st.SearchStrategy[bytes]:
    """An ordinary request with up to three oddities that clients and attackers send."""

    def build(path: str, oddities: list[tuple[str, str]]) -> bytes:
        parts = {"method": "GET", "target": _target(path), "version": "HTTP/1.1", "eol": "\r\n",
                 "tail": ""}
        headers = [f"X-Forwarded-For: {ip}"]
        for field, value in oddities:
            if field == "header":
                headers.append(value)
            elif field == "suffix":
                parts["target"] += value
            else:
                parts[field] = value
        line = " ".join(x for x in (parts["method"], parts["target"], parts["version"]) if x)
        eol = parts["eol"]
        text = eol.join([line, *headers]) + eol + eol + parts["tail"]
        return text.encode("utf-8", "surrogateescape")

    return st.builds(build, st.sampled_from(paths),
                     st.lists(st.sampled_from(_ODDITIES), max_size=3))


def test_hostile_requests_get_the_answers_twisted_gives(
    plan: dataset.Plan, tmp_path: Path
) -> None:
    clock = Clock()
    fast_site, slow_site = _twin_sites(tmp_path, plan, clock, seed=9)
    paths = [entry.path for entry in plan.files[:20]]
    ip = plan.client_ips[3]
    warm_fast, warm_slow = _Client(fast_site), _Client(slow_site)
    for path in paths:
        for client in (warm_fast, warm_slow):
            client.get(_get(path, ip))
    follow_up = _get(paths[1], ip)

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_hostile_requests(paths, ip))
    def same_answers(raw: bytes) -> None:
        outcomes = []
        for site in (fast_site, slow_site):
            client = _Client(site)
            first = client.get(raw)
            second = b"" if client.transport.disconnecting else client.get(follow_up)
            outcomes.append((first, second, client.transport.disconnecting))
        assert outcomes[0] == outcomes[1], raw

    same_answers()
    fast_ctx: Any = fast_site.resource
    slow_ctx: Any = slow_site.resource
    assert fast_ctx.ctx.rng.getstate() == slow_ctx.ctx.rng.getstate()


def test_a_failing_in_memory_answer_falls_back_to_twisted(
    plan: dataset.Plan, tmp_path: Path
) -> None:
    from twisted.logger import globalLogPublisher

    site = _site(tmp_path / "fast", plan, Clock(), seed=1, fast=True)
    resource: Any = site.resource
    path = plan.files[0].path
    raw = _get(path, plan.client_ips[0])
    client = _Client(site)
    client.get(raw)  # warm

    def broken(*args: Any) -> bytes | None:
        raise RuntimeError("boom")

    resource.answer_head = broken
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        answer = client.get(raw)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert answer.startswith(b"HTTP/1.1 302 Found")  # twisted.web's path answered
    assert not client.transport.disconnecting
    assert any("in-memory answer" in str(e.get("log_format")) for e in events)


def test_closing_for_an_upgrade_ends_each_connection_after_its_next_answer(
    plan: dataset.Plan, tmp_path: Path
) -> None:
    """Once closing, no connection is cut under a request: each next answer, from either
    path, says "Connection: close" (the same bytes either way) and ends the connection."""
    clock = Clock()
    fast_site, slow_site = _twin_sites(tmp_path, plan, clock, seed=1)
    path = plan.files[0].path
    raw = _get(path, plan.client_ips[0])
    answers = []
    for site in (fast_site, slow_site):
        idle, fresh, halfway = (_Client(site) for _ in range(3))
        idle.get(raw)
        halfway.get(raw)  # warm, then half of the next request
        halfway.channel.dataReceived(raw[:10])
        for client in (idle, fresh, halfway):
            client.channel.close_after_answer()
            assert not client.transport.disconnecting
        halfway.transport.clear()
        halfway.channel.dataReceived(raw[10:])  # completed: twisted.web's path answers
        answers.append([idle.get(raw), fresh.get(raw), _DATE.sub(b"", halfway.transport.value())])
        assert all(client.transport.disconnecting for client in (idle, fresh, halfway))
    assert answers[0] == answers[1]
    assert all(answer.startswith(b"HTTP/1.1 302 Found\r\nConnection: close\r\n")
               for answer in answers[0])


def test_closing_a_connection_whose_answer_is_pending_announces_it(tmp_path: Path) -> None:
    """A request being answered when closing begins gets "Connection: close" too."""
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET

    from mirrorbits.web.site import RedirectorSite

    pending: list[Any] = []

    class Later(Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> Any:
            pending.append(request)
            return NOT_DONE_YET

    client = _Client(RedirectorSite(Later(), reactor=Clock()))
    client.channel.dataReceived(_get("/a", "192.0.2.1"))
    client.channel.close_after_answer()
    assert not client.channel.close_if_idle()  # busy: never cut under a request
    request = pending.pop()
    request.setResponseCode(302)
    request.finish()
    answer = client.transport.value()
    assert answer.startswith(b"HTTP/1.1 302 Found\r\n")
    assert b"\r\nConnection: close\r\n" in answer
    assert client.transport.disconnecting


def test_an_idle_connection_closes_only_when_asked(plan: dataset.Plan, tmp_path: Path) -> None:
    site = _site(tmp_path / "fast", plan, Clock(), seed=1, fast=True)
    raw = _get(plan.files[0].path, plan.client_ips[0])
    idle, halfway = _Client(site), _Client(site)
    idle.get(raw)
    halfway.channel.dataReceived(raw[:10])
    for client in (idle, halfway):
        client.channel.close_after_answer()
    assert not idle.transport.disconnecting
    assert idle.channel.close_if_idle()
    assert idle.transport.disconnecting
    assert not halfway.channel.close_if_idle()  # half a request: its answer ends it
    assert not halfway.transport.disconnecting


def test_a_head_redirect_is_framed_alike_however_long_its_plan_waited(
    plan: dataset.Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redirect whose mirrors had to be read (Redis) has the framing of one answered from
    memory: no Content-Length for HEAD, "Content-Length: 0" for GET."""
    from twisted.internet.defer import Deferred

    from mirrorbits.cache import MirrorCache

    site = _site(tmp_path / "fast", plan, Clock(), seed=1, fast=True)
    read_candidates = MirrorCache.candidates
    waiting: list[Deferred[None]] = []

    async def slow_candidates(cache: MirrorCache, path: str) -> Any:
        wait: Deferred[None] = Deferred()
        waiting.append(wait)
        await wait
        return await read_candidates(cache, path)

    monkeypatch.setattr(MirrorCache, "candidates", slow_candidates)
    answers = []
    for index, method in enumerate(("HEAD", "GET")):
        path = plan.files[index].path
        raw = f"{method} {_target(path)} HTTP/1.1\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n".encode()
        client = _Client(site)
        assert client.get(raw) == b""  # the plan waits for the mirrors
        waiting.pop().callback(None)
        waited = _DATE.sub(b"", client.transport.value())
        answers.append((waited, client.get(raw)))  # then from memory
    for (waited, remembered), length in zip(answers, (None, b"0"), strict=True):
        for answer in (waited, remembered):
            assert answer.startswith(b"HTTP/1.1 302 Found\r\n")
            found = re.search(rb"(?i)\r\ncontent-length: (\d+)", answer)
            assert (found and found[1]) == length, answer
