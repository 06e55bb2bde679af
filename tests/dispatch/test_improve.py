"""The own improvement pass: never worse, always feasible, and optimal where the answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from dispatch_cases import NOW, crew, job, travel_for

from dispatch.greedy import greedy_routes
from dispatch.improve import improve_routes, place_left_out, schedule_cost
from dispatch.instance import compile_problem
from dispatch.model import Problem
from dispatch.solver import SolveOptions, routing_data


def _setup(crews, jobs):
    problem = Problem(crews, jobs, NOW)
    inst = compile_problem(problem, travel_for(crews, jobs))
    return inst, routing_data(inst, SolveOptions())


def _total(data, routes):
    timed = [schedule_cost(data, k, r) for k, r in enumerate(routes)]
    assert all(t is not None for t in timed), "infeasible routes"
    return sum(t[0] for t in timed)


def test_one_crew_same_place_finds_smiths_rule():
    # Zero travel between jobs: the optimum is Smith's rule (weight / service time, highest first).
    crews = [crew("A", 0)]
    jobs = [job(f"j{i}", 5, minutes=m, weight=w) for i, (m, w) in enumerate([(60, 1), (10, 3), (30, 30), (90, 8)])]
    inst, data = _setup(crews, jobs)
    routes, moves = improve_routes(data, [[0, 1, 2, 3]], inst.assignable, set(), set(), 5.0)
    best = min(_total(data, [list(p)]) for p in itertools.permutations(range(4)))
    assert moves > 0
    assert _total(data, routes) == pytest.approx(best)
    assert routes == [sorted(range(4), key=lambda i: -jobs[i].weight / jobs[i].service_minutes)]


def test_never_worse_feasible_and_respects_skills_and_fixed_first():
    rng = np.random.default_rng(7)
    crews = [crew(f"C{k}", *rng.uniform(0, 30, 2), skills=("line",) if k < 3 else ("tree",), hours=8)
             for k in range(5)]
    jobs = [job(f"J{i}", *rng.uniform(0, 30, 2), minutes=float(rng.integers(10, 120)),
                weight=float(rng.integers(1, 100)), skills=("tree",) if i % 5 == 0 else ("line",))
            for i in range(40)]
    inst, data = _setup(crews, jobs)
    start = greedy_routes(inst, travel=data.travel, service=data.service)
    first = {0: start[0][0]}
    routes, moves = improve_routes(data, start, inst.assignable, {0}, set(), 5.0)
    assert moves > 0
    assert _total(data, routes) < _total(data, start)
    assert routes[0][0] == first[0]
    assert sorted(i for r in routes for i in r) == sorted(i for r in start for i in r)
    for k, r in enumerate(routes):
        assert all(inst.assignable[i, k] for i in r)


def test_frozen_jobs_and_their_routes_stay():
    rng = np.random.default_rng(1)
    crews = [crew(f"C{k}", *rng.uniform(0, 20, 2)) for k in range(3)]
    jobs = [job(f"J{i}", *rng.uniform(0, 20, 2), weight=float(rng.integers(1, 50))) for i in range(15)]
    inst, data = _setup(crews, jobs)
    start = greedy_routes(inst, travel=data.travel, service=data.service)
    frozen = {start[1][0]}
    routes, _ = improve_routes(data, start, inst.assignable, set(), frozen, 5.0)
    assert routes[1] == start[1]


def test_infeasible_start_is_refused():
    crews = [crew("A", 0, hours=1)]
    jobs = [job("a", 1, minutes=50), job("b", 2, minutes=50)]
    inst, data = _setup(crews, jobs)
    with pytest.raises(ValueError, match="not feasible"):
        improve_routes(data, [[0, 1]], inst.assignable, set(), set(), 1.0)


def test_left_out_job_takes_a_lighter_jobs_place():
    """A full two-hour shift holds two light one-hour jobs; a heavier one-hour job left out takes the place of
    the lightest, which is left out instead."""
    crews = [crew("A", 0, hours=2)]
    jobs = [job("light", 0, minutes=55, weight=1), job("mid", 0, minutes=55, weight=5),
            job("heavy", 0, minutes=55, weight=9)]
    inst, data = _setup(crews, jobs)
    routes, placed = place_left_out(data, [[0, 1]], inst.assignable, set(), set(), [2], 5.0)
    assert placed == 1
    assert routes == [[2, 1]]
    assert _total(data, routes) is not None


def test_left_out_job_is_placed_in_a_free_gap_and_never_pushes_out_heavier_work():
    crews = [crew("A", 0, hours=2), crew("B", 5, hours=8)]
    jobs = [job("a", 0, minutes=55, weight=9), job("b", 0, minutes=55, weight=8), job("c", 5, minutes=30, weight=3),
            job("d", 0, minutes=55, weight=2)]
    inst, data = _setup(crews, jobs)
    # B has room: d goes there, nothing is pushed out.
    routes, placed = place_left_out(data, [[0, 1], [2]], inst.assignable, set(), set(), [3], 5.0)
    assert placed == 1 and sorted(routes[0]) == [0, 1] and 3 in routes[1]
    # Only A can do it and A is full of heavier work: it stays out.
    only_a = inst.assignable.copy()
    only_a[3, 1] = False
    routes, placed = place_left_out(data, [[0, 1], [2]], only_a, set(), set(), [3], 5.0)
    assert placed == 0 and routes == [[0, 1], [2]]
