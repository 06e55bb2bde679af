"""Mapping files (TOML and YAML): columns and values; unknown values are errors naming table, column, value, row."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from small import small_feeder

from api.commands.main import main as oms
from gis.io import SourceProblems, import_territory, parse_column_overrides
from gis.mapping import MappingError, load_mapping
from gis.topology import build

TOML = """
[service_points.columns]
sp_id = "PREMISE"
customer_class = "RATE"

[service_points.values.customer_class]
"R-TOU" = "residential"
"C-GEN" = "commercial"

[segments.columns]
kind = "ASSET"

[segments.values.kind]
primary_overhead = "line"
"OH FUSE" = "fuse"
"""

YAML = """
service_points:
  columns: {sp_id: PREMISE, customer_class: RATE}
  values:
    customer_class: {R-TOU: residential, C-GEN: commercial}
segments:
  columns: {kind: ASSET}
  values:
    kind: {primary_overhead: line, OH FUSE: fuse}
"""


def _utility_csv(folder, rates=None):
    """The small feeder as a utility exports it: its own column names, kinds and rate codes."""
    net = small_feeder()
    folder.mkdir()
    kinds = {"line": "primary_overhead", "fuse": "OH FUSE"}
    for table in ("nodes", "segments", "service_points", "substations"):
        df = getattr(net, table)
        out = pd.DataFrame(df.drop(columns="geometry"))
        if table == "segments":
            out["ASSET"] = out.pop("kind").map(lambda k: kinds.get(k, k.upper()))
        else:
            out["longitude"], out["latitude"] = df.geometry.x, df.geometry.y
        if table == "service_points":
            out = out.drop(columns="customer_class").rename(columns={"sp_id": "PREMISE"})
            out["RATE"] = rates or ["R-TOU", "R-TOU", "C-GEN", "R-TOU", "C-GEN"]
        out.to_csv(folder / f"{table}.csv", index=False)
    return net


@pytest.mark.parametrize("suffix,text", [(".toml", TOML), (".yaml", YAML), (".yml", YAML)])
def test_mapping_file_maps_columns_and_values(tmp_path, suffix, text):
    net = _utility_csv(tmp_path / "csv")
    (tmp_path / f"map{suffix}").write_text(text)
    back = import_territory(tmp_path / "csv", "csv", mapping=tmp_path / f"map{suffix}")
    assert back.segments["kind"].tolist() == net.segments["kind"].tolist()  # BREAKER -> breaker: ours, any case
    assert back.service_points["customer_class"].tolist() == ["residential", "residential", "commercial",
                                                              "residential", "commercial"]
    assert back.service_points["sp_id"].tolist() == net.service_points["sp_id"].tolist()
    assert back.defaulted == ""
    build(back)


def test_unknown_values_are_all_listed_with_table_column_value_and_row(tmp_path):
    _utility_csv(tmp_path / "csv", rates=["R-TOU", "X-9", "C-GEN", "X-9", "Z"])
    (tmp_path / "map.toml").write_text(TOML.replace('"OH FUSE" = "fuse"', ""))
    with pytest.raises(SourceProblems) as err:
        import_territory(tmp_path / "csv", "csv", mapping=tmp_path / "map.toml")
    messages = [str(p) for p in err.value.problems]
    assert len(messages) == 3
    assert any("segments.csv: row 6: column 'ASSET' (segments.kind): unknown value 'OH FUSE' (in 2 rows)" in m
               for m in messages)
    assert any("service_points.csv: row 3: column 'RATE' (service_points.customer_class): unknown value 'X-9' "
               "(in 2 rows)" in m for m in messages)
    assert any("row 6: column 'RATE' (service_points.customer_class): unknown value 'Z'" in m for m in messages)
    assert {p.kind for p in err.value.problems} == {"unknown value"}


def test_unmapped_customer_class_is_an_error_not_residential(tmp_path):
    _utility_csv(tmp_path / "csv")
    with pytest.raises(SourceProblems) as err:
        import_territory(tmp_path / "csv", "csv", columns=parse_column_overrides(
            ["service_points.customer_class=RATE", "service_points.sp_id=PREMISE", "segments.kind=ASSET"]))
    assert any("service_points.customer_class): unknown value 'R-TOU' (in 3 rows)" in p for p in err.value.problems)


def test_missing_class_column_keeps_the_default_and_says_so(tmp_path, capsys):
    net = small_feeder()
    folder = tmp_path / "csv"
    folder.mkdir()
    for table in ("nodes", "segments", "service_points", "substations"):
        df = getattr(net, table)
        out = pd.DataFrame(df.drop(columns=["geometry"] + (["customer_class"] if table == "service_points" else [])))
        if table != "segments":
            out["longitude"], out["latitude"] = df.geometry.x, df.geometry.y
        out.to_csv(folder / f"{table}.csv", index=False)
    back = import_territory(folder, "csv")
    assert back.defaulted == "service_points.customer_class=residential"
    out = tmp_path / "t.gpkg"
    assert oms(["territory", "import", str(folder), "--format", "csv", "-o", str(out)]) == 0
    capsys.readouterr()
    assert oms(["territory", "info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["defaulted_columns"] == ["service_points.customer_class=residential"]
    assert oms(["territory", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no service_points.customer_class column: every row got the default 'residential'" in text


def test_cli_import_with_mapping_and_grouped_unknown_values(tmp_path, capsys):
    _utility_csv(tmp_path / "csv", rates=["R-TOU", "X-9", "C-GEN", "X-9", "Z"])
    (tmp_path / "map.toml").write_text(TOML)
    out = tmp_path / "t.gpkg"
    assert oms(["territory", "import", str(tmp_path / "csv"), "--format", "csv", "--mapping",
                str(tmp_path / "map.toml"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s) in the source data; nothing written" in err and "unknown value: 3" in err
    assert not out.exists()
    (tmp_path / "map.toml").write_text(TOML.replace('"C-GEN"', '"X-9" = "commercial"\n"Z" = "lighting"\n"C-GEN"'))
    assert oms(["territory", "import", str(tmp_path / "csv"), "--format", "csv", "--mapping",
                str(tmp_path / "map.toml"), "-o", str(out)]) == 0
    assert out.exists()


@pytest.mark.parametrize("name,text,msg", [
    ("m.toml", "[people.columns]\nx = 'y'\n", "m.toml: unknown table 'people'"),
    ("m.toml", "[segments.colums]\nkind = 'A'\n", "m.toml: segments: unknown key 'colums'"),
    ("m.toml", "[segments.columns]\nknd = 'A'\n", "m.toml: segments.columns: table 'segments' has no column 'knd'"),
    ("m.toml", "[segments.values.kind]\nOH = 'wire'\n", "m.toml: segments.values.kind: 'OH' maps to 'wire', which"),
    ("m.toml", "[segments\n", "m.toml: not valid TOML"),
    ("m.yaml", "segments: [1, 2\n", "m.yaml: not valid YAML .*line 2"),
    ("m.json", "{}", "m.json: a mapping file is .toml, .yaml or .yml"),
])
def test_bad_mapping_files_name_file_and_key(tmp_path, name, text, msg):
    (tmp_path / name).write_text(text)
    with pytest.raises(MappingError, match=msg):
        load_mapping(tmp_path / name)


def test_missing_mapping_file_is_one_cli_line(tmp_path, capsys):
    _utility_csv(tmp_path / "csv")
    assert oms(["territory", "import", str(tmp_path / "csv"), "--format", "csv", "--mapping",
                str(tmp_path / "none.toml"), "-o", str(tmp_path / "t.gpkg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.toml: no such mapping file" in err[0]
