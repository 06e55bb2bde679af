"""Places people recognise, address search, restored areas, and the privacy of every public answer."""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from maps_territory import NOW, storm_state, territory

from api.maps import MapOptions, PageConfig, StaticProvider, create_router
from api.maps import router as maps_router
from api.maps.geojson import MapData
from api.maps.search import AddressIndex, normalize


def placed_territory():
    """The test territory with German-style addresses and places: a village (20), farms (3) and a town (30)."""
    net = territory()
    sp = net.service_points
    address, place = [], []
    for sp_id in sp["sp_id"]:
        n = len(address) + 1
        if sp_id.startswith("sp-v"):
            address.append(f"Lindenstraße {n}, 95512 Oberdorf")
            place.append("Oberdorf")
        elif sp_id.startswith("sp-farm"):
            address.append(f"Feldweg {n}, 95463 Einödhof")
            place.append("Einödhof")
        else:
            address.append(f"Marktplatz {n}, 95445 Neustadt")
            place.append("Neustadt")
    net.service_points = sp.assign(address=address, place=place)
    return net


@pytest.fixture(scope="module")
def net():
    return placed_territory()


@pytest.fixture()
def data(net):
    return MapData(net, MapOptions(cell_m=500, min_customers=10))


def test_places_are_named_nest_their_areas_and_keep_the_floor(data):
    areas = data.areas
    assert areas.places.customers_served.min() >= 10 and areas.fine.customers_served.min() >= 10
    assert set(areas.place_names) == {"Oberdorf", "Neustadt"}  # the 3 farms joined the nearest place
    assert "Einödhof" in sum(areas.place_members, ())  # ... and can still be searched for
    # every fine area lies in one place, and a place serves exactly its fine areas' customers
    for p in range(areas.places.n_areas):
        inside = np.flatnonzero(areas.place_of_area == p)
        assert areas.fine.customers_served[inside].sum() == areas.places.customers_served[p]
    assert np.array_equal(areas.place_of_area[areas.fine.area_of_sp], areas.places.area_of_sp)


def test_public_collection_counts_places_and_areas_consistently(data):
    fc = data.public_collection(storm_state(data.network))
    places = [f["properties"] for f in fc["features"] if f["properties"]["level"] == "place"]
    fine = [f["properties"] for f in fc["features"] if f["properties"]["level"] == "area"]
    assert {p["name"] for p in places} == {"Oberdorf"}  # the village fuse and the farm (merged into Oberdorf)
    assert sum(p["customers_out"] for p in places) == fc["summary"]["customers_out"] == 21
    assert sum(a["customers_out"] for a in fine) == 21
    village = places[0]
    assert village["etr_by"] == "2024-07-01T21:30:00Z" and village["etr_confidence"] == "medium"  # a 90-minute window
    assert village["crew"] == "en route" and village["etr_pending"]  # the farm has no ETR yet


def test_restored_areas_stay_a_while_then_go(data):
    state = storm_state(data.network)
    data.public_collection(state)
    later = replace(state, events=(), updated_at=NOW + timedelta(minutes=20), version=2)
    fc = data.public_collection(later)
    restored = [f["properties"] for f in fc["features"]]
    assert restored and all(p["restored_at"] == "2024-07-01T18:20:00Z" and p["customers_out"] == 0 for p in restored)
    assert fc["summary"]["restored_areas"] == 1
    gone = replace(later, updated_at=NOW + timedelta(hours=3), version=3)
    assert data.public_collection(gone)["features"] == []
    again = data.public_collection(replace(state, updated_at=NOW + timedelta(hours=4), version=4))
    assert all(f["properties"]["restored_at"] is None for f in again["features"])  # out again is out


def test_normalize_forgives_case_accents_and_street_spellings():
    assert normalize("Lindenstraße 5") == normalize("lindenstrasse 5") == normalize("LINDENSTR. 5") == "lindenstr 5"
    assert normalize("Einödhof") == "einodhof"


def test_search_forgives_typos_and_missing_numbers_and_reveals_no_one(data):
    index = data.search_index()
    exact = index.search("Lindenstraße 3, Oberdorf")
    typo = index.search("lindnstrase 3")
    street = index.search("Lindenstr")
    assert exact.label == "Lindenstraße 3, 95512 Oberdorf" and typo.label == exact.label
    assert street.label == "Lindenstraße, 95512 Oberdorf" and street.area == exact.area
    # a number no customer has gets the same shape of answer (the nearest number's area), as typed
    nobody = index.search("Lindenstraße 999")
    assert nobody.label == "Lindenstraße 999, 95512 Oberdorf" and nobody.kind == exact.kind == "street"
    place = index.search("Einodhof")
    assert place.kind == "place" and data.areas.place_names[place.place] == "Oberdorf"
    assert index.search("zzzz qqqq") is None and index.search("3") is None


def test_search_index_scales_by_street_not_by_customer():
    n = 20_000
    addresses = [f"Straße {i % 500} {i // 500 + 1}, 9{i % 7:04d} Ort {i % 50}" for i in range(n)]
    index = AddressIndex(addresses, np.arange(n) % 100, np.arange(100) % 10, [f"Ort {i}" for i in range(10)])
    assert len(index) <= 500 * 50
    hit = index.search("strasse 17 7, ort 17")
    assert hit is not None and hit.kind == "street"


def client(net, **page):
    state = storm_state(net)
    app = FastAPI()
    app.include_router(create_router(StaticProvider(net, state), options=MapOptions(cell_m=500, min_customers=10),
                                     page=PageConfig(**page), public_refresh_s=0))
    return TestClient(app)


def test_no_public_answer_carries_personal_data(net):
    c = client(net, utility_phone="+49 921 555 0100")
    bodies = {}
    typed = {"Lindenstraße 3, 95512 Oberdorf", "Feldweg 21, 95463 Einödhof"}  # echoed back as typed: allowed
    for path in ("/maps/public", "/maps/public.geojson", "/maps/basemap.geojson", "/maps/roads.geojson",
                 "/maps/search?q=Lindenstrasse+3", "/maps/search?q=Marktplatz", "/maps/search?q=Feldweg+21",
                 "/maps/search?q=Feldweg"):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text)
        bodies[path] = r.text
    sp = net.service_points
    secrets = set()
    for col in ("sp_id", "account", "phone", "name", "meter", "address"):
        secrets |= {str(v) for v in sp[col] if str(v)}
    secrets -= typed
    for path, body in bodies.items():
        for secret in secrets:
            assert secret not in body, f"{secret!r} leaked in {path}"
        flat = body.replace(" ", "")
        for p in sp.geometry:
            for decimals in (4, 5, 6):
                assert f"{round(p.x, decimals)},{round(p.y, decimals)}" not in flat, f"a location leaked in {path}"
    assert "+49 921 555 0100" in bodies["/maps/public"]  # the utility's own number is the one phone shown


def test_search_route_answers_area_facts_or_says_why_not(net):
    c = client(net)
    r = c.get("/maps/search", params={"q": "lindenstr 4"})
    body = r.json()
    assert body["label"] == "Lindenstraße 4, 95512 Oberdorf"
    assert body["area"]["customers_out"] == 21 and body["place"]["name"] == "Oberdorf"
    assert body["area"]["level"] == "area" and len(body["bounds"]) == 2
    calm = c.get("/maps/search", params={"q": "Marktplatz"}).json()
    assert calm["area"]["customers_out"] == 0 and calm["area"]["restored_at"] is None
    assert c.get("/maps/search", params={"q": "x"}).status_code == 422
    assert c.get("/maps/search", params={"q": "a\x01b"}).status_code == 422
    assert c.get("/maps/search", params={"q": "y" * 201}).status_code == 422
    missing = c.get("/maps/search", params={"q": "qqqq zzzz"})
    assert missing.status_code == 404 and "street" in missing.text


def test_map_data_goes_gzip_compressed_with_its_own_etag(net):
    c = client(net)
    plain = c.get("/maps/public.geojson", headers={"Accept-Encoding": "identity"})
    packed = c.get("/maps/public.geojson", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert packed.headers["etag"] != plain.headers["etag"] and packed.headers["vary"] == "Accept-Encoding"
    assert json.loads(packed.content) == json.loads(plain.content)  # httpx decoded it
    again = c.get("/maps/public.geojson", headers={"Accept-Encoding": "gzip",
                                                     "If-None-Match": packed.headers["etag"]})
    assert again.status_code == 304
    raw = gzip.compress(plain.content)
    assert len(raw) < len(plain.content)


def test_search_answers_503_until_its_index_is_built(net, monkeypatch):
    gate = threading.Event()
    build = MapData._build_search_index

    def slow(self):
        gate.wait(30)
        return build(self)

    monkeypatch.setattr(MapData, "_build_search_index", slow)
    monkeypatch.setattr(maps_router, "SEARCH_WAIT_S", 0.05)
    c = client(net)
    r = c.get("/maps/search", params={"q": "lindenstr 4"})
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    gate.set()
    for _ in range(100):
        r = c.get("/maps/search", params={"q": "lindenstr 4"})
        if r.status_code == 200:
            break
        time.sleep(0.1)
    assert r.status_code == 200 and r.json()["label"] == "Lindenstraße 4, 95512 Oberdorf"


def test_the_router_builds_the_search_index_when_the_territory_loads(net):
    router = create_router(StaticProvider(net, storm_state(net)), options=MapOptions(cell_m=500, min_customers=10))
    service = router.map_service
    for _ in range(300):
        if service._data is not None and service._data.search_ready:
            break
        time.sleep(0.1)
    assert service._data.search_ready
