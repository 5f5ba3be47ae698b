"""Markers that would cover each other are moved apart, so that each stays visible.

Pure: positions in, positions out (picture pixels). Points closer than ``same_place`` pixels to
the first point of a group start on a circle round it, clockwise from the top; then markers
still closer than ``GAP`` × radius are pushed apart, pair by pair, a bounded number of times
(neighbouring towns, a circle next to another marker), and kept inside the picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from attrs import frozen

SAME_PLACE = 1.5  # pixels (three quarters of a degree on the 720 × 360 maps)
GAP = 1.7  # centre to centre, in marker radii: neighbours overlap by 0.3 radius at most
ROUNDS = 40


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
    """The circle on which ``count`` markers of ``marker_radius`` start round a place."""
    return max(1.2 * marker_radius, GAP * marker_radius / (2 * math.sin(math.pi / count)))


def _start(points: Sequence[tuple[float, float]], marker_radius: float,
           same_place: float) -> list[list[float]]:
    """Lone points where they are; points at one place on a circle round it."""
    groups: list[list[int]] = []
    for index, (x, y) in enumerate(points):
        for group in groups:
            gx, gy = points[group[0]]
            if math.hypot(x - gx, y - gy) <= same_place:
                group.append(index)
                break
        else:
            groups.append([index])
    spots = [[x, y] for x, y in points]
    for group in groups:
        if len(group) > 1:
            px, py = points[group[0]]
            radius = ring_radius(len(group), marker_radius)
            for slot, index in enumerate(group):
                angle = -math.pi / 2 + 2 * math.pi * slot / len(group)
                spots[index] = [px + radius * math.cos(angle), py + radius * math.sin(angle)]
    return spots


def _push_apart(spots: list[list[float]], gap: float) -> bool:
    """One round: each pair closer than ``gap`` moves apart to ``gap``; False if none was."""
    order = sorted(range(len(spots)), key=lambda i: spots[i][0])
    pushed = False
    for rank, i in enumerate(order):
        for j in order[rank + 1:]:
            dx, dy = spots[j][0] - spots[i][0], spots[j][1] - spots[i][1]
            if dx >= gap:  # sorted by x when the round began: the rest are farther
                break
            distance = math.hypot(dx, dy)
            if distance >= gap - 1e-9:
                continue
            if distance < 1e-9:
                dx, dy, distance = 0.0, 1.0, 1.0
            shift = (gap - distance) / 2 / distance
            spots[i][0] -= dx * shift
            spots[i][1] -= dy * shift
            spots[j][0] += dx * shift
            spots[j][1] += dy * shift
            pushed = True
    return pushed


def spread(points: Sequence[tuple[float, float]], marker_radius: float,
           width: float = math.inf, height: float = math.inf,
           same_place: float = SAME_PLACE) -> list[Spot]:
    """One :class:`Spot` per point, in the same order, inside ``width`` × ``height``."""
    spots = _start(points, marker_radius, same_place)
    for _ in range(ROUNDS):
        for spot in spots:
            spot[0] = min(max(spot[0], marker_radius), width - marker_radius)
            spot[1] = min(max(spot[1], marker_radius), height - marker_radius)
        if not _push_apart(spots, GAP * marker_radius):
            break
    return [Spot(*(place if math.dist(place, spot) < 0.005 else (round(spot[0], 2),
                                                                    round(spot[1], 2))),
                 *place)
            for spot, place in zip(spots, points, strict=True)]
