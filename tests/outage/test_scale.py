"""Scale: a storm on a generated territory keeps every invariant (slow; run with -m slow)."""

from __future__ import annotations

import pytest

from outage.engine import OutageEngine
from outage.events import EventClass
from outage.simulate import STORM_START, StormConfig, generate_storm, run_storm, storm_engine


@pytest.mark.slow
def test_storm_on_a_generated_territory_loses_no_report():
    from data.synthetic import generate_territory

    net = generate_territory(50_000, seed=3)
    grid = OutageEngine.from_network(net, clock=lambda: STORM_START).grid
    storm = generate_storm(grid, StormConfig(faults=300, call_rate=0.3), seed=2)
    eng = storm_engine(grid, storm)
    res = run_storm(eng, storm)
    holders: dict[str, str] = {}
    for ev in eng.all_events():
        if ev.merged_into is None:
            for r in ev.reports:
                assert r not in holders
                holders[r] = ev.event_id
    assert set(holders) == {r.report_id for r in storm.reports}
    correct = [k for k in res.predicted if k in storm.reporting]
    assert len(correct) >= 0.8 * len(storm.reporting)
    assert all(res.predicted[k] != EventClass.HAZARD for k in res.predicted)
    # every open event's customers are consistent with its device
    for ev in eng.events:
        if ev.device_id is not None and not ev.extra_devices:
            d = grid.device_index[ev.device_id]
            assert ev.customers == grid.device_customers[d]
