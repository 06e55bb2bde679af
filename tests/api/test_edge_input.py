"""Input refused at the edge (issue "storm-proof the service"): control characters in paths, queries and bodies,
bounded ids, sane timestamps, a SCADA close before its lockout, reliability reports over bad stored rows, and the
inbound SMS body. Each ran into a 500 before (NUL on PostgreSQL), so they run on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from service_helpers import make_client
from sqlalchemy import select, update

from api.store.db import Database
from api.store.models import Event, MeterMessage

D, G = "dispatcher", "integration"


def _now(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def _refused(r, status: int = 422) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]


@pytest.mark.parametrize("path,role", [("/reports/R-%00", None), ("/events?feeder=%00", D),
                                       ("/events/E%00", D), ("/reports/R-%1b", None), ("/events?feeder=a%0Ab", D)])
def test_control_characters_in_path_and_query_are_422(client, path, role):
    _refused(client.get(path, headers=client.as_(role)))


def test_control_characters_in_bodies_are_422_but_line_breaks_in_free_text_pass(client):
    a = client.as_("admin")
    _refused(client.post("/admin/users", json={"name": "eve\x00", "role": "member"}, headers=a))
    _refused(client.put("/crews/C9", json={"id": "C9", "name": "night\x00crew"}, headers=client.as_(D)))
    _refused(client.post("/notify/contacts", json=[{"sp_id": "sp1", "name": "A\x00", "sms": "+15550100"}],
                         headers=client.as_(G)))
    _refused(client.post("/reports", json={"account": "A-sp1", "comment": "dark\x00"}))
    _refused(client.post("/reports", json={"account": "A-sp1"}, headers={"Idempotency-Key": "k\x7f"}))
    _refused(client.post("/events/E1/cancel", json={"reason": "ok", "x": 1}, headers=client.as_(D)))
    r = client.post("/reports", json={"account": "A-sp1", "comment": "line one\nline two\tend"})
    assert r.status_code == 202, r.text


def test_ids_are_bounded(client):
    h = client.as_(D)
    _refused(client.post(f"/notify/dead/{2**63}/retry", headers=h))
    _refused(client.post("/notify/dead/0/retry", headers=h))
    _refused(client.post(f"/notify/dead/{2**63 - 1}/retry", headers=h), 404)
    _refused(client.get("/events/" + "E" * 65, headers=h))
    _refused(client.put("/crews/" + "C" * 65, json={"id": "C"}, headers=h))
    _refused(client.post(f"/plans/{2**31}/accept", headers=h))


def test_sms_inbound_refuses_non_objects_and_long_fields(client):
    h = {**client.as_(G), "Content-Type": "application/json"}
    for body in (b"[1, 2]", b'"STOP"', b"7", b"null"):
        _refused(client.post("/notify/sms/inbound", content=body, headers=h))
    _refused(client.post("/notify/sms/inbound", json={"from": "+15550100", "text": "HELP", "id": "x" * 500},
                         headers=client.as_(G)))
    _refused(client.post("/notify/sms/inbound", json={"from": "+1555\x000100", "text": "HELP"},
                         headers=client.as_(G)))
    _refused(client.post("/notify/sms/inbound", json={"from": {"a": 1}, "text": "HELP"}, headers=client.as_(G)))
    _refused(client.post("/notify/sms/inbound", json={"from": "+15550100", "Body": None}, headers=client.as_(G)))
    _refused(client.post("/crew/position", json={"lat": True, "lon": 11.5}, headers=client.as_("crew")))
    r = client.post("/notify/sms/inbound", json={"from": "+15550100", "text": "HELP", "id": "SM1"},
                    headers=client.as_(G))
    assert r.status_code == 200, r.text


def test_timestamps_outside_a_sane_window_are_refused(client):
    h = client.as_(G)
    for at in ("0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", _now(days=8), "9999-12-31T23:59:59Z"):
        _refused(client.post("/scada", json={"device_id": "R1", "kind": "lockout", "at": at}, headers=h))
    r = client.post("/ami", json={"messages": [{"meter": "sp1", "kind": "last_gasp", "at": _now(days=-8)},
                                               {"meter": "sp2", "kind": "last_gasp", "at": _now()}]}, headers=h)
    assert r.status_code == 202 and r.json()["accepted"] == 1
    assert "older than" in r.json()["rejected"][0]["reason"]
    _refused(client.post("/crew/position", json={"lat": 50.0, "lon": 11.5, "at": _now(days=-30)},
                         headers=client.as_("crew")))
    _refused(client.put("/crews/C9", json={"id": "C9", "shift_start": "0001-01-01T00:00:00Z"},
                        headers=client.as_(D)))


def test_older_messages_pass_when_the_age_limit_allows(db_url, tokens):
    with make_client(db_url, tokens, max_message_age_hours=24 * 30) as c:
        r = c.post("/scada", json={"device_id": "R1", "kind": "lockout", "at": _now(days=-8)}, headers=c.as_(G))
        assert r.status_code == 202, r.text


def test_a_close_stamped_before_its_lockout_is_refused(client):
    h = client.as_(G)
    assert client.post("/scada", json={"device_id": "R1", "kind": "lockout", "at": _now(hours=-1)},
                       headers=h).status_code == 202
    r = client.post("/scada", json={"device_id": "R1", "kind": "close", "at": _now(hours=-2)}, headers=h)
    _refused(r)
    assert "before" in r.json()["error"]["message"]
    assert client.post("/scada", json={"device_id": "R1", "kind": "close", "at": _now()},
                       headers=h).status_code == 202


def test_a_lockout_stamped_before_the_devices_latest_close_is_refused(client):
    h = client.as_(G)
    for kind, hours in (("lockout", -3), ("close", -1)):
        assert client.post("/scada", json={"device_id": "R1", "kind": kind, "at": _now(hours=hours)},
                           headers=h).status_code == 202
    r = client.post("/scada", json={"device_id": "R1", "kind": "lockout", "at": _now(hours=-2)}, headers=h)
    _refused(r)
    assert "before the device's latest close" in r.json()["error"]["message"]
    assert client.post("/scada", json={"device_id": "R1", "kind": "lockout", "at": _now()},
                       headers=h).status_code == 202


def test_meter_messages_older_than_what_the_meter_said_since_are_rejected(client, db_url):
    """A power restore stamped before the meter's last gasp (or a gasp before its restore) arriving later would end
    an outage that started after it; it is rejected with the reason. A batch itself is taken in time order."""
    h = client.as_(G)
    gasp = {"meter": "sp1", "kind": "last_gasp", "at": _now(minutes=-30)}
    assert client.post("/ami", json={"messages": [gasp]}, headers=h).status_code == 202
    r = client.post("/ami", json={"messages": [{"meter": "sp1", "kind": "power_restore", "at": _now(minutes=-40)},
                                               {"meter": "sp2", "kind": "power_restore", "at": _now(minutes=-40)}]},
                    headers=h)
    assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
    assert [x["index"] for x in r.json()["rejected"]] == [0]
    assert "before its latest last gasp" in r.json()["rejected"][0]["reason"]
    alone = client.post("/ami", json={"messages": [{"meter": "sp1", "kind": "power_restore",
                                                    "at": _now(minutes=-45)}]}, headers=h)
    _refused(alone)
    assert "before its latest last gasp" in alone.json()["error"]["details"][0]["message"]
    # restore then a late gasp from before it: that outage is over
    assert client.post("/ami", json={"messages": [{"meter": "sp1", "kind": "power_restore", "at": _now(minutes=-5)}]},
                       headers=h).status_code == 202
    late = client.post("/ami", json={"messages": [{"meter": "sp1", "kind": "last_gasp", "at": _now(minutes=-20)}]},
                       headers=h)
    _refused(late)
    assert "before its latest power restore" in late.json()["error"]["details"][0]["message"]
    # one batch, out of order: stored in time order, so the engine sees the gasp before the restore
    r = client.post("/ami", json={"messages": [{"meter": "sp3", "kind": "power_restore", "at": _now(minutes=-1)},
                                               {"meter": "sp3", "kind": "last_gasp", "at": _now(minutes=-3)}]},
                    headers=h)
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.text
    db = Database(db_url)
    with db.read() as session:
        kinds = session.scalars(select(MeterMessage.kind).where(MeterMessage.meter == "sp3")
                                .order_by(MeterMessage.id)).all()
    db.dispose()
    assert kinds == ["last_gasp", "power_restore"]


def test_reliability_reports_name_bad_stored_rows_instead_of_failing(client, db_url):
    import time

    h = client.as_(G)
    assert client.post("/scada", json={"device_id": "R1", "kind": "lockout", "at": _now(hours=-1)},
                       headers=h).status_code == 202
    for _ in range(200):
        if client.get("/events", headers=client.as_(D)).json():
            break
        time.sleep(0.05)
    db = Database(db_url)
    with db.write() as session, session.begin():  # a row as an older release (or a bad import) stored it
        session.execute(update(Event).values(state="restored", restored_at=datetime.now(UTC) - timedelta(hours=3)))
    db.dispose()
    params = {"from": _now(days=-1), "to": _now(hours=1)}
    for path in ("/reliability/restoration", "/reliability/event-summary"):
        r = client.get(path, params=params, headers=client.as_(D))
        assert r.status_code == 200, (path, r.text)
        assert r.json()["bad_rows"] and "before its start" in r.json()["bad_rows"][0]["problem"]
    r = client.get("/reliability/event-summary", params={**params, "format": "csv"}, headers=client.as_(D))
    assert r.status_code == 200, r.text


def test_405_lists_every_method_of_the_path_and_the_schema_states_what_the_edge_refuses(client):
    """Schemathesis (all checks): a 405 named only the first route's method in Allow, and the schema allowed the
    control characters and tiers the edge refuses."""
    r = client.request("OPTIONS", "/admin/settings", headers=client.as_("admin"))
    assert r.status_code == 405 and r.headers["allow"] == "GET, PUT"
    assert client.request("PATCH", "/session").headers["allow"] == "DELETE, GET, POST"
    schema = client.get("/openapi.json").json()
    params = {p["name"]: p["schema"] for p in schema["paths"]["/events"]["get"]["parameters"]}
    assert params["tier"]["anyOf"][0]["items"] == {"type": "integer", "maximum": 4, "minimum": 1}
    feeder = params["feeder"]["anyOf"][0]
    assert feeder["type"] == "string" and feeder["pattern"].startswith("^[^\\u0000")
    _refused(client.get("/events?tier=0", headers=client.as_(D)))
    assert client.request("OPTIONS", "/crews/roster", headers=client.as_(D)).headers["allow"] == "GET"
