"""Great-circle distance with the float32 rounding of the reference (§9.1).

Coordinates, degree differences and radian conversions are float32; the trigonometry is
float64; the angle and the final product are rounded to float32.  This reproduces the JSON
``Distance`` digits of the reference exactly (Lyon -> Paris = 392.14078).  Nothing is
remembered here: :class:`~mirrorbits.selection.memo.SelectionMemo` keeps the distances.

:class:`Point` holds what does not depend on the client (the float32 coordinates and the
cosine of the latitude) and :meth:`Origin.distances_to` computes many distances at once, each
operation applied to every point in one pass, each float32 rounding of all the points in one
``struct`` packing: the same operations in the same order as :meth:`Origin.distance_to`, so the
same bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from struct import Struct

from mirrorbits.float32 import f32

EARTH_RADIUS_KM = 6371.0
_RAD = f32(math.pi / 180)  # one degree in radians, as a float32


_ROUNDERS: dict[int, Struct] = {}  # count of values -> its float32 packing


def _round32(values: list[float]) -> tuple[float, ...]:
    """Each value rounded to the nearest float32, as :func:`f32` (the same packing)."""
    rounder = _ROUNDERS.get(len(values))
    if rounder is None:
        if len(_ROUNDERS) >= 256:
            _ROUNDERS.clear()
        rounder = _ROUNDERS[len(values)] = Struct(f"<{len(values)}f")
    return rounder.unpack(rounder.pack(*values))


class Point:
    """A mirror's side of the formula: float32 latitude and longitude, cosine of the latitude."""

    __slots__ = ("cos_lat", "lat", "lon")

    def __init__(self, latitude: float, longitude: float) -> None:
        self.lat = f32(latitude)
        self.lon = f32(longitude)
        self.cos_lat = math.cos(f32(self.lat * _RAD))


class Origin:
    """The client's side of the formula, computed once for all the mirrors."""

    __slots__ = ("cos_lat", "lat", "lat_rad", "lon")

    def __init__(self, latitude: float, longitude: float) -> None:
        self.lat = f32(latitude)
        self.lon = f32(longitude)
        self.lat_rad = f32(self.lat * _RAD)
        self.cos_lat = math.cos(self.lat_rad)

    def distance_to(self, latitude: float, longitude: float) -> float:
        """Distance in km (float32) from this origin to the given point."""
        lat2 = f32(latitude)
        cos_lat2 = math.cos(f32(lat2 * _RAD))
        half_dlat = f32(f32(f32(lat2 - self.lat) * _RAD) / 2)
        half_dlon = f32(f32(f32(f32(longitude) - self.lon) * _RAD) / 2)
        sin_lat = math.sin(half_dlat)
        sin_lon = math.sin(half_dlon)
        # Keep the reference's evaluation order: float64 results depend on it.
        a = sin_lat * sin_lat + self.cos_lat * cos_lat2 * sin_lon * sin_lon
        c = f32(2 * math.atan2(math.sqrt(a), math.sqrt(1 - a)))
        return f32(EARTH_RADIUS_KM * c)

    def distances_to(self, points: Sequence[Point]) -> list[float]:
        """``distance_to`` each point, bit for bit, computed for all of them at once."""
        lat, lon, rad, cos_lat = self.lat, self.lon, _RAD, self.cos_lat
        sin, atan2, sqrt = math.sin, math.atan2, math.sqrt
        half_dlat = _round32([d / 2 for d in _round32(
            [d * rad for d in _round32([point.lat - lat for point in points])])])
        half_dlon = _round32([d / 2 for d in _round32(
            [d * rad for d in _round32([point.lon - lon for point in points])])])
        # The same expression as distance_to's (same order of the float64 operations).
        sines = zip(points, map(sin, half_dlat), map(sin, half_dlon), strict=True)
        a = [sin_lat * sin_lat + cos_lat * point.cos_lat * sin_lon * sin_lon
             for point, sin_lat, sin_lon in sines]
        c = _round32([2 * atan2(sqrt(x), sqrt(1 - x)) for x in a])
        return list(_round32([EARTH_RADIUS_KM * x for x in c]))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points, float32 as in the reference."""
    return Origin(lat1, lon1).distance_to(lat2, lon2)
