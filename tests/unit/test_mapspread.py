"""Markers at the same place are spread round it (``mirrorbits.web.mapspread``)."""

from __future__ import annotations

import math

import pytest

from mirrorbits.web.mapspread import Spot, ring_radius, spread


def test_a_lone_marker_stays_in_place() -> None:
    assert spread([(10.0, 20.0), (40.0, 20.0)], 5) == [
        Spot(10.0, 20.0, 10.0, 20.0), Spot(40.0, 20.0, 40.0, 20.0)]
    assert not spread([(10.0, 20.0)], 5)[0].moved


def test_markers_at_one_place_go_round_it_clockwise_from_the_top() -> None:
    spots = spread([(100.0, 50.0), (300.0, 50.0), (100.0, 50.0), (100.5, 50.5)], 5)
    # A circle of three 5 px markers: neighbours exactly 8.5 px apart, nothing more to push.
    assert spots[1] == Spot(300.0, 50.0, 300.0, 50.0)
    group = [spots[0], spots[2], spots[3]]
    assert [(s.place_x, s.place_y) for s in group] == [(100.0, 50.0), (100.0, 50.0),
                                                       (100.5, 50.5)]
    radius = ring_radius(3, 5)
    assert (group[0].x, group[0].y) == pytest.approx((100.0, 50.0 - radius), abs=0.01)
    assert group[1].x > 100 and group[2].x < 100  # clockwise on screen: right, then left
    for spot in group:
        assert spot.moved
        assert math.hypot(spot.x - 100.0, spot.y - 50.0) == pytest.approx(radius, abs=0.01)


@pytest.mark.parametrize("count", [2, 3, 5, 19, 60])
def test_neighbours_on_the_ring_overlap_by_little(count: int) -> None:
    spots = spread([(360.0, 180.0)] * count, 7)
    centres = [(s.x, s.y) for s in spots]
    assert len(set(centres)) == count
    closest = min(math.dist(a, b) for i, a in enumerate(centres) for b in centres[i + 1:])
    assert closest >= 1.7 * 7 - 0.02
    # A lone pair sits each side of the place, clear of a client dot drawn there.
    assert ring_radius(2, 7) == pytest.approx(8.4)


def test_close_places_are_pushed_apart_along_their_line() -> None:
    spots = spread([(100.0, 50.0), (102.0, 50.0), (300.0, 50.0)], 5)
    # Not one place (2 px apart): no circle, each moves away from the other to 8.5 px.
    assert (spots[0].x, spots[0].y) == (96.75, 50.0)
    assert (spots[1].x, spots[1].y) == (105.25, 50.0)
    assert (spots[1].place_x, spots[1].place_y) == (102.0, 50.0)
    assert not spots[2].moved


def test_a_crowd_ends_with_every_marker_visible_near_its_place() -> None:
    # 30 mirrors of one small country, 1 to 4 px apart, three of them at the same place.
    points = [(300.0 + (i * 7) % 13, 80.0 + (i * 5) % 11) for i in range(27)] + [(305.0, 85.0)] * 3
    spots = spread(points, 5, 720, 360)
    drawn = [(s.x, s.y) for s in spots]
    closest = min(math.dist(a, b) for i, a in enumerate(drawn) for b in drawn[i + 1:])
    assert closest >= 1.7 * 5 - 0.3  # after a bounded number of rounds: overlaps are small
    assert max(math.dist((s.x, s.y), (s.place_x, s.place_y)) for s in spots) < 40
    assert spread(points, 5, 720, 360) == spots  # the same page every time


def test_markers_stay_inside_the_picture() -> None:
    spots = spread([(0.0, 0.0), (720.0, 360.0), (0.0, 0.0)], 7, 720, 360)
    for spot in spots:
        assert 7 <= spot.x <= 713 and 7 <= spot.y <= 353
    assert (spots[1].x, spots[1].y) == (713.0, 353.0)
