"""An address typed into an anonymous report gets one confirmation request and nothing else until confirmed."""

import re
import sys
from pathlib import Path

import pytest
from helpers import settings_for
from sqlalchemy import select

from api.notify import channels
from api.notify.worker import Worker
from api.store.models import OutboxMessage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))


@pytest.fixture
def client(db_url):
    from service_helpers import make_client, make_users

    c = make_client(db_url, make_users(db_url))
    with c:
        yield c


def _report(client, contact, role=None):
    r = client.post("/reports", json={"lat": 50.01, "lon": 11.56, "contact": contact}, headers=client.as_(role))
    assert r.status_code == 202, r.text
    return r.json()["reference"]


def _work(db, smtp=None, gateway=None):
    s = settings_for(smtp, gateway)
    w = Worker(db, s, channels.from_settings(s), seed=1)
    try:
        while w.run_once():
            pass
    finally:
        w.close()


def _acks(db):
    with db.read() as s:
        return [r.status for r in s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "acknowledgment")
                                            .order_by(OutboxMessage.id))]


def test_anonymous_sms_contact_gets_one_request_until_yes(client, db, gateway):
    _report(client, {"sms": "+1 555 011 9999", "prefer": "sms"})
    _work(db, gateway=gateway)
    (only,) = gateway.received.bodies.values()  # the one message: a confirmation request, not the acknowledgment
    assert "Reply YES" in only["Body"] and _acks(db) == ["held"]
    _report(client, {"sms": "+15550119999", "prefer": "sms"})  # again, typed by anyone: no second text
    _work(db, gateway=gateway)
    assert gateway.received.total == 1 and _acks(db) == ["held", "held"]
    r = client.post("/notify/sms/inbound", data={"From": "+15550119999", "Body": "YES", "MessageSid": "SM77"},
                    headers=client.as_("integration"))
    assert r.status_code == 200 and r.json()["outcome"].startswith("confirmed: 2"), r.text
    _work(db, gateway=gateway)
    assert _acks(db) == ["sent", "sent"] and gateway.received.total == 3  # the two acks; no start_confirm
    _report(client, {"sms": "+15550119999", "prefer": "sms"})  # confirmed now: acknowledged at once
    _work(db, gateway=gateway)
    assert _acks(db) == ["sent"] * 3


def test_anonymous_email_is_confirmed_by_its_code_and_a_token_needs_no_step(client, db, smtp):
    _report(client, {"email": "Someone@Example.org", "prefer": "email"})
    _report(client, {"email": "gateway-user@example.org", "prefer": "email"}, role="integration")
    _work(db, smtp=smtp)
    assert _acks(db) == ["held", "sent"]
    (request,) = [b for b in smtp.received.bodies.values() if b["to"] == ["Someone@Example.org"]]
    code = re.search(r"code=([\w-]+)", request["body"]).group(1)
    assert client.post("/notify/confirm", json={"code": "x" * 20}).status_code == 404
    r = client.post("/notify/confirm", json={"code": code})
    assert r.status_code == 200 and r.json() == {"confirmed": "email", "released": 1}
    assert client.post("/notify/confirm", json={"code": code}).status_code == 404  # used once
    _work(db, smtp=smtp)
    assert _acks(db) == ["sent", "sent"] and smtp.received.total == 3
