"""Synthetic territories of any size: towns on a jittered grid, streets, and a proportionate feeder network.

:func:`generate_territory` is fully vectorised (numpy over transformers, laterals and feeders; no per-customer
Python loop), so a million customers take about 12 s (and ~2 GB). The layout, in seeded steps:

1. Customers -> transformers of 1-15 customers; each transformer's first service point may be a multi-customer
   building (apartments), the rest are single houses.
2. Transformers -> laterals (a side street of 3-12 pole transformers behind one fuse) -> feeders of about
   :data:`CUSTOMERS_PER_FEEDER` customers -> substations of 3-6 feeders.
3. Substations sit on a jittered square grid :data:`SUBSTATION_SPACING_M` apart; each is a town. Its feeders leave
   at evenly spread bearings; a feeder's backbone is a gently curving main road (one backbone pole per lateral,
   :data:`BACKBONE_SPAN_M` apart), laterals are side streets alternating left and right, houses line the streets.
4. Devices: breaker per feeder, a recloser at mid-backbone (and at three quarters on long feeders), a closed
   sectionalizing switch at a quarter, a fuse at each lateral tap, one pole transformer per lateral pole, and
   normally-open ties joining the end of each feeder to the end of the next one round its substation.
5. Roads: every backbone and side street is a two-way road (poles stand on road nodes); arterials join
   neighbouring substations on the grid; tie routes are roads too. Depots: one per ~6 substations (at least 2).

Every generated element is marked ``synthesized``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from shapely import linestrings, points

from data.sample import FIRST_NAMES, SURNAMES, name_list
from gis.network import Network

CUSTOMERS_PER_FEEDER = 2200
BACKBONE_SPAN_M = 140.0
LATERAL_SPAN_M = 45.0
HOUSE_OFFSET_M = 18.0
SUBSTATION_SPACING_M = 16_000.0
ORIGIN = (10.0, 50.0)  # lon, lat of the grid's south-west corner (central Germany: plausible, but fictitious)
M_PER_DEG_LAT = 111_320.0
LIFE_SUPPORT_SHARE = 0.005

_TOWN_HEADS = name_list("Alt|Neu|Ober|Unter|Groß|Klein|Hohen|Nieder|Bad |Sankt |Mittel|Wald", sep="|")
_TOWN_STEMS = name_list("bach berg dorf feld hausen heim hof kirchen reuth stadt tal au brunn furt wies roda")
_TOWN_ROOTS = name_list(
    "Linden Eichen Birken Tann Roth Weiß Stein Mühl Sonnen Hasel Kreuz Lauter Wolfs Hirsch Buch Erlen "
    "Rosen Schön Fried Ahorn"
)
_STREETS = name_list(
    "Lindenweg|Bergstraße|Schulstraße|Gartenstraße|Bahnhofstraße|Kirchweg|Waldstraße|Ringstraße|Wiesenweg|"
    "Am Bach|Feldstraße|Birkenweg|Mühlweg|Rosenstraße|Sonnenhang|Am Anger|Eichenweg|Talstraße|Dorfstraße|"
    "Ahornweg|Fliederweg|Am Sportplatz|Brunnenstraße|Hofweg|Tulpenweg|Kastanienallee|Steinweg|Am Hang|"
    "Raiffeisenstraße|Friedhofstraße",
    sep="|",
)
_CLASSES = np.array(
    ["residential", "commercial", "agricultural", "industrial", "municipal", "lighting"], dtype=object
)
_CLASS_P = (0.885, 0.06, 0.03, 0.01, 0.01, 0.005)
#: (critical kind, customers per site, name prefix): how often each critical site occurs.
_CRITICAL = (
    ("hospital", 60_000, "Klinikum"),
    ("school", 2_500, "Grundschule"),
    ("water", 6_000, "Wasserwerk"),
    ("emergency_services", 5_000, "Feuerwache"),
    ("telecom", 15_000, "Vermittlungsstelle"),
)


def generate_territory(customers: int, seed: int = 7, progress: bool = False) -> Network:
    """A synthetic territory with about ``customers`` customers (exactly that many). See the module docstring."""
    if not isinstance(customers, (int, np.integer)) or customers < 1:
        raise ValueError(f"customers must be a positive integer, got {customers!r}")
    rng = np.random.default_rng(seed)
    bar = _Progress(progress, total=6)

    # 1. transformers and their service points ---------------------------------------------------------------
    tr_cust = _draw_transformer_customers(rng, int(customers))
    n_tr = len(tr_cust)
    apartments = (tr_cust >= 3) & (rng.random(n_tr) < 0.15)
    extra = np.where(apartments, rng.integers(1, np.maximum(tr_cust - 1, 2)), 0)
    extra = np.minimum(extra, tr_cust - 1)
    tr_sps = tr_cust - extra  # first sp of a transformer holds 1 + extra customers
    bar.step("transformers")

    # 2. laterals -> feeders -> substations -----------------------------------------------------------------
    lat_size = _partition(rng, n_tr, 3, 12)
    n_lat = len(lat_size)
    lat_first_tr = np.r_[0, np.cumsum(lat_size)[:-1]]
    lat_cust = np.add.reduceat(tr_cust, lat_first_tr)
    n_feeders = max(1, int(round(customers / CUSTOMERS_PER_FEEDER)))
    lat_feeder = np.minimum((np.cumsum(lat_cust) - lat_cust / 2) * n_feeders // customers, n_feeders - 1)
    lat_feeder = lat_feeder.astype(np.int64)
    n_feeders = int(lat_feeder.max()) + 1
    feeders_per_sub = _partition(rng, n_feeders, 3, 6) if n_feeders >= 3 else np.array([n_feeders])
    n_subs = len(feeders_per_sub)
    feeder_sub = np.repeat(np.arange(n_subs), feeders_per_sub)
    feeder_rank = np.arange(n_feeders) - np.repeat(np.r_[0, np.cumsum(feeders_per_sub)[:-1]], feeders_per_sub)
    bar.step("feeders")

    # 3. geometry (metres east/north of ORIGIN) -------------------------------------------------------------
    grid = int(np.ceil(np.sqrt(n_subs)))
    sub_xy = (np.c_[np.arange(n_subs) % grid, np.arange(n_subs) // grid] + 0.5) * SUBSTATION_SPACING_M
    sub_xy = sub_xy + rng.uniform(-0.15, 0.15, size=(n_subs, 2)) * SUBSTATION_SPACING_M
    bearing = 2 * np.pi * feeder_rank / feeders_per_sub[feeder_sub] + rng.uniform(-0.2, 0.2, n_feeders)

    # backbone pole k of a feeder = tap of its k-th lateral; heading wanders a little along the way
    lat_rank = (
        np.arange(n_lat) - np.r_[0, np.cumsum(np.bincount(lat_feeder, minlength=n_feeders))[:-1]][lat_feeder]
    )
    turn = rng.normal(0.0, 0.04, n_lat)
    turn[lat_rank == 0] = 0.0
    heading = bearing[lat_feeder] + _group_cumsum(turn, lat_feeder)
    step = np.c_[np.cos(heading), np.sin(heading)] * BACKBONE_SPAN_M
    bb_xy = sub_xy[feeder_sub[lat_feeder]] + np.c_[np.cos(bearing), np.sin(bearing)][lat_feeder] * 120.0
    bb_xy = bb_xy + np.c_[_group_cumsum(step[:, 0], lat_feeder), _group_cumsum(step[:, 1], lat_feeder)]
    side = np.where(lat_rank % 2 == 0, 1.0, -1.0)
    normal = np.c_[-np.sin(heading), np.cos(heading)] * side[:, None]

    tr_lat = np.repeat(np.arange(n_lat), lat_size)
    tr_rank = np.arange(n_tr) - lat_first_tr[tr_lat]
    tr_xy = bb_xy[tr_lat] + normal[tr_lat] * (LATERAL_SPAN_M * (tr_rank + 1))[:, None]
    lv_xy = tr_xy + np.c_[np.cos(heading), np.sin(heading)][tr_lat] * 8.0
    head_xy = sub_xy[feeder_sub] + np.c_[np.cos(bearing), np.sin(bearing)] * 30.0
    bar.step("geometry")

    # 4. nodes and segments -------------------------------------------------------------------------------------
    net_tables = _electrical(rng, _Layout(n_subs, n_feeders, n_lat, n_tr, feeder_sub, lat_feeder, lat_rank,
                                          lat_first_tr, tr_lat, sub_xy, head_xy, bb_xy, tr_xy, lv_xy))
    bar.step("network")

    # 5. service points ---------------------------------------------------------------------------------------
    sp = _service_points(rng, tr_cust, tr_sps, tr_lat, lat_feeder, feeder_sub, lv_xy, tr_xy, heading, n_subs)
    bar.step("service points")

    # 6. roads and depots ---------------------------------------------------------------------------------------
    road_nodes, road_edges = _roads(
        n_subs,
        grid,
        n_feeders,
        feeder_sub,
        lat_feeder,
        lat_rank,
        lat_size,
        lat_first_tr,
        tr_lat,
        sub_xy,
        bb_xy,
        tr_xy,
        net_tables["tie_pairs"],
    )
    depots = _depots(sub_xy)
    bar.step("roads")
    bar.close()

    tables = {k: v for k, v in net_tables.items() if k != "tie_pairs"}
    tables.update(service_points=sp, road_nodes=road_nodes, road_edges=road_edges, depots=depots)
    return Network.from_tables(tables, name=f"synthetic {customers:,} customers (seed {seed})")


# -- drawing sizes -------------------------------------------------------------------------------------------


def _draw_transformer_customers(rng, customers: int) -> np.ndarray:
    """Customers per transformer in 1..15 (mode ~4-6, a rural tail of 1-2), summing to exactly ``customers``."""
    est = int(customers / 5.5 * 1.2) + 10
    draw = np.clip(rng.binomial(14, 0.33, size=est) + 1, 1, 15)
    cum = np.cumsum(draw)
    n = int(np.searchsorted(cum, customers)) + 1
    draw = draw[:n].copy()
    draw[-1] -= int(cum[n - 1] - customers)
    if draw[-1] < 1:  # cannot happen with searchsorted's left bisection, but keep the invariant explicit
        raise AssertionError("transformer draw overshoot")
    return draw.astype(np.int64)


def _partition(rng, total: int, lo: int, hi: int) -> np.ndarray:
    """Split ``total`` items into groups of ``lo``..``hi`` (the last group may absorb a remainder < lo)."""
    sizes = rng.integers(lo, hi + 1, size=total // lo + 1)
    cum = np.cumsum(sizes)
    n = int(np.searchsorted(cum, total)) + 1
    sizes = sizes[:n].copy()
    sizes[-1] -= int(cum[n - 1] - total)
    if n > 1 and sizes[-1] < lo:
        sizes[-2] += sizes[-1]
        sizes = sizes[:-1]
    return sizes


def _group_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each new value of a sorted ``group`` array."""
    total = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    offset = np.repeat(np.r_[0.0, total[starts[1:] - 1]], np.diff(np.r_[starts, len(values)]))
    return total - offset


def _lonlat(xy: np.ndarray) -> np.ndarray:
    lat = ORIGIN[1] + xy[:, 1] / M_PER_DEG_LAT
    lon = ORIGIN[0] + xy[:, 0] / (M_PER_DEG_LAT * np.cos(np.radians(ORIGIN[1])))
    return np.c_[lon, lat]


def _ids(prefix: str, n: int, width: int = 7) -> np.ndarray:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


# -- the electrical network ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """Counts, index arrays and planar coordinates (m) of the generated feeders: what step 3 hands to step 4."""

    n_subs: int
    n_feeders: int
    n_lat: int
    n_tr: int
    feeder_sub: np.ndarray
    lat_feeder: np.ndarray
    lat_rank: np.ndarray
    lat_first_tr: np.ndarray
    tr_lat: np.ndarray
    sub_xy: np.ndarray
    head_xy: np.ndarray
    bb_xy: np.ndarray
    tr_xy: np.ndarray
    lv_xy: np.ndarray


def _electrical(rng, layout: _Layout) -> dict:
    """Nodes, segments and substations. Node blocks: substation buses, feeder heads, backbone poles (one per
    lateral), lateral poles (one per transformer), transformer low-voltage nodes."""
    L = layout
    n_subs, n_feeders, n_lat, n_tr = L.n_subs, L.n_feeders, L.n_lat, L.n_tr
    feeder_sub, lat_feeder, lat_rank, lat_first_tr, tr_lat = (
        L.feeder_sub, L.lat_feeder, L.lat_rank, L.lat_first_tr, L.tr_lat)
    sub_xy, head_xy, bb_xy, tr_xy, lv_xy = L.sub_xy, L.head_xy, L.bb_xy, L.tr_xy, L.lv_xy
    sub_ids = _ids("SUB", n_subs, 4)
    bus = np.array([f"{s}-BUS" for s in sub_ids], dtype=object)
    feeder_ids = np.array([f"FDR{i:05d}" for i in range(n_feeders)], dtype=object)
    head = np.array([f"{f}-HEAD" for f in feeder_ids], dtype=object)
    bb = _ids("B", n_lat)
    pole = _ids("P", n_tr)
    lv = _ids("LV", n_tr)
    nodes = pd.DataFrame(
        {
            "node_id": np.concatenate([bus, head, bb, pole, lv]),
            "geometry": points(_lonlat(np.concatenate([sub_xy, head_xy, bb_xy, tr_xy, lv_xy]))),
        }
    )

    # breakers
    frm = [bus[feeder_sub]]
    to = [head]
    kind = [np.full(n_feeders, "breaker", dtype=object)]
    seg_id = [np.array([f"{f}-CB" for f in feeder_ids], dtype=object)]
    feeder = [feeder_ids]
    phases = [np.full(n_feeders, "ABC", dtype=object)]
    open_ = [np.zeros(n_feeders, dtype=bool)]

    # backbone spans: previous backbone pole (or the feeder head) -> this one; reclosers at 1/2 (and 3/4)
    lats_in_feeder = np.bincount(lat_feeder, minlength=n_feeders)
    prev = np.where(lat_rank == 0, head[lat_feeder], np.r_[bb[:1], bb[:-1]])
    frac = lat_rank / np.maximum(lats_in_feeder[lat_feeder], 1)
    n_in = lats_in_feeder[lat_feeder]
    rec = (lat_rank == n_in // 2) & (n_in >= 4) | (lat_rank == (3 * n_in) // 4) & (n_in >= 24)
    sect = (lat_rank == n_in // 4) & (n_in >= 8)
    k = np.where(rec, "recloser", np.where(sect, "switch", "line")).astype(object)
    frm.append(prev)
    to.append(bb)
    kind.append(k)
    seg_id.append(
        np.array(
            [
                f"{p}{i:07d}"
                for p, i in zip(np.where(rec, "RC", np.where(sect, "SW", "BL")), range(n_lat), strict=True)
            ],
            dtype=object,
        )
    )
    feeder.append(feeder_ids[lat_feeder])
    phases.append(np.full(n_lat, "ABC", dtype=object))
    open_.append(np.zeros(n_lat, dtype=bool))
    del frac

    # laterals: fuse from the backbone pole to the first lateral pole, lines between lateral poles
    lat_phase = np.array(["A", "B", "C"], dtype=object)[rng.integers(0, 3, n_lat)]
    tr_rank = np.arange(n_tr) - lat_first_tr[tr_lat]
    first = tr_rank == 0
    frm.append(np.where(first, bb[tr_lat], np.r_[pole[:1], pole[:-1]]))
    to.append(pole)
    kind.append(np.where(first, "fuse", "line").astype(object))
    seg_id.append(
        np.where(
            first,
            np.char.add("FU", np.char.mod("%07d", tr_lat)).astype(object),
            np.char.add("LL", np.char.mod("%07d", np.arange(n_tr))).astype(object),
        )
    )
    feeder.append(feeder_ids[lat_feeder[tr_lat]])
    phases.append(lat_phase[tr_lat])
    open_.append(np.zeros(n_tr, dtype=bool))

    # transformers
    frm.append(pole)
    to.append(lv)
    kind.append(np.full(n_tr, "transformer", dtype=object))
    seg_id.append(_ids("TR", n_tr))
    feeder.append(feeder_ids[lat_feeder[tr_lat]])
    phases.append(lat_phase[tr_lat])
    open_.append(np.zeros(n_tr, dtype=bool))

    # ties, normally open: the end of each feeder to the end of the next feeder round its substation
    last_bb = np.r_[np.flatnonzero(np.diff(lat_feeder)), n_lat - 1]
    count = np.bincount(feeder_sub, minlength=n_subs)[feeder_sub]
    first_of_sub = np.r_[0, np.cumsum(np.bincount(feeder_sub, minlength=n_subs))[:-1]][feeder_sub]
    rank = np.arange(n_feeders) - first_of_sub
    nxt = np.where(rank < count - 1, np.arange(n_feeders) + 1, first_of_sub)
    keep = (count >= 3) | ((count == 2) & (rank == 0))
    if keep.any():
        a, b = last_bb[np.flatnonzero(keep)], last_bb[nxt[keep]]
        frm.append(bb[a])
        to.append(bb[b])
        kind.append(np.full(len(a), "switch", dtype=object))
        seg_id.append(_ids("TIE", len(a), 5))
        feeder.append(feeder_ids[lat_feeder[a]])
        phases.append(np.full(len(a), "ABC", dtype=object))
        open_.append(np.ones(len(a), dtype=bool))
        tie_pairs = (a, b)
    else:
        tie_pairs = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))

    segments = pd.DataFrame(
        {
            "segment_id": np.concatenate(seg_id),
            "from_node": np.concatenate(frm),
            "to_node": np.concatenate(to),
            "kind": np.concatenate(kind),
            "normally_open": np.concatenate(open_),
            "phases": np.concatenate(phases),
            "feeder_id": np.concatenate(feeder),
        }
    )
    segments["synthesized"] = True
    node_xy = np.concatenate([sub_xy, head_xy, bb_xy, tr_xy, lv_xy])
    pos = pd.Index(nodes["node_id"])
    ia, ib = pos.get_indexer(segments["from_node"]), pos.get_indexer(segments["to_node"])
    segments["length_m"] = np.hypot(*(node_xy[ia] - node_xy[ib]).T)
    segments["geometry"] = linestrings(np.stack([_lonlat(node_xy[ia]), _lonlat(node_xy[ib])], axis=1))

    towns = _town_names(rng, n_subs)
    substations = pd.DataFrame(
        {
            "substation_id": sub_ids,
            "name": [f"UW {t}" for t in towns],
            "source_node": bus,
            "geometry": points(_lonlat(sub_xy)),
        }
    )
    return {"nodes": nodes, "segments": segments, "substations": substations, "tie_pairs": tie_pairs}


def _town_names(rng, n: int) -> list[str]:
    heads = rng.choice(_TOWN_HEADS, n)
    roots = rng.choice(_TOWN_ROOTS, n)
    stems = rng.choice(_TOWN_STEMS, n)
    names = [
        f"{h}{r.lower() if not h.endswith(' ') else r}{s}"
        for h, r, s in zip(heads, roots, stems, strict=True)
    ]
    seen: dict[str, int] = {}
    out = []
    for name in names:  # n is the substation count (hundreds at most): a loop is fine here
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return out


# -- customers ---------------------------------------------------------------------------------------------------


def _service_points(rng, tr_cust, tr_sps, tr_lat, lat_feeder, feeder_sub, lv_xy, tr_xy, heading, n_subs):
    n_tr = len(tr_cust)
    n_sp = int(tr_sps.sum())
    sp_tr = np.repeat(np.arange(n_tr), tr_sps)
    first_sp = np.r_[0, np.cumsum(tr_sps)[:-1]]
    rank = np.arange(n_sp) - first_sp[sp_tr]
    customers = np.ones(n_sp, dtype=np.int64)
    customers[first_sp] = tr_cust - tr_sps + 1

    # houses along the side street: both sides, spread over the span around their transformer pole
    along = np.c_[np.cos(heading), np.sin(heading)][tr_lat[sp_tr]]
    lateral_dir = tr_xy[sp_tr] - lv_xy[sp_tr]
    spread = (rank - tr_sps[sp_tr] / 2) * (30.0 / np.maximum(tr_sps[sp_tr], 1))
    side = np.where(rank % 2 == 0, 1.0, -1.0)
    xy = lv_xy[sp_tr] + along * (side * HOUSE_OFFSET_M)[:, None] + lateral_dir / 8.0 * spread[:, None]
    xy += rng.normal(0, 3.0, size=xy.shape)

    cls = _CLASSES[rng.choice(len(_CLASSES), size=n_sp, p=_CLASS_P)]
    critical = np.full(n_sp, "none", dtype=object)
    names = np.empty(n_sp, dtype=object)
    towns = _town_names(np.random.default_rng(rng.integers(1 << 31)), n_subs)
    town = np.array(towns, dtype=object)[feeder_sub[lat_feeder[tr_lat[sp_tr]]]]
    customers_total = int(customers.sum())
    chosen = np.zeros(n_sp, dtype=bool)
    for kind, per, title in _CRITICAL:
        count = max(1, customers_total // per) if kind != "hospital" else max(2, customers_total // per)
        pick = rng.choice(np.flatnonzero(~chosen), size=min(count, int((~chosen).sum())), replace=False)
        chosen[pick] = True
        critical[pick] = kind
        cls[pick] = "commercial" if kind == "hospital" else "municipal"
        names[pick] = np.char.add(f"{title} ", town[pick].astype(str)).astype(object)
    residential = np.flatnonzero((cls == "residential") & ~chosen)
    life = rng.choice(
        residential, size=min(len(residential), max(1, round(LIFE_SUPPORT_SHARE * n_sp))), replace=False
    )
    critical[life] = "life_support"

    surname = np.array(SURNAMES, dtype=object)[rng.integers(0, len(SURNAMES), n_sp)]
    first = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n_sp)]
    person = surname + ", " + first
    firm = surname + np.where(cls == "industrial", " GmbH", np.where(cls == "agricultural", " (Hof)", " KG"))
    unnamed = names == None  # noqa: E711  (object array: elementwise comparison)
    names[unnamed] = np.where(
        cls[unnamed] == "residential",
        person[unnamed],
        np.where(cls[unnamed] == "municipal", "Gemeinde " + town[unnamed], firm[unnamed]),
    )

    street = np.array(_STREETS, dtype=object)[tr_lat[sp_tr] % len(_STREETS)]
    sp_lat = tr_lat[sp_tr]
    lat_first_sp = np.r_[0, np.flatnonzero(np.diff(sp_lat)) + 1]
    number = np.arange(n_sp) - np.repeat(lat_first_sp, np.diff(np.r_[lat_first_sp, n_sp])) + 1
    postcode = (10_000 + feeder_sub[lat_feeder[tr_lat[sp_tr]]] * 7 % 89_000).astype(str)
    sp_ids = _ids("SP", n_sp, 8)
    frame = pd.DataFrame(
        {
            "sp_id": sp_ids,
            "node_id": np.char.add("LV", np.char.mod("%07d", sp_tr)).astype(object),
            "account": np.char.add("AC", np.char.mod("%09d", rng.permutation(n_sp))).astype(object),
            "meter": np.char.add("M", np.char.mod("%09d", np.arange(n_sp) * 7 + 100_000)).astype(object),
            "address": street + " " + number.astype(str) + ", " + postcode + " " + town,
            "phone": np.where(
                rng.random(n_sp) < 0.9,
                np.char.add("+49 30 ", np.char.mod("%08d", rng.integers(0, 10**8, n_sp))),
                "",
            ),
            "customers": customers,
            "customer_class": cls,
            "critical_kind": critical,
            "name": names,
            "geometry": points(_lonlat(xy)),
        }
    )
    frame["synthesized"] = True
    return frame


def tr_rank_in_lateral(tr_lat: np.ndarray, n_tr: int) -> np.ndarray:
    """Position of each transformer within its lateral (0 = at the tap)."""
    starts = np.r_[0, np.flatnonzero(np.diff(tr_lat)) + 1]
    return np.arange(n_tr) - np.repeat(starts, np.diff(np.r_[starts, n_tr]))


# -- roads and depots ---------------------------------------------------------------------------------------------


def _roads(
    n_subs,
    grid,
    n_feeders,
    feeder_sub,
    lat_feeder,
    lat_rank,
    lat_size,
    lat_first_tr,
    tr_lat,
    sub_xy,
    bb_xy,
    tr_xy,
    tie_pairs,
):
    """Two-way roads: backbones (tertiary), side streets (residential), ties (unclassified) and a grid of
    arterials between neighbouring substations (secondary, broken every ~1 km so they have junctions)."""
    n_lat, n_tr = len(bb_xy), len(tr_xy)
    # road node blocks: substations, backbone poles, lateral poles, arterial vertices
    sub_r = np.arange(n_subs)
    bb_r = n_subs + np.arange(n_lat)
    tr_r = n_subs + n_lat + np.arange(n_tr)
    us, vs, hw = [], [], []
    prev_bb = np.where(lat_rank == 0, sub_r[feeder_sub[lat_feeder]], np.r_[bb_r[:1], bb_r[:-1]])
    us.append(prev_bb), vs.append(bb_r), hw.append(np.full(n_lat, "tertiary", dtype=object))
    first = tr_rank_in_lateral(tr_lat, n_tr) == 0
    prev_tr = np.where(first, bb_r[tr_lat], np.r_[tr_r[:1], tr_r[:-1]])
    us.append(prev_tr), vs.append(tr_r), hw.append(np.full(n_tr, "residential", dtype=object))
    a, b = tie_pairs
    us.append(bb_r[a]), vs.append(bb_r[b]), hw.append(np.full(len(a), "unclassified", dtype=object))

    # arterials: substation to its east and north neighbours, subdivided into ~1 km pieces
    col = sub_r % grid
    pairs = [(s, s + 1) for s in sub_r if col[s] + 1 < grid and s + 1 < n_subs]
    pairs += [(s, s + grid) for s in sub_r if s + grid < n_subs]
    xy_blocks = [sub_xy, bb_xy, tr_xy]
    next_id = n_subs + n_lat + n_tr
    pieces = max(1, int(SUBSTATION_SPACING_M // 1000))
    if pairs:
        pa, pb = np.array(pairs).T
        t = (np.arange(1, pieces) / pieces)[None, :, None]
        mids = sub_xy[pa][:, None, :] * (1 - t) + sub_xy[pb][:, None, :] * t  # (pairs, pieces-1, 2)
        mid_ids = next_id + np.arange(len(pa) * (pieces - 1)).reshape(len(pa), pieces - 1)
        chain = np.concatenate([pa[:, None], mid_ids, pb[:, None]], axis=1)
        us.append(chain[:, :-1].ravel()), vs.append(chain[:, 1:].ravel())
        hw.append(np.full(chain[:, 1:].size, "secondary", dtype=object))
        xy_blocks.append(mids.reshape(-1, 2))
    node_xy = np.concatenate(xy_blocks)
    u, v, highway = np.concatenate(us), np.concatenate(vs), np.concatenate(hw)
    ll = _lonlat(node_xy)
    osmid = np.char.add("R", np.char.mod("%08d", np.arange(len(node_xy)))).astype(object)
    road_nodes = pd.DataFrame({"osmid": osmid, "geometry": points(ll)})

    length = np.hypot(*(node_xy[u] - node_xy[v]).T)
    speed = (
        pd.Series(highway)
        .map({"tertiary": 60.0, "residential": 30.0, "unclassified": 45.0, "secondary": 70.0})
        .to_numpy()
    )
    both_u, both_v = np.r_[u, v], np.r_[v, u]  # two-way: one row per direction
    length2, speed2, hw2 = np.r_[length, length], np.r_[speed, speed], np.r_[highway, highway]
    road_edges = pd.DataFrame(
        {
            "u": osmid[both_u],
            "v": osmid[both_v],
            "highway": hw2,
            "length_m": length2,
            "speed_kph": speed2,
            "travel_s": length2 / (speed2 / 3.6),
            "oneway": False,
            "name": "",
            "geometry": linestrings(np.stack([ll[both_u], ll[both_v]], axis=1)),
        }
    )
    return road_nodes, road_edges


def _depots(sub_xy: np.ndarray) -> pd.DataFrame:
    n = max(2, int(np.ceil(len(sub_xy) / 6)))
    pick = np.linspace(0, len(sub_xy) - 1, n).round().astype(int)
    xy = sub_xy[pick] + np.array([400.0, 400.0])
    return pd.DataFrame(
        {
            "depot_id": [f"DEP{i + 1:03d}" for i in range(n)],
            "name": [f"Betriebshof {i + 1}" for i in range(n)],
            "geometry": points(_lonlat(xy)),
        }
    )


class _Progress:
    """A tqdm bar over the generation stages when asked for, silent otherwise."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="generating territory", unit="stage")

    def step(self, what: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(what)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
