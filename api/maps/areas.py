"""Areas people recognise: towns and villages, with finer areas nested inside them for closer zoom.

Members look for "Bindlach", not "Area 15". Each service point's place comes from its ``place`` column (the village
or hamlet; the sample territory has it from OpenStreetMap) or else from its address (``..., 95463 Bindlach``). The
grid cells of :mod:`api.maps.aggregation` are kept as the building blocks, so no edge ever follows a customer:

1. every cell belongs to the place most of its customers belong to;
2. places serving fewer than ``min_customers`` join the nearest place (named after the larger, "Gemein" becomes
   part of "Bindlach"), until each serves at least that many;
3. inside each place, cells are merged as before into fine areas of at least ``min_customers`` each.

Fine areas nest inside places, so a place's count is exactly the sum of its fine areas' counts: subtracting one
published figure from another never isolates fewer than ``min_customers`` customers.

Without place information every cell is its own place and the result is the plain grid partition.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from api.maps.aggregation import (
    M_PER_DEG_LAT,
    M_PER_DEG_LON_EQUATOR,
    AreaPartition,
    checked_service_points,
    merge_small_units,
)
from gis.network import Network

ADDRESS_PLACE = re.compile(r",\s*(\d{4,5})\s+(.+?)\s*$")
STREET = re.compile(r"^(.+?)\s+\d+\s*[a-zA-Z]?\s*,")


@dataclass(frozen=True)
class NamedAreas:
    """Fine areas (``fine``, an :class:`AreaPartition`) nested in places (``places``, another one over the same
    service points); ``place_of_area[a]`` is fine area ``a``'s place, ``names``/``place_names`` label them,
    ``place_members[p]`` lists every village merged into place ``p`` (for search) and ``postcodes[p]`` its most
    common postcode (may be "")."""

    fine: AreaPartition
    places: AreaPartition
    place_of_area: np.ndarray
    names: list[str]
    place_names: list[str]
    place_members: list[tuple[str, ...]]
    postcodes: list[str]


def place_column(sp: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(place, postcode) per service point as object arrays ("" when unknown)."""
    parsed = sp["address"].fillna("").astype(str).str.extract(ADDRESS_PLACE) if "address" in sp else None

    def column(name: str, group: int) -> np.ndarray:
        # the column if the data has it, else what the address says, else unknown
        if name in sp:
            return sp[name].fillna("").astype(str).to_numpy(dtype=object)
        if parsed is not None:
            return parsed[group].fillna("").to_numpy(dtype=object)
        return np.full(len(sp), "", dtype=object)

    place, postcode = column("place", 1), column("postcode", 0)
    return place, postcode


def named_areas(network: Network, cell_m: float = 500.0, min_customers: int = 10) -> NamedAreas:
    """Places and fine areas of the territory (see the module docstring)."""
    sp, geom = checked_service_points(network, cell_m, min_customers)
    lon, lat = geom.x.to_numpy(), geom.y.to_numpy()
    customers = sp["customers"].to_numpy(dtype=np.int64)
    place, postcode = place_column(sp)
    lat_ref = float(np.round(np.mean(lat)))  # a whole degree: the cell size itself must not encode customer data
    dx = cell_m / (M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat_ref)))
    dy = cell_m / M_PER_DEG_LAT
    ix, iy = np.floor(lon / dx).astype(np.int64), np.floor(lat / dy).astype(np.int64)
    cells, cell_of_sp = np.unique(np.stack([ix, iy], axis=1), axis=0, return_inverse=True)
    cell_of_sp = cell_of_sp.ravel()
    n_cells = len(cells)
    cell_customers = np.bincount(cell_of_sp, weights=customers, minlength=n_cells).astype(np.int64)
    centres = np.stack([(cells[:, 0] + 0.5) * cell_m, (cells[:, 1] + 0.5) * cell_m], axis=1).astype(float)

    # 1. each cell's place: the customer-weighted majority (ties to the name first in order)
    names_all, place_code = np.unique(place, return_inverse=True)
    votes = pd.DataFrame({"cell": cell_of_sp, "place": place_code.ravel(), "w": np.maximum(customers, 1)})
    votes = votes.groupby(["cell", "place"], as_index=False)["w"].sum().sort_values(
        ["cell", "w", "place"], ascending=[True, False, True])
    cell_place = votes.drop_duplicates("cell").sort_values("cell")["place"].to_numpy()
    if not any(names_all):  # no place information: every cell stands alone
        cell_place = np.arange(n_cells)
        names_all = np.array([""] * n_cells, dtype=object)

    # 2. places below the floor join the nearest place
    _, unit_of_cell = np.unique(cell_place, return_inverse=True)
    unit_of_cell = unit_of_cell.ravel()
    n_units = int(unit_of_cell.max()) + 1
    unit_customers = np.bincount(unit_of_cell, weights=cell_customers, minlength=n_units).astype(np.int64)
    w = np.maximum(cell_customers, 1).astype(float)
    unit_centres = np.stack([np.bincount(unit_of_cell, weights=centres[:, k] * w, minlength=n_units)
                             for k in (0, 1)], axis=1) / np.bincount(unit_of_cell, weights=w)[:, None]
    group = merge_small_units(unit_customers, unit_centres, min_customers)
    _, town_of_unit = np.unique(group, return_inverse=True)
    town_of_cell = town_of_unit.ravel()[unit_of_cell]

    # 3. fine areas: cells merged within their town only (so they nest)
    area_of_cell = np.empty(n_cells, dtype=np.int64)
    next_label = 0
    for t in range(int(town_of_cell.max()) + 1):
        members = np.flatnonzero(town_of_cell == t)
        sub = merge_small_units(cell_customers[members], centres[members], min_customers)
        _, local = np.unique(sub, return_inverse=True)
        area_of_cell[members] = local.ravel() + next_label
        next_label += int(local.max()) + 1
    town_of_area = np.zeros(next_label, dtype=np.int64)
    town_of_area[area_of_cell] = town_of_cell

    boxes = shapely.box(cells[:, 0] * dx, cells[:, 1] * dy, (cells[:, 0] + 1) * dx, (cells[:, 1] + 1) * dy)
    fine = _partition(area_of_cell, cell_of_sp, cell_customers, boxes, cells, (dx, dy), min_customers, cell_m)
    towns = _partition(town_of_cell, cell_of_sp, cell_customers, boxes, cells, (dx, dy), min_customers, cell_m)

    # names: a town after its largest place; its members for search; fine areas after their own majority place
    town_names, town_members, town_postcodes = [], [], []
    for t in range(towns.n_areas):
        units = np.flatnonzero(town_of_unit.ravel() == t)
        by_size = units[np.argsort(-unit_customers[units], kind="stable")]
        labels = [str(names_all[cell_place[np.flatnonzero(unit_of_cell == u)[0]]]) for u in by_size]
        town_members.append(tuple(x for x in labels if x))
        town_names.append(labels[0] or "")
        pcs = Counter(p for p in postcode[towns.area_of_sp == t] if p)
        town_postcodes.append(pcs.most_common(1)[0][0] if pcs else "")
    street = (sp["address"].fillna("").astype(str).str.extract(STREET)[0].fillna("").to_numpy(dtype=object)
              if "address" in sp else np.full(len(sp), "", dtype=object))
    fine_names = _fine_names(fine, town_of_area, town_names, place, street, customers)
    town_names = [n or f"Area {i + 1}" for i, n in enumerate(town_names)]
    return NamedAreas(fine=fine, places=towns, place_of_area=town_of_area, names=fine_names,
                      place_names=town_names, place_members=town_members, postcodes=town_postcodes)


def _partition(label_of_cell, cell_of_sp, cell_customers, boxes, cells, cell_deg, k, cell_m) -> AreaPartition:
    n = int(label_of_cell.max()) + 1
    served = np.bincount(label_of_cell, weights=cell_customers, minlength=n).astype(np.int64)
    order = np.argsort(label_of_cell, kind="stable")
    bounds = np.searchsorted(label_of_cell[order], np.arange(n + 1))
    geometry = [shapely.coverage_union_all(boxes[order[bounds[a]:bounds[a + 1]]]) for a in range(n)]
    centre_xy = np.array([[c.x, c.y] for c in shapely.centroid(geometry)])
    cell_area = {(int(cx), int(cy)): int(a) for (cx, cy), a in zip(cells.tolist(), label_of_cell.tolist(),
                                                                    strict=True)}
    return AreaPartition(area_of_sp=label_of_cell[cell_of_sp].astype(np.int32), customers_served=served,
                         geometry=geometry, centre_xy=centre_xy, cell_area=cell_area, origin=(0.0, 0.0),
                         cell_deg=cell_deg, min_customers=k, cell_m=cell_m, meets_minimum=bool(served.min() >= k))


def _fine_names(fine: AreaPartition, town_of_area, town_names, place, street, customers) -> list[str]:
    """A fine area is its majority place ("Altenplos"); where a place has several, also its main street
    ("Altenplos – Langheimer Weg"), which people know better than a compass point; numbered if still the same."""
    def majority(labels: np.ndarray, weights: np.ndarray) -> str:
        votes: Counter = Counter()
        for x, c in zip(labels.tolist(), weights.tolist(), strict=True):
            if x:
                votes[x] += c
        return sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if votes else ""

    order = np.argsort(fine.area_of_sp, kind="stable")
    bounds = np.searchsorted(fine.area_of_sp[order], np.arange(fine.n_areas + 1))
    base, main_street = [], []
    for a in range(fine.n_areas):
        rows = order[bounds[a]:bounds[a + 1]]
        base.append(majority(place[rows], customers[rows]) or town_names[town_of_area[a]] or f"Area {a + 1}")
        main_street.append(majority(street[rows], customers[rows]))
    counts = Counter(base)
    names = [f"{b} – {s}" if counts[b] > 1 and s and s != b else b for b, s in zip(base, main_street, strict=True)]
    counts, seen = Counter(names), Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if counts[name] == 1 else f"{name} ({seen[name]})")
    return out
