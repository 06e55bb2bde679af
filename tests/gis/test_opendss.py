"""OpenDSS import: the IEEE 123-node feeder against its source files, and each syntax feature on small snippets."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from data.ieee123 import COORDS, FOLDER, MASTER, ieee123_territory
from gis.opendss import OpenDSSError, compile_model, read_opendss
from gis.topology import build

# -- IEEE 123 -------------------------------------------------------------------------------------------------


def _count(pattern: str, *files: str) -> int:
    """Count matching lines in the source files themselves (comments removed), independent of the parser."""
    n = 0
    for f in files:
        for line in (FOLDER / f).read_text().splitlines():
            n += bool(re.match(pattern, line.split("!")[0].strip(), re.I))
    return n


@pytest.fixture(scope="module")
def ieee():
    return ieee123_territory()


def test_ieee123_model_counts_match_source_files():
    model = compile_model(MASTER, COORDS)  # what the OpenDSS engine compiled
    lines = model.of_class("line")
    switches = [o for o in lines if o.get("switch")]
    assert len(lines) - len(switches) == _count(r"new\s+line\.l", "IEEE123Master.dss") == 118
    assert len(switches) == _count(r"new\s+line\.sw", "IEEE123Master.dss") == 8
    assert len(model.of_class("load")) == _count(r"new\s+load\.", "IEEE123Loads.DSS") == 91
    assert len({o["bus1"].split(".")[0] for o in model.of_class("load")}) == 85
    assert len(model.of_class("transformer")) == 8  # reg1a, 6 regulator units, XFM1
    assert len(model.of_class("regcontrol")) == 7
    assert len(model.of_class("capacitor")) == 4
    assert len(model.coords) == 130
    assert sum(float(o["kw"]) for o in model.of_class("load")) == pytest.approx(3490)
    assert model.display("line", "sw7") == "Sw7"  # ids keep the spelling of the model


def test_ieee123_network_keeps_every_line_switch_and_load(ieee):
    seg = ieee.segments
    real = seg[~seg["synthesized"]]
    assert (real["kind"] == "line").sum() == 118
    assert (real["kind"] == "switch").sum() == 8
    assert sorted(real.loc[real["kind"] == "regulator", "segment_id"]) == ["reg1a", "reg2", "reg3", "reg4"]
    assert set(real.loc[real["kind"] == "transformer", "segment_id"]) == {"XFM1"}
    loads = ieee.service_points["name"].str.extract(r"^Load\.(\w+)")[0]
    assert loads.nunique() == 91
    # buses: 130 with coordinates; the two dummy open buses are folded into 300 and 94
    plain = {n for n in ieee.nodes["node_id"] if "~" not in n}
    assert len(plain) == 130


def test_ieee123_ties_are_open_and_reach_real_buses(ieee):
    seg = ieee.segments.set_index("segment_id")
    assert seg.loc["Sw7", ["from_node", "to_node", "normally_open"]].tolist() == ["151", "300", True]
    assert seg.loc["Sw8", ["from_node", "to_node", "normally_open"]].tolist() == ["54", "94", True]
    assert int(seg["normally_open"].sum()) == 2


def test_ieee123_is_valid_radial_and_energized(ieee):
    topo = build(ieee)  # raises on loops, islands, service points without a transformer
    assert topo.energized.all()
    assert topo.downstream_customers(topo.seg("BRK-150")) == int(ieee.service_points["customers"].sum())
    # both ends of each tie are live: closing one would parallel the feeder with itself
    for tie in ("Sw7", "Sw8"):
        s = topo.seg(tie)
        assert topo.energized[topo.seg_from[s]] and topo.energized[topo.seg_to[s]]


def test_ieee123_synthesized_devices_follow_the_rules(ieee):
    topo = build(ieee)
    seg = ieee.segments
    synth = seg[seg["synthesized"]]
    assert set(synth["kind"]) == {"breaker", "fuse", "recloser", "transformer"}
    assert (synth["kind"] == "transformer").sum() == 91  # one per load
    assert (synth["kind"] == "recloser").sum() == 1
    # every fuse sits at a lateral tap: its upstream node is fed by a three-phase segment, the line below is not
    phases = seg["phases"].to_numpy()
    for s in np.flatnonzero(seg["kind"].to_numpy() == "fuse"):
        below = topo.device_below(int(s))
        tap = topo.parent_node[below]
        assert len(phases[topo.parent_seg[tap]]) == 3
        line_below = [x for x in np.flatnonzero(topo.parent_node == below)]
        assert all(len(phases[topo.parent_seg[c]]) < 3 for c in line_below)
    # the recloser is on the three-phase main line and splits the feeder roughly in half
    rec = int(np.flatnonzero(seg["kind"].to_numpy() == "recloser")[0])
    share = topo.downstream_customers(rec) / topo.downstream_customers(topo.seg("BRK-150"))
    assert 0.25 < share < 0.75
    assert len(phases[rec]) == 3
    # customers from kW: S1a is 40 kW -> 8 residential service points; S47 (three-phase) -> 1 commercial
    sp = ieee.service_points
    assert (sp["name"].str.startswith("Load.S1a ")).sum() == 8
    s47 = sp[sp["name"].str.startswith("Load.S47 ")]
    assert len(s47) == 1 and s47["customer_class"].iloc[0] == "commercial"
    assert sp["synthesized"].all()


def test_ieee123_chain_runs_service_to_breaker(ieee):
    topo = build(ieee)
    sp = ieee.service_points
    sp_id = sp.loc[sp["name"].str.startswith("Load.S11a "), "sp_id"].iloc[0]  # bus 11: behind reg2 and a fuse
    chain = topo.device_chain(sp_id)
    kinds = [topo.kind(topo.seg(d)) for d in chain]
    assert kinds[0] == "transformer" and kinds[-1] == "breaker"
    assert "regulator" in kinds and "fuse" in kinds


def test_ieee123_placed_at_anchor_and_scale():
    net = ieee123_territory(anchor=(50.0, 8.0), scale=0.3048)
    lon = net.nodes.geometry.x
    lat = net.nodes.geometry.y
    assert abs((lon.min() + lon.max()) / 2 - 8.0) < 0.002
    assert abs((lat.min() + lat.max()) / 2 - 50.0) < 0.002
    width_m = (lon.max() - lon.min()) * 111_320 * np.cos(np.radians(50))
    assert width_m == pytest.approx((5450 - 100) * 0.3048, rel=0.05)  # service points stick out a little


def test_switches_variant_opens_ties_by_open_command():
    net = read_opendss(FOLDER / "IEEE123Switches.dss", anchor=(49.98, 11.6), scale=0.3048, coords=COORDS)
    seg = net.segments.set_index("segment_id")
    assert seg.loc[["Sw7", "Sw8"], "normally_open"].all()
    assert int(seg["normally_open"].sum()) == 2
    build(net)


def test_planar_coordinates_without_anchor_are_refused():
    with pytest.raises(OpenDSSError, match="look planar.*anchor"):
        read_opendss(MASTER)


# -- syntax on snippets -------------------------------------------------------------------------------------

COORDS_LATLON = """\
src, 11.600, 50.000
a, 11.601, 50.000
b, 11.602, 50.000
c, 11.603, 50.001
d, 11.603, 49.999
e, 11.604, 50.000
"""


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path / next(iter(files))


def _feeder(tmp_path, body: str, coords: str = COORDS_LATLON, **kw):
    master = _write(tmp_path, {"master.dss": "Clear\nNew Circuit.test bus1=src basekv=12.47\n" + body
                               + "\nBuscoords coords.csv\n", "coords.csv": coords})
    return read_opendss(master, **kw)


def _segs(net):
    return net.segments.set_index("segment_id")


def test_redirect_chain_with_relative_paths_and_compile(tmp_path):
    master = _write(tmp_path, {
        "master.dss": "Clear\nNew Circuit.chain bus1=src\nRedirect lines/main.dss\nBuscoords coords.csv\n",
        "lines/main.dss": "New Line.L1 bus1=src bus2=a\nCompile ../more/rest.dss\n",
        "more/rest.dss": "New Line.L2 bus1=a bus2=b\nNew Load.LD1 bus1=b kW=10\n",
        "coords.csv": COORDS_LATLON,
    })
    net = read_opendss(master)
    assert {"L1", "L2"} <= set(net.segments["segment_id"])
    assert net.name == "chain"
    build(net)


def test_redirect_to_missing_file_names_file_and_line(tmp_path):
    master = _write(tmp_path, {"master.dss": "Clear\n! a comment\nRedirect nowhere.dss\n"})
    with pytest.raises(OpenDSSError, match=r"master.dss:3: Redirect file not found: \"nowhere.dss\""):
        compile_model(master)


def test_redirect_loop_is_reported(tmp_path):
    master = _write(tmp_path, {"master.dss": "Redirect b.dss\n", "b.dss": "Redirect master.dss\n"})
    with pytest.raises(OpenDSSError, match="redirect loop"):
        compile_model(master)


def test_continuations_comments_case_and_positional(tmp_path):
    net = _feeder(tmp_path, """
NEW LINE.L1 src a  ! positional bus1 bus2
~ length=2 UNITS=kft   // a trailing comment
new line.L2
more bus1=a bus2=b
/* a block comment
New Line.Ghost bus1=b bus2=c
*/
New Load.LD1 bus1=b kW=10
""")
    seg = _segs(net)
    assert seg.loc["L1", ["from_node", "to_node"]].tolist() == ["src", "a"]
    assert seg.loc["L1", "length_m"] == pytest.approx(609.6)
    assert seg.loc["L2", ["from_node", "to_node"]].tolist() == ["a", "b"]
    assert "Ghost" not in seg.index
    build(net)


def test_like_copies_properties(tmp_path):
    net = _feeder(tmp_path, """
New Line.L1 phases=1 bus1=src bus2=a length=2
New Line.L2 like=L1 bus1=a bus2=b
New Load.LD1 bus1=b kW=10
""")
    seg = _segs(net)
    assert seg.loc["L2", "phases"] == "A"  # phases=1 from L1


def test_phase_suffixes(tmp_path):
    net = _feeder(tmp_path, """
New Line.L1 bus1=SRC.1.2.3 bus2=A.1.2.3
New Line.L2 phases=1 bus1=a.2 bus2=b.2
New Line.L3 phases=2 bus1=a.1.3 bus2=e.1.3
New Load.LD1 bus1=b.2 phases=1 kW=10
""")
    seg = _segs(net)
    assert seg.loc["L1", ["from_node", "to_node", "phases"]].tolist() == ["src", "a", "ABC"]
    assert seg.loc["L2", "phases"] == "B"
    assert seg.loc["L3", "phases"] == "AC"


@pytest.mark.parametrize("how", ["enabled=false", "open", "swtcontrol", "disable"])
def test_normally_open_by_each_means(tmp_path, how):
    tie = "New Line.TIE bus1=b bus2=c switch=y" + (" enabled=false" if how == "enabled=false" else "")
    extra = {"open": "Open Line.TIE term=1",
             "swtcontrol": "New SwtControl.SC1 SwitchedObj=Line.TIE SwitchedTerm=1 Normal=open",
             "disable": "Disable Line.TIE"}.get(how, "")
    net = _feeder(tmp_path, f"""
New Line.L1 bus1=src bus2=a
New Line.L2 bus1=a bus2=b
New Line.L3 bus1=a bus2=c
{tie}
{extra}
New Load.LD1 bus1=b kW=10
""")
    seg = _segs(net)
    assert bool(seg.loc["TIE", "normally_open"]) is True
    assert int(seg["normally_open"].sum()) == 1
    build(net)  # a closed TIE would be a loop


def test_close_command_undoes_open(tmp_path):
    net = _feeder(tmp_path, """
New Line.L1 bus1=src bus2=a
New Line.L2 bus1=a bus2=b switch=y
Open Line.L2
Close Line.L2
New Load.LD1 bus1=b kW=10
""")
    assert not _segs(net).loc["L2", "normally_open"]


def test_dead_end_bus_without_coordinates(tmp_path):
    net = _feeder(tmp_path, """
New Line.L1 bus1=src bus2=a
New Line.L2 bus1=a bus2=b
New Line.L3 bus1=a bus2=c
New Line.TIE bus1=b bus2=c_OPEN switch=y
New Line.STUB bus1=a bus2=nowhere
New Load.LD1 bus1=b kW=10
""")
    seg = _segs(net)
    assert seg.loc["TIE", ["from_node", "to_node", "normally_open"]].tolist() == ["b", "c", True]
    # a dead end without coordinates is kept and placed beside the bus it hangs on
    assert seg.loc["STUB", ["from_node", "to_node", "normally_open"]].tolist() == ["a", "nowhere", False]
    nodes = net.nodes.set_index("node_id")
    assert bool(nodes.loc["nowhere", "placed"]) and not nodes.loc["a", "placed"]
    assert 5 < seg.loc["STUB", "geometry"].length * 111_000 < 30
    build(net)


def test_protective_devices_attached_to_lines(tmp_path):
    net = _feeder(tmp_path, """
New Line.L1 bus1=src bus2=a
New Line.L2 bus1=a bus2=b
New Line.L3 bus1=b bus2=c
New Line.SW bus1=b bus2=d switch=y
New Relay.RL1 MonitoredObj=Line.L1 MonitoredTerm=1
New Recloser.RC1 MonitoredObj=Line.L2 MonitoredTerm=1
New Fuse.FU1 MonitoredObj=Line.L3 MonitoredTerm=1
New Fuse.FU2 MonitoredObj=Line.SW
New Capacitor.C1 bus1=b kvar=300
New Load.LD1 bus1=c kW=10
New Load.LD2 bus1=d kW=10
""")
    seg = _segs(net)
    assert seg.loc["RL1", "kind"] == "breaker" and not seg.loc["RL1", "synthesized"]
    assert seg.loc["RC1", "kind"] == "recloser" and seg.loc["RC1", "from_node"] == "a"
    assert seg.loc["FU1", "kind"] == "fuse" and seg.loc["FU1", "from_node"] == "b"
    assert seg.loc["SW", "kind"] == "fuse"  # a switch line carrying a fuse is the fuse
    assert seg.loc["L3", "from_node"] == "b~fu1" and seg.loc["L3", "kind"] == "line"
    # a relay at the source is the feeder head: no synthesized breaker, no synthesized fuses or recloser
    assert (seg["kind"] == "breaker").sum() == 1
    synth = seg[seg["synthesized"]]
    assert set(synth["kind"]) == {"transformer"}
    topo = build(net)
    sp = net.service_points
    assert topo.device_chain(sp["sp_id"].iloc[0]) == ["T-LD1", "FU1", "RC1", "RL1"]


def test_regulator_bank_merges_and_transformer_windings(tmp_path):
    net = _feeder(tmp_path, """
New Line.L1 bus1=src bus2=a
New Transformer.RA phases=1 windings=2 bank=REG buses=[a.1 b.1] kvs=[7.2 7.2]
New Transformer.RB like=RA buses=[a.2 b.2]
New Transformer.RC like=RA buses=[a.3 b.3]
New RegControl.CA transformer=RA winding=2
New RegControl.CB transformer=RB winding=2
New RegControl.CC transformer=RC winding=2
New Transformer.X1 phases=3 windings=2
~ wdg=1 bus=b kv=12.47
~ wdg=2 bus=c kv=0.48
New Load.LD1 bus1=c.1 phases=1 kW=30
""")
    seg = _segs(net)
    assert seg.loc["REG", "kind"] == "regulator"
    assert seg.loc["REG", "phases"] == "ABC"
    assert (seg["kind"] == "regulator").sum() == 1
    assert seg.loc["X1", ["from_node", "to_node", "kind"]].tolist() == ["b", "c", "transformer"]
    sp = net.service_points
    assert set(sp["node_id"]) == {"c"}  # the load sits on X1's low side: no synthesized transformer
    assert len(sp) == 6  # 30 kW / 5 kW


def test_planar_coordinates_placed_by_anchor_and_scale(tmp_path):
    coords = "src 0 0\na 1000 0\nb 2000 0\n"
    net = _feeder(tmp_path, "New Line.L1 bus1=src bus2=a\nNew Line.L2 bus1=a bus2=b\nNew Load.LD1 bus1=b kW=5",
                  coords=coords, anchor=(50.0, 10.0), scale=0.5)
    nodes = net.nodes.set_index("node_id").geometry
    assert nodes["a"].x == pytest.approx(10.0, abs=1e-9) and nodes["a"].y == pytest.approx(50.0, abs=1e-6)
    # 1000 units * 0.5 m = 500 m east of the centre
    assert (nodes["b"].x - nodes["a"].x) * 111_320 * np.cos(np.radians(50)) == pytest.approx(500, rel=0.01)


def test_latlongcoords_are_lat_then_lon(tmp_path):
    master = _write(tmp_path, {
        "master.dss": "New Circuit.ll bus1=src\nNew Line.L1 bus1=src bus2=a\nNew Load.LD1 bus1=a kW=5\n"
                      "LatLongCoords ll.csv\n",
        "ll.csv": "src 50.0 11.0\na 50.001 11.001\n",
    })
    net = read_opendss(master)
    a = net.nodes.set_index("node_id").geometry["a"]
    assert (a.x, a.y) == (11.001, 50.001)
    # geographic already: an anchor (for planar coordinates) leaves them where they are
    a = read_opendss(master, anchor=(40.0, -80.0)).nodes.set_index("node_id").geometry["a"]
    assert (a.x, a.y) == (11.001, 50.001)


def test_bus_without_coordinates_is_placed_between_its_neighbours(tmp_path):
    net = _feeder(tmp_path, "New Line.L1 bus1=src bus2=a\nNew Line.L2 bus1=a bus2=zz\nNew Line.L3 bus1=zz bus2=b\n"
                            "New Load.LD1 bus1=b kW=10")
    nodes = net.nodes.set_index("node_id")
    zz, a, b = (nodes.loc[n, "geometry"] for n in ("zz", "a", "b"))
    assert bool(nodes.loc["zz", "placed"]) and int(nodes["placed"].sum()) == 1
    assert zz.x == pytest.approx((a.x + b.x) / 2) and zz.y == pytest.approx((a.y + b.y) / 2)
    assert net.summary()["placed_nodes"] == 1


def test_edit_of_undefined_element_is_what_opendss_makes_of_it(tmp_path):
    net = _feeder(tmp_path, "New Line.L1 bus1=src bus2=a\nEdit Line.nope length=3\nNew Load.LD1 bus1=a kW=5")
    build(net)


def test_no_source_is_an_error(tmp_path):
    master = _write(tmp_path, {"m.dss": "New Line.L1 bus1=a bus2=b\n"})
    with pytest.raises(OpenDSSError, match="no source"):
        read_opendss(master)


def test_import_is_deterministic():
    a, b = ieee123_territory(), ieee123_territory()
    assert a.segments.drop(columns="geometry").equals(b.segments.drop(columns="geometry"))
    assert a.service_points.geometry.equals(b.service_points.geometry)


def test_line_without_bus_is_named(tmp_path):
    net = _feeder(tmp_path, "New Line.L0 bus1=src bus2=a\nNew Line.L1 bus1=src length=1\nNew Load.LD1 bus1=a kW=5")
    assert "L1" not in set(net.segments["segment_id"])
    assert any("Line.L1: both ends on bus 'src'" in n for n in net.notes)


def test_buscoords_file_keyword(tmp_path):
    master = _write(tmp_path, {
        "master.dss": "New Circuit.kw bus1=src\nNew Line.L1 bus1=src bus2=a\nNew Load.LD1 bus1=a.1 phases=1 kW=5\n"
                      "BusCoords file=xy.txt\n",
        "xy.txt": "bus,x,y\nsrc,11.0,50.0\na,11.001,50.0\n",  # a header row is skipped
    })
    net = read_opendss(master)
    assert len(net.service_points) == 1
    build(net)


@pytest.mark.parametrize(("km", "reclosers"), [(0.3, 0), (1.0, 1)])
def test_synthesized_recloser_only_on_long_feeders(tmp_path, km, reclosers):
    """Rule 3 of gis.opendss_complete: a mid-line recloser only where the main line reaches 1.5 km (here 3 x km
    along the line; the buses' coordinates are ~70 m apart, so the modelled lengths decide)."""
    net = _feeder(tmp_path, f"""
New Line.M1 bus1=src bus2=a length={km} units=km
New Line.M2 bus1=a bus2=b length={km} units=km
New Line.M3 bus1=b bus2=e length={km} units=km
New Line.LA phases=1 bus1=a.1 bus2=c.1 length=0.1 units=km
New Line.LB phases=1 bus1=b.2 bus2=d.2 length=0.1 units=km
New Load.LC bus1=c.1 phases=1 kW=20
New Load.LD bus1=d.2 phases=1 kW=20
New Load.LE bus1=e phases=3 kW=20
""")
    seg = _segs(net)
    synth = seg[seg["synthesized"]]
    assert (synth["kind"] == "recloser").sum() == reclosers
    assert (synth["kind"] == "fuse").sum() == 2  # the lateral fuses do not depend on length
