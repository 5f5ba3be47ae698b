"""Great-circle distance with the float32 rounding of the reference (§9.1).

Coordinates, degree differences and radian conversions are float32; the trigonometry is
float64; the angle and the final product are rounded to float32.  This reproduces the JSON
``Distance`` digits of the reference exactly (Lyon -> Paris = 392.14078).  Nothing is
remembered here: :class:`~mirrorbits.selection.memo.SelectionMemo` keeps the distances.
"""

from __future__ import annotations

import math

from mirrorbits.float32 import f32

EARTH_RADIUS_KM = 6371.0
_RAD = f32(math.pi / 180)  # one degree in radians, as a float32


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


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points, float32 as in the reference."""
    return Origin(lat1, lon1).distance_to(lat2, lon2)
