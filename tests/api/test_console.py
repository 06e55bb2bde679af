"""The console's sign-in, sessions, CSRF and roles, and the JSON it reads, through the real app (TestClient).

Browsers send the HttpOnly, Secure session cookie themselves; httpx will not send a Secure cookie over plain
http, so these tests pass it in a ``Cookie`` header, exactly as a browser on https would."""

from __future__ import annotations

import re

import pytest
from service_helpers import set_passwords

from api.web.auth import SESSION_COOKIE, csrf_of

PASSWORD = "storm-night-2026"


@pytest.fixture
def passwords(db_url, tokens):
    set_passwords(db_url, PASSWORD)


def sign_in(client, name: str, password: str = PASSWORD):
    """The form flow: GET the form (CSRF cookie + hidden field), POST it; returns (response, session cookie)."""
    form = client.get("/session")
    assert form.status_code == 200 and "no-store" in form.headers["cache-control"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    r = client.post("/session", data={"username": name, "password": password, "csrf": csrf},
                    headers={"Cookie": f"oms_signin={form.cookies['oms_signin']}"}, follow_redirects=False)
    return r, r.cookies.get(SESSION_COOKIE)


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


def test_sign_in_sets_a_strict_httponly_session_and_opens_the_console(client, passwords):
    r, token = sign_in(client, "dispatcher-user")
    assert r.status_code == 303 and r.headers["location"] == "/console"
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "secure" in set_cookie
    assert token and token not in r.headers["location"]
    page = client.get("/console", headers=cookie(token))
    assert page.status_code == 200, page.text
    assert "dispatcher-user" in page.text and csrf_of(token) in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    board = client.get("/console/board.json", headers=cookie(token)).json()
    assert board["events"] == [] and {c["id"] for c in board["crews"]} == {"C1", "C2"} and board["mode"] == "auto"


def test_wrong_password_unknown_user_and_stale_form_are_refused_with_a_message(client, passwords):
    r, token = sign_in(client, "dispatcher-user", "wrong-password-123")
    assert r.status_code == 401 and token is None and "do not match" in r.text
    r, token = sign_in(client, "nobody-here")
    assert r.status_code == 401 and token is None
    # a form posted from another site carries no (or another) CSRF cookie
    r = client.post("/session", data={"username": "dispatcher-user", "password": PASSWORD, "csrf": "x" * 43},
                    follow_redirects=False)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"


def test_without_a_session_the_console_sends_you_to_sign_in(client):
    r = client.get("/console", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/session"
    r = client.get("/console", headers=cookie("s_forged-or-expired"), follow_redirects=False)
    assert r.status_code == 303


@pytest.mark.parametrize("role", ["member", "crew"])
def test_member_and_crew_sessions_and_tokens_get_403_everywhere_in_the_console(client, passwords, role):
    _, token = sign_in(client, f"{role}-user")
    assert token
    page = client.get("/console", headers=cookie(token))
    assert page.status_code == 403 and "dispatchers" in page.text
    assert client.get("/console", headers=client.as_(role)).status_code == 403
    for url in ("/console/board.json", "/console/routes.geojson", "/events", "/crews/roster"):
        assert client.get(url, headers=cookie(token)).status_code == 403, url
        assert client.get(url, headers=client.as_(role)).status_code == 403, url
    r = client.post("/assignments", json={"event_id": "E1", "crew_id": "C1"},
                    headers={**cookie(token), "X-CSRF-Token": csrf_of(token)})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_actions_by_session_need_the_csrf_token(client, passwords):
    c = client
    c.post("/reports", json={"account": "A-sp3"})
    c.wait_processed()
    _, token = sign_in(c, "dispatcher-user")
    eid = c.get("/console/board.json", headers=cookie(token)).json()["events"][0]["id"]
    body = {"event_id": eid, "crew_id": "C1"}
    r = c.post("/assignments", json=body, headers=cookie(token))
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    r = c.post("/assignments", json=body, headers={**cookie(token), "X-CSRF-Token": csrf_of("another-session")})
    assert r.status_code == 403
    r = c.post("/assignments", json=body, headers={**cookie(token), "X-CSRF-Token": csrf_of(token)})
    assert r.status_code == 201, r.text
    # bearer tokens (integrations) need no CSRF token: a browser never sends one by itself
    assert c.post(f"/events/{eid}/confirm", json={}, headers=c.as_("dispatcher")).status_code == 200


def test_sign_out_ends_the_session_at_once_and_needs_its_csrf_token(client, passwords):
    _, token = sign_in(client, "admin-user")
    assert client.get("/console/board.json", headers=cookie(token)).status_code == 200
    r = client.post("/session/sign-out", data={"csrf": "forged"}, headers=cookie(token), follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/session/sign-out", data={"csrf": csrf_of(token)}, headers=cookie(token), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/session"
    assert client.get("/console/board.json", headers=cookie(token)).status_code == 401
    assert client.get("/console", headers=cookie(token), follow_redirects=False).status_code == 303


def test_evidence_roster_plan_mode_and_reject(client):
    c = client
    d = c.as_("dispatcher")
    for account in ("A-sp3", "A-sp4"):
        c.post("/reports", json={"account": account, "hazards": ["wires_down"], "neighbours_out": True})
    c.wait_processed()
    eid = c.get("/events", headers=d).json()[0]["id"]
    ev = c.get(f"/events/{eid}/evidence", headers=d).json()
    assert ev["event"]["id"] == eid and ev["calls"] and ev["calls"][0]["neighbours_out"] is True
    assert ev["calls"][0]["hazards"] == ["wires_down"] and ev["timeline"][0]["actor"] == "engine"
    assert c.get("/events/E404/evidence", headers=d).status_code == 404
    a = c.post("/assignments", json={"event_id": eid, "crew_id": "C2", "lock": False}, headers=d).json()
    roster = {r["id"]: r for r in c.get("/crews/roster", headers=d).json()}
    assert roster["C2"]["current"]["event_id"] == eid and roster["C1"]["current"] is None
    assert c.put("/plans/mode", json={"mode": "propose"}, headers=d).json()["plan_mode"] == "propose"
    assert c.put("/plans/mode", json={"mode": "sometimes"}, headers=d).status_code == 422
    plan_id = c.app.state.oms.live.replan()
    assert plan_id is not None
    diff = c.get(f"/plans/{plan_id}/diff", headers=d).json()
    assert diff["plan"]["status"] == "proposed" and isinstance(diff["delta"], float)
    assert all(m["event_id"] != eid or m["from_crew"] == "C2" for m in diff["moves"])
    assert a["crew_id"] == "C2"
    assert c.post(f"/plans/{plan_id}/reject", headers=d).json()["status"] == "rejected"
    r = c.post(f"/plans/{plan_id}/reject", headers=d)
    assert r.status_code == 409 and "rejected" in r.json()["error"]["message"]
    assert c.post(f"/plans/{plan_id}/accept", headers=d).status_code == 409
    assert c.get("/plans/99999/diff", headers=d).status_code == 404


def test_a_note_to_customers_reaches_reporters_and_enrolled_contacts_and_the_timeline(client):
    from sqlalchemy import select

    from api.notify.templates import Context, render
    from api.store.models import OutboxMessage

    c, d, i = client, client.as_("dispatcher"), client.as_("integration")
    assert c.post("/notify/contacts", json=[{"sp_id": "sp4", "sms": "+15550100044", "language": "es"},
                                            {"sp_id": "sp4", "email": "away@example.org", "prefer": "email",
                                             "proactive": False}], headers=i).status_code == 201
    c.post("/reports", json={"account": "A-sp3", "neighbours_out": True,
                             "contact": {"sms": "+15550100033", "prefer": "sms"}}, headers=i)
    c.post("/reports", json={"account": "A-sp4", "neighbours_out": True}, headers=i)
    c.wait_processed()
    eid = c.get("/events", headers=d).json()[0]["id"]
    note = "A tree is on the line <b>; crews expect to finish by 6 PM."
    assert c.post(f"/events/{eid}/note", json={"text": note}, headers=c.as_("crew")).status_code == 403
    assert c.post(f"/events/{eid}/note", json={"text": ""}, headers=d).status_code == 422
    assert c.post("/events/E404/note", json={"text": note}, headers=d).status_code == 404
    r = c.post(f"/events/{eid}/note", json={"text": note}, headers=d)
    assert r.status_code == 201, r.text
    assert r.json()["recipients"] == 2  # the reporter and the proactive contact, not the one who opted out of notices
    with c.app.state.oms.db.read() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "dispatcher_note")).all()
    by_to = {m.payload["to"]: m for m in rows}
    assert set(by_to) == {"+15550100033", "+15550100044"} and all(m.event_id == eid for m in rows)
    assert {m.payload["language"] for m in rows} == {"en", "es"}
    for m in rows:  # what the worker renders from the row, in the reader's language
        ctx = Context("Co-op", "555-0100", note=m.payload["context"]["note"],
                      reference=m.payload["context"]["reference"])
        text = render("dispatcher_note", m.payload["language"], m.channel, ctx, now=m.created_at)
        assert note in text.body and ("sobre el corte" if m.payload["language"] == "es" else "about the outage") \
            in text.body
    timeline = c.get(f"/events/{eid}/evidence", headers=d).json()["timeline"]
    entry = [t for t in timeline if t["action"] == "customer_note"]
    assert entry and entry[0]["detail"] == {"note": note, "recipients": 2} and entry[0]["actor"] == "dispatcher-user"


def test_the_p1_response_target_is_a_setting_shown_on_the_page(db_url, tokens, monkeypatch):
    import json

    from pydantic import ValidationError
    from service_helpers import make_client

    from api.settings import Settings

    monkeypatch.setenv("OMS_P1_RESPONSE_MINUTES", "45")
    assert Settings().p1_response_minutes == 45
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("OMS_P1_RESPONSE_MINUTES", bad)
        with pytest.raises(ValidationError, match="p1_response_minutes"):
            Settings()
    monkeypatch.delenv("OMS_P1_RESPONSE_MINUTES")
    assert Settings().p1_response_minutes == 60  # a co-op's usual target unless told otherwise
    set_passwords(db_url, PASSWORD)
    with make_client(db_url, tokens, p1_response_minutes=45) as c:
        _, token = sign_in(c, "dispatcher-user")
        page = c.get("/console", headers=cookie(token)).text
        assert "P1 target: on site in 45 min" in page
        config = json.loads(re.search(r'id="console-config" type="application/json">([^<]+)<', page).group(1))
        assert config["p1ResponseMinutes"] == 45  # the alert's limit (app.js) is the same figure
