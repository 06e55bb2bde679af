"""The live service issues the learned ETR at every stage (storm, queued, assigned, on site), learns from what it
restores (and from an imported history), keeps learning across a restart, and never replaces a crew's ETR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service_helpers import report_storm, set_crews, storm_client
from sqlalchemy import select

from api.store.db import Database
from api.store.models import Event, JournalEntry

T0 = datetime(2031, 3, 4, 15, 0, tzinfo=UTC)


def _history(tmp_path, n=40):
    """Last season: fuse, transformer and service repairs of 40-160 min (crew on site -> restored)."""
    rows = ["event_id,start,restored,cause,device_kind,on_site"]
    for i in range(n):
        kind = ("fuse", "transformer", "service")[i % 3]
        on_site = datetime(2030, 6, 1, 8, 0, tzinfo=UTC) + timedelta(hours=i)
        rows.append(
            f"H{i},{on_site.isoformat()},{(on_site + timedelta(minutes=40 + 3 * i)).isoformat()},"
            f"{('tree', 'equipment')[i % 2]},{kind},{on_site.isoformat()}"
        )
    path = tmp_path / "history.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _stages(db_url) -> dict[str, set[str]]:
    """Per event, the stages the service proposed an ETR at (its journal)."""
    db = Database(db_url)
    with db.read() as s:
        actions = [j.payload for j in s.scalars(select(JournalEntry).where(JournalEntry.kind == "action"))]
    db.dispose()
    out: dict[str, set[str]] = {}
    for a in actions:
        if a["action"] == "etr" and a.get("stage"):
            out.setdefault(a["event_id"], set()).add(a["stage"])
    return out


def test_a_storms_events_get_every_stage_from_the_learned_model(db_url, tokens, tmp_path):
    clock = [T0]
    set_crews(db_url, "off_shift")  # the storm begins before the crews are on shift: damage is being assessed
    with storm_client(db_url, tokens, clock, etr_history=str(_history(tmp_path))) as c:
        live = c.app.state.oms.live
        assert live.etr.history == 40 and live.etr.model.restored == 40
        report_storm(c, ("A-sp1", "A-sp3", "A-sp5"))  # no crew on shift: every event gets the storm stage
        events = c.get("/events", headers=c.as_("dispatcher")).json()
        assert len(events) >= 3
        for e in events:
            assert e["etr_earliest"] is not None and e["etr_probability"] == 0.9  # the first range is wider
        assert all(s == {"storm"} for s in _stages(db_url).values())

        set_crews(db_url, "available")
        clock[0] += timedelta(minutes=5)
        live.replan()  # two crews, three events: two next stops, one queued behind
        stages = _stages(db_url)
        assert {"assigned"} <= set().union(*stages.values()) and any("queued" in s for s in stages.values())

        mine = c.get("/crew/assignments", headers=c.as_("crew")).json()[0]
        clock[0] += timedelta(minutes=2)
        assert (
            c.post(
                f"/crew/assignments/{mine['id']}/status", json={"status": "en_route"}, headers=c.as_("crew")
            ).status_code
            == 200
        )
        clock[0] += timedelta(minutes=20)
        r = c.post(
            f"/crew/assignments/{mine['id']}/status",
            json={"status": "on_site", "cause": "tree"},
            headers=c.as_("crew"),
        )
        assert r.status_code == 200, r.text
        eid = mine["event_id"]
        assert "on_site" in _stages(db_url)[eid]
        detail = c.get(f"/events/{eid}", headers=c.as_("dispatcher")).json()
        assert detail["cause"] == "tree" and detail["cause_confirmed"]
        db = Database(db_url)
        with db.read() as s:
            on_site = [
                j.payload
                for j in s.scalars(select(JournalEntry).where(JournalEntry.kind == "action"))
                if j.payload.get("stage") == "on_site" and j.payload["event_id"] == eid
            ]
        # the on-site estimate uses the reported cause, a new fact
        assert "tree" in on_site[-1]["args"]["etr"]["basis"] and on_site[-1]["args"]["fact"]

        clock[0] += timedelta(minutes=75)
        r = c.post(
            f"/crew/assignments/{mine['id']}/status",
            json={"status": "restored", "cause": "tree"},
            headers=c.as_("crew"),
        )
        assert r.status_code == 200, r.text
        assert live.etr.learned["repairs"] == 1 and live.etr.model.restored == 41
        assert list(live.etr.model.repair[(live.engine.event(eid).device_kind, "tree")])[-1] == 75.0
        assert live.etr.learned["waits"] >= 1  # the wait it was promised at each stage against the actual one
        with db.read() as s:
            assert s.get(Event, eid).state == "restored"
        db.dispose()
    # a restart learns it all again, from the history and the journal
    with storm_client(db_url, tokens, clock, etr_history=str(_history(tmp_path))) as c:
        live = c.app.state.oms.live
        assert live.etr.learned["repairs"] == 1 and live.etr.model.restored == 41


def test_a_crew_etr_is_kept_as_entered_and_never_replaced(db_url, tokens):
    clock = [T0]
    with storm_client(db_url, tokens, clock) as c:
        live = c.app.state.oms.live
        report_storm(c, ("A-sp3",))
        mine = c.get("/crew/assignments", headers=c.as_("crew")).json()
        assert mine or c.get("/crew/assignments", headers=c.as_("crew2")).json(), (
            live.replanner.last,
            c.get("/events", headers=c.as_("dispatcher")).json(),
        )
        mine = mine[0] if mine else c.get("/crew/assignments", headers=c.as_("crew2")).json()[0]
        who = "crew" if mine["crew_id"] == "C1" else "crew2"
        past = c.post(
            f"/crew/assignments/{mine['id']}/status",
            json={"status": "on_site", "etr": (T0 - timedelta(hours=1)).isoformat()},
            headers=c.as_(who),
        )
        assert past.status_code == 422 and "past" in past.text
        at = T0 + timedelta(hours=3, minutes=10)
        r = c.post(
            f"/crew/assignments/{mine['id']}/status",
            json={"status": "on_site", "etr": at.isoformat()},
            headers=c.as_(who),
        )
        assert r.status_code == 200, r.text
        # estimates keep coming (re-plans); the crew's word stands, even once overdue
        for minutes in (10, 200, 400):
            clock[0] = T0 + timedelta(minutes=minutes)
            live._dirty()
            live.replan()
            ev = c.get(f"/events/{mine['event_id']}/evidence", headers=c.as_("dispatcher")).json()
            assert ev["etr"]["source"] == "crew" and ev["event"]["etr_latest"].startswith(at.isoformat()[:16])


def test_a_bad_history_setting_is_said_and_the_service_still_estimates(tmp_path):
    from api.service.etr import LiveEtr

    bad = tmp_path / "history.csv"
    bad.write_text("event_id,when\nE1,yesterday\n")
    for path in (str(tmp_path / "missing.csv"), str(bad)):
        e = LiveEtr(path)
        assert e.history == 0 and "not learned" in e.status and path in e.status
        assert e.model.estimate(T0, "storm", "fuse", wait_minutes=60).probability == 0.8


def test_a_passed_promise_asks_for_one_replan_that_renews_it(db_url, tokens):
    clock = [T0]
    with storm_client(db_url, tokens, clock) as c:
        live = c.app.state.oms.live
        report_storm(c, ("A-sp5",))
        (ev,) = live.engine.events
        first = ev.etr
        assert first is not None and not live.etr.overdue(live.engine, clock[0])
        clock[0] = first.latest + timedelta(minutes=1)  # the promise has passed
        assert live.etr.overdue(live.engine, clock[0])
        assert not live.etr.overdue(live.engine, clock[0])  # flagged once, not at every tick
        live.replan()
        assert ev.etr.latest > clock[0] and not live.etr.overdue(live.engine, clock[0])
