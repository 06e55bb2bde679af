"""The integer routing core on its own: capacity, windows, and the distance objective (what Solomon runs)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np

from dispatch.model import Problem
from dispatch.routing import RoutingData, RoutingParams, solve_routing
from dispatch.scenario import grid_sites, storm_crews, storm_jobs


def _tiny_cvrp():
    xy = np.array([[0, 0], [2, 0], [4, 0], [0, 3], [0, 5], [-3, -3]], dtype=float)
    d = np.round(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) * 10).astype(np.int64)
    demand = np.array([0, 3, 3, 2, 2, 4])
    return xy, d, demand


def _brute_force(d, demand, capacity, n_vehicles):
    """Optimal distance by enumerating assignments of customers to vehicles and best order per vehicle."""
    customers = list(range(1, len(d)))
    best = np.inf
    for owner in itertools.product(range(n_vehicles), repeat=len(customers)):
        total = 0
        for v in range(n_vehicles):
            mine = [c for c, o in zip(customers, owner, strict=True) if o == v]
            if sum(demand[mine]) > capacity:
                total = np.inf
                break
            if mine:
                total += min(
                    d[0, p[0]] + sum(d[a, b] for a, b in zip(p, p[1:], strict=False)) + d[p[-1], 0]
                    for p in itertools.permutations(mine)
                )
        best = min(best, total)
    return best


def test_capacitated_routes_are_optimal_and_within_capacity():
    _, d, demand = _tiny_cvrp()
    v = 3
    data = RoutingData(
        travel=d,
        service=np.zeros(len(d), np.int64),
        ready=np.zeros(len(d), np.int64),
        due=np.full(len(d), 10_000),
        starts=[0] * v,
        ends=[0] * v,
        shift_open=np.zeros(v),
        shift_close=np.full(v, 10_000),
        demand=demand,
        capacity=np.full(v, 7),
    )
    result = solve_routing(data, RoutingParams(time_limit_s=1.0, solution_limit=500))
    assert result.found and not result.dropped
    assert sorted(n for r in result.routes for n in r) == [1, 2, 3, 4, 5]
    assert all(demand[r].sum() <= 7 for r in result.routes)
    cost = sum(
        d[0, r[0]] + sum(d[a, b] for a, b in zip(r, r[1:], strict=False)) + d[r[-1], 0]
        for r in result.routes
        if r
    )
    assert cost == result.objective == _brute_force(d, demand, 7, v)


def test_time_windows_force_the_order():
    _, d, _ = _tiny_cvrp()
    n = len(d)
    ready = np.zeros(n, np.int64)
    due = np.full(n, 10_000, np.int64)
    ready[2], due[2] = 0, 45  # customer 2 (40 away) first
    ready[1], due[1] = 200, 400  # customer 1 late
    service = np.full(n, 10)
    service[0] = 0  # the depot
    data = RoutingData(
        travel=d,
        service=service,
        ready=ready,
        due=due,
        starts=[0],
        ends=[0],
        shift_open=np.zeros(1),
        shift_close=np.full(1, 10_000),
    )
    result = solve_routing(data, RoutingParams(time_limit_s=1.0, solution_limit=300))
    route = result.routes[0]
    assert route.index(2) < route.index(1)


def test_scenario_is_seeded_and_plausible():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    sites = grid_sites(500, seed=3)
    a = storm_jobs(sites, 200, now, seed=9)
    b = storm_jobs(sites, 200, now, seed=9)
    assert a == b
    assert any(j.hazard and j.priority == 1 for j in a)
    assert all(j.weight > 0 and 10 <= j.service_minutes <= 480 for j in a)
    crews = storm_crews([(11.5, 49.9)], 20, now, seed=9)
    Problem(crews, a, now)  # every job's skills exist among the crews
