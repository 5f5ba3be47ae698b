"""``tools/landmap.py``: TopoJSON land to the maps' path data, on small made-up topologies."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from tools import landmap


def square_topology() -> dict[str, Any]:
    """A 20° square round (0, 0) from two quantized, delta-encoded arcs (one used reversed)."""
    return {
        "type": "Topology",
        "transform": {"scale": [0.5, 0.25], "translate": [-10, -10]},
        "arcs": [
            [[0, 0], [40, 0], [0, 80]],  # (-10,-10) → (10,-10) → (10,10)
            [[0, 0], [0, 80], [40, 0]],  # (-10,-10) → (-10,10) → (10,10), used reversed
        ],
        "objects": {"land": {"type": "GeometryCollection", "geometries": [
            {"type": "Polygon", "arcs": [[0, ~1]]}]}},
    }


def test_arcs_are_decoded_and_stitched() -> None:
    arcs = landmap.decode_arcs(square_topology())
    assert arcs[0] == [(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0)]
    assert landmap.polygons(square_topology(), "land") == [[
        [(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0), (-10.0, -10.0)]]]


def test_a_square_becomes_one_path_in_tenths_of_a_pixel() -> None:
    document = landmap.land_document(square_topology())
    # x = (lon + 180) * 2, y = (90 - lat) * 2 on the 720 × 360 picture.
    assert document["paths"] == ["M380,160l-40,0 0,40 40,0z"]
    assert (document["width"], document["height"]) == (720, 360)


def test_a_ring_across_the_antimeridian_is_cut_in_two() -> None:
    ring = [(170.0, 60.0), (-170.0, 60.0), (-170.0, 70.0), (170.0, 70.0), (170.0, 60.0)]
    pieces = landmap.picture_rings(ring)
    assert len(pieces) == 2
    spans = sorted((min(x for x, _ in p), max(x for x, _ in p)) for p in pieces)
    assert spans == [pytest.approx((0.0, 20.0)), pytest.approx((700.0, 720.0))]
    assert sum(landmap.area(p) for p in pieces) == pytest.approx(40 * 20)


def test_a_ring_round_the_south_pole_is_closed_along_the_bottom() -> None:
    ring = [(-180.0, -70.0), (-60.0, -65.0), (60.0, -75.0), (179.0, -70.0), (-180.0, -70.0)]
    [piece] = landmap.picture_rings(ring, tolerance=0.0)
    assert max(y for _, y in piece) == 360.0
    assert (min(x for x, _ in piece), max(x for x, _ in piece)) == (0.0, 720.0)
    assert landmap.area(piece) > 720 * 40  # everything south of the coast


def test_simplification_keeps_the_shape_within_the_tolerance() -> None:
    wiggly = [(float(x), 0.1 * (x % 2)) for x in range(11)] + [(10.0, 10.0), (0.0, 10.0)]
    simple = landmap.simplify_ring(wiggly, 0.33)
    assert simple == [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]


def test_the_command_writes_the_data_file(tmp_path: Path) -> None:
    source = tmp_path / "land.json"
    source.write_text(json.dumps(square_topology()))
    out = io.StringIO()
    with redirect_stdout(out):
        assert landmap.main([str(source)]) == 0
    document = json.loads(out.getvalue())
    assert document["paths"] == ["M380,160l-40,0 0,40 40,0z"]
    assert "Natural Earth" in document["source"]
