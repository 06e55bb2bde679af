"""Role enforcement on every route, table-driven. A new route fails ``test_table_covers_every_route`` until it is
added here with the roles it admits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

ALL = {"anonymous", "member", "crew", "integration", "dispatcher", "admin"}
DISPATCH = {"dispatcher", "admin"}
NOW = datetime.now(UTC).isoformat()

#: (method, path, json body, roles admitted)
TABLE = [
    ("POST", "/reports", {"account": "A-sp1"}, ALL),
    ("GET", "/reports/{reference}", None, ALL),
    ("GET", "/health", None, ALL),
    ("POST", "/ami", {"messages": [{"meter": "sp1", "kind": "last_gasp", "at": NOW}]}, {"integration", "admin"}),
    ("POST", "/scada", {"device_id": "F1", "kind": "lockout", "at": NOW}, {"integration", "admin"}),
    ("GET", "/events", None, DISPATCH),
    ("GET", "/events/{event_id}", None, DISPATCH),
    ("POST", "/events/{event_id}/confirm", {}, DISPATCH),
    ("POST", "/events/{event_id}/cancel", {"reason": "test"}, DISPATCH),
    ("POST", "/events/{event_id}/restore", {}, DISPATCH),
    ("POST", "/events/{event_id}/merge", {"event_ids": ["E999"]}, DISPATCH),
    ("POST", "/events/{event_id}/split", {"device_id": "T1"}, DISPATCH),
    ("GET", "/plans/current", None, DISPATCH),
    ("POST", "/plans/{plan_id}/accept", None, DISPATCH),
    ("POST", "/assignments", {"event_id": "E999", "crew_id": "C1"}, DISPATCH),
    ("POST", "/assignments/{assignment_id}/lock", {"locked": True}, DISPATCH),
    ("GET", "/crews", None, DISPATCH | {"crew"}),
    ("PUT", "/crews/{crew_id}", {"id": "C9", "skills": ["line"]}, DISPATCH),
    ("GET", "/crew/assignments", None, {"crew"}),
    ("POST", "/crew/assignments/{assignment_id}/status", {"status": "en_route"}, {"crew"}),
    ("POST", "/crew/position", {"lat": 50.0, "lon": 11.5}, {"crew"}),
    ("GET", "/admin/users", None, {"admin"}),
    ("POST", "/admin/users", {"name": "someone", "role": "member"}, {"admin"}),
    ("POST", "/admin/users/{user_id}/tokens", None, {"admin"}),
    ("DELETE", "/admin/users/{user_id}/tokens", None, {"admin"}),
    ("POST", "/admin/users/{user_id}/disable", None, {"admin"}),
    ("POST", "/admin/users/{user_id}/enable", None, {"admin"}),
    ("GET", "/session", None, ALL),
    ("POST", "/session", None, ALL),  # the token is in the body: a missing one is 422 for everybody
    ("DELETE", "/session", None, ALL),
    ("GET", "/admin/settings", None, {"admin"}),
    ("PUT", "/admin/settings", {"plan_mode": "propose"}, {"admin"}),
    ("POST", "/admin/territory", None, {"admin"}),
    ("GET", "/stream", None, {"crew", "integration", "dispatcher", "admin"}),
    ("POST", "/notify/contacts", [], {"integration", "admin"}),
    ("POST", "/notify/confirm", {"code": "no-such-code-0000"}, ALL),
    ("POST", "/notify/sms/inbound", {"from": "+15550100", "body": "HELP"}, {"integration", "admin"}),
    ("GET", "/notify/sla", None, DISPATCH),
    ("GET", "/notify/dead", None, DISPATCH),
    ("POST", "/notify/dead/{row_id}/retry", None, DISPATCH),
    ("GET", "/maps/public.geojson", None, ALL),
    ("GET", "/maps/roads.geojson", None, ALL),
    ("GET", "/maps/basemap.geojson", None, ALL),
    ("GET", "/maps/search", None, ALL),
    ("GET", "/maps/dispatcher.geojson", None, DISPATCH),
    ("GET", "/maps/network.geojson", None, DISPATCH),
    ("GET", "/reliability/indices", None, DISPATCH),
    ("GET", "/reliability/restoration", None, DISPATCH),
    ("GET", "/reliability/event-summary", None, DISPATCH),
    ("GET", "/events/{event_id}/evidence", None, DISPATCH),
    ("POST", "/events/{event_id}/note", {"text": "Crews are on the way."}, DISPATCH),
    ("GET", "/crews/roster", None, DISPATCH),
    ("GET", "/plans/{plan_id}/diff", None, DISPATCH),
    ("POST", "/plans/{plan_id}/reject", None, DISPATCH),
    ("PUT", "/plans/mode", {"mode": "auto"}, DISPATCH),
    ("POST", "/session/sign-out", None, ALL),
    ("GET", "/console/board.json", None, DISPATCH),
    ("GET", "/console/stream", None, DISPATCH),
    ("GET", "/console/network.geojson", None, DISPATCH),
    ("GET", "/console/roads.geojson", None, DISPATCH),
    ("GET", "/console/deenergized.json", None, DISPATCH),
    ("GET", "/console/routes.geojson", None, DISPATCH),
    ("GET", "/review/reports", None, DISPATCH),
    ("GET", "/review/service-points?q=elm", None, DISPATCH),
    ("POST", "/review/reports/{report_id}/match", {"sp_id": "sp1"}, DISPATCH),
    ("POST", "/review/reports/{report_id}/dismiss", {}, DISPATCH),
]
PARAMS = {"reference": "R-XXXX-XXXX-XXXX", "event_id": "E999", "plan_id": "999", "assignment_id": "999",
          "crew_id": "C9", "user_id": "999", "row_id": "999",
          "report_id": "999"}


def test_table_covers_every_route(client):
    paths = client.app.openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    table = {(m, p.partition("?")[0]) for m, p, _, _ in TABLE}
    assert routes == table, f"routes without a role rule: {routes - table}; stale rows: {table - routes}"


@pytest.mark.parametrize("role", sorted(ALL))
def test_every_route_admits_exactly_its_roles(client, role):
    wrong = []
    for method, path, body, roles in TABLE:
        if path in ("/stream", "/console/stream") and role in roles:
            continue  # an admitted caller gets an endless stream: covered in test_live.py
        url = path.format(**PARAMS)
        r = client.request(method, url, json=body, headers=client.as_(role))
        if r.status_code >= 500:
            ok = False
        elif role in roles:
            ok = r.status_code not in (401, 403)
        else:
            ok = r.status_code == (401 if role == "anonymous" else 403)
            ok = ok and r.json()["error"]["code"] in ("unauthorized", "forbidden")
        if not ok:
            wrong.append(f"{method} {path} as {role}: {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_bad_and_revoked_tokens_are_refused(client):
    assert client.get("/events", headers={"Authorization": "Bearer oms_nonsense"}).status_code == 401
    assert client.get("/events", headers={"Authorization": "Basic abc"}).status_code == 401
    users = client.get("/admin/users", headers=client.as_("admin")).json()
    disp = next(u for u in users if u["role"] == "dispatcher")
    assert client.get("/events", headers=client.as_("dispatcher")).status_code == 200
    assert client.delete(f"/admin/users/{disp['id']}/tokens", headers=client.as_("admin")).status_code == 204
    assert client.get("/events", headers=client.as_("dispatcher")).status_code == 401


def test_tokens_are_stored_hashed(client, db_url, tokens):
    from api.store.db import Database
    from api.store.models import ApiToken

    db = Database(db_url)
    with db.read() as s:
        stored = [t.token_hash for t in s.query(ApiToken)]
    db.dispose()
    for token in tokens.values():
        assert token not in stored
        assert all(token[12:] not in h for h in stored)


def test_crew_sees_and_changes_only_its_own_assignments(client):
    c = client
    ref = c.post("/reports", json={"account": "A-sp3"}).json()["reference"]
    assert ref
    c.wait_processed()
    eid = c.get("/events", headers=c.as_("dispatcher")).json()[0]["id"]
    a = c.post("/assignments", json={"event_id": eid, "crew_id": "C2"}, headers=c.as_("dispatcher"))
    assert a.status_code == 201, a.text
    aid = a.json()["id"]
    assert c.get("/crew/assignments", headers=c.as_("crew")).json() == []  # crew user is on C1
    assert [x["id"] for x in c.get("/crew/assignments", headers=c.as_("crew2")).json()] == [aid]
    r = c.post(f"/crew/assignments/{aid}/status", json={"status": "en_route"}, headers=c.as_("crew"))
    assert r.status_code == 404
    r = c.post(f"/crew/assignments/{aid}/status", json={"status": "en_route"}, headers=c.as_("crew2"))
    assert r.status_code == 200 and r.json()["status"] == "en_route"
