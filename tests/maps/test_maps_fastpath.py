"""The members' map fast path: the routes' answers to the byte, from memory, and nothing it must not answer."""

from __future__ import annotations

import copy
import time
from dataclasses import replace

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from maps_territory import storm_state, territory

from api.maps import MapOptions, StaticProvider, create_router
from api.maps.fastpath import MapFastPath

PUBLIC = (
    "/maps/public",
    "/maps/public.geojson",
    "/maps/roads.geojson",
    "/maps/basemap.geojson",
    "/maps/assets/leaflet/leaflet.js",
    "/maps/assets/leaflet/leaflet.css",
    "/maps/assets/oms/oms-map.js",
    "/maps/assets/leaflet/images/layers.png",
)


def require_dispatcher(x_role: str | None = Header(default=None)):
    if x_role != "dispatcher":
        raise HTTPException(status_code=403, detail="dispatchers only")


class Counting:
    """ASGI app in front of the router that counts what reaches it (what the fast path handed on)."""

    def __init__(self, app) -> None:
        self.app, self.paths = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.paths.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def build(provider, refresh_s: float = 60.0):
    """(the router alone, the router behind the fast path, what reached that router)."""
    apps = []
    for _ in range(2):
        app = FastAPI()
        router = create_router(
            provider,
            options=MapOptions(min_customers=10),
            public_refresh_s=refresh_s,
            dispatcher_dependencies=[require_dispatcher],
            warm=False,
        )
        app.include_router(router)
        apps.append((app, router.map_service))
    (plain, _), (inner, service) = apps
    counting = Counting(inner)
    return TestClient(plain), TestClient(MapFastPath(counting, service, "/maps")), counting


@pytest.fixture
def net():
    return territory()


def answer(r) -> tuple[int, list[tuple[str, str]], bytes]:
    return r.status_code, sorted((k.lower(), v) for k, v in r.headers.multi_items()), r.content


def test_fast_answers_are_the_routes_answers(net):
    routes, fast, reached = build(StaticProvider(net, storm_state(net)))
    for path in PUBLIC:
        assert fast.get(path).status_code == 200, path  # the first one builds it, through the route
    reached.paths.clear()
    for path in PUBLIC:
        for encoding in ("gzip, deflate, br", "identity"):
            headers = {"Accept-Encoding": encoding}
            want, got = routes.get(path, headers=headers), fast.get(path, headers=headers)
            assert want.status_code == 200 and answer(got) == answer(want), (path, encoding)
            headers["If-None-Match"] = want.headers["etag"]
            want, got = routes.get(path, headers=headers), fast.get(path, headers=headers)
            assert want.status_code == 304 and answer(got) == answer(want), (path, encoding)
    assert reached.paths == []  # every one of them came from memory
    js = fast.get("/maps/assets/leaflet/leaflet.js", headers={"Accept-Encoding": "gzip"})
    assert (
        js.headers["content-encoding"] == "gzip" and b"Leaflet" in js.content[:500]
    )  # (httpx decompressed it)
    assert fast.get("/maps/public.geojson").json()["summary"]["outages"] == 2


def test_what_it_must_not_answer_goes_to_the_routes(net):
    _, fast, reached = build(StaticProvider(net, storm_state(net)))
    for path in PUBLIC:
        fast.get(path)
    fast.get("/maps/dispatcher.geojson", headers={"x-role": "dispatcher"})
    fast.get("/maps/dispatcher", headers={"x-role": "dispatcher"})
    reached.paths.clear()
    # the dispatcher's routes keep their guard: built and cached, still never from the fast path
    for path in ("/maps/dispatcher", "/maps/dispatcher.geojson", "/maps/network.geojson"):
        assert fast.get(path).status_code == 403, path
    assert fast.get("/maps/search", params={"q": "x"}).status_code == 422
    assert fast.get("/maps/assets/oms/%2e%2e/state.py").status_code == 404
    assert fast.get("/maps/assets/nope/x.js").status_code == 404
    assert fast.post("/maps/public.geojson").status_code == 405
    assert fast.get("/maps/public/", follow_redirects=False).status_code == 307  # the router redirects it
    assert len(reached.paths) == 8  # every one of them went to the routes
    assert [p for _, p in reached.paths[:3]] == [
        "/maps/dispatcher",
        "/maps/dispatcher.geojson",
        "/maps/network.geojson",
    ]


def test_a_refresh_that_is_due_goes_to_the_route_and_the_change_shows(net):
    provider = StaticProvider(net, storm_state(net))
    _, fast, reached = build(provider, refresh_s=0.2)
    first = fast.get("/maps/public.geojson")
    provider.current = replace(provider.current, events=provider.current.events[:1], version=2)
    assert fast.get("/maps/public.geojson").headers["etag"] == first.headers["etag"]  # within the interval
    time.sleep(0.3)
    reached.paths.clear()
    after = fast.get("/maps/public.geojson", headers={"If-None-Match": first.headers["etag"]})
    assert after.status_code == 200 and after.json()["summary"]["outages"] == 1
    assert reached.paths == [("GET", "/maps/public.geojson")]  # the route asked the provider, in a thread
    assert (
        fast.get("/maps/public.geojson", headers={"If-None-Match": after.headers["etag"]}).status_code == 304
    )
    assert reached.paths == [("GET", "/maps/public.geojson")]  # and the next one came from memory


def test_without_a_refresh_interval_every_read_asks_the_provider(net):
    _, fast, reached = build(StaticProvider(net, storm_state(net)), refresh_s=0)
    for _ in range(3):
        assert fast.get("/maps/public.geojson").status_code == 200
    assert len(reached.paths) == 3


def test_a_new_network_is_never_answered_from_the_old_ones_bodies(net):
    provider = StaticProvider(net, storm_state(net))
    _, fast, reached = build(provider)
    for path in PUBLIC[:4]:
        fast.get(path)
    provider.territory = copy.copy(net)  # another network object (an uploaded territory)
    reached.paths.clear()
    for path in PUBLIC[:4]:
        assert fast.get(path).status_code == 200
    assert [p for _, p in reached.paths] == list(PUBLIC[:4])  # rebuilt by the routes for the new network
    reached.paths.clear()
    fast.get("/maps/roads.geojson")
    assert reached.paths == []  # and from memory again once rebuilt


def test_no_territory_is_the_routes_answer(net):
    class Empty:
        def network(self):
            raise LookupError("no territory is loaded")

        def state(self):
            raise LookupError("no territory is loaded")

    app = FastAPI()
    router = create_router(Empty(), warm=False)
    app.include_router(router)

    @app.exception_handler(LookupError)
    async def _missing(_request, exc):
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": str(exc)}, status_code=503)

    client = TestClient(MapFastPath(app, router.map_service, "/maps"))
    assert client.get("/maps/public.geojson").status_code == 503
