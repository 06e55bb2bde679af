"""The router on a bare FastAPI app: pages, GeoJSON with ETag/304, live changes, assets, the dispatcher guard."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from maps_territory import storm_state, territory

from api.maps import MapOptions, StaticProvider, create_router
from api.maps.router import etag_matches


def require_dispatcher(x_role: str | None = Header(default=None)):
    if x_role != "dispatcher":
        raise HTTPException(status_code=403, detail="dispatchers only")


@pytest.fixture(scope="module")
def setup():
    net = territory()
    provider = StaticProvider(net, storm_state(net))
    app = FastAPI()
    app.include_router(create_router(provider, options=MapOptions(min_customers=10), public_refresh_s=0,
                                     dispatcher_dependencies=[require_dispatcher]))
    return provider, TestClient(app)


DISPATCHER = {"x-role": "dispatcher"}


def test_pages_are_served(setup):
    _, client = setup
    r = client.get("/maps/public")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "oms-report-form" in r.text
    assert client.get("/maps/").status_code == 200
    assert client.get("/maps/dispatcher", headers=DISPATCHER).status_code == 200


def test_public_geojson_etag_and_304(setup):
    _, client = setup
    r = client.get("/maps/public.geojson")
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    etag = r.headers["etag"]
    assert "max-age" in r.headers["cache-control"] and "public" in r.headers["cache-control"]
    again = client.get("/maps/public.geojson", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag


def test_a_change_in_state_changes_the_etag(setup):
    provider, client = setup
    before = client.get("/maps/public.geojson")
    old = provider.current
    try:
        provider.current = replace(old, events=old.events[:1], version=2)
        after = client.get("/maps/public.geojson", headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200
        assert after.json()["summary"]["outages"] == 1
        assert after.headers["etag"] != before.headers["etag"]
    finally:
        provider.current = old


def test_dispatcher_routes_are_guarded(setup):
    _, client = setup
    for path in ("/maps/dispatcher", "/maps/dispatcher.geojson", "/maps/network.geojson"):
        assert client.get(path).status_code == 403, path
        assert client.get(path, headers=DISPATCHER).status_code == 200, path
    fc = client.get("/maps/dispatcher.geojson", headers=DISPATCHER).json()
    assert fc["summary"]["events"] == 2 and fc["deenergized"]


def test_assets_are_served_locally_with_types(setup):
    _, client = setup
    js = client.get("/maps/assets/leaflet/leaflet.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and b"Leaflet" in js.content[:500]
    assert client.get("/maps/assets/leaflet/leaflet.css").headers["content-type"].startswith("text/css")
    assert client.get("/maps/assets/leaflet/images/layers.png").headers["content-type"] == "image/png"
    assert client.get("/maps/assets/oms/oms-map.js").status_code == 200
    etag = js.headers["etag"]
    assert client.get("/maps/assets/leaflet/leaflet.js", headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("path", ["/maps/assets/oms/../../router.py", "/maps/assets/nope/x.js",
                                  "/maps/assets/leaflet/", "/maps/assets/oms/%2e%2e/state.py"])
def test_unknown_or_escaping_asset_paths_are_404(setup, path):
    _, client = setup
    assert client.get(path).status_code == 404


def test_every_asset_a_page_references_is_served(setup):
    _, client = setup
    import re

    for page in ("/maps/public", "/maps/dispatcher"):
        html = client.get(page, headers=DISPATCHER).text
        refs = re.findall(r'(?:src|href)="(assets/[^"]+)"', html)
        assert len(refs) >= 4
        for ref in refs:
            assert client.get(f"/maps/{ref}").status_code == 200, ref


def test_etag_matching_rules():
    assert etag_matches('"a", W/"b"', '"b"')
    assert etag_matches("*", '"x"')
    assert not etag_matches(None, '"x"')
    assert not etag_matches('"a"', '"b"')


def test_provider_must_fit_the_interface():
    with pytest.raises(TypeError, match="network"):
        create_router(object())


def test_public_geojson_is_reused_for_the_refresh_interval():
    net = territory()
    provider = StaticProvider(net, storm_state(net))
    app = FastAPI()
    app.include_router(create_router(provider, options=MapOptions(min_customers=10), public_refresh_s=60))
    client = TestClient(app)
    first = client.get("/maps/public.geojson").headers["etag"]
    provider.current = replace(provider.current, events=provider.current.events[1:], version=99)
    # within the interval the provider is not asked again: the same bytes, no rebuild per request
    assert client.get("/maps/public.geojson").headers["etag"] == first
