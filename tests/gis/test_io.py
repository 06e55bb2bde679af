"""GeoPackage round trip, imports from GeoJSON / Shapefile / CSV / GeoPackage, column mappings, file errors."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import LineString
from small import small_feeder

from api.commands.main import main as oms
from gis.io import (
    TerritoryFileError,
    import_territory,
    parse_column_overrides,
    read_territory,
    write_territory,
)
from gis.network import TABLES
from gis.topology import build


def _drawn_feeder():
    """The small feeder with one segment drawn along a bend (three vertices) and a depot."""
    net = small_feeder()
    seg = net.segments
    i = int(np.flatnonzero(seg["segment_id"] == "L2")[0])
    a, b = seg.geometry.iloc[i].coords
    geoms = seg.geometry.copy()
    geoms.iloc[i] = LineString([a, (a[0] + 0.004, a[1] + 0.003), b])
    net.segments = seg.set_geometry(geoms)
    net.depots = gpd.GeoDataFrame({"depot_id": ["D1"], "name": ["Yard"]},
                                  geometry=gpd.points_from_xy([11.5], [50.0]), crs="EPSG:4326")
    return net


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="geometry").reset_index(drop=True),
                                  b.drop(columns="geometry").reset_index(drop=True), check_dtype=False)
    assert a.geometry.reset_index(drop=True).geom_equals_exact(b.geometry.reset_index(drop=True), 1e-9).all()


def test_round_trip_keeps_every_table_name_and_geometry(tmp_path):
    net = _drawn_feeder()
    path = write_territory(net, tmp_path / "small.gpkg")
    back = read_territory(path)
    assert back.name == "small"
    for table in ("nodes", "segments", "service_points", "substations", "depots"):
        _same(getattr(net, table), getattr(back, table))
    assert len(back.road_nodes) == 0 and len(back.road_edges) == 0
    assert back.summary() == net.summary()
    build(back)


def test_straight_segments_are_stored_without_vertices(tmp_path):
    net = _drawn_feeder()
    write_territory(net, tmp_path / "t.gpkg")
    stored = pyogrio.read_dataframe(tmp_path / "t.gpkg", layer="segments")
    drawn = stored.loc[stored.geometry.notna(), "segment_id"].tolist()
    assert drawn == ["L2"]  # only the bent one keeps vertices; the others are redrawn from their nodes


def test_layers_are_plain_gis_layers(tmp_path):
    write_territory(small_feeder(), tmp_path / "t.gpkg")
    layers = dict(pyogrio.list_layers(tmp_path / "t.gpkg"))
    assert {t: layers[t] for t in ("nodes", "segments", "service_points")} == {
        "nodes": "Point", "segments": "LineString", "service_points": "Point"}
    assert set(TABLES) <= set(layers) and "territory" in layers


def test_write_replaces_existing_file_and_wants_gpkg_suffix(tmp_path):
    path = tmp_path / "t.gpkg"
    write_territory(small_feeder(), path)
    net = small_feeder()
    net.name = "renamed"
    write_territory(net, path)
    assert read_territory(path).name == "renamed"
    assert not list(tmp_path.glob("*.partial*"))
    with pytest.raises(TerritoryFileError, match="t.geojson: .*GeoPackage"):
        write_territory(net, tmp_path / "t.geojson")


def test_missing_file_layer_and_column_are_named(tmp_path):
    with pytest.raises(TerritoryFileError, match="nope.gpkg: no such file"):
        read_territory(tmp_path / "nope.gpkg")
    net = small_feeder()
    path = tmp_path / "big.gpkg"
    seg = net.segments.drop(columns="kind")
    pyogrio.write_dataframe(net.nodes, path, layer="nodes")
    pyogrio.write_dataframe(seg, path, layer="segments")
    pyogrio.write_dataframe(net.service_points, path, layer="service_points")
    with pytest.raises(TerritoryFileError, match="big.gpkg: layer 'substations' is missing"):
        read_territory(path)
    pyogrio.write_dataframe(net.substations, path, layer="substations")
    with pytest.raises(TerritoryFileError, match="big.gpkg: layer 'segments' missing column 'kind'"):
        read_territory(path)


def test_not_a_geopackage(tmp_path):
    path = tmp_path / "junk.gpkg"
    path.write_text("hello")
    with pytest.raises(TerritoryFileError, match="junk.gpkg: not a readable GeoPackage"):
        read_territory(path)


def test_extra_columns_travel_along(tmp_path):
    net = small_feeder()
    net.service_points["rate_code"] = "R1"
    write_territory(net, tmp_path / "t.gpkg")
    assert (read_territory(tmp_path / "t.gpkg").service_points["rate_code"] == "R1").all()


# -- imports --------------------------------------------------------------------------------------------------


def _export_csv(net, folder, rename=None):
    """Write each table as a utility GIS would: points as longitude/latitude columns, lines as WKT."""
    folder.mkdir()
    for table in ("nodes", "segments", "service_points", "substations"):
        df = getattr(net, table)
        out = pd.DataFrame(df.drop(columns="geometry"))
        if table == "segments":
            out["wkt"] = df.geometry.to_wkt()
        else:
            out["longitude"] = df.geometry.x
            out["latitude"] = df.geometry.y
        out = out.rename(columns=(rename or {}).get(table, {}))
        out.to_csv(folder / f"{table}.csv", index=False)


def test_csv_import_with_defaults(tmp_path):
    net = small_feeder()
    _export_csv(net, tmp_path / "csv")
    back = import_territory(tmp_path / "csv", "csv")
    for table in ("nodes", "segments", "service_points", "substations"):
        _same(getattr(net, table), getattr(back, table))
    build(back)


def test_csv_import_with_common_names_and_overrides(tmp_path):
    net = small_feeder()
    _export_csv(net, tmp_path / "csv", rename={
        "service_points": {"account": "ACCT_NO", "sp_id": "premise_id", "longitude": "X_COORD",
                           "latitude": "Y_COORD"},
        "segments": {"from_node": "FROM", "to_node": "TO", "kind": "device_type"},
        "nodes": {"longitude": "lon", "latitude": "lat"},
    })
    with pytest.raises(TerritoryFileError, match="service_points.csv: no longitude/latitude"):
        import_territory(tmp_path / "csv", "csv")
    columns = parse_column_overrides(["service_points.account=ACCT_NO", "service_points.longitude=X_COORD",
                                      "service_points.latitude=Y_COORD"])
    back = import_territory(tmp_path / "csv", "csv", columns=columns)
    assert back.service_points["account"].tolist() == net.service_points["account"].tolist()
    assert back.service_points["sp_id"].tolist() == net.service_points["sp_id"].tolist()  # premise_id default
    assert back.segments["kind"].tolist() == net.segments["kind"].tolist()  # device_type default
    build(back)


def test_csv_errors_name_file_row_and_column(tmp_path):
    net = small_feeder()
    _export_csv(net, tmp_path / "csv")
    with pytest.raises(TerritoryFileError, match=r"column 'ACCT' \(mapped to service_points.account\) not found"):
        import_territory(tmp_path / "csv", "csv", columns={"service_points": {"account": "ACCT"}})
    df = pd.read_csv(tmp_path / "csv" / "nodes.csv", dtype=str)
    df.loc[2, "latitude"] = "fifty"
    df.to_csv(tmp_path / "csv" / "nodes.csv", index=False)
    with pytest.raises(TerritoryFileError, match=r"nodes.csv: row 4: latitude 'fifty' is not a number"):
        import_territory(tmp_path / "csv", "csv")
    (tmp_path / "csv" / "substations.csv").unlink()
    with pytest.raises(TerritoryFileError, match=r"substations.csv: missing"):
        import_territory(tmp_path / "csv", "csv")


def test_csv_missing_required_column_names_file(tmp_path):
    net = small_feeder()
    _export_csv(net, tmp_path / "csv", rename={"segments": {"from_node": "start"}})
    with pytest.raises(TerritoryFileError, match=r"segments.csv: required column 'from_node' is missing"):
        import_territory(tmp_path / "csv", "csv")


@pytest.mark.parametrize("fmt,suffix,driver", [("geojson", ".geojson", "GeoJSON"),
                                               ("shapefile", ".shp", "ESRI Shapefile")])
def test_vector_folder_import(tmp_path, fmt, suffix, driver):
    net = small_feeder()
    folder = tmp_path / "export"
    folder.mkdir()
    for table in ("nodes", "segments", "service_points", "substations"):
        df = getattr(net, table)
        if driver == "ESRI Shapefile":  # 10-character field names: the usual shapefile truncation
            df = df.rename(columns={"normally_open": "normal_st", "customer_class": "class",
                                    "critical_kind": "critical", "substation_id": "id", "source_node": "source"})
        pyogrio.write_dataframe(df, folder / f"{table}{suffix}", driver=driver)
    columns = parse_column_overrides(["segments.normally_open=normal_st", "service_points.customer_class=class",
                                      "service_points.critical_kind=critical",
                                      "substations.source_node=source"]) if fmt == "shapefile" else None
    back = import_territory(folder, fmt, columns=columns)
    assert back.segments["segment_id"].tolist() == net.segments["segment_id"].tolist()
    assert back.segments["normally_open"].tolist() == net.segments["normally_open"].tolist()
    assert back.service_points["critical_kind"].tolist() == net.service_points["critical_kind"].tolist()
    build(back)


def test_gpkg_import_fills_optional_columns(tmp_path):
    net = small_feeder()
    path = tmp_path / "other.gpkg"
    pyogrio.write_dataframe(net.nodes, path, layer="nodes")
    pyogrio.write_dataframe(net.segments[["segment_id", "from_node", "to_node", "kind", "normally_open", "geometry"]],
                            path, layer="segments")
    pyogrio.write_dataframe(net.service_points[["sp_id", "node_id", "customers", "geometry"]], path,
                            layer="service_points")
    pyogrio.write_dataframe(net.substations, path, layer="substations")
    with pytest.raises(TerritoryFileError, match="missing column 'phases'"):
        read_territory(path)  # the canonical reader is strict
    back = import_territory(path, "gpkg")
    assert (back.segments["phases"] == "ABC").all()
    build(back)


def test_parse_column_overrides():
    assert parse_column_overrides(["service_points.account=ACCT_NO", "nodes.longitude= X "]) == {
        "service_points": {"account": "ACCT_NO"}, "nodes": {"longitude": "X"}}
    for bad, msg in [("account=ACCT", "TABLE.COLUMN=SOURCE"), ("service_points.account", "TABLE.COLUMN=SOURCE"),
                     ("people.account=A", "unknown table 'people'"),
                     ("service_points.acount=A", "has no column 'acount'")]:
        with pytest.raises(ValueError, match=msg):
            parse_column_overrides([bad])


def test_unknown_format_and_missing_path(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'kml'"):
        import_territory(tmp_path, "kml")
    with pytest.raises(TerritoryFileError, match="no such file or folder"):
        import_territory(tmp_path / "nothing", "csv")


# -- command line --------------------------------------------------------------------------------------------


def test_cli_import_and_info(tmp_path, capsys):
    from data.ieee123 import MASTER

    out = tmp_path / "ieee.gpkg"
    assert oms(["territory", "import", str(MASTER), "--format", "opendss", "--anchor", "49.98,11.60",
                "--scale", "0.3048", "-o", str(out)]) == 0
    assert oms(["territory", "info", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    assert '"valid": true' in text and '"normally_open_points": 2' in text


def test_cli_errors_are_one_line_and_nonzero(tmp_path, capsys):
    from data.ieee123 import MASTER

    assert oms(["territory", "info", str(tmp_path / "none.gpkg")]) == 2
    assert oms(["territory", "import", str(MASTER), "--format", "opendss", "-o", str(tmp_path / "x.gpkg")]) == 2
    assert oms(["territory", "import", str(MASTER), "--format", "opendss", "--anchor", "north",
                "-o", str(tmp_path / "x.gpkg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "none.gpkg: no such file" in err[0]
    assert "IEEE123Master.dss: bus coordinates look planar" in err[1]
    assert "--anchor: expected LAT,LON" in err[2]


def test_cli_info_on_invalid_territory_exits_1(tmp_path, capsys):
    net = small_feeder(extra_segments=[("LOOP", "n5", "n6", "line", False)])
    write_territory(net, tmp_path / "bad.gpkg")
    assert oms(["territory", "info", str(tmp_path / "bad.gpkg")]) == 1
    assert "loop" in capsys.readouterr().out


def test_progress_bar_and_spatial_index(tmp_path, capsys):
    write_territory(small_feeder(), tmp_path / "t.gpkg", progress=True, spatial_index=True)
    assert "writing t.gpkg" in capsys.readouterr().err
    assert read_territory(tmp_path / "t.gpkg").summary() == small_feeder().summary()
