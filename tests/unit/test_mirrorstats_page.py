"""The ``?mirrorstats`` view-model and its HTML (spec §8.9), without I/O."""

from __future__ import annotations

import math
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import html5lib  # type: ignore[import-untyped]
import pytest
from twisted.internet.defer import Deferred

from mirrorbits.model import Mirror
from mirrorbits.web import svgmap
from mirrorbits.web.mirrorstats import (
    MAP_HEIGHT,
    MAP_WIDTH,
    MirrorstatsView,
    build_view,
    fuzzy_time,
    health,
    percent,
    project,
    render_mirrorstats,
    sync_offset,
)

NOW = 1_700_000_000.0
DAY = date(2023, 11, 14)
HOSTILE = '<script>alert("x")</script>'


def mirror(mid: int, name: str, **fields: object) -> Mirror:
    values: dict[str, object] = {"http_url": f"http://{name}.example/", "enabled": True,
                                 "http_up": True}
    values.update(fields)
    return Mirror(id=mid, name=name, **values)  # type: ignore[arg-type]


def render(view: MirrorstatsView, templates_dir: str = "") -> str:
    results: list[object] = []
    Deferred.fromCoroutine(render_mirrorstats(view, templates_dir)).addBoth(results.append)
    assert len(results) == 1 and isinstance(results[0], bytes), results
    return results[0].decode("utf-8")


class Cells(HTMLParser):
    """Rows of the table body as lists of (attributes, text) per cell, plus every title."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[dict[str, str], str]]] = []
        self.headers: list[str] = []
        self.titles: list[str] = []
        self.widths: list[str] = []
        self.circles: list[dict[str, str]] = []
        self._cell: tuple[dict[str, str], list[str]] | None = None
        self._in_body = False
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "title" in a:
            self.titles.append(a["title"])
        if "style" in a:
            self.widths.append(a["style"])
        if tag == "circle":
            self.circles.append(a)
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = (a, [])
        elif tag == "th":
            self._in_th = True
            self.headers.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append((self._cell[0], " ".join("".join(self._cell[1]).split())))
            self._cell = None
        elif tag == "th":
            self._in_th = False
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[1].append(data)
        if self._in_th:
            self.headers[-1] += data


def parse(page: str) -> Cells:
    cells = Cells()
    cells.feed(page)
    return cells


# --- view-model -------------------------------------------------------------------------------


def test_rows_are_sorted_by_todays_downloads_then_by_name() -> None:
    mirrors = [mirror(1, "zeta"), mirror(2, "alpha"), mirror(3, "mid"), mirror(4, "beta")]
    view = build_view(mirrors, {1: 7, 2: 7, 3: 30}, {1: 70, 2: 10, 3: 300}, NOW, DAY)
    assert [row.name for row in view.rows] == ["mid", "alpha", "zeta", "beta"]
    assert [row.downloads for row in view.rows] == [30, 7, 7, 0]
    assert [p.name for p in view.points] == ["mid", "alpha", "zeta", "beta"]
    assert view.total_downloads == 44 and view.total_bytes == 380


def test_percentages_are_relative_to_the_busiest_mirror() -> None:
    view = build_view([mirror(1, "a"), mirror(2, "b")], {1: 10, 2: 40}, {1: 300, 2: 100},
                      NOW, DAY)
    by_name = {row.name: row for row in view.rows}
    assert by_name["b"].percent_downloads == 100.0
    assert by_name["a"].percent_downloads == 25.0
    assert by_name["a"].percent_bytes == 100.0
    assert by_name["b"].percent_bytes == pytest.approx(33.333, abs=0.001)


def test_nobody_downloaded_today_gives_empty_bars_not_nan() -> None:
    assert percent(0, 0) == 0.0
    view = build_view([mirror(1, "a"), mirror(2, "b")], {}, {}, NOW, DAY)
    assert [(r.percent_downloads, r.percent_bytes) for r in view.rows] == [(0, 0), (0, 0)]
    page = render(view)
    assert "NaN" not in page
    assert parse(page).widths == ["width: 0%"] * 4


@pytest.mark.parametrize(("age", "text"), [
    (-5, "in the future"),
    (0, "up-to-date"),
    (59, "up-to-date"),
    (60, "1 minute ago"),
    (150, "2 minutes ago"),
    (3599, "59 minutes ago"),
    (3600, "1 hour ago"),
    (7300, "2 hours ago"),
    (86399, "23 hours ago"),
    (86400, "1 day ago"),
    (3 * 86400 + 5, "3 days ago"),
    (365 * 86400, "365 days ago"),
    (365 * 86400 + 1, "1 year ago"),
    (3 * 365 * 86400 + 1, "3 years ago"),
])
def test_fuzzy_time(age: int, text: str) -> None:
    assert fuzzy_time(age) == text


@pytest.mark.parametrize(("hours", "level"), [
    (0, "green"), (48, "green"), (49, "orange"), (720, "orange"), (721, "red"), (-3, "green"),
])
def test_last_update_colour_from_the_trace_age(hours: int, level: str) -> None:
    age = hours * 3600 + (30 if hours >= 0 else -30)
    offset = sync_offset(int(NOW) - age, NOW)
    assert offset.valid and offset.hours == hours and offset.level == level


def test_no_trace_is_unknown() -> None:
    offset = sync_offset(None, NOW)
    assert not offset.valid
    assert (offset.text, offset.level) == ("unknown", "unknown")


def test_absurd_trace_timestamps_do_not_break_the_page() -> None:
    future = sync_offset(2**62, NOW)
    assert (future.text, future.level, future.date) == ("in the future", "green", "")
    ancient = sync_offset(-(2**62), NOW)
    assert ancient.text.endswith(" years ago") and ancient.level == "red"
    page = render(build_view([mirror(1, "a", last_mod_time=2**62)], {}, {}, NOW, DAY))
    assert parse(page).rows[0][2][1] == "in the future"


def test_trace_age_uses_the_injected_now() -> None:
    m = mirror(1, "a", last_mod_time=int(NOW) - 3 * 3600)
    assert build_view([m], {}, {}, NOW, DAY).rows[0].sync.text == "3 hours ago"
    later = build_view([m], {}, {}, NOW + 2 * 86400, DAY).rows[0].sync
    assert (later.text, later.level) == ("2 days ago", "orange")
    assert later.date == "Tue, 14 Nov 2023 19:13:20 UTC"


def test_health_per_protocol() -> None:
    assert health(mirror(1, "a", enabled=False)) == "disabled"
    assert health(mirror(1, "a", http_up=True)) == "up"
    assert health(mirror(1, "a", http_up=False)) == "down"
    assert health(mirror(1, "a", http_url="https://a/", https_up=True, http_up=False)) == "up"
    assert health(mirror(1, "a", http_url="a/", http_up=True, https_up=False)) == "degraded"
    assert health(mirror(1, "a", http_url="a/", http_up=True, https_up=True)) == "up"
    assert health(mirror(1, "a", http_url="a/", http_up=False, https_up=False)) == "down"


def test_map_projection_is_equirectangular() -> None:
    assert project(0, 0) == (MAP_WIDTH / 2, MAP_HEIGHT / 2)
    assert project(90, -180) == (0, 0)
    assert project(-90, 180) == (MAP_WIDTH, MAP_HEIGHT)
    assert project(45, 90) == (540, 90)
    assert project(500, -999) == (0, 0)


def test_tz_offset_column_only_when_some_mirror_has_one() -> None:
    plain = build_view([mirror(1, "a"), mirror(2, "b")], {}, {}, NOW, DAY)
    assert not plain.has_tz_adjustment
    assert "Adjusted TZ" not in render(plain)
    assert all(len(row) == 4 for row in parse(render(plain)).rows)
    shifted = build_view([mirror(1, "a"), mirror(2, "b", tz_offset_ms=-5_400_000)], {}, {},
                         NOW, DAY)
    assert shifted.has_tz_adjustment
    cells = parse(render(shifted))
    assert "Adjusted TZ" in cells.headers
    assert [[text for _, text in row][3] for row in cells.rows] == ["0s", "-1h30m0s"]


# --- HTML ---------------------------------------------------------------------------------------


def sample_view() -> MirrorstatsView:
    mirrors = [
        mirror(1, "paris", latitude=48.85, longitude=2.35, last_mod_time=int(NOW) - 120),
        mirror(2, "sydney", http_url="sydney.example/", http_up=True, https_up=False,
               https_down_reason="TLS handshake failed", latitude=-33.9, longitude=151.2),
        mirror(3, "old", enabled=False, last_mod_time=int(NOW) - 40 * 86400),
        mirror(4, "broken", http_up=False, http_down_reason="Got status code 404",
               last_mod_time=int(NOW) - 3 * 86400),
    ]
    return build_view(mirrors, {1: 12, 2: 3, 4: 1}, {1: 12 * 1024 * 1024, 2: 3 * 1024}, NOW,
                      DAY)


def test_the_page_reads_as_intended() -> None:
    page = render(sample_view())
    cells = parse(page)
    assert cells.headers[:3] == ["Mirror", "Since 00:00 UTC (2023-11-14)", "Last update"]
    table = [[text for _, text in row] for row in cells.rows]
    assert [row[0] for row in table] == ["paris", "sydney", "broken", "old"]
    assert table[0][1] == "12 downloads, 12.0 MiB transferred"
    assert table[2][1] == "1 download, 0.0 bytes transferred"
    assert [row[2] for row in table] == ["2 minutes ago", "unknown", "3 days ago", "40 days ago"]
    assert [row[0].get("class") for row in (r[2] for r in cells.rows)] == [
        "sync green", "sync unknown", "sync orange", "sync red"]
    assert table[0][3] == "HTTP up"
    assert table[1][3] == "HTTP up HTTPS down: TLS handshake failed"
    assert table[2][3] == "HTTP down: Got status code 404"
    assert table[3][3] == "disabled"
    assert cells.widths[:4] == ["width: 100%", "width: 100%", "width: 25%", "width: 0.02%"]
    assert "12 downloads" in cells.titles and "3.0 KiB transferred" in cells.titles
    assert "Since 00:00 UTC on 2023-11-14: 16 downloads redirected" in " ".join(page.split())
    fills = {c["class"]: (c["cx"], c["cy"]) for c in cells.circles}
    # "old" and "broken" have no location (0, 0): spread 6 px above and below it, the down
    # one drawn last (on top).
    assert fills == {"dot up": ("364.7", "82.3"), "dot degraded": ("662.4", "247.8"),
                     "dot disabled": ("360", "186"), "dot down": ("360", "174")}
    assert [c["class"] for c in cells.circles][-1] == "dot down"


def test_land_is_the_mirrorlist_maps_and_credited() -> None:
    page = render(sample_view())
    lands = re.findall(r'<path class="land"[^>]*>', page)
    assert len(lands) == 1
    assert f'd="{svgmap.land().path_data}"' in lands[0]
    assert 'fill-rule="evenodd"' in lands[0]
    assert re.search(r"<!-- Land: Natural Earth .*world-atlas .*-->", page)


def points_of(view: MirrorstatsView) -> list[tuple[str, str, str, str, str]]:
    """(health, cx, cy, leader's x1, leader's y1) of each dot, in drawing order."""
    page = render(view)
    found = re.findall(
        r'<g class="mirror (\w+)"><title>[^<]*</title><line class="leader" x1="([^"]+)" '
        r'y1="([^"]+)" x2="([^"]+)" y2="([^"]+)"></line><circle r="5" class="dot \1" '
        r'cx="([^"]+)" cy="([^"]+)"></circle></g>', page)
    assert len(found) == len(view.points)
    for _, _, _, x2, y2, cx, cy in found:
        assert (x2, y2) == (cx, cy)  # the leader line ends at the dot
    return [(health, cx, cy, x1, y1) for health, x1, y1, _, _, cx, cy in found]


def test_a_down_mirror_is_drawn_over_the_up_ones_at_its_place() -> None:
    lyon = {"latitude": 45.76, "longitude": 4.84}
    mirrors = [mirror(1, "down-lyon", http_up=False, **lyon),
               mirror(2, "up-lyon", **lyon),
               mirror(3, "off-lyon", enabled=False, **lyon),
               mirror(4, "half-lyon", http_url="h.example/", http_up=True, https_up=False,
                      **lyon),
               mirror(5, "up-sydney", latitude=-33.9, longitude=151.2)]
    # The busiest mirrors come first in the table; the down one the least busy.
    view = build_view(mirrors, {2: 50, 3: 40, 4: 30, 5: 20, 1: 1}, {}, NOW, DAY)
    points = points_of(view)
    assert [health for health, *_ in points] == ["disabled", "up", "up", "degraded", "down"]
    lyon_xy = ("369.68", "88.48")
    at_lyon = [p for p in points if (p[3], p[4]) == lyon_xy]
    assert len(at_lyon) == 4
    spots = {(cx, cy) for _, cx, cy, _, _ in at_lyon}
    assert len(spots) == 4 and lyon_xy not in spots  # each one visible, round the place
    for _, cx, cy, x1, y1 in at_lyon:  # 4 dots: a 6 px circle
        assert math.dist((float(cx), float(cy)), (float(x1), float(y1))) == pytest.approx(
            6.01, abs=0.02)
    sydney = next(p for p in points if (p[3], p[4]) != lyon_xy)
    assert (sydney[1], sydney[2]) == (sydney[3], sydney[4]) == ("662.4", "247.8")  # in place


def test_neighbouring_dots_are_pushed_apart() -> None:
    towns = [(48.85, 2.35), (50.11, 8.68), (50.11, 8.68), (47.37, 8.54), (45.76, 4.84),
             (52.52, 13.4), (50.85, 4.35), (52.37, 4.9), (50.11, 8.68), (48.14, 11.58)]
    mirrors = [mirror(i, f"m{i}", latitude=lat, longitude=lon, http_up=i % 3 != 0)
               for i, (lat, lon) in enumerate(towns, start=1)]
    view = build_view(mirrors, {}, {}, NOW, DAY)
    drawn = [(p.x, p.y) for p in view.points]
    for i, a in enumerate(drawn):
        for b in drawn[i + 1:]:
            assert math.dist(a, b) >= 1.7 * 5 - 0.02  # 5 px dots overlap by 1.5 px at most
    for point in view.points:
        assert math.dist((point.x, point.y), (point.place_x, point.place_y)) < 20
    assert [p.health for p in view.points][-3:] == ["down"] * 3



def test_the_page_is_valid_html5() -> None:
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(render(sample_view()))
    parser.parse(render(build_view([], {}, {}, NOW, DAY)))


def test_empty_page_says_so() -> None:
    cells = parse(render(build_view([], {}, {}, NOW, DAY)))
    assert cells.rows == [[({"colspan": "4"}, "No mirrors are registered.")]]
    assert cells.circles == []


def test_mirror_names_are_escaped() -> None:
    m = mirror(1, HOSTILE, http_down_reason='<img src=x onerror="y">', http_up=False)
    page = render(build_view([m], {1: 1}, {}, NOW, DAY))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page
    cells = parse(page)
    assert cells.rows[0][0][1] == HOSTILE
    assert cells.rows[0][3][1] == 'HTTP down: <img src=x onerror="y">'
    the_map = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    circle_titles = re.findall(r"<title>(.*?)</title>", the_map)
    assert circle_titles == ["&lt;script&gt;alert(\"x\")&lt;/script&gt; (down)"]
    html5lib.HTMLParser(strict=True).parse(page)


def test_a_custom_template_replaces_the_stock_one(tmp_path: Path) -> None:
    (tmp_path / "mirrorstats.xhtml").write_text(
        '<html xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1"><body><ul>'
        '<li t:render="rows"><t:slot name="name" />: <t:slot name="downloads_title" /></li>'
        "</ul></body></html>")
    page = render(sample_view(), str(tmp_path))
    assert page.startswith("<!DOCTYPE html>\n<html><body><ul><li>paris: 12 downloads</li>")
    assert render(sample_view(), str(tmp_path / "missing")).count("<svg") == 2  # map, chart


def test_the_history_chart_follows_the_table() -> None:
    earlier = [{1: 3, 2: 1}] * 40  # more than fits: the last 29 days are kept
    view = build_view([mirror(1, "a"), mirror(2, HOSTILE)], {1: 12}, {}, NOW, DAY, earlier)
    assert view.history.days[0] == date(2023, 10, 16) and view.history.days[-1] == DAY
    assert [(layer.name, layer.total) for layer in view.history.series] == [
        ("a", 29 * 3 + 12), (HOSTILE, 29)]
    page = render(view)
    chart = page.split("</table>", 1)[1]
    assert '<svg class="history" viewBox="0 0 720 ' in chart
    assert "Downloads per day and mirror, 2023-10-16 to 2023-11-14 (UTC)" in chart
    assert "<script" not in page
    html5lib.HTMLParser(strict=True).parse(page)
    short = build_view([mirror(1, "a")], {1: 1}, {}, NOW, DAY, [{1: 5}])
    assert short.history.series[0].requests == (0,) * 28 + (5, 1)


def test_names_xml_cannot_hold_still_give_the_page() -> None:
    odd = "bell\x07\x00"
    page = render(build_view([mirror(1, odd)], {1: 2}, {}, NOW, DAY))
    chart = page.split('<svg class="history"', 1)[1]
    assert "bell\ufffd\ufffd: 2" in chart
