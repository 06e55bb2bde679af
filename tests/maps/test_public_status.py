"""The status lookup follows a member's outage to its end, in plain stages, and still names no one."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from service_helpers import make_client, make_users  # noqa: E402

from api.store.db import Database  # noqa: E402
from api.store.models import Event, Report  # noqa: E402


@pytest.fixture
def client(db_url):
    # no engine: the test plays the outage's life itself, and nothing overwrites it meanwhile
    with make_client(db_url, make_users(db_url), engine_enabled=False) as c:
        yield c


def set_event(db_url, ref, **values):
    """The report's outage event (created on first use) with ``values``."""
    db = Database(db_url)
    with db.write.begin() as s:
        report = s.scalar(select(Report).where(Report.reference == ref))
        event = s.get(Event, "EV-STATUS")
        if event is None:
            event = Event(id="EV-STATUS", state="unconfirmed", sp_id="sp1", customers_out=3)
            s.add(event)
            report.event_id = event.id
        for k, v in values.items():
            setattr(event, k, v)
    db.dispose()


def test_status_follows_the_outage_to_restored(client, db_url):
    ref = client.post("/reports", json={"account": "A-sp1"}).json()["reference"]
    assert client.get(f"/reports/{ref}").json()["event"] is None
    now = datetime.now(UTC).replace(microsecond=0)
    set_event(db_url, ref, state="dispatched", etr_earliest=now + timedelta(hours=1),
              etr_latest=now + timedelta(hours=3))  # a 2-hour window: "medium"
    live = client.get(f"/reports/{ref}").json()["event"]
    assert live["stage"] in ("assessing", "crew_assigned", "crew_en_route", "crew_on_site")
    assert live["etr_confidence"] == "medium" and live["restored_at"] is None and live["customers_out"] >= 1
    set_event(db_url, ref, state="restored", restored_at=now + timedelta(minutes=50))
    done = client.get(f"/reports/{ref}").json()
    assert done["status"] == "linked"
    event = done["event"]
    assert event["stage"] == "restored" and event["restored_at"].startswith((now + timedelta(minutes=50)).strftime("%Y-%m-%dT%H:%M"))
    # no stale ETR, no "crew not yet assigned", nobody out after restoration
    assert event["etr_earliest"] is None and event["etr_latest"] is None and event["customers_out"] == 0
    assert "A-sp1" not in str(done) and "sp1" not in str(done)
