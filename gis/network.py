"""The network model as tables.

A territory is a handful of GeoDataFrames (EPSG:4326), in the spirit of pandapower: the tables are the truth, the
graph (:mod:`gis.topology`) is built from them on demand.

``nodes``           node_id, placed (the position was derived from neighbours, not given), geometry (Point)
``segments``        segment_id, from_node, to_node, kind, normally_open, phases, feeder_id, synthesized, name,
                    length_m, status, geometry (LineString, optional)
``service_points``  sp_id, node_id, account, meter, address, phone, customers, customer_class, critical_kind,
                    name, synthesized, geometry (Point)
``substations``     substation_id, name, source_node, geometry (Point)
``depots``          depot_id, name, geometry (Point)
``road_nodes``      osmid, geometry (Point)
``road_edges``      u, v, highway, length_m, speed_kph, travel_s, oneway, name, geometry (LineString)
``feeders``         feeder_id, name, substation_id, rating_kva, status, geometry (Point, optional: the head)
``transformers``    transformer_id, name, kva, status, geometry (Point, optional)

``feeders`` and ``transformers`` are the utility's records of them (may be empty): a feeder row names the
``feeder_id`` its segments carry, a transformer row the ``segment_id`` of its transformer segment. ``status``
(:data:`STATUSES`) says whether the element is in service; an out-of-service segment carries no power (the
topology treats it as open), and what lies behind it is de-energized by design, not an error.

Every id is a string. ``kind`` and ``critical_kind`` take the values in :data:`SEGMENT_KINDS` and
:data:`CRITICAL_KINDS`. Service points hang on a node below a transformer (the low-voltage side).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

CRS = "EPSG:4326"

#: Segment kinds. Devices are everything but ``line`` and ``service``.
SEGMENT_KINDS = (
    "line",
    "breaker",
    "recloser",
    "sectionalizer",
    "fuse",
    "switch",
    "regulator",
    "transformer",
    "service",
)
#: Kinds that interrupt customers when they operate: what trouble-call analysis rolls up to.
PROTECTIVE_KINDS = ("breaker", "recloser", "sectionalizer", "fuse")
#: Kinds that appear in a service point's device chain.
DEVICE_KINDS = ("breaker", "recloser", "sectionalizer", "fuse", "switch", "regulator", "transformer")

CRITICAL_KINDS = ("none", "life_support", "hospital", "emergency_services", "water", "school", "telecom")
STATUSES = ("in_service", "out_of_service")
CUSTOMER_CLASSES = ("residential", "commercial", "industrial", "municipal", "agricultural", "lighting")

#: Column name -> (dtype, default). ``None`` default means required.
SCHEMAS: dict[str, dict[str, tuple[str, object]]] = {
    "nodes": {"node_id": ("str", None), "placed": ("bool", False)},
    "segments": {
        "segment_id": ("str", None),
        "from_node": ("str", None),
        "to_node": ("str", None),
        "kind": ("str", "line"),
        "normally_open": ("bool", False),
        "phases": ("str", "ABC"),
        "feeder_id": ("str", ""),
        "synthesized": ("bool", False),
        "name": ("str", ""),
        "length_m": ("float", np.nan),
        "status": ("str", "in_service"),
    },
    "service_points": {
        "sp_id": ("str", None),
        "node_id": ("str", None),
        "account": ("str", ""),
        "meter": ("str", ""),
        "address": ("str", ""),
        "phone": ("str", ""),
        "customers": ("int", 1),
        "customer_class": ("str", "residential"),
        "critical_kind": ("str", "none"),
        "name": ("str", ""),
        "synthesized": ("bool", False),
    },
    "substations": {
        "substation_id": ("str", None),
        "name": ("str", ""),
        "source_node": ("str", None),
    },
    "depots": {"depot_id": ("str", None), "name": ("str", "")},
    "road_nodes": {"osmid": ("str", None)},
    "road_edges": {
        "u": ("str", None),
        "v": ("str", None),
        "highway": ("str", "unclassified"),
        "length_m": ("float", None),
        "speed_kph": ("float", np.nan),
        "travel_s": ("float", np.nan),
        "oneway": ("bool", False),
        "name": ("str", ""),
    },
    "feeders": {
        "feeder_id": ("str", None),
        "name": ("str", ""),
        "substation_id": ("str", ""),
        "rating_kva": ("float", np.nan),
        "status": ("str", "in_service"),
    },
    "transformers": {
        "transformer_id": ("str", None),
        "name": ("str", ""),
        "kva": ("float", np.nan),
        "status": ("str", "in_service"),
    },
}
#: Tables a territory must have (roads and depots may be empty).
TABLES = tuple(SCHEMAS)
ID_COLUMNS = {
    "nodes": "node_id",
    "segments": "segment_id",
    "service_points": "sp_id",
    "substations": "substation_id",
    "depots": "depot_id",
    "road_nodes": "osmid",
    "feeders": "feeder_id",
    "transformers": "transformer_id",
}


class NetworkError(ValueError):
    """A territory's tables are malformed. The message names the table, element and problem."""


def _empty(table: str) -> gpd.GeoDataFrame:
    cols = {c: pd.Series(dtype=_pandas_dtype(t)) for c, (t, _) in SCHEMAS[table].items()}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=CRS), crs=CRS)


def _pandas_dtype(t: str) -> str:
    return {"str": "object", "bool": "bool", "int": "int64", "float": "float64"}[t]


def conform(table: str, df: pd.DataFrame | None) -> gpd.GeoDataFrame:
    """Return ``df`` as a GeoDataFrame with the table's columns and dtypes, defaults filled in.

    Raises :class:`NetworkError` naming the table and column when a required column is missing or a value cannot be
    converted. Extra columns are kept (a utility's own attributes travel with the data).
    """
    if table not in SCHEMAS:
        raise NetworkError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    if df is None or len(df) == 0 and "geometry" not in getattr(df, "columns", []):
        return _empty(table)
    if not isinstance(df, gpd.GeoDataFrame):
        if "geometry" not in df.columns:
            df = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([None] * len(df), index=df.index), crs=CRS)
        else:
            df = gpd.GeoDataFrame(df, geometry="geometry", crs=CRS)
    df = df.copy()
    if df.crs is None:
        df = df.set_crs(CRS)
    elif not df.crs.equals(CRS):
        df = df.to_crs(CRS)
    for col, (dtype, default) in SCHEMAS[table].items():
        if col not in df.columns:
            if default is None:
                raise NetworkError(f"{table}: required column {col!r} is missing")
            df[col] = default
        try:
            if dtype == "str":
                s = df[col]
                df[col] = s.where(s.notna(), "").astype(str)
            elif dtype == "bool":
                df[col] = _to_bool(df[col])
            elif dtype == "int":
                df[col] = pd.to_numeric(df[col]).fillna(default if default is not None else 0).astype("int64")
            elif dtype == "float":
                df[col] = pd.to_numeric(df[col]).astype("float64")
        except (ValueError, TypeError) as exc:
            raise NetworkError(f"{table}: column {col!r} has a bad value ({exc})") from None
    df = df.reset_index(drop=True)
    return df


def _to_bool(s: pd.Series) -> pd.Series:
    if s.dtype == bool:
        return s
    truthy = {"1", "true", "t", "yes", "y", "open"}
    falsy = {"0", "false", "f", "no", "n", "", "nan", "none", "closed"}
    out = []
    for v in s.tolist():
        if isinstance(v, (bool, np.bool_)):
            out.append(bool(v))
            continue
        if isinstance(v, (int, float, np.integer, np.floating)) and not pd.isna(v):
            out.append(bool(v))
            continue
        t = str(v).strip().lower()
        if t in truthy:
            out.append(True)
        elif t in falsy or pd.isna(v):
            out.append(False)
        else:
            raise ValueError(f"cannot read {v!r} as true/false")
    return pd.Series(out, index=s.index, dtype=bool)


@dataclass
class Network:
    """A territory: the network tables plus roads and depots. See the module docstring for the columns."""

    nodes: gpd.GeoDataFrame
    segments: gpd.GeoDataFrame
    service_points: gpd.GeoDataFrame
    substations: gpd.GeoDataFrame
    depots: gpd.GeoDataFrame = field(default_factory=lambda: _empty("depots"))
    road_nodes: gpd.GeoDataFrame = field(default_factory=lambda: _empty("road_nodes"))
    road_edges: gpd.GeoDataFrame = field(default_factory=lambda: _empty("road_edges"))
    name: str = "territory"
    feeders: gpd.GeoDataFrame = field(default_factory=lambda: _empty("feeders"))
    transformers: gpd.GeoDataFrame = field(default_factory=lambda: _empty("transformers"))
    #: Columns an import filled with their default because the source had no such column ("table.column=value",
    #: comma-separated): ``oms territory info`` says so, since e.g. every customer then counts as residential.
    defaulted: str = ""

    def __post_init__(self) -> None:
        for table in TABLES:
            setattr(self, table, conform(table, getattr(self, table)))
        self._fill_segment_geometry()

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame], name: str = "territory", **attrs) -> Network:
        """Build from a dict of table name -> DataFrame; missing optional tables are empty. ``attrs``: the other
        fields (``defaulted``)."""
        unknown = set(tables) - set(TABLES)
        if unknown:
            raise NetworkError(f"unknown table(s) {sorted(unknown)}; expected {', '.join(TABLES)}")
        for required in ("nodes", "segments", "service_points", "substations"):
            if required not in tables:
                raise NetworkError(f"table {required!r} is missing")
        return cls(**{t: tables.get(t) for t in TABLES}, name=name, **attrs)

    def tables(self) -> dict[str, gpd.GeoDataFrame]:
        return {t: getattr(self, t) for t in TABLES}

    def _fill_segment_geometry(self) -> None:
        """Segments without a drawn geometry get a straight line between their nodes."""
        seg = self.segments
        if len(seg) == 0:
            return
        missing = seg.geometry.isna() | seg.geometry.is_empty
        if not missing.any():
            return
        from shapely import linestrings

        xy = pd.DataFrame({"x": self.nodes.geometry.x.values, "y": self.nodes.geometry.y.values},
                          index=self.nodes["node_id"].values)
        sub = seg.loc[missing]
        a = xy.reindex(sub["from_node"].values).to_numpy()
        b = xy.reindex(sub["to_node"].values).to_numpy()
        ok = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
        coords = np.stack([a[ok], b[ok]], axis=1)
        lines = linestrings(coords) if len(coords) else []
        geoms = seg.geometry.copy()
        geoms.loc[sub.index[ok]] = lines
        self.segments = seg.set_geometry(geoms)

    # -- summaries -------------------------------------------------------------------------------------------

    def summary(self) -> dict:
        """Counts for ``oms territory info``: plain ints and dicts, JSON-ready."""
        seg = self.segments
        sp = self.service_points
        kinds = seg["kind"].value_counts().to_dict()
        critical = sp.loc[sp["critical_kind"] != "none", "critical_kind"].value_counts().to_dict()
        feeders = sorted(set(seg.loc[seg["kind"] == "breaker", "segment_id"]))
        return {
            "name": self.name,
            "substations": int(len(self.substations)),
            "feeders": len(feeders),
            "nodes": int(len(self.nodes)),
            "placed_nodes": int(self.nodes["placed"].sum()),
            "segments": int(len(seg)),
            "devices_by_kind": {k: int(kinds.get(k, 0)) for k in SEGMENT_KINDS if k not in ("line", "service")},
            "transformers": int(kinds.get("transformer", 0)),
            "service_points": int(len(sp)),
            "customers": int(sp["customers"].sum()),
            "critical_sites": {k: int(critical.get(k, 0)) for k in CRITICAL_KINDS if k != "none"},
            "normally_open_points": int(seg["normally_open"].sum()),
            "depots": int(len(self.depots)),
            "road_nodes": int(len(self.road_nodes)),
            "road_edges": int(len(self.road_edges)),
            "synthesized_elements": int(seg["synthesized"].sum() + sp["synthesized"].sum()),
            "out_of_service_segments": int((seg["status"] == "out_of_service").sum()),
            "feeder_records": int(len(self.feeders)),
            "transformer_records": int(len(self.transformers)),
            "defaulted_columns": [d for d in self.defaulted.split(",") if d],
        }
