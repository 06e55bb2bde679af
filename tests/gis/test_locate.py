"""Locating reports: ids, phones, addresses, coordinates; ambiguity and not-found are never dressed as matches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Point
from small import small_feeder

from gis.locate import Locator, normalize_address, normalize_phone
from gis.topology import build

ADDRESSES = {
    "sp1": ("Hauptstraße 12, 95445 Bayreuth", "+49 (0)921 555-0101", "M-001"),
    "sp2": ("Hauptstraße 12, 95445 Bayreuth", "+49 921 555 0102", "M-002"),  # a second flat in the same house
    "sp3": ("12 Main St., Springfield", "0921 5550103", "M-003"),
    "sp4": ("Mühlenweg 3, Heinersreuth", "+49 921 555 0104", "M-004"),
    "sp5": ("Bahnhofstr. 7, Bayreuth", "+49 921 555 0104", "M-005"),  # shares sp4's phone
}


@pytest.fixture(scope="module")
def net():
    net = small_feeder()
    sp = net.service_points
    sp["address"] = [ADDRESSES[s][0] for s in sp["sp_id"]]
    sp["phone"] = [ADDRESSES[s][1] for s in sp["sp_id"]]
    sp["meter"] = [ADDRESSES[s][2] for s in sp["sp_id"]]
    # spread them out so coordinates can tell them apart (sp1/sp2 stay co-located: one building)
    geoms = sp.geometry.tolist()
    geoms[2] = Point(11.5600, 49.9900)
    geoms[3] = Point(11.5610, 49.9800)
    sp["geometry"] = geoms
    net.service_points = sp.set_geometry("geometry")
    return net


@pytest.fixture(scope="module")
def loc(net):
    return Locator(net, build(net))


def test_account_found_with_normalisation(loc):
    for query in ("A-sp3", "a sp3", " A_SP3 "):
        m = loc.by_account(query)
        assert m.found and m.sp_id == "sp3" and m.by == "account"
    assert loc.by_account("A-sp3").device_id == "T2"  # with a topology: the transformer above it


def test_unknown_ids_are_not_found(loc):
    for m in (loc.by_account("A-sp99"), loc.by_meter("M-999"), loc.by_account("")):
        assert m.status == "not_found" and m.sp_id is None and m.sp_ids == ()
        assert m.message


def test_meter(loc):
    assert loc.by_meter("m 004").sp_id == "sp4"


def test_phone_formats(loc):
    assert loc.by_phone("0921 555 0103").sp_id == "sp3"
    assert loc.by_phone("+49 921 5550103").sp_id == "sp3"  # with country code, stored without
    assert loc.by_phone("(0921) 555-0101").sp_id == "sp1"  # stored as +49 (0)921 ...
    assert loc.by_phone("5550101").sp_id == "sp1"  # 7 local digits are enough when they are unique
    assert loc.by_phone("555").status == "not_found"  # too short to trust
    assert loc.by_phone("0921 555 9999").status == "not_found"


def test_shared_phone_is_ambiguous(loc):
    m = loc.by_phone("0921-555-0104")
    assert m.status == "ambiguous" and set(m.sp_ids) == {"sp4", "sp5"} and m.sp_id is None


def test_address_normalisation():
    assert normalize_address("Hauptstr. 12") == normalize_address("HAUPTSTRASSE 12") == "hauptstrasse 12"
    assert normalize_address("12 Main St.") == normalize_address("12 main street")
    assert normalize_address("Mühlenweg 3") == "muhlenweg 3"
    assert normalize_address("5 Oak Rd") == "5 oak road"
    assert normalize_phone("+49 (0)921 555-12") == "4992155512"


def test_address_exact_and_partial(loc):
    assert loc.by_address("12 main street, springfield").sp_id == "sp3"
    assert loc.by_address("Bahnhofstraße 7").sp_id == "sp5"  # all words in exactly one address
    assert loc.by_address("muehlenweg 3").status == "not_found"  # a spelling we do not guess at
    m = loc.by_address("Mühlenweg 4")
    assert m.status == "not_found" and "4" in m.message


def test_two_flats_at_one_address_are_ambiguous(loc):
    m = loc.by_address("Hauptstr. 12, Bayreuth")
    assert m.status == "ambiguous" and set(m.sp_ids) == {"sp1", "sp2"}
    m = loc.by_address("Bayreuth")
    assert m.status == "ambiguous" and set(m.sp_ids) == {"sp1", "sp2", "sp5"}


def test_coordinates_within_radius(loc):
    m = loc.by_coordinates(11.5601, 49.9901, radius_m=50)
    assert m.found and m.sp_id == "sp3" and 0 < m.distance_m < 20
    far = loc.by_coordinates(11.70, 49.90, radius_m=50)
    assert far.status == "not_found" and "50 m" in far.message
    both = loc.by_coordinates(11.5601, 50.0101, radius_m=200)  # sp1 and sp2 share a point
    assert both.status == "ambiguous" and set(both.sp_ids) == {"sp1", "sp2"}


def test_locate_tries_in_order(loc):
    assert loc.locate(account="nobody", phone="0921 5550103").sp_id == "sp3"
    m = loc.locate(account="nobody", address="Hauptstraße 12")
    assert m.status == "ambiguous"
    m = loc.locate(account="nobody", meter="none")
    assert m.status == "not_found" and m.by == "account+meter"
    with pytest.raises(ValueError, match="give an account"):
        loc.locate()


def _haversine(lon1, lat1, lon2, lat2):
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * np.arcsin(np.sqrt(h))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), radius=st.floats(20, 2000))
def test_nearest_many_agrees_with_brute_force(seed, radius):
    rng = np.random.default_rng(seed)
    net = small_feeder()
    n = 300
    lon = 11.5 + rng.random(n) * 0.1
    lat = 49.95 + rng.random(n) * 0.1
    sp = net.service_points.iloc[[0] * n].copy()
    sp["sp_id"] = [f"p{i}" for i in range(n)]
    sp["geometry"] = [Point(x, y) for x, y in zip(lon, lat, strict=True)]
    net.service_points = sp.set_geometry("geometry").reset_index(drop=True)
    loc = Locator(net)
    qlon = 11.5 + rng.random(200) * 0.1
    qlat = 49.95 + rng.random(200) * 0.1
    rows, dist = loc.nearest_many(qlon, qlat, radius)
    d = _haversine(qlon[:, None], qlat[:, None], lon[None, :], lat[None, :])
    best = d.argmin(axis=1)
    best_d = d[np.arange(len(qlon)), best]
    inside = best_d <= radius
    assert np.array_equal(rows >= 0, inside) or np.all(np.abs(best_d[(rows >= 0) != inside] - radius) < 1e-3)
    np.testing.assert_allclose(dist[inside], best_d[inside], rtol=1e-6, atol=1e-3)
    assert np.array_equal(rows[inside], best[inside])
    assert np.all(np.isinf(dist[rows < 0]))


def test_nearest_many_handles_nan_and_shapes(loc):
    rows, dist = loc.nearest_many([np.nan, 11.5601], [49.99, 49.9901], 50)
    assert rows[0] == -1 and np.isinf(dist[0]) and loc.sp_ids(rows)[1] == "sp3"
    with pytest.raises(ValueError, match="differ in shape"):
        loc.nearest_many([1.0, 2.0], [1.0], 10)
