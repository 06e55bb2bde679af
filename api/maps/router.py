"""The maps as a FastAPI router: pages, GeoJSON with ETags, and the static assets, all from one provider.

:func:`create_router` takes a :class:`~api.maps.state.MapProvider` (the service's live state, or a
:class:`~api.maps.state.StaticProvider` in tests) and returns an ``APIRouter`` to mount on any app::

    app.include_router(create_router(provider, page=PageConfig(reports_url="/reports")))

Routes (under ``prefix``, default ``/maps``): ``/`` (index), ``/public`` and ``/public.geojson`` (members),
``/dispatcher``, ``/dispatcher.geojson`` and ``/network.geojson`` (dispatchers: pass ``dispatcher_dependencies``
to guard them), ``/roads.geojson``, ``/basemap.geojson`` (buildings, place and street names), ``/search?q=``
(address search: the area's facts, never a customer's; 503 with Retry-After while the index of a big territory is
still being built in the background, which starts as soon as the territory loads) and ``/assets/...``. Every body carries a strong ETag and
answers ``If-None-Match`` with 304, so a browser polling an unchanged map downloads nothing; bodies over 1 kB go
gzip-compressed to clients that accept it (compressed once per body, not per request).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.params import Depends as DependsParam

from api.maps import assets
from api.maps.geojson import MapData, MapOptions, dumps, etag_of
from api.maps.render import PageConfig, dispatcher_html, public_html
from api.maps.search import CONTROL_CHARS
from api.maps.state import MapProvider

GEOJSON = "application/geo+json"
#: Seconds a client waits before asking the search again while its index is being built.
SEARCH_RETRY_AFTER_S = 3
#: Seconds a search request waits for an index being built before answering 503.
SEARCH_WAIT_S = 1.0
HTML = "text/html; charset=utf-8"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` header names ``etag`` (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag.removeprefix("W/") in tags


_GZIP: OrderedDict[str, bytes] = OrderedDict()
_GZIP_LOCK = threading.Lock()
_COMPRESS_LOCK = threading.Lock()
GZIP_MIN_BYTES = 1024


def gzipped(etag: str, body: bytes) -> bytes:
    """``body`` gzip-compressed, cached by its ETag (a storm's thousand viewers cost one compression)."""
    with _GZIP_LOCK:
        hit = _GZIP.get(etag)
        if hit is not None:
            _GZIP.move_to_end(etag)
            return hit
    with _COMPRESS_LOCK:  # one compression at a time: viewers arriving together wait for it, not redo it
        with _GZIP_LOCK:
            hit = _GZIP.get(etag)
        if hit is not None:
            return hit
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        with _GZIP_LOCK:
            _GZIP[etag] = packed
            while len(_GZIP) > 64:
                _GZIP.popitem(last=False)
    return packed


def accepts_gzip(request: Request) -> bool:
    return any(part.split(";")[0].strip() in ("gzip", "*")
               for part in request.headers.get("accept-encoding", "").split(","))


def conditional(request: Request, body: bytes, media_type: str, cache_control: str,
                etag: str | None = None) -> Response:
    """``body`` with ETag and Cache-Control (gzip-compressed when the client accepts it: the compressed
    representation has its own ETag, as RFC 9110 asks), or an empty 304 when the client already has it."""
    etag = etag or etag_of(body)
    compress = len(body) >= GZIP_MIN_BYTES and accepts_gzip(request)
    tag = etag[:-1] + '-gz"' if compress else etag
    headers = {"ETag": tag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    if compress:
        headers["Content-Encoding"] = "gzip"
        return Response(content=gzipped(etag, body), media_type=media_type, headers=headers)
    return Response(content=body, media_type=media_type, headers=headers)


class MapService:
    """Caches what the router serves: network layers and pages per network, live GeoJSON per state version."""

    def __init__(self, provider: MapProvider, page: PageConfig | None = None, options: MapOptions | None = None,
                 public_refresh_s: float = 1.0):
        if not isinstance(provider, MapProvider):
            raise TypeError("provider must have network() and state() methods (see api.maps.state.MapProvider)")
        self.provider = provider
        self.public_refresh_s = public_refresh_s
        self.page = page or PageConfig()
        self.options = options or MapOptions()
        self._lock = threading.Lock()
        self._network = None
        self._data: MapData | None = None
        self._pages: dict[str, tuple[bytes, str]] = {}
        self._static: dict[str, tuple[bytes, str]] = {}
        self._live: dict[str, tuple[object, bytes, str, float]] = {}  # version, body, etag, when checked
        self._live_locks = {"public": threading.Lock(), "dispatcher": threading.Lock()}

    def data(self) -> MapData:
        """The MapData of the provider's current network (rebuilt only when the network object changes; a new
        one starts building its address search index in the background at once)."""
        network = self.provider.network()
        with self._lock:
            if network is not self._network:
                self._data = MapData(network, self.options)
                self._network = network
                self._pages.clear()
                self._static.clear()
                self._live.clear()
                self._data.build_search_index_in_background()
            return self._data

    def warm(self, wait_s: float = 600.0, poll_s: float = 1.0) -> threading.Thread:
        """Build the map layers and the search index in a daemon thread as soon as the provider has a network
        (polling for ``wait_s`` at most), so the first member does not wait for them."""
        def run() -> None:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                try:
                    self.prepare()
                    return
                except LookupError:  # no territory loaded yet
                    time.sleep(poll_s)
                except Exception:  # noqa: BLE001 - a head start only (e.g. the service stopped meanwhile): the
                    return         # first viewer builds whatever is missing
        thread = threading.Thread(target=run, name="oms-maps-warm", daemon=True)
        thread.start()
        return thread

    def prepare(self) -> None:
        """Build (and gzip) what every public viewer fetches first, so the first viewers of a territory wait for
        nothing: the page, roads, basemap and live GeoJSON."""
        bodies = [self.page_body("public"), self.static_body("roads"), self.static_body("basemap"),
                  self.live_body("public")]
        for body, etag in bodies:
            if len(body) >= GZIP_MIN_BYTES:
                gzipped(etag, body)

    def page_body(self, kind: str) -> tuple[bytes, str]:
        """(body, etag) of the public or dispatcher page."""
        data = self.data()
        with self._lock:
            if kind not in self._pages:
                render = public_html if kind == "public" else dispatcher_html
                body = render(data, self.page).encode()
                self._pages[kind] = (body, etag_of(body))
            return self._pages[kind]

    def static_body(self, name: str) -> tuple[bytes, str]:
        """(body, etag) of a layer that changes only with the network: roads, basemap, network."""
        data = self.data()
        hit = self._static.get(name)
        if hit is None:
            body = getattr(data, f"{name}_body")()
            hit = self._static[name] = (body, etag_of(body))
        return hit

    def live_body(self, kind: str) -> tuple[bytes, str]:
        """(body, etag) of the public or dispatcher collection for the provider's current state: built once per
        state version, by one thread. The public one is reused for ``public_refresh_s`` without asking the
        provider, and while one thread refreshes it the others serve the current one (a storm's thousand viewers
        never queue behind a rebuild; their browsers cache it for longer anyway)."""
        data = self.data()
        refresh_s = self.public_refresh_s if kind == "public" else 0.0
        cached = self._live.get(kind)
        if cached is not None and refresh_s and time.monotonic() - cached[3] < refresh_s:
            return cached[1], cached[2]
        lock = self._live_locks[kind]
        if cached is not None and refresh_s:
            if not lock.acquire(blocking=False):
                return cached[1], cached[2]
        else:
            lock.acquire()
        try:
            state = self.provider.state()
            cached = self._live.get(kind)
            if state.version is not None and cached is not None and cached[0] == state.version:
                self._live[kind] = (*cached[:3], time.monotonic())
                return cached[1], cached[2]
            collection = data.public_collection(state) if kind == "public" else data.dispatcher_collection(state)
            body = dumps(collection)
            etag = etag_of(body)
            self._live[kind] = (state.version, body, etag, time.monotonic())
            return body, etag
        finally:
            lock.release()


def create_router(provider: MapProvider, page: PageConfig | None = None, options: MapOptions | None = None,
                  prefix: str = "/maps", dispatcher_dependencies: Sequence = (),
                  public_max_age_s: int = 10, warm: bool = True, public_refresh_s: float = 1.0) -> APIRouter:
    """An APIRouter serving both maps from ``provider``. See the module docstring for the routes. ``warm``:
    build the map layers and the search index in the background as soon as the provider has a territory.
    ``public_refresh_s``: how long the public GeoJSON is served without asking the provider for a newer state."""
    service = MapService(provider, page, options, public_refresh_s)
    router = APIRouter(prefix=prefix, tags=["maps"])
    guarded = [d if isinstance(d, DependsParam) else Depends(d) for d in dispatcher_dependencies]
    public_live = f"public, max-age={public_max_age_s}, stale-while-revalidate={public_max_age_s * 3}"
    asset_cache: dict[str, tuple[bytes, str, str]] = {}
    router.map_service = service  # for the service's workers (e.g. a snapshot publisher sharing the MapData)
    if warm:
        service.warm()

    @router.get("/", include_in_schema=False)
    def index() -> Response:
        body = (b'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Outage maps</title></head><body>'
                b'<h1>Outage maps</h1><ul><li><a href="public">Public outage map</a></li>'
                b'<li><a href="dispatcher">Dispatcher map</a></li></ul></body></html>')
        return Response(body, media_type=HTML)

    @router.get("/public", include_in_schema=False)
    def public_page(request: Request) -> Response:
        body, etag = service.page_body("public")
        return conditional(request, body, HTML, "public, max-age=60", etag)

    @router.get("/public.geojson", summary="Outages by area (no personal data)")
    def public_geojson(request: Request) -> Response:
        body, etag = service.live_body("public")
        return conditional(request, body, GEOJSON, public_live, etag)

    @router.get("/roads.geojson", summary="Roads drawn under the maps (OpenStreetMap, ODbL)")
    def roads_geojson(request: Request) -> Response:
        body, etag = service.static_body("roads")
        return conditional(request, body, GEOJSON, "public, max-age=86400", etag)

    @router.get("/basemap.geojson", summary="Buildings, place and street names (OpenStreetMap, ODbL)")
    def basemap_geojson(request: Request) -> Response:
        body, etag = service.static_body("basemap")
        return conditional(request, body, GEOJSON, "public, max-age=86400", etag)

    @router.get("/search", summary="Find an address or place: its area's outage facts (no personal data)",
                responses={404: {"description": "nothing similar"}, 422: {"description": "bad query"}})
    def search(q: Annotated[str, Query(max_length=200)], request: Request) -> Response:
        q = q.strip()
        if len(q) < 2 or CONTROL_CHARS.search(q):
            raise HTTPException(status_code=422, detail="type at least 2 characters of a street or place")
        data = service.data()
        if not data.search_ready:  # a big territory's index is still being built (see MapService.data)
            building = data.build_search_index_in_background()
            if building is not None:
                building.join(SEARCH_WAIT_S)  # a small territory's is ready in a moment
        if not data.search_ready:
            raise HTTPException(status_code=503, headers={"Retry-After": str(SEARCH_RETRY_AFTER_S)},
                                detail="the address search is starting up; try again in a few seconds")
        service.live_body("public")  # the facts of the current state
        match = data.search_index().search(q)
        if match is None:
            raise HTTPException(status_code=404, detail="no street or place in our area is like that; "
                                                        "try the street name alone, or your village")
        area = data.place_props(("area", match.area)) if match.area >= 0 else None
        place = data.place_props(("place", match.place))
        geometry = (data.areas.fine if area else data.areas.places).geometry[match.area if area else match.place]
        west, south, east, north = (round(float(x), 5) for x in geometry.bounds)
        body = dumps({"query": q, "label": match.label, "kind": match.kind, "area": area, "place": place,
                      "bounds": [[south, west], [north, east]], "others": list(match.others)})
        return conditional(request, body, "application/json", "public, max-age=10")

    @router.get("/dispatcher", include_in_schema=False, dependencies=guarded)
    def dispatcher_page(request: Request) -> Response:
        body, etag = service.page_body("dispatcher")
        return conditional(request, body, HTML, "private, no-cache", etag)

    @router.get("/dispatcher.geojson", summary="Events, crews and routes for dispatchers", dependencies=guarded)
    def dispatcher_geojson(request: Request) -> Response:
        body, etag = service.live_body("dispatcher")
        return conditional(request, body, GEOJSON, "private, no-cache", etag)

    @router.get("/network.geojson", summary="Feeder lines for the dispatcher map", dependencies=guarded)
    def network_geojson(request: Request) -> Response:
        body, etag = service.static_body("network")
        return conditional(request, body, GEOJSON, "private, max-age=300", etag)

    @router.get("/assets/{path:path}", include_in_schema=False)
    def asset(path: str, request: Request) -> Response:
        if path not in asset_cache:
            file = assets.resolve(path)
            if file is None:
                raise HTTPException(status_code=404, detail=f"no asset {path!r}")
            body = file.read_bytes()
            asset_cache[path] = (body, etag_of(body), assets.media_type(file))
        body, etag, media_type = asset_cache[path]
        return conditional(request, body, media_type, "public, max-age=3600", etag)

    return router
