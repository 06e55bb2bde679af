"""The planner against a real database: events as the live engine stores them, contacts, the ledger."""

import sys
from datetime import timedelta
from pathlib import Path

from helpers import add_reports, settings_for
from sqlalchemy import select, update

from api.notify.models import NotifyContact
from api.notify.planner import Planner
from api.store.models import Assignment, Crew, Event, OutboxMessage, Report, utcnow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gis"))
from small import small_feeder  # noqa: E402


def _event(db, eid="E1", **kw):
    now = utcnow()
    values = {"id": eid, "state": "confirmed", "device_id": "F2", "device_kind": "fuse", "event_class": "feeder",
              "customers_out": 4, "started_at": now, "updated_at": now, **kw}
    with db.write() as s, s.begin():
        row = s.get(Event, eid)
        if row is None:
            s.add(Event(**values))
        else:
            for k, v in values.items():
                setattr(row, k, v)


def _contacts(db, rows):
    with db.write() as s, s.begin():
        for r in rows:
            s.add(NotifyContact(**{"language": "en", "prefer": "sms", "proactive": True, **r}))


def _outbox(db):
    with db.read() as s:
        return s.scalars(select(OutboxMessage).where(OutboxMessage.kind != "acknowledgment")
                         .order_by(OutboxMessage.id)).all()


def _planner(db, **kw):
    return Planner(db, settings_for(None, None, **kw), network=small_feeder(), channels={"sms", "email", "log"})


def test_proactive_notice_goes_to_every_opted_in_contact_downstream_only(db):
    _contacts(db, [{"sp_id": "sp3", "sms": "+15551000003"}, {"sp_id": "sp4", "email": "d@x.org", "prefer": "email",
                                                            "language": "es"},
                   {"sp_id": "sp4", "sms": "+15551000099", "proactive": False},  # not opted in
                   {"sp_id": "sp1", "sms": "+15551000001"}])  # upstream of another fuse: not affected
    _event(db)
    p = _planner(db)
    assert p.scan() == 2
    rows = _outbox(db)
    assert {(r.kind, r.channel, r.payload["to"], r.payload["language"]) for r in rows} == {
        ("outage_notice", "sms", "+15551000003", "en"), ("outage_notice", "email", "d@x.org", "es")}
    assert p.scan() == 0  # nothing new: nothing sent again
    _event(db, customers_out=5)  # a change that is not news
    assert p.scan() == 0


def test_crew_etr_and_restoration_without_a_threshold_of_its_own(db):
    _contacts(db, [{"sp_id": "sp3", "sms": "+15551000003"}])
    add_reports(db, [{"sms": "+15552000001", "prefer": "sms"}], sp_id="sp4")
    with db.write() as s, s.begin():
        s.execute(update(Report).values(event_id="E1"))
    etr = utcnow() + timedelta(hours=3)
    _event(db, etr_latest=etr)
    p = _planner(db)
    p.scan()
    kinds = sorted((r.kind, r.payload["to"]) for r in _outbox(db))
    # the subscriber's notice carries the ETR (no separate update); the reporter gets the ETR as an update
    assert kinds == [("etr_update", "+15552000001"), ("outage_notice", "+15551000003")]
    _event(db, customers_out=5)  # not an ETR change
    assert p.scan() == 0
    _event(db, etr_latest=etr + timedelta(minutes=10))  # the engine published a new range (outage.etr_policy)
    assert p.scan() == 2  # both hear it: notifications add no threshold to the engine's rule
    _event(db, etr_latest=etr + timedelta(minutes=50))
    assert p.scan() == 2  # both hear the new ETR
    with db.write() as s, s.begin():
        s.add(Crew(id="C1", name="one"))
        s.flush()
        s.add(Assignment(event_id="E1", crew_id="C1", status="en_route", eta=utcnow() + timedelta(minutes=30)))
    _event(db, state="en_route", etr_latest=etr + timedelta(minutes=50))
    assert p.scan() == 2
    crew = [r for r in _outbox(db) if r.kind == "crew_dispatched"]
    assert len(crew) == 2 and all(r.payload["context"]["crew_eta"] for r in crew)
    _event(db, state="restored", restored_at=utcnow())
    assert p.scan() == 2
    assert p.scan() == 0
    assert sorted(r.kind for r in _outbox(db)).count("restoration") == 2


def test_merged_events_do_not_notify_twice(db):
    _contacts(db, [{"sp_id": "sp3", "sms": "+15551000003"}])
    _event(db, "E1", device_id="F2")
    p = _planner(db)
    assert p.scan() == 1
    # the engine merges E1 into E2 (upstream recloser): the customer was already told about this outage
    _event(db, "E2", device_id="R1", evidence={"merged_from": ["E1"]})
    _event(db, "E1", merged_into="E2")
    assert p.scan() == 0
    assert [r.kind for r in _outbox(db)] == ["outage_notice"]


def test_quiet_hours_hold_the_notice_but_not_the_restoration(db):
    now = utcnow()
    minute = now.hour * 60 + now.minute
    _contacts(db, [{"sp_id": "sp3", "sms": "+15551000003", "quiet_start": (minute - 60) % 1440,
                    "quiet_end": (minute + 120) % 1440, "timezone": "UTC"}])
    _event(db)
    p = _planner(db)
    p.scan()
    (notice,) = _outbox(db)
    assert notice.next_attempt_at > now + timedelta(minutes=100)
    _event(db, state="restored", restored_at=utcnow())
    p.scan()
    restoration = [r for r in _outbox(db) if r.kind == "restoration"]
    assert len(restoration) == 1 and restoration[0].next_attempt_at <= utcnow()


def test_a_waiting_etr_update_is_replaced_by_the_newer_one(db):
    add_reports(db, [{"sms": "+15552000001", "prefer": "sms"}], sp_id="sp4")
    with db.write() as s, s.begin():
        s.execute(update(Report).values(event_id="E1"))
    etr = utcnow() + timedelta(hours=3)
    _event(db, etr_latest=etr)
    p = _planner(db)
    p.scan()
    with db.write() as s, s.begin():  # the first update has gone out
        s.execute(update(OutboxMessage).where(OutboxMessage.kind == "etr_update").values(status="sent"))
    _event(db, etr_latest=etr + timedelta(hours=1))
    p.scan()
    _event(db, etr_latest=etr + timedelta(hours=2))
    p.scan()
    updates = [r for r in _outbox(db) if r.kind == "etr_update"]
    assert len(updates) == 2 and updates[1].status == "pending"
    assert updates[1].payload["context"]["etr_latest"].startswith((etr + timedelta(hours=2)).isoformat()[:16])
    assert p.stats["coalesced"] == 1


def test_a_contact_with_a_bad_time_zone_is_parked_and_blocks_no_one(db):
    """A contact stored before enrollment validated time zones (Not/AZone, quiet hours set) used to make every scan
    raise after the watermark moved: nobody downstream heard anything, ever."""
    _contacts(db, [{"sp_id": "sp3", "sms": "+15551000003", "quiet_start": 0, "quiet_end": 1, "timezone": "Not/AZone"},
                   {"sp_id": "sp4", "sms": "+15551000004"}])
    _event(db)
    p = _planner(db)
    assert p.scan() == 1
    assert [r.payload["to"] for r in _outbox(db)] == ["+15551000004"]
    with db.read() as s:
        parked = {c.sms: c.parked for c in s.scalars(select(NotifyContact))}
    assert parked["+15551000004"] is None and "Not/AZone" in parked["+15551000003"]
    _event(db, "E2", device_id="F2", sp_id="sp4")  # a later event: still planned, the parked contact left out
    assert p.scan() == 1 and p.stats["parked"] == 1  # parked once, then left out by the query
    assert p.stats["failed"] == 0


def test_an_event_whose_planning_fails_is_retried_after_the_watermark_moved(db, monkeypatch):
    _contacts(db, [{"sp_id": "sp3", "sms": "+15551000003"}])
    _event(db, "E1")
    p = _planner(db)
    real = p.plan_event
    monkeypatch.setattr(p, "plan_event", lambda ev, now: (_ for _ in ()).throw(RuntimeError("database hiccup")))
    assert p.scan() == 0 and p.retry == {"E1"}
    monkeypatch.setattr(p, "plan_event", real)
    assert p.scan(utcnow() + timedelta(hours=1)) == 1  # far past the watermark's overlap: retried by id
    assert p.retry == set()


def test_members_hear_exactly_the_ranges_the_engine_published(db):
    """One rule: the engine publishes an estimate only when it matters (outage.etr_policy.decide), and the planner
    sends every published range and nothing else -- no threshold or interval of its own."""
    import random

    from outage.engine import OutageEngine
    from outage.etr import Etr
    from outage.reports import Report as DomainReport

    rng = random.Random(22)
    t0 = utcnow().replace(second=0, microsecond=0)
    eng = OutageEngine.from_network(small_feeder(), clock=lambda: t0)
    eng.ingest_report(DomainReport("r1", t0, sp_id="sp4", neighbours_out=True))
    (ev,) = eng.events
    add_reports(db, [{"sms": "+15552000001", "prefer": "sms"}], sp_id="sp4")  # a reporter: no outage notice
    with db.write() as s, s.begin():
        s.execute(update(Report).values(event_id="E1"))
    _event(db)
    p = _planner(db)
    p.scan()
    published, proposals = [], 60
    for i in range(proposals):
        now = t0 + timedelta(minutes=10 * i)
        lo = now + timedelta(minutes=15 * rng.randint(1, 16))
        proposed = Etr(lo, lo + timedelta(minutes=15 * rng.randint(1, 8)), "low",
                       rng.choice(["storm", "queued", "assigned", "on_site"]), "", probability=rng.choice([0.8, 0.9]))
        before = ev.etr
        eng.update_etr(ev.event_id, now, etr=proposed, holds=rng.random(), fact=rng.random() < 0.1)
        if ev.etr != before:  # what the live engine persists: the published range and its probability
            published.append(ev.etr)
            _event(db, etr_earliest=ev.etr.earliest, etr_latest=ev.etr.latest,
                   etr_detail={"probability": ev.etr.probability, "source": ev.etr.source})
        p.scan()
        with db.write() as s, s.begin():  # delivered: the next one is a message of its own, not a coalesced one
            s.execute(update(OutboxMessage).where(OutboxMessage.kind == "etr_update").values(status="sent"))
    sent = [r.payload["context"] for r in _outbox(db) if r.kind == "etr_update"]
    assert 1 < len(published) < proposals  # the rule held some estimates back, and let others through
    assert [(c["etr_earliest"][:16], c["etr_latest"][:16], c["etr_probability"]) for c in sent] == [
        (e.earliest.isoformat()[:16], e.latest.isoformat()[:16], e.probability) for e in published]
