"""The bundled sample utility: a rural co-op laid on the real roads north of Bayreuth.

:func:`sample_territory` builds it from ``data/north-bayreuth.osm.gz`` (© OpenStreetMap contributors, ODbL) with
seeded, reviewable rules, in a few seconds, so nothing but this code and the extract is committed:

1. Roads: the drivable OSM ways (:func:`gis.roads.read_osm` rules) become ``road_nodes`` / ``road_edges``.
2. Houses: every OSM building outline (garages, huts, roofs and hangars excluded) within
   :data:`MAX_SERVICE_DROP_M` of the road network becomes one service point at its centroid.
3. Transformer sites: one road node per :data:`SITE_CELL_M` grid cell that holds houses; each house is served from
   its nearest site, and a site's houses are split into pole transformers of at most 15 customers.
4. Feeders follow the streets: the shortest-road-distance forest from two substations (placed at road junctions
   near the two clusters of houses) is pruned to the transformer sites; the branches leaving each substation are
   grouped into three feeders, each behind its breaker. Backbone = edges carrying at least :data:`BACKBONE_SHARE`
   of the feeder's customers (three-phase); every lateral leaving the backbone starts with a fuse (single-phase);
   a recloser sits where the backbone's downstream load first drops below half; closed sectionalizing switches
   split long backbones; normally-open tie switches close the shortest road gap between neighbouring feeders.
5. People: German names; addresses from the building's ``addr:*`` tags, else the OSM address point inside or
   next to it, else the nearest named street plus the nearest village; ``place`` (the village or hamlet people
   say they live in) and ``postcode`` columns for the public map's areas and address search; phones in the 0921 area, accounts and meters; customer classes from building tags; critical
   sites (OSM fire stations as emergency services, 2 hospitals, schools, water plants, telecom) and ~0.5%
   life-support customers. Postcodes come from OSM where tagged, else are approximate; people are fictitious.
6. Basemap: the extract's places, named streets, buildings and addresses (:func:`gis.basemap.read_osm_basemap`)
   travel with the network as ``network.basemap`` so the public map is labelled with no tile server.

Roads, building positions, street names and village names are real OSM data; the utility itself (every segment
and service point) is generated and marked ``synthesized``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from shapely import points

from gis.basemap import Basemap, read_osm_basemap
from gis.network import Network
from gis.roads import drivable, load_osm, road_tables


def name_list(text: str, sep: str | None = None) -> tuple[str, ...]:
    """A tuple of names written as one string (keeps long name lists compact)."""
    return tuple(text.split(sep))


OSM_PATH = Path(__file__).parent / "north-bayreuth.osm.gz"
ATTRIBUTION = "© OpenStreetMap contributors, ODbL"
NAME = f"Sample utility north of Bayreuth (roads {ATTRIBUTION})"
#: Houses farther than this from any road are left unserved (barns in the fields, huts in the woods).
MAX_SERVICE_DROP_M = 250.0
#: Side of the grid cell that gets one transformer site.
SITE_CELL_M = 110.0
#: A branch carrying at least this share of its feeder's customers is backbone, the rest are fused laterals.
BACKBONE_SHARE = 0.12
MAX_TRANSFORMER_CUSTOMERS = 15
#: Longest road route built as a normally-open tie between two feeders.
MAX_TIE_M = 3000.0
FEEDERS_PER_SUBSTATION = 3
LIFE_SUPPORT_SHARE = 0.005
NOT_HOUSES = frozenset(
    name_list("bunker cabin carport construction entrance garage garages hangar hut roof ruins shed")
)
_BUILDING_TAGS = ("building", "amenity", "shop", "addr:street", "addr:housenumber")

SURNAMES = name_list(
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Bauer Koch Richter Klein "
    "Wolf Schröder Neumann Schwarz Zimmermann Braun Hofmann Krüger Hartmann Lange Werner Krause Lehmann "
    "Meier Köhler Herrmann Walter König Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß Jung Hahn "
    "Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz Baumann Franke Albrecht "
    "Schuster Simon Ludwig Böhm Winter Kraus Schumacher Vogt Stein Jäger Otto Sommer Groß Seidel Heinrich "
    "Brandt Haas Schreiber Graf Dietrich Ziegler Kuhn Pohl Engel Horn Busch Bergmann Thomas Voigt Sauer "
    "Arnold Pfeiffer Wolff Ernst Hübner Dörfler Pöhlmann Heinlein Rauh Küfner Hacker Seuß Popp "
    "Engelbrecht"
)
FIRST_NAMES = name_list(
    "Anna Maria Ursula Monika Petra Elisabeth Sabine Renate Helga Karin Brigitte Ingrid Erika Andrea "
    "Gabriele Claudia Susanne Christine Julia Laura Lena Sophie Hannah Lea Peter Michael Thomas Andreas "
    "Wolfgang Klaus Jürgen Günter Stefan Christian Uwe Werner Hans Horst Frank Bernd Markus Matthias "
    "Georg Johann Lukas Felix Jonas Maximilian Tobias"
)
BUSINESSES = name_list(
    "Bäckerei Metzgerei Gasthof Autohaus Schreinerei Elektro Friseursalon Getränkemarkt Zahnarztpraxis "
    "Steuerbüro Sanitär Landhandel Brauerei Apotheke"
)


def sample_territory(seed: int = 1, osm_path: str | Path = OSM_PATH) -> Network:
    """The sample territory (see the module docstring). Deterministic for a given ``seed`` and extract."""
    rng = np.random.default_rng(seed)
    raw = load_osm(osm_path, way_tags=_BUILDING_TAGS, node_tags=("place", "name"))
    road_nodes, road_edges = road_tables(drivable(raw))
    places = _places(raw)
    houses = _buildings(raw)
    del raw
    basemap = read_osm_basemap(osm_path)

    lon0, lat0 = float(road_nodes.geometry.x.mean()), float(road_nodes.geometry.y.mean())
    proj = _projector(lon0, lat0)
    rxy = proj(road_nodes.geometry.x.to_numpy(), road_nodes.geometry.y.to_numpy())
    roads = _undirected(road_nodes, road_edges)
    in_lcc = roads.main_component

    # houses -> nearest main-component road node; drop the far ones
    lcc_nodes = np.flatnonzero(in_lcc)
    hxy = proj(houses["lon"].to_numpy(), houses["lat"].to_numpy())
    dist, near = cKDTree(rxy[lcc_nodes]).query(hxy)
    houses = houses.loc[dist <= MAX_SERVICE_DROP_M].reset_index(drop=True)
    hxy = hxy[dist <= MAX_SERVICE_DROP_M]

    # transformer sites: one road node per grid cell of houses, nearest to the cell's houses
    cell = np.floor(hxy / SITE_CELL_M).astype(np.int64)
    cell_key = cell[:, 0] * 1_000_003 + cell[:, 1]
    _, cell_inv = np.unique(cell_key, return_inverse=True)
    centre = (
        np.c_[np.bincount(cell_inv, hxy[:, 0]), np.bincount(cell_inv, hxy[:, 1])]
        / np.bincount(cell_inv)[:, None]
    )
    _, site_pick = cKDTree(rxy[lcc_nodes]).query(centre)
    sites = np.unique(lcc_nodes[site_pick])
    _, house_site = cKDTree(rxy[sites]).query(hxy)
    houses["site"] = sites[house_site]

    houses = _people(houses, rng, places, road_edges, rxy, proj, basemap)
    site_customers = np.bincount(houses["site"], weights=houses["customers"], minlength=len(rxy))

    # substations: road junctions near the two clusters of houses, the first one with >= 3 substantial branches
    centres = _two_centres(hxy, houses["customers"].to_numpy())
    roots, pred = _place_substations(roads, rxy, centres, sites, site_customers)
    tree = _Tree(pred, roots, sites, site_customers, roads.length)

    names = [_nearest_place(places, proj, rxy[r]) for r in roots]
    net = _assemble(road_nodes, road_edges, roads, rxy, tree, houses, names, rng, proj, places)
    net.basemap = basemap  # public OSM layers for the maps (not a network table: nothing electrical about it)
    return net


# -- OSM extraction ------------------------------------------------------------------------------------------


def _buildings(raw) -> pd.DataFrame:
    """One row per building way: centroid of its outline nodes, a size in metres and its tags."""
    rows = [
        (
            d["osmid"],
            u,
            d.get("building"),
            d.get("amenity"),
            d.get("shop"),
            d.get("addr:street"),
            d.get("addr:housenumber"),
        )
        for u, _, d in raw.edges(data=True)
        if d.get("building")
    ]
    df = pd.DataFrame(rows, columns=["way", "node", "building", "amenity", "shop", "street", "housenumber"])
    xy = pd.DataFrame([(n, d["x"], d["y"]) for n, d in raw.nodes(data=True)], columns=["node", "x", "y"])
    df = df.merge(xy, on="node").drop_duplicates(["way", "node"])
    g = df.groupby("way", sort=True)
    out = g[["building", "amenity", "shop", "street", "housenumber"]].first()
    out["lon"], out["lat"] = g["x"].mean(), g["y"].mean()
    k = 111_320.0
    out["size_m"] = np.hypot(
        (g["x"].max() - g["x"].min()) * k * np.cos(np.radians(out["lat"])), (g["y"].max() - g["y"].min()) * k
    )
    out = out.loc[~out["building"].isin(NOT_HOUSES)].reset_index()
    return out


def _places(raw) -> pd.DataFrame:
    rows = [
        (d.get("name", ""), d["place"], d["x"], d["y"])
        for _, d in raw.nodes(data=True)
        if d.get("place") in ("village", "hamlet", "town", "suburb", "isolated_dwelling") and d.get("name")
    ]
    return pd.DataFrame(rows, columns=["name", "place", "lon", "lat"])


def _projector(lon0: float, lat0: float):
    k = np.pi / 180 * 6_371_008.8

    def proj(lon, lat):
        return np.c_[(np.asarray(lon) - lon0) * k * np.cos(np.radians(lat0)), (np.asarray(lat) - lat0) * k]

    return proj


def _nearest_place(places: pd.DataFrame, proj, xy) -> str:
    pxy = proj(places["lon"].to_numpy(), places["lat"].to_numpy())
    return str(places["name"].iloc[int(np.argmin(np.hypot(*(pxy - xy).T)))])


# -- road structure ------------------------------------------------------------------------------------------


class _Undirected:
    def __init__(self, graph: csr_matrix, u, v, length):
        self.graph = graph
        self.u, self.v, self.length_uv = u, v, length
        _, labels = connected_components(graph, directed=False)
        self.main_component = labels == np.bincount(labels).argmax()
        self.degree = np.diff((graph > 0).astype(np.int8).tocsr().indptr)
        coo = graph.tocoo()
        self.length = {(int(a), int(b)): float(w) for a, b, w in zip(coo.row, coo.col, coo.data, strict=True)}


def _undirected(road_nodes, road_edges) -> _Undirected:
    index = pd.Index(road_nodes["osmid"])
    u = index.get_indexer(road_edges["u"])
    v = index.get_indexer(road_edges["v"])
    w = np.maximum(road_edges["length_m"].to_numpy(), 0.1)
    a, b = np.minimum(u, v), np.maximum(u, v)
    df = pd.DataFrame({"a": a, "b": b, "w": w}).query("a != b").groupby(["a", "b"], as_index=False)["w"].min()
    n = len(index)
    a, b, w = df["a"].to_numpy(), df["b"].to_numpy(), df["w"].to_numpy()
    g = csr_matrix((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(n, n))
    return _Undirected(g, a, b, w)


def _two_centres(xy: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Two weighted k-means centres of the houses (deterministic start: west and east quantiles)."""
    c = np.array([np.percentile(xy, 25, axis=0), np.percentile(xy, 75, axis=0)])
    for _ in range(20):
        lab = np.argmin(((xy[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        c = np.array([np.average(xy[lab == k], axis=0, weights=weight[lab == k]) for k in range(2)])
    return c


def _place_substations(roads: _Undirected, rxy, centres, sites, site_customers):
    """Roots (road node per substation) and the shortest-distance forest from them (predecessor array)."""
    cand = np.flatnonzero(roads.main_component & (roads.degree >= 3))
    best = None
    for shift in range(12):
        roots = []
        for k, c in enumerate(centres):
            order = cand[np.argsort(np.hypot(*(rxy[cand] - c).T))]
            roots.append(int(order[shift if k == 0 else 0]))
        _, pred, _ = dijkstra(
            roads.graph, directed=False, indices=roots, min_only=True, return_predecessors=True
        )
        tree = _Tree(pred, np.array(roots), sites, site_customers, roads.length)
        score = min(_branch_quality(tree, r) for r in roots)
        if best is None or score > best[0]:
            best = (score, np.array(roots), pred)
        if score >= 0.05:
            break
    return best[1], best[2]


def _branch_quality(tree: _Tree, root: int) -> float:
    """Share of the root's customers on its 3rd-largest branch (0 when fewer than 3 branches)."""
    loads = sorted((tree.customers[c] for c in tree.children.get(root, [])), reverse=True)
    total = tree.customers[root] or 1.0
    return loads[FEEDERS_PER_SUBSTATION - 1] / total if len(loads) >= FEEDERS_PER_SUBSTATION else 0.0


class _Tree:
    """The shortest-distance forest pruned to the transformer sites, with downstream customer totals."""

    def __init__(self, pred, roots, sites, site_customers, length):
        pred = np.asarray(pred)
        needed = np.zeros(len(pred), dtype=bool)
        needed[sites] = True
        frontier = sites
        while len(frontier):
            p = pred[frontier]
            p = p[p >= 0]
            p = p[~needed[p]]
            needed[p] = True
            frontier = np.unique(p)
        self.pred = np.where(needed, pred, -9999)
        self.roots = [int(r) for r in roots]
        self.nodes = np.flatnonzero(needed)
        # order parents before children: by depth
        depth = np.zeros(len(pred), dtype=np.int64)
        orig, cur = self.nodes, self.nodes
        while len(cur):
            p = self.pred[cur]
            has = p >= 0
            depth[orig[has]] += 1
            orig, cur = orig[has], p[has]
        self.order = self.nodes[np.argsort(depth[self.nodes], kind="stable")]
        self.customers = site_customers.astype(float).copy()
        for n in self.order[::-1]:
            p = self.pred[n]
            if p >= 0:
                self.customers[p] += self.customers[n]
        self.children: dict[int, list[int]] = {}
        for n in self.order:
            p = int(self.pred[n])
            if p >= 0:
                self.children.setdefault(p, []).append(int(n))
        self.length = length

    def edge_length(self, a: int, b: int) -> float:
        return self.length.get((a, b), self.length.get((b, a), np.nan))


# -- people ----------------------------------------------------------------------------------------------------


def _people(houses: pd.DataFrame, rng, places, road_edges, rxy, proj, basemap: Basemap) -> pd.DataFrame:
    """Customer class, customers, names, addresses, phones, accounts and meters for each house."""
    n = len(houses)
    amenity = houses["amenity"].fillna("")
    building = houses["building"].fillna("yes")
    cls = rng.choice(
        ["residential", "commercial", "agricultural", "industrial"], size=n, p=[0.90, 0.05, 0.04, 0.01]
    ).astype(object)
    cls[
        houses["shop"].notna().to_numpy()
        | amenity.isin(["restaurant", "fuel", "pub", "cafe"]).to_numpy()
        | building.isin(["retail", "commercial"]).to_numpy()
    ] = "commercial"
    cls[
        amenity.isin(
            ["kindergarten", "townhall", "fire_station", "public_building", "place_of_worship", "school"]
        ).to_numpy()
    ] = "municipal"
    cls[building.isin(["farm", "barn"]).to_numpy()] = "agricultural"
    cls[building.isin(["industrial", "warehouse"]).to_numpy()] = "industrial"
    customers = np.ones(n, dtype=np.int64)
    res = cls == "residential"
    big = houses["size_m"].to_numpy() > 25
    u = rng.random(n)
    customers[res & (u < 0.12)] = 2
    multi = res & big & (u > 0.90)
    customers[multi] = rng.integers(3, 9, size=int(multi.sum()))

    critical = np.full(n, "none", dtype=object)
    label = np.full(n, "", dtype=object)
    hxy = proj(houses["lon"].to_numpy(), houses["lat"].to_numpy())
    pxy = proj(places["lon"].to_numpy(), places["lat"].to_numpy())
    _, house_place = cKDTree(pxy).query(hxy)
    village = places["name"].to_numpy()[house_place]

    fire = np.flatnonzero(amenity.to_numpy() == "fire_station")
    critical[fire] = "emergency_services"
    label[fire] = [f"Freiwillige Feuerwehr {village[i]}" for i in fire]

    def free() -> np.ndarray:
        return np.flatnonzero((critical == "none") & (cls != "municipal"))

    by_size = free()[np.argsort(-houses["size_m"].to_numpy()[free()], kind="stable")]
    hospitals = by_size[:2]
    critical[hospitals] = "hospital"
    label[hospitals] = [f"Klinik {village[i]}" for i in hospitals]
    cls[hospitals] = "commercial"
    schools = np.flatnonzero(amenity.isin(["school", "kindergarten"]).to_numpy() & (critical == "none"))
    schools = np.r_[schools, rng.choice(by_size[2:40], size=max(0, 4 - len(schools)), replace=False)].astype(
        int
    )
    critical[schools] = "school"
    label[schools] = [
        ("Kindergarten " if amenity.iloc[i] == "kindergarten" else "Grundschule ") + village[i]
        for i in schools
    ]
    cls[schools] = "municipal"
    for kind, count, title in (
        ("water", 3, "Wasserwerk"),
        ("telecom", 2, "Vermittlungsstelle"),
        ("emergency_services", max(0, 3 - len(fire)), "Rettungswache"),
    ):
        pick = rng.choice(free(), size=count, replace=False)
        critical[pick] = kind
        label[pick] = [f"{title} {village[i]}" for i in pick]
        cls[pick] = "municipal"
        customers[pick] = 1
    customers[critical != "none"] = 1
    res_free = np.flatnonzero((critical == "none") & (cls == "residential"))
    life = rng.choice(res_free, size=max(1, round(LIFE_SUPPORT_SHARE * n)), replace=False)
    critical[life] = "life_support"

    surname = rng.choice(SURNAMES, size=n)
    first = rng.choice(FIRST_NAMES, size=n)
    biz = rng.choice(BUSINESSES, size=n)
    for i in np.flatnonzero(label == ""):
        if cls[i] == "residential":
            label[i] = f"{surname[i]}, {first[i]}"
        elif cls[i] == "commercial":
            label[i] = f"{biz[i]} {surname[i]}"
        elif cls[i] == "agricultural":
            label[i] = f"Hof {surname[i]}"
        elif cls[i] == "industrial":
            label[i] = f"{surname[i]} GmbH & Co. KG"
        else:
            label[i] = f"Gemeinde {village[i]}"

    houses = houses.assign(
        customer_class=cls, customers=customers, critical_kind=critical, name=label, village=village
    )
    houses = _address_points(houses, hxy, basemap, proj)
    houses["address"], houses["postcode"] = _addresses(houses, hxy, road_edges, proj)
    k = np.arange(n)
    houses["account"] = [f"40{x:08d}" for x in rng.permutation(n) * 7 + 1_000_003]
    houses["meter"] = [f"1EMH{x:010d}" for x in k * 13 + 4_500_000]
    mobile = rng.random(n) < 0.3
    digits = rng.integers(100_000, 9_999_999, size=n)
    phone = np.where(
        mobile, [f"+49 151 {d:07d}" for d in digits], [f"+49 921 {d % 1_000_000:06d}" for d in digits]
    )
    houses["phone"] = np.where(rng.random(n) < 0.92, phone, "")
    return houses


def _postcode(lon: float, lat: float) -> str:
    """Approximate postcode by area: Neudrossenfeld (west), Bindlach (north-east), Bayreuth (south-east)."""
    if lon < 11.53:
        return "95512"
    return "95463" if lat >= 49.99 else "95445"


def _address_points(houses: pd.DataFrame, hxy, basemap: Basemap, proj, max_m: float = 25.0) -> pd.DataFrame:
    """Houses without ``addr:*`` tags take the nearest unused OSM address point within ``max_m`` (German mappers
    often put the address on a node inside the outline); tagged postcodes come along."""
    houses = houses.assign(osm_postcode=None)
    points_ = [a for a in basemap.addresses]
    if not points_:
        return houses
    axy = proj([a["lon"] for a in points_], [a["lat"] for a in points_])
    taken = {(s, n) for s, n in zip(houses["street"], houses["housenumber"], strict=True) if isinstance(n, str)}
    street = houses["street"].astype(object).to_numpy().copy()
    number = houses["housenumber"].astype(object).to_numpy().copy()
    postcode = houses["osm_postcode"].to_numpy().copy()
    d, h = cKDTree(hxy).query(axy)
    for k in np.argsort(d, kind="stable"):  # closest pairs first; each house and each address once
        a, i = points_[k], int(h[k])
        key = (a["street"], a["housenumber"])
        if d[k] > max_m:
            break
        if key in taken and not (street[i] == a["street"] and number[i] == a["housenumber"]):
            continue
        if isinstance(number[i], str) and (street[i], number[i]) != key:
            continue
        street[i], number[i], postcode[i] = a["street"], a["housenumber"], a["postcode"] or None
        taken.add(key)
    return houses.assign(street=street, housenumber=number, osm_postcode=postcode)


def _addresses(houses: pd.DataFrame, hxy, road_edges, proj) -> tuple[list[str], list[str]]:
    """``Street Number, Postcode Village`` and the postcode: OSM ``addr:*`` when present, else the nearest named
    street within 120 m (or the village name, as hamlets are addressed) and the next free house number there."""
    named = road_edges.loc[road_edges["name"] != ""]
    ends = named.geometry.get_coordinates(index_parts=False)
    mid = ends.groupby(level=0).mean()  # the mean of an edge's vertices: good enough to find the street
    exy = proj(mid["x"].to_numpy(), mid["y"].to_numpy())
    d, e = cKDTree(exy).query(hxy)
    street = np.where(d <= 120, named["name"].to_numpy()[e], houses["village"].to_numpy())
    street = np.where(houses["street"].notna(), houses["street"].astype(object), street)
    tagged = houses["housenumber"].notna().to_numpy()
    number = houses["housenumber"].astype(object).to_numpy().copy()
    order = np.lexsort((hxy[:, 1], hxy[:, 0]))
    used: dict[str, set[str]] = {}
    for i in np.flatnonzero(tagged):
        used.setdefault(street[i], set()).add(str(number[i]))
    for i in order:
        if tagged[i]:
            continue
        taken = used.setdefault(street[i], set())
        k = len(taken) + 1
        while str(k) in taken:
            k += 1
        number[i] = str(k)
        taken.add(str(k))
    postcode = [
        pc if isinstance(pc, str) and pc else _postcode(lo, la)
        for pc, lo, la in zip(houses["osm_postcode"], houses["lon"], houses["lat"], strict=True)
    ]
    addresses = [
        f"{s} {no}, {pc} {v}" for s, no, pc, v in zip(street, number, postcode, houses["village"], strict=True)
    ]
    return addresses, postcode


# -- the electrical network ----------------------------------------------------------------------------------


def _assemble(
    road_nodes, road_edges, roads, rxy, tree: _Tree, houses, sub_names, rng, proj, places
) -> Network:
    osmid = road_nodes["osmid"].to_numpy(dtype=object)
    lon, lat = road_nodes.geometry.x.to_numpy(), road_nodes.geometry.y.to_numpy()
    node_rows: list[tuple[str, float, float]] = []
    seg_rows: list[dict] = []
    pole = {int(n): f"P{osmid[n]}" for n in tree.nodes}

    # substations and feeders: branches off each root grouped into feeders, heaviest first, lightest feeder
    feeder_of: dict[int, str] = {}
    head_of: dict[str, str] = {}
    feeder_total: dict[str, float] = {}
    subs = []
    for k, (root, place) in enumerate(zip(tree.roots, sub_names, strict=True), start=1):
        sub_id = f"UW{k}"
        bus = f"{sub_id}-BUS"
        pole[root] = bus
        node_rows.append((bus, lon[root], lat[root]))
        subs.append(
            {
                "substation_id": sub_id,
                "name": f"UW {place}",
                "source_node": bus,
                "geometry": points(lon[root], lat[root]),
            }
        )
        branches = sorted(tree.children.get(root, []), key=lambda c: -tree.customers[c])
        n_feeders = min(FEEDERS_PER_SUBSTATION, len(branches))
        loads = np.zeros(n_feeders)
        for c in branches:
            f = int(np.argmin(loads))
            loads[f] += tree.customers[c]
            feeder_of[c] = f"{sub_id}-F{f + 1}"
        for f in range(n_feeders):
            fid = f"{sub_id}-F{f + 1}"
            head = f"{fid}-HEAD"
            head_of[fid] = head
            feeder_total[fid] = loads[f]
            node_rows.append((head, lon[root], lat[root]))
            seg_rows.append(
                {
                    "segment_id": f"{fid}-CB",
                    "from_node": bus,
                    "to_node": head,
                    "kind": "breaker",
                    "phases": "ABC",
                    "feeder_id": fid,
                    "name": f"Abgang {f + 1} {place}",
                    "length_m": 0.0,
                }
            )

    # walk the tree parents-first: feeder, backbone or lateral, device on the edge
    backbone: dict[int, bool] = {}
    phase_of: dict[int, str] = {}
    counters = {"line": 0, "fuse": 0, "recloser": 0, "switch": 0}
    lateral_phase = iter(np.tile(np.array(["A", "B", "C"]), len(tree.nodes)))
    for n in tree.order:
        n = int(n)
        p = int(tree.pred[n])
        if p < 0:
            continue
        if p in tree.roots:
            fid = feeder_of[n]
            parent_id, parent_backbone = head_of[fid], True
        else:
            fid = feeder_of[p]
            feeder_of[n] = fid
            parent_id, parent_backbone = pole[p], backbone[p]
        share = tree.customers[n] / max(feeder_total[fid], 1.0)
        parent_share = (tree.customers[p] / max(feeder_total[fid], 1.0)) if p not in tree.roots else 1.0
        backbone[n] = parent_backbone and share >= BACKBONE_SHARE
        if backbone[n]:
            phase_of[n] = "ABC"
            if parent_share > 0.5 >= share and share >= 0.15:
                kind = "recloser"
            elif parent_share > 0.75 >= share and share >= 0.3:
                kind = "switch"
            else:
                kind = "line"
        elif parent_backbone:
            kind, phase_of[n] = "fuse", str(next(lateral_phase))
        else:
            kind, phase_of[n] = "line", phase_of[p]
        counters[kind] += 1
        seg_id = {"line": "L", "fuse": "SI", "recloser": "RC", "switch": "TS"}[kind] + f"{counters[kind]:04d}"
        node_rows.append((pole[n], lon[n], lat[n]))
        seg_rows.append(
            {
                "segment_id": seg_id,
                "from_node": parent_id,
                "to_node": pole[n],
                "kind": kind,
                "phases": phase_of[n],
                "feeder_id": fid,
                "length_m": tree.edge_length(p, n),
            }
        )

    # normally-open ties: for each pair of feeders, the shortest road route (<= MAX_TIE_M) between their
    # backbones; the route is built as a line from the first feeder ending in an open switch at the second
    node_rows_tie, seg_rows_tie = _ties(roads, tree, feeder_of, backbone, pole, osmid, lon, lat)
    node_rows += node_rows_tie
    seg_rows += seg_rows_tie

    # transformers: each site's houses in chunks of <= 15 customers, nearest-first around the pole
    houses = houses.sort_values(["site", "lat", "lon"], kind="stable").reset_index(drop=True)
    tr_key = houses["site"].to_numpy() * 1000 + _pack(
        houses["site"].to_numpy(), houses["customers"].to_numpy()
    )
    _, tr_index = np.unique(tr_key, return_inverse=True)
    houses["transformer"] = tr_index
    sp_node = np.empty(len(houses), dtype=object)
    for t, grp in houses.groupby("transformer", sort=True):
        site = int(grp["site"].iloc[0])
        tid = f"TR{t + 1:04d}"
        lv = f"{tid}-LV"
        # the low-voltage node sits a few metres from the pole toward its houses
        dx, dy = grp["lon"].mean() - lon[site], grp["lat"].mean() - lat[site]
        norm = max(np.hypot(dx, dy), 1e-9)
        node_rows.append((lv, lon[site] + dx / norm * 8e-5, lat[site] + dy / norm * 8e-5))
        if site in tree.roots:
            fid = f"{pole[site].split('-')[0]}-F1"
            upstream, phases = head_of[fid], "ABC"
        else:
            fid, upstream, phases = feeder_of[site], pole[site], phase_of[site]
        seg_rows.append(
            {
                "segment_id": tid,
                "from_node": upstream,
                "to_node": lv,
                "kind": "transformer",
                "phases": phases,
                "feeder_id": fid,
                "name": f"Trafo {grp['village'].iloc[0]}",
                "length_m": 0.0,
            }
        )
        sp_node[grp.index.to_numpy()] = lv

    nodes = pd.DataFrame(node_rows, columns=["node_id", "lon", "lat"])
    nodes = nodes.assign(geometry=points(nodes[["lon", "lat"]].to_numpy())).drop(columns=["lon", "lat"])
    segments = pd.DataFrame(seg_rows).assign(synthesized=True)  # the roads are real, the utility is generated
    n_sp = len(houses)
    service_points = pd.DataFrame(
        {
            "sp_id": [f"SP{k + 1:05d}" for k in range(n_sp)],
            "node_id": sp_node,
            "account": houses["account"],
            "meter": houses["meter"],
            "address": houses["address"],
            "place": houses["village"],  # the village or hamlet: the public map's named areas
            "postcode": houses["postcode"],
            "phone": houses["phone"],
            "customers": houses["customers"],
            "customer_class": houses["customer_class"],
            "critical_kind": houses["critical_kind"],
            "name": houses["name"],
            "synthesized": True,
            "geometry": points(houses[["lon", "lat"]].to_numpy()),
        }
    )
    depots = _depots(tree, rxy, roads, lon, lat, sub_names)
    net = Network.from_tables(
        {
            "nodes": nodes,
            "segments": segments,
            "service_points": service_points,
            "substations": pd.DataFrame(subs),
            "depots": depots,
            "road_nodes": road_nodes,
            "road_edges": road_edges,
        },
        name=NAME,
    )
    net.attribution = ATTRIBUTION
    return net


def _ties(roads: _Undirected, tree: _Tree, feeder_of, backbone, pole, osmid, lon, lat):
    fed = [n for n in map(int, tree.nodes) if n not in tree.roots]
    feeders = sorted({feeder_of[n] for n in fed})
    members = {
        f: np.array([n for n in fed if feeder_of[n] == f and backbone[n]], dtype=np.int64) for f in feeders
    }
    node_rows, seg_rows = [], []
    k = 0
    for i, fa in enumerate(feeders):
        if not len(members[fa]):
            continue
        dist, pred, _ = dijkstra(
            roads.graph,
            directed=False,
            indices=members[fa],
            min_only=True,
            return_predecessors=True,
            limit=MAX_TIE_M,
        )
        for fb in feeders[i + 1 :]:
            mb = members[fb]
            if not len(mb) or not np.isfinite(dist[mb]).any():
                continue
            b = int(mb[np.argmin(dist[mb])])
            path = [b]
            while pred[path[-1]] >= 0:
                path.append(int(pred[path[-1]]))
            path = path[::-1]  # from feeder fa's backbone to feeder fb's
            k += 1
            ids = [pole[path[0]]] + [f"P{osmid[n]}-NO{k:02d}" for n in path[1:-1]] + [pole[path[-1]]]
            node_rows += [(ids[j], lon[n], lat[n]) for j, n in enumerate(path[1:-1], start=1)]
            for j in range(len(path) - 1):
                last = j == len(path) - 2
                seg_rows.append(
                    {
                        "segment_id": f"NO{k:02d}" if last else f"NO{k:02d}-L{j + 1}",
                        "from_node": ids[j],
                        "to_node": ids[j + 1],
                        "kind": "switch" if last else "line",
                        "normally_open": last,
                        "phases": "ABC",
                        "feeder_id": fa,
                        "name": f"Trennstelle {fa}/{fb}" if last else "",
                        "length_m": tree.edge_length(path[j], path[j + 1]),
                    }
                )
    return node_rows, seg_rows


def _pack(site: np.ndarray, customers: np.ndarray) -> np.ndarray:
    """Transformer number within each site: houses in order, a new transformer when the next house would push
    the current one past MAX_TRANSFORMER_CUSTOMERS (a few thousand houses: a plain loop)."""
    out = np.zeros(len(site), dtype=np.int64)
    load, k = 0, 0
    for i in range(len(site)):
        if i and site[i] != site[i - 1]:
            load, k = 0, 0
        elif load + customers[i] > MAX_TRANSFORMER_CUSTOMERS:
            load, k = 0, k + 1
        load += int(customers[i])
        out[i] = k
    return out


def _depots(tree: _Tree, rxy, roads: _Undirected, lon, lat, sub_names) -> pd.DataFrame:
    """Two depots: the main-road junction about 1.5 km from each substation, toward the territory's middle."""
    middle = rxy[roads.main_component].mean(axis=0)
    cand = np.flatnonzero(roads.main_component & (roads.degree >= 3))
    rows = []
    for k, (root, place) in enumerate(zip(tree.roots, sub_names, strict=True), start=1):
        direction = middle - rxy[root]
        direction = direction / max(np.hypot(*direction), 1.0)
        target = rxy[root] + 1500.0 * direction
        pick = int(cand[np.argmin(np.hypot(*(rxy[cand] - target).T))])
        rows.append(
            {"depot_id": f"D{k}", "name": f"Betriebshof {place}", "geometry": points(lon[pick], lat[pick])}
        )
    return pd.DataFrame(rows)


__all__ = ["ATTRIBUTION", "NAME", "OSM_PATH", "sample_territory"]
