"""Radial topology on hand-made networks: tree, chains, counts, switching, and every validation error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point
from small import small_feeder

from gis.network import Network, NetworkError
from gis.topology import NONE, TopologyError, build
from gis.validate import validate


@pytest.fixture
def topo():
    return build(small_feeder())


def _customers(topo, seg_id):
    return topo.downstream_customers(topo.seg(seg_id))


# -- the tree -----------------------------------------------------------------------------------------------


def test_everything_energized_and_tie_open(topo):
    assert topo.energized.all()
    tie = topo.seg("TIE")
    assert topo.seg_open[tie] and topo.device_below(tie) == NONE
    assert topo.parent_node[topo.node_index["S"]] == NONE


def test_downstream_customer_counts(topo):
    assert {s: _customers(topo, s) for s in ("BRK", "R1", "F1", "F2", "T1", "T2", "T3", "BRK2", "T4", "TIE")} == {
        "BRK": 7, "R1": 7, "F1": 3, "F2": 4, "T1": 3, "T2": 3, "T3": 1, "BRK2": 4, "T4": 4, "TIE": 0}
    sps = topo.sp_ids[topo.downstream_service_points(topo.seg("F2"))]
    assert sorted(sps) == ["sp3", "sp4"]


def test_device_chains(topo):
    assert topo.device_chain("sp1") == ["T1", "F1", "R1", "BRK"]
    assert topo.device_chain("sp4") == ["T3", "F2", "R1", "BRK"]
    assert topo.device_chain("sp5") == ["T4", "BRK2"]
    assert topo.device_chain("sp1", kinds=("fuse", "breaker")) == ["F1", "BRK"]
    with pytest.raises(KeyError, match="sp9"):
        topo.device_chain("sp9")


def test_device_parents_and_feeders(topo):
    parents = topo.device_parents()
    name = {i: s for i, s in enumerate(topo.segment_ids)}
    assert name[parents[topo.seg("F1")]] == "R1"
    assert name[parents[topo.seg("R1")]] == "BRK"
    assert parents[topo.seg("BRK")] == NONE
    assert parents[topo.seg("L1")] == NONE  # not a device
    heads = topo.feeder_heads()
    assert topo.segment_ids[heads[topo.node_index["s3"]]] == "BRK"
    assert topo.segment_ids[heads[topo.node_index["s4"]]] == "BRK2"
    assert heads[topo.node_index["S"]] == NONE
    assert topo.segment_ids[topo.feeder_of(topo.node_index["n5"])] == "BRK"


# -- switching ------------------------------------------------------------------------------------------------


def test_open_recloser_deenergizes_its_subtree(topo):
    changed = topo.set_open("R1", True)
    assert sorted(topo.node_ids[changed]) == sorted(["n3", "n4", "n5", "s1", "n6", "s2", "s3"])
    assert not topo.energized[changed].any()
    assert _customers(topo, "BRK") == 0 and _customers(topo, "BRK2") == 4
    assert topo.device_chain("sp1") == []
    assert topo.set_open("R1", True).size == 0  # already open: nothing changes


def test_back_feed_through_tie_then_restore(topo):
    topo.set_open("R1", True)
    fed = topo.set_open("TIE", False)
    assert len(fed) == 7
    assert topo.device_chain("sp1") == ["T1", "F1", "TIE", "BRK2"]
    assert _customers(topo, "BRK2") == 11
    with pytest.raises(TopologyError, match="loop"):
        topo.set_open("R1", False)  # both sides live now
    topo.set_open("TIE", True)
    topo.set_open("R1", False)
    fresh = build(small_feeder())
    for arr in ("parent_node", "parent_seg", "energized", "upstream_device", "downstream_customers_node"):
        assert np.array_equal(getattr(topo, arr), getattr(fresh, arr)), arr


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["BRK", "R1", "F1", "F2", "TIE", "T2", "BRK2", "L2"]), st.booleans()),
                max_size=12))
def test_incremental_switching_matches_a_full_rebuild(ops):
    net = small_feeder()
    topo = build(net)
    for seg_id, open_ in ops:
        try:
            topo.set_open(seg_id, open_)
        except TopologyError:
            continue  # a close that would make a loop is refused and changes nothing
    state = dict(zip(topo.segment_ids, topo.seg_open, strict=True))
    net.segments["normally_open"] = net.segments["segment_id"].map(state)
    fresh = build(net, validate=False)
    for arr in ("parent_node", "parent_seg", "energized", "upstream_device", "downstream_customers_node",
                "substation_of_node"):
        assert np.array_equal(getattr(topo, arr), getattr(fresh, arr)), arr


def test_refused_close_changes_nothing(topo):
    before = topo.parent_node.copy()
    with pytest.raises(TopologyError, match="TIE"):
        topo.set_open("TIE", False)
    assert topo.seg_open[topo.seg("TIE")]
    assert np.array_equal(before, topo.parent_node)


# -- validation errors ----------------------------------------------------------------------------------------


def _problems(net) -> str:
    with pytest.raises(TopologyError) as err:
        build(net)
    assert validate(net) == err.value.problems
    return str(err.value)


def test_loop_names_the_closing_segment_and_cycle():
    msg = _problems(small_feeder(extra_segments=[("LOOP", "n5", "n6", "line", False)]))
    assert "loop" in msg and "n5" in msg and "n6" in msg and "n4" in msg


def test_closed_tie_is_a_loop():
    net = small_feeder()
    net.segments.loc[net.segments["segment_id"] == "TIE", "normally_open"] = False
    assert "loop" in _problems(net)


def test_parallel_segments_are_a_loop():
    assert "parallel" in _problems(small_feeder(extra_segments=[("L1b", "n1", "n2", "line", False)]))


def test_island_lists_unreached_nodes():
    msg = _problems(small_feeder(drop_segments=["L2"]))
    assert "island" in msg and "n4" in msg and "s3" in msg


def test_node_behind_open_switch_only_is_deenergized_by_design_not_an_island():
    net = small_feeder(drop_segments=["BRK2"])
    topo = build(net)  # m1 and s4 hang behind the normally open TIE: dead by design, not broken data
    assert not topo.energized[topo.node_index["m1"]]
    assert validate(net) == []


def test_service_point_on_no_transformer():
    msg = _problems(small_feeder(extra_sps=[("sp9", "n4", 1, "none")]))
    assert "service point on no transformer: sp9" in msg


def test_dangling_references():
    msg = _problems(small_feeder(extra_segments=[("X1", "n4", "ghost", "line", False)],
                                 extra_sps=[("sp9", "nowhere", 1, "none")]))
    assert "to_node refers to unknown node for X1 -> 'ghost'" in msg
    assert "node_id refers to unknown node for sp9 -> 'nowhere'" in msg


def test_duplicate_and_empty_ids():
    net = small_feeder(extra_segments=[("L1", "n4", "n5", "line", False)])
    net.nodes = pd.concat([net.nodes, net.nodes.iloc[[0]]], ignore_index=True)
    net.service_points.loc[0, "sp_id"] = ""
    msg = _problems(net)
    assert "nodes: duplicate node_id: S" in msg
    assert "segments: duplicate segment_id: L1" in msg
    assert "service_points: 1 row(s) with an empty sp_id" in msg


def test_unknown_kind_and_critical_kind_and_negative_customers():
    net = small_feeder(extra_sps=[("sp9", "s1", -2, "dragon")])
    net.segments.loc[net.segments["segment_id"] == "L1", "kind"] = "cable"
    msg = _problems(net)
    assert "unknown kind for L1 ('cable')" in msg
    assert "unknown critical_kind for sp9" in msg
    assert "negative customers for sp9" in msg


def test_self_loop_segment():
    assert "from_node equals to_node for Z" in _problems(small_feeder(extra_segments=[("Z", "n4", "n4", "line",
                                                                                       False)]))


def test_substation_problems():
    net = small_feeder()
    net.substations.loc[0, "source_node"] = "nowhere"
    assert "source_node refers to unknown node for SUB1 -> 'nowhere'" in _problems(net)
    net.substations = net.substations.iloc[0:0]
    assert "substations: none" in _problems(net)


def test_missing_and_out_of_range_coordinates():
    net = small_feeder()
    geoms = net.nodes.geometry.tolist()
    geoms[1] = None
    geoms[2] = Point(200.0, 50.0)
    net.nodes = net.nodes.set_geometry(geoms)
    msg = _problems(net)
    assert "nodes: missing coordinates for n1" in msg
    assert "coordinates out of range" in msg and "n2" in msg


def test_every_problem_is_reported_at_once():
    net = small_feeder(extra_segments=[("X1", "n4", "ghost", "line", False)], extra_sps=[("sp9", "s1", -1, "none")])
    net.segments.loc[net.segments["segment_id"] == "L1", "kind"] = "cable"
    problems = validate(net)
    assert len(problems) == 3


def test_valid_network_has_no_problems():
    assert validate(small_feeder()) == []


def test_missing_required_column_is_named():
    with pytest.raises(NetworkError, match="segments: required column 'from_node' is missing"):
        net = small_feeder()
        Network.from_tables({"nodes": net.nodes, "segments": net.segments.drop(columns="from_node"),
                             "service_points": net.service_points, "substations": net.substations})
