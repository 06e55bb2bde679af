"""The bundled sample territory: valid, realistic, laid on the real OSM roads, attributed."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from data.sample import ATTRIBUTION, sample_territory
from gis.roads import RoadGraph
from gis.topology import build


@pytest.fixture(scope="module")
def net():
    return sample_territory(seed=1)


@pytest.fixture(scope="module")
def topo(net):
    return build(net)  # raises TopologyError unless radial, connected and every house under a transformer


def test_counts_match_the_brief(net, topo):
    s = net.summary()
    assert s["substations"] == 2
    feeders_per_sub = net.segments.loc[net.segments["kind"] == "breaker", "segment_id"].str.split("-").str[0]
    assert feeders_per_sub.value_counts().max() >= 3
    assert 2000 <= s["service_points"] <= 5000
    assert s["devices_by_kind"]["recloser"] >= 3
    assert s["devices_by_kind"]["fuse"] >= 30
    assert s["normally_open_points"] >= 2
    assert s["depots"] == 2
    crit = s["critical_sites"]
    assert crit["hospital"] == 2
    assert crit["school"] >= 2 and crit["water"] >= 1 and crit["emergency_services"] >= 1
    assert 0.003 <= crit["life_support"] / s["service_points"] <= 0.008
    assert s["road_nodes"] > 5000 and s["road_edges"] > 10000


def test_transformers_serve_1_to_15_customers(net, topo):
    tr = np.flatnonzero(topo.seg_kind == 7)  # transformer code
    per = np.array([topo.downstream_customers(int(t)) for t in tr])
    assert per.min() >= 1 and per.max() <= 15
    # every service point's nearest device is a transformer
    assert set(topo.kind(int(d)) for d in np.unique(topo.sp_device(np.arange(len(topo.sp_ids))))) == {
        "transformer"
    }


def test_chains_go_transformer_fuse_or_recloser_breaker(net, topo):
    chains = [topo.device_chain(sp) for sp in net.service_points["sp_id"].iloc[::97]]
    for chain in chains:
        kinds = [topo.kind(topo.seg(d)) for d in chain]
        assert kinds[0] == "transformer" and kinds[-1] == "breaker"
    fused = sum(any(topo.kind(topo.seg(d)) == "fuse" for d in c) for c in chains)
    assert fused > len(chains) / 3  # most houses sit on fused laterals


def test_feeders_follow_the_streets(net):
    """Every primary line between two road poles runs along a real OSM road edge."""
    seg = net.segments
    poles = seg["from_node"].str.match(r"^P\d+$") & seg["to_node"].str.match(r"^P\d+$")
    pairs = set(zip(net.road_edges["u"], net.road_edges["v"], strict=True))
    lines = seg.loc[poles]
    assert len(lines) > 2000
    along = [
        (a[1:], b[1:]) in pairs or (b[1:], a[1:]) in pairs
        for a, b in zip(lines["from_node"], lines["to_node"], strict=True)
    ]
    assert all(along)
    # and the poles stand on the road nodes
    road_xy = net.road_nodes.set_index("osmid").geometry
    nodes = net.nodes.set_index("node_id").geometry
    sample = [n for n in lines["to_node"].iloc[::50]]
    assert all(nodes[n].equals(road_xy[n[1:]]) for n in sample)


def test_switching_a_tie_restores_a_dead_feeder_section(net):
    """Open the breaker of a feeder, then close one of its normally-open ties: the neighbour picks it up."""
    t = build(net)
    total = int(t.downstream_customers_node[t.source_nodes].sum())
    ties = net.segments.loc[net.segments["normally_open"]]
    restored_any = False
    for breaker in net.segments.loc[net.segments["kind"] == "breaker", "segment_id"]:
        lost = t.downstream_customers(t.seg(breaker))
        dead = t.set_open(breaker, True)
        assert int(t.downstream_customers_node[t.source_nodes].sum()) == total - lost
        dead_ids = set(t.node_ids[dead])
        for tie in ties.itertuples():
            if (tie.from_node in dead_ids) != (tie.to_node in dead_ids):
                back = t.set_open(tie.segment_id, False)
                assert len(back) >= len(dead) - 1 and t.energized[dead].all()
                assert int(t.downstream_customers_node[t.source_nodes].sum()) == total
                t.set_open(tie.segment_id, True)
                restored_any = True
                break
        t.set_open(breaker, False)
    assert restored_any


def test_people_look_real(net):
    sp = net.service_points
    assert sp["sp_id"].is_unique and sp["account"].is_unique and sp["meter"].is_unique
    assert sp["address"].str.match(r"^.+ \S+, 95\d{3} .+$").all()
    assert sp["phone"].str.match(r"^(\+49 \d{3} \d{6,7})?$").all()
    assert (sp["phone"] != "").mean() > 0.85
    assert (sp["name"] != "").all()
    assert set(sp["customer_class"]) >= {"residential", "commercial", "municipal"}
    assert (sp["customer_class"] == "residential").mean() > 0.7
    streets = sp["address"].str.extract(r"^(.+?) \S+, ")[0]
    assert streets.str.contains(r"straße|weg|Straße|platz|gasse", regex=True).mean() > 0.3
    hospitals = sp.loc[sp["critical_kind"] == "hospital", "name"]
    assert hospitals.str.startswith("Klinik").all()


def test_attribution_and_roads_usable(net):
    assert ATTRIBUTION in net.name
    assert net.attribution == "© OpenStreetMap contributors, ODbL"
    rg = RoadGraph.from_tables(net.road_nodes, net.road_edges)
    depots = np.c_[net.depots.geometry.x, net.depots.geometry.y]
    houses = np.c_[net.service_points.geometry.x, net.service_points.geometry.y][::40]
    t = rg.travel_time_matrix(depots, houses)
    assert np.isfinite(t).all()
    assert np.median(t) < 20 * 60  # a rural territory ~10 km across: most houses within 20 minutes


def test_critical_sites_are_on_distinct_houses(net):
    sp = net.service_points
    crit = sp.loc[sp["critical_kind"] != "none"]
    assert crit["sp_id"].is_unique
    assert pd.Series(crit.geometry.x.round(6)).duplicated().sum() == 0


def test_address_numbers_unique_per_street(net):
    addr = net.service_points["address"]
    assert addr.is_unique or addr.duplicated().mean() < 0.01
    assert all(re.match(r".+ \S+, \d{5} .+", a) for a in addr.iloc[::200])


@pytest.mark.slow
def test_deterministic_for_a_seed(net):
    again = sample_territory(seed=1)
    for table in ("nodes", "segments", "service_points"):
        pd.testing.assert_frame_equal(
            getattr(net, table).drop(columns="geometry"), getattr(again, table).drop(columns="geometry")
        )
