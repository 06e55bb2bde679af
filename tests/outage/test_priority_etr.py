"""Priority tiers, reasons and aging; ETR ranges, bounds, churn and crew overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from outage_feeders import tree_feeder

from outage import etr
from outage.engine import OutageEngine
from outage.priority import priority
from outage.reports import Report

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def engine(critical=None) -> OutageEngine:
    return OutageEngine.from_network(tree_feeder(critical=critical), clock=lambda: T0)


def only(eng):
    (ev,) = eng.events
    return ev


def test_tiers_and_reasons():
    eng = engine()
    eng.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1", neighbours_out=False))
    p = priority(only(eng), T0)
    assert (p.tier, p.reason) == (4, "single customer")
    eng.ingest_report(Report("r2", T0, sp_id="sp1.1.1.2"))
    p = priority(only(eng), T0)
    assert p.tier == 3 and "transformer outage, 3 customers" in p.reason
    eng.ingest_report(Report("r3", T0, sp_id="sp1.1.1.3", wires_down=True))
    p = priority(only(eng), T0)
    assert p.tier == 1 and "wires down" in p.reason and p.target == timedelta(minutes=15)

    life = engine(critical={"sp1.1.1.2": "life_support"})
    life.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1", neighbours_out=True))
    p = priority(only(life), T0)
    assert p.tier == 1 and "life support" in p.reason
    water = engine(critical={"sp1.1.1.2": "water"})
    water.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1", neighbours_out=True))
    p = priority(only(water), T0)
    assert p.tier == 2 and "water" in p.reason
    med = engine()
    med.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1", medical_equipment=True))
    assert priority(only(med), T0).tier == 1


def test_aging_raises_the_tier_and_the_weight():
    eng = engine()
    eng.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1", neighbours_out=False))
    ev = only(eng)
    fresh = priority(ev, T0)
    old = priority(ev, T0 + timedelta(hours=49))
    assert fresh.tier == 4 and old.tier == 3 and "aged" in old.reason
    assert old.overdue and not fresh.overdue
    assert old.weight > fresh.weight
    ancient = priority(ev, T0 + timedelta(days=30))
    assert ancient.tier >= 1


def test_assigned_etr_is_a_range_never_in_the_past():
    e = etr.assigned_etr(T0, 20, "fuse")
    assert e.earliest >= T0 + etr.MIN_LEAD and e.latest > e.earliest
    assert e.earliest.minute % 15 == 0 and e.confidence == "high"
    assert e.earliest >= T0 + timedelta(minutes=20 + 45)
    quick = etr.assigned_etr(T0, 0, "service")
    assert quick.earliest >= T0 + etr.MIN_LEAD
    with pytest.raises(ValueError, match="eta_minutes"):
        etr.assigned_etr(T0, -1, "fuse")


def test_backlog_and_storm_wide_etr_grow_with_backlog():
    small = etr.backlog_etr(T0, "transformer", 60, crews=4)
    big = etr.backlog_etr(T0, "transformer", 6000, crews=4)
    assert big.earliest > small.earliest and big.confidence == "low"
    area = etr.storm_wide_etr(T0, 6000, crews=10)
    assert area.latest > area.earliest > T0


def test_no_churn_and_crew_etr_is_never_overwritten():
    first = etr.assigned_etr(T0, 30, "fuse")
    nudged = etr.assigned_etr(T0 + timedelta(minutes=10), 20, "fuse")
    assert etr.update(first, nudged, T0 + timedelta(minutes=10)) is first
    moved = etr.assigned_etr(T0, 180, "fuse")
    assert etr.update(first, moved, T0) is moved
    crew = etr.crew_etr(T0, T0 + timedelta(hours=3))
    assert etr.update(crew, moved, T0) is crew
    # an estimate that has become past is replaced
    assert etr.update(first, moved, first.latest + timedelta(minutes=1)) is moved


def test_engine_etr_update():
    eng = engine()
    eng.ingest_report(Report("r1", T0, sp_id="sp1.1.1.1", neighbours_out=True))
    ev = only(eng)
    eng.update_etr(ev.event_id, T0, backlog_repair_minutes=600, crews=2)
    assert ev.etr.source == "storm" and ev.etr.earliest > T0
    eng.update_etr(ev.event_id, T0, crew_at=T0 + timedelta(hours=2))
    eng.update_etr(ev.event_id, T0, eta_minutes=5)
    assert ev.etr.source == "crew"


def test_hazard_with_power_on_is_its_own_p1_event():
    eng = engine()
    eng.ingest_report(Report("out", T0, sp_id="sp1.1.1.1"))
    eng.ingest_report(Report("haz", T0, sp_id="sp1.1.1.2", power="on", wires_down=True))
    haz = eng.event_of_report("haz")
    assert haz.event_class.value == "hazard" and haz.hazards == ["wires_down"]
    assert priority(haz, T0).tier == 1
    assert eng.event_of_report("out").event_id != haz.event_id
    eng.confirm(haz.event_id, "dispatcher")
    eng.restore(haz.event_id, "crew", now=at(30))
    eng.ingest_report(Report("out2", at(31), sp_id="sp1.1.1.2"))
    assert eng.event_of_report("out2").key == "T1.1.1"  # the hazard neither explained nor blocked the outage
    assert all(r.event_id != haz.event_id for r in eng.interruptions())
