"""The OR-Tools dispatcher on small problems whose right answer is known."""

from __future__ import annotations

from datetime import UTC, timedelta

import numpy as np
import pytest
from dispatch_cases import NOW, at, brute_force_wcm, crew, job, point, travel_for

from dispatch.instance import compile_problem
from dispatch.model import Problem
from dispatch.plan import drive
from dispatch.solver import SolveOptions, solve

FAST = SolveOptions(time_limit_s=1.0, deterministic=True, solution_limit=400, travel_weight=1e-6)


def test_matches_brute_force_optimum():
    crews = [crew("A", 0), crew("B", 10)]
    jobs = [job("j1", 2, weight=5, minutes=20), job("j2", 4, weight=1, minutes=60), job("j3", 7, weight=8),
            job("j4", 12, weight=2, minutes=10), job("j5", 9, 3, weight=4, minutes=45)]
    problem = Problem(crews, jobs, NOW)
    travel = travel_for(crews, jobs)
    plan = solve(problem, travel, FAST)
    assert not plan.violations() and not plan.dropped
    assert plan.weighted_customer_minutes == pytest.approx(brute_force_wcm(problem, travel), rel=1e-9)


def test_etas_follow_the_travel_matrix():
    crews = [crew("A", 0), crew("B", 5, 5)]
    jobs = [job(f"j{i}", i * 1.5, i % 3, minutes=15 + i, weight=i + 1) for i in range(8)]
    travel = travel_for(crews, jobs)
    plan = solve(Problem(crews, jobs, NOW), travel, FAST)
    for route in plan.routes.values():
        here, free = crews[0].start if route.crew_id == "A" else crews[1].start, NOW
        for stop in route.stops:
            there = next(j.location for j in jobs if j.id == stop.job_id)
            drive_s = travel(np.array([here]), np.array([there]))[0, 0]
            assert stop.arrival == free + timedelta(seconds=drive_s)
            free, here = stop.departure, there
    assert len(plan.assignments) == 8


def test_skills_are_respected():
    crews = [crew("line1", 0), crew("tree1", 20, skills=("tree",)), crew("both", 40, skills=("line", "tree"))]
    jobs = [job(f"t{i}", 19 + i, skills=("tree",)) for i in range(3)] + [job(f"l{i}", i) for i in range(3)]
    jobs.append(job("lt", 30, skills=("line", "tree")))
    plan = solve(Problem(crews, jobs, NOW), travel_for(crews, jobs), FAST)
    assert not plan.dropped and not plan.violations()
    for a in plan.assignments.values():
        j = next(x for x in jobs if x.id == a.job_id)
        assert j.skills <= next(c for c in crews if c.id == a.crew_id).skills
    assert plan.assignments["lt"].crew_id == "both"


def test_shift_windows_respected_and_only_infeasible_work_dropped():
    # One crew, 3 hours, returning to its depot: 4 jobs of 50 min near the depot fit only 3.
    c = crew("A", 0, hours=3, end=point(0))
    jobs = [job("big", 1, minutes=50, weight=10), job("mid", 2, minutes=50, weight=5),
            job("small", 1, 1, minutes=50, weight=1), job("tiny", 2, 1, minutes=50, weight=0.5)]
    plan = solve(Problem([c], jobs, NOW), travel_for([c], jobs), FAST)
    assert not plan.violations()
    assert [d.job_id for d in plan.dropped] == ["tiny"]
    assert "higher-weight" in plan.dropped[0].reason
    assert plan.routes["A"].end_arrival <= at(180)
    # With a longer shift nothing is dropped.
    c2 = crew("A", 0, hours=4, end=point(0))
    plan2 = solve(Problem([c2], jobs, NOW), travel_for([c2], jobs), FAST)
    assert not plan2.dropped


def test_job_that_fits_no_shift_is_dropped_with_reason():
    c = crew("A", 0, hours=1)
    jobs = [job("long", 1, minutes=120), job("ok", 2, minutes=10),
            job("late", 3, earliest=at(70), latest=at(80))]
    plan = solve(Problem([c], jobs, NOW), travel_for([c], jobs), FAST)
    reasons = {d.job_id: d.reason for d in plan.dropped}
    assert set(reasons) == {"long", "late"}
    assert "remaining shift" in reasons["long"]
    assert "ok" in plan.assignments


def test_long_heavy_job_does_not_push_out_several_lighter_ones():
    """A full two-hour shift: two light 55-minute jobs, and a heavier 110-minute one that would need both their
    places. The plan leaves out as few jobs as it can, and says why the heavier one is out."""
    c = crew("A", 0, hours=2)
    jobs = [job("light1", 0, minutes=55, weight=1), job("light2", 0, minutes=55, weight=2),
            job("heavy", 0, minutes=110, weight=5)]
    plan = solve(Problem([c], jobs, NOW), travel_for([c], jobs), FAST)
    assert [d.job_id for d in plan.dropped] == ["heavy"]
    assert "more than one of the 2 lighter, shorter jobs" in plan.dropped[0].reason


def test_job_windows_respected():
    crews = [crew("A", 0)]
    jobs = [job("early", 10, weight=1, latest=at(15)), job("later", 1, weight=100, earliest=at(120))]
    plan = solve(Problem(crews, jobs, NOW), travel_for(crews, jobs), FAST)
    assert not plan.violations() and not plan.dropped
    assert plan.assignments["early"].start <= at(15)
    assert plan.assignments["later"].start >= at(120)


def test_on_site_job_is_locked_first():
    # Crew A is on site at a light job far away; a heavy job sits next to its start position.
    crews = [crew("A", 20, status="on_site", current_job="light"), crew("B", 50)]
    jobs = [job("light", 20, weight=1, minutes=40), job("heavy", 21, weight=100)]
    plan = solve(Problem(crews, jobs, NOW), travel_for(crews, jobs), FAST)
    assert plan.routes["A"].job_ids[0] == "light"
    assert plan.assignments["light"].eta == NOW
    assert not plan.violations()


def test_en_route_crew_is_not_diverted_for_a_negligible_gain():
    # A is heading to j1 (5 km away); j2 is 4 km away with the same weight: swapping saves little.
    crews = [crew("A", 0, status="en_route", current_job="j1")]
    jobs = [job("j1", 5), job("j2", -4)]
    travel = travel_for(crews, jobs)
    opts = SolveOptions(time_limit_s=1.0, deterministic=True, solution_limit=400, stability_minutes=30)
    assert solve(Problem(crews, jobs, NOW), travel, opts).routes["A"].job_ids[0] == "j1"
    no_stability = SolveOptions(time_limit_s=1.0, deterministic=True, solution_limit=400, stability_minutes=0)
    assert solve(Problem(crews, jobs, NOW), travel, no_stability).routes["A"].job_ids[0] == "j2"


def test_hazard_comes_first():
    crews = [crew("A", 0)]
    jobs = [job("feeder", 1, weight=500, minutes=60), job("wires-down", 3, weight=1, minutes=20, hazard=True,
                                                             priority=1)]
    plan = solve(Problem(crews, jobs, NOW), travel_for(crews, jobs), FAST)
    assert plan.routes["A"].job_ids == ["wires-down", "feeder"]
    assert "hazard" in plan.assignments["wires-down"].explanation


def test_precedence_assess_before_repair_across_crews():
    crews = [crew("assess", 0, skills=("assess",)), crew("line", 0)]
    jobs = [job("look", 30, skills=("assess",), minutes=15), job("fix", 30, minutes=60, after=("look",),
                                                                     weight=50)]
    plan = solve(Problem(crews, jobs, NOW), travel_for(crews, jobs), FAST)
    assert not plan.violations()
    assert plan.assignments["fix"].start >= plan.assignments["look"].completion


def test_deterministic_mode_repeats():
    rng = np.random.default_rng(7)
    crews = [crew(f"C{k}", *rng.uniform(0, 20, 2)) for k in range(3)]
    jobs = [job(f"J{i}", *rng.uniform(0, 20, 2), minutes=float(rng.integers(10, 90)),
                weight=float(rng.integers(1, 50))) for i in range(25)]
    problem, travel = Problem(crews, jobs, NOW), travel_for(crews, jobs)
    opts = SolveOptions(time_limit_s=5.0, deterministic=True, solution_limit=200)
    a, b = solve(problem, travel, opts), solve(problem, travel, opts)
    assert a.job_routes() == b.job_routes()
    assert a.weighted_customer_minutes == b.weighted_customer_minutes


def test_beats_or_matches_greedy_and_drive_agrees():
    from dispatch.greedy import solve_greedy

    rng = np.random.default_rng(3)
    crews = [crew(f"C{k}", *rng.uniform(0, 30, 2)) for k in range(4)]
    jobs = [job(f"J{i}", *rng.uniform(0, 30, 2), minutes=float(rng.integers(10, 180)),
                weight=float(rng.integers(1, 100))) for i in range(30)]
    problem, travel = Problem(crews, jobs, NOW), travel_for(crews, jobs)
    greedy = solve_greedy(problem, travel)
    plan = solve(problem, travel, SolveOptions(time_limit_s=2.0))
    assert not plan.violations()
    assert plan.weighted_customer_minutes <= greedy.weighted_customer_minutes
    inst = compile_problem(problem, travel)
    routes = [[problem.job_index[j] for j in plan.routes[c.id].job_ids] for c in crews]
    _, _, depart, _ = drive(inst, routes)
    wcm = sum(problem.jobs[i].weight * depart[i] / 60 for r in routes for i in r)
    assert wcm == pytest.approx(plan.weighted_customer_minutes)


def test_off_shift_crew_gets_nothing():
    crews = [crew("off", 0, status="off_shift"), crew("on", 10)]
    jobs = [job("j", 0)]
    plan = solve(Problem(crews, jobs, NOW), travel_for(crews, jobs), FAST)
    assert plan.assignments["j"].crew_id == "on"
    assert plan.routes["off"].stops == ()


def test_p1_jobs_never_reached_later_than_greedy():
    from datetime import datetime

    from dispatch.greedy import solve_greedy
    from dispatch.scenario import grid_sites, storm_crews, storm_jobs
    from dispatch.travel import StraightLine

    now = datetime(2026, 7, 1, 6, tzinfo=UTC)
    sites = grid_sites(400, size_km=20, seed=2)
    problem = Problem(storm_crews([sites.locations[0], sites.locations[1]], 8, now, seed=2),
                      storm_jobs(sites, 60, now, seed=2), now)
    travel = StraightLine()
    greedy = solve_greedy(problem, travel)
    plan = solve(problem, travel, SolveOptions(time_limit_s=2.0))
    p1 = [j.id for j in problem.jobs if j.priority == 1 and j.id in greedy.assignments]
    assert p1 and not plan.violations()
    for job_id in p1:
        assert plan.eta(job_id) <= greedy.eta(job_id) + timedelta(seconds=1)
    assert plan.weighted_customer_minutes <= greedy.weighted_customer_minutes
