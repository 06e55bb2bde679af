"""The synthetic generator: exact customer counts, valid radial networks, proportionate feeders, usable roads."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from data.synthetic import CUSTOMERS_PER_FEEDER, generate_territory
from gis.roads import RoadGraph
from gis.topology import KIND_CODE, build


@pytest.mark.parametrize("customers", [1, 7, 40, 2_500, 12_345])
def test_exact_customers_and_valid_topology(customers):
    net = generate_territory(customers, seed=3)
    topo = build(net)  # raises unless radial, connected, every service point under a transformer
    assert int(net.service_points["customers"].sum()) == customers
    assert topo.energized.all()
    assert int(topo.downstream_customers_node[topo.source_nodes].sum()) == customers


def test_transformers_laterals_and_devices():
    net = generate_territory(30_000, seed=5)
    topo = build(net)
    tr = np.flatnonzero(topo.seg_kind == KIND_CODE["transformer"])
    per = topo.downstream_customers_node[[topo.device_below(int(t)) for t in tr]]
    assert per.min() >= 1 and per.max() <= 15
    kinds = net.segments["kind"].value_counts()
    n_feeders = kinds["breaker"]
    assert n_feeders == pytest.approx(30_000 / CUSTOMERS_PER_FEEDER, abs=2)
    assert kinds["recloser"] >= n_feeders and kinds["fuse"] > 10 * n_feeders
    assert net.segments["normally_open"].sum() >= n_feeders - 1
    # a house's chain: transformer, fuse, (recloser,) breaker
    sp = net.service_points["sp_id"].iloc[-1]
    chain = [topo.kind(topo.seg(d)) for d in topo.device_chain(sp)]
    assert chain[0] == "transformer" and chain[1] == "fuse" and chain[-1] == "breaker"
    assert net.service_points["synthesized"].all() and net.segments["synthesized"].all()


def test_network_grows_in_proportion():
    small, big = generate_territory(20_000, seed=1).summary(), generate_territory(200_000, seed=1).summary()
    ratio = big["feeders"] / small["feeders"]
    assert 8 <= ratio <= 12
    assert big["substations"] > small["substations"]
    for s in (small, big):
        assert 3 <= s["feeders"] / s["substations"] <= 6
        assert s["critical_sites"]["hospital"] >= 2 and s["critical_sites"]["life_support"] >= 1


def test_ties_close_to_restore_a_neighbour():
    net = generate_territory(20_000, seed=2)
    topo = build(net)
    tie = net.segments.loc[net.segments["normally_open"]].iloc[0]
    breaker = f"{tie['feeder_id']}-CB"
    before = topo.downstream_customers(topo.seg(breaker))
    dead = topo.set_open(breaker, True)
    assert len(dead) > 0 and not topo.energized[dead].any()
    restored = topo.set_open(tie["segment_id"], False)
    assert topo.energized[restored].all()
    assert set(restored.tolist()) <= set(dead.tolist()) | {
        topo.node_index[tie["from_node"]],
        topo.node_index[tie["to_node"]],
    }
    assert len(restored) >= len(dead) - 2 and before > 0


def test_deterministic_by_seed():
    a, b, c = (generate_territory(5_000, seed=s) for s in (9, 9, 10))
    pd.testing.assert_frame_equal(a.service_points, b.service_points)
    pd.testing.assert_frame_equal(a.segments.drop(columns="geometry"), b.segments.drop(columns="geometry"))
    assert not a.service_points["address"].equals(c.service_points["address"])


def test_roads_reach_every_house():
    net = generate_territory(15_000, seed=4)
    rg = RoadGraph.from_tables(net.road_nodes, net.road_edges)
    _, offset = rg.snap(net.service_points.geometry.x.to_numpy(), net.service_points.geometry.y.to_numpy())
    assert np.percentile(offset, 99) < 100  # houses line the streets
    depots = np.c_[net.depots.geometry.x, net.depots.geometry.y]
    houses = np.c_[net.service_points.geometry.x, net.service_points.geometry.y][::50]
    t = rg.travel_time_matrix(depots, houses)
    fallback = rg.fallback_matrix(depots, houses)
    assert np.isfinite(t).all()
    assert (t != fallback).mean() > 0.99  # answered by the road graph, not the straight-line fallback
    assert np.allclose(t, rg.travel_time_matrix(houses, depots).T)  # every synthetic road is two-way


def test_progress_bar_and_bad_input(capsys):
    generate_territory(500, seed=1, progress=True)
    assert "generating territory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="customers"):
        generate_territory(0, seed=1)


@pytest.mark.slow
def test_one_million_customers_generate_and_validate_fast():
    t0 = time.perf_counter()
    net = generate_territory(1_000_000, seed=7)
    generated = time.perf_counter() - t0
    topo = build(net)
    assert int(net.service_points["customers"].sum()) == 1_000_000
    assert topo.energized.all()
    assert generated < 60
    assert net.summary()["feeders"] >= 400
