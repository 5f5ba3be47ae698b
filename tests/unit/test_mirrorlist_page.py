"""The ``?mirrorlist`` page: its view-model and the HTML a person reads (spec §8.8)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import html5lib  # type: ignore[import-untyped]
import pytest
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent, globalLogPublisher

from mirrorbits.model import FileInfo, GeoRecord, Mirror
from mirrorbits.selection.types import Candidate
from mirrorbits.web import svgmap
from mirrorbits.web.mirrorlist import (
    MirrorlistView,
    build_view,
    distance_text,
    file_href,
    fromip_override,
    join_url,
    render_mirrorlist,
    safe_href,
    selection_text,
)
from mirrorbits.web.pages import TemplateStore
from tests.mirrorlist_html import read_page

T0 = 1687249800  # 2023-06-20 08:30:00 UTC
LYON = GeoRecord(country_code="FR", continent_code="EU", city="Lyon", country="France",
                 latitude=45.764, longitude=4.8357, as_name="Lyon Telecom & Co", as_num=16276)
NOWHERE = GeoRecord(as_name="Anycast <Net>", as_num=65211)


def mirror(ident: int, name: str, **kw: Any) -> Mirror:
    kw.setdefault("country_codes", "FR")
    kw.setdefault("continent_code", "EU")
    return Mirror(id=ident, name=name, enabled=True, **kw)


def cand(m: Mirror, url: str, distance: float = 0.0, weight: float = 0.0,
         reason: str = "") -> Candidate:
    return Candidate(m, None, distance, absolute_url=url, weight=weight, exclude_reason=reason)


def info(path: str = "/pool/a.deb", **kw: Any) -> FileInfo:
    kw.setdefault("size", 1_000_000)
    kw.setdefault("mod_time_ns", T0 * 1_000_000_000 + 123_456_789)
    return FileInfo(path=path, **kw)


def view_of(file: FileInfo, client: GeoRecord, mirrors: list[Candidate],
            excluded: list[Candidate] | None = None, fallback: bool = False,
            ip: str = "100.96.1.10") -> MirrorlistView:
    return build_view(file, ip, client, mirrors, excluded or [], fallback,
                      version="v9.9.9", hostname="box<1>")


def render(view: MirrorlistView, templates: str = "") -> str:
    pages: list[bytes] = []
    Deferred.fromCoroutine(render_mirrorlist(view, templates)).addCallback(pages.append)
    assert len(pages) == 1  # rendered synchronously: nothing to wait for
    return pages[0].decode("utf-8")


def assert_valid_html5(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>\n")
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)


# --- small formats ----------------------------------------------------------------------------


@pytest.mark.parametrize(("weight", "text"), [
    (0.0, "n/a"), (0.73, "<1%"), (0.999, "<1%"), (1.0, "1%"), (51.4, "51%"), (99.27, "99%"),
    (100.0, "100%"),
])
def test_selection_text(weight: float, text: str) -> None:
    assert selection_text(weight) == text


def test_distance_text() -> None:
    assert distance_text(392.14078) == "392 Km"
    assert distance_text(0.0) == "0 Km"
    assert distance_text(5725.6) == "5726 Km"


@pytest.mark.parametrize(("query", "expected"), [
    ({}, "100.96.1.10"),
    ({b"fromip": [b"100.96.6.10"]}, "100.96.6.10"),
    ({b"fromip": [b"2001:db8:cafe::20"]}, "2001:db8:cafe::20"),
    ({b"fromip": [b"capetown"]}, "100.96.1.10"),
    ({b"fromip": [b""]}, "100.96.1.10"),
    ({b"fromip": [b"1.2.3.4, 5.6.7.8"]}, "100.96.1.10"),
])
def test_fromip_override(query: dict[bytes, list[bytes]], expected: str) -> None:
    assert fromip_override(query, "100.96.1.10") == expected


def test_join_url_has_exactly_one_slash() -> None:
    assert join_url("http://m/pub/", "/a.txt") == "http://m/pub/a.txt"
    assert join_url("http://m/pub", "a.txt") == "http://m/pub/a.txt"
    assert join_url("http://m/", "") == "http://m/"


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,x",
    "ftp://m/", "//evil.example/", "", "vbscript:x",
])
def test_unsafe_urls_are_not_links(url: str) -> None:
    assert safe_href(url) == ""
    assert file_href(url, "/a") == ""


def test_hrefs_are_percent_encoded() -> None:
    assert safe_href("HTTPS://m.example/") == "HTTPS://m.example/"
    assert file_href("http://m/", "/media/install image.img") == (
        "http://m/media/install%20image.img")
    assert file_href("http://m/", "/manuals/guía-rápida.pdf") == (
        "http://m/manuals/gu%C3%ADa-r%C3%A1pida.pdf")
    # A file name is never a query, a fragment or an escape.
    assert file_href("http://m/", "/a?b#c%d") == "http://m/a%3Fb%23c%25d"
    assert safe_href('http://m/"><script>') == "http://m/%22%3E%3Cscript%3E"
    assert file_href("http://m/my%20mirror/", "/a b") == "http://m/my%20mirror/a%20b"


# --- view-model -------------------------------------------------------------------------------


def three_mirrors() -> list[Candidate]:
    return [
        cand(mirror(1, "paris", sponsor_name="Paris Sponsor", sponsor_url="https://sp.example/"),
             "https://paris.example/", 392.14078, 99.27),
        cand(mirror(2, "berlin", country_codes="DE PL"), "http://berlin.example/pub/",
             974.8, 0.73),
        cand(mirror(3, "newyork", country_codes="US", continent_code="NA"),
             "http://ny.example/", 6146.1),
    ]


def test_view_rows() -> None:
    view = view_of(info(), LYON, three_mirrors())
    assert [(r.rank, r.mirror, r.shown_name) for r in view.ranked] == [
        (1, "paris", "Paris Sponsor"), (2, "berlin", "berlin"), (3, "newyork", "newyork")]
    first, second, _ = view.ranked
    assert first.url_text == "https://paris.example/"
    assert first.url_href == "https://paris.example/pool/a.deb"
    assert first.name_href == "https://sp.example/"
    assert second.url_href == "http://berlin.example/pub/pool/a.deb"
    assert (second.country, second.continent) == ("DE PL", "EU")
    assert [r.distance for r in view.ranked] == ["392 Km", "975 Km", "6146 Km"]
    assert [r.selection for r in view.ranked] == ["99%", "<1%", "n/a"]
    assert [r.weighted for r in view.ranked] == [True, True, False]
    assert view.file.modified == "Tue, 20 Jun 2023 08:30:00 UTC"
    assert (view.file.size_human, view.file.size_bytes) == ("976.6 KiB", 1_000_000)


def test_excluded_sorted_by_reason_bytes() -> None:
    excluded = [
        cand(mirror(4, "d"), "http://d/", reason="User's country restriction"),
        cand(mirror(5, "e"), "", reason="Disabled"),
        cand(mirror(6, "f"), "http://f/", reason="AS only"),
        cand(mirror(7, "g"), "http://g/", reason="Mod time mismatch (diff: -5m0s)"),
        cand(mirror(8, "h"), "http://h/", reason="Country only"),
    ]
    view = view_of(info(), LYON, three_mirrors()[:1], excluded)
    assert [r.reason for r in view.excluded] == [
        "AS only", "Country only", "Disabled", "Mod time mismatch (diff: -5m0s)",
        "User's country restriction"]
    disabled = view.excluded[2]
    assert (disabled.url_text, disabled.url_href) == ("", "")
    assert view.excluded[0].url_href == "http://f/"  # the base URL alone, not the file


def test_unscanned_file_and_root() -> None:
    view = view_of(FileInfo(path=""), LYON, three_mirrors()[:1], fallback=True)
    assert view.path == "/"
    assert not view.file.scanned
    assert (view.file.md5, view.file.sha1, view.file.sha256) == ("N/A", "N/A", "N/A")
    assert view.ranked[0].url_href == "https://paris.example/"


# --- rendered page ----------------------------------------------------------------------------


def test_page_reads_like_the_reference() -> None:
    excluded = [cand(mirror(9, "oslo"), "", reason="Disabled")]
    page = render(view_of(info(md5="m5", sha1="s1"), LYON, three_mirrors(), excluded))
    assert_valid_html5(page)
    data = read_page(page)
    assert data["title"] == "Mirrorlist /pool/a.deb"
    assert data["headline"] == "/pool/a.deb"
    assert data["client_box"]["sentences"] == (
        "You are connecting with IP address 100.96.1.10, which belongs to autonomous system "
        "Lyon Telecom & Co (ASN16276). We believe you are near Lyon in France and have "
        "selected mirrors based on this.")
    assert data["file"]["sentence"] == (
        "The file /pool/a.deb has a size of 976.6 KiB (1000000 bytes) and was last modified "
        "on Tue, 20 Jun 2023 08:30:00 UTC.")
    assert data["hashes_shown"] == {"MD5": "m5", "SHA1": "s1", "SHA256": "N/A"}
    assert [(r["rank"], r["shown_name"], r["url_text"], r["url_href"], r["selection"])
            for r in data["ranked"]] == [
        ("1.", "Paris Sponsor", "https://paris.example/", "https://paris.example/pool/a.deb",
         "99%"),
        ("2.", "berlin", "http://berlin.example/pub/", "http://berlin.example/pub/pool/a.deb",
         "<1%"),
        ("3.", "newyork", "http://ny.example/", "http://ny.example/pool/a.deb", "n/a"),
    ]
    assert [r["weighted"] for r in data["ranked"]] == [True, True, False]
    assert [(r["shown_name"], r["url_text"], r["reason"]) for r in data["excluded"]] == [
        ("oslo", "", "Disabled")]
    assert not data["fallback_warning"] and not data["no_mirrors_message"]
    assert data["footer"]["text"] == "Mirrorbits v9.9.9 running on box<1>"


def test_unlocated_client_and_unscanned_file() -> None:
    page = render(view_of(FileInfo(path="/pool"), NOWHERE, three_mirrors(), fallback=True,
                          ip="100.96.10.10"))
    assert_valid_html5(page)
    data = read_page(page)
    assert data["client_box"]["sentences"] == (
        "You are connecting with IP address 100.96.10.10, which belongs to autonomous system "
        "Anycast <Net> (ASN65211). We were not able to use your IP to approximate your "
        "location, so have chosen the mirrors at random.")
    assert data["file"]["sentence"] == (
        "The file /pool has not been scanned yet, size and modification time are unknown.")
    assert data["fallback_warning"]
    assert data["tree"].find(id="fallback-warning").text() == (
        "Warning: file not served by any mirror, fallbacks to the rescue.")
    assert data["excluded"] == []


def test_country_without_city() -> None:
    client = GeoRecord(country_code="ES", continent_code="EU", country="Spain")
    data = read_page(render(view_of(info(), client, three_mirrors())))
    assert "We believe you are somewhere in Spain and have selected mirrors based on this." in (
        data["client_box"]["sentences"])


def test_no_mirrors_message() -> None:
    page = render(view_of(info(), LYON, []))
    assert_valid_html5(page)
    data = read_page(page)
    assert data["no_mirrors_message"] and data["ranked"] == []
    assert data["tree"].find(id="no-mirrors").text() == "No mirrors for this file"


HOSTILE = '<script>alert("x")</script>&amp;'


def test_hostile_values_are_escaped() -> None:
    evil = mirror(1, HOSTILE, sponsor_name="<b>Sponsor</b>", sponsor_url="javascript:alert(1)",
                  country_codes='"><i>', continent_code="<EU>")
    evil_down = mirror(2, "down'\"<x>", sponsor_name=HOSTILE, sponsor_url="https://ok.example/")
    path = '/dir/<img src=x onerror=alert(1)>&"quote\'.iso'
    client = GeoRecord(country_code="FR", city="<Lyon>", country="France & co",
                       as_name="<AS>", as_num=1)
    page = render(view_of(info(path), client,
                          [cand(evil, 'http://m.example/"><script>', 10.0, 100.0)],
                          [cand(evil_down, "javascript:alert(2)", reason="<Down>")],
                          ip='1.2.3.4"><script>'))
    assert_valid_html5(page)
    data = read_page(page)
    tree = data["tree"]
    assert tree.find_all("script") == [] and tree.find_all("img") == []
    assert tree.find_all("b") == [] and tree.find_all("i") == [] and tree.find_all("x") == []
    assert data["title"] == f"Mirrorlist {path}"
    assert data["headline"] == path
    assert data["file"]["path"] == path
    assert data["client_box"]["ip"] == '1.2.3.4"><script>'
    assert data["client_box"]["city"] == "<Lyon>"
    row = data["ranked"][0]
    assert row["shown_name"] == "<b>Sponsor</b>"
    assert row["name_href"] == ""  # javascript: sponsor URL is not a link
    assert row["mirror"] == HOSTILE
    assert row["url_text"] == 'http://m.example/"><script>'
    assert row["url_href"].startswith("http://m.example/%22%3E%3Cscript%3E/dir/")
    assert (row["country"], row["continent"]) == ('"><i>', "<EU>")
    down = data["excluded"][0]
    assert (down["shown_name"], down["name_href"]) == (HOSTILE, "https://ok.example/")
    assert (down["url_text"], down["url_href"], down["reason"]) == (
        "javascript:alert(2)", "", "<Down>")
    assert all(href.startswith(("http://", "https://")) for href in data["links"])
    assert "javascript:" not in "".join(data["links"])


def test_undecodable_file_name_is_shown() -> None:
    path = b"/bad-\xff.bin".decode("utf-8", "surrogateescape")
    page = render(view_of(info(path), LYON, three_mirrors()[:1]))
    data = read_page(page)
    assert data["headline"] == "/bad-\ufffd.bin"
    assert data["ranked"][0]["url_href"] == "https://paris.example/bad-%FF.bin"


def test_map_shows_client_and_first_19_mirrors() -> None:
    mirrors = [cand(mirror(i, f"m{i}", latitude=float(i), longitude=float(2 * i)),
                    f"http://m{i}/", float(i), 50.0 if i <= 2 else 0.0) for i in range(1, 26)]
    page = render(view_of(info(), LYON, mirrors))
    assert_valid_html5(page)
    tree = read_page(page)["tree"]
    svg = tree.find("svg")
    assert svg is not None
    numbers = sorted(int(t.text()) for t in svg.find_all("text"))
    assert numbers == list(range(1, 20))
    weighted = [g for g in svg.find_all("g", class_="mirror")
                if g.find("circle").attrs["fill"] == "#2e8b3d"]
    assert len(weighted) == 2
    client = svg.find("g", class_="client")
    assert client is not None and client.find("title").text() == "You (Lyon, France)"
    line = svg.find("line", class_="to-first")
    assert line is not None
    # Equirectangular: Lyon (45.764 N, 4.8357 E) on a 720x360 picture; mirror #1 (1 N, 2 E) is
    # pushed from (364, 178) by its neighbours (2 N 4 E, 3 N 6 E...: 19 markers 4.5 px apart).
    assert (float(line.attrs["x1"]), float(line.attrs["y1"])) == pytest.approx((369.7, 88.5))
    first = svg.find_all("g", class_="mirror")[-1].find("circle")
    assert (line.attrs["x2"], line.attrs["y2"]) == (first.attrs["cx"], first.attrs["cy"])
    assert math.dist((float(first.attrs["cx"]), float(first.attrs["cy"])), (364, 178)) < 30


def map_of(page: str) -> Any:
    svg = read_page(page)["tree"].find("svg")
    assert svg is not None
    return svg


def marker_spots(svg: Any) -> list[tuple[str, float, float]]:
    """(number, cx, cy) of each mirror marker, in drawing order."""
    spots = []
    for group in svg.find_all("g", class_="mirror"):
        circle = group.find("circle")
        spots.append((group.find("text").text(), float(circle.attrs["cx"]),
                      float(circle.attrs["cy"])))
    return spots


def test_mirrors_at_one_place_are_spread_round_it() -> None:
    # Three mirrors in one data centre (same coordinates), one elsewhere; the client in Lyon.
    mirrors = [cand(mirror(i, f"m{i}", latitude=1.35, longitude=103.82), f"http://m{i}/",
                    float(i), 30.0) for i in (1, 2, 3)]
    mirrors.append(cand(mirror(4, "m4", latitude=40.42, longitude=-3.70), "http://m4/", 4.0))
    page = render(view_of(info(), LYON, mirrors))
    assert_valid_html5(page)
    svg = map_of(page)
    spots = marker_spots(svg)
    assert [number for number, _, _ in spots] == ["4", "3", "2", "1"]  # #1 on top
    singapore = (567.6, 177.3)  # as written, to 0.1 px
    round_it = [(x, y) for number, x, y in spots if number in "123"]
    assert len(set(round_it)) == 3
    for x, y in round_it:  # on an 8.4 px circle round the place: 7 px markers overlap little
        assert math.dist((x, y), singapore) == pytest.approx(8.4, abs=0.1)
    assert spots[0][1:] == pytest.approx((352.6, 99.2))  # Madrid, alone: in place
    leaders = svg.find_all("line", class_="leader")
    assert len(leaders) == 3
    for line in leaders:
        assert (float(line.attrs["x1"]), float(line.attrs["y1"])) == singapore
        assert (float(line.attrs["x2"]), float(line.attrs["y2"])) in round_it
    # The line to #1 ends at #1's marker.
    to_first = svg.find("line", class_="to-first")
    assert (float(to_first.attrs["x2"]), float(to_first.attrs["y2"])) == spots[-1][1:]


def test_neighbouring_markers_are_pushed_apart() -> None:
    # Lyon (the client and a mirror), four mirrors in Frankfurt 5 degrees away, one in Geneva.
    places = [(45.764, 4.8357)] + [(50.11, 8.68)] * 4 + [(46.2, 6.14)]
    mirrors = [cand(mirror(i, f"m{i}", latitude=lat, longitude=lon), f"http://m{i}/", float(i))
               for i, (lat, lon) in enumerate(places, start=1)]
    svg = map_of(render(view_of(info(), LYON, mirrors)))
    spots = {int(number): (x, y) for number, x, y in marker_spots(svg)}
    client = svg.find("g", class_="client").find("circle")
    spots[0] = (float(client.attrs["cx"]), float(client.attrs["cy"]))
    for a in spots:
        for b in spots:
            if a < b:  # 7 px markers: centres 1.7 radius apart at least (rounded to 0.1 px)
                assert math.dist(spots[a], spots[b]) >= 11.9 - 0.15, (a, b)
    for number, (latitude, longitude) in enumerate([(45.764, 4.8357), *places]):
        place = svgmap.project(latitude, longitude)
        assert math.dist(spots[number], place) < 25, number  # still near its place


def test_a_mirror_in_the_clients_city_is_not_hidden_by_the_client() -> None:
    mirrors = [cand(mirror(1, "lyon", latitude=45.764, longitude=4.8357), "http://l/")]
    svg = map_of(render(view_of(info(), LYON, mirrors)))
    [(_, x, y)] = marker_spots(svg)
    client = svg.find("g", class_="client").find("circle")
    you = (float(client.attrs["cx"]), float(client.attrs["cy"]))
    assert math.dist((x, y), you) > 7 + 5  # side by side
    assert len(svg.find_all("line", class_="leader")) == 2


def test_the_land_is_natural_earths_and_credited() -> None:
    mirrors = [cand(mirror(1, "m1", latitude=1.0, longitude=2.0), "http://m1/")]
    page = render(view_of(info(), LYON, mirrors))
    svg = map_of(page)
    [land] = svg.find_all("path", class_="land")
    assert land.attrs["d"] == svgmap.land().path_data
    assert land.attrs["fill-rule"] == "evenodd"
    assert "<!-- Land: Natural Earth 1:110m land" in page
    assert "world-atlas" in page.split("<!-- Land:")[1].split("-->")[0]
    assert len(page) < 60_000  # the land is most of the page


def test_no_map_without_any_location() -> None:
    mirrors = [cand(mirror(0, "fallback0", country_codes="ES"), "https://fb.example/")]
    tree = read_page(render(view_of(info(), NOWHERE, mirrors, fallback=True)))["tree"]
    assert tree.find("svg") is None


def test_templates_directory_overrides_the_page(tmp_path: Path) -> None:
    (tmp_path / "mirrorlist.xhtml").write_text(
        '<div xmlns:t="http://twistedmatrix.com/ns/twisted.web.template/0.1">'
        '<p id="custom">Our mirrors</p><table id="mirror-table"><tbody>'
        '<tr t:render="ranked"><td class="rank"><t:slot name="rank"/></td>'
        '<td class="name"><t:slot name="name"/></td><td class="url"><t:slot name="url"/></td>'
        '<td class="country"><t:slot name="country"/></td>'
        '<td class="continent"><t:slot name="continent"/></td>'
        '<td class="distance"><t:slot name="distance"/></td>'
        '<td class="selection"><t:slot name="selection"/></td></tr></tbody></table>'
        '<p id="client-as" t:render="client"><t:slot name="ip"/></p>'
        '<p id="client-location">x</p><p id="file-info">y</p></div>')
    page = render(view_of(info(), LYON, three_mirrors()), str(tmp_path))
    assert_valid_html5(page)
    data = read_page(page)
    assert data["tree"].find(id="custom").text() == "Our mirrors"
    assert [r["shown_name"] for r in data["ranked"]] == ["Paris Sponsor", "berlin", "newyork"]
    assert data["footer"]["text"] == "Mirrorbits v9.9.9 running on box<1>"  # packaged base


def test_broken_or_absent_override_falls_back_to_the_packaged_page(tmp_path: Path) -> None:
    (tmp_path / "mirrorlist.xhtml").write_text("<div><p>not closed</div>")
    events: list[dict[str, Any]] = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    try:
        for directory in (str(tmp_path), str(tmp_path), str(tmp_path / "missing"), ""):
            data = read_page(render(view_of(info(), LYON, three_mirrors()), directory))
            assert [r["mirror"] for r in data["ranked"]] == ["paris", "berlin", "newyork"]
    finally:
        globalLogPublisher.removeObserver(observer)
    # An operator's mistake: one line, once (not a traceback at each request).
    said = [e for e in events if str(e.get("log_namespace", "")).startswith("mirrorbits")]
    assert [formatEvent(e) for e in said] == [
        f"Template {tmp_path}/mirrorlist.xhtml is unusable, the packaged one is used: "
        f"{tmp_path}/mirrorlist.xhtml:1:20: mismatched tag"]
    assert "log_failure" not in said[0]


def test_template_store_rereads_a_changed_file(tmp_path: Path) -> None:
    import os
    store = TemplateStore()
    target = tmp_path / "x.xhtml"
    target.write_text("<p>one</p>")
    first = store.loader("x.xhtml", str(tmp_path))
    assert store.loader("x.xhtml", str(tmp_path)) is first
    target.write_text("<p>two</p>")
    os.utime(target, ns=(0, 1))
    assert store.loader("x.xhtml", str(tmp_path)) is not first
