"""A labelled basemap from the territory's own OpenStreetMap extract: places, named streets, buildings, addresses.

The public map must be readable with no internet (no tile server during a storm, or none at all): members find
their home by its village, street and building. :func:`read_osm_basemap` reads those from the OSM XML the territory
was built from, in one streaming pass (a 14 MB extract in about two seconds), at territory build time;
:class:`Basemap` holds them as plain tables and writes/reads them as one JSON file, so a saved territory can carry
its basemap beside it. The maps turn it into GeoJSON layers (:mod:`api.maps.basemap`).

Everything here is public OSM data (© OpenStreetMap contributors, ODbL); nothing is about the utility's customers.
"""

from __future__ import annotations

import gzip
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ATTRIBUTION = "© OpenStreetMap contributors, ODbL"
#: Place kinds that name a settlement people say they live in (largest first).
PLACE_KINDS = ("city", "town", "suburb", "village", "hamlet", "isolated_dwelling")
#: Highway classes whose names are street names (paths and tracks rarely carry addresses).
STREET_KINDS = frozenset(
    ["motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential", "living_street", "service", "pedestrian", "road", "motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link"]
)
NOT_BUILDINGS = frozenset(["construction", "ruins", "roof"])


class BasemapError(ValueError):
    """The OSM file is missing or unreadable."""


@dataclass
class Basemap:
    """Public map layers. Coordinates are (lon, lat) rounded to 5 decimals (about 1 m).

    ``places``: dicts name, kind, lon, lat. ``streets``: dicts name, highway, coords (one per named way).
    ``buildings``: outer rings (lists of (lon, lat)). ``addresses``: dicts street, housenumber, postcode, city,
    lon, lat (OSM ``addr:*`` on nodes and building outlines).
    """

    places: list[dict] = field(default_factory=list)
    streets: list[dict] = field(default_factory=list)
    buildings: list[list[list[float]]] = field(default_factory=list)
    addresses: list[dict] = field(default_factory=list)
    attribution: str = ATTRIBUTION

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> Basemap:
        data = json.loads(body)
        return cls(**{k: data.get(k, v) for k, v in cls().__dict__.items()})

    def write(self, path: str | Path) -> Path:
        """Write as gzip-compressed JSON (``.json.gz``)."""
        path = Path(path)
        path.write_bytes(gzip.compress(self.to_json(), mtime=0))
        return path

    @classmethod
    def read(cls, path: str | Path) -> Basemap:
        path = Path(path)
        if not path.is_file():
            raise BasemapError(f"{path}: no such basemap file")
        return cls.from_json(gzip.decompress(path.read_bytes()))


#: GeoPackage layer of each basemap table (a territory file carries its basemap beside the network's layers).
LAYERS = {"places": "basemap_places", "streets": "basemap_streets", "buildings": "basemap_buildings",
          "addresses": "basemap_addresses"}
GEOMETRY_TYPES = {"basemap_places": "Point", "basemap_streets": "LineString", "basemap_buildings": "Polygon",
                  "basemap_addresses": "Point"}
_COLUMNS = {"places": ("name", "kind"), "streets": ("name", "highway"), "buildings": (),
            "addresses": ("street", "housenumber", "postcode", "city")}


def to_frames(basemap: Basemap):
    """The basemap as GeoDataFrames keyed by GeoPackage layer name (EPSG:4326)."""
    import geopandas as gpd
    import shapely

    frames = {}
    for table, layer in LAYERS.items():
        rows = getattr(basemap, table)
        cols = {c: [str(r.get(c, "")) for r in rows] for c in _COLUMNS[table]}
        if table in ("places", "addresses"):
            geom = shapely.points([[r["lon"], r["lat"]] for r in rows]) if rows else []
        elif table == "streets":
            geom = [shapely.linestrings(r["coords"]) for r in rows]
        else:
            geom = [shapely.polygons(ring) for ring in rows]
        frames[layer] = gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries(list(geom), crs="EPSG:4326"),
                                         crs="EPSG:4326")
    return frames


def from_frames(frames: dict, attribution: str = ATTRIBUTION) -> Basemap:
    """A basemap from the layers :func:`to_frames` made (absent layers are empty)."""
    import shapely

    def coords(geom) -> list[list[float]]:
        return [[_r(x), _r(y)] for x, y in shapely.get_coordinates(geom).tolist()]

    out = Basemap(attribution=attribution or ATTRIBUTION)
    for table, layer in LAYERS.items():
        df = frames.get(layer)
        if df is None or len(df) == 0:
            continue
        geoms = df.geometry.to_numpy()
        cols = {c: (df[c].fillna("").astype(str).tolist() if c in df else [""] * len(df)) for c in _COLUMNS[table]}
        if table in ("places", "addresses"):
            xs, ys = shapely.get_x(geoms).tolist(), shapely.get_y(geoms).tolist()
            for i in range(len(df)):
                row = {c: cols[c][i] for c in _COLUMNS[table]}
                row.update(lon=_r(xs[i]), lat=_r(ys[i]))
                getattr(out, table).append(row)
        elif table == "streets":
            out.streets = [{"name": n, "highway": h, "coords": coords(g)}
                           for n, h, g in zip(cols["name"], cols["highway"], geoms, strict=True)]
        else:
            out.buildings = [coords(shapely.get_exterior_ring(g)) for g in geoms]
    return out


def _r(x: float) -> float:
    return round(x, 5)


def read_osm_basemap(path: str | Path) -> Basemap:
    """Places, named streets, buildings and addresses of an OSM XML file (``.osm`` or ``.osm.gz``)."""
    path = Path(path)
    if not path.is_file():
        raise BasemapError(f"{path}: no such OSM file")
    opener = gzip.open if path.suffix == ".gz" else open
    coords: dict[str, tuple[float, float]] = {}
    out = Basemap()
    try:
        with opener(path, "rb") as fh:
            tags: dict[str, str] = {}
            refs: list[str] = []
            for _, el in ET.iterparse(fh, events=("end",)):
                tag = el.tag
                if tag == "tag":
                    tags[el.get("k", "")] = el.get("v", "")
                elif tag == "nd":
                    refs.append(el.get("ref", ""))
                elif tag == "node":
                    xy = (float(el.get("lon")), float(el.get("lat")))
                    coords[el.get("id")] = xy
                    _node(out, tags, xy)
                    tags, refs = {}, []
                    el.clear()
                elif tag == "way":
                    _way(out, tags, [coords[r] for r in refs if r in coords])
                    tags, refs = {}, []
                    el.clear()
                elif tag == "relation":
                    tags, refs = {}, []
                    el.clear()
    except (ET.ParseError, OSError, EOFError) as exc:
        raise BasemapError(f"{path}: cannot read as OSM XML ({exc})") from None
    out.places.sort(key=lambda p: (PLACE_KINDS.index(p["kind"]), p["name"]))
    return out


def _address(tags: dict[str, str], xy: tuple[float, float]) -> dict | None:
    if not tags.get("addr:housenumber") or not tags.get("addr:street"):
        return None
    return {"street": tags["addr:street"], "housenumber": tags["addr:housenumber"],
            "postcode": tags.get("addr:postcode", ""), "city": tags.get("addr:city", ""),
            "lon": _r(xy[0]), "lat": _r(xy[1])}


def _node(out: Basemap, tags: dict[str, str], xy: tuple[float, float]) -> None:
    if not tags:
        return
    if tags.get("place") in PLACE_KINDS and tags.get("name"):
        out.places.append({"name": tags["name"], "kind": tags["place"], "lon": _r(xy[0]), "lat": _r(xy[1])})
    address = _address(tags, xy)
    if address:
        out.addresses.append(address)


def _way(out: Basemap, tags: dict[str, str], pts: list[tuple[float, float]]) -> None:
    if len(pts) < 2:
        return
    building = tags.get("building")
    if building and building not in NOT_BUILDINGS and len(pts) >= 4:
        ring = [[_r(x), _r(y)] for x, y in pts]
        out.buildings.append(ring)
        lon = sum(p[0] for p in pts[:-1]) / (len(pts) - 1)
        lat = sum(p[1] for p in pts[:-1]) / (len(pts) - 1)
        address = _address(tags, (lon, lat))
        if address:
            out.addresses.append(address)
    highway = tags.get("highway")
    if highway in STREET_KINDS and tags.get("name"):
        out.streets.append({"name": tags["name"], "highway": highway,
                            "coords": [[_r(x), _r(y)] for x, y in pts]})


def label_point(coords: list[list[float]]) -> tuple[float, float, float]:
    """Where to write a street's name: the middle of its longest segment, and that segment's angle in degrees
    (clockwise from east, as CSS ``rotate`` takes it, kept between -90 and 90 so the text is never upside down)."""
    best, at = -1.0, (coords[0][0], coords[0][1], 0.0)
    for (x0, y0), (x1, y1) in zip(coords[:-1], coords[1:], strict=True):
        dx = (x1 - x0) * math.cos(math.radians(y0))
        dy = y1 - y0
        length = math.hypot(dx, dy)
        if length > best:
            angle = -math.degrees(math.atan2(dy, dx))
            if angle > 90:
                angle -= 180
            elif angle < -90:
                angle += 180
            best, at = length, ((x0 + x1) / 2, (y0 + y1) / 2, round(angle))
    return at
