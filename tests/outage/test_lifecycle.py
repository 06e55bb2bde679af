"""Life cycle, restoration (full, partial, nested) and exact per-customer interruption records; classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from outage_feeders import tree_feeder

from outage.engine import OutageEngine
from outage.events import EventClass, EventState
from outage.meters import SimulatedHeadEnd
from outage.reports import Report, ScadaEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fuse_event(eng: OutageEngine) -> str:
    eng.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1"))
    eng.ingest_report(Report("r2", at(2), sp_id="sp1.1.2.1"))
    (ev,) = eng.events
    assert ev.key == "F1.1"
    return ev.event_id


def minutes_by_sp(records) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in records:
        assert r.customer_id not in out, f"{r.customer_id} counted twice"
        out[r.customer_id] = r.minutes
    return out


def test_life_cycle_keeps_time_actor_and_reason():
    eng = OutageEngine.from_network(tree_feeder(), clock=lambda: at(30))
    eid = fuse_event(eng)
    eng.confirm(eid, "dispatcher:ann", "crew saw blown fuse")
    eng.set_event_state(eid, "dispatched", "dispatch", "crew 7")
    eng.set_event_state(eid, "en_route", "crew:7")
    eng.set_event_state(eid, "on_site", "crew:7")
    with pytest.raises(ValueError, match="on_site to unconfirmed"):
        eng.set_event_state(eid, "unconfirmed", "crew:7")
    eng.restore(eid, "crew:7", "fuse replaced", now=at(90))
    ev = eng.event(eid)
    states = [(h.state.value, h.actor) for h in ev.history]
    assert states == [("unconfirmed", "engine"), ("confirmed", "dispatcher:ann"), ("dispatched", "dispatch"),
                      ("en_route", "crew:7"), ("on_site", "crew:7"), ("restored", "crew:7")]
    assert ev.history[1].reason == "crew saw blown fuse" and ev.history[-1].time == at(90)
    recs = eng.interruptions()
    assert len(recs) == 9 and all(r.minutes == 90 and r.end == at(90) for r in recs)
    assert {r.device_id for r in recs} == {"F1.1"} and {r.feeder_id for r in recs} == {"FD1"}


def test_open_events_report_open_interruptions_and_cancel_records_none():
    eng = OutageEngine.from_network(tree_feeder(), clock=lambda: at(30))
    eid = fuse_event(eng)
    assert {r.end for r in eng.interruptions()} == {None}
    eng.cancel(eid, "dispatcher:ann", "customer-side problem")
    assert eng.interruptions() == [] and eng.events == []


def test_partial_restoration_counts_each_customer_once():
    eng = OutageEngine.from_network(tree_feeder(), clock=lambda: T0)
    eid = fuse_event(eng)
    eng.confirm(eid, "dispatcher:ann")
    eng.restore(eid, "crew:7", "switched back", now=at(30), devices=["T1.1.3"])
    ev = eng.event(eid)
    assert ev.open and ev.customers == 6
    eng.restore(eid, "crew:7", "fuse replaced", now=at(75))
    mins = minutes_by_sp(eng.interruptions())
    assert len(mins) == 9
    assert all(mins[f"sp1.1.3.{k}"] == 30 for k in (1, 2, 3))
    assert all(mins[f"sp1.1.{j}.{k}"] == 75 for j in (1, 2) for k in (1, 2, 3))


def test_nested_outage_is_backdated_without_double_counting():
    eng = OutageEngine.from_network(tree_feeder(), clock=lambda: T0)
    eid = fuse_event(eng)
    eng.confirm(eid, "dispatcher:ann")
    eng.restore(eid, "crew:7", "fuse replaced", now=at(60))
    # a customer calls back: still out (their transformer failed too)
    eng.ingest_report(Report("still", at(70), sp_id="sp1.1.2.2", neighbours_out=True))
    nested = eng.event_of_report("still")
    assert nested.key == "T1.1.2" and nested.nested_from == eid
    assert nested.start == T0  # backdated to the original start
    eng.confirm(nested.event_id, "crew:7")
    eng.restore(nested.event_id, "crew:7", "transformer replaced", now=at(150))
    mins = minutes_by_sp(eng.interruptions())
    assert len(mins) == 9
    assert all(mins[f"sp1.1.2.{k}"] == 150 for k in (1, 2, 3))
    assert all(mins[f"sp1.1.{j}.{k}"] == 60 for j in (1, 3) for k in (1, 2, 3))
    assert sum(mins.values()) == 3 * 150 + 6 * 60


def test_restoration_ping_finds_nested_outages():
    head = SimulatedHeadEnd({f"M-sp1.1.2.{k}": [(T0, None)] for k in (1, 2, 3)})
    eng = OutageEngine.from_network(tree_feeder(), clock=lambda: T0, meters=head)
    eng.ingest_scada(ScadaEvent("R1", "lockout", T0))
    (ev,) = eng.events
    eng.ingest_scada(ScadaEvent("R1", "close", at(45)))
    assert eng.event(ev.event_id).state == EventState.RESTORED
    (nested,) = eng.events
    assert nested.key == "T1.1.2" and nested.nested_from == ev.event_id and nested.start == T0
    for k in (1, 2, 3):
        head.set_on(f"M-sp1.1.2.{k}", at(100))
    eng.restore(nested.event_id, "crew:1", now=at(100))
    assert eng.events == []
    mins = minutes_by_sp(eng.interruptions())
    assert len(mins) == 27 and sum(mins.values()) == 24 * 45 + 3 * 100


def test_restoring_a_child_while_its_parent_is_out_keeps_the_customer_out():
    eng = OutageEngine.from_network(tree_feeder(), clock=lambda: T0)
    eng.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1", neighbours_out=True))
    (child,) = eng.events
    eng.confirm(child.event_id, "dispatcher:ann")
    eng.ingest_scada(ScadaEvent("R1", "lockout", at(10)))
    parent = next(e for e in eng.events if e.key == "R1")
    eng.restore(child.event_id, "crew:1", now=at(20))  # transformer fixed, but the recloser is still open
    eng.restore(parent.event_id, "scada", now=at(50))
    mins = minutes_by_sp(eng.interruptions())
    assert len(mins) == 27
    assert all(mins[f"sp1.1.1.{k}"] == 50 for k in (1, 2, 3))  # from 12:00 (child start) to 12:50
    assert all(v == 40 for k, v in mins.items() if not k.startswith("sp1.1.1."))


def test_classification():
    eng = OutageEngine.from_network(tree_feeder(feeders=2), clock=lambda: T0)
    eng.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1", neighbours_out=False))
    assert eng.events[0].event_class == EventClass.SINGLE_CUSTOMER
    eng.ingest_report(Report("r2", at(1), sp_id="sp1.1.1.2"))
    assert eng.events[0].event_class == EventClass.FEEDER
    eng.ingest_report(Report("r3", at(2), sp_id="sp2.1.1.1", neighbours_out=True))
    a, b = eng.events
    eng.merge(a.event_id, [b.event_id], "dispatcher:ann", "storm cluster")
    (ev,) = eng.events
    assert ev.event_class == EventClass.COMMUNITY and ev.feeders == ("FD1", "FD2")
    sub = OutageEngine.from_network(tree_feeder(feeders=2), clock=lambda: T0)
    sub.ingest_scada(ScadaEvent("substation:SUB1", "lockout", T0))
    assert sub.events[0].event_class == EventClass.COMMUNITY and sub.events[0].customers == 54


def test_split_carves_out_a_device():
    eng = OutageEngine.from_network(tree_feeder(), clock=lambda: T0)
    eid = fuse_event(eng)
    eng.split(eid, "T1.1.2", "dispatcher:ann", "separate crew")
    new = eng.event_of_report("r2")
    assert new.key == "T1.1.2" and new.event_id != eid and eng.event(eid).reports == ["r1"]
    assert (new.service_points_out, eng.event(eid).service_points_out) == (1, 1)  # the callers go with their reports
