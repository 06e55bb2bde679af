"""OpenDSS syntax the old hand-written parser read differently from OpenDSS: one small model per case
(``tests/gis/dss/``), each imported valid and read the way the OpenDSS engine reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gis.opendss import read_opendss
from gis.validate import validate

DSS = Path(__file__).parent / "dss"


def _import(name: str):
    net = read_opendss(DSS / name)
    assert validate(net) == []
    return net


def _segs(net):
    return net.segments.set_index("segment_id")


def test_unnamed_values_go_on_from_the_last_named_property():
    net = _import("positional_after_named.dss")
    assert "1" not in set(net.nodes["node_id"])
    assert _segs(net).loc["S1", ["from_node", "to_node", "kind"]].tolist() == ["a", "b", "switch"]


def test_bus_is_the_short_form_of_bus1():
    net = _import("bus_short_form.dss")
    sp = net.service_points
    assert set(sp["name"].str.extract(r"^Load\.(\w+)")[0]) == {"LD1", "LD2"}
    seg = _segs(net)
    assert seg.loc["T-LD1", "from_node"] == "b" and seg.loc["T-LD2", "from_node"] == "a"


def test_arrays_with_commas_and_the_substation_transformer():
    net = _import("comma_arrays.dss")
    seg = _segs(net)
    # the distribution transformer reads both buses of buses=(b.1,c.1)
    assert seg.loc["D1", ["from_node", "to_node", "kind"]].tolist() == ["b", "c", "transformer"]
    # sub=y is substation equipment, not a distribution transformer: the feeder head breaker sits below it
    assert "SUBX" not in seg.index
    sub = net.substations.iloc[0]
    assert sub["source_node"] == "a" and "Transformer.SUBX" in sub["equipment"]
    assert (seg["kind"] == "transformer").sum() == 1 and (seg["kind"] == "breaker").sum() == 1
    assert set(net.service_points["node_id"]) == {"c"}


def test_a_coordinate_line_with_an_empty_name_is_skipped():
    net = _import("empty_buscoords_name.dss")
    assert not net.nodes["placed"].any()


def test_disabled_elements_are_left_out_with_a_note():
    net = _import("disabled.dss")
    assert {"ALT", "SPARE"}.isdisjoint(set(net.segments["segment_id"]))
    assert not net.service_points["name"].str.startswith("Load.LX ").any()
    assert "x" not in set(net.nodes["node_id"])
    assert any("disabled" in n and "Line.ALT" in n for n in net.notes)


def test_a_fuse_named_like_its_line_gets_its_own_id():
    net = _import("fuse_named_like_line.dss")
    seg = _segs(net)
    assert seg.loc["L2", "kind"] == "line"
    assert seg.loc["Fuse.L2", ["from_node", "kind", "synthesized"]].tolist() == ["a", "fuse", False]


def test_regulator_with_jumpers_on_its_other_phases_is_one_regulator():
    net = _import("regulator_jumpers.dss")
    seg = _segs(net)
    reg = seg[seg["kind"] == "regulator"]
    assert len(reg) == 1 and reg["phases"].iloc[0] == "ABC"
    assert {"J2", "J3"}.isdisjoint(seg.index)
    assert any("merged" in n for n in net.notes)


def test_loads_on_service_lines_hang_under_their_transformer_without_a_twin():
    net = _import("service_lines.dss")
    seg = _segs(net)
    assert list(seg.index[seg["kind"] == "transformer"]) == ["T1"]
    assert set(seg.loc[["SEC", "DROP1", "DROP2"], "kind"]) == {"service"}
    assert set(net.service_points["node_id"]) == {"h1", "h2"}
    # buses without coordinates are placed around the transformer and counted
    placed = set(net.nodes.loc[net.nodes["placed"], "node_id"])
    assert placed == {"a_s", "a_sec", "h1", "h2"}


@pytest.mark.parametrize("name", sorted(p.name for p in DSS.glob("*.dss")))
def test_every_case_imports_valid(name):
    _import(name)


def test_subtransmission_between_source_and_substation_transformers_is_substation():
    net = _import("subtransmission.dss")
    sub = net.substations.iloc[0]
    assert len(net.substations) == 1
    assert set(sub["equipment"].split(", ")) == {"Line.HV1", "Line.L69", "Transformer.T115", "Transformer.S1",
                                                 "Transformer.S2"}
    seg = _segs(net)
    assert net.summary()["feeders"] == 2  # one leaves each 12.47 kV bus
    assert set(seg.index[seg["kind"] == "transformer"]) == {"D1", "D2"}
    assert set(net.service_points["node_id"]) == {"c1", "ar1"}
