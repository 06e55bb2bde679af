"""Both maps' GeoJSON and HTML: what members may see, what dispatchers need, nothing from a CDN."""

from __future__ import annotations

import json
import re

import pytest
from maps_territory import storm_state, territory

from api.maps.geojson import MapData, MapOptions, dumps
from api.maps.render import PageConfig, dispatcher_html, public_html
from gis.network import Network

URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


@pytest.fixture(scope="module")
def data():
    return MapData(territory(), MapOptions(cell_m=1000, min_customers=10))


def personal_strings(network):
    sp = network.service_points
    out = set()
    for col in ("sp_id", "account", "address", "phone", "name", "meter"):
        out |= {str(v) for v in sp[col] if str(v)}
    return out


def test_public_geojson_has_areas_and_no_personal_data(data):
    state = storm_state(data.network)
    body = dumps(data.public_collection(state)).decode()
    fc = json.loads(body)
    assert fc["summary"]["customers_out"] == 21 and fc["summary"]["outages"] == 2
    assert fc["updated_at"] == "2024-07-01T18:00:00Z"
    assert fc["features"], "the outage areas must be drawn"
    for f in fc["features"]:
        p = f["properties"]
        assert p["customers_served"] >= 10
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert set(p) == {"id", "level", "name", "place", "postcode", "customers_out", "customers_served",
                          "percent_out", "outages", "cause", "crew", "etr_from", "etr_by", "etr_confidence",
                          "etr_probability", "etr_pending", "restored_at"}
        assert p["level"] in ("place", "area")
    for secret in personal_strings(data.network) | {"EV-100", "EV-101", "FV", "TF1", "C-7", "Line crew 7"}:
        assert secret not in body, f"{secret!r} leaked into the public GeoJSON"
    for p in data.network.service_points.geometry:  # no exact location either
        assert f"{round(p.x, 5)},{round(p.y, 5)}" not in body.replace(" ", "")


def test_public_html_is_offline_safe_and_complete(data):
    page = public_html(data, PageConfig(utility_name="Fichtel Co-op"))
    assert URL.findall(page) == [], "the public page must not load anything from another host"
    for needed in ('src="assets/leaflet/leaflet.js"', 'href="assets/leaflet/leaflet.css"', "assets/oms/oms-map.js",
                   'id="oms-report-form"', 'id="oms-lookup-form"', 'id="oms-customers-out"', 'id="oms-percent"',
                   'id="oms-outages"', 'id="oms-updated-at"', "oms-legend", "public.geojson", "roads.geojson",
                   "L.control.layers", "Fichtel Co-op", '"maxZoom": 17', "basemap.geojson", "oms-search-form", "oms-list-body"):
        assert needed in page, needed
    for secret in personal_strings(data.network):
        assert secret not in page
    assert public_html(data) == public_html(data), "the same inputs must render the same bytes"


def test_report_urls_are_configurable(data):
    page = public_html(data, PageConfig(reports_url="/api/v1/reports", lookup_url="/api/v1/reports/{token}/status"))
    assert '"reports_url": "/api/v1/reports"' in page
    assert '"lookup_url": "/api/v1/reports/{token}/status"' in page
    with pytest.raises(ValueError, match="token"):
        PageConfig(lookup_url="/reports/status")


def test_tiles_are_optional_and_need_attribution(data):
    assert "L.tileLayer" not in public_html(data)
    page = public_html(data, PageConfig(tile_url="/tiles/{z}/{x}/{y}.png", tile_attribution="Local tiles"))
    assert "L.tileLayer" in page and "/tiles/{z}/{x}/{y}.png" in page
    with pytest.raises(ValueError, match="attribution"):
        PageConfig(tile_url="/tiles/{z}/{x}/{y}.png")


def test_roads_carry_the_openstreetmap_credit(data):
    roads = json.loads(data.roads_body())
    assert len(roads["features"]) == 2
    page = public_html(data)
    assert "OpenStreetMap contributors, ODbL" in page


def test_dispatcher_html_has_layers_filters_and_no_cdn(data):
    page = dispatcher_html(data)
    assert URL.findall(page) == []
    for needed in ('"Feeders"', '"Outage events"', '"Crews"', '"Planned routes"', "oms-filter-tier",
                   'id="oms-filter-class"', 'id="oms-filter-unassigned"', "dispatcher.geojson", "network.geojson",
                   '"preferCanvas": true'):
        assert needed in page, needed


def test_dispatcher_geojson_events_crews_routes_and_dead_sections(data):
    fc = data.dispatcher_collection(storm_state(data.network))
    by_layer = {}
    for f in fc["features"]:
        by_layer.setdefault(f["properties"]["layer"], []).append(f)
    assert [f["properties"]["id"] for f in by_layer["event"]] == ["EV-100", "EV-101"]
    ev = by_layer["event"][0]["properties"]
    assert ev["tier"] == 3 and ev["explanation"].startswith("9 calls") and ev["etr_high"] == "2024-07-01T21:30:00Z"
    assert by_layer["crew"][0]["properties"]["status"] == "en route"
    farm = by_layer["event"][1]["properties"]  # no ETR yet: the keys are left out, not null
    assert "etr_low" not in farm and "etr_probability" not in farm and None not in farm.values()
    route = by_layer["route"][0]["geometry"]["coordinates"]
    assert route[0] == [11.495, 49.995] and route[-1] == [11.53, 50.01]
    assert fc["summary"]["events_by_tier"] == {"P1": 0, "P2": 0, "P3": 1, "P4": 1}
    # de-energized: the fuse FV, the village transformers below it, and TF1 of the farm event
    lines = json.loads(data.network_body())["features"]
    dead = {lines[i]["properties"]["id"] for i in fc["deenergized"]}
    assert dead == {"FV", "TV1", "TV2", "TV3", "TV4", "TF1"}


def test_network_layer_marks_normally_open_points(data):
    lines = json.loads(data.network_body())["features"]
    tie = next(f for f in lines if f["properties"]["id"] == "TIE")
    assert tie["properties"]["open"] is True
    assert [f["properties"]["i"] for f in lines] == list(range(len(lines)))


def test_network_layer_flags_synthesized_devices():
    """An importer's rule-made device (an OpenDSS model's fuses and recloser) is flagged on the network layer the
    dispatcher map and the console draw, so nobody sends a crew to a fuse the utility may not have."""
    net = territory()
    seg = net.segments.copy()
    seg["synthesized"] = seg["segment_id"] == "FV"
    data = MapData(Network(nodes=net.nodes, segments=seg, service_points=net.service_points,
                           substations=net.substations, name=net.name))
    props = {f["properties"]["id"]: f["properties"] for f in json.loads(data.network_body())["features"]}
    assert props["FV"]["synth"] is True
    assert all("synth" not in p for sid, p in props.items() if sid != "FV")
