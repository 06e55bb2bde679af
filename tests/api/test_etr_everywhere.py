"""One storm, one ETR: the notification's text, the public map, the dispatcher map, the console's event API and the
SSE stream all state the same range with the same stated probability (the event's published ETR)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from service_helpers import report_storm, set_crews, small_feeder, storm_client
from sqlalchemy import select

from api.notify.channels import LogChannel
from api.notify.config import NotifySettings
from api.notify.planner import Planner
from api.notify.worker import Worker
from api.store.db import Database
from api.store.models import OutboxMessage

T0 = datetime(2031, 3, 4, 15, 0, tzinfo=UTC)
TZ = "America/Chicago"


def _clock(t: datetime) -> str:
    return t.astimezone(ZoneInfo(TZ)).strftime("%I:%M %p").lstrip("0")


def test_notifications_maps_console_and_stream_show_the_same_etr(db_url, tokens):
    set_crews(db_url, "off_shift", "C2")
    clock = [T0]
    with storm_client(db_url, tokens, clock) as c:
        live = c.app.state.oms.live
        # a small storm: one crew, three outages, reported by signed-in members (no address confirmation first)
        report_storm(
            c,
            ("A-sp3", "A-sp1", "A-sp5"),
            contact={"sms": "+15552000001", "prefer": "sms"},
            headers=c.as_("member"),
        )
        clock[0] += timedelta(minutes=20)
        live._dirty()
        live.replan()
        events = {e["id"]: e for e in c.get("/events", headers=c.as_("dispatcher")).json()}
        sp3 = next(e for e in events.values() if e["device_id"] in ("T2", "F2") or e["sp_id"] == "sp3")
        eid = sp3["id"]
        lo, hi, p = (
            datetime.fromisoformat(sp3["etr_earliest"]),
            datetime.fromisoformat(sp3["etr_latest"]),
            sp3["etr_probability"],
        )
        assert lo < hi and p in (0.8, 0.9)

        # the console: the events list (above) and the event's ETR with its basis
        etr = c.get(f"/events/{eid}/evidence", headers=c.as_("dispatcher")).json()["etr"]
        assert (
            datetime.fromisoformat(etr["earliest"]),
            datetime.fromisoformat(etr["latest"]),
            etr["probability"],
        ) == (lo, hi, p)
        # the stream: the last message about the event says the same
        said = [m.data for m in live.broker.since(0) if m.data.get("id") == eid and "etr_latest" in m.data]
        last = json.loads(json.dumps(said[-1], default=str))
        assert (
            datetime.fromisoformat(last["etr_earliest"]),
            datetime.fromisoformat(last["etr_latest"]),
            last["etr_probability"],
        ) == (lo, hi, p)
        # the maps: the dispatcher's event, and the public area the event's customers are in (its only outage)
        disp = c.get("/maps/dispatcher.geojson", headers=c.as_("dispatcher")).json()
        feature = next(f["properties"] for f in disp["features"] if f["properties"].get("id") == eid)
        assert (
            datetime.fromisoformat(feature["etr_low"]),
            datetime.fromisoformat(feature["etr_high"]),
            feature["etr_probability"],
        ) == (lo, hi, p)
        public = c.get("/maps/public.geojson").json()
        areas = [f["properties"] for f in public["features"] if f["properties"]["outages"]]
        assert areas
        # an area's range holds each of its outages' ranges; it states the smallest probability
        for a in areas:
            mine = [e for e in disp["features"] if e["properties"].get("layer") == "event"]
            assert a["outages"] == len(mine) == len(events)  # the small feeder is one public area (k = 10)
            assert a["etr_from"] == min(e["properties"]["etr_low"] for e in mine)
            assert a["etr_by"] == max(e["properties"]["etr_high"] for e in mine)
            assert a["etr_probability"] == min(e["properties"]["etr_probability"] for e in mine)
            assert a["etr_from"] <= feature["etr_low"] and a["etr_by"] >= feature["etr_high"]

        # the notification: the planner's outbox row, rendered as the worker sends it
        ns = NotifySettings(utility_name="Test Co-op", timezone=TZ)
        db = Database(db_url)
        planner = Planner(db, ns, network=small_feeder(), channels={"sms", "log"}, clock=lambda: clock[0])
        assert planner.scan(clock[0]) > 0
        worker = Worker(db, ns, {"sms": LogChannel(), "log": LogChannel()})
        with db.read() as s:
            rows = {r.id: r for r in s.scalars(select(OutboxMessage).where(OutboxMessage.event_id == eid))}
        jobs = worker.prepare(list(rows), clock[0])
        texts = [
            j.msg.body
            for j in jobs
            if j.msg is not None  # every message that states the ETR
            and rows[j.row_id].kind in ("etr_update", "crew_dispatched", "outage_notice")
        ]
        assert texts, [(rows[j.row_id].kind, j.msg and j.msg.body) for j in jobs]
        words = f"between {_clock(lo)} and {_clock(hi)}"
        assert any(words in t and f"({p:.0%} likely)" in t for t in texts), (words, texts)
        db.dispose()
