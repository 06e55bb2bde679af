"""The distance preset of the routing core: iterated local search (ILS) and its two-worker portfolio."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from ortools.constraint_solver import pywrapcp

from dispatch.routing import (
    DISTANCE_PORTFOLIO,
    ILS,
    RoutingData,
    RoutingParams,
    _set_ils,
    distance_params,
    solve_routing,
)


def _solomon_like(n_customers: int = 30, vehicles: int = 15, seed: int = 4) -> RoutingData:
    """A small VRPTW in tenths like the Solomon files: depot 0, windows that a direct trip can always meet."""
    rng = np.random.default_rng(seed)
    xy = np.vstack([[50.0, 50.0], rng.uniform(0, 100, size=(n_customers, 2))])
    dist = np.floor(10 * np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))).astype(np.int64)
    horizon = 2300
    service = np.full(len(xy), 100, np.int64)
    service[0] = 0
    ready = np.zeros(len(xy), np.int64)
    due = np.full(len(xy), horizon, np.int64)
    for c in range(1, len(xy)):
        earliest = dist[0, c]
        latest = horizon - service[c] - dist[c, 0]
        start = int(rng.integers(earliest, latest - 200))
        ready[c], due[c] = start, start + 200
    demand = rng.integers(1, 15, size=len(xy))
    demand[0] = 0
    return RoutingData(
        travel=dist,
        service=service,
        ready=ready,
        due=due,
        starts=[0] * vehicles,
        ends=[0] * vehicles,
        shift_open=np.zeros(vehicles),
        shift_close=np.full(vehicles, horizon),
        demand=demand,
        capacity=np.full(vehicles, 60),
    )


def _check(data: RoutingData, routes: list[list[int]]) -> int:
    """Independent feasibility check (every customer once, capacity, windows, back in time); returns the cost."""
    assert sorted(n for r in routes for n in r) == data.customers()
    total = 0
    for r in routes:
        if not r:
            continue
        assert data.demand[r].sum() <= data.capacity[0]
        t, prev = 0, 0
        for c in r:
            total += data.travel[prev, c]
            t = max(t + data.travel[prev, c], data.ready[c])
            assert t <= data.due[c], f"customer {c} starts at {t} after {data.due[c]}"
            t += data.service[c]
            prev = c
        total += data.travel[prev, 0]
        assert t + data.travel[prev, 0] <= data.shift_close[0]
    return int(total)


def test_distance_preset_with_two_workers_is_feasible():
    data = _solomon_like()
    result = solve_routing(data, distance_params(2.0, workers=2))
    assert result.found and not result.dropped
    assert "best of 2 workers" in result.strategy
    assert _check(data, result.routes) == result.objective


def test_ils_from_a_warm_start_keeps_the_start_label_and_stays_feasible():
    data = _solomon_like(seed=7)
    start = solve_routing(data, RoutingParams(time_limit_s=1.0, metaheuristic="GREEDY_DESCENT"))
    result = solve_routing(data, replace(distance_params(1.5), workers=1), [(start.routes, "warm")])
    assert result.found and result.strategy == "warm"
    assert _check(data, result.routes) == result.objective


def test_portfolio_entries_are_routing_params_fields():
    base = distance_params(1.0, workers=3)
    for extra in DISTANCE_PORTFOLIO:
        worker = replace(base, workers=1, **extra)
        assert worker.metaheuristic == ILS


def test_ils_temperature_scales_the_automatic_rule():
    data = _solomon_like(n_customers=5)
    search = pywrapcp.DefaultRoutingSearchParameters()
    _set_ils(search, data, RoutingParams(metaheuristic=ILS, ils_temperature=0.5))
    sa = search.iterated_local_search_parameters.reference_solution_acceptance_strategy.simulated_annealing
    mean_arc = data.travel[~np.eye(len(data.travel), dtype=bool)].mean()
    assert search.use_iterated_local_search and not sa.automatic_temperatures
    assert np.isclose(sa.initial_temperature, 0.05 * mean_arc)
    assert np.isclose(sa.final_temperature, 0.0005 * mean_arc)
    default = pywrapcp.DefaultRoutingSearchParameters()
    _set_ils(default, data, RoutingParams(metaheuristic=ILS))
    accept = default.iterated_local_search_parameters.reference_solution_acceptance_strategy
    assert accept.simulated_annealing.automatic_temperatures
