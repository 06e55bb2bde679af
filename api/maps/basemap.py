"""The public map's offline basemap as one GeoJSON body: buildings, place names and street names.

Built once per territory from :class:`gis.basemap.Basemap` (the territory's own OpenStreetMap data, attached to the
network as ``network.basemap`` when it was built) or, without one, from the network's named road edges (street
names only). Features carry a one-letter ``k``: ``b`` building (Polygon), ``p`` place label (Point; ``c`` its
class: city/town/village/hamlet...), ``s`` street label (Point at the middle of the street's longest segment;
``a`` the text angle). The page shows each kind from a zoom level on (static/oms-map.js), so the labels never crowd.

Served gzip-compressed with a long cache: the sample territory's 4,265 buildings, 71 places and 171 streets are
about 0.6 MB raw, 0.15 MB on the wire, fetched once.
"""

from __future__ import annotations

import numpy as np

from gis.basemap import ATTRIBUTION, Basemap, label_point
from gis.network import Network


def basemap_of(network: Network) -> Basemap:
    """The network's basemap, or one with only its named streets."""
    attached = getattr(network, "basemap", None)
    if isinstance(attached, Basemap):
        return attached
    roads = network.road_edges
    streets = []
    if len(roads) and "name" in roads:
        named = roads.loc[(roads["name"].fillna("") != "") & ~(roads.geometry.isna() | roads.geometry.is_empty)]
        for name, geom, hw in zip(named["name"], named.geometry, named["highway"], strict=True):
            coords = np.round(np.asarray(geom.coords), 5).tolist()
            streets.append({"name": str(name), "highway": str(hw), "coords": coords})
    return Basemap(streets=streets)


def basemap_collection(basemap: Basemap) -> dict:
    """Buildings, place labels and one label per street name (at its longest piece)."""
    features: list[dict] = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {"k": "b"}}
        for ring in basemap.buildings
    ]
    features += [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [p["lon"], p["lat"]]},
         "properties": {"k": "p", "n": p["name"], "c": p["kind"]}}
        for p in basemap.places
    ]
    longest: dict[str, tuple[float, list]] = {}
    for s in basemap.streets:
        c = np.asarray(s["coords"], dtype=float)
        if len(c) < 2:
            continue
        length = float(np.hypot(*np.diff(c, axis=0).T).sum())
        if length > longest.get(s["name"], (-1.0, []))[0]:
            longest[s["name"]] = (length, s["coords"])
    for name, (_, coords) in sorted(longest.items()):
        lon, lat, angle = label_point(coords)
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]},
                         "properties": {"k": "s", "n": name, "a": angle}})
    return {"type": "FeatureCollection", "attribution": basemap.attribution or ATTRIBUTION, "features": features}
