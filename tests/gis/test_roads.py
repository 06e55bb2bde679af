"""Roads: OSM reading, speeds, snapping, travel-time matrices (symmetry, triangle inequality, fallback)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point

from gis.roads import (
    ACCESS_SPEED_KPH,
    CIRCUITY,
    FALLBACK_SPEED_KPH,
    SPEED_KPH,
    RoadError,
    RoadGraph,
    great_circle_m,
    parse_maxspeed,
    read_osm,
    road_tables,
)

LON0, LAT0 = 11.50, 50.00
STEP = 0.004  # about 290 m east-west, 445 m north-south


def grid_tables(n: int = 5, oneway: tuple[tuple[str, str], ...] = (), speed: float = 36.0):
    """An n x n street grid, every street two-way at ``speed`` except the (u, v) pairs in ``oneway``."""
    ids = {(i, j): f"g{i}_{j}" for i in range(n) for j in range(n)}
    nodes = pd.DataFrame(
        {"osmid": list(ids.values()), "geometry": [Point(LON0 + i * STEP, LAT0 + j * STEP) for i, j in ids]}
    )
    rows = []
    for (i, j), a in ids.items():
        for di, dj in ((1, 0), (0, 1)):
            if (i + di, j + dj) not in ids:
                continue
            b = ids[(i + di, j + dj)]
            length = float(
                great_circle_m(
                    LON0 + i * STEP, LAT0 + j * STEP, LON0 + (i + di) * STEP, LAT0 + (j + dj) * STEP
                )
            )
            one = (a, b) in oneway
            rows.append((a, b, length, one))
            if not one:
                rows.append((b, a, length, False))
    edges = pd.DataFrame(rows, columns=["u", "v", "length_m", "oneway"])
    edges["highway"] = "residential"
    edges["speed_kph"] = speed
    return nodes, edges


def random_points(rng, k: int, n: int = 5) -> np.ndarray:
    span = STEP * (n - 1)
    return np.c_[rng.uniform(LON0, LON0 + span, k), rng.uniform(LAT0, LAT0 + span, k)]


def test_two_way_grid_is_symmetric_and_obeys_triangle_inequality():
    rg = RoadGraph.from_tables(*grid_tables())
    pts = random_points(np.random.default_rng(3), 40)
    t = rg.travel_time_matrix(pts, pts)
    assert t.shape == (40, 40)
    assert np.allclose(t, t.T)
    assert np.all(np.diag(t) == 0)
    # d(a, c) <= d(a, b) + d(b, c) for every triple
    assert np.all(t[:, None, :] <= t[:, :, None] + t[None, :, :] + 1e-6)


def test_one_way_street_breaks_symmetry_and_detours():
    nodes, edges = grid_tables(n=3, oneway=(("g0_0", "g1_0"),))
    rg = RoadGraph.from_tables(nodes, edges)
    a, b = (LON0, LAT0), (LON0 + STEP, LAT0)
    forward, back = rg.travel_time_matrix([a], [b])[0, 0], rg.travel_time_matrix([b], [a])[0, 0]
    direct = float(great_circle_m(a[0], a[1], b[0], b[1])) / 10.0  # 36 km/h = 10 m/s
    assert forward == pytest.approx(direct, rel=1e-6)
    assert back > 2.5 * forward  # round the block: up, across, down
    # still a metric on the directed graph: triangle inequality holds
    pts = random_points(np.random.default_rng(5), 25, n=3)
    t = rg.travel_time_matrix(pts, pts)
    assert np.all(t[:, None, :] <= t[:, :, None] + t[None, :, :] + 1e-6)


def test_travel_time_includes_access_offset_at_slow_speed():
    rg = RoadGraph.from_tables(*grid_tables())
    node = (LON0 + 2 * STEP, LAT0 + 2 * STEP)
    off = (node[0] + 0.0007, node[1])  # ~50 m east of the node, nearer to it than to any other node
    offset_m = float(great_circle_m(node[0], node[1], off[0], off[1]))
    t = rg.travel_time_matrix([off], [node])[0, 0]
    assert t == pytest.approx(offset_m / (ACCESS_SPEED_KPH / 3.6), rel=1e-9)


def test_snap_finds_nearest_node_and_offset():
    nodes, edges = grid_tables()
    rg = RoadGraph.from_tables(nodes, edges)
    lons = np.array([LON0 + 0.0001, LON0 + 3 * STEP - 0.0002, LON0 + 10.0])
    lats = np.array([LAT0 - 0.0001, LAT0 + STEP + 0.0001, LAT0])
    idx, dist = rg.snap(lons, lats)
    assert list(rg.node_ids[idx[:2]]) == ["g0_0", "g3_1"]
    expected = great_circle_m(lons[:2], lats[:2], rg.lon[idx[:2]], rg.lat[idx[:2]])
    assert np.allclose(dist[:2], expected)
    assert dist[2] > 500_000  # 10 degrees east is far from every road


def test_fallback_without_roads_is_great_circle_times_circuity():
    empty_nodes = pd.DataFrame({"osmid": pd.Series([], dtype=object), "geometry": []})
    empty_edges = pd.DataFrame(
        {
            "u": pd.Series([], dtype=object),
            "v": pd.Series([], dtype=object),
            "length_m": pd.Series([], dtype=float),
        }
    )
    rg = RoadGraph.from_tables(empty_nodes, empty_edges)
    a, b = (11.5, 50.0), (11.6, 50.05)
    t = rg.travel_time_matrix([a], [a, b])
    expected = float(great_circle_m(*a, *b)) * CIRCUITY / (FALLBACK_SPEED_KPH / 3.6)
    assert t[0, 0] == 0.0
    assert t[0, 1] == pytest.approx(expected)


def test_fallback_for_points_far_from_roads_and_unreachable_islands():
    nodes, edges = grid_tables(n=3)
    island = pd.DataFrame({"osmid": ["i1", "i2"], "geometry": [Point(11.7, 50.1), Point(11.701, 50.1)]})
    length = float(great_circle_m(11.7, 50.1, 11.701, 50.1))
    bridge = pd.DataFrame(
        {
            "u": ["i1", "i2"],
            "v": ["i2", "i1"],
            "length_m": [length, length],
            "highway": "residential",
            "speed_kph": 36.0,
            "oneway": False,
        }
    )
    rg = RoadGraph.from_tables(pd.concat([nodes, island]), pd.concat([edges, bridge]))
    grid_pt, island_pt, far_pt = (LON0, LAT0), (11.7, 50.1), (LON0, LAT0 + 0.5)  # far_pt: 55 km north
    t = rg.travel_time_matrix([grid_pt], [island_pt, far_pt, (11.701, 50.1)])
    fb = rg.fallback_matrix(np.array([grid_pt]), np.array([island_pt, far_pt, (11.701, 50.1)]))[0]
    assert t[0, 0] == pytest.approx(fb[0])  # no road joins the grid to the island
    assert t[0, 1] == pytest.approx(fb[1])  # farther than max_snap_m from any road
    # within the island the roads work again
    assert rg.travel_time_matrix([island_pt], [(11.701, 50.1)])[0, 0] == pytest.approx(length / 10.0)


def test_matrix_runs_dijkstra_from_the_smaller_side():
    rg = RoadGraph.from_tables(*grid_tables(n=6, oneway=(("g0_0", "g1_0"), ("g2_3", "g2_4"))))
    rng = np.random.default_rng(11)
    few, many = random_points(rng, 3, n=6), random_points(rng, 30, n=6)
    ab = rg.travel_time_matrix(few, many)  # forward Dijkstra from 3 sources
    ba = rg.travel_time_matrix(many, few)  # reversed graph from 3 destinations
    one_by_one = np.array([[rg.travel_time_matrix([m], [f])[0, 0] for f in few] for m in many])
    assert np.allclose(ba, one_by_one)
    assert ab.shape == (3, 30)


def test_parallel_edges_keep_the_fastest():
    nodes = pd.DataFrame({"osmid": ["a", "b"], "geometry": [Point(11.5, 50.0), Point(11.51, 50.0)]})
    edges = pd.DataFrame(
        {
            "u": ["a", "a"],
            "v": ["b", "b"],
            "length_m": [1000.0, 1000.0],
            "speed_kph": [36.0, 72.0],
            "highway": "primary",
        }
    )
    rg = RoadGraph.from_tables(nodes, edges)
    assert rg.csr[0, 1] == pytest.approx(50.0)  # 1000 m at 20 m/s, not the 150 s a summed CSR would give


def test_bad_tables_name_the_problem():
    nodes, edges = grid_tables(n=2)
    edges.loc[0, "v"] = "nowhere"
    with pytest.raises(RoadError, match="nowhere"):
        RoadGraph.from_tables(nodes, edges)
    rg = RoadGraph.from_tables(*grid_tables(n=2))
    with pytest.raises(ValueError, match="src_points"):
        rg.travel_time_matrix([(11.5, 95.0)], [(11.5, 50.0)])


def test_speeds_by_class_and_maxspeed():
    assert parse_maxspeed("50") == 50.0
    assert parse_maxspeed("30 mph") == pytest.approx(48.28, abs=0.01)
    assert np.isnan(parse_maxspeed("none")) and np.isnan(parse_maxspeed("DE:urban"))
    assert np.isnan(parse_maxspeed(None)) and np.isnan(parse_maxspeed(["50", "70"]))
    assert (
        SPEED_KPH["motorway"] > SPEED_KPH["primary"] > SPEED_KPH["residential"] > SPEED_KPH["living_street"]
    )


OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="test">
  <node id="1" lat="50.000" lon="11.500"/>
  <node id="2" lat="50.000" lon="11.510"/>
  <node id="3" lat="50.005" lon="11.510"/>
  <node id="4" lat="50.005" lon="11.500"/>
  <node id="5" lat="50.006" lon="11.499"/>
  <way id="10"><nd ref="1"/><nd ref="2"/><tag k="highway" v="primary"/><tag k="name" v="Hauptstraße"/>
    <tag k="maxspeed" v="50"/></way>
  <way id="11"><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/><tag k="oneway" v="yes"/></way>
  <way id="12"><nd ref="3"/><nd ref="4"/><tag k="highway" v="track"/></way>
  <way id="13"><nd ref="4"/><nd ref="5"/><nd ref="4"/><tag k="building" v="yes"/></way>
</osm>
"""


def test_read_osm_offline_keeps_drivable_roads(tmp_path):
    path = tmp_path / "tiny.osm.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(OSM)
    road_nodes, road_edges = road_tables(read_osm(path))
    assert sorted(road_nodes["osmid"]) == ["1", "2", "3"]  # the track and the building are not roads
    pairs = set(zip(road_edges["u"], road_edges["v"], strict=True))
    assert pairs == {("1", "2"), ("2", "1"), ("2", "3")}  # the one-way street has one direction
    main = road_edges.loc[road_edges["u"] == "1"].iloc[0]
    assert main["name"] == "Hauptstraße"
    assert main["speed_kph"] == 50.0  # maxspeed below the primary class speed
    assert main["travel_s"] == pytest.approx(main["length_m"] / (50 / 3.6))
    assert main["length_m"] == pytest.approx(great_circle_m(11.5, 50.0, 11.51, 50.0), rel=0.01)
    with pytest.raises(RoadError, match="no such OSM file"):
        read_osm(tmp_path / "missing.osm")


def test_dead_end_peeling_gives_exact_shortest_times():
    """The peeled-core shortcut must equal plain Dijkstra on the full graph, one-way dead ends included."""
    from scipy.sparse.csgraph import dijkstra

    rng = np.random.default_rng(2)
    nodes, edges = grid_tables(n=4, oneway=(("g1_1", "g2_1"),))
    # hang random trees (some with one-way twigs) off grid nodes, plus a separate 3-node tree component
    ids, xy = list(nodes["osmid"]), [(p.x, p.y) for p in nodes.geometry]
    rows = []
    for k in range(40):
        parent = int(rng.integers(0, len(ids)))
        x, y = xy[parent]
        ids.append(f"t{k}")
        xy.append((x + rng.uniform(-0.002, 0.002), y + rng.uniform(-0.002, 0.002)))
        length = float(rng.uniform(20, 300))
        rows.append((ids[parent], ids[-1], length))
        if rng.random() > 0.2:
            rows.append((ids[-1], ids[parent], length * rng.uniform(0.8, 1.2)))
    for a, b in (("c0", "c1"), ("c1", "c2")):
        rows += [(a, b, 100.0), (b, a, 100.0)]
    ids += ["c0", "c1", "c2"]
    xy += [(11.9, 50.3), (11.901, 50.3), (11.902, 50.3)]
    extra = pd.DataFrame(rows, columns=["u", "v", "length_m"])
    extra["speed_kph"] = 36.0
    all_nodes = pd.DataFrame({"osmid": ids, "geometry": [Point(*p) for p in xy]})
    rg = RoadGraph.from_tables(all_nodes, pd.concat([edges, extra], ignore_index=True))
    everything = np.arange(rg.n_nodes)
    fast = rg._node_times(everything, everything, chunk=7)
    plain = dijkstra(rg.csr, directed=True, indices=everything)
    assert np.array_equal(np.isinf(fast), np.isinf(plain))
    finite = np.isfinite(plain)
    assert np.allclose(fast[finite], plain[finite])
    assert rg._peeled().is_core.sum() < rg.n_nodes - 30  # the trees really were peeled
