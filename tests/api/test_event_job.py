"""Events become dispatch jobs in one place (:func:`api.service.replan.event_job`), for the service and the storm
dispatch benchmark alike."""

from __future__ import annotations

from types import SimpleNamespace

from api.service.replan import event_job


def event(**kw):
    row = dict(id="E1", lat=49.95, lon=11.58, device_kind="fuse", device_id="F7", sp_id=None, cause=None,
               hazards=[], weight=120.5, tier=3, customers_out=42)
    row.update(kw)
    return SimpleNamespace(**row)


def test_a_located_event_is_a_job_with_its_skills_weight_and_repair_time():
    job = event_job(event(), {"line", "service"})
    assert job.id == "E1" and job.location == (11.58, 49.95)
    assert job.skills == frozenset({"line"}) and job.weight == 120.5 and job.priority == 3
    assert job.customers == 42 and not job.hazard and job.label == "F7"
    assert job.service_minutes > 0


def test_tree_trouble_and_wires_down_add_their_skills_and_the_hazard():
    job = event_job(event(device_kind="service", device_id=None, sp_id="SP9", cause="tree",
                          hazards=["wires_down"], tier=1), {"line", "service", "tree"})
    assert job.skills == frozenset({"service", "tree", "line"}) and job.hazard and job.label == "SP9"


def test_events_that_cannot_be_planned_say_why():
    assert event_job(event(lat=None), {"line"}) == "no location"
    assert event_job(event(cause="tree"), {"line"}) == "no crew has skill tree"


def test_weight_and_tier_are_kept_in_the_optimizer_s_range():
    job = event_job(event(weight=0.0, tier=7), {"line"})
    assert job.weight > 0 and job.priority == 4
