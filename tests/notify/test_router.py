"""The notification endpoints inside the real service app (the router mounted as the lead will mount it)."""

import sys
from pathlib import Path

import pytest
from helpers import settings_for
from sqlalchemy import select

from api.notify import channels
from api.notify.models import NotifyOptOut
from api.notify.worker import Worker
from api.store.models import OutboxMessage, Report
from api.web.routes.notify import router

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))


@pytest.fixture
def client(db_url):
    from service_helpers import make_client, make_users

    tokens = make_users(db_url)
    c = make_client(db_url, tokens)
    c.app.include_router(router)
    with c:
        yield c


def _inbound(client, sender, body, sid):
    r = client.post("/notify/sms/inbound", data={"From": sender, "Body": body, "MessageSid": sid},
                    headers=client.as_("integration"))
    assert r.status_code == 200, r.text
    return r.json()


def test_stop_start_help_and_the_replies_go_out_even_to_an_opted_out_number(client, db, gateway):
    assert _inbound(client, "+1 555 010 2000", "STOP", "SM1")["keyword"] == "stop"
    with db.read() as s:
        assert s.scalar(select(NotifyOptOut.opted_out).where(NotifyOptOut.address == "5550102000")) is True
    assert _inbound(client, "+1 555 010 2000", "help", "SM2")["keyword"] == "help"
    assert _inbound(client, "+1 555 010 2000", "start", "SM3")["keyword"] == "start"
    assert _inbound(client, "+1 555 010 2000", "start", "SM3")["keyword"] == "start"  # gateway retry: one reply
    s_ = settings_for(None, gateway)
    w = Worker(db, s_, channels.from_settings(s_))
    try:
        w.run_once()
    finally:
        w.close()
    bodies = [b["Body"] for b in gateway.received.bodies.values()]
    assert len(bodies) == 3
    assert any("no more outage texts" in b for b in bodies) and any("STOP to stop" in b for b in bodies)
    with db.read() as s:
        assert s.scalar(select(NotifyOptOut.opted_out).where(NotifyOptOut.address == "5550102000")) is False


def test_reply_out_becomes_a_report_that_is_acknowledged(client, db):
    r = client.post("/reports", json={"account": "A-1", "contact": {"sms": "+15550109999", "prefer": "sms"},
                                      "language": "es"}, headers=client.as_("integration"))
    if r.status_code == 404:  # the small feeder's accounts: locate by coordinates instead
        r = client.post("/reports", json={"lat": 50.01, "lon": 11.56, "language": "es",
                                          "contact": {"sms": "+15550109999", "prefer": "sms"}},
                        headers=client.as_("integration"))
    assert r.status_code == 202, r.text
    out = _inbound(client, "+15550109999", "OUT", "SM9")
    assert out["keyword"] == "out" and out["outcome"].startswith("still out: report R-")
    with db.read() as s:
        reports = s.scalars(select(Report).order_by(Report.id)).all()
        acks = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "acknowledgment")).all()
    assert len(reports) == 2 and reports[1].channel == "sms" and reports[1].language == "es"
    assert reports[1].sp_id == reports[0].sp_id and len(acks) == 2


def test_sla_and_dead_letters_are_visible_to_dispatchers_only(client, db):
    r = client.post("/reports", json={"lat": 50.01, "lon": 11.56, "contact": {"email": "a@b.org"}},
                    headers=client.as_("integration"))
    assert r.status_code == 202
    assert client.get("/notify/sla", headers=client.as_("member")).status_code == 403
    sla = client.get("/notify/sla", headers=client.as_("dispatcher")).json()
    assert sla["reports"] == 1 and sla["pending"] == 1 and sla["in_breach"] == 0
    with db.write() as s, s.begin():
        row = s.scalar(select(OutboxMessage))
        row.status, row.last_error = "dead", "SMTP 550 mailbox unavailable"
    dead = client.get("/notify/dead", headers=client.as_("dispatcher")).json()
    assert dead[0]["last_error"] == "SMTP 550 mailbox unavailable"
    assert client.get("/notify/sla", headers=client.as_("dispatcher")).json()["in_breach"] == 1
    assert client.post(f"/notify/dead/{dead[0]['id']}/retry", headers=client.as_("dispatcher")).status_code == 200
    assert client.get("/notify/dead", headers=client.as_("dispatcher")).json() == []


def test_inbound_signature_when_a_secret_is_set(client):
    from api.notify.channels import sign

    client.app.state.notify_settings = settings_for(None, None, inbound_secret="s3cret")
    body = "From=%2B15550100001&Body=HELP&MessageSid=SM5"
    bad = client.post("/notify/sms/inbound", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-OMS-Signature": "0" * 64})
    assert bad.status_code == 401
    good = client.post("/notify/sms/inbound", content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-OMS-Signature": sign("s3cret", body.encode())})
    assert good.status_code == 200 and good.json()["keyword"] == "help"
