"""Locating reports at the API edge: by address (found, ambiguous, not found), phone and id normalisation, the
order of fields, and the service's own look-ups (meters, feeders) over the territory."""

from __future__ import annotations

import pytest
from service_helpers import count, make_client
from shapely.geometry import Point
from small import small_feeder
from sqlalchemy import select

from api.service.territory import Directory, phone_digits
from api.store.db import Database
from api.store.models import Report

#: sp -> (address, phone, meter); sp1 and sp2 are two flats in one house, sp4 and sp5 share a phone number.
ON_FILE = {
    "sp1": ("Hauptstraße 12, 95445 Bayreuth", "+49 (0)921 555-0101", "M-001"),
    "sp2": ("Hauptstraße 12, 95445 Bayreuth", "+49 921 555 0102", "M-002"),
    "sp3": ("12 Main St., Springfield", "0921 5550103", "M-003"),
    "sp4": ("Mühlenweg 3, Heinersreuth", "+49 921 555 0104", "M-004"),
    "sp5": ("Bahnhofstr. 7, Bayreuth", "+49 921 555 0104", "M-005"),
}


def territory():
    net = small_feeder()
    sp = net.service_points
    for i, column in enumerate(("address", "phone", "meter")):
        sp[column] = [ON_FILE[s][i] for s in sp["sp_id"]]
    geoms = sp.geometry.tolist()
    geoms[3] = Point(11.5610, 49.9800)  # sp4 a little apart from its transformer
    sp["geometry"] = geoms
    net.service_points = sp.set_geometry("geometry")
    return net


@pytest.fixture
def client(db_url, tokens):
    with make_client(db_url, tokens, network=territory()) as c:
        yield c


def stored_sp(db_url, reference: str) -> str | None:
    db = Database(db_url)
    try:
        with db.read() as s:
            return s.scalar(select(Report.sp_id).where(Report.reference == reference))
    finally:
        db.dispose()


@pytest.mark.parametrize(("address", "sp"), [
    ("Bahnhofstraße 7, Bayreuth", "sp5"),  # the stored "Bahnhofstr." spelled out
    ("bahnhofstr 7", "sp5"),  # a part of the address that fits one service point
    ("12 Main Street", "sp3"),
    ("Mühlenweg 3", "sp4"),
    ("muhlenweg 3 heinersreuth", "sp4"),  # accents folded
])
def test_report_by_address_is_located(client, db_url, address, sp):
    r = client.post("/reports", json={"address": address})
    assert r.status_code == 202, r.text
    assert stored_sp(db_url, r.json()["reference"]) == sp


def test_report_by_address_reaches_the_engine(client):
    ref = client.post("/reports", json={"address": "12 Main St, Springfield"}).json()["reference"]
    client.wait_processed()
    status = client.get(f"/reports/{ref}").json()
    assert status["status"] == "linked" and status["event"]["customers_out"] >= 3  # sp3 has 3 customers


@pytest.mark.parametrize("address", ["Hauptstraße 12, Bayreuth",  # two flats in one house
                                     "Bayreuth"])  # fits three service points
def test_ambiguous_address_is_refused_not_guessed(client, db_url, address):
    # refusals name the field to gateways (call takers, IVR); members get one answer (test_edge_public.py)
    r = client.post("/reports", json={"address": address}, headers=client.as_("integration"))
    assert r.status_code == 422, r.text  # several fit: the report cannot be taken as it is
    err = r.json()["error"]
    assert "ambiguous" in err["message"] and "account" in err["message"]  # says what would settle it
    assert err["details"][0]["field"] == "body.address"
    assert "service points fit" in err["details"][0]["message"]
    assert "sp1" not in str(err)  # the candidates are not shown to the public
    assert count(db_url, Report) == 0


@pytest.mark.parametrize(("address", "needle"), [("Lindenallee 4", "lindenallee"),
                                                 ("Hauptstraße 99", "99"),  # street known, number not
                                                 ("  ,; ", "empty address")])
def test_unknown_address_is_not_found(client, db_url, address, needle):
    r = client.post("/reports", json={"address": address}, headers=client.as_("integration"))
    assert r.status_code == 404, r.text  # names no one (a well-formed id that names nothing is 404, as elsewhere)
    err = r.json()["error"]
    assert "not found" in err["message"] and needle in err["details"][0]["message"]
    assert count(db_url, Report) == 0


def test_fields_are_tried_in_order_and_the_first_exact_match_wins(client, db_url):
    def sp_of(body):
        r = client.post("/reports", json=body)
        assert r.status_code == 202, r.text
        return stored_sp(db_url, r.json()["reference"])

    # the account settles it; the ambiguous address is only a note for the crew
    assert sp_of({"account": "A-sp2", "address": "Hauptstraße 12"}) == "sp2"
    # an unknown account does not block a known address
    assert sp_of({"account": "A-sp99", "address": "Bahnhofstr. 7"}) == "sp5"
    # an ambiguous address gives way to a map position
    assert sp_of({"address": "Bayreuth", "lat": 49.97, "lon": 11.52}) == "sp5"
    # nothing fits: every field is named, each with its reason
    r = client.post("/reports", json={"account": "nobody", "address": "Lindenallee 4", "lat": 10.0, "lon": 10.0},
                    headers=client.as_("integration"))
    err = r.json()["error"]
    assert r.status_code == 422
    assert [d["field"] for d in err["details"]] == ["body.account", "body.address", "body.lat"]
    assert "unknown account 'nobody'" in err["message"] and "outside the service area" in err["message"]


def test_ids_and_phones_use_the_locator_normalisation(client, db_url):
    for body, sp in (({"account": "a sp3"}, "sp3"), ({"meter": "m001"}, "sp1"),
                     ({"phone": "+49 921 5550103"}, "sp3"), ({"phone": "921 555 0102"}, "sp2")):
        r = client.post("/reports", json=body)
        assert r.status_code == 202, (body, r.text)
        assert stored_sp(db_url, r.json()["reference"]) == sp, body
    gateway = client.as_("integration")
    r = client.post("/reports", json={"phone": "0921 555 0104"}, headers=gateway)  # on file for sp4 and sp5
    assert r.status_code == 422 and "ambiguous" in r.json()["error"]["message"]
    r = client.post("/reports", json={"phone": "555 0199"}, headers=gateway)
    assert r.status_code == 404 and "phone number not on file" in r.json()["error"]["message"]


def test_directory_meters_feeders_and_devices():
    d = Directory.from_network(small_feeder())  # no meter column: each service point answers to its own id
    assert d.meter_of("sp1") == "sp1" and d.meter_of("M-001") is None
    assert d.sp_feeder == {"sp1": "F1", "sp2": "F1", "sp3": "F1", "sp4": "F1", "sp5": "F2"}
    assert {"BRK", "T4", "substation:SUB1"} <= d.devices and d.device_xy["T1"] == (11.56, 50.01)
    near = d.nearest(11.5201, 49.9701)
    assert near.found and near.sp_id == "sp5" and 0 < near.distance_m < 20
    assert not d.nearest(10.0, 10.0).found

    d = Directory.from_network(territory())
    assert d.meter_of("M-001") == "sp1" and d.meter_of("m001") is None  # AMI ids are exact, as in the engine
    assert d.sp_by_phone("+49 921 555 0101") == "sp1" and d.sp_by_phone("+49 921 555 0104") is None  # shared


def test_phone_digits_is_the_locator_rule_keyed_to_ten_digits():
    assert phone_digits("+1 (555) 010-9999") == phone_digits("555 010 9999") == "5550109999"
    assert phone_digits("+49 (0)921 555-0101") == phone_digits("0049 921 5550101")
