"""The lower bound on weighted customer-minutes: never above the true optimum, and tight where it should be."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from dispatch_cases import NOW, at, brute_force_wcm, crew, job, travel_for

from dispatch.bounds import lower_bound
from dispatch.instance import compile_problem
from dispatch.model import Problem


def _bound(problem: Problem, travel, **kw) -> float:
    return lower_bound(compile_problem(problem, travel), **kw)


@pytest.mark.parametrize("seed", range(12))
def test_never_above_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    crews = [crew("A", rng.uniform(0, 10), skills=("line", "service")),
             crew("B", rng.uniform(0, 10), skills=("service",), hours=float(rng.uniform(2, 12)))]
    jobs = [job(f"j{n}", rng.uniform(0, 10), rng.uniform(0, 5), minutes=float(rng.uniform(10, 120)),
                weight=float(rng.integers(1, 50)), skills=(str(rng.choice(["line", "service"])),))
            for n in range(5)]
    problem = Problem(crews, jobs, NOW)
    travel = travel_for(crews, jobs)
    optimum = brute_force_wcm(problem, travel, drop_at_minutes=12 * 60)
    assert _bound(problem, travel) <= optimum + 1e-6


def test_exact_for_one_crew_with_no_driving():
    """One crew, all jobs at its depot: the machine bound is Smith's rule itself, the optimum."""
    crews = [crew("A", 0)]
    jobs = [job(f"j{n}", 0, minutes=m, weight=w) for n, (m, w) in enumerate([(30, 2), (10, 5), (60, 9), (20, 1)])]
    problem = Problem(crews, jobs, NOW)
    travel = travel_for(crews, jobs)
    assert _bound(problem, travel) == pytest.approx(brute_force_wcm(problem, travel), rel=1e-9)


def test_counts_queueing_that_the_per_job_bound_ignores():
    """Eight one-hour jobs at one crew's depot: alone, each would be done in an hour (8 x 60 weighted minutes);
    in fact they queue (60 + 120 + ... + 480 = 2,160)."""
    crews = [crew("A", 0)]
    jobs = [job(f"j{n}", 0, minutes=60) for n in range(8)]
    problem = Problem(crews, jobs, NOW)
    assert _bound(problem, travel_for(crews, jobs)) == pytest.approx(2160.0)


def test_holds_when_the_optimum_leaves_jobs_out():
    """A two-hour shift cannot hold three one-hour jobs: the best plan drops the lightest, charged at the
    horizon; the bound must still not exceed it."""
    crews = [crew("A", 0, hours=2)]
    jobs = [job("heavy", 0, minutes=60, weight=10), job("mid", 0, minutes=60, weight=5),
            job("light", 0, minutes=60, weight=1)]
    problem = Problem(crews, jobs, NOW)
    travel = travel_for(crews, jobs)
    optimum = brute_force_wcm(problem, travel, drop_at_minutes=120)
    assert optimum == pytest.approx(10 * 60 + 5 * 120 + 1 * 120)
    assert _bound(problem, travel) <= optimum + 1e-6


def test_weights_must_match_the_jobs():
    crews = [crew("A", 0)]
    jobs = [job("j1", 1)]
    with pytest.raises(ValueError, match="weight has shape"):
        _bound(Problem(crews, jobs, NOW), travel_for(crews, jobs), weight=np.ones(3))


def test_deadline_work_takes_crew_time_first():
    """A wires-down job that must be started at once holds the only crew for an hour: the feeder job behind it
    cannot be done before two hours, which the bound knows only when told of the deadline."""
    crews = [crew("A", 0)]
    jobs = [job("wires", 0, minutes=60, weight=0.01, latest=at(0)), job("feeder", 0, minutes=60, weight=100)]
    problem = Problem(crews, jobs, NOW)
    travel = travel_for(crews, jobs)
    optimum = brute_force_wcm(problem, travel)
    assert optimum == pytest.approx(0.01 * 60 + 100 * 120)
    inst = compile_problem(problem, travel)
    assert lower_bound(inst) < 0.6 * optimum  # alone, the feeder job would be done in an hour
    assert lower_bound(inst, must_start_by={0: 0.0}) == pytest.approx(optimum, rel=0.01)


def test_deadlines_never_above_the_brute_force_optimum():
    """Random small storms with one or two jobs held to a start deadline and shifts short enough that some work
    must be left out (charged at the shift end): the bound stays below the best plan that keeps the deadlines."""
    checked = 0
    for seed in range(100, 112):
        rng = np.random.default_rng(seed)
        hours = float(rng.uniform(1.5, 4))
        crews = [crew(f"C{k}", rng.uniform(0, 5), hours=hours) for k in range(int(rng.integers(1, 3)))]
        held = int(rng.integers(1, 3))
        due = rng.uniform(0, 20, held)
        jobs = [job(f"h{n}", rng.uniform(0, 5), minutes=float(rng.uniform(10, 60)),
                    weight=float(rng.uniform(0.1, 3)), latest=at(float(due[n]))) for n in range(held)] + [
            job(f"j{n}", rng.uniform(0, 5), rng.uniform(0, 3), minutes=float(rng.uniform(20, 120)),
                weight=float(rng.integers(1, 100))) for n in range(5 - held)]
        problem = Problem(crews, jobs, NOW)
        travel = travel_for(crews, jobs)
        optimum = brute_force_wcm(problem, travel, drop_at_minutes=hours * 60,
                                  never_drop=frozenset(j.id for j in jobs[:held]))
        if not np.isfinite(optimum):  # no plan keeps every deadline: nothing to bound
            continue
        bound = lower_bound(compile_problem(problem, travel), must_start_by={n: due[n] * 60 for n in range(held)})
        assert bound <= optimum + 1e-6, seed
        checked += 1
    assert checked >= 8


def test_line_crews_shared_with_service_work_are_counted_once():
    """The line crew can also do service work, so the per-group relaxations let both groups have it to
    themselves (4,320, 0.90 of the optimum); the time-indexed program knows it is busy with the feeder jobs and
    the service jobs queue at the service crew (optimum: line crew 120 + 240 min x 10, service crew
    30 + 60 + 90 + 120 min x 4 = 4,800)."""
    crews = [crew("A", 0, skills=("line", "service")), crew("B", 0, skills=("service",))]
    jobs = [job(f"l{n}", 0, minutes=120, weight=10) for n in range(2)] + [
        job(f"s{n}", 0, minutes=30, weight=4, skills=("service",)) for n in range(4)]
    problem = Problem(crews, jobs, NOW)
    travel = travel_for(crews, jobs)
    optimum = brute_force_wcm(problem, travel)
    assert optimum == pytest.approx(4800.0)
    assert 0.97 * optimum <= _bound(problem, travel) <= optimum + 1e-6


def test_deadlines_no_plan_can_keep_leave_the_other_relaxations():
    """A job 10 km out cannot be started at once: the linear program has no answer, the bound still stands."""
    crews = [crew("A", 0)]
    jobs = [job("far", 10, minutes=30, weight=5), job("near", 1, minutes=30, weight=1)]
    bound = _bound(Problem(crews, jobs, NOW), travel_for(crews, jobs), must_start_by={0: 0.0})
    assert 5 * (10 + 30) + 1 * 31 <= bound < float("inf")


def _mixed_storm(rng):
    """Crews with mixed skills, some starting late, shifts short enough that work may be left out; jobs with
    windows and deadlines; up to two jobs held to a start time (the P1 rule)."""
    crews = []
    for k in range(int(rng.integers(1, 4))):
        skills = [("line", "service"), ("service",), ("line",)][int(rng.integers(0, 3))]
        hours = float(rng.uniform(0.5, 6.0))
        late = float(rng.uniform(0, 0.4 * hours * 60)) if rng.random() < 0.3 else 0.0
        crews.append(replace(crew(f"C{k}", rng.uniform(0, 8), rng.uniform(0, 3), skills=skills, hours=hours),
                             shift_start=at(late)))
    known = set().union(*(c.skills for c in crews))
    jobs = []
    for n in range(int(rng.integers(3, 5 if len(crews) == 3 else 6))):
        window = {}
        if n >= 2 and rng.random() < 0.25:
            window["earliest"] = at(float(rng.uniform(0, 60)))
        if rng.random() < 0.2:
            window["latest"] = at(float(rng.uniform(65, 180)))
        jobs.append(job(f"j{n}", rng.uniform(0, 8), rng.uniform(0, 3), minutes=float(rng.uniform(5, 120)),
                        weight=float(rng.integers(1, 60)), skills=(str(rng.choice(sorted(known))),), **window))
    held = {n: float(rng.uniform(0, 60)) for n in range(min(int(rng.integers(0, 3)), len(jobs)))}
    return crews, jobs, held


def test_never_above_the_optimum_on_mixed_storms():
    checked = 0
    for seed in range(32):
        crews, jobs, held = _mixed_storm(np.random.default_rng(seed))
        travel = travel_for(crews, jobs)
        # the brute force keeps the P1 rule as a latest start and may not drop those jobs
        kept = [replace(j, latest=min(j.latest or at(1e6), at(held[n]))) if n in held else j
                for n, j in enumerate(jobs)]
        horizon = max((c.shift_end - NOW).total_seconds() / 60 for c in crews)
        optimum = brute_force_wcm(Problem(crews, kept, NOW), travel, drop_at_minutes=horizon,
                                  never_drop=frozenset(jobs[n].id for n in held))
        if not np.isfinite(optimum):  # no plan keeps these deadlines: nothing to bound
            continue
        bound = _bound(Problem(crews, jobs, NOW), travel, must_start_by={n: t * 60 for n, t in held.items()})
        assert bound <= optimum * (1 + 1e-9) + 1e-6, seed
        checked += 1
    assert checked >= 24
