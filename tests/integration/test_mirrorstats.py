"""``GET /?mirrorstats`` on the real daemon, with mirrors and counters written to Redis."""

from __future__ import annotations

import html
import http.client
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import html5lib  # type: ignore[import-untyped]
import pytest
import redis

from mirrorbits.store import keys
from mirrorbits.web.history_chart import OTHERS_COLOUR, PALETTE
from mirrorbits.web.mirrorstats import HISTORY_DAYS, MAP_WIDTH, project
from tests.daemon import DaemonProcess, base_config, repo_file
from tests.screenshots import (
    Colour,
    Picture,
    decode_png,
    hex_colour,
    needs_chromium,
    screenshot,
)
from tests.servers import RedisServer
from tests.unit.test_mirrorstats_page import parse

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, redis.Redis]]:
    """A daemon on its own redis-server (other tests flush the shared one)."""
    root = tmp_path_factory.mktemp("mirrorstats")
    server = RedisServer(workdir=root / "redis")
    server.start()
    client = redis.Redis(host=server.host, port=server.port, decode_responses=True)
    repo = root / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    daemon = DaemonProcess(workdir=root / "run", values=base_config(repo, server.address),
                           args=["--no-monitor"])
    try:
        daemon.start()
        deadline = time.monotonic() + 20
        while client.get(keys.DB_VERSION) is None:  # the daemon has set the database up
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(0.05)
        yield daemon, client
    finally:
        daemon.stop()
        client.close()
        server.stop()


def add_mirror(client: redis.Redis, mid: int, name: str, **fields: str | int) -> None:
    """A mirror as the reference stores it (§3.6): the record plus its ``MIRRORS`` entry."""
    record: dict[str, str | int] = {
        "ID": mid, "name": name, "http": f"http://{name}.example/", "rsync": "", "ftp": "",
        "score": 0, "latitude": "0", "longitude": "0", "countryCodes": "", "continentCode": "",
        "asnum": 0, "allowredirects": 0, "enabled": 1, "httpUp": 1, "httpsUp": 0,
    }
    record.update(fields)
    client.hset(keys.mirror(mid), mapping={field: str(value) for field, value in record.items()})
    client.hset(keys.MIRRORS, str(mid), name)


def get(daemon: DaemonProcess, target: str) -> tuple[int, dict[str, str], str]:
    host, port = daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        body = response.read().decode("utf-8")
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, body
    finally:
        connection.close()


def today_suffix() -> str:
    now = datetime.now(UTC)
    return keys.stats_suffixes(now.year, now.month, now.day)[0]


def test_the_page_shows_todays_activity_and_health(
    stack: tuple[DaemonProcess, redis.Redis],
) -> None:
    daemon, client = stack
    client.flushdb()
    client.set(keys.DB_VERSION, "2")
    now = int(time.time())
    add_mirror(client, 1, "paris", latitude="48.85", longitude="2.35", tzoffset=3_600_000,
               lastModTime=now - 150)
    add_mirror(client, 2, "sydney", http="sydney.example/", httpsUp=0,
               httpsDownReason="Unreachable", latitude="-33.9", longitude="151.2")
    # Listed but unreadable: its (large) counters must not land on another mirror.
    client.set(keys.mirror(3), "not a hash")
    client.hset(keys.MIRRORS, "3", "ghost")
    add_mirror(client, 4, "oldie", enabled=0, lastModTime=now - 40 * 86400)
    add_mirror(client, 5, "broken", httpUp=0, httpDownReason="Got status code 404",
               lastModTime=now - 3 * 86400 - 600)
    add_mirror(client, 6, '<script>alert("x")</script>', enabled=0)
    suffix = today_suffix()
    client.hset(keys.STATS_MIRROR + suffix, mapping={"1": 40, "2": 10, "3": 1000, "5": 10})
    client.hset(keys.STATS_MIRROR_BYTES + suffix, mapping={"1": 4 * MiB, "2": MiB, "3": 10**12})
    client.hset(keys.STATS_MIRROR + "_2001_01_01", mapping={"4": 5000})  # another day

    status, headers, page = get(daemon, "/?mirrorstats")

    assert status == 200, page
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "cache-control" not in headers
    assert headers["server"].startswith("Mirrorbits/")
    assert page.startswith("<!DOCTYPE html>")
    html5lib.HTMLParser(strict=True).parse(page)
    cells = parse(page)
    assert cells.headers[3] == "Adjusted TZ"
    table = [[text for _, text in row] for row in cells.rows]
    assert [row[0] for row in table] == [
        "paris", "broken", "sydney", "<script>alert(\"x\")</script>", "oldie"]
    assert [row[1] for row in table] == [
        "40 downloads, 4.0 MiB transferred",
        "10 downloads, 0.0 bytes transferred",
        "10 downloads, 1.0 MiB transferred",
        "0 downloads, 0.0 bytes transferred",
        "0 downloads, 0.0 bytes transferred",
    ]
    assert [row[2] for row in table] == [
        "2 minutes ago", "3 days ago", "unknown", "unknown", "40 days ago"]
    assert [row[2][0]["class"] for row in cells.rows] == [
        "sync green", "sync orange", "sync unknown", "sync unknown", "sync red"]
    assert [row[3] for row in table] == ["1h0m0s", "0s", "0s", "0s", "0s"]
    assert [row[4] for row in table] == [
        "HTTP up", "HTTP down: Got status code 404", "HTTP up HTTPS down: Unreachable",
        "disabled", "disabled"]
    # Two bars per row (downloads, bytes), relative to the busiest mirror of today.
    assert cells.widths == [
        "width: 100%", "width: 100%",
        "width: 25%", "width: 0%",
        "width: 25%", "width: 25%",
        "width: 0%", "width: 0%",
        "width: 0%", "width: 0%",
    ]
    assert "40 downloads" in cells.titles and "1.0 MiB transferred" in cells.titles
    assert "<script>alert" not in page
    dots = {c["class"] for c in cells.circles}
    assert len(cells.circles) == 5
    assert dots == {"dot up", "dot down", "dot degraded", "dot disabled"}
    paris = next(c for c in cells.circles if c["class"] == "dot up")
    assert (paris["cx"], paris["cy"]) == ("364.7", "82.3")


def test_any_path_serves_the_page_and_counts_nothing(
    stack: tuple[DaemonProcess, redis.Redis],
) -> None:
    daemon, client = stack
    client.flushdb()
    client.set(keys.DB_VERSION, "2")
    add_mirror(client, 1, "solo")
    status, _, page = get(daemon, "/some/dir/file.iso?mirrorstats")
    assert status == 200
    cells = parse(page)
    assert [[text for _, text in row] for row in cells.rows] == [
        ["solo", "0 downloads, 0.0 bytes transferred", "unknown", "HTTP up"]]
    assert "NaN" not in page and "Adjusted TZ" not in page
    assert client.hgetall(keys.STATS_MIRROR + today_suffix()) == {}

    client.delete(keys.MIRRORS, keys.mirror(1))
    status, _, page = get(daemon, "/?mirrorstats")
    assert status == 200
    assert "No mirrors are registered." in page


def test_redis_errors_are_plain_text_500(stack: tuple[DaemonProcess, redis.Redis]) -> None:
    daemon, client = stack
    client.flushdb()
    client.set(keys.DB_VERSION, "2")
    client.set(keys.MIRRORS, "not a hash")
    status, headers, body = get(daemon, "/?mirrorstats")
    assert (status, body) == (500, "Cannot fetch the list of mirrors\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"

    client.delete(keys.MIRRORS)
    add_mirror(client, 1, "solo")
    client.set(keys.STATS_MIRROR_BYTES + today_suffix(), "not a hash")
    status, headers, body = get(daemon, "/?mirrorstats")
    assert (status, body) == (500, "Cannot fetch stats\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"


def test_a_custom_template_directory_is_used(tmp_path: Path,
                                             stack: tuple[DaemonProcess, redis.Redis]) -> None:
    _, client = stack
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "mirrorstats.xhtml").write_text(
        '<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1"><body>'
        '<p t:render="rows">custom <t:slot name="name" /></p></body></html>')
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"x", 1687249800)
    host = client.connection_pool.connection_kwargs["host"]
    port = client.connection_pool.connection_kwargs["port"]
    client.flushdb()
    client.set(keys.DB_VERSION, "2")
    add_mirror(client, 1, "solo")
    daemon = DaemonProcess(workdir=tmp_path / "run",
                           values=base_config(repo, f"{host}:{port}", Templates=str(templates)),
                           args=["--no-monitor"])
    daemon.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            status, _, page = get(daemon, "/?mirrorstats")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200, page
        assert "<p>custom solo</p>" in page
        # Edited into malformed XML: the packaged page is served (as for ?mirrorlist), and
        # the operator reads one line, once, not a traceback per request.
        broken = templates / "mirrorstats.xhtml"
        broken.write_text("<html><body><p>unclosed</body></html>")
        for _ in range(2):
            status, _, page = get(daemon, "/?mirrorstats")
            assert status == 200, page
            assert "custom solo" not in page and "solo" in parse(page).rows[0][0][1]
        log = daemon.log()
    finally:
        daemon.stop()
    assert log.count(f"Template {broken} is unusable, the packaged one is used: {broken}:1:") == 1
    assert "Traceback" not in log


@needs_chromium
def test_the_map_in_a_browser(stack: tuple[DaemonProcess, redis.Redis], tmp_path: Path) -> None:
    """Headless Chromium draws the map: real land, and three mirrors of one town side by side,
    the down one on top with its dark ring."""
    daemon, client = stack
    client.flushdb()
    client.set(keys.DB_VERSION, "2")
    frankfurt = {"latitude": "50.11", "longitude": "8.68"}
    add_mirror(client, 1, "fra-a", **frankfurt)
    add_mirror(client, 2, "fra-down", httpUp=0, httpDownReason="Unreachable", **frankfurt)
    add_mirror(client, 3, "fra-b", **frankfurt)
    add_mirror(client, 4, "sydney", latitude="-33.9", longitude="151.2")
    add_mirror(client, 5, "paris-off", enabled=0, latitude="48.85", longitude="2.35")
    client.hset(keys.STATS_MIRROR + today_suffix(), mapping={"1": 30, "2": 20, "3": 10})
    host, port = daemon.http
    picture = decode_png(screenshot(f"http://{host}:{port}/?mirrorstats", tmp_path, 1200, 900))

    sea, land, grid = hex_colour("#dfe9f3"), hex_colour("#c9d3c0"), hex_colour("#c8d6e5")
    left, top, right, _ = picture.box([sea, land, grid])
    scale = (right + 1 - left) / MAP_WIDTH
    assert scale > 1

    def at(x: float, y: float) -> tuple[float, float]:
        return left + x * scale, top + y * scale

    for latitude, longitude in [(23.0, 10.0), (-12.0, -50.0), (62.0, 95.0), (-25.0, 134.0)]:
        assert picture.count_near(*at(*project(latitude, longitude)), 4, land, 0) > 40
    for latitude, longitude in [(25.0, -40.0), (42.0, 50.5), (35.0, 18.0)]:
        assert picture.count_near(*at(*project(latitude, longitude)), 4, sea, 0) > 40

    _, _, page = get(daemon, "/?mirrorstats")
    dots = parse(page).circles
    assert [c["class"] for c in dots] == ["dot disabled", "dot up", "dot up", "dot up",
                                          "dot down"]  # in drawing order
    place = project(50.11, 8.68)
    in_frankfurt = [c for c in dots
                    if math.dist((float(c["cx"]), float(c["cy"])), place) < 8]
    assert len({(c["cx"], c["cy"]) for c in in_frankfurt}) == 3
    colours = {"up": hex_colour("#2e9e44"), "down": hex_colour("#dd3333"),
               "disabled": hex_colour("#111111")}
    for dot in dots:
        x, y = at(float(dot["cx"]), float(dot["cy"]))
        # Most of each dot shows its own colour: none is hidden under another.
        assert picture.count_near(x, y, round(3 * scale), colours[dot["class"][4:]]) > 15, dot
    down = dots[-1]
    assert picture.count_near(*at(float(down["cx"]), float(down["cy"])), round(7 * scale),
                              hex_colour("#5c0000"), 24) > 10  # its ring


def day_suffix(days_ago: int) -> str:
    day = datetime.now(UTC).date() - timedelta(days=days_ago)
    return keys.stats_suffixes(day.year, day.month, day.day)[0]


def chart_titles(page: str) -> list[str]:
    """The hover texts of the history chart's bars and legend, unescaped."""
    chart = page.split('<svg class="history"', 1)[1].split("</svg>", 1)[0]
    return [html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", chart, re.DOTALL)]


def plant_history(client: redis.Redis, count: Callable[[int, int], int],
                  mirrors: Sequence[int], days: int = HISTORY_DAYS + 1) -> None:
    """``count(mirror, days_ago)`` downloads per mirror for the last ``days`` days."""
    for days_ago in range(days):
        mapping = {str(mid): count(mid, days_ago) for mid in mirrors}
        client.hset(keys.STATS_MIRROR + day_suffix(days_ago), mapping=mapping)
        client.hset(keys.STATS_MIRROR_BYTES + day_suffix(days_ago),
                    mapping={mid: 1000 * n for mid, n in mapping.items()})


def test_the_last_30_days_in_one_transaction(stack: tuple[DaemonProcess, redis.Redis]) -> None:
    daemon, client = stack
    client.flushdb()
    client.set(keys.DB_VERSION, "2")
    add_mirror(client, 1, "busy")
    add_mirror(client, 2, '<img src=x onerror="alert(1)">')
    plant_history(client, lambda mid, days_ago: (3 - mid) * (days_ago + 1), [1, 2])
    client.delete(keys.STATS_MIRROR + day_suffix(10))  # a day without downloads
    client.set(keys.STATS_MIRROR + day_suffix(20), "not a hash")  # an unreadable day
    client.config_resetstat()

    status, _, page = get(daemon, "/?mirrorstats")

    assert status == 200, page
    calls = {name[len("cmdstat_"):]: stats["calls"]
             for name, stats in client.info("commandstats").items()}
    # The 30 days of both counters: one MULTI of HMGETs, whatever the number of days.
    assert (calls["multi"], calls["exec"], calls["hmget"]) == (1, 1, 2 * HISTORY_DAYS)
    titles = chart_titles(page)
    first = (datetime.now(UTC).date() - timedelta(days=HISTORY_DAYS - 1)).isoformat()
    today = datetime.now(UTC).date().isoformat()
    days = [t for t in titles if t[:4].isdigit()]
    assert len(days) == HISTORY_DAYS - 2  # nothing on day 10, day 20 unreadable
    assert days[0] == (f"{first}: 90 downloads\nbusy: 60\n"
                       '<img src=x onerror="alert(1)">: 30')
    assert days[-1] == f'{today}: 3 downloads\nbusy: 2\n<img src=x onerror="alert(1)">: 1'
    assert "busy: 866 downloads" in titles  # the legend: 2 × (1 + … + 30) − 2 × 11 − 2 × 21
    assert "<img" not in page
    html5lib.HTMLParser(strict=True).parse(page)
    damaged = (datetime.now(UTC).date() - timedelta(days=20)).isoformat()
    assert f"mirrorstats: cannot read the counters of {damaged}; charted as none" in daemon.log()


@needs_chromium
def test_the_history_chart_in_a_browser(stack: tuple[DaemonProcess, redis.Redis],
                                        tmp_path: Path) -> None:
    """Headless Chromium draws the chart: one stacked bar a day, growing as planted, the six
    busiest mirrors in their colours from the bottom up, then the others in grey, and the
    legend's swatches under the bars."""
    daemon, client = stack
    client.flushdb()
    client.set(keys.DB_VERSION, "2")
    names = ["fr.mirror", "de.mirror", "us.mirror", "jp.mirror", "br.mirror", "za.mirror",
             "small-1", "small-2"]
    for mid, name in enumerate(names, 1):
        add_mirror(client, mid, name)
    # Mirror k: (9 - k) downloads times the day's number (1 thirty days ago, 30 today).
    plant_history(client, lambda mid, days_ago: (9 - mid) * (HISTORY_DAYS - days_ago),
                  range(1, 9))
    host, port = daemon.http
    picture = decode_png(screenshot(f"http://{host}:{port}/?mirrorstats", tmp_path, 1000, 1900))

    series = [hex_colour(c) for c in (*PALETTE, OTHERS_COLOUR)]
    left, top, right, _ = picture.box(series)  # from the legend's first swatch to today's bar
    scale = (right + 1 - left) / 653.4  # chart units: 52 to 705.4 of 720
    assert scale > 1, (left, top, right)

    # Today's bar is the rightmost: from its foot up, each layer as tall as its downloads.
    # The scale goes up to 1500 (the peak, 36 × 30, rounded up to a step of 500) on 200 units.
    foot, layers = bar(picture, right - 3, series)
    assert [colour for colour, _ in layers] == series, layers
    for (colour, length), downloads in zip(layers, [8, 7, 6, 5, 4, 3, 2 + 1], strict=True):
        assert length == pytest.approx(downloads * 30 * 200 / 1500 * scale, abs=2.5), colour
    # Thirty days ago (the first slot's middle is 10.9 units right of the legend's edge):
    # one thirtieth of today's bar, standing on the same line.
    first_x = round(left + 10.9 * scale)
    first_foot, _ = bar(picture, first_x, series, lowest=foot)
    assert abs(first_foot - foot) <= 1
    assert height(picture, first_x, first_foot) == pytest.approx(
        height(picture, right - 3, foot) / 30, abs=1.5)
    # The legend, under the date labels: a 12-unit swatch of each colour.
    for colour in series:
        assert count_below(picture, colour, foot + round(24 * scale)) > 100 * scale**2, colour


def bar(picture: Picture, x: int, series: list[Colour],
        lowest: int | None = None) -> tuple[int, list[tuple[Colour, int]]]:
    """The foot (lowest y, at most ``lowest``) of the bar drawn at column ``x``, and its
    layers, bottom first (runs of exact series colours; blended pixels where two layers meet
    are skipped)."""
    end = picture.height if lowest is None else lowest + 1
    ys = [y for y in range(end) if picture.colour(x, y) in series]
    assert ys, f"no bar at x={x}"
    foot, layers = ys[-1], []
    for y in range(foot, ys[0] - 1, -1):
        colour = picture.colour(x, y)
        if colour not in series:
            continue
        if layers and layers[-1][0] == colour:
            layers[-1] = (colour, layers[-1][1] + 1)
        else:
            layers.append((colour, 1))
    return foot, layers


def height(picture: Picture, x: int, foot: int) -> int:
    """How many pixels of column ``x`` are drawn (not the card's white) from ``foot`` up."""
    y = foot
    while y > 0 and picture.colour(x, y) != (255, 255, 255):
        y -= 1
    return foot - y


def count_below(picture: Picture, colour: Colour, y0: int) -> int:
    return sum(1 for y in range(y0, picture.height) for x in range(picture.width)
               if picture.colour(x, y) == colour)
