"""Public reports no service point matched: the dispatcher's review list, the service point search, matching (the
report then goes to the engine as a located one would, survives a restart) and dismissing; each decision once."""

from __future__ import annotations

import json

from service_helpers import make_client

from api.service.review import ServicePointSearch
from api.store.models import Report

D = "dispatcher"


def _member_report(c, **body) -> str:
    r = c.post("/reports", json=body)  # no token: a member on the public form
    assert r.status_code == 202, r.text
    assert r.json()["note"]  # told the same whether or not their details are on file
    return r.json()["reference"]


def _waiting(c) -> dict:
    r = c.get("/review/reports", headers=c.as_(D))
    assert r.status_code == 200, r.text
    return r.json()


def test_a_dispatcher_matches_one_report_and_dismisses_another(client):
    c = client
    seq0 = c.app.state.oms.broker.seq
    ref_barn = _member_report(
        c, account="A-nobody", comment="the line is down by the barn", hazards=["wires_down"]
    )
    ref_prank = _member_report(c, phone="+1 555 0199", address="7 Nowhere Lane")
    _member_report(c, account="A-sp1")  # located: not for review
    c.wait_processed()
    waiting = _waiting(c)
    assert waiting["total"] == 2
    assert [r["reference"] for r in waiting["reports"]] == [ref_prank, ref_barn]  # newest first
    barn, prank = waiting["reports"][1], waiting["reports"][0]
    assert barn["account"] == "A-nobody" and barn["comment"] == "the line is down by the barn"
    assert barn["hazards"] == ["wires_down"] and barn["channel"] and barn["power"] == "out"
    assert prank["phone"] == "+1 555 0199" and prank["address"] == "7 Nowhere Lane"
    # the stream tells consoles a report waits, with no personal data (crews and integrations read it too)
    sent = [m.data for m in c.app.state.oms.broker.since(seq0) if m.type == "report"]
    assert {json.dumps(d, sort_keys=True) for d in sent} == {
        json.dumps({"id": barn["id"], "unmatched": True}, sort_keys=True),
        json.dumps({"id": prank["id"], "unmatched": True}, sort_keys=True),
    }

    # find the service point the member meant, then match: the engine takes the report as a located one
    hits = c.get("/review/service-points", params={"q": "A-sp3"}, headers=c.as_(D)).json()
    assert hits[0]["sp_id"] == "sp3" and hits[0]["account"] == "A-sp3"
    assert c.get(f"/reports/{ref_barn}").json()["status"] != "linked"
    r = c.post(f"/review/reports/{barn['id']}/match", json={"sp_id": "sp3"}, headers=c.as_(D))
    assert r.status_code == 200, r.text
    assert (
        r.json()["review"] == "matched" and r.json()["sp_id"] == "sp3" and r.json()["by"] == "dispatcher-user"
    )
    c.wait_processed()
    status = c.get(f"/reports/{ref_barn}").json()
    assert status["status"] == "linked" and status["event"]["customers_out"] >= 3, status
    events = c.get("/events", headers=c.as_(D)).json()
    barn_event = next(e for e in events if e["sp_id"] == "sp3" or e["customers_out"] >= 3)
    assert "wires_down" in barn_event["hazards"]  # the member's answers came along
    assert _waiting(c)["total"] == 1

    # decided once; a located report is not for review; unknown reports and service points are 404
    r = c.post(f"/review/reports/{barn['id']}/match", json={"sp_id": "sp4"}, headers=c.as_(D))
    assert r.status_code == 409 and "already matched by dispatcher-user" in r.json()["error"]["message"]
    assert c.post(f"/review/reports/{barn['id']}/dismiss", json={}, headers=c.as_(D)).status_code == 409
    with c.app.state.oms.db.read() as s:
        located = s.query(Report).filter(Report.account == "A-sp1").one().id
    r = c.post(f"/review/reports/{located}/match", json={"sp_id": "sp3"}, headers=c.as_(D))
    assert r.status_code == 409 and "located" in r.json()["error"]["message"]
    assert c.post("/review/reports/99999/dismiss", json={}, headers=c.as_(D)).status_code == 404
    r = c.post(f"/review/reports/{prank['id']}/match", json={"sp_id": "sp-none"}, headers=c.as_(D))
    assert r.status_code == 404 and r.json()["error"]["details"][0]["field"] == "body.sp_id"
    for bad in ({}, {"sp_id": ""}, {"sp_id": "x" * 65}, {"sp_id": "sp3", "extra": 1}):
        assert c.post(f"/review/reports/{prank['id']}/match", json=bad, headers=c.as_(D)).status_code == 422
    assert c.get("/review/service-points", params={"q": "a"}, headers=c.as_(D)).status_code == 422
    assert c.get("/review/reports", params={"limit": 0}, headers=c.as_(D)).status_code == 422

    # dismiss, with a reason: off the list, kept on record
    r = c.post(f"/review/reports/{prank['id']}/dismiss", json={"note": "prank call"}, headers=c.as_(D))
    assert r.status_code == 200 and r.json()["review"] == "dismissed"
    assert _waiting(c) == {"total": 0, "reports": []}
    with c.app.state.oms.db.read() as s:
        row = s.get(Report, prank["id"])
        assert (row.review, row.reviewed_by, row.review_note, row.sp_id) == (
            "dismissed",
            "dispatcher-user",
            "prank call",
            None,
        )
    assert c.get(f"/reports/{ref_prank}").status_code == 200  # the member's reference still answers


def test_a_matched_report_survives_a_restart_and_a_standby_cannot_match(db_url, tokens):
    with make_client(db_url, tokens) as c:
        ref = _member_report(c, account="A-unknown")
        c.wait_processed()
        rid = _waiting(c)["reports"][0]["id"]
        c.app.state.oms.live.role = "standby"
        r = c.post(f"/review/reports/{rid}/match", json={"sp_id": "sp5"}, headers=c.as_(D))
        assert r.status_code == 503 and _waiting(c)["total"] == 1  # the leader's engine decides
        c.app.state.oms.live.role = "single"
        assert (
            c.post(f"/review/reports/{rid}/match", json={"sp_id": "sp5"}, headers=c.as_(D)).status_code == 200
        )
        c.wait_processed()
        before = c.get(f"/reports/{ref}").json()
        assert before["status"] == "linked"
        engine_before = sorted(
            (e.event_id, e.sp_id or e.device_id, len(e.reports))
            for e in c.app.state.oms.live.engine.all_events()
        )
    with make_client(db_url, tokens) as c:  # rebuilt from the journal: the matched report is in it, located
        engine_after = sorted(
            (e.event_id, e.sp_id or e.device_id, len(e.reports))
            for e in c.app.state.oms.live.engine.all_events()
        )
        assert engine_after == engine_before and engine_after
        assert c.get(f"/reports/{ref}").json() == before
        assert _waiting(c)["total"] == 0


def test_service_point_search_by_words_ids_and_phone():
    import geopandas as gpd
    from shapely.geometry import Point

    class Net:
        service_points = gpd.GeoDataFrame(
            {
                "sp_id": ["sp-1", "sp-2", "sp-3"],
                "address": ["10 Elm Street", "12 Elm Street", "3 Oak Road"],
                "account": ["ACC-0001", "ACC-0002", "ACC-0003"],
                "meter": ["M1", "M2", None],
                "phone": ["+49 921 5550001", None, "0921 5550003"],
            },
            geometry=[Point(0, 0)] * 3,
        )

    s = ServicePointSearch(Net(), {"sp-1": "F1", "sp-2": "F1", "sp-3": "F2"})
    assert [h["sp_id"] for h in s.search("elm st")] == ["sp-1", "sp-2"]  # street words spelled one way
    assert [h["sp_id"] for h in s.search("12 elm")] == ["sp-2"]
    assert [h["sp_id"] for h in s.search("acc 0003")] == ["sp-3"]  # an id however it is spelled
    assert s.search("acc-0003")[0]["feeder"] == "F2"
    assert [h["sp_id"] for h in s.search("0921 555 0001")] == ["sp-1"]  # a phone number, with or without +49
    assert [h["sp_id"] for h in s.search("+49 921 5550003")] == ["sp-3"]
    assert s.search("birch") == [] and len(s.search("elm", limit=1)) == 1
