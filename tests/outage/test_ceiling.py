"""The call-only ceiling: its posteriors match what the simulator does, and it sits above what the engine scores."""

from __future__ import annotations

from dataclasses import replace

import pytest
from outage_feeders import random_territory

from outage.ceiling import call_only_ceiling, ceiling_finds, group_candidates
from outage.engine import OutageEngine
from outage.simulate import STORM_START, StormConfig, generate_storm, run_storm, score, storm_engine

CONFIG = StormConfig(faults=10, call_rate=0.3, ami=False)


@pytest.fixture(scope="module")
def grid():
    return OutageEngine.from_network(random_territory(5), clock=lambda: STORM_START).grid


@pytest.fixture(scope="module")
def storms(grid):
    return [generate_storm(grid, CONFIG, seed) for seed in range(60)]


def test_candidates_are_posteriors_over_the_devices_above_the_callers(grid, storms):
    for storm in storms[:10]:
        groups, not_out = group_candidates(grid, storm, CONFIG)
        assert 0 <= not_out <= len(groups)
        for cands in groups:
            ps = [c.posterior for c in cands]
            assert ps == sorted(ps, reverse=True) and all(0.0 <= p <= 1.0 for p in ps)
            assert sum(ps) <= 1.0 + 1e-9  # the rest is "not out"
            assert sum(c.right for c in cands) <= 1


def test_a_lone_call_under_a_one_customer_transformer_is_one_candidate():
    """A transformer with one customer and that customer's service drop cut off exactly the same customers:
    nothing tells them apart and scoring counts either, so the ceiling weighs them as one candidate (it used to
    rank the transformer over the drop and count only the transformer as right)."""
    net = random_territory(5)
    grid = OutageEngine.from_network(net, clock=lambda: STORM_START).grid
    lone = [d for d in range(grid.n_devices) if grid.kind[d] == "transformer" and grid.hi[d] - grid.lo[d] == 1]
    assert lone, "the test territory needs a transformer with one customer"
    k = int(grid.sps_of(lone[0])[0])
    storm = generate_storm(grid, CONFIG, 0)
    from outage.reports import Report

    call = Report("lone", STORM_START.replace(minute=20), sp_id=grid.sp_ids[k], power="out", neighbours_out=False)
    for cause in (grid.device_ids[lone[0]], f"sp:{grid.sp_ids[k]}"):
        storm = replace(storm, reports=[call], cause={k: cause}, scada=[])
        (cands,), _ = group_candidates(grid, storm, CONFIG)
        both = (grid.device_ids[lone[0]], f"sp:{grid.sp_ids[k]}")
        assert cands[0].key in both and cands[0].right
        assert not any(c.key in both or c.right for c in cands[1:])
        assert cands[0].posterior < 1.0  # "not out" (a customer-side call) keeps some weight


def test_posteriors_are_calibrated_against_the_simulator(grid, storms):
    """The ceiling is only a ceiling if its model is the simulator's: the most likely candidate of each group is
    right about as often as its posterior says, in the middle band where the choice is hard, and overall."""
    top = [cands[0] for storm in storms for cands in group_candidates(grid, storm, CONFIG)[0] if cands]
    for lo, hi in ((0.0, 0.5), (0.5, 0.95)):
        band = [c for c in top if lo <= c.posterior < hi]
        assert len(band) >= 40
        expected = sum(c.posterior for c in band)
        right = sum(c.right for c in band)
        assert abs(right - expected) <= 0.15 * len(band), (lo, hi, right, expected, len(band))
    assert sum(c.right for c in top) == pytest.approx(sum(c.posterior for c in top), rel=0.05)


def test_the_ceiling_is_above_what_the_engine_scores(grid, storms):
    engine = None
    for storm in storms[:20]:
        res = run_storm(storm_engine(grid, storm, ami=False), storm)
        s = score(storm, res.predicted)
        engine = s if engine is None else engine + s
    ceiling = call_only_ceiling(grid, storms[:20], CONFIG)
    assert min(ceiling.precision, ceiling.recall) >= min(engine.precision, engine.recall)
    assert ceiling.precision >= engine.precision
    assert 0.0 < ceiling.threshold <= 1.0
    assert ceiling.not_out_groups > 0


def test_the_faults_the_ceiling_finds_are_its_recall(grid, storms):
    """``ceiling_finds`` names the faults behind the ceiling's recall, to set beside an engine's (bench/feeders.py
    --diagnose): each is a fault that reported, and their count over the reporting faults is the recall."""
    ceiling = call_only_ceiling(grid, storms[:20], CONFIG)
    found = ceiling_finds(grid, storms[:20], CONFIG)
    assert all(f <= storm.reporting for f, storm in zip(found, storms[:20], strict=True))
    reporting = sum(len(storm.reporting) for storm in storms[:20])
    assert sum(map(len, found)) / reporting == pytest.approx(ceiling.recall, abs=1e-4)


def test_customer_side_calls_are_what_keeps_the_ceiling_down(grid):
    """With most customers calling and none calling from a working house, the groups say which device it is; the
    customer-side calls the simulator adds (3% of the real ones) cost the ceiling more than the few lone callers."""
    def ceiling(**kw):
        cfg = replace(CONFIG, **kw)
        c = call_only_ceiling(grid, [generate_storm(grid, cfg, s) for s in range(30)], cfg)
        return min(c.precision, c.recall)

    clean = ceiling(call_rate=0.9, false_call_rate=0.0)
    assert clean >= 0.95  # what is left: calls put on the account of a neighbour who was not out
    assert ceiling(call_rate=0.9) < clean - 0.03


def test_the_ceiling_is_for_storms_without_meters(grid):
    cfg = replace(CONFIG, ami=True)
    with pytest.raises(ValueError, match="without AMI"):
        group_candidates(grid, generate_storm(grid, cfg, 0), cfg)


def _drop_under_a_blown_fuse(grid, drop_call_minute: float):
    """A hand-made storm: a fuse that blew at minute 60, a third of its customers calling over the next half hour,
    and a service drop below it that failed at minute 50, its customer calling at ``drop_call_minute``."""
    from datetime import timedelta

    from outage.reports import Report
    from outage.storm import Fault

    fuse = max((d for d in range(grid.n_devices) if grid.kind[d] == "fuse"), key=lambda d: grid.hi[d] - grid.lo[d])
    sps = [int(k) for k in grid.sps_of(fuse)]
    assert len(sps) >= 12, "the test territory needs a fuse with a dozen customers"
    drop, callers = sps[0], sps[1::3]
    fuse_id, drop_id = grid.device_ids[fuse], f"sp:{grid.sp_ids[drop]}"
    at = lambda minute: STORM_START + timedelta(minutes=minute)  # noqa: E731
    reports = [Report(f"F{i}", at(62 + 3 * i), sp_id=grid.sp_ids[k]) for i, k in enumerate(callers)]
    reports.append(Report("D", at(drop_call_minute), sp_id=grid.sp_ids[drop]))
    storm = replace(
        generate_storm(grid, CONFIG, 0),
        faults=[Fault(fuse_id, "fuse", at(60), False, None), Fault(drop_id, "service", at(50), False, None)],
        reports=reports,
        cause={**{k: fuse_id for k in sps}, drop: drop_id},
        scada=[],
    )
    return storm, drop_id


@pytest.mark.parametrize(("drop_call_minute", "apart"), [(66.0, False), (8.0, True)])
def test_the_timed_ceiling_is_not_told_which_calls_under_a_blown_fuse_are_its_own(grid, drop_call_minute, apart):
    """Told the grouping, the ceiling finds a service drop whose one call came amid the calls of the blown fuse
    above it; no engine could: the fuse explains that call as well, and a second fault is rarer than one. Timed,
    the drop weighs only as much as the calls' times say it is an outage of its own: little amid the fuse's calls,
    nearly all of it when the call came most of an hour before the fuse's first."""
    storm, drop_id = _drop_under_a_blown_fuse(grid, drop_call_minute)

    def drop_posterior(timed: bool) -> float:
        groups, _ = group_candidates(grid, storm, CONFIG, timed=timed)
        (drop_group,) = [cands for cands in groups if any(c.key == drop_id for c in cands)]
        return next(c.posterior for c in drop_group if c.key == drop_id)

    told, timed = drop_posterior(False), drop_posterior(True)
    assert told > 0.0
    if apart:
        assert timed == pytest.approx(told, rel=0.05)
    else:
        assert timed < 0.1 * told


@pytest.mark.parametrize(("call_rate", "apart"), [(0.05, False), (0.6, True)])
def test_the_timed_ceiling_weighs_the_silence_under_a_fuse_that_held(grid, call_rate, apart):
    """Two transformers under one fuse fail together and each has two callers. One blown fuse would explain the
    four calls with one fault instead of two; what tells against it is the silence of the fuse's other customers,
    which weighs with the call-in rate: next to nothing when few call, decisive when most do."""
    from datetime import timedelta

    from outage.reports import Report
    from outage.storm import Fault

    cfg = replace(CONFIG, call_rate=call_rate)
    fuse = max((d for d in range(grid.n_devices) if grid.kind[d] == "fuse"), key=lambda d: grid.hi[d] - grid.lo[d])
    below = [d for d in range(grid.n_devices) if grid.parent[d] == fuse and grid.kind[d] == "transformer"
             and grid.hi[d] - grid.lo[d] >= 2]
    assert len(below) >= 2 and grid.hi[fuse] - grid.lo[fuse] >= 2 * sum(grid.hi[d] - grid.lo[d] for d in below[:2])
    at = lambda minute: STORM_START + timedelta(minutes=minute)  # noqa: E731
    faults, reports, cause = [], [], {}
    for i, d in enumerate(below[:2]):
        sps = [int(k) for k in grid.sps_of(d)]
        faults.append(Fault(grid.device_ids[d], "transformer", at(40 + i), False, None))
        reports += [Report(f"T{i}{j}", at(50 + i + 4 * j), sp_id=grid.sp_ids[k]) for j, k in enumerate(sps[:2])]
        cause.update({k: grid.device_ids[d] for k in sps})
    storm = replace(generate_storm(grid, cfg, 0), faults=faults, reports=reports, cause=cause, scada=[])
    names = {grid.device_ids[d] for d in below[:2]}

    def posteriors(timed: bool) -> list[float]:
        groups, _ = group_candidates(grid, storm, cfg, timed=timed)
        return [c.posterior for cands in groups for c in cands if c.key in names]

    told, timed = posteriors(False), posteriors(True)
    assert len(told) == 2
    for a, b in zip(told, timed, strict=True):
        assert (b == pytest.approx(a, rel=0.05)) if apart else (b < 0.5 * a)


def test_the_timed_ceiling_leaves_calls_after_a_lockout_above_to_the_lockout(grid):
    """A fuse blows minutes before the breaker above it locks out (SCADA). From the lockout every customer below
    the breaker is out and calls because of it, to any engine: timed, the fuse's group is only its callers before
    the lockout, and none when all of them called after it."""
    from datetime import timedelta

    from outage.reports import Report, ScadaEvent
    from outage.storm import Fault

    fuse = max((d for d in range(grid.n_devices) if grid.kind[d] == "fuse"), key=lambda d: grid.hi[d] - grid.lo[d])
    breaker = next(d for d in grid.chain(int(grid.sps_of(fuse)[0])) if grid.kind[d] == "breaker")
    fuse_id, breaker_id = grid.device_ids[fuse], grid.device_ids[breaker]
    sps = [int(k) for k in grid.sps_of(fuse)]
    at = lambda minute: STORM_START + timedelta(minutes=minute)  # noqa: E731

    def fuse_group(first_call: float, timed: bool) -> list[int]:
        reports = [Report(f"F{i}", at(first_call + 2 * i), sp_id=grid.sp_ids[k]) for i, k in enumerate(sps[::3])]
        storm = replace(
            generate_storm(grid, CONFIG, 0),
            faults=[Fault(fuse_id, "fuse", at(30), False, None), Fault(breaker_id, "breaker", at(40), False, None)],
            reports=reports,
            cause={k: fuse_id for k in sps},
            scada=[ScadaEvent(breaker_id, "lockout", at(40))],
        )
        groups, _ = group_candidates(grid, storm, CONFIG, timed=timed)
        return [c.posterior for cands in groups for c in cands if c.key == fuse_id]

    assert fuse_group(45, timed=False) and not fuse_group(45, timed=True)
    assert fuse_group(33, timed=True)  # calls before the lockout (33, 35, 37, 39) name the fuse
