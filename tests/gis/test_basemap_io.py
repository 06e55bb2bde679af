"""The territory GeoPackage carries the public map's basemap (places, streets, buildings, addresses)."""

from __future__ import annotations

from api.maps.basemap import basemap_collection, basemap_of
from gis.basemap import LAYERS, Basemap
from gis.io import read_territory, write_territory
from tests.gis.small import small_feeder


def basemap() -> Basemap:
    return Basemap(
        places=[{"name": "Bindlach", "kind": "village", "lon": 11.53, "lat": 50.0},
                {"name": "Gemein", "kind": "hamlet", "lon": 11.55, "lat": 49.99}],
        streets=[{"name": "Lindenstraße", "highway": "residential", "coords": [[11.52, 50.0], [11.53, 50.00012]]}],
        buildings=[[[11.5, 50.0], [11.5001, 50.0], [11.5001, 50.0001], [11.5, 50.0]]],
        addresses=[{"street": "Lindenstraße", "housenumber": "3a", "postcode": "95463", "city": "Bindlach",
                    "lon": 11.52001, "lat": 50.00002}],
        attribution="© OpenStreetMap contributors, ODbL (test)",
    )


def test_basemap_round_trips_through_the_territory_file(tmp_path):
    net = small_feeder()
    net.basemap = basemap()
    back = read_territory(write_territory(net, tmp_path / "t.gpkg"))
    assert back.basemap == net.basemap
    # what the served public map draws is the same as from the network it was written from
    assert basemap_collection(basemap_of(back)) == basemap_collection(basemap_of(net))


def test_territory_without_basemap_has_none(tmp_path):
    import pyogrio

    path = write_territory(small_feeder(), tmp_path / "t.gpkg")
    assert not {str(n) for n, _ in pyogrio.list_layers(path)} & set(LAYERS.values())
    assert getattr(read_territory(path), "basemap", None) is None


def test_empty_basemap_round_trips(tmp_path):
    net = small_feeder()
    net.basemap = Basemap()
    back = read_territory(write_territory(net, tmp_path / "t.gpkg"))
    assert back.basemap == Basemap()
