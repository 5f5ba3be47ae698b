"""Great-circle distance with the float32 rounding of the reference (§9.1).

Coordinates, degree differences and radian conversions are float32; the trigonometry is
float64; the angle and the final product are rounded to float32.  This reproduces the JSON
``Distance`` digits of the reference exactly (Lyon -> Paris = 392.14078).
"""

from __future__ import annotations

import math
from functools import lru_cache

from mirrorbits.float32 import f32

EARTH_RADIUS_KM = 6371.0
_RAD = f32(math.pi / 180)  # one degree in radians, as a float32
_MEMO_LIMIT = 256  # distances an origin remembers (beyond that, the memo starts over)


@lru_cache(maxsize=4096)
def _point(latitude: float, longitude: float) -> tuple[float, float, float]:
    """A mirror's float32 coordinates and the cosine of its latitude (cached per location)."""
    lat = f32(latitude)
    return lat, f32(longitude), math.cos(f32(lat * _RAD))


class Origin:
    """The client's side of the formula, with the distances it already computed."""

    __slots__ = ("_memo", "cos_lat", "lat", "lat_rad", "lon")

    def __init__(self, latitude: float, longitude: float) -> None:
        self.lat = f32(latitude)
        self.lon = f32(longitude)
        self.lat_rad = f32(self.lat * _RAD)
        self.cos_lat = math.cos(self.lat_rad)
        self._memo: dict[tuple[float, float], float] = {}

    def distance_to(self, latitude: float, longitude: float) -> float:
        """Distance in km (float32) from this origin to the given point (memoised)."""
        key = (latitude, longitude)
        memo = self._memo
        distance = memo.get(key)
        if distance is None:
            distance = self._distance(latitude, longitude)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = distance
        return distance

    def _distance(self, latitude: float, longitude: float) -> float:
        lat2, lon2, cos_lat2 = _point(latitude, longitude)
        half_dlat = f32(f32(f32(lat2 - self.lat) * _RAD) / 2)
        half_dlon = f32(f32(f32(lon2 - self.lon) * _RAD) / 2)
        sin_lat = math.sin(half_dlat)
        sin_lon = math.sin(half_dlon)
        # Keep the reference's evaluation order: float64 results depend on it.
        a = sin_lat * sin_lat + self.cos_lat * cos_lat2 * sin_lon * sin_lon
        c = f32(2 * math.atan2(math.sqrt(a), math.sqrt(1 - a)))
        return f32(EARTH_RADIUS_KM * c)


@lru_cache(maxsize=1024)
def origin_at(latitude: float, longitude: float) -> Origin:
    """The shared :class:`Origin` of a client location: clients of one city reuse distances.

    Memory stays bounded: 1024 origins of at most ``_MEMO_LIMIT`` distances each.
    """
    return Origin(latitude, longitude)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points, float32 as in the reference."""
    return Origin(lat1, lon1).distance_to(lat2, lon2)
