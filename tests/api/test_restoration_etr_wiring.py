"""The re-planner issues the learned model's ETR per stage, with its probability, through the engine's no-churn
rule (api.service.replan._etr_action, api.service.etr.LiveEtr)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from api.service.etr import LiveEtr
from api.service.replan import _etr_action
from outage.engine import OutageEngine
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
    queued = SimpleNamespace(event_id=ev.event_id, eta=NOW + timedelta(minutes=90), sequence=2, status="assigned")
    act = _etr_action(live, queued, NOW, "optimizer", {})
    assert act["args"]["etr"]["source"] == "queued" and act["args"]["etr"]["probability"] == 0.9  # the first
    eng.update_etr(ev.event_id, NOW, **act["args"])
    assert ev.etr.source == "queued" and ev.etr.probability == 0.9
    assigned = SimpleNamespace(event_id=ev.event_id, eta=NOW + timedelta(minutes=20), sequence=0, status="assigned")
    act = _etr_action(live, assigned, NOW, "optimizer", {})
    assert act["args"]["etr"]["source"] == "assigned" and act["args"]["etr"]["probability"] == 0.8
    assert 0.0 <= act["args"]["holds"] <= 1.0
    assert act["stage"] == "assigned" and act["wait"] == 20.0  # what the service learns the wait ratio from
