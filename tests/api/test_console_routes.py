"""Crews' routes on the console map follow the roads (:mod:`api.console.routes_geo`)."""

from __future__ import annotations

import copy

import pytest

from api.console.routes_geo import RoutePaths
from data.synthetic import generate_territory


@pytest.fixture(scope="module")
def net():
    return generate_territory(800, seed=3)


def test_a_leg_is_a_road_path_between_its_ends(net):
    paths = RoutePaths(net)
    nodes = net.road_nodes.geometry
    a, b = (nodes.iloc[0].x, nodes.iloc[0].y), (nodes.iloc[-1].x, nodes.iloc[-1].y)
    (leg,) = paths.legs([(a, b)])
    assert leg[0] == a and leg[-1] == b
    assert len(leg) > 3  # not a straight line across country
    road = {(round(x, 5), round(y, 5)) for x, y in zip(nodes.x, nodes.y, strict=True)}
    assert all(p in road for p in leg[1:-1])
    # consecutive points are joined by road edges (either direction), so the line follows the streets
    ids = dict(zip(((round(x, 5), round(y, 5)) for x, y in zip(nodes.x, nodes.y, strict=True)),
                   net.road_nodes["osmid"], strict=True))
    edges = set(zip(net.road_edges["u"], net.road_edges["v"], strict=True))
    for p, q in zip(leg[1:-2], leg[2:-1], strict=True):
        assert (ids[p], ids[q]) in edges or (ids[q], ids[p]) in edges
    assert paths.legs([(a, b)]) == [leg]  # cached: the same answer


def test_without_roads_or_far_from_them_a_leg_is_straight(net):
    far = ((0.0, 0.0), (0.1, 0.1))
    assert RoutePaths(net).legs([far]) == [[far[0], far[1]]]
    bare = copy.copy(net)
    bare.road_edges = bare.road_edges.iloc[:0]
    a, b = (11.5, 50.0), (11.6, 50.1)
    assert RoutePaths(bare).graph is None and RoutePaths(bare).legs([(a, b)]) == [[a, b]]
