"""A real browser shows the ``?mirrorlist`` page: headless Chromium takes a screenshot of it.

The picture is read back: the map is where the page puts it, land and sea are where they are on
Earth, and the client and mirror #1 are drawn at their places.
"""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest

from mirrorbits.web import svgmap
from tests.daemon import DaemonProcess
from tests.mirrorlist_html import parse_tree
from tests.screenshots import decode_png, hex_colour, needs_chromium, screenshot

pytestmark = [pytest.mark.integration, needs_chromium]

WIDTH, HEIGHT = 1200, 900
SEA, LAND = hex_colour("#d7e8f5"), hex_colour("#f3f1e7")
GRID = hex_colour("#b9cfe1")
WEIGHTED, CLIENT = hex_colour("#2e8b3d"), hex_colour("#d23c3c")


def fetch(daemon: DaemonProcess, target: str) -> str:
    host, port = daemon.http
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", target)
        return connection.getresponse().read().decode("utf-8")
    finally:
        connection.close()


def test_screenshot_of_the_page(conformance_daemon: DaemonProcess, tmp_path: Path) -> None:
    host, port = conformance_daemon.http
    # The browser cannot send X-Forwarded-For: ``fromip`` places the client in Lisbon.
    target = "/ANNOUNCE.md?mirrorlist&fromip=100.96.1.10"
    picture = decode_png(screenshot(f"http://{host}:{port}{target}", tmp_path, WIDTH, HEIGHT))
    assert (picture.width, picture.height) == (WIDTH, HEIGHT)

    left, top, right, bottom = picture.box([SEA, LAND, GRID])
    scale = (right + 1 - left) / svgmap.WIDTH
    assert scale > 0.8  # the map is drawn, at a readable size
    assert (bottom + 1 - top) / scale == pytest.approx(svgmap.HEIGHT, abs=2)

    def at(latitude: float, longitude: float) -> tuple[float, float]:
        x, y = svgmap.project(latitude, longitude)
        return left + x * scale, top + y * scale

    # Away from the graticule (every 30°): the Sahara, Brazil, Siberia, Australia, the USA,
    # Antarctica; the Atlantic, the Pacific, the Indian Ocean, the Caspian and the Mediterranean.
    for latitude, longitude in [(23.0, 10.0), (-12.0, -50.0), (62.0, 95.0), (-25.0, 134.0),
                                (40.0, -100.0), (-85.0, 15.0)]:
        assert picture.count_near(*at(latitude, longitude), 4, LAND, 0) > 40, (latitude, longitude)
    for latitude, longitude in [(25.0, -40.0), (-10.0, -140.0), (-35.0, 80.0), (42.0, 50.5),
                                (35.0, 18.0)]:
        assert picture.count_near(*at(latitude, longitude), 4, SEA, 0) > 40, (latitude, longitude)

    # The markers: where the page's own SVG says they are.
    svg = parse_tree(fetch(conformance_daemon, target)).find("svg")
    assert svg is not None
    first = svg.find_all("g", class_="mirror")[-1].find("circle")
    you = svg.find("g", class_="client").find("circle")
    assert first.attrs["fill"] == "#2e8b3d"
    for circle, colour in [(first, WEIGHTED), (you, CLIENT)]:
        x, y = left + float(circle.attrs["cx"]) * scale, top + float(circle.attrs["cy"]) * scale
        assert picture.count_near(x, y, round(5 * scale), colour) > 20, circle.attrs
