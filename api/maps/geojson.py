"""GeoJSON for the maps: what the browser fetches and what the snapshot publisher writes.

:class:`MapData` holds what depends only on the network (the privacy-safe area partition, the topology, the feeder
and road lines), built once, and turns each :class:`~api.maps.state.MapState` into:

* the **public** collection: one feature per named place (``level: "place"``) and per finer area inside it
  (``level: "area"``, :mod:`api.maps.areas`) with customers out or restored within ``restored_keep_s`` (polygon,
  counts, percent out, causes, crew, ETR "by" with its confidence, restored time) plus a ``summary`` member.
  Nothing in it names or places a customer, a device or an event.
* the **dispatcher** collection: events (points, tier, explanation), crews (points, status), planned routes
  (lines), and ``deenergized``: indices into the network collection's lines below an operated device.

Coordinates are rounded to 5 decimals (about 1 m): enough to draw, and it keeps a 10,000-event storm small.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import shapely

from api.maps.aggregation import AreaOutage, AreaPartition, aggregate_outages
from api.maps.areas import named_areas
from api.maps.basemap import basemap_collection, basemap_of
from api.maps.search import AddressIndex
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

    cell_m: float = 500.0  # grid cell side: the building block of the public map's areas
    min_customers: int = 10  # k: no public area serves fewer customers than this
    draw_roads: bool = True
    restored_keep_s: float = 2 * 3600.0  # an area restored this recently stays on the public map, marked restored


#: ETR window width (minutes) up to which an estimate is told as "high" / "medium" confidence; wider is "low".
ETR_CONFIDENCE = ((60, "high"), (180, "medium"))


def etr_confidence(low: datetime | None, high: datetime | None) -> str | None:
    if low is None or high is None:
        return None
    width = (high - low).total_seconds() / 60
    return next((word for limit, word in ETR_CONFIDENCE if width <= limit), "low")


class MapData:
    """Network-derived map layers, built once; per-state collections built on demand."""

    def __init__(self, network: Network, options: MapOptions | None = None):
        self.network = network
        self.options = options or MapOptions()
        self.areas = named_areas(network, self.options.cell_m, self.options.min_customers)
        self.partition: AreaPartition = self.areas.fine
        self.sp_customers = network.service_points["customers"].to_numpy(dtype=np.int64)
        self.topology = build(network, validate=False)
        self._area_geometry = [json.loads(shapely.to_geojson(shapely.set_precision(g, 10 ** -COORD_DECIMALS)))
                               for g in self.partition.geometry]
        self._place_geometry = [json.loads(shapely.to_geojson(shapely.set_precision(g, 10 ** -COORD_DECIMALS)))
                                for g in self.areas.places.geometry]
        self._out_keys: set[tuple[str, int]] = set()
        self._restored_at: dict[tuple[str, int], datetime] = {}
        #: The latest public facts per (level, index), for the address search (one dict swap: thread-safe).
        self.public_facts: dict[tuple[str, int], dict] = {}
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
        self._basemap_body: bytes | None = None
        self._search: AddressIndex | None = None
        self._search_lock = threading.Lock()
        self._search_thread: threading.Thread | None = None
        self._search_build_lock = threading.Lock()

    # -- static layers ---------------------------------------------------------------------------------------
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the service points and lines."""
        b = np.array([self.network.service_points.total_bounds, self.network.segments.total_bounds])
        return float(np.nanmin(b[:, 0])), float(np.nanmin(b[:, 1])), float(np.nanmax(b[:, 2])), float(np.nanmax(b[:, 3]))

    def network_body(self) -> bytes:
        """The feeders as lines: ``i`` (line number used by ``deenergized``), feeder, kind, normally open, and
        ``synth`` on elements an importer added by rule rather than took from the utility's data (an OpenDSS model's
        fuses and recloser, :mod:`gis.opendss_complete`): the dispatcher must know a device may not exist."""
        if self._network_body is None:
            seg = self.network.segments.iloc[self._drawn_rows]
            coords = _line_coords(seg.geometry.to_numpy())
            synth = seg["synthesized"] if "synthesized" in seg else [False] * len(seg)
            features = [
                {"type": "Feature", "geometry": {"type": "LineString", "coordinates": c},
                 "properties": {"i": i, "id": sid, "feeder": fid, "kind": kind, "open": bool(no),
                                **({"synth": True} if sy else {})}}
                for i, (c, sid, fid, kind, no, sy) in enumerate(zip(
                    coords, seg["segment_id"], seg["feeder_id"], seg["kind"], seg["normally_open"], synth,
                    strict=True))
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

    def basemap_body(self) -> bytes:
        """Buildings, place and street names from the territory's OSM data (:mod:`api.maps.basemap`)."""
        if self._basemap_body is None:
            self._basemap_body = dumps(basemap_collection(basemap_of(self.network)))
        return self._basemap_body

    def example_place(self) -> str:
        """The place serving the most customers (the search box's example), "" without place names."""
        names = self.areas.place_names
        best = int(np.argmax(self.areas.places.customers_served))
        return "" if names[best].startswith("Area ") else names[best]

    @property
    def search_ready(self) -> bool:
        """Whether the address search index is built (:meth:`search_index` then answers at once)."""
        return self._search is not None

    def build_search_index_in_background(self) -> threading.Thread | None:
        """Start building the search index in a daemon thread (once); None when it is already built.

        A million-customer territory takes seconds to index: the service starts this as soon as the territory
        loads, and the search route answers 503 + Retry-After until it is ready instead of blocking a request."""
        with self._search_lock:
            if self._search is not None:
                return None
            if self._search_thread is None:
                self._search_thread = threading.Thread(target=self.search_index, name="oms-map-search-index",
                                                       daemon=True)
                self._search_thread.start()
            return self._search_thread

    def search_index(self) -> AddressIndex:
        """The address search over service-point addresses and OSM street names, built on first use."""
        if self._search is not None:
            return self._search
        with self._search_build_lock:
            if self._search is None:
                self._search = self._build_search_index()
        return self._search

    def _build_search_index(self) -> AddressIndex:
        basemap = basemap_of(self.network)
        fine = self.areas.fine
        streets = []
        for s in basemap.streets:
            lon, lat = s["coords"][len(s["coords"]) // 2]
            streets.append((s["name"], fine.area_at(lon, lat)))
        sp = self.network.service_points
        addresses = sp["address"].fillna("").astype(str).tolist() if "address" in sp else [""] * len(sp)
        return AddressIndex(addresses, fine.area_of_sp, self.areas.place_of_area,
                            self.areas.place_names, self.areas.place_members, streets)

    @property
    def has_roads(self) -> bool:
        return self.options.draw_roads and len(self.network.road_edges) > 0

    # -- live layers -----------------------------------------------------------------------------------------
    def public_collection(self, state: MapState) -> dict:
        """Per-place and per-area outage facts; no customer, device or event identifiers, no exact locations."""
        fine, summary = aggregate_outages(self.areas.fine, self.sp_customers, state.events)
        places, _ = aggregate_outages(self.areas.places, self.sp_customers, state.events)
        now = state.updated_at
        out = {("place", a.area): a for a in places if a.customers_out or a.events}
        out.update({("area", a.area): a for a in fine if a.customers_out or a.events})
        restored = self._track_restored(set(out), now)
        facts: dict[tuple[str, int], dict] = {}
        for key in sorted(set(out) | set(restored), key=lambda k: (k[0] != "place", k[1])):
            facts[key] = self._public_props(key, out.get(key), restored.get(key))
        features = [{"type": "Feature",
                     "geometry": (self._place_geometry if key[0] == "place" else self._area_geometry)[key[1]],
                     "properties": props} for key, props in facts.items()]
        self.public_facts = facts
        return {
            "type": "FeatureCollection",
            "updated_at": iso(state.updated_at),
            **({"clock": state.clock_note} if state.clock_note else {}),
            "summary": {
                "customers_out": summary.customers_out,
                "customers_served": summary.customers_served,
                "percent_out": round(summary.percent_out, 2),
                "outages": summary.events,
                "areas_affected": sum(1 for k in out if k[0] == "place"),
                "restored_areas": sum(1 for k in restored if k[0] == "place"),
            },
            "features": features,
        }

    def place_props(self, key: tuple[str, int]) -> dict:
        """The public facts of one place or area now: out, restored, or all on (for the address search)."""
        return self.public_facts.get(key) or self._public_props(key, None, None)

    def _public_props(self, key: tuple[str, int], a: AreaOutage | None, restored_at: datetime | None) -> dict:
        level, i = key
        areas = self.areas
        served = int((areas.places if level == "place" else areas.fine).customers_served[i])
        place = i if level == "place" else int(areas.place_of_area[i])
        props = {
            "id": f"{level[0]}{i}", "level": level,
            "name": areas.place_names[i] if level == "place" else areas.names[i],
            "place": areas.place_names[place], "postcode": areas.postcodes[place] or None,
            "customers_out": 0, "customers_served": served, "percent_out": 0.0, "outages": 0,
            "cause": None, "crew": None, "etr_from": None, "etr_by": None, "etr_confidence": None,
            "etr_probability": None, "etr_pending": False, "restored_at": iso(restored_at),
        }
        if a is not None:
            props.update(customers_out=a.customers_out, percent_out=round(a.percent_out, 1), outages=a.events,
                         cause=", ".join(a.causes) if a.causes else None, crew=a.crew_status or None,
                         etr_from=iso(a.etr_low), etr_by=iso(a.etr_high),
                         etr_confidence=etr_confidence(a.etr_low, a.etr_high), etr_pending=a.etr_pending,
                         etr_probability=a.etr_probability)
        return props

    def _track_restored(self, out_keys: set[tuple[str, int]], now: datetime) -> dict[tuple[str, int], datetime]:
        """Areas that had customers out and now have none are "restored at" the first state without them, and
        stay listed for ``restored_keep_s``; an area out again is out, not restored."""
        for key in self._out_keys - out_keys:
            self._restored_at[key] = now
        for key in out_keys:
            self._restored_at.pop(key, None)
        keep = timedelta(seconds=self.options.restored_keep_s)
        self._restored_at = {k: t for k, t in self._restored_at.items() if t <= now and now - t <= keep}
        self._out_keys = out_keys
        return dict(self._restored_at)

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
                    "explanation": e.explanation,
                    # what is not known yet is left out, not sent as null: 10,000 events are 0.4 MB less
                    **{k: v for k, v in (("cause", e.cause or None), ("crew_status", e.crew_status or None),
                                         ("etr_low", iso(e.etr_low)), ("etr_high", iso(e.etr_high)),
                                         ("etr_probability", e.etr_probability), ("started", iso(e.started)))
                       if v is not None},
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
