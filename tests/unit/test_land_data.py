"""The committed land outlines (``mirrorbits/web/data/land-110m.json``) and their packaging."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirrorbits.web import svgmap

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "mirrorbits" / "web" / svgmap.LAND_DATA
NUMBER = r"-?(?:\d+(?:\.\d)?|\.\d)"
STEP = rf"{NUMBER},?{NUMBER}"
PATH = re.compile(rf"M{NUMBER},{NUMBER}l{STEP}(?: {STEP})*z")


def rings() -> list[list[tuple[float, float]]]:
    """Each path of the file as absolute points."""
    found = []
    for path in json.loads(DATA.read_text("utf-8"))["paths"]:
        numbers = [float(n) for n in re.findall(NUMBER, path)]
        x, y = numbers[0], numbers[1]
        points = [(x, y)]
        for dx, dy in zip(numbers[2::2], numbers[3::2], strict=True):
            x, y = x + dx, y + dy
            points.append((x, y))
        found.append(points)
    return found


def on_land(latitude: float, longitude: float) -> bool:
    """Even-odd rule over every ring, as the maps fill them."""
    px, py = svgmap.project(latitude, longitude)
    inside = False
    for ring in rings():
        for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
            if (y0 > py) != (y1 > py) and px < x0 + (py - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
    return inside


def test_the_file_is_well_formed_and_small() -> None:
    text = DATA.read_text("utf-8")
    assert len(text.encode()) < 60_000
    document = json.loads(text)
    assert (document["width"], document["height"]) == (svgmap.WIDTH, svgmap.HEIGHT)
    assert document["fill_rule"] == "evenodd"
    assert len(document["paths"]) > 100  # continents and islands
    for path in document["paths"]:
        assert PATH.fullmatch(path), path[:80]
    for ring in rings():
        assert len(ring) >= 3
        for x, y in ring:
            assert -0.05 <= x <= svgmap.WIDTH + 0.05 and -0.05 <= y <= svgmap.HEIGHT + 0.05


def test_the_file_credits_its_sources() -> None:
    document = json.loads(DATA.read_text("utf-8"))
    assert "Natural Earth" in document["source"] and "public domain" in document["source"]
    assert "world-atlas" in document["package"]
    assert "Copyright 2013-2019 Michael Bostock" in document["licence"]
    assert "permission notice appear in all copies" in document["licence"]
    notice = (ROOT / "NOTICE").read_text("utf-8")
    assert "Natural Earth" in notice and "Copyright 2013-2019 Michael Bostock" in notice


@pytest.mark.parametrize(("place", "latitude", "longitude"), [
    ("Paris", 48.85, 2.35), ("the Sahara", 23.0, 10.0), ("Brasília", -15.8, -47.9),
    ("Moscow", 55.75, 37.6), ("Sydney's hinterland", -33.0, 150.0), ("Chukotka", 66.0, -175.0),
    ("Denver", 39.7, -105.0), ("the South Pole", -89.0, 0.0), ("Antarctica at 180", -85.0, 179.9),
    ("Iceland", 64.9, -18.5), ("Honshu", 36.0, 138.5),
])
def test_land_is_where_land_is(place: str, latitude: float, longitude: float) -> None:
    assert on_land(latitude, longitude), place


@pytest.mark.parametrize(("place", "latitude", "longitude"), [
    ("the Atlantic", 30.0, -40.0), ("the Pacific", 0.0, -140.0), ("the Caspian Sea", 42.0, 51.0),
    ("the Mediterranean", 35.0, 18.0), ("the Indian Ocean", -20.0, 80.0),
    ("the Bering Sea", 58.0, -178.0), ("the Southern Ocean", -60.0, 0.0),
])
def test_sea_is_where_sea_is(place: str, latitude: float, longitude: float) -> None:
    assert not on_land(latitude, longitude), place


def test_the_package_ships_the_file(tmp_path: Path) -> None:
    """``setup.cfg``'s package data puts the file into the built package (as ``pip install``)."""
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
    for name in ("mirrorbits", "twisted"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=ignore)
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
         "-d", str(tmp_path / "build")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    built = tmp_path / "build" / "mirrorbits" / "web" / svgmap.LAND_DATA
    assert built.read_bytes() == DATA.read_bytes()


def test_the_land_is_read_once_per_process() -> None:
    assert svgmap.land() is svgmap.land()
    assert svgmap.land().path_data == "".join(json.loads(DATA.read_text("utf-8"))["paths"])
