"""Live outage maps: the members' public map and the dispatchers' map (folium/Leaflet), served by the app and
publishable as static snapshots.

* :mod:`api.maps.state`       the input shape (MapEvent, MapCrew, MapState) and the provider interface
* :mod:`api.maps.aggregation` privacy-safe areas (k customers minimum) and per-area outage roll-up
* :mod:`api.maps.geojson`     the GeoJSON both maps poll
* :mod:`api.maps.render`      the folium pages
* :mod:`api.maps.assets`      Leaflet and our JS/CSS, served locally (never from a CDN)
* :mod:`api.maps.router`      the FastAPI router
* :mod:`api.maps.fastpath`    what every member's browser fetches, from memory on the event loop (ASGI)
* :mod:`api.maps.snapshot`    the static snapshot publisher
"""

from api.maps.geojson import MapData, MapOptions
from api.maps.render import PageConfig
from api.maps.router import create_router
from api.maps.snapshot import SnapshotPublisher, write_snapshot
from api.maps.state import MapCrew, MapEvent, MapProvider, MapState, StaticProvider

__all__ = [
    "MapCrew", "MapData", "MapEvent", "MapOptions", "MapProvider", "MapState", "PageConfig", "SnapshotPublisher",
    "StaticProvider", "create_router", "write_snapshot",
]
