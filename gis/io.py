"""Reading and writing territories: the GeoPackage form, and imports from what utilities export.

**GeoPackage** (the canonical form, :func:`write_territory` / :func:`read_territory`): one file per territory, one
layer per table of :mod:`gis.network` (``nodes``, ``segments``, ``service_points``, ``substations``, ``depots``,
``road_nodes``, ``road_edges``) plus a small non-spatial ``territory`` layer of ``key``/``value`` rows that carries the
territory's name (and any other text attribute of :class:`~gis.network.Network`), and, when the network carries
a :class:`~gis.basemap.Basemap` (``network.basemap``: the public map's OSM places, streets, buildings and
addresses), its four ``basemap_*`` layers, so a served territory file keeps them. It opens in QGIS as is.

Why it is fast: a segment whose geometry is just the straight line between its two nodes (most of them in a
generated territory) is stored with an empty geometry and redrawn from its nodes on load, which
:class:`~gis.network.Network` does anyway. Only drawn segments (along a street, say) keep their vertices. Reading
goes through pyogrio, one call per layer, as an Arrow stream when pyarrow is installed (several times faster than
feature by feature); no spatial index is needed for loading, so none is written unless asked.

**Imports** (:func:`import_territory`): ``gpkg`` (a GeoPackage, possibly made by another tool: missing optional
columns get their defaults), ``geojson`` and ``shapefile`` (a folder with one file per table: ``nodes.geojson``,
``segments.geojson``, ... or ``nodes.shp``, ...), ``csv`` (a folder of ``<table>.csv`` files with longitude/latitude
columns, the usual export of a utility's GIS) and ``opendss`` (a master ``.dss`` file; see :mod:`gis.opendss`).

Column mapping for geojson, shapefile, csv and gpkg imports: each table column is read from the source column of
the same name unless a mapping says otherwise. The default mapping (:data:`DEFAULT_COLUMNS`) accepts the names
utility GIS exports commonly use:

=========================  ===========================================================================
table.column               default source column (first one present wins, case-insensitive)
=========================  ===========================================================================
nodes.node_id              node_id, id, node, bus
segments.segment_id        segment_id, id, name
segments.from_node         from_node, from, bus1, from_bus
segments.to_node           to_node, to, bus2, to_bus
segments.kind              kind, type, device_type
segments.normally_open     normally_open, open, no, normal_state (``open``/``closed`` understood)
service_points.sp_id       sp_id, service_point, premise, premise_id, location_id, id
service_points.node_id     node_id, node, transformer_node, bus
service_points.account     account, account_no, account_number, acct
service_points.meter       meter, meter_no, meter_number, meter_id
service_points.address     address, service_address, street_address
service_points.phone       phone, phone_number, telephone
service_points.customers   customers, customer_count, n_customers
substations.substation_id  substation_id, id, name
depots.depot_id            depot_id, id, name
road_nodes.osmid           osmid, id, node_id
road_edges.u / .v          u, from, from_node / v, to, to_node
(point tables) longitude   longitude, lon, lng, long, x  (csv only; point tables: all but segments, road_edges)
(point tables) latitude    latitude, lat, y              (csv only)
(line tables) geometry     geometry, wkt, geom: WKT      (csv only, optional: straight lines are drawn if absent)
=========================  ===========================================================================

Every other column of a table is read from the column of the same name when present, else gets its default
(:data:`gis.network.SCHEMAS`); columns the schema does not know travel along unchanged.

Feeder and transformer records (``feeders``, ``transformers``: name, rating/kVA, status) import like the other
tables (``feeders.feeder_id`` from feeder_id, feeder, id, name; ``rating_kva`` from rating_kva, rating, kva;
``transformers.transformer_id`` from transformer_id, segment_id, id, name; ``kva`` from kva, rating_kva, rating).
Devices drawn as points on nodes (a ``device`` column on nodes) become device segments: see :mod:`gis.devices`.

A mapping file (``mapping=``, ``--mapping FILE``; :mod:`gis.mapping`) names source columns and translates values;
a value of a fixed vocabulary (segment kind, customer class, status, ...) that nothing maps is an error naming the
file, row, column and value, all of them listed in one run (:class:`SourceProblems`).

Override any of them per column, e.g. ``--column service_points.account=ACCT_NO`` on the command line or
``columns=parse_column_overrides(["service_points.account=ACCT_NO"])`` in Python; ``nodes.longitude=EASTING``
works for the coordinate columns too (coordinates must be WGS 84 degrees, or a ``.prj``/CRS-bearing format).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis.basemap import GEOMETRY_TYPES as basemap_geometry
from gis.basemap import LAYERS as BASEMAP_LAYERS
from gis.basemap import Basemap
from gis.basemap import from_frames as basemap_from_frames
from gis.basemap import to_frames as basemap_frames
from gis.mapping import EXTRA_TARGETS, NOTED_DEFAULTS, Mapping, apply_values, load_mapping, targets
from gis.network import CRS, SCHEMAS, TABLES, Network, NetworkError

try:  # GDAL's Arrow stream reads a layer several times faster than feature by feature
    import pyarrow  # noqa: F401

    USE_ARROW = True
    # free each Arrow column as soon as pandas has it: a lower memory peak on big territories
    _ARROW_KWARGS = {"arrow_to_pandas_kwargs": {"self_destruct": True, "split_blocks": True}}
except ImportError:
    USE_ARROW = False
    _ARROW_KWARGS = {}
FORMATS = ("opendss", "geojson", "shapefile", "csv", "gpkg")
#: Geometry type of each spatial table (``None``: the layer has no geometry column).
GEOMETRY_TYPES = {
    "nodes": "Point",
    "segments": "LineString",
    "service_points": "Point",
    "substations": "Point",
    "depots": "Point",
    "road_nodes": "Point",
    "road_edges": "LineString",
    "feeders": "Point",
    "transformers": "Point",
}
META_LAYER = "territory"
FORMAT_VERSION = "1"
#: Tables whose layer must be present in a territory GeoPackage (the others may be absent: empty).
REQUIRED_LAYERS = ("nodes", "segments", "service_points", "substations")
#: Columns added to the tables after format 1: a file written before them is read with their defaults.
ADDED_COLUMNS = {("segments", "status")}

#: table -> column -> candidate source column names, first present wins (matched case-insensitively).
DEFAULT_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "nodes": {
        "node_id": ("node_id", "id", "node", "bus"),
        "device": ("device", "device_kind", "device_type"),
        "device_id": ("device_id", "device_name"),
        "device_open": ("device_open", "normally_open", "normal_state"),
    },
    "segments": {
        "segment_id": ("segment_id", "id", "name"),
        "from_node": ("from_node", "from", "bus1", "from_bus"),
        "to_node": ("to_node", "to", "bus2", "to_bus"),
        "kind": ("kind", "type", "device_type"),
        "normally_open": ("normally_open", "open", "no", "normal_state"),
    },
    "service_points": {
        "sp_id": ("sp_id", "service_point", "premise", "premise_id", "location_id", "id"),
        "node_id": ("node_id", "node", "transformer_node", "bus"),
        "account": ("account", "account_no", "account_number", "acct"),
        "meter": ("meter", "meter_no", "meter_number", "meter_id"),
        "address": ("address", "service_address", "street_address"),
        "phone": ("phone", "phone_number", "telephone"),
        "customers": ("customers", "customer_count", "n_customers"),
    },
    "substations": {"substation_id": ("substation_id", "id", "name")},
    "depots": {"depot_id": ("depot_id", "id", "name")},
    "road_nodes": {"osmid": ("osmid", "id", "node_id")},
    "road_edges": {"u": ("u", "from", "from_node"), "v": ("v", "to", "to_node")},
    "feeders": {
        "feeder_id": ("feeder_id", "feeder", "id", "name"),
        "rating_kva": ("rating_kva", "rating", "kva", "capacity_kva"),
        "status": ("status", "state", "in_service"),
    },
    "transformers": {
        "transformer_id": ("transformer_id", "segment_id", "id", "name"),
        "kva": ("kva", "rating_kva", "rating", "kva_rating"),
        "status": ("status", "state", "in_service"),
    },
}
LONGITUDE_NAMES = ("longitude", "lon", "lng", "long", "x")
LATITUDE_NAMES = ("latitude", "lat", "y")


class TerritoryFileError(ValueError):
    """A territory file or folder cannot be read; the message starts with the file name."""


class SourceProblems(TerritoryFileError):
    """The source tables hold values no mapping explains (or other row-level problems): every one of them, as
    :class:`~gis.checks.Problem` in ``problems``; the message counts them and shows the first."""

    def __init__(self, problems: list):
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{len(problems)} problem(s) in the source data: {problems[0]}{more}")


# -- GeoPackage ---------------------------------------------------------------------------------------------


def write_territory(net: Network, path: str | os.PathLike, progress: bool = False,
                    spatial_index: bool = False) -> Path:
    """Write ``net`` to one GeoPackage at ``path`` (replacing it), one layer per table; returns the path.

    Straight segments are stored without vertices (see the module docstring). ``spatial_index`` adds an R-tree to
    every spatial layer, which helps desktop GIS browsing of big files but costs write time; loading never needs it.
    ``progress`` shows a tqdm bar over the layers.
    """
    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise TerritoryFileError(f"{path}: a territory is written as a GeoPackage; use a .gpkg file name")
    if not path.parent.is_dir():
        raise TerritoryFileError(f"{path}: folder {path.parent} does not exist")
    tmp = path.with_name(path.stem + ".partial.gpkg")
    for p in (tmp, Path(str(tmp) + "-journal")):
        p.unlink(missing_ok=True)
    tables = net.tables()
    items = list(tables.items())
    bar = _progress(items, progress, desc=f"writing {path.name}", unit="layer")
    try:
        for table, df in bar:
            if table == "segments":
                df = _drop_straight_geometry(df, net.nodes)
            _write_layer(df, tmp, table, spatial_index)
        meta = _metadata(net)
        basemap = getattr(net, "basemap", None)
        if isinstance(basemap, Basemap):  # the public map's OSM layers (places, streets, buildings, addresses)
            for layer, df in basemap_frames(basemap).items():
                _write_frame(df, tmp, layer, basemap_geometry[layer], spatial_index)
            meta["basemap_attribution"] = basemap.attribution
        pyogrio.write_dataframe(pd.DataFrame({"key": list(meta), "value": list(meta.values())}), tmp,
                                layer=META_LAYER, driver="GPKG")
    except Exception as exc:  # pyogrio/GDAL raise their own types; say which file and why
        tmp.unlink(missing_ok=True)
        raise TerritoryFileError(f"{path}: cannot write ({_first_line(exc)})") from None
    os.replace(tmp, path)  # a crash mid-write never leaves a half territory under the real name
    return path


def _write_layer(df: gpd.GeoDataFrame, path: Path, layer: str, spatial_index: bool) -> None:
    _write_frame(_plain_columns(df), path, layer, GEOMETRY_TYPES[layer], spatial_index)


def _write_frame(df: gpd.GeoDataFrame, path: Path, layer: str, geometry_type: str, spatial_index: bool) -> None:
    with warnings.catch_warnings():
        # writing an all-empty geometry column is fine (segments of a generated territory); GDAL says so loudly
        warnings.filterwarnings("ignore", message=".*geometry.*", category=UserWarning)
        pyogrio.write_dataframe(
            df, path, layer=layer, driver="GPKG", geometry_type=geometry_type, promote_to_multi=False,
            layer_options={"SPATIAL_INDEX": "YES" if spatial_index else "NO"},
        )


def _plain_columns(df: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns OGR can store: objects that are not text (lists, dicts) become their text form."""
    out = df
    for col in df.columns:
        if col == df.geometry.name or df[col].dtype != object:
            continue
        sample = df[col].head(1000)
        if not sample.map(lambda v: v is None or isinstance(v, str)).all():
            if out is df:
                out = df.copy()
            out[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out


def _metadata(net: Network) -> dict[str, str]:
    meta = {"format_version": FORMAT_VERSION}
    for f in dataclasses.fields(net):
        value = getattr(net, f.name)
        if f.name not in TABLES and isinstance(value, str):
            meta[f.name] = value
    return meta


def _drop_straight_geometry(seg: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``seg`` with the geometry of straight two-point segments between their own nodes set to None."""
    if len(seg) == 0:
        return seg
    geom = seg.geometry.array
    n_coords = shapely.get_num_coordinates(geom)
    two = np.flatnonzero(n_coords == 2)
    if len(two) == 0:
        return seg
    xy = pd.DataFrame({"x": shapely.get_x(nodes.geometry.array), "y": shapely.get_y(nodes.geometry.array)},
                      index=pd.Index(nodes["node_id"].to_numpy()))
    xy = xy[~xy.index.duplicated()]
    a = xy.reindex(seg["from_node"].to_numpy()[two]).to_numpy()
    b = xy.reindex(seg["to_node"].to_numpy()[two]).to_numpy()
    coords = shapely.get_coordinates(geom[two]).reshape(-1, 2, 2)
    straight = np.all(coords[:, 0] == a, axis=1) & np.all(coords[:, 1] == b, axis=1)
    if not straight.any():
        return seg
    new = np.array(geom, dtype=object)
    new[two[straight]] = None
    return seg.set_geometry(gpd.GeoSeries(new, index=seg.index, crs=seg.crs))


def read_territory(path: str | os.PathLike) -> Network:
    """Read a territory GeoPackage written by :func:`write_territory` (or any with the same layers and columns).

    Raises :class:`TerritoryFileError` naming the file, layer and problem: a missing file, a missing layer or
    column, a value of the wrong type.
    """
    path = Path(path)
    if not path.exists():
        raise TerritoryFileError(f"{path}: no such file")
    try:
        layers = {str(name) for name, _ in pyogrio.list_layers(path)}
    except Exception as exc:  # GDAL's error types vary by version; the message is what matters
        raise TerritoryFileError(f"{path}: not a readable GeoPackage ({_first_line(exc)})") from None
    absent = [t for t in REQUIRED_LAYERS if t not in layers]
    if absent:
        raise TerritoryFileError(f"{path.name}: layer {absent[0]!r} is missing "
                                 f"(a territory has layers {', '.join(REQUIRED_LAYERS)})")
    tables: dict[str, gpd.GeoDataFrame] = {}
    for table in TABLES:
        if table not in layers:
            continue
        df = _read_layer(path, table)
        missing = [c for c in SCHEMAS[table] if c not in df.columns and (table, c) not in ADDED_COLUMNS]
        if missing:
            raise TerritoryFileError(f"{path.name}: layer {table!r} missing column {missing[0]!r}"
                                     + (f" (and {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else ""))
        tables[table] = df
    meta = _read_metadata(path) if META_LAYER in layers else {}
    kwargs = {f.name: meta[f.name] for f in dataclasses.fields(Network) if f.name in meta and f.name not in TABLES}
    kwargs.setdefault("name", path.stem)
    try:
        net = Network(**{t: tables.get(t) for t in TABLES}, **kwargs)
    except NetworkError as exc:
        raise TerritoryFileError(f"{path.name}: {exc}") from None
    if any(layer in layers for layer in BASEMAP_LAYERS.values()):
        frames = {layer: _read_layer(path, layer) for layer in BASEMAP_LAYERS.values() if layer in layers}
        net.basemap = basemap_from_frames(frames, meta.get("basemap_attribution", ""))
    return net


def _read_layer(path: Path, layer: str) -> gpd.GeoDataFrame:
    try:
        df = pyogrio.read_dataframe(path, layer=layer, use_arrow=USE_ARROW, **_ARROW_KWARGS)
    except Exception as exc:
        raise TerritoryFileError(f"{path.name}: layer {layer!r} cannot be read ({_first_line(exc)})") from None
    if not isinstance(df, gpd.GeoDataFrame):
        df = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([None] * len(df), index=df.index, crs=CRS), crs=CRS)
    return df


def _read_metadata(path: Path) -> dict[str, str]:
    meta = pyogrio.read_dataframe(path, layer=META_LAYER, read_geometry=False)
    if not {"key", "value"} <= set(meta.columns):
        raise TerritoryFileError(f"{path.name}: layer {META_LAYER!r} missing column 'key' or 'value'")
    return dict(zip(meta["key"].astype(str), meta["value"].astype(str), strict=True))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _progress(items: list, enabled: bool, **kwargs) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, **kwargs)


# -- imports ------------------------------------------------------------------------------------------------

#: Tables that are points (and so read longitude/latitude columns from CSV).
POINT_TABLES = ("nodes", "service_points", "substations", "depots", "road_nodes")
_VECTOR_SUFFIXES = {"geojson": (".geojson", ".json"), "shapefile": (".shp",)}


def parse_column_overrides(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["service_points.account=ACCT_NO", ...]`` -> ``{"service_points": {"account": "ACCT_NO"}}``.

    Each item names a table, one of its columns (or ``longitude``/``latitude``) and the source column to read it
    from. A malformed item or an unknown table/column raises :class:`ValueError` naming the item.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, source = item.partition("=")
        table, dot, column = target.strip().partition(".")
        if not sep or not dot or not source.strip() or not column:
            raise ValueError(f"column mapping {item!r}: expected TABLE.COLUMN=SOURCE, e.g. "
                             "service_points.account=ACCT_NO")
        if table not in SCHEMAS:
            raise ValueError(f"column mapping {item!r}: unknown table {table!r}; expected one of {', '.join(TABLES)}")
        known = targets(table)
        if column not in known:
            raise ValueError(f"column mapping {item!r}: table {table!r} has no column {column!r}; expected one of "
                             f"{', '.join(known)}")
        out.setdefault(table, {})[column] = source.strip()
    return out


def import_territory(path: str | os.PathLike, format: str, anchor: tuple[float, float] | None = None,
                     scale: float | None = None, columns: dict[str, dict[str, str]] | None = None,
                     mapping: Mapping | str | os.PathLike | None = None) -> Network:
    """Import a territory from ``path`` in ``format`` (one of :data:`FORMATS`); see the module docstring.

    ``anchor`` (lat, lon) and ``scale`` (metres per unit) place planar OpenDSS coordinates; ``mapping`` (a
    :class:`~gis.mapping.Mapping` or the path of a mapping file) maps columns and values, ``columns`` overrides
    single columns on top of it (:func:`parse_column_overrides`). Errors name the file and the problem; values no
    mapping explains raise :class:`SourceProblems` listing all of them.
    """
    fmt = format.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    path = Path(path)
    if not path.exists():
        raise TerritoryFileError(f"{path}: no such file or folder")
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    columns = {t: {**(mapping.columns.get(t, {}) if mapping else {}), **(columns or {}).get(t, {})}
               for t in {*(columns or {}), *(mapping.columns if mapping else {})}}
    if fmt == "opendss":
        from gis.opendss import read_opendss

        if path.is_dir():
            raise TerritoryFileError(f"{path}: give the OpenDSS master file, not a folder")
        return read_opendss(path, anchor=anchor, scale=scale)
    if fmt == "gpkg":
        layers = {str(name) for name, _ in pyogrio.list_layers(path)}
        raw = {t: _read_layer(path, t) for t in TABLES if t in layers}
        meta = _read_metadata(path) if META_LAYER in layers else {}
        labels = {t: f"{path.name}: layer {t!r}" for t in TABLES}
        return _assemble(raw, columns, labels, meta.get("name", path.stem), mapping, _feature)
    folder = path if path.is_dir() else path.parent
    suffixes = (".csv",) if fmt == "csv" else _VECTOR_SUFFIXES[fmt]
    files = {t: next((folder / f"{t}{x}" for x in suffixes if (folder / f"{t}{x}").exists()), folder / f"{t}{suffixes[0]}")
             for t in TABLES}
    for required in REQUIRED_LAYERS:
        if not files[required].exists():
            raise TerritoryFileError(f"{files[required]}: missing (table {required!r} is required)")
    raw = {}
    for t, file in files.items():
        if file.exists():
            raw[t] = _read_csv(file, t, columns.get(t, {})) if fmt == "csv" else _read_vector(file, t)
    return _assemble(raw, columns, {t: str(f) for t, f in files.items()}, folder.name, mapping,
                     _csv_row if fmt == "csv" else _feature)


def _csv_row(i: int) -> str:
    return f"row {i + 2}"  # the line number in the file: the header is line 1


def _feature(i: int) -> str:
    return f"feature {i + 1}"


def _read_vector(path: Path, table: str) -> gpd.GeoDataFrame:
    try:
        df = gpd.read_file(path)
    except Exception as exc:
        raise TerritoryFileError(f"{path.name}: cannot be read ({_first_line(exc)})") from None
    if df.crs is None:
        df = df.set_crs(CRS)  # GeoJSON is WGS 84 by definition; a shapefile without .prj is assumed to be
    return df


def _read_csv(path: Path, table: str, overrides: dict[str, str]) -> gpd.GeoDataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:
        raise TerritoryFileError(f"{path.name}: cannot be read as CSV ({_first_line(exc)})") from None
    if table in POINT_TABLES:
        lon = _source_column(df, "longitude", overrides.get("longitude"), LONGITUDE_NAMES, path)
        lat = _source_column(df, "latitude", overrides.get("latitude"), LATITUDE_NAMES, path)
        if lon is None or lat is None:
            raise TerritoryFileError(f"{path.name}: no longitude/latitude columns (looked for "
                                     f"{'/'.join(LONGITUDE_NAMES)} and {'/'.join(LATITUDE_NAMES)}; map them with "
                                     f"{table}.longitude=COLUMN)")
        xy = []
        for col in (lon, lat):
            values = pd.to_numeric(df[col], errors="coerce")
            bad = values.isna() & df[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise TerritoryFileError(f"{path.name}: row {row + 2}: {col} {df[col].iloc[row]!r} is not a number")
            xy.append(values.to_numpy(dtype=float))
        geometry = shapely.points(xy[0], xy[1])
        geometry[np.isnan(xy[0]) | np.isnan(xy[1])] = None
        return gpd.GeoDataFrame(df.drop(columns=[lon, lat]), geometry=geometry, crs=CRS)
    wkt = _source_column(df, "geometry", None, ("geometry", "wkt", "geom"), path)
    if wkt is None:
        return gpd.GeoDataFrame(df, geometry=[None] * len(df), crs=CRS)
    try:
        geometry = shapely.from_wkt(df[wkt].to_numpy(dtype=object))
    except shapely.errors.GEOSException as exc:
        raise TerritoryFileError(f"{path.name}: column {wkt!r} has a bad WKT geometry ({exc})") from None
    return gpd.GeoDataFrame(df.drop(columns=[wkt]), geometry=geometry, crs=CRS)


def _source_column(df: pd.DataFrame, target: str, override: str | None, candidates: Iterable[str],
                   source: Path | str) -> str | None:
    """The column of ``df`` that feeds ``target``: the override (which must exist), else the first candidate."""
    lower = {str(c).lower(): c for c in df.columns}
    if override is not None:
        if override in df.columns:
            return override
        if override.lower() in lower:
            return lower[override.lower()]
        where = source.name if isinstance(source, Path) else source
        raise TerritoryFileError(f"{where}: column {override!r} (mapped to {target}) not found; columns are "
                                 f"{', '.join(map(str, df.columns))}")
    for name in candidates:
        if name in lower:
            return lower[name]
    return None


def _assemble(raw: dict[str, gpd.GeoDataFrame], columns: dict[str, dict[str, str]], labels: dict[str, str],
              name: str, mapping: Mapping | None = None, row_label=_feature) -> Network:
    """Apply the column and value mapping to each source table and build the Network; errors name the file.

    Every value no mapping explains, in every table, is collected before raising (:class:`SourceProblems`).
    """
    tables: dict[str, pd.DataFrame] = {}
    problems: list = []
    defaulted: list[str] = []
    for table, df in raw.items():
        df, source_of = _map_columns(df.copy(), table, columns.get(table, {}), labels[table])
        df, found = apply_values(df, table, mapping, source_of, labels[table], row_label)
        problems += found
        for t, col in NOTED_DEFAULTS:
            if t == table and col not in source_of and len(df):
                defaulted.append(f"{table}.{col}={SCHEMAS[table][col][1]}")
        tables[table] = df
    for required in REQUIRED_LAYERS:
        if required not in tables:
            raise TerritoryFileError(f"{labels[required]}: missing (table {required!r} is required)")
    tables, found = _place_devices(tables, labels["nodes"])
    problems += found
    if problems:
        raise SourceProblems(problems)
    try:
        return Network.from_tables(tables, name=name, defaulted=",".join(defaulted))
    except NetworkError as exc:
        table = str(exc).split(":", 1)[0]
        label = labels.get(table)
        raise TerritoryFileError(f"{label}: {str(exc).split(': ', 1)[-1]}" if label else str(exc)) from None


def _place_devices(tables: dict[str, pd.DataFrame], label: str) -> tuple[dict[str, pd.DataFrame], list]:
    """Device points on nodes become device segments (:mod:`gis.devices`)."""
    from gis.devices import place_device_points

    needed = {"nodes": ("node_id", "device"), "segments": ("segment_id", "from_node", "to_node")}
    if any(c not in tables[t].columns for t, cols in needed.items() for c in cols):
        return tables, []
    if "kind" not in tables["segments"].columns:  # the documented default, noted in Network.defaulted
        tables = {**tables, "segments": tables["segments"].assign(kind="line")}
    subs = tables["substations"]
    sources = set(subs["source_node"].astype(str)) if "source_node" in subs.columns else set()
    return place_device_points(tables, label, sources)


def _map_columns(df: gpd.GeoDataFrame, table: str, overrides: dict[str, str],
                 label: str) -> tuple[gpd.GeoDataFrame, dict[str, str]]:
    """``df`` with each of our columns copied from its source column; also our column -> source column name."""
    source_of = {}
    for target in [*SCHEMAS[table], *EXTRA_TARGETS.get(table, ())]:
        candidates = DEFAULT_COLUMNS.get(table, {}).get(target, (target,))
        src = _source_column(df, f"{table}.{target}", overrides.get(target),
                             candidates if target in candidates else (target, *candidates), label)
        if src is not None:
            source_of[target] = str(src)
            if src != target:
                df[target] = df[src]
    return df, source_of
