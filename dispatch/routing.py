"""The routing core: an OR-Tools vehicle-routing model over integer arrays.

Everything domain-specific (crews, skills, weights, datetimes) is translated by :mod:`dispatch.solver` into a
:class:`RoutingData`; the Solomon benchmark feeds the same core directly. Keeping one core means the benchmark
figures describe the code that dispatches crews.

Model (node = location index, vehicle = crew):

* time dimension, transit ``service[i] + travel[i, j]``, node windows ``[ready, due]``, vehicle windows
  ``[shift_open, shift_close]`` on the start and end cumuls, waiting allowed;
* arc cost ``arc_cost[i, j]`` (defaults to ``travel``);
* optional per-node ``weight``: a soft upper bound 0 on the node's time cumul with that coefficient, i.e. the
  objective gains ``weight x start time`` -- the weighted-completion-time objective (service is a constant);
* optional ``drop_penalty`` per node (a disjunction: the node may be left out at that cost), ``allowed`` vehicles
  per node, capacity (``demand``/``capacity``), nodes locked as a vehicle's first stop, and precedence pairs
  ``(a, b)``: ``b`` starts after ``a`` is finished (and is only done if ``a`` is);
* matrices are registered with ``RegisterTransitMatrix`` so the search never calls back into Python.

Search: a first-solution strategy (or initial routes: a warm start), then a metaheuristic under a time limit.
``workers > 1`` runs several strategies in separate processes and keeps the best (both cores).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from google.protobuf import text_format
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

#: Node lists per vehicle, or a function that builds them.
Routes = list[list[int]] | Callable[[], list[list[int]]]

#: (first solution, metaheuristic) per extra worker when ``workers > 1``; worker 0 runs the given params.
#: Different constructions and searches make the runs diverge, so the best of them is better than one run.
#: Savings + GLS is the strongest partner on long routes (Solomon R2/RC2) in our runs.
PORTFOLIO = (("SAVINGS", "GUIDED_LOCAL_SEARCH"), ("LOCAL_CHEAPEST_INSERTION", "TABU_SEARCH"),
             ("CHRISTOFIDES", "GUIDED_LOCAL_SEARCH"))


@dataclass
class RoutingData:
    """An integer routing instance. ``n`` nodes, ``v`` vehicles; starts/ends are node indices per vehicle."""

    travel: np.ndarray
    service: np.ndarray
    ready: np.ndarray
    due: np.ndarray
    starts: list[int]
    ends: list[int]
    shift_open: np.ndarray
    shift_close: np.ndarray
    arc_cost: np.ndarray | None = None
    demand: np.ndarray | None = None
    capacity: np.ndarray | None = None
    allowed: dict[int, list[int]] = field(default_factory=dict)
    weight: np.ndarray | None = None
    drop_penalty: np.ndarray | None = None
    locked_first: dict[int, int] = field(default_factory=dict)
    precedence: list[tuple[int, int]] = field(default_factory=list)

    @property
    def n_nodes(self) -> int:
        return int(self.travel.shape[0])

    @property
    def n_vehicles(self) -> int:
        return len(self.starts)

    def customers(self) -> list[int]:
        """Nodes to visit: every node that is not some vehicle's start or end."""
        terminals = set(self.starts) | set(self.ends)
        return [i for i in range(self.n_nodes) if i not in terminals]


@dataclass(frozen=True)
class RoutingParams:
    """Search settings. ``solution_limit`` (with no time pressure) makes a run deterministic. ``overrides``:
    extra OR-Tools ``RoutingSearchParameters`` in protobuf text format."""

    time_limit_s: float = 10.0
    first_solution: str = "PARALLEL_CHEAPEST_INSERTION"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    solution_limit: int | None = None
    workers: int = 1
    gls_lambda: float | None = None
    overrides: str = ""
    log_search: bool = False


@dataclass
class RoutingResult:
    """Routes as node lists per vehicle (terminals excluded), the solver's objective, how it was found."""

    routes: list[list[int]]
    objective: int
    status: str
    seconds: float
    strategy: str
    dropped: list[int] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.objective >= 0


class RoutingError(RuntimeError):
    """The model could not be built (a bug or inconsistent data, not 'no solution')."""


def solve_routing(data: RoutingData, params: RoutingParams = RoutingParams(),
                  initial: Sequence[tuple[Routes, str]] = ()) -> RoutingResult:
    """Solve ``data``; with ``params.workers > 1`` run a strategy portfolio in parallel processes, keep the best.

    ``initial`` lists candidate first solutions ``(routes, label)``, tried in order (``routes`` may be a
    function returning them, called only when needed): the first the model accepts (all constraints met) starts
    the search; if none does, the first-solution strategy builds one. Returns a
    result with ``objective == -1`` and empty routes when no solution was found in time.
    """
    if params.workers <= 1:
        return _solve_one(data, params, initial)
    runs = [replace(params, workers=1)] + [replace(params, workers=1, first_solution=f, metaheuristic=m)
                                           for f, m in PORTFOLIO[: params.workers - 1]]
    # Worker 0 (with the warm start, which may be a function) runs here; the others in forked processes.
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(len(runs) - 1) as pool:
        others = pool.starmap_async(_solve_one, [(data, p) for p in runs[1:]])
        results = [_solve_one(data, runs[0], initial)]
        # A worker past the time limit (seen with SAVINGS under load) is abandoned, not waited for.
        with contextlib.suppress(mp.TimeoutError):
            results += others.get(timeout=max(0.5, params.time_limit_s - results[0].seconds) + 1.0)
    found = [r for r in results if r.found]
    if not found:
        return results[0]
    best = min(found, key=lambda r: r.objective)
    best.strategy += f" (best of {len(runs)} workers)"
    return best


def _solve_one(data: RoutingData, params: RoutingParams,
               initial: Sequence[tuple[Routes, str]] = ()) -> RoutingResult:
    t0 = time.perf_counter()
    manager = pywrapcp.RoutingIndexManager(data.n_nodes, data.n_vehicles, list(data.starts), list(data.ends))
    routing = pywrapcp.RoutingModel(manager)
    _build(data, manager, routing)

    search = pywrapcp.DefaultRoutingSearchParameters()
    search.first_solution_strategy = getattr(routing_enums_pb2.FirstSolutionStrategy, params.first_solution)
    search.local_search_metaheuristic = getattr(routing_enums_pb2.LocalSearchMetaheuristic, params.metaheuristic)
    search.time_limit.FromMilliseconds(max(1, int(params.time_limit_s * 1000)))
    if params.solution_limit:
        search.solution_limit = params.solution_limit
    if params.gls_lambda is not None:
        search.guided_local_search_lambda_coefficient = params.gls_lambda
    search.log_search = params.log_search
    if params.overrides:
        text_format.Merge(params.overrides, search)

    strategy = params.first_solution
    solution = None
    for routes, label in initial:
        if callable(routes):  # built only when the candidates before it were rejected
            routes = routes()
        start = routing.ReadAssignmentFromRoutes([[manager.NodeToIndex(n) for n in r] for r in routes], True)
        if start is not None:
            strategy = label
            solution = routing.SolveFromAssignmentWithParameters(start, search)
            break
    if solution is None:
        solution = routing.SolveWithParameters(search)
    seconds = time.perf_counter() - t0
    status = _status_name(routing.status())
    if solution is None:
        return RoutingResult([[] for _ in range(data.n_vehicles)], -1, status, seconds, strategy)

    routes = []
    for v in range(data.n_vehicles):
        index = solution.Value(routing.NextVar(routing.Start(v)))
        route = []
        while not routing.IsEnd(index):
            route.append(manager.IndexToNode(index))
            index = solution.Value(routing.NextVar(index))
        routes.append(route)
    visited = {n for r in routes for n in r}
    dropped = [n for n in data.customers() if n not in visited]
    return RoutingResult(routes, int(solution.ObjectiveValue()), status, seconds, strategy, dropped)


def _build(data: RoutingData, manager: pywrapcp.RoutingIndexManager, routing: pywrapcp.RoutingModel) -> None:
    travel = np.asarray(data.travel, dtype=np.int64)
    service = np.asarray(data.service, dtype=np.int64)
    horizon = int(max(np.max(data.shift_close), np.max(data.due), 0))

    cost = travel if data.arc_cost is None else np.asarray(data.arc_cost, dtype=np.int64)
    cost_cb = routing.RegisterTransitMatrix(cost.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(cost_cb)

    time_cb = routing.RegisterTransitMatrix((service[:, None] + travel).tolist())
    routing.AddDimension(time_cb, horizon, horizon, False, "time")
    time_dim = routing.GetDimensionOrDie("time")

    if data.demand is not None:
        demand_cb = routing.RegisterUnaryTransitVector(np.asarray(data.demand, dtype=np.int64).tolist())
        routing.AddDimensionWithVehicleCapacity(
            demand_cb, 0, [int(c) for c in data.capacity], True, "load")

    for v in range(data.n_vehicles):
        lo, hi = int(data.shift_open[v]), int(data.shift_close[v])
        time_dim.CumulVar(routing.Start(v)).SetRange(lo, hi)
        time_dim.CumulVar(routing.End(v)).SetRange(lo, hi)
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.Start(v)))
        routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(routing.End(v)))

    locked_nodes = set(data.locked_first.values())
    solver = routing.solver()
    for node in data.customers():
        index = manager.NodeToIndex(node)
        time_dim.CumulVar(index).SetRange(int(data.ready[node]), int(data.due[node]))
        if data.weight is not None and data.weight[node] > 0:
            time_dim.SetCumulVarSoftUpperBound(index, 0, int(data.weight[node]))
        else:
            routing.AddVariableMinimizedByFinalizer(time_dim.CumulVar(index))
        if node in data.allowed:
            # -1 = not performed. (SetAllowedVehiclesForIndex's absl::Span argument is unusable from Python.)
            routing.VehicleVar(index).SetValues([-1, *(int(v) for v in data.allowed[node])])
        if data.drop_penalty is not None and node not in locked_nodes:
            routing.AddDisjunction([index], int(data.drop_penalty[node]))

    for v, node in data.locked_first.items():
        index = manager.NodeToIndex(node)
        routing.NextVar(routing.Start(v)).SetValues([index])
        routing.VehicleVar(index).SetValues([v])

    for a, b in data.precedence:
        ia, ib = manager.NodeToIndex(a), manager.NodeToIndex(b)
        solver.Add(routing.ActiveVar(ib) <= routing.ActiveVar(ia))
        solver.Add(time_dim.CumulVar(ia) + int(service[a]) <= time_dim.CumulVar(ib))


def _status_name(code: int) -> str:
    """``ROUTING_FAIL_TIMEOUT`` -> ``"fail timeout"``; ``ROUTING_PARTIAL_SUCCESS_...`` (stopped by the time
    limit with a solution) -> ``"time limit"``."""
    try:
        name = routing_enums_pb2.RoutingSearchStatus.Value.Name(int(code))
    except ValueError:
        return str(code)
    if name == "ROUTING_PARTIAL_SUCCESS_LOCAL_OPTIMUM_NOT_REACHED":
        return "time limit"
    return name.removeprefix("ROUTING_").replace("_", " ").lower()
