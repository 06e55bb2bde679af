"""GeoJSON for the maps: what the browser fetches and what the snapshot publisher writes.

:class:`MapData` holds what depends only on the network (the privacy-safe area partition, the topology, the feeder
and road lines), built once, and turns each :class:`~api.maps.state.MapState` into:

* the **public** collection: one feature per area with customers out (area polygon, counts, percent out, causes,
  crew status, ETR range) plus a ``summary`` member. Nothing in it names or places a customer, a device or an event.
* the **dispatcher** collection: events (points, tier, explanation), crews (points, status), planned routes
  (lines), and ``deenergized``: indices into the network collection's lines below an operated device.

Coordinates are rounded to 5 decimals (about 1 m): enough to draw, and it keeps a 10,000-event storm small.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import shapely

from api.maps.aggregation import AreaPartition, aggregate_outages, partition_areas
from api.maps.state import MapState
from gis.network import Network
from gis.topology import _nearest_upstream, build

COORD_DECIMALS = 5
ATTRIBUTION_OSM = "&copy; OpenStreetMap contributors, ODbL"
#: Segment kinds not drawn on the dispatcher map (a service drop is metres long and there are thousands).
HIDDEN_KINDS = ("service",)


def dumps(obj) -> bytes:
    """Compact, deterministic JSON bytes (the ETag is a hash of exactly these)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def etag_of(body: bytes) -> str:
    """A strong ETag: the same bytes always give the same tag, any change gives another."""
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def iso(t: datetime | None) -> str | None:
    """Minute precision ISO 8601 UTC (members do not need seconds; fewer changes mean fewer re-downloads)."""
    return None if t is None else t.replace(second=0, microsecond=0).isoformat().replace("+00:00", "Z")


def _line_coords(geoms) -> list[list[list[float]]]:
    """Rounded coordinate lists of LineStrings, vectorised (one shapely call, one split)."""
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    coords = np.round(coords, COORD_DECIMALS)
    bounds = np.searchsorted(index, np.arange(len(geoms) + 1)).tolist()
    flat = coords.tolist()
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass
class MapOptions:
    """How the maps aggregate and what they draw."""

    cell_m: float = 1000.0  # grid cell side of the public map's areas
    min_customers: int = 10  # k: no public area serves fewer customers than this
    draw_roads: bool = True


class MapData:
    """Network-derived map layers, built once; per-state collections built on demand."""

    def __init__(self, network: Network, options: MapOptions | None = None):
        self.network = network
        self.options = options or MapOptions()
        self.partition: AreaPartition = partition_areas(network, self.options.cell_m, self.options.min_customers)
        self.sp_customers = network.service_points["customers"].to_numpy(dtype=np.int64)
        self.topology = build(network, validate=False)
        self._area_geometry = [json.loads(shapely.to_geojson(shapely.set_precision(g, 10 ** -COORD_DECIMALS)))
                               for g in self.partition.geometry]
        seg = network.segments
        drawn = ~seg["kind"].isin(HIDDEN_KINDS).to_numpy() & ~(seg.geometry.isna() | seg.geometry.is_empty).to_numpy()
        self._drawn_rows = np.flatnonzero(drawn)
        # topology segment index -> drawn line number (-1 when not drawn)
        self._line_of_seg = np.full(len(self.topology.segment_ids), -1, dtype=np.int64)
        topo_index = np.array([self.topology.segment_index[s] for s in seg["segment_id"].to_numpy()[drawn]],
                              dtype=np.int64)
        self._line_of_seg[topo_index] = np.arange(len(topo_index))
        self._network_body: bytes | None = None
        self._roads_body: bytes | None = None

    # -- static layers ---------------------------------------------------------------------------------------
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the service points and lines."""
        b = np.array([self.network.service_points.total_bounds, self.network.segments.total_bounds])
        return float(np.nanmin(b[:, 0])), float(np.nanmin(b[:, 1])), float(np.nanmax(b[:, 2])), float(np.nanmax(b[:, 3]))

    def network_body(self) -> bytes:
        """The feeders as lines: ``i`` (line number used by ``deenergized``), feeder, kind, normally open."""
        if self._network_body is None:
            seg = self.network.segments.iloc[self._drawn_rows]
            coords = _line_coords(seg.geometry.to_numpy())
            features = [
                {"type": "Feature", "geometry": {"type": "LineString", "coordinates": c},
                 "properties": {"i": i, "id": sid, "feeder": fid, "kind": kind, "open": bool(no)}}
                for i, (c, sid, fid, kind, no) in enumerate(zip(
                    coords, seg["segment_id"], seg["feeder_id"], seg["kind"], seg["normally_open"], strict=True))
            ]
            self._network_body = dumps({"type": "FeatureCollection", "features": features})
        return self._network_body

    def roads_body(self) -> bytes:
        """Roads from our own OpenStreetMap extract, so the map is readable without any tile server."""
        if self._roads_body is None:
            roads = self.network.road_edges
            features = []
            if self.options.draw_roads and len(roads):
                roads = roads[~(roads.geometry.isna() | roads.geometry.is_empty)]
                coords = _line_coords(roads.geometry.to_numpy())
                features = [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": c},
                             "properties": {"h": h}} for c, h in zip(coords, roads["highway"], strict=True)]
            self._roads_body = dumps({"type": "FeatureCollection", "attribution": ATTRIBUTION_OSM,
                                      "features": features})
        return self._roads_body

    @property
    def has_roads(self) -> bool:
        return self.options.draw_roads and len(self.network.road_edges) > 0

    # -- live layers -----------------------------------------------------------------------------------------
    def public_collection(self, state: MapState) -> dict:
        """Per-area outage facts; no customer, device or event identifiers, no exact locations."""
        areas, summary = aggregate_outages(self.partition, self.sp_customers, state.events)
        features = []
        for a in areas:
            features.append({
                "type": "Feature",
                "geometry": self._area_geometry[a.area],
                "properties": {
                    "area": f"Area {a.area + 1}",
                    "customers_out": a.customers_out,
                    "customers_served": a.customers_served,
                    "percent_out": round(a.percent_out, 1),
                    "outages": a.events,
                    "cause": ", ".join(a.causes) if a.causes else None,
                    "crew_status": a.crew_status or None,
                    "etr_low": iso(a.etr_low),
                    "etr_high": iso(a.etr_high),
                    "etr_pending": a.etr_pending,
                },
            })
        return {
            "type": "FeatureCollection",
            "updated_at": iso(state.updated_at),
            **({"clock": state.clock_note} if state.clock_note else {}),
            "summary": {
                "customers_out": summary.customers_out,
                "customers_served": summary.customers_served,
                "percent_out": round(summary.percent_out, 2),
                "outages": summary.events,
                "areas_affected": summary.areas_affected,
            },
            "features": features,
        }

    def deenergized_lines(self, state: MapState) -> np.ndarray:
        """Line numbers (of :meth:`network_body`) fed through any event's operated device."""
        topo = self.topology
        mask = np.zeros(len(topo.segment_ids), dtype=bool)
        for e in state.events:
            s = topo.segment_index.get(e.device_id)
            if s is not None:
                mask[s] = True
        if not mask.any():
            return np.zeros(0, dtype=np.int64)
        below = _nearest_upstream(topo.parent_node, topo.parent_seg, mask)
        dead_nodes = np.flatnonzero((below >= 0) & (topo.parent_seg >= 0))
        lines = self._line_of_seg[topo.parent_seg[dead_nodes]]
        return np.unique(lines[lines >= 0])

    def dispatcher_collection(self, state: MapState) -> dict:
        """Events, crews and routes as features, plus the de-energized line numbers."""
        features = []
        for e in state.events:
            features.append({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(e.lon, COORD_DECIMALS), round(e.lat, COORD_DECIMALS)]},
                "properties": {
                    "layer": "event", "id": e.event_id, "device": e.device_id, "tier": e.tier,
                    "class": e.event_class, "status": e.status, "customers_out": e.customers_out,
                    "cause": e.cause or None, "crew_status": e.crew_status or None,
                    "etr_low": iso(e.etr_low), "etr_high": iso(e.etr_high), "started": iso(e.started),
                    "explanation": e.explanation,
                },
            })
        for c in state.crews:
            features.append({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(c.lon, COORD_DECIMALS), round(c.lat, COORD_DECIMALS)]},
                "properties": {"layer": "crew", "id": c.crew_id, "name": c.name, "status": c.status,
                               "jobs": list(c.job_ids)},
            })
            if c.route:
                path = [[round(c.lon, COORD_DECIMALS), round(c.lat, COORD_DECIMALS)]]
                path += [[round(x, COORD_DECIMALS), round(y, COORD_DECIMALS)] for x, y in c.route]
                features.append({
                    "type": "Feature", "geometry": {"type": "LineString", "coordinates": path},
                    "properties": {"layer": "route", "id": c.crew_id, "name": c.name, "status": c.status},
                })
        tiers = np.bincount(np.array([e.tier for e in state.events], dtype=np.int64), minlength=5)[1:].tolist()
        _, summary = aggregate_outages(self.partition, self.sp_customers, state.events)
        return {
            "type": "FeatureCollection",
            "updated_at": iso(state.updated_at),
            **({"clock": state.clock_note} if state.clock_note else {}),
            "summary": {
                "events": len(state.events),
                "customers_out": summary.customers_out,  # each customer once, even under nested events
                "events_by_tier": {f"P{t}": n for t, n in zip((1, 2, 3, 4), tiers, strict=True)},
                "crews": len(state.crews),
            },
            "deenergized": self.deenergized_lines(state).tolist(),
            "features": features,
        }
