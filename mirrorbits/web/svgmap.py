"""A small world map as inline SVG: the client, the first mirrors, a line to mirror #1.

Self-contained (no tiles, no script): an equirectangular projection with a graticule and the
land of Natural Earth's 1:110m outlines (``data/land-110m.json``, shared with ``?mirrorstats``).
Markers that would cover each other are moved apart (:mod:`mirrorbits.web.mapspread`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib import resources

from attrs import frozen
from twisted.web.template import Comment, Tag

from mirrorbits.web.mapspread import spread

WIDTH = 720
HEIGHT = 360
MAX_MARKERS = 19

_SEA = "#d7e8f5"
_LAND = "#f3f1e7"
_GRID = "#b9cfe1"
_WEIGHTED = "#2e8b3d"
_UNWEIGHTED = "#3367b0"
_CLIENT = "#d23c3c"
_MIRROR_RADIUS = 7

LAND_DATA = "data/land-110m.json"  # made by tools/landmap.py; credits inside


@frozen
class Land:
    """The land of both maps, already projected onto the ``WIDTH`` × ``HEIGHT`` picture."""

    path_data: str
    fill_rule: str
    credit: str


@functools.cache
def land() -> Land:
    """The shipped land outlines (read once per process)."""
    text = resources.files("mirrorbits.web").joinpath(LAND_DATA).read_text("utf-8")
    document = json.loads(text)
    if (document["width"], document["height"]) != (WIDTH, HEIGHT):
        raise ValueError(f"{LAND_DATA} is drawn for {document['width']}x{document['height']}, "
                         f"not {WIDTH}x{HEIGHT}")
    return Land(
        path_data="".join(document["paths"]),
        fill_rule=document["fill_rule"],
        credit=f" Land: {document['source']}; {document['package']} (ISC licence). ",
    )


@frozen
class Marker:
    """A point on the map: ``number`` 0 is the client, 1… are mirrors in rank order."""

    number: int
    label: str
    latitude: float
    longitude: float
    weighted: bool = False


def project(latitude: float, longitude: float) -> tuple[float, float]:
    """Equirectangular projection onto the ``WIDTH`` × ``HEIGHT`` picture (clamped)."""
    lat = min(90.0, max(-90.0, latitude))
    lon = min(180.0, max(-180.0, longitude))
    return (lon + 180.0) / 360.0 * WIDTH, (90.0 - lat) / 180.0 * HEIGHT


def _el(name: str, **attributes: str) -> Tag:
    return Tag(name, attributes={k.rstrip("_").replace("_", "-"): v for k, v in attributes.items()})


def _n(value: float) -> str:
    return f"{value:.1f}"


def land_tags(**attributes: str) -> list[Tag | Comment]:
    """The credit (an SVG comment) and the land as one ``<path>`` with ``attributes``."""
    shape = land()
    path = _el("path", d=shape.path_data, fill_rule=shape.fill_rule, **attributes)
    return [Comment(shape.credit), path]


def _background() -> list[Tag | Comment]:
    shapes: list[Tag | Comment] = [_el("rect", width=str(WIDTH), height=str(HEIGHT), fill=_SEA)]
    shapes += land_tags(fill=_LAND, stroke="#c9c3a8", stroke_width="0.5", class_="land")
    for lon in range(-150, 180, 30):
        x = _n(project(0, lon)[0])
        shapes.append(_el("line", x1=x, y1="0", x2=x, y2=str(HEIGHT), stroke=_GRID,
                          stroke_width="0.5"))
    for lat in range(-60, 90, 30):
        y = _n(project(lat, 0)[1])
        shapes.append(_el("line", x1="0", y1=y, x2=str(WIDTH), y2=y, stroke=_GRID,
                          stroke_width="1" if lat == 0 else "0.5"))
    return shapes


def map_svg(client: Marker | None, mirrors: Sequence[Marker]) -> Tag:
    """The map as an ``<svg>`` tag (text is escaped by the flattener).

    Markers that would cover each other are moved apart, each tied to its place by a thin line;
    mirror #1 is drawn on top of the other mirrors, and the client on top of all.
    """
    svg = _el("svg", xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {WIDTH} {HEIGHT}",
              role="img", aria_label="Map of your location and of the mirrors")
    svg(_el("title")("Your location and the mirrors"), *_background())
    shown = list(mirrors[:MAX_MARKERS])
    everyone = ([client] if client is not None else []) + shown
    spots = spread([project(m.latitude, m.longitude) for m in everyone], _MIRROR_RADIUS, WIDTH,
                   HEIGHT)
    for spot in spots:  # under every marker: a thin line from the place to its marker
        if spot.moved:
            svg(_el("line", x1=_n(spot.place_x), y1=_n(spot.place_y), x2=_n(spot.x),
                    y2=_n(spot.y), stroke="#555555", stroke_width="0.8", class_="leader"))
    client_spot = spots.pop(0) if client is not None else None
    if client_spot is not None and shown and shown[0].number == 1:
        svg(_el("line", x1=_n(client_spot.x), y1=_n(client_spot.y), x2=_n(spots[0].x),
                y2=_n(spots[0].y), stroke=_CLIENT, stroke_width="1.5", stroke_dasharray="4 3",
                class_="to-first"))
    for marker, spot in reversed(list(zip(shown, spots, strict=True))):  # #1 last, on top
        group = _el("g", class_="mirror")
        group(
            _el("title")(f"{marker.number}. {marker.label}"),
            _el("circle", cx=_n(spot.x), cy=_n(spot.y), r=str(_MIRROR_RADIUS),
                stroke="#ffffff", stroke_width="1",
                fill=_WEIGHTED if marker.weighted else _UNWEIGHTED),
            _el("text", x=_n(spot.x), y=_n(spot.y + 3), text_anchor="middle", font_size="8",
                font_family="sans-serif", fill="#ffffff")(str(marker.number)),
        )
        svg(group)
    if client is not None and client_spot is not None:
        svg(_el("g", class_="client")(
            _el("title")(client.label),
            _el("circle", cx=_n(client_spot.x), cy=_n(client_spot.y), r="5", fill=_CLIENT,
                stroke="#ffffff", stroke_width="1.5"),
        ))
    return svg
