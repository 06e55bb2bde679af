"""The static snapshot publisher: files and headers for any web server, on change, at most every N seconds."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from maps_territory import NOW, storm_state, territory

from api.maps.geojson import MapData, MapOptions, etag_of
from api.maps.snapshot import SnapshotPublisher, write_snapshot


class Clock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def data():
    return MapData(territory(), MapOptions(min_customers=10))


def test_first_publish_writes_a_servable_directory(tmp_path, data):
    clock = Clock(NOW)
    pub = SnapshotPublisher(tmp_path, data, min_interval_s=30, clock=clock)
    result = pub.publish(storm_state(data.network))
    assert result.status == "written"
    for name in ("public.html", "public.geojson", "roads.geojson", "assets/leaflet/leaflet.js",
                 "assets/leaflet/leaflet.css", "assets/oms/oms-map.js", "assets/oms/oms-map.css", "_headers",
                 "etags.json"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "dispatcher.html").exists(), "the dispatcher map is not published unless asked"
    body = (tmp_path / "public.geojson").read_bytes()
    etags = json.loads((tmp_path / "etags.json").read_text())
    assert etags["public.geojson"]["etag"] == etag_of(body) == result.etag
    assert "max-age=30" in etags["public.geojson"]["cache_control"]
    headers = (tmp_path / "_headers").read_text()
    assert "/public.geojson\n  Cache-Control: public, max-age=30" in headers and result.etag in headers
    page = (tmp_path / "public.html").read_text()
    assert re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", page) == []
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert (tmp_path / ref).is_file(), ref


def test_rate_limit_and_change_detection(tmp_path, data):
    clock = Clock(NOW)
    pub = SnapshotPublisher(tmp_path, data, min_interval_s=30, clock=clock)
    state = storm_state(data.network)
    first = pub.publish(state)
    assert first.status == "written"
    changed = replace(state, events=state.events[:1], updated_at=NOW + timedelta(seconds=10))
    clock.advance(10)
    deferred = pub.publish(changed)
    assert deferred.status == "deferred" and deferred.next_allowed == NOW + timedelta(seconds=30)
    assert json.loads((tmp_path / "public.geojson").read_text())["summary"]["outages"] == 2  # untouched
    clock.advance(25)
    second = pub.publish(changed)
    assert second.status == "written" and second.etag != first.etag
    assert json.loads((tmp_path / "public.geojson").read_text())["summary"]["outages"] == 1
    assert second.files == ("public.geojson",), "pages and assets are written once, not on every change"
    # only the time stamp moved: not a change, nothing rewritten
    clock.advance(60)
    same = pub.publish(replace(changed, updated_at=NOW + timedelta(minutes=5)))
    assert same.status == "unchanged" and same.etag == second.etag
    # forcing ignores the interval but still needs a change to write
    clock.advance(1)
    forced = pub.publish(state, force=True)
    assert forced.status == "written"


def test_write_snapshot_includes_the_dispatcher_map(tmp_path, data):
    result = write_snapshot(tmp_path, data, storm_state(data.network))
    assert result.status == "written"
    for name in ("dispatcher.html", "dispatcher.geojson", "network.geojson", "public.html", "public.geojson"):
        assert (tmp_path / name).is_file(), name
    etags = json.loads((tmp_path / "etags.json").read_text())
    for private in ("dispatcher.html", "dispatcher.geojson", "network.geojson"):  # never cached by a shared CDN
        assert etags[private]["cache_control"].startswith("private"), private
    assert etags["public.geojson"]["cache_control"].startswith("public")
    assert not list(tmp_path.glob(".*.tmp")), "no temporary files left behind"


def test_naive_clock_is_refused(tmp_path, data):
    pub = SnapshotPublisher(tmp_path, data, clock=lambda: NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone"):
        pub.publish(storm_state(data.network))
