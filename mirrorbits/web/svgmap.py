"""A small world map as inline SVG: the client, the first mirrors, a line to mirror #1.

Pure and self-contained (no tiles, no script): an equirectangular projection with a graticule
and coarse, hand-drawn land outlines only meant to help the eye find its way.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen
from twisted.web.template import Tag

WIDTH = 720
HEIGHT = 360
MAX_MARKERS = 19

_SEA = "#d7e8f5"
_LAND = "#f3f1e7"
_GRID = "#b9cfe1"
_WEIGHTED = "#2e8b3d"
_UNWEIGHTED = "#3367b0"
_CLIENT = "#d23c3c"

# Coarse outlines, (longitude, latitude) pairs (the ?mirrorstats map draws them too).
LAND_OUTLINES: tuple[tuple[tuple[float, float], ...], ...] = (
    ((-168, 66), (-162, 70), (-140, 70), (-120, 72), (-95, 72), (-80, 73), (-62, 66), (-56, 52),
     (-66, 45), (-70, 42), (-76, 35), (-81, 31), (-80, 25), (-83, 29), (-90, 30), (-97, 27),
     (-97, 21), (-92, 18), (-87, 21), (-88, 15), (-83, 9), (-78, 8), (-85, 11), (-92, 14),
     (-105, 20), (-110, 23), (-115, 30), (-118, 34), (-124, 40), (-124, 48), (-130, 55),
     (-140, 60), (-152, 58), (-165, 60)),
    ((-78, 8), (-72, 12), (-62, 11), (-52, 5), (-35, -5), (-39, -15), (-48, -26), (-58, -35),
     (-65, -42), (-68, -55), (-75, -50), (-73, -37), (-71, -18), (-81, -5), (-80, 1)),
    ((-10, 36), (-9, 43), (-2, 44), (-5, 48), (2, 51), (8, 54), (10, 57), (5, 62), (15, 69),
     (28, 71), (40, 67), (60, 69), (80, 73), (105, 78), (140, 72), (180, 69), (180, 65),
     (165, 60), (160, 53), (142, 47), (135, 43), (129, 35), (122, 40), (121, 31), (117, 24),
     (108, 21), (105, 10), (100, 14), (98, 8), (103, 1), (98, 16), (92, 22), (80, 15), (77, 8),
     (73, 17), (68, 24), (57, 26), (58, 22), (52, 16), (45, 13), (43, 16), (35, 28), (33, 31),
     (36, 36), (27, 37), (26, 40), (23, 37), (20, 40), (18, 40), (12, 44), (8, 44), (3, 43),
     (-5, 36)),
    ((-17, 21), (-17, 15), (-12, 7), (-8, 4), (5, 4), (9, 4), (10, -3), (12, -17), (17, -30),
     (20, -35), (27, -34), (33, -26), (40, -15), (40, -5), (44, -1), (51, 11), (43, 12), (37, 20),
     (32, 31), (20, 32), (10, 37), (-6, 36), (-10, 30)),
    ((114, -22), (122, -18), (131, -12), (137, -12), (142, -10), (146, -19), (153, -27),
     (150, -37), (141, -38), (131, -31), (118, -35), (115, -33)),
    ((-73, 78), (-60, 82), (-30, 83), (-20, 75), (-40, 65), (-50, 62), (-55, 70), (-70, 76)),
    ((-5, 50), (1, 51), (0, 53), (-2, 56), (-5, 58), (-6, 56), (-5, 54)),
    ((-24, 65), (-14, 66), (-14, 64), (-22, 63)),
    ((130, 31), (136, 34), (140, 36), (142, 41), (141, 45), (139, 41), (135, 35)),
    ((95, 5), (106, -6), (102, -4)),
    ((109, 2), (117, 7), (119, 1), (116, -4), (110, -3)),
    ((172, -34), (178, -38), (174, -41), (167, -46), (172, -41)),
    ((49, -12), (50, -16), (47, -25), (44, -21)),
    ((-180, -72), (180, -72), (180, -90), (-180, -90)),
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


def _background() -> list[Tag]:
    shapes = [_el("rect", width=str(WIDTH), height=str(HEIGHT), fill=_SEA)]
    for outline in LAND_OUTLINES:
        points = " ".join(f"{_n(x)},{_n(y)}" for x, y in (project(la, lo) for lo, la in outline))
        shapes.append(_el("polygon", points=points, fill=_LAND, stroke="#c9c3a8",
                          stroke_width="0.6"))
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
    """The map as an ``<svg>`` tag (text is escaped by the flattener)."""
    svg = _el("svg", xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {WIDTH} {HEIGHT}",
              role="img", aria_label="Map of your location and of the mirrors")
    svg(_el("title")("Your location and the mirrors"), *_background())
    shown = list(mirrors[:MAX_MARKERS])
    if client is not None and shown and shown[0].number == 1:
        cx, cy = project(client.latitude, client.longitude)
        mx, my = project(shown[0].latitude, shown[0].longitude)
        svg(_el("line", x1=_n(cx), y1=_n(cy), x2=_n(mx), y2=_n(my), stroke=_CLIENT,
                stroke_width="1.5", stroke_dasharray="4 3", class_="to-first"))
    for marker in reversed(shown):  # mirror #1 drawn last, on top
        x, y = project(marker.latitude, marker.longitude)
        group = _el("g", class_="mirror")
        group(
            _el("title")(f"{marker.number}. {marker.label}"),
            _el("circle", cx=_n(x), cy=_n(y), r="7", stroke="#ffffff", stroke_width="1",
                fill=_WEIGHTED if marker.weighted else _UNWEIGHTED),
            _el("text", x=_n(x), y=_n(y + 3), text_anchor="middle", font_size="8",
                font_family="sans-serif", fill="#ffffff")(str(marker.number)),
        )
        svg(group)
    if client is not None:
        x, y = project(client.latitude, client.longitude)
        svg(_el("g", class_="client")(
            _el("title")(client.label),
            _el("circle", cx=_n(x), cy=_n(y), r="5", fill=_CLIENT, stroke="#ffffff",
                stroke_width="1.5"),
        ))
    return svg
