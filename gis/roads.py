"""Roads and travel times: the graph crews drive on.

Read an OpenStreetMap extract offline (:func:`read_osm`, osmnx; ``.osm``, ``.osm.gz``, ``.osm.bz2``), turn it into
the ``road_nodes`` / ``road_edges`` tables of :mod:`gis.network` (:func:`road_tables`), and answer travel-time
questions on a :class:`RoadGraph` built from those tables: snap points to the nearest road node (KD-tree on
locally projected metres) and compute many-to-many travel-time matrices with ``scipy.sparse.csgraph.dijkstra``.

Travel time from point ``a`` to point ``b``::

    access(a) + shortest road time(node(a) -> node(b)) + access(b)

where ``node(p)`` is the nearest road node and ``access(p)`` drives the straight-line snapping offset at
:data:`ACCESS_SPEED_KPH` (a farm lane, a driveway, a field edge). When a point is farther than ``max_snap_m`` from
any road, or no road path joins the two nodes (one-way dead ends, separate road islands), or there are no roads at
all, the time is the great-circle distance x :data:`CIRCUITY` at :data:`FALLBACK_SPEED_KPH`. Identical points are 0 s.

Matrices are exact and fast on big graphs: dead-end streets (trees hanging off the road network's 2-core) are
peeled off once, so Dijkstra runs on the core only (a 204,000-node synthetic road graph has a 26,500-node core;
500 x 500 takes ~3 s), and once per distinct snapped node on the smaller side.

Speeds: :data:`SPEED_KPH` by OSM ``highway`` class (typical driving speeds of a service truck on German/European
roads, below the legal limit on fast roads). A plain numeric ``maxspeed`` tag (``"70"``, ``"30 mph"``) replaces the
class speed when it is lower, so town limits on through roads are honoured; anything else (``"none"``,
``"DE:urban"``, lists) keeps the class speed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from shapely import linestrings, points

from gis.network import CRS, conform

#: Typical driving speed (km/h) of a crew truck by OSM ``highway`` class. Classes not listed are not drivable.
SPEED_KPH: dict[str, float] = {
    "motorway": 110.0,
    "motorway_link": 60.0,
    "trunk": 90.0,
    "trunk_link": 50.0,
    "primary": 80.0,
    "primary_link": 50.0,
    "secondary": 70.0,
    "secondary_link": 45.0,
    "tertiary": 60.0,
    "tertiary_link": 40.0,
    "unclassified": 45.0,
    "road": 40.0,
    "residential": 30.0,
    "living_street": 10.0,
    "service": 20.0,
}
#: Classes a crew truck can drive (farm ``track``s are left out: they are slow, gated and often unconnected).
DRIVABLE = frozenset(SPEED_KPH)
#: Speed (km/h) over the straight-line offset between a point and its road node.
ACCESS_SPEED_KPH = 15.0
#: Road distance / great-circle distance assumed where there is no usable road path.
CIRCUITY = 1.3
#: Speed (km/h) of the straight-line x circuity fallback: a mix of rural roads.
FALLBACK_SPEED_KPH = 40.0
#: A point farther than this from every road node is reached by the fallback, not by the road graph.
MAX_SNAP_M = 2000.0
EARTH_RADIUS_M = 6_371_008.8

_MAXSPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh)?\s*$")


class RoadError(ValueError):
    """Road data is unusable; the message names the file, table or column."""


def class_speed(highway: str) -> float:
    """Class speed (km/h) of an OSM ``highway`` value; lists (``"a;b"`` or osmnx lists) use their first class."""
    if isinstance(highway, list):
        highway = highway[0] if highway else ""
    first = str(highway).split(";")[0].strip()
    return SPEED_KPH.get(first, SPEED_KPH["unclassified"])


def parse_maxspeed(value) -> float:
    """km/h of a simple numeric ``maxspeed`` tag (``"50"``, ``"30 mph"``); NaN for anything else."""
    if value is None or isinstance(value, list) or (isinstance(value, float) and np.isnan(value)):
        return np.nan
    m = _MAXSPEED.match(str(value))
    if not m:
        return np.nan
    kph = float(m.group(1)) * (1.609344 if m.group(2) == "mph" else 1.0)
    return kph if kph > 0 else np.nan


def read_osm(path: str | Path):
    """Read an OSM XML extract (``.osm``, ``.osm.gz``, ``.osm.bz2``) offline into a drivable osmnx MultiDiGraph.

    Keeps edges whose ``highway`` class is in :data:`DRIVABLE` and the nodes they touch. Two-way roads have an
    edge in each direction, one-way roads one edge (osmnx's ``oneway`` handling). Never touches the network.
    """
    return drivable(load_osm(path))


def load_osm(path: str | Path, way_tags: tuple[str, ...] = (), node_tags: tuple[str, ...] = ()):
    """Every way of an OSM extract as an unsimplified osmnx graph, keeping ``way_tags`` / ``node_tags`` besides
    osmnx's usual ones (e.g. ``building`` to find houses). One XML parse; no network access."""
    import osmnx as ox

    path = Path(path)
    if not path.is_file():
        raise RoadError(f"{path}: no such OSM file")
    saved = (ox.settings.useful_tags_way, ox.settings.useful_tags_node)
    ox.settings.useful_tags_way = list(dict.fromkeys([*saved[0], *way_tags]))
    ox.settings.useful_tags_node = list(dict.fromkeys([*saved[1], *node_tags]))
    try:
        return ox.graph_from_xml(path, simplify=False, retain_all=True)
    except Exception as exc:  # osmnx raises a variety of parse errors
        raise RoadError(f"{path}: cannot read as OSM XML ({exc})") from None
    finally:
        ox.settings.useful_tags_way, ox.settings.useful_tags_node = saved


def drivable(graph):
    """A copy of ``graph`` with only :data:`DRIVABLE` edges and the nodes they touch."""
    keep = [
        (u, v, k)
        for u, v, k, hw in graph.edges(keys=True, data="highway")
        if (hw[0] if isinstance(hw, list) else hw) in DRIVABLE
    ]
    return graph.edge_subgraph(keep).copy()


def road_tables(graph) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """``(road_nodes, road_edges)`` tables (see :mod:`gis.network`) of an osmnx graph, with speeds and travel times."""
    node_ids, xs, ys = [], [], []
    for n, data in graph.nodes(data=True):
        node_ids.append(str(n))
        xs.append(float(data["x"]))
        ys.append(float(data["y"]))
    road_nodes = gpd.GeoDataFrame({"osmid": node_ids}, geometry=points(np.c_[xs, ys]), crs=CRS)
    coord = {str(n): (float(d["x"]), float(d["y"])) for n, d in graph.nodes(data=True)}

    rows = {"u": [], "v": [], "highway": [], "length_m": [], "maxspeed": [], "oneway": [], "name": []}
    geoms = []
    for u, v, data in graph.edges(data=True):
        hw = data.get("highway", "unclassified")
        name = data.get("name", "")
        rows["u"].append(str(u))
        rows["v"].append(str(v))
        rows["highway"].append(hw[0] if isinstance(hw, list) else str(hw))
        rows["length_m"].append(float(data.get("length", np.nan)))
        rows["maxspeed"].append(parse_maxspeed(data.get("maxspeed")))
        rows["oneway"].append(bool(data.get("oneway", False)))
        rows["name"].append(name[0] if isinstance(name, list) else ("" if name is None else str(name)))
        geom = data.get("geometry")
        geoms.append(geom if geom is not None else linestrings([coord[str(u)], coord[str(v)]]))
    edges = pd.DataFrame(rows)
    edges["speed_kph"] = edge_speeds(edges["highway"], edges.pop("maxspeed"))
    missing = edges["length_m"].isna()
    if missing.any():
        g = gpd.GeoSeries(geoms, crs=CRS)[missing.to_numpy()]
        edges.loc[missing, "length_m"] = _line_lengths_m(g)
    edges["travel_s"] = edges["length_m"] / (edges["speed_kph"] / 3.6)
    road_edges = gpd.GeoDataFrame(edges, geometry=gpd.GeoSeries(geoms, crs=CRS), crs=CRS)
    return conform("road_nodes", road_nodes), conform("road_edges", road_edges)


def edge_speeds(highway: pd.Series, maxspeed: pd.Series | None = None) -> np.ndarray:
    """Speed (km/h) per edge: the class speed, lowered to a numeric ``maxspeed`` where one is given."""
    speed = highway.map(lambda h: class_speed(h)).to_numpy(dtype=float)
    if maxspeed is not None:
        limit = pd.to_numeric(maxspeed, errors="coerce").to_numpy(dtype=float)
        speed = np.where(np.isfinite(limit), np.minimum(speed, limit), speed)
    return speed


def _line_lengths_m(geoms: gpd.GeoSeries) -> np.ndarray:
    out = np.empty(len(geoms))
    for i, g in enumerate(geoms):
        xy = np.asarray(g.coords)
        out[i] = great_circle_m(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1]).sum()
    return out


def great_circle_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Haversine distance in metres (vectorised, broadcasting)."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(a, dtype=float)) for a in (lon1, lat1, lon2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def _as_points(pts, what: str) -> np.ndarray:
    arr = np.asarray(pts, dtype=float)
    if arr.ndim == 1 and arr.size == 2:
        arr = arr.reshape(1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{what}: expected an (n, 2) array of (lon, lat), got shape {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=1) | (np.abs(arr[:, 1]) > 90) | (np.abs(arr[:, 0]) > 180)
    if bad.any():
        raise ValueError(f"{what}: invalid lon/lat at row(s) {np.flatnonzero(bad)[:10].tolist()}")
    return arr


@dataclass
class RoadGraph:
    """A directed road graph over integer node indices, ready for snapping and shortest travel times.

    ``csr[i, j]`` is the fastest edge time (s) from node ``i`` to ``j``. Coordinates are projected to metres with
    an equirectangular projection about the graph's centre (error well under 1% across a utility territory),
    which is what the KD-tree snaps on.
    """

    node_ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    csr: sp.csr_matrix
    access_speed_kph: float = ACCESS_SPEED_KPH
    fallback_speed_kph: float = FALLBACK_SPEED_KPH
    circuity: float = CIRCUITY
    max_snap_m: float = MAX_SNAP_M
    _origin: tuple[float, float] = field(init=False, repr=False)
    _tree: cKDTree | None = field(init=False, repr=False, default=None)
    _peel_cache: _Peeled | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if len(self.lon):
            self._origin = (float(np.mean(self.lon)), float(np.mean(self.lat)))
            self._tree = cKDTree(self._project(self.lon, self.lat))
        else:
            self._origin = (0.0, 0.0)

    @classmethod
    def from_tables(cls, road_nodes: pd.DataFrame, road_edges: pd.DataFrame, **params) -> RoadGraph:
        """Build from ``road_nodes`` / ``road_edges`` tables. Edges need ``travel_s`` or ``length_m`` + ``speed_kph``
        (missing speeds come from the ``highway`` class). Raises :class:`RoadError` naming an edge whose end is
        not a road node. ``params`` override the speeds and thresholds (``access_speed_kph``, ...)."""
        road_nodes = conform("road_nodes", road_nodes)
        road_edges = conform("road_edges", road_edges)
        ids = road_nodes["osmid"].to_numpy(dtype=object)
        if pd.Index(ids).has_duplicates:
            dup = pd.Index(ids)[pd.Index(ids).duplicated()][:5].tolist()
            raise RoadError(f"road_nodes: duplicate osmid {dup}")
        index = pd.Index(ids)
        u = index.get_indexer(road_edges["u"].to_numpy(dtype=object))
        v = index.get_indexer(road_edges["v"].to_numpy(dtype=object))
        bad = np.flatnonzero((u < 0) | (v < 0))
        if len(bad):
            r = road_edges.iloc[bad[0]]
            raise RoadError(
                f"road_edges: edge {r['u']}->{r['v']} (row {bad[0]}) refers to an unknown road node"
                + (f" ({len(bad)} such edges)" if len(bad) > 1 else "")
            )
        t = road_edges["travel_s"].to_numpy(dtype=float)
        need = ~np.isfinite(t)
        if need.any():
            speed = road_edges["speed_kph"].to_numpy(dtype=float)
            speed = np.where(np.isfinite(speed) & (speed > 0), speed, edge_speeds(road_edges["highway"]))
            t = np.where(need, road_edges["length_m"].to_numpy(dtype=float) / (speed / 3.6), t)
        if (~np.isfinite(t) | (t < 0)).any():
            row = int(np.flatnonzero(~np.isfinite(t) | (t < 0))[0])
            raise RoadError(f"road_edges: row {row} has no usable travel time (length_m/speed_kph/travel_s)")
        geom = road_nodes.geometry
        return cls(ids, geom.x.to_numpy(), geom.y.to_numpy(), _csr_min(u, v, t, len(ids)), **params)

    # -- geometry ----------------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    def _project(self, lon, lat) -> np.ndarray:
        lon0, lat0 = self._origin
        k = np.pi / 180 * EARTH_RADIUS_M
        return np.c_[(np.asarray(lon) - lon0) * k * np.cos(np.radians(lat0)), (np.asarray(lat) - lat0) * k]

    def snap(self, lons, lats) -> tuple[np.ndarray, np.ndarray]:
        """Nearest road node index and the straight-line offset (m) of each point; index -1 when there are no
        roads. Vectorised (one KD-tree query)."""
        lons, lats = (
            np.atleast_1d(np.asarray(lons, dtype=float)),
            np.atleast_1d(np.asarray(lats, dtype=float)),
        )
        if lons.shape != lats.shape:
            raise ValueError(f"snap: {len(lons)} longitudes but {len(lats)} latitudes")
        if self._tree is None:
            return np.full(len(lons), -1, dtype=np.int64), np.full(len(lons), np.inf)
        _, idx = self._tree.query(self._project(lons, lats))
        idx = idx.astype(np.int64)
        # report the true great-circle offset, not the projected one
        return idx, great_circle_m(lons, lats, self.lon[idx], self.lat[idx])

    # -- travel times ------------------------------------------------------------------------------------
    def travel_time_matrix(self, src_points, dst_points, chunk: int = 64) -> np.ndarray:
        """Seconds from each source to each destination: an ``(n_src, n_dst)`` float array.

        Points are ``(lon, lat)`` rows. Dijkstra runs on the peeled road core (see :meth:`_node_times`) once per
        distinct entry node on the smaller side (on the reversed graph when that is the destination side), in
        chunks so memory stays ``chunk x core nodes``.
        Pairs without a road path, or with a point farther than ``max_snap_m`` from the roads, get the
        straight-line x circuity fallback (see the module docstring).
        """
        src = _as_points(src_points, "src_points")
        dst = _as_points(dst_points, "dst_points")
        fallback = self.fallback_matrix(src, dst)
        if len(src) == 0 or len(dst) == 0 or self.n_nodes == 0:
            return fallback
        s_node, s_off = self.snap(src[:, 0], src[:, 1])
        d_node, d_off = self.snap(dst[:, 0], dst[:, 1])
        access = 3.6 / self.access_speed_kph
        road = self._node_times(s_node, d_node, chunk)
        road = road + (s_off * access)[:, None] + (d_off * access)[None, :]
        usable = (s_off <= self.max_snap_m)[:, None] & (d_off <= self.max_snap_m)[None, :] & np.isfinite(road)
        out = np.where(usable, road, fallback)
        same = (src[:, None, 0] == dst[None, :, 0]) & (src[:, None, 1] == dst[None, :, 1])
        out[same] = 0.0
        return out

    def travel_times(self, src_point, dst_points) -> np.ndarray:
        """Seconds from one point to each of ``dst_points`` (a convenience over :meth:`travel_time_matrix`)."""
        return self.travel_time_matrix(np.asarray(src_point, dtype=float).reshape(1, 2), dst_points)[0]

    def fallback_matrix(self, src, dst) -> np.ndarray:
        """Great-circle distance x circuity at the fallback speed, seconds, ``(n_src, n_dst)``."""
        src, dst = np.asarray(src, dtype=float).reshape(-1, 2), np.asarray(dst, dtype=float).reshape(-1, 2)
        d = great_circle_m(src[:, None, 0], src[:, None, 1], dst[None, :, 0], dst[None, :, 1])
        return d * self.circuity / (self.fallback_speed_kph / 3.6)

    def _node_times(self, s_node: np.ndarray, d_node: np.ndarray, chunk: int) -> np.ndarray:
        """Shortest road times between snapped node indices (exact).

        Dead-end streets (trees hanging off the road network's 2-core) are peeled off once: a node in such a tree
        reaches the rest only through the tree's root, so ``time(a, b) = up(a) + core(root a, root b) + down(b)``
        and Dijkstra runs on the much smaller core, once per distinct root on the smaller side. Pairs in the same
        hanging tree get an exact, distance-limited Dijkstra on the full graph.
        """
        peel = self._peeled()
        ra, rb = peel.root[s_node], peel.root[d_node]
        core = _many_to_many(peel.core_csr, peel.core_index[ra], peel.core_index[rb], chunk)
        out = peel.up[s_node][:, None] + core + peel.down[d_node][None, :]
        same_tree = (
            (ra[:, None] == rb[None, :]) & ~peel.is_core[s_node][:, None] & ~peel.is_core[d_node][None, :]
        )
        rows = np.flatnonzero(same_tree.any(axis=1))
        if len(rows):
            src = np.unique(s_node[rows])
            limit = float(np.max(out[rows][same_tree[rows]])) * (1 + 1e-9) + 1e-6
            dist = dijkstra(self.csr, directed=True, indices=src, limit=limit)
            exact = dist[np.searchsorted(src, s_node[rows])][:, d_node]
            out[rows] = np.where(same_tree[rows], np.minimum(out[rows], exact), out[rows])
        out[s_node[:, None] == d_node[None, :]] = 0.0
        return out

    def _peeled(self) -> _Peeled:
        if getattr(self, "_peel_cache", None) is None:
            self._peel_cache = _peel(self.csr)
        return self._peel_cache


@dataclass
class _Peeled:
    """The road graph with its dead-end trees peeled off: per node its core root and the times to/from it."""

    root: np.ndarray  # core node each node hangs from (itself for core nodes)
    up: np.ndarray  # seconds from the node to its root (inf where a one-way street forbids it)
    down: np.ndarray  # seconds from the root to the node
    is_core: np.ndarray
    core_index: np.ndarray  # node -> index in core_csr (-1 off the core)
    core_csr: sp.csr_matrix


def _peel(csr: sp.csr_matrix) -> _Peeled:
    """Remove degree-1 nodes round by round (vectorised per round) until only the 2-core (or one node of each
    tree-shaped component) is left; then accumulate root and up/down times from the core outward."""
    n = csr.shape[0]
    coo = csr.tocoo()
    a, b = np.minimum(coo.row, coo.col), np.maximum(coo.row, coo.col)
    pairs = np.unique(np.c_[a, b], axis=0) if len(a) else np.empty((0, 2), dtype=np.int64)
    sym = sp.csr_matrix(
        (
            np.ones(2 * len(pairs), dtype=np.int8),
            (np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]]),
        ),
        shape=(n, n),
    )
    deg = np.diff(sym.indptr).astype(np.int64)
    live = np.ones(n, dtype=bool)
    parent = np.full(n, -1, dtype=np.int64)
    rounds = []
    while True:
        leaves = np.flatnonzero(live & (deg == 1))
        if not len(leaves):
            break
        rows = sym[leaves].multiply(live[None, :].astype(np.int8)).tocsr()
        rows.eliminate_zeros()
        nbr = rows.indices  # exactly one live neighbour per leaf, in row order
        # two leaves joined only to each other: keep the larger index as the component's core node
        go = ~((deg[nbr] == 1) & (nbr < leaves))
        leaves, nbr = leaves[go], nbr[go]
        live[leaves] = False
        parent[leaves] = nbr
        deg[leaves] = 0
        np.subtract.at(deg, nbr, 1)
        rounds.append(leaves)
    root = np.arange(n)
    up = np.zeros(n)
    down = np.zeros(n)
    for leaves in reversed(rounds):
        p = parent[leaves]
        w_up = np.asarray(csr[leaves, p]).ravel()
        w_down = np.asarray(csr[p, leaves]).ravel()
        root[leaves] = root[p]
        up[leaves] = np.where(w_up > 0, w_up, np.inf) + up[p]
        down[leaves] = np.where(w_down > 0, w_down, np.inf) + down[p]
    core_nodes = np.flatnonzero(live)
    core_index = np.full(n, -1, dtype=np.int64)
    core_index[core_nodes] = np.arange(len(core_nodes))
    return _Peeled(root, up, down, live, core_index, csr[core_nodes][:, core_nodes].tocsr())


def _many_to_many(graph: sp.csr_matrix, src: np.ndarray, dst: np.ndarray, chunk: int) -> np.ndarray:
    """Shortest times ``src x dst`` on ``graph``: one Dijkstra per distinct node of the smaller side (on the
    reversed graph when that is the destination side), ``chunk`` sources at a time to bound memory."""
    s_uniq, s_inv = np.unique(src, return_inverse=True)
    d_uniq, d_inv = np.unique(dst, return_inverse=True)
    forward = len(s_uniq) <= len(d_uniq)
    g = graph if forward else graph.T.tocsr()
    origins, targets = (s_uniq, d_uniq) if forward else (d_uniq, s_uniq)
    out = np.empty((len(origins), len(targets)))
    for start in range(0, len(origins), chunk):
        block = origins[start : start + chunk]
        out[start : start + len(block)] = dijkstra(g, directed=True, indices=block)[:, targets]
    if not forward:
        out = out.T
    return out[s_inv][:, d_inv]


def _csr_min(u: np.ndarray, v: np.ndarray, t: np.ndarray, n: int) -> sp.csr_matrix:
    """CSR adjacency keeping the fastest of parallel edges (a CSR built from COO would *sum* them).

    Self-loops are dropped and times are floored at 1 ms: csgraph treats an explicit 0 like a missing edge.
    """
    keep = u != v
    u, v, t = u[keep], v[keep], np.maximum(t[keep], 1e-3)
    order = np.lexsort((t, v, u))
    u, v, t = u[order], v[order], t[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    return sp.csr_matrix((t[first], (u[first], v[first])), shape=(n, n))


def road_graph(network) -> RoadGraph:
    """The :class:`RoadGraph` of a :class:`~gis.network.Network`'s road tables."""
    return RoadGraph.from_tables(network.road_nodes, network.road_edges)
