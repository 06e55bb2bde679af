"""Privacy-safe outage areas for the public map.

Members see outages by area, never by address, name or exact location. The territory is cut into a fixed grid of
square cells (``cell_m`` metres; the grid is anchored on multiples of the cell size, not on any customer, so a cell
edge never reveals a coordinate) and every cell serving fewer than ``min_customers`` customers is merged with its
nearest neighbour until each area serves at least that many — k-anonymity on customers served: whatever the map
says about an area, it cannot single out one household. The partition depends only on the network, not on who is
out, so comparing two map updates reveals no more than either does alone.

:func:`partition_areas` builds the partition once per network; :func:`aggregate_outages` rolls the live events up
into per-area counts (customers out, percent out, causes, furthest crew status, ETR range) in numpy.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import shapely

from api.maps.state import CREW_STATUSES, MapEvent
from gis.network import Network
from outage import figures

#: Metres per degree of latitude (WGS84 mean); longitude degrees shrink with cos(latitude).
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LON_EQUATOR = 111_320.0


@dataclass(frozen=True)
class AreaPartition:
    """Service points grouped into areas that each serve at least ``min_customers`` customers.

    ``area_of_sp[k]`` is the area of service point row ``k``; ``customers_served[a]`` and ``geometry[a]`` (a
    shapely (Multi)Polygon in lon/lat made of whole grid cells) describe area ``a``. ``meets_minimum`` is False
    only when the whole territory serves fewer than ``min_customers`` (then it is one area and the caller decides).
    """

    area_of_sp: np.ndarray
    customers_served: np.ndarray
    geometry: list
    centre_xy: np.ndarray  # area centres (lon, lat) of the cell boxes, for placing events without service points
    cell_area: dict[tuple[int, int], int]
    origin: tuple[float, float]
    cell_deg: tuple[float, float]
    min_customers: int
    cell_m: float
    meets_minimum: bool

    @property
    def n_areas(self) -> int:
        return len(self.customers_served)

    def area_at(self, lon: float, lat: float) -> int:
        """The area whose cell holds the point, else the area with the nearest centre."""
        key = (math.floor((lon - self.origin[0]) / self.cell_deg[0]),
               math.floor((lat - self.origin[1]) / self.cell_deg[1]))
        area = self.cell_area.get(key)
        if area is not None:
            return area
        d = (self.centre_xy[:, 0] - lon) ** 2 * math.cos(math.radians(lat)) ** 2 + (self.centre_xy[:, 1] - lat) ** 2
        return int(np.argmin(d))


def checked_service_points(network: Network, cell_m: float, min_customers: int):
    """(service points, their geometry) after checking the partition's inputs; ValueError names the problem."""
    if cell_m <= 0:
        raise ValueError(f"cell_m must be positive, got {cell_m}")
    if min_customers < 1:
        raise ValueError(f"min_customers must be at least 1, got {min_customers}")
    sp = network.service_points
    if len(sp) == 0:
        raise ValueError("the network has no service points: there is nothing to aggregate")
    geom = sp.geometry
    if geom.isna().any() or geom.is_empty.any():
        missing = sp.loc[geom.isna() | geom.is_empty, "sp_id"].iloc[0]
        raise ValueError(f"service point {missing!r} has no location; the public map needs every one placed")
    return sp, geom


def partition_areas(network: Network, cell_m: float = 1000.0, min_customers: int = 10) -> AreaPartition:
    """Cut the territory's service points into grid-cell areas of at least ``min_customers`` customers each."""
    sp, geom = checked_service_points(network, cell_m, min_customers)
    lon = geom.x.to_numpy()
    lat = geom.y.to_numpy()
    customers = sp["customers"].to_numpy(dtype=np.int64)
    lat_ref = float(np.round(np.mean(lat)))  # a whole degree: the cell size itself must not encode customer data
    dx = cell_m / (M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat_ref)))
    dy = cell_m / M_PER_DEG_LAT
    ix = np.floor(lon / dx).astype(np.int64)
    iy = np.floor(lat / dy).astype(np.int64)
    cells, unit_of_sp = np.unique(np.stack([ix, iy], axis=1), axis=0, return_inverse=True)
    unit_of_sp = unit_of_sp.ravel()
    unit_customers = np.bincount(unit_of_sp, weights=customers, minlength=len(cells)).astype(np.int64)
    centres_m = np.stack([(cells[:, 0] + 0.5) * cell_m, (cells[:, 1] + 0.5) * cell_m], axis=1).astype(float)
    group = merge_small_units(unit_customers, centres_m, min_customers)
    labels, area_of_unit = np.unique(group, return_inverse=True)
    area_of_unit = area_of_unit.ravel()
    served = np.bincount(area_of_unit, weights=unit_customers, minlength=len(labels)).astype(np.int64)
    boxes = shapely.box(cells[:, 0] * dx, cells[:, 1] * dy, (cells[:, 0] + 1) * dx, (cells[:, 1] + 1) * dy)
    order = np.argsort(area_of_unit, kind="stable")
    bounds = np.searchsorted(area_of_unit[order], np.arange(len(labels) + 1))
    geometry = [shapely.coverage_union_all(boxes[order[bounds[a]:bounds[a + 1]]]) for a in range(len(labels))]
    centre_xy = np.array([[c.x, c.y] for c in shapely.centroid(geometry)]) if geometry else np.zeros((0, 2))
    cell_area = {(int(cx), int(cy)): int(a) for (cx, cy), a in zip(cells.tolist(), area_of_unit.tolist(), strict=True)}
    return AreaPartition(
        area_of_sp=area_of_unit[unit_of_sp].astype(np.int32),
        customers_served=served,
        geometry=geometry,
        centre_xy=centre_xy,
        cell_area=cell_area,
        origin=(0.0, 0.0),
        cell_deg=(dx, dy),
        min_customers=min_customers,
        cell_m=cell_m,
        meets_minimum=bool(served.min() >= min_customers),
    )


def merge_small_units(customers: np.ndarray, centres: np.ndarray, min_customers: int) -> np.ndarray:
    """Group label per unit such that every group serves at least ``min_customers`` (when the total allows).

    Repeatedly takes the smallest group below the minimum and merges it into the group whose customer-weighted
    centre is nearest (ties to the lower index, so the result is deterministic). Labels are unit indices of each
    group's representative.
    """
    n = len(customers)
    label = np.arange(n)
    size = customers.astype(np.int64).copy()
    weight = np.maximum(size, 1).astype(float)  # empty units still have a place
    sum_xy = centres * weight[:, None]
    alive = np.ones(n, dtype=bool)
    while alive.sum() > 1:
        candidates = np.where(alive & (size < min_customers))[0]
        if len(candidates) == 0:
            break
        small = candidates[np.argmin(size[candidates])]
        centre = sum_xy[small] / weight[small]
        others = np.where(alive)[0]
        others = others[others != small]
        d2 = ((sum_xy[others] / weight[others, None] - centre) ** 2).sum(axis=1)
        target = others[np.argmin(d2)]
        label[label == small] = target
        size[target] += size[small]
        weight[target] += weight[small]
        sum_xy[target] += sum_xy[small]
        alive[small] = False
    return label


@dataclass(frozen=True, slots=True)
class AreaOutage:
    """The public facts about one area with customers out."""

    area: int
    customers_out: int
    customers_served: int
    events: int
    causes: tuple[str, ...]
    crew_status: str
    etr_low: datetime | None
    etr_high: datetime | None
    etr_pending: bool  # some outage here has no ETR yet
    #: the smallest stated probability of the area's ETRs: each member's own outage's range lies inside the area's
    #: range, so each member's restoration falls in it with at least this probability (None: none stated)
    etr_probability: float | None = None

    @property
    def percent_out(self) -> float:
        return 100.0 * self.customers_out / self.customers_served if self.customers_served else 0.0


@dataclass(frozen=True, slots=True)
class OutageSummary:
    customers_out: int
    customers_served: int
    events: int
    areas_affected: int

    @property
    def percent_out(self) -> float:
        return 100.0 * self.customers_out / self.customers_served if self.customers_served else 0.0


def aggregate_outages(partition: AreaPartition, sp_customers: np.ndarray,
                      events: tuple[MapEvent, ...] | list[MapEvent]) -> tuple[list[AreaOutage], OutageSummary]:
    """Roll events up into areas. A customer out in two nested events counts once.

    An event without ``sp_indices`` (the caller does not know who is behind it) is placed by its location and
    counts its ``customers_out``, capped at what the area serves.
    """
    n_sp = len(sp_customers)
    n_areas = partition.n_areas
    lengths = np.array([len(e.sp_indices) for e in events], dtype=np.int64)
    all_sp = (np.concatenate([np.asarray(e.sp_indices, dtype=np.int64) for e in events])
              if lengths.sum() else np.zeros(0, dtype=np.int64))
    if len(all_sp) and (all_sp.min() < 0 or all_sp.max() >= n_sp):
        bad = next(e for e in events if len(e.sp_indices) and
                   (np.min(e.sp_indices) < 0 or np.max(e.sp_indices) >= n_sp))
        raise ValueError(f"event {bad.event_id}: sp_indices outside 0..{n_sp - 1}")
    event_of = np.repeat(np.arange(len(events)), lengths)
    out = figures.out_mask([all_sp], n_sp)
    area_out = np.bincount(partition.area_of_sp[out], weights=sp_customers[out],
                           minlength=n_areas).astype(np.int64)
    pair_event = event_of
    pair_area = partition.area_of_sp[all_sp].astype(np.int64)
    unplaced = np.where(lengths == 0)[0]
    if len(unplaced):
        placed_area = np.array([partition.area_at(events[i].lon, events[i].lat) for i in unplaced], dtype=np.int64)
        extra = np.array([events[i].customers_out for i in unplaced], dtype=np.int64)
        np.add.at(area_out, placed_area, extra)
        np.minimum(area_out, partition.customers_served, out=area_out)
        pair_event = np.concatenate([pair_event, unplaced])
        pair_area = np.concatenate([pair_area, placed_area])
    keys = np.unique(pair_event * n_areas + pair_area)
    pair_event, pair_area = keys // n_areas, keys % n_areas

    events_in_area = np.bincount(pair_area, minlength=n_areas)
    low = np.array([_epoch(e.etr_low or e.etr_high) for e in events], dtype=float)
    high = np.array([_epoch(e.etr_high or e.etr_low) for e in events], dtype=float)
    area_low = np.full(n_areas, np.inf)
    area_high = np.full(n_areas, -np.inf)
    np.fmin.at(area_low, pair_area, low[pair_event])
    np.fmax.at(area_high, pair_area, high[pair_event])
    pending = np.bincount(pair_area, weights=np.isnan(low[pair_event]), minlength=n_areas) > 0
    prob = np.array([e.etr_probability if e.etr_probability is not None else np.nan for e in events], dtype=float)
    area_prob = np.full(n_areas, np.inf)
    np.fmin.at(area_prob, pair_area, prob[pair_event])
    crew_rank = np.array([CREW_STATUSES.index(e.crew_status) for e in events], dtype=np.int64)
    area_crew = np.zeros(n_areas, dtype=np.int64)
    np.maximum.at(area_crew, pair_area, crew_rank[pair_event])
    cause_weight: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for ev, area in zip(pair_event.tolist(), pair_area.tolist(), strict=True):
        cause = events[ev].cause.strip()
        if cause:
            cause_weight[area][cause] += max(events[ev].customers_out, 1)

    areas = []
    for a in np.where((area_out > 0) | (events_in_area > 0))[0].tolist():
        causes = sorted(cause_weight.get(a, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        areas.append(AreaOutage(
            area=a,
            customers_out=int(area_out[a]),
            customers_served=int(partition.customers_served[a]),
            events=int(events_in_area[a]),
            causes=tuple(c for c, _ in causes[:3]),
            crew_status=CREW_STATUSES[area_crew[a]],
            etr_low=_from_epoch(area_low[a]),
            etr_high=_from_epoch(area_high[a]),
            etr_pending=bool(pending[a]),
            etr_probability=float(area_prob[a]) if np.isfinite(area_prob[a]) else None,
        ))
    summary = OutageSummary(
        customers_out=figures.customers_out(((e.sp_indices, e.customers_out) for e in events), sp_customers),
        customers_served=int(partition.customers_served.sum()),
        events=len(events),
        areas_affected=len(areas),
    )
    return areas, summary


def _epoch(t: datetime | None) -> float:
    return t.timestamp() if t is not None else math.nan


def _from_epoch(x: float) -> datetime | None:
    return datetime.fromtimestamp(x, tz=UTC) if math.isfinite(x) else None
