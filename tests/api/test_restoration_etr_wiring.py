"""The re-planner issues the learned model's ETR per stage, with its probability, through the engine's no-churn
rule (api.service.replan._etr_action, api.service.etr.LiveEtr)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np

from api.service.etr import LiveEtr
from api.service.replan import _etr_action
from outage.engine import OutageEngine
from outage.etr_model import EtrModel
from outage.reports import Report
from tests.outage.outage_feeders import tree_feeder

NOW = datetime(2026, 6, 1, 18, 0, tzinfo=UTC)


def _setup():
    eng = OutageEngine.from_network(tree_feeder(), clock=lambda: NOW)
    eng.ingest_report(Report("r1", NOW, sp_id="sp1.1.1.1", neighbours_out=True))
    (ev,) = eng.events
    return eng, ev


def test_planned_jobs_get_the_models_staged_etr_with_its_probability():
    eng, ev = _setup()
    live = SimpleNamespace(engine=eng, etr=LiveEtr())
    queued = SimpleNamespace(
        event_id=ev.event_id, eta=NOW + timedelta(minutes=90), sequence=2, status="assigned", crew_id="C1"
    )
    assigned = SimpleNamespace(
        event_id=ev.event_id, eta=NOW + timedelta(minutes=20), sequence=0, status="assigned", crew_id="C1"
    )
    # the next stop of a crew still working elsewhere waits in the queue (its wait holds that job's repair)
    assert _etr_action(live, assigned, NOW, "optimizer", {}, busy={"C1"})["stage"] == "queued"
    act = _etr_action(live, queued, NOW, "optimizer", {})
    assert act["args"]["etr"]["source"] == "queued" and act["args"]["etr"]["probability"] == 0.9  # the first
    eng.update_etr(ev.event_id, NOW, **act["args"])
    assert ev.etr.source == "queued" and ev.etr.probability == 0.9
    act = _etr_action(live, assigned, NOW, "optimizer", {})
    assert act["args"]["etr"]["source"] == "assigned" and act["args"]["etr"]["probability"] == 0.8
    assert 0.0 <= act["args"]["holds"] <= 1.0
    assert act["stage"] == "assigned" and act["wait"] == 20.0  # what the service learns the wait ratio from


# ------------------------------------------------------------------------------------------------ one staging
# bench/etr.py scores the restoration simulator; the simulator must issue what the live service issues.


def _learned() -> EtrModel:
    rng = np.random.default_rng(3)
    m = EtrModel()
    for i in range(90):
        m.learn_repair(("fuse", "transformer", "service")[i % 3], ("tree", "equipment")[i % 2],
                       float(rng.lognormal(np.log(70.0), 0.5)))
        for stage, planned in (("storm", 120.0), ("queued", 60.0), ("assigned", 20.0)):
            m.learn_wait(stage, planned, float(rng.lognormal(np.log(planned), 0.4)))
    return m


def _simulator(eng, model: EtrModel):
    from api.simulation.restoration import Restoration, RestorationConfig
    from outage.simulate import StormConfig, generate_storm

    storm = generate_storm(eng.grid, StormConfig(faults=2), 1)
    return Restoration(eng.grid, storm, RestorationConfig(crews=1), model, 1)


def test_the_simulator_and_the_service_issue_the_same_etr_for_the_same_event_state():
    eng, ev = _setup()
    live = LiveEtr()
    live.model = _learned()
    sim = _simulator(eng, copy.deepcopy(live.model))
    rec = next(iter(sim.events.values()))
    rec.kind = ev.device_kind or "*"
    # a storm-wide wait, queued, a re-plan that slips far, one that changes little, the crew assigned hours
    # later, re-plans while it drives, one after the published range has passed
    steps = [(0, "storm", 60.0), (10, "queued", 600.0), (20, "queued", 620.0), (600, "assigned", 30.0),
             (610, "assigned", 25.0), (1200, "assigned", 5.0)]
    seen = []
    for minutes, stage, wait in steps:
        t = NOW + timedelta(minutes=minutes)
        a = live.action(eng, ev, t, stage, "test", wait=wait)
        if a is not None:
            eng.update_etr(ev.event_id, t, **a["args"])
        sim._stage(t, rec, stage, wait)
        mine = sim.ledger.published(rec.key)
        assert (mine.earliest, mine.latest, mine.probability, mine.source) == (
            ev.etr.earliest, ev.etr.latest, ev.etr.probability, ev.etr.source), (minutes, stage)
        seen.append((ev.etr.earliest, ev.etr.latest, ev.etr.probability))
    assert len(set(seen)) >= 3  # the sequence published several ranges (not one held throughout)
    assert [e for _, e in rec.published][-1] == sim.ledger.published(rec.key)


def test_a_change_to_the_live_staging_changes_what_the_bench_scores(monkeypatch):
    import importlib.util
    from pathlib import Path

    from api.simulation.restoration import RestorationConfig, simulate_restoration
    from outage import etr_issue
    from outage.simulate import StormConfig, generate_storm

    spec = importlib.util.spec_from_file_location("bench_etr", Path(__file__).parents[2] / "bench" / "etr.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    eng, ev = _setup()

    def scored(first: float) -> tuple[float, dict]:
        monkeypatch.setattr(etr_issue, "FIRST", first)
        live = LiveEtr()
        live.model = _learned()
        act = live.action(eng, ev, NOW, "storm", "test", wait=60.0)
        model = _learned()
        storm = generate_storm(eng.grid, StormConfig(faults=6), 2)
        result = simulate_restoration(eng.grid, storm, RestorationConfig(crews=2), model, 2)
        firsts = {e.published[0][1].probability for e in result.events.values()}
        assert firsts == {first}  # the simulator's first ranges state what the service's do
        return act["args"]["etr"]["probability"], bench.score([result])

    p90, at90 = scored(0.9)
    p60, at60 = scored(0.6)
    assert (p90, p60) == (0.9, 0.6)
    # narrower first promises: what the bench reports members saw changes with the service's rule
    cov90 = [at90["stages"][s]["published"]["coverage"] for s in ("storm", "on_site")]
    cov60 = [at60["stages"][s]["published"]["coverage"] for s in ("storm", "on_site")]
    assert cov60 != cov90 or at60["ranges_per_event"] != at90["ranges_per_event"]
