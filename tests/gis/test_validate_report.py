"""Validation in one run: every problem, grouped and counted; nothing invalid written; de-energized by design is not
a problem; ``oms serve`` / ``oms simulate`` refuse a bad territory in one line."""

from __future__ import annotations

import json

import pandas as pd
from small import small_feeder

from api.commands.main import main as oms
from gis.io import read_territory, write_territory
from gis.topology import build
from gis.validate import read_valid_territory, validate, validation_report


def _broken():
    """Table problems (a dangling segment, an unknown kind) and topology ones (a loop, a service point on no
    transformer) at once."""
    net = small_feeder(extra_segments=[("X1", "n4", "ghost", "line", False), ("LOOP", "n5", "n6", "line", False)],
                       extra_sps=[("sp9", "n4", 1, "none")])
    net.segments.loc[net.segments["segment_id"] == "L1", "kind"] = "cable"
    return net


def test_table_and_topology_problems_are_found_in_one_run():
    kinds = [g["kind"] for g in validation_report(_broken()).groups()]
    assert kinds == ["unknown kind", "unknown node", "loop", "service point on no transformer"]


def test_groups_count_offending_elements_and_show_examples():
    net = small_feeder(extra_sps=[(f"x{i}", f"nowhere{i}", 1, "none") for i in range(12)])
    (group,) = validation_report(net).groups()
    assert group["kind"] == "unknown node" and group["count"] == 12
    assert "x0 -> 'nowhere0'" in group["examples"][0]


def test_unknown_customer_class_is_a_problem_not_residential():
    net = small_feeder()
    net.service_points.loc[0, "customer_class"] = "R-TOU"
    assert any("unknown customer_class for sp1" in p for p in validate(net))


def test_behind_normally_open_or_out_of_service_is_reported_not_a_problem():
    net = small_feeder(drop_segments=["BRK2"])  # feeder 2 is fed only through the normally open TIE
    net.segments.loc[net.segments["segment_id"] == "F2", "status"] = "out_of_service"
    report = validation_report(net)
    assert report.valid
    dead = report.deenergized
    assert dead["customers"] == 4 + 3 + 1  # sp5 behind TIE, sp3/sp4 behind the out-of-service fuse F2
    assert sorted(dead["behind"]) == ["F2", "TIE"]
    assert dead["feeders"] == ["F1", "F2"]
    topo = build(net)
    assert not topo.energized[topo.node_index["n6"]]


def test_broken_island_stays_a_problem():
    problems = validate(small_feeder(drop_segments=["L2"]))
    assert any(p.kind == "island" and "n4" in p for p in problems)


def test_out_of_service_segment_round_trips(tmp_path):
    net = small_feeder()
    net.segments.loc[net.segments["segment_id"] == "F2", "status"] = "out_of_service"
    write_territory(net, tmp_path / "t.gpkg")
    back = read_territory(tmp_path / "t.gpkg")
    assert back.segments.set_index("segment_id").loc["F2", "status"] == "out_of_service"


# -- command line --------------------------------------------------------------------------------------------


def _csv_folder(net, folder):
    folder.mkdir()
    for table in ("nodes", "segments", "service_points", "substations"):
        df = getattr(net, table)
        out = pd.DataFrame(df.drop(columns="geometry"))
        if table != "segments":
            out["longitude"], out["latitude"] = df.geometry.x, df.geometry.y
        out.to_csv(folder / f"{table}.csv", index=False)
    return folder


def test_import_writes_nothing_unless_valid(tmp_path, capsys):
    src = _csv_folder(small_feeder(extra_segments=[("LOOP", "n5", "n6", "line", False)],
                                   extra_sps=[("sp9", "n4", 1, "none"), ("sp10", "nowhere", 1, "none")]),
                      tmp_path / "csv")
    out = tmp_path / "t.gpkg"
    assert oms(["territory", "import", str(src), "--format", "csv", "-o", str(out)]) == 1
    text = capsys.readouterr().out
    assert not out.exists()
    assert "nothing written" in text
    assert "unknown node: 1" in text and "loop: 1" in text and "service point on no transformer: 1" in text
    assert oms(["territory", "import", str(src), "--format", "csv", "--allow-invalid", "-o", str(out)]) == 1
    assert out.exists()
    capsys.readouterr()
    assert oms(["territory", "info", str(out), "--json"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert {g["kind"]: g["count"] for g in info["problem_groups"]} == {
        "unknown node": 1, "loop": 1, "service point on no transformer": 1}


def test_info_json_reports_deenergized_by_design(tmp_path, capsys):
    write_territory(small_feeder(drop_segments=["BRK2"]), tmp_path / "t.gpkg")
    assert oms(["territory", "info", str(tmp_path / "t.gpkg"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["valid"] and info["problem_groups"] == []
    assert info["deenergized_by_design"]["behind"] == ["TIE"] and info["deenergized_by_design"]["customers"] == 4
    assert oms(["territory", "info", str(tmp_path / "t.gpkg")]) == 0
    assert "de-energized by design: 2 node(s)" in capsys.readouterr().out


def test_simulate_and_serve_refuse_an_invalid_territory_in_one_line(tmp_path, capsys):
    bad = tmp_path / "BAD.gpkg"
    write_territory(_broken(), bad)
    assert oms(["simulate", str(bad), "--storms", "1"]) == 2
    assert oms(["serve", "--territory", str(bad), "--database-url", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 2 and "Traceback" not in captured.err + captured.out
    for line in err:
        assert line.startswith(f"oms: error: {bad}: segments: unknown kind for L1")
        assert "more; see oms territory info" in line
    assert not (tmp_path / "x.db").exists()  # refused before the database is touched


def test_read_valid_territory_accepts_a_valid_one(tmp_path):
    write_territory(small_feeder(), tmp_path / "t.gpkg")
    assert read_valid_territory(tmp_path / "t.gpkg").name == "small"
