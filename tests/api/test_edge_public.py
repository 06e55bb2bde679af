"""Anonymous callers and browsers at the edge: one answer whether or not an account or phone is on file,
idempotency keys scoped per caller and report, X-Forwarded-For from named proxies only, rate limits on every
public route, security headers on HTML, no cookie from a query string, no household coordinates on the stream
for crews and integrations, and the body deadline and per-client cap of the edge guard."""

from __future__ import annotations

import asyncio
import json

import pytest
from service_helpers import count, make_client
from sqlalchemy import select

from api.service.stream import Message
from api.settings import Settings
from api.store.db import Database
from api.store.models import Report
from api.web.limits import EdgeGuard, RateLimiter
from api.web.routes.stream import without_households


def _stored(db_url: str, reference: str) -> Report:
    db = Database(db_url)
    with db.read() as session:
        row = session.scalar(select(Report).where(Report.reference == reference))
    db.dispose()
    return row


@pytest.mark.parametrize("known,unknown,code", [({"account": "A-sp1"}, {"account": "nobody"}, 404),
                                                ({"phone": "+49 921 5550103"}, {"phone": "555 0199"}, 404),
                                                ({"meter": "sp1"}, {"meter": "M-0"}, 404),
                                                ({"address": "12 Main St, Springfield"}, {"address": "Lindenallee 4"},
                                                 404),
                                                ({"account": "A-sp1"}, {"address": "Bayreuth"}, 404)])
def test_members_get_one_answer_whether_or_not_they_are_on_file(client, db_url, known, unknown, code):
    a, b = client.post("/reports", json=known), client.post("/reports", json=unknown)
    assert a.status_code == b.status_code == 202, (a.text, b.text)
    assert a.json().keys() == b.json().keys() and a.json()["note"] == b.json()["note"]
    assert "person will look" in b.json()["note"]
    assert _stored(db_url, b.json()["reference"]).sp_id is None  # kept for a person to match
    # a gateway (call taker, IVR) still hears what failed, to ask the caller again
    r = client.post("/reports", json=unknown, headers=client.as_("integration"))
    assert r.status_code == code and r.json()["error"]["details"]  # 404: names no one; 422: several


def test_idempotency_keys_are_scoped_per_caller_and_report(client, db_url):
    key = {"Idempotency-Key": "k-1"}
    first = client.post("/reports", json={"account": "A-sp1"}, headers=key).json()
    again = client.post("/reports", json={"account": "A-sp1"}, headers=key).json()
    other = client.post("/reports", json={"account": "A-sp2"}, headers=key).json()  # a neighbour, same IP
    assert again["duplicate"] and again["reference"] == first["reference"]
    assert not other["duplicate"] and other["reference"] != first["reference"]
    assert count(db_url, Report) == 2


def test_x_forwarded_for_is_honoured_only_from_named_proxies(db_url, tokens):
    def codes(c):
        return [c.post("/reports", json={"account": "A-sp1"}, headers={"X-Forwarded-For": f"10.0.0.{i}"})
                .status_code for i in range(4)]

    with make_client(db_url, tokens, rate_limit_per_minute=60, rate_limit_burst=2) as c:
        assert codes(c)[2:] == [429, 429]  # a forged header does not buy a fresh allowance
    with make_client(db_url, tokens, rate_limit_per_minute=60, rate_limit_burst=2,
                     trusted_proxies=["testclient"]) as c:
        assert codes(c) == [202] * 4  # four clients behind our proxy
        r = c.post("/reports", json={"account": "A-sp1"}, headers={"X-Forwarded-For": "10.0.0.1, testclient"})
        assert r.status_code == 202  # the nearest hop that is not our proxy: 10.0.0.1's second
        r = c.post("/reports", json={"account": "A-sp1"}, headers={"X-Forwarded-For": "10.0.0.1"})
        assert r.status_code == 429  # 10.0.0.1 has spent its two


def test_every_public_route_is_rate_limited(db_url, tokens):
    with make_client(db_url, tokens, rate_limit_per_minute=1, rate_limit_burst=1, public_rate_limit_burst=30,
                     public_rate_limit_per_minute=1) as c:
        codes = [c.get("/reports/R-AAAA-BBBB-CCCC").status_code for _ in range(6)]
        assert 404 in codes and codes[-1] == 429
        codes = [c.get("/maps/public").status_code for _ in range(40)]
        assert codes[-1] == 429 and c.get("/health").status_code == 429
        assert c.get("/events", headers=c.as_("dispatcher")).status_code == 200  # tokens have their own allowance
    with make_client(db_url, tokens, trusted_rate_limit_per_minute=1, trusted_rate_limit_burst=2) as c:
        h = c.as_("integration")
        codes = [c.post("/notify/sms/inbound", json={"from": "+15550100", "text": "HELP"}, headers=h).status_code
                 for _ in range(4)]
        assert codes[:2] == [200, 200] and codes[-1] == 429


@pytest.mark.parametrize("path", ["/maps/public", "/maps/", "/session", "/docs"])
def test_html_pages_carry_security_headers(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["referrer-policy"] == "no-referrer"
    assert client.get("/maps/public.geojson").headers["x-content-type-options"] == "nosniff"


def test_map_pages_never_set_a_cookie_from_the_query_string(client):
    token = client.tokens["dispatcher"]
    for path in (f"/maps/dispatcher?token={token}", "/maps/public?token=abcdefghijkl",
                 f"/maps/dispatcher.geojson?token={token}"):
        r = client.get(path)
        assert "set-cookie" not in r.headers, path
    assert client.get(f"/maps/dispatcher?token={token}").status_code == 401


def test_a_map_session_is_opened_from_a_checked_token_in_the_body(client):
    assert client.post("/session", json={"token": client.tokens["crew"]}).status_code == 403
    assert client.post("/session", json={"token": "oms_not-a-real-token"}).status_code == 401
    r = client.post("/session", json={"token": "x\x00" * 5})
    assert r.status_code == 422 and "set-cookie" not in r.headers
    r = client.post("/session", json={"token": client.tokens["dispatcher"]})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/maps"):
        assert flag.lower() in cookie.lower(), cookie
    assert r.headers["cache-control"] == "no-store"
    name, value = cookie.split(";")[0].split("=", 1)
    # the TestClient talks http: send the (Secure) cookie by hand, as a browser on https would
    assert client.get("/maps/dispatcher.geojson", headers={"Cookie": f"{name}={value}"}).status_code == 200


def test_stream_hides_household_coordinates_from_crews_and_integrations():
    home = Message(7, "event_created", {"id": "E1", "class": "single_customer", "device_id": None, "lat": 50.01,
                                        "lon": 11.5, "state": "probable"}).sse()
    device = Message(8, "event_updated", {"id": "E2", "class": "feeder", "device_id": "R1", "lat": 50.0,
                                          "lon": 11.53}).sse()
    crew = Message(9, "crew", {"id": "C1", "name": "one", "lat": 50.0, "lon": 11.5}).sse()
    hidden = without_households(home)
    data = json.loads(hidden.split("data: ", 1)[1])
    assert data["lat"] is None and data["lon"] is None and data["state"] == "probable"
    assert hidden.startswith("id: 7\nevent: event_created\n") and hidden.endswith("\n\n")
    assert without_households(device) == device and without_households(crew) == crew


def _run_guard(settings: Settings, receive_messages, path: str = "/reports"):
    sent = []

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def run():
        queue = list(receive_messages)

        async def receive():
            if queue:
                return queue.pop(0)
            await asyncio.sleep(3600)  # a body that never finishes

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": [],
                 "client": ("10.9.9.9", 1)}
        await EdgeGuard(app, settings, RateLimiter())(scope, receive, send)

    asyncio.run(run())
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_a_body_that_never_finishes_gets_408_within_the_deadline():
    import time

    started = time.monotonic()
    status, body = _run_guard(Settings(body_timeout_s=0.3), [{"type": "http.request", "body": b"{", "more_body": True}])
    assert status == 408 and b"request_timeout" in body and time.monotonic() - started < 5
    status, _ = _run_guard(Settings(body_timeout_s=0.3), [{"type": "http.request", "body": b"{}"}])
    assert status == 202


def test_requests_in_flight_per_client_are_capped():
    settings = Settings(max_requests_per_client=2, body_timeout_s=0.5)
    guard = EdgeGuard(None, settings, RateLimiter())
    guard.in_flight["10.9.9.9"] = 2  # two requests of this client still running
    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/health", "query_string": b"", "headers": [],
             "client": ("10.9.9.9", 1)}
    asyncio.run(guard(scope, None, send))
    assert sent[0]["status"] == 429
