"""Markers at the same place, spread on a small circle round it so that each stays visible.

Pure: positions in, positions out (picture pixels). Points closer than ``same_place`` pixels to
the first point of a group join it; a group of ``n > 1`` is laid out clockwise from the top on
a circle around that first point, wide enough that neighbouring markers overlap by little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from attrs import frozen

SAME_PLACE = 1.5  # pixels (three quarters of a degree on the 720 × 360 maps)


@frozen
class Spot:
    """Where a marker is drawn (``x``, ``y``) and the place it stands for."""

    x: float
    y: float
    place_x: float
    place_y: float

    @property
    def moved(self) -> bool:
        return (self.x, self.y) != (self.place_x, self.place_y)


def ring_radius(count: int, marker_radius: float) -> float:
    """The circle on which ``count`` markers of ``marker_radius`` are laid out round a place."""
    gap = 1.7 * marker_radius  # centre to centre: neighbours overlap by 0.3 radius at most
    return max(1.2 * marker_radius, gap / (2 * math.sin(math.pi / count)))


def spread(points: Sequence[tuple[float, float]], marker_radius: float,
           same_place: float = SAME_PLACE) -> list[Spot]:
    """One :class:`Spot` per point, in the same order."""
    groups: list[list[int]] = []
    for index, (x, y) in enumerate(points):
        for group in groups:
            gx, gy = points[group[0]]
            if math.hypot(x - gx, y - gy) <= same_place:
                group.append(index)
                break
        else:
            groups.append([index])
    spots: list[Spot | None] = [None] * len(points)
    for group in groups:
        px, py = points[group[0]]
        if len(group) == 1:
            spots[group[0]] = Spot(px, py, px, py)
            continue
        radius = ring_radius(len(group), marker_radius)
        for slot, index in enumerate(group):
            angle = -math.pi / 2 + 2 * math.pi * slot / len(group)
            spots[index] = Spot(round(px + radius * math.cos(angle), 2),
                                round(py + radius * math.sin(angle), 2),
                                *points[index])
    return [spot for spot in spots if spot is not None]
