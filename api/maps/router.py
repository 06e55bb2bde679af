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
gzip-compressed to clients that accept it (compressed once per body, when it is built, not per request).

What every member's browser fetches (the public page, live GeoJSON, roads, basemap and assets) is held in memory as
:class:`Served` bodies, so :class:`api.maps.fastpath.MapFastPath` can answer them on the event loop without the
framework or a thread; these routes answer whatever it hands on (the first request, a refresh due, a new network).
"""

from __future__ import annotations

import gzip
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
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
#: Cache-Control of the public routes (the live GeoJSON's depends on the router's ``public_max_age_s``).
PAGE_CACHE = "public, max-age=60"
LAYER_CACHE = "public, max-age=86400"
ASSET_CACHE = "public, max-age=3600"


#: A search text: two characters at least that are not blanks, no control characters (as the route checks).
SEARCH_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"

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


def gzip_accepted(accept_encoding: str | None) -> bool:
    """True when an ``Accept-Encoding`` header value allows gzip."""
    return any(part.split(";")[0].strip() in ("gzip", "*") for part in (accept_encoding or "").split(","))


def accepts_gzip(request: Request) -> bool:
    return gzip_accepted(request.headers.get("accept-encoding"))


@dataclass(frozen=True, slots=True)
class Served:
    """A body as the maps serve it: its bytes, strong ETag and gzip form (None under ``GZIP_MIN_BYTES``)."""

    body: bytes
    etag: str
    gz: bytes | None = None

    @classmethod
    def of(cls, body: bytes, etag: str | None = None) -> Served:
        """``body`` with its ETag and compressed form, made now (call it off the event loop)."""
        etag = etag or etag_of(body)
        return cls(body, etag, gzipped(etag, body) if len(body) >= GZIP_MIN_BYTES else None)


def negotiate(served: Served, cache_control: str, accept_encoding: str | None,
              if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, content) for one request: ETag, Cache-Control and Vary always; the gzip form when the
    client accepts it (it has its own ETag, as RFC 9110 asks); an empty 304 when the client already has it. The
    router and the fast path both answer with this, so they answer alike."""
    compress = served.gz is not None and gzip_accepted(accept_encoding)
    tag = served.etag[:-1] + '-gz"' if compress else served.etag
    headers = {"ETag": tag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if etag_matches(if_none_match, tag):
        return 304, headers, b""
    if compress:
        headers["Content-Encoding"] = "gzip"
        return 200, headers, served.gz
    return 200, headers, served.body


def answer(request: Request, served: Served, media_type: str, cache_control: str) -> Response:
    """:func:`negotiate` as a Starlette response."""
    status, headers, content = negotiate(served, cache_control, request.headers.get("accept-encoding"),
                                         request.headers.get("if-none-match"))
    if status == 304:
        return Response(status_code=304, headers=headers)
    return Response(content=content, media_type=media_type, headers=headers)


def conditional(request: Request, body: bytes, media_type: str, cache_control: str,
                etag: str | None = None) -> Response:
    """``body`` with ETag and Cache-Control (gzip-compressed when the client accepts it, compressed once per
    ETag), or an empty 304 when the client already has it: :func:`answer` for a body built per request."""
    etag = etag or etag_of(body)
    compress = len(body) >= GZIP_MIN_BYTES and accepts_gzip(request)
    return answer(request, Served(body, etag, gzipped(etag, body) if compress else None), media_type,
                  cache_control)


class MapService:
    """Caches what the router serves: network layers and pages per network, live GeoJSON per state version."""

    def __init__(self, provider: MapProvider, page: PageConfig | None = None, options: MapOptions | None = None,
                 public_refresh_s: float = 1.0, public_live_cache: str = "public, max-age=10"):
        if not isinstance(provider, MapProvider):
            raise TypeError("provider must have network() and state() methods (see api.maps.state.MapProvider)")
        self.provider = provider
        self.public_refresh_s = public_refresh_s
        self.page = page or PageConfig()
        self.options = options or MapOptions()
        self._lock = threading.Lock()
        self._network = None
        self._data: MapData | None = None
        self.public_live_cache = public_live_cache
        self._pages: dict[str, Served] = {}
        self._static: dict[str, Served] = {}
        self._live: dict[str, tuple[object, Served, float]] = {}  # version, body, when checked
        self._live_locks = {"public": threading.Lock(), "dispatcher": threading.Lock()}
        self._assets: dict[str, tuple[Served, str]] = {}  # URL path -> body, media type
        #: Set once :meth:`warm` has built the layers and the search index (or given up).
        self.warmed = threading.Event()

    def data(self) -> MapData:
        """The MapData of the provider's current network (rebuilt only when the network object changes; a new
        one starts building its address search index in the background at once)."""
        return self._current()[0]

    def _current(self) -> tuple[MapData, dict[str, Served], dict[str, Served], dict]:
        """The MapData and the caches of its bodies, taken together (a body built from an older network goes into
        that network's caches, never into the current one's)."""
        network = self.provider.network()
        with self._lock:
            if network is not self._network:
                data = MapData(network, self.options)
                self._pages, self._static, self._live = {}, {}, {}
                self._data = data
                self._network = network  # last: MapService.ready serves from the caches of this network only
                data.build_search_index_in_background()
            return self._data, self._pages, self._static, self._live

    def warm(self, wait_s: float = 600.0, poll_s: float = 1.0) -> threading.Thread:
        """Build the map layers and the search index in a daemon thread as soon as the provider has a network
        (polling for ``wait_s`` at most), so the first member does not wait for them. ``warmed`` is set when it
        is done (or has given up)."""
        def run() -> None:
            deadline = time.monotonic() + wait_s
            try:
                while time.monotonic() < deadline:
                    try:
                        self.prepare()
                        self.data().search_index()  # (already building in the background: wait for it)
                        return
                    except LookupError:  # no territory loaded yet
                        time.sleep(poll_s)
                    except Exception:  # noqa: BLE001 - a head start only (e.g. the service stopped meanwhile):
                        return         # the first viewer builds whatever is missing
            finally:
                self.warmed.set()
        thread = threading.Thread(target=run, name="oms-maps-warm", daemon=True)
        thread.start()
        return thread

    def prepare(self) -> None:
        """Build (and gzip) what every public viewer fetches first, so the first viewers of a territory wait for
        nothing: the page, roads, basemap and live GeoJSON, and the page's assets."""
        self.page_served("public")
        self.static_served("roads")
        self.static_served("basemap")
        self.live_served("public")
        for path in (*assets.JS_FILES, *assets.CSS_FILES):
            self.asset_served(path)

    def page_body(self, kind: str) -> tuple[bytes, str]:
        """(body, etag) of the public or dispatcher page."""
        served = self.page_served(kind)
        return served.body, served.etag

    def page_served(self, kind: str) -> Served:
        data, pages, _, _ = self._current()
        with self._lock:
            if kind not in pages:
                render = public_html if kind == "public" else dispatcher_html
                pages[kind] = Served.of(render(data, self.page).encode())
            return pages[kind]

    def static_body(self, name: str) -> tuple[bytes, str]:
        """(body, etag) of a layer that changes only with the network: roads, basemap, network."""
        served = self.static_served(name)
        return served.body, served.etag

    def static_served(self, name: str) -> Served:
        data, _, static, _ = self._current()
        hit = static.get(name)
        if hit is None:
            hit = static[name] = Served.of(getattr(data, f"{name}_body")())
        return hit

    def asset_served(self, path: str) -> tuple[Served, str] | None:
        """(body, media type) of a static asset (``leaflet/leaflet.js``), None when there is no such file."""
        hit = self._assets.get(path)
        if hit is None:
            file = assets.resolve(path)
            if file is None:
                return None
            hit = self._assets[path] = (Served.of(file.read_bytes()), assets.media_type(file))
        return hit

    def live_body(self, kind: str) -> tuple[bytes, str]:
        """(body, etag) of the public or dispatcher collection for the provider's current state: built once per
        state version, by one thread. The public one is reused for ``public_refresh_s`` without asking the
        provider, and while one thread refreshes it the others serve the current one (a storm's thousand viewers
        never queue behind a rebuild; their browsers cache it for longer anyway)."""
        served = self.live_served(kind)
        return served.body, served.etag

    def live_served(self, kind: str) -> Served:
        data, _, _, live = self._current()
        refresh_s = self.public_refresh_s if kind == "public" else 0.0
        cached = live.get(kind)
        if cached is not None and refresh_s and time.monotonic() - cached[2] < refresh_s:
            return cached[1]
        lock = self._live_locks[kind]
        if cached is not None and refresh_s:
            if not lock.acquire(blocking=False):
                return cached[1]
        else:
            lock.acquire()
        try:
            state = self.provider.state()
            cached = live.get(kind)
            if state.version is not None and cached is not None and cached[0] == state.version:
                live[kind] = (cached[0], cached[1], time.monotonic())
                return cached[1]
            collection = data.public_collection(state) if kind == "public" else data.dispatcher_collection(state)
            served = Served.of(dumps(collection))
            live[kind] = (state.version, served, time.monotonic())
            return served
        finally:
            lock.release()

    def ready(self, route: str) -> tuple[Served, str, str] | None:
        """(body, media type, Cache-Control) of a public route (``/public``, ``/public.geojson``,
        ``/roads.geojson``, ``/basemap.geojson``, ``/assets/...``) when it is built, current and compressed —
        without building, waiting, or asking the provider for a state: what the event loop may answer itself
        (:class:`api.maps.fastpath.MapFastPath`). None when the route has to: a first request, a new network, a
        live refresh due that no other thread is doing yet, or anything else."""
        try:
            if self.provider.network() is not self._network:
                return None
        except Exception:  # noqa: BLE001 - no territory (or a provider failing): the route answers that
            return None
        if route == "/public.geojson":
            cached = self._live.get("public")
            if cached is None or not self.public_refresh_s:
                return None
            if time.monotonic() - cached[2] >= self.public_refresh_s and not self._live_locks["public"].locked():
                return None  # due for a refresh: the route does it in a thread (the next ones get this one)
            return cached[1], GEOJSON, self.public_live_cache
        if route == "/public":
            served = self._pages.get("public")
            return (served, HTML, PAGE_CACHE) if served is not None else None
        if route in ("/roads.geojson", "/basemap.geojson"):
            served = self._static.get(route[1:-len(".geojson")])
            return (served, GEOJSON, LAYER_CACHE) if served is not None else None
        if route.startswith("/assets/"):
            hit = self._assets.get(route[len("/assets/"):])
            return (hit[0], hit[1], ASSET_CACHE) if hit is not None else None
        return None


def create_router(provider: MapProvider, page: PageConfig | None = None, options: MapOptions | None = None,
                  prefix: str = "/maps", dispatcher_dependencies: Sequence = (),
                  public_max_age_s: int = 10, warm: bool = True, public_refresh_s: float = 1.0) -> APIRouter:
    """An APIRouter serving both maps from ``provider``. See the module docstring for the routes. ``warm``:
    build the map layers and the search index in the background as soon as the provider has a territory.
    ``public_refresh_s``: how long the public GeoJSON is served without asking the provider for a newer state."""
    public_live = f"public, max-age={public_max_age_s}, stale-while-revalidate={public_max_age_s * 3}"
    service = MapService(provider, page, options, public_refresh_s, public_live)
    router = APIRouter(prefix=prefix, tags=["maps"])
    guarded = [d if isinstance(d, DependsParam) else Depends(d) for d in dispatcher_dependencies]
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
        return answer(request, service.page_served("public"), HTML, PAGE_CACHE)

    @router.get("/public.geojson", summary="Outages by area (no personal data)")
    def public_geojson(request: Request) -> Response:
        return answer(request, service.live_served("public"), GEOJSON, public_live)

    @router.get("/roads.geojson", summary="Roads drawn under the maps (OpenStreetMap, ODbL)")
    def roads_geojson(request: Request) -> Response:
        return answer(request, service.static_served("roads"), GEOJSON, LAYER_CACHE)

    @router.get("/basemap.geojson", summary="Buildings, place and street names (OpenStreetMap, ODbL)")
    def basemap_geojson(request: Request) -> Response:
        return answer(request, service.static_served("basemap"), GEOJSON, LAYER_CACHE)

    @router.get("/search", summary="Find an address or place: its area's outage facts (no personal data)",
                responses={404: {"description": "nothing similar"}, 422: {"description": "bad query"}})
    def search(q: Annotated[str, Query(max_length=200, pattern=SEARCH_PATTERN)], request: Request) -> Response:
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
        return answer(request, service.page_served("dispatcher"), HTML, "private, no-cache")

    @router.get("/dispatcher.geojson", summary="Events, crews and routes for dispatchers", dependencies=guarded)
    def dispatcher_geojson(request: Request) -> Response:
        return answer(request, service.live_served("dispatcher"), GEOJSON, "private, no-cache")

    @router.get("/network.geojson", summary="Feeder lines for the dispatcher map", dependencies=guarded)
    def network_geojson(request: Request) -> Response:
        return answer(request, service.static_served("network"), GEOJSON, "private, max-age=300")

    @router.get("/assets/{path:path}", include_in_schema=False)
    def asset(path: str, request: Request) -> Response:
        hit = service.asset_served(path)
        if hit is None:
            raise HTTPException(status_code=404, detail=f"no asset {path!r}")
        return answer(request, hit[0], hit[1], ASSET_CACHE)

    return router
