"""Enrollment validates every contact field: what the planner cannot serve is refused with a clear 422."""

import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from api.notify.models import NotifyContact
from api.notify.policy import e164
from api.web.routes.notify import router

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))


@pytest.fixture
def client(db_url):
    from service_helpers import make_client, make_users

    c = make_client(db_url, make_users(db_url))
    c.app.include_router(router)
    with c:
        yield c


def _sp(client):
    directory = client.app.state.oms.live.directory
    return next(iter(directory.sp_xy))


@pytest.mark.parametrize("field,value", [("timezone", "Not/AZone"), ("timezone", "../../etc/passwd"),
                                         ("language", "fr"), ("sms", "555-0100"), ("sms", "call me"),
                                         ("voice", "+12"), ("quiet_start", 1320),
                                         ("webhook_url", "http://169.254.169.254/latest/meta-data"),
                                         ("webhook_url", "http://localhost:8000/admin")])
def test_bad_contact_fields_are_refused(client, field, value):
    body = {"sp_id": _sp(client), "sms": "+15550102000", field: value}
    r = client.post("/notify/contacts", json=[body], headers=client.as_("integration"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]


def test_good_contacts_are_stored_in_e164(client, db):
    body = [{"sp_id": _sp(client), "sms": "+1 (555) 010-2000", "voice": "555.010.2001", "timezone": "America/Chicago",
             "quiet_start": 1320, "quiet_end": 420, "language": "es"}]
    r = client.post("/notify/contacts", json=body, headers=client.as_("integration"))
    assert r.status_code == 201, r.text
    with db.read() as s:
        c = s.scalar(select(NotifyContact))
    assert (c.sms, c.voice, c.timezone, c.parked) == ("+15550102000", "+15550102001", "America/Chicago", None)


def test_e164():
    assert e164("+44 20 7946 0958") == "+442079460958"
    assert e164("0044 20 7946 0958") == "+442079460958"
    assert e164("15550102000") == "+15550102000"
    assert e164("+1 555 0100") is None and e164("") is None and e164("+0123456789") is None
    assert e164("020 7946 0958", "44") == "+442079460958"
