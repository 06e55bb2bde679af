"""Devices as point features on nodes (gis.devices): the entering segment becomes the device, a free point on a
line splits it; feeder and transformer records import and round-trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from gis.io import SourceProblems, import_territory, read_territory, write_territory
from gis.topology import build

DATA = Path(__file__).parent / "data" / "devices"


def _kinds(net) -> dict[str, tuple[str, str, str]]:
    return {r.segment_id: (r.kind, r.from_node, r.to_node) for r in net.segments.itertuples()}


def test_device_points_become_device_segments():
    net = import_territory(DATA, "geojson")
    assert _kinds(net) == {
        "BRK1": ("breaker", "S", "a"),  # at the source: the one segment leaving it
        "F1": ("fuse", "a", "b"),  # the segment entering b
        "R1": ("recloser", "b", "r"),  # r lies on L2 and touches nothing: L2 is split there
        "L2": ("line", "r", "c"),
        "T1": ("transformer", "c", "t"),
    }
    assert net.segments.set_index("segment_id").loc["F1", "line_id"] == "L1"
    assert "device" not in net.nodes.columns
    topo = build(net)
    assert topo.device_chain("sp1") == ["T1", "R1", "F1", "BRK1"]


def test_device_points_from_csv_with_a_normally_open_switch(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    for table in ("nodes", "segments", "service_points", "substations"):
        df = gpd.read_file(DATA / f"{table}.geojson")
        out = pd.DataFrame(df.drop(columns="geometry"))
        if table != "segments":
            out["lon"], out["lat"] = df.geometry.x, df.geometry.y
        out.to_csv(folder / f"{table}.csv", index=False)
    nodes = pd.read_csv(folder / "nodes.csv", dtype=str, keep_default_na=False)
    nodes.loc[nodes["node_id"] == "b", ["device", "device_id"]] = ["Switch", "SW1"]
    nodes["device_open"] = ["open" if n == "b" else "" for n in nodes["node_id"]]
    nodes.to_csv(folder / "nodes.csv", index=False)
    net = import_territory(folder, "csv")
    seg = net.segments.set_index("segment_id")
    assert seg.loc["SW1", "kind"] == "switch" and bool(seg.loc["SW1", "normally_open"])


def test_unplaceable_device_points_are_all_listed(tmp_path):
    folder = tmp_path / "gj"
    shutil.copytree(DATA, folder)
    data = json.loads((folder / "nodes.geojson").read_text())
    for f in data["features"]:
        if f["properties"]["node_id"] == "a":
            f["properties"].update(device="fuse", device_id="F0")  # L0 enters a, but it becomes BRK1 first
        if f["properties"]["node_id"] == "r":
            f["geometry"]["coordinates"] = [11.53, 50.01]  # off the line
    data["features"].append({"type": "Feature", "properties": {"node_id": "x", "device": "kettle"},
                             "geometry": {"type": "Point", "coordinates": [11.6, 50.0]}})
    (folder / "nodes.geojson").write_text(json.dumps(data))
    with pytest.raises(SourceProblems) as err:
        import_territory(folder, "geojson")
    messages = [str(p) for p in err.value.problems]
    assert any("feature 7: column 'device' (nodes.device): unknown value 'kettle'" in m for m in messages)
    assert any("node 'a': fuse F0: cannot be placed: the segment entering it, BRK1, is already a breaker" in m
               for m in messages)
    assert any("node 'r': recloser R1: cannot be placed: it lies on no line" in m for m in messages)


def test_feeder_and_transformer_records_import_and_round_trip(tmp_path):
    folder = tmp_path / "gj"
    shutil.copytree(DATA, folder)
    gpd.GeoDataFrame({"feeder_id": ["FDR-1"], "name": ["North"], "rating": [5000.0], "status": ["ACTIVE"]},
                     geometry=gpd.points_from_xy([11.5], [50.0]), crs="EPSG:4326").to_file(
        folder / "feeders.geojson")
    gpd.GeoDataFrame({"id": ["T1"], "kva": [50.0], "status": ["in service"]},
                     geometry=gpd.points_from_xy([11.55], [50.0]), crs="EPSG:4326").to_file(
        folder / "transformers.geojson")
    (tmp_path / "map.yaml").write_text("feeders:\n  values:\n    status: {ACTIVE: in_service}\n"
                                       "transformers:\n  values:\n    status: {in service: in_service}\n")
    net = import_territory(folder, "geojson", mapping=tmp_path / "map.yaml")
    assert net.feeders[["feeder_id", "name", "rating_kva", "status"]].values.tolist() == [
        ["FDR-1", "North", 5000.0, "in_service"]]
    assert net.transformers[["transformer_id", "kva", "status"]].values.tolist() == [["T1", 50.0, "in_service"]]
    back = read_territory(write_territory(net, tmp_path / "t.gpkg"))
    pd.testing.assert_frame_equal(back.feeders.drop(columns="geometry"), net.feeders.drop(columns="geometry"))
    pd.testing.assert_frame_equal(back.transformers.drop(columns="geometry"),
                                  net.transformers.drop(columns="geometry"))
    assert back.summary()["feeder_records"] == 1 and back.summary()["transformer_records"] == 1
