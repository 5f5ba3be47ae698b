"""Turn Natural Earth's land outlines (world-atlas TopoJSON) into the maps' SVG path data.

Run once, when the land data should change, from the repository root::

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python -m tools.landmap package/land-110m.json > mirrorbits/web/data/land-110m.json

The output is what the ``?mirrorlist`` and ``?mirrorstats`` maps draw: the land of
``land-110m.json`` (Natural Earth 1:110m, public domain; TopoJSON by world-atlas, ISC licence)
projected equirectangularly onto the maps' 720 × 360 picture, cut at the antimeridian, simplified
to a third of a pixel and written as relative path commands in tenths of a pixel. Nothing here
runs in the daemon or in CI; ``tests/unit/test_landmap.py`` checks the decoding on small data.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Iterable, Sequence
from typing import Any

Point = tuple[float, float]
Ring = list[Point]

WIDTH = 720
HEIGHT = 360
TOLERANCE = 0.33  # pixels: Douglas-Peucker distance
MIN_AREA = 0.4  # square pixels: smaller islands are dropped

SOURCE = "Natural Earth 1:110m land, version 4.1.0 (public domain), naturalearthdata.com"
PACKAGE = "world-atlas 2.0.2 (land-110m.json), TopoJSON by Michael Bostock"
LICENCE = (
    "world-atlas: Copyright 2013-2019 Michael Bostock. Permission to use, copy, modify, and/or "
    "distribute this software for any purpose with or without fee is hereby granted, provided "
    "that the above copyright notice and this permission notice appear in all copies. (ISC)"
)


# --- TopoJSON ---------------------------------------------------------------------------------


def decode_arcs(topology: dict[str, Any]) -> list[list[Point]]:
    """The arcs as (longitude, latitude) lists: quantized arcs are delta-encoded integers."""
    transform = topology.get("transform")
    arcs = []
    for arc in topology["arcs"]:
        if transform is None:
            arcs.append([(float(x), float(y)) for x, y, *_ in arc])
            continue
        (kx, ky), (dx, dy) = transform["scale"], transform["translate"]
        x = y = 0
        points = []
        for step_x, step_y, *_ in arc:
            x, y = x + step_x, y + step_y
            points.append((x * kx + dx, y * ky + dy))
        arcs.append(points)
    return arcs


def stitch(arcs: Sequence[Sequence[Point]], indexes: Iterable[int]) -> Ring:
    """One closed ring from arc indexes (``~i`` is arc ``i`` reversed); shared ends appear once."""
    ring: Ring = []
    for index in indexes:
        points = list(arcs[index]) if index >= 0 else list(reversed(arcs[~index]))
        ring.extend(points if not ring else points[1:])
    return ring


def polygons(topology: dict[str, Any], name: str) -> list[list[Ring]]:
    """The polygons (outer ring, then holes) of the named object, in degrees."""
    arcs = decode_arcs(topology)
    pending = [topology["objects"][name]]
    found: list[list[Ring]] = []
    while pending:
        geometry = pending.pop(0)
        kind = geometry["type"]
        if kind == "GeometryCollection":
            pending.extend(geometry["geometries"])
        elif kind == "Polygon":
            found.append([stitch(arcs, ring) for ring in geometry["arcs"]])
        elif kind == "MultiPolygon":
            found.extend([stitch(arcs, ring) for ring in polygon] for polygon in geometry["arcs"])
    return found


# --- geometry on the picture ------------------------------------------------------------------


def project(longitude: float, latitude: float) -> Point:
    """Equirectangular, as ``mirrorbits.web.svgmap.project`` (without clamping)."""
    return (longitude + 180.0) / 360.0 * WIDTH, (90.0 - latitude) / 180.0 * HEIGHT


def unwrap(ring: Ring) -> tuple[Ring, int]:
    """The ring with continuous longitudes, and how many times it goes round the pole (±1, 0)."""
    if not ring:
        return [], 0
    shift = 0.0
    out = [ring[0]]
    for (lon0, _), (lon1, lat1) in itertools.pairwise(ring):
        if lon1 - lon0 > 180:
            shift -= 360
        elif lon1 - lon0 < -180:
            shift += 360
        out.append((lon1 + shift, lat1))
    return out, round((out[-1][0] - out[0][0]) / 360)


def close_round_pole(ring: Ring) -> Ring:
    """A ring that goes round a pole (Antarctica) closed along that pole's edge of the map."""
    pole = -90.0 if sum(lat for _, lat in ring) < 0 else 90.0
    (start_lon, _), (end_lon, _) = ring[0], ring[-1]
    return [*ring, (end_lon, pole), (start_lon, pole)]


def clip_x(ring: Ring, low: float, high: float) -> Ring:
    """Sutherland-Hodgman clipping of a polygon to the band ``low <= x <= high``."""
    for edge, side in ((low, 1), (high, -1)):  # inside: (x - edge) * side >= 0
        clipped: Ring = []
        for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
            inside0, inside1 = (x0 - edge) * side >= 0, (x1 - edge) * side >= 0
            if inside0 != inside1:
                clipped.append((edge, y0 + (y1 - y0) * (edge - x0) / (x1 - x0)))
            if inside1:
                clipped.append((x1, y1))
        ring = clipped
    return ring


def area(ring: Ring) -> float:
    """Unsigned area (shoelace)."""
    total = sum(x0 * y1 - x1 * y0
                for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True))
    return abs(total) / 2


def simplify(points: Sequence[Point], tolerance: float) -> Ring:
    """Douglas-Peucker on an open polyline (the ends are kept)."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (ax, ay), (bx, by) = points[first], points[last]
        length = math.hypot(bx - ax, by - ay)
        worst, worst_index = -1.0, -1
        for index in range(first + 1, last):
            px, py = points[index]
            if length == 0:
                distance = math.hypot(px - ax, py - ay)
            else:
                distance = abs((bx - ax) * (ay - py) - (ax - px) * (by - ay)) / length
            if distance > worst:
                worst, worst_index = distance, index
        if worst > tolerance:
            keep[worst_index] = True
            stack += [(first, worst_index), (worst_index, last)]
    return [point for point, kept in zip(points, keep, strict=True) if kept]


def simplify_ring(ring: Ring, tolerance: float) -> Ring:
    """Douglas-Peucker on a closed ring, split at its point farthest from the first one."""
    if ring and ring[0] == ring[-1]:
        ring = ring[:-1]
    if len(ring) < 4:
        return ring
    x0, y0 = ring[0]
    far = max(range(len(ring)), key=lambda i: math.hypot(ring[i][0] - x0, ring[i][1] - y0))
    one = simplify(ring[:far + 1], tolerance)
    two = simplify([*ring[far:], ring[0]], tolerance)
    return one + two[1:-1]


def picture_rings(ring: Ring, tolerance: float = TOLERANCE) -> list[Ring]:
    """A ring in degrees as rings on the picture: cut at the antimeridian, simplified, clipped."""
    unwrapped, turns = unwrap(ring)
    if turns:
        unwrapped = close_round_pole(unwrapped)
    projected = [project(lon, lat) for lon, lat in unwrapped]
    projected = simplify_ring(projected, tolerance)
    pieces = []
    for shift in (-WIDTH, 0, WIDTH):
        piece = clip_x([(x + shift, y) for x, y in projected], 0, WIDTH)
        if len(piece) >= 3 and area(piece) > 0:
            pieces.append(piece)
    return pieces


# --- SVG path data ------------------------------------------------------------------------------


def _tenths(value: int) -> str:
    """Tenths of a pixel as the shortest decimal text: 12 → ``1.2``, -5 → ``-.5``, 30 → ``3``."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    whole, tenth = divmod(value, 10)
    if tenth == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole if whole else ''}.{tenth}"


def path_data(ring: Ring) -> str:
    """``M x,y l dx,dy ... z`` in tenths of a pixel; repeated points are dropped."""
    grid = [(round(x * 10), round(y * 10)) for x, y in ring]
    points = [p for p, q in zip(grid, grid[-1:] + grid[:-1], strict=True) if p != q]
    if len(points) < 3:
        return ""
    (x, y), rest = points[0], points[1:]
    steps = []
    for nx, ny in rest:
        dx, dy = _tenths(nx - x), _tenths(ny - y)
        steps.append(f"{dx}{'' if dy.startswith('-') else ','}{dy}")
        x, y = nx, ny
    return f"M{_tenths(points[0][0])},{_tenths(points[0][1])}l{' '.join(steps)}z"


def land_document(topology: dict[str, Any], name: str = "land") -> dict[str, Any]:
    """The data file: credits, picture size and the path data of each land ring."""
    paths = []
    for polygon in polygons(topology, name):
        for ring in polygon:
            for piece in picture_rings(ring):
                if area(piece) >= MIN_AREA:
                    data = path_data(piece)
                    if data:
                        paths.append(data)
    return {
        "source": SOURCE,
        "package": PACKAGE,
        "licence": LICENCE,
        "projection": "equirectangular, longitude -180..180 on x, latitude 90..-90 on y",
        "width": WIDTH,
        "height": HEIGHT,
        "fill_rule": "evenodd",
        "paths": paths,
    }


def dump(document: dict[str, Any]) -> str:
    """JSON with one line per key and per path, so that a change reads well in a diff."""
    lines = [f"{json.dumps(key)}: {json.dumps(value)}," for key, value in document.items()
             if key != "paths"]
    paths = ",\n".join(json.dumps(path) for path in document["paths"])
    return "{\n" + "\n".join(lines) + '\n"paths": [\n' + paths + "\n]\n}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topojson", help="world-atlas' land-110m.json")
    parser.add_argument("--object", default="land", help="the TopoJSON object (default: land)")
    args = parser.parse_args(argv)
    with open(args.topojson, encoding="utf-8") as source:
        topology = json.load(source)
    sys.stdout.write(dump(land_document(topology, args.object)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
