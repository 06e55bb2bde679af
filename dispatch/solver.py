"""Crew dispatch with OR-Tools: minimize weighted customer-minutes out.

``solve(problem, travel, options) -> Plan``. The model (built by :mod:`dispatch.routing`):

* time: travel-time transit plus service time, crew shift windows on route start/end, job windows;
* objective: sum(weight x start time) -- a soft upper bound 0 on each job's time cumul with coefficient weight
  (completion = start + a constant service time, so this is the weighted-completion-time objective) -- plus a
  small travel term (``travel_weight``) so that, between equally good orders, crews drive less;
* hazards (wires down) get a weight above every non-hazard job: make-safe work first;
* every job is optional with a drop penalty larger than any possible routing cost, so a job is left out only when
  no shift can hold it, and then the lowest weights go first; each dropped job gets a reason;
* skills as allowed vehicles; an on-site crew's job is locked as its first stop; an en-route crew pays a
  stability penalty (``stability_minutes`` of mean weight) for being turned away from its current destination;
* first solution: the better of the greedy baseline and a weight-per-minute rule (both feasible by
  construction), improved by :mod:`dispatch.improve` (relocate/swap with exact completion times), or a previous
  plan's routes (warm start); time limit; ``deterministic`` replaces the wall clock
  with a solution limit so the same input gives the same plan;
* life safety: each P1 job gets its greedy-baseline arrival as a deadline (``p1_no_later_than_greedy``), so
  minimizing the total never reaches a P1 job later than the simple rule would.

If OR-Tools finds nothing in time, the greedy plan is returned (``plan.solver == "greedy (fallback)"``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dispatch.greedy import HAZARD_FACTOR, greedy_routes, greedy_schedule
from dispatch.improve import improve_routes, place_left_out
from dispatch.instance import Instance, compile_problem, effective_weights
from dispatch.model import Problem
from dispatch.plan import Plan, build_plan, routes_by_index
from dispatch.routing import ILS, Routes, RoutingData, RoutingParams, RoutingResult, solve_routing
from dispatch.travel import TravelTime

#: Largest integer weight coefficient; weights are scaled so the heaviest job gets this.
WEIGHT_SCALE = 10_000


@dataclass(frozen=True)
class SolveOptions:
    """How to solve.

    ``time_limit_s``: wall-clock budget for the search. ``deterministic``: stop after ``solution_limit``
    solutions instead (``time_limit_s`` x 10 stays as a safety net). ``first_solution``: ``"greedy"`` seeds the
    search with the better of the greedy baseline and a crew-centric weight-per-minute rule (milliseconds, and
    feasible at any size), or an OR-Tools strategy name such as ``"PARALLEL_CHEAPEST_INSERTION"``. ``travel_weight``: cost of a second of driving as a fraction of the mean
    job weight per second of waiting. ``hazard_factor``: hazard jobs get ``hazard_factor`` x the largest weight
    added. ``stability_minutes``: what it costs (in minutes of mean weight) to turn an en-route crew away from its
    destination. ``workers``: processes running a strategy portfolio in parallel.
    ``p1_no_later_than_greedy``: when the search starts from the greedy plan, every P1 (life-safety) job it
    reaches gets that arrival as a hard deadline, so optimizing the total never delays a life-safety job beyond
    what the simple rule would do. ``search_overrides``: extra OR-Tools search parameters (protobuf text).
    ``improve_share``: share of ``time_limit_s`` spent by :mod:`dispatch.improve` (relocate/swap moves with
    exact re-timing) on the first solution before OR-Tools searches; OR-Tools' own moves are slow on this
    objective at storm size, so most of the budget goes to the cheap pass.
    """

    time_limit_s: float = 10.0
    deterministic: bool = False
    solution_limit: int = 3000
    first_solution: str = "greedy"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    travel_weight: float = 0.05
    hazard_factor: float = 2.0
    stability_minutes: float = 10.0
    workers: int = 1
    p1_no_later_than_greedy: bool = True
    search_overrides: str = ""
    improve_share: float = 0.8

    def __post_init__(self) -> None:
        if self.metaheuristic == ILS:
            # Measured with OR-Tools 9.15 (bench/dispatch.py, 10 s limit): warm-started on the 50-crew x 500-job
            # storm, SolveWithIteratedLocalSearch took 798 s, and its rebuilt start reached a P1 job later than
            # the greedy plan; on 20 x 100 it stopped in time but gained nothing over guided local search.
            raise ValueError("SolveOptions.metaheuristic: iterated local search does not stop at the time limit "
                             "on the crew-dispatch model; use GUIDED_LOCAL_SEARCH (the default) or TABU_SEARCH")


def solve(problem: Problem, travel: TravelTime, options: SolveOptions = SolveOptions(),
          previous: Plan | None = None) -> Plan:
    """Plan ``problem`` with OR-Tools. ``previous`` (a plan for an earlier snapshot) warm-starts the search:
    its routes, minus completed or cancelled jobs, are the first solution."""
    t0 = time.perf_counter()
    inst = compile_problem(problem, travel, options.hazard_factor)
    data = routing_data(inst, options)
    if not len(inst.problem.jobs):
        return build_plan(inst, [[] for _ in problem.crews], "or-tools", time.perf_counter() - t0, "no jobs")

    candidates: list[tuple[Routes, str]] = []
    notes: tuple[str, ...] = ()
    # Deterministic mode: the own passes run to their end (the time limit is only a safety net).
    budget = options.time_limit_s * options.improve_share * (10 if options.deterministic else 1)

    def left(share: float) -> float:  # seconds left of the own passes' share of the time limit
        return max(0.0, t0 + budget * share - time.perf_counter())

    if previous is not None:
        routes = _warm_routes(inst, routes_by_index(inst, previous.job_routes()))
        label = "warm start from the previous plan"
        if budget > 0:
            routes, placed = _place_left_out(inst, data, routes, left(0.5))
            label += f", {placed} new or left-out jobs placed" if placed else ""
        candidates.append((routes, label))
    if options.first_solution == "greedy" and previous is None:
        routes, guard, label = _seed(inst, data, options)
        if budget > 0:
            routes, placed = _place_left_out(inst, data, routes, left(0.25))
            routes, moves = improve_routes(data, routes, inst.assignable, _fixed_first(inst, routes),
                                           _precedence_jobs(inst), left(1.0))
            label += f", {placed} left-out jobs placed" if placed else ""
            label += f", improved by {moves} relocate/swap moves"
        candidates.append((routes, label))
        if guard:
            notes += (f"{guard} P1 jobs held to their greedy arrival or earlier",)
    elif options.first_solution == "greedy":
        # Re-planning keeps the previous plan's freedom (no P1 deadlines); the seed is only built if the
        # previous routes no longer fit (a crew's shift, a window).
        candidates.append((lambda: _seed(inst, data, options, guard=False)[0], "greedy seed (warm start failed)"))
    remaining = max(0.1, options.time_limit_s - (time.perf_counter() - t0))
    params = RoutingParams(
        time_limit_s=remaining * (10 if options.deterministic else 1),
        first_solution="PARALLEL_CHEAPEST_INSERTION" if options.first_solution == "greedy"
        else options.first_solution,
        metaheuristic=options.metaheuristic,
        solution_limit=options.solution_limit if options.deterministic else None,
        workers=1 if options.deterministic else options.workers, overrides=options.search_overrides)
    result = solve_routing(data, params, candidates)
    seconds = time.perf_counter() - t0
    if not result.found:
        routes = greedy_routes(inst)
        return build_plan(inst, routes, "greedy (fallback)", seconds, result.status,
                          notes=(f"OR-Tools found no solution in {options.time_limit_s:g} s ({result.status})",))
    notes = (f"first solution: {result.strategy}",) + notes
    if options.deterministic and result.status == "time limit":
        notes += ("deterministic mode hit its safety time limit: the plan may not be reproducible",)
    return build_plan(inst, _job_routes(inst, result), "or-tools", seconds, result.status, notes)


def routing_data(inst: Instance, options: SolveOptions) -> RoutingData:
    """Translate an :class:`Instance` into the integer routing model (seconds, scaled integer weights)."""
    J, K = inst.n_jobs, inst.n_crews
    horizon = inst.horizon
    # Ceil travel and service so a plan feasible for the solver is feasible on the exact (float) matrix too.
    travel = np.where(np.isfinite(inst.travel), np.ceil(inst.travel), horizon + 1).astype(np.int64)
    service = np.ceil(inst.service).astype(np.int64)

    w = inst.weight
    coef = np.maximum(1, np.round(w / w.max() * WEIGHT_SCALE)).astype(np.int64) if J else np.zeros(0, np.int64)
    mean_coef = float(coef.mean()) if J else 1.0
    travel_coef = max(1, round(options.travel_weight * mean_coef))
    arc_cost = travel * travel_coef
    for k, i in inst.heading.items():
        s = inst.start_node(k)
        penalty = int(options.stability_minutes * 60 * mean_coef)
        arc_cost[s, :] += penalty
        arc_cost[s, i] -= penalty

    weight = np.zeros(J + 2 * K, dtype=np.int64)
    weight[:J] = coef
    # Larger than any total routing cost: dropping a job never pays unless it cannot be fitted at all.
    big = int(coef.sum()) * (horizon + 1) + int(arc_cost[travel <= horizon].max(initial=0)) * (
        J + K) + 1
    drop = np.zeros(J + 2 * K, dtype=np.int64)
    drop[:J] = big + coef * (horizon + 1)

    allowed = {}
    for i in range(J):
        ok = inst.assignable[i] & (inst.due[i] >= 0) & (inst.ready[i] <= inst.due[i])
        if not ok.all():
            allowed[i] = [int(k) for k in np.flatnonzero(ok)]

    shift_open = np.where(inst.on_duty, np.ceil(inst.shift_open), 0).astype(np.int64)
    shift_close = np.where(inst.on_duty, np.floor(inst.shift_close), horizon).astype(np.int64)
    starts = [inst.start_node(k) for k in range(K)]
    ends = [inst.end_node(k) for k in range(K)]
    # An empty route still "drives" start -> end: never let that make the whole model infeasible.
    home = shift_open + np.array([min(travel[s, e], horizon) for s, e in zip(starts, ends, strict=True)])
    shift_close = np.maximum(shift_close, home)

    due = np.concatenate([np.floor(np.maximum(inst.due[:J], 0)), np.full(2 * K, horizon)]).astype(np.int64)
    ready = np.minimum(np.concatenate([np.ceil(inst.ready[:J]), np.zeros(2 * K)]), due).astype(np.int64)
    precedence = [(inst.problem.job_index[p], i) for i, j in enumerate(inst.problem.jobs) for p in j.after]
    return RoutingData(travel=travel, service=service, ready=ready, due=due, starts=starts, ends=ends,
                       shift_open=shift_open, shift_close=shift_close, arc_cost=arc_cost, allowed=allowed,
                       weight=weight, drop_penalty=drop, locked_first=dict(inst.locked), precedence=precedence)


def _seed(inst: Instance, data: RoutingData, options: SolveOptions,
          guard: bool = True) -> tuple[list[list[int]], int, str]:
    """The first solution: the better of the baseline greedy plan and the crew-centric ratio rule (with each
    crew's P1 jobs from the baseline put first), on the solver's integer matrices. With
    ``p1_no_later_than_greedy`` (and ``guard``) every P1 job gets its baseline start as a deadline in ``data`` (in place), and
    the ratio plan is only used if it meets them. Returns the routes, how many jobs were held, and a label."""
    jobs = inst.problem.jobs
    base, base_start = greedy_schedule(inst, travel=data.travel, service=data.service,
                                       weight=effective_weights(jobs, HAZARD_FACTOR))
    p1 = np.array([j.priority == 1 for j in jobs], dtype=bool)
    first = {k: [i for i in route if p1[i]] for k, route in enumerate(base)}
    ratio, ratio_start = greedy_schedule(inst, travel=data.travel, service=data.service, rule="ratio",
                                         first={k: v for k, v in first.items() if v})
    guarded = np.flatnonzero(p1 & ~np.isnan(base_start))
    guard = guard and options.p1_no_later_than_greedy
    if guard:
        data.due[guarded] = np.minimum(data.due[guarded], np.ceil(base_start[guarded]).astype(np.int64))
        if np.isnan(ratio_start[guarded]).any() or (ratio_start[guarded] > data.due[guarded]).any():
            return base, len(guarded), "greedy plan"

    def cost(start: np.ndarray) -> float:  # the solver's objective, drops charged as it charges them
        served = ~np.isnan(start)
        return float((data.weight[:len(jobs)][served] * start[served]).sum()
                     + data.drop_penalty[:len(jobs)][~served].sum())

    held = len(guarded) if guard else 0
    if cost(ratio_start) < cost(base_start):
        return ratio, held, "ratio-rule plan"
    return base, held, "greedy plan"


def _place_left_out(inst: Instance, data: RoutingData, routes: list[list[int]],
                    seconds: float) -> tuple[list[list[int]], int]:
    """:func:`dispatch.improve.place_left_out` for the jobs no route holds (new jobs, or what the first
    solution could not fit)."""
    on_routes = {i for r in routes for i in r}
    left_out = [i for i in range(inst.n_jobs) if i not in on_routes]
    if not left_out:
        return routes, 0
    return place_left_out(data, routes, inst.assignable, _fixed_first(inst, routes), _precedence_jobs(inst),
                          left_out, seconds)


def _fixed_first(inst: Instance, routes: list[list[int]]) -> set[int]:
    """Crews whose first stop must stay first: on site (locked) or en route to it (stability)."""
    heading = {k for k, i in inst.heading.items() if routes[k][:1] == [i]}
    return set(inst.locked) | heading


def _precedence_jobs(inst: Instance) -> set[int]:
    """Jobs that take part in a precedence (either side): the own improvement pass leaves them to OR-Tools."""
    idx = inst.problem.job_index
    return {i for i, j in enumerate(inst.problem.jobs) if j.after} | {
        idx[p] for j in inst.problem.jobs for p in j.after}


def _warm_routes(inst: Instance, routes: list[list[int]]) -> list[list[int]]:
    """Previous routes made consistent with the new snapshot: locked jobs first on their crew, jobs a crew can
    no longer take removed (the search re-inserts them)."""
    locked_jobs = set(inst.locked.values())
    out = []
    for k, route in enumerate(routes):
        keep = [i for i in route if inst.assignable[i, k] and i not in locked_jobs]
        if k in inst.locked:
            keep.insert(0, inst.locked[k])
        out.append(keep)
    return out


def _job_routes(inst: Instance, result: RoutingResult) -> list[list[int]]:
    return [[n for n in r if n < inst.n_jobs] for r in result.routes]
