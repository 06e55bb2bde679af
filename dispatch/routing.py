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

Search: a first-solution strategy (or initial routes: a warm start), then a metaheuristic under a time limit:
GLS by default (crew dispatch), or OR-Tools' iterated local search with ruin and recreate (:data:`ILS`;
:func:`distance_params` is the preset for pure distance objectives such as Solomon). ``workers > 1`` runs
several strategies in separate processes and keeps the best (both cores).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from google.protobuf import text_format
from ortools.constraint_solver import pywrapcp, routing_enums_pb2, routing_parameters_pb2

#: Node lists per vehicle, or a function that builds them.
Routes = list[list[int]] | Callable[[], list[list[int]]]

#: ``RoutingParams.metaheuristic`` value selecting OR-Tools' iterated local search (ILS, ruin and recreate). It is
#: not a ``LocalSearchMetaheuristic``: OR-Tools runs it through ``SolveWithIteratedLocalSearch``.
ILS = "ITERATED_LOCAL_SEARCH"

#: Default ILS settings (``IteratedLocalSearchParameters`` text): SISR ruin (string removals, Christiaens and
#: Vanden Berghe 2020), cheapest-insertion recreate, simulated-annealing acceptance of the reference solution
#: with temperatures from the arc costs (scaled by ``RoutingParams.ils_temperature``), so no unit tuning.
ILS_PARAMETERS = """
perturbation_strategy: RUIN_AND_RECREATE
ruin_recreate_parameters {
  ruin_strategies { sisr { max_removed_sequence_size: 10 avg_num_removed_visits: 10 bypass_factor: 0.01 } }
  recreate_strategy { heuristic: LOCAL_CHEAPEST_INSERTION }
  route_selection_neighbors_ratio: 1 route_selection_min_neighbors: 10 route_selection_max_neighbors: 100
}
improve_perturbed_solution: true
reference_solution_acceptance_strategy {
  simulated_annealing { cooling_schedule_strategy: EXPONENTIAL automatic_temperatures: true }
}
best_solution_acceptance_strategy { greedy_descent {} }
"""

#: Field overrides of ``RoutingParams`` per extra worker when ``workers > 1``; worker 0 runs the given params.
#: Different constructions and searches make the runs diverge, so the best of them is better than one run.
#: Savings + GLS is the strongest partner on long routes (Solomon R2/RC2) in our runs.
PORTFOLIO: tuple[dict[str, object], ...] = (
    {"first_solution": "SAVINGS", "metaheuristic": "GUIDED_LOCAL_SEARCH"},
    {"first_solution": "LOCAL_CHEAPEST_INSERTION", "metaheuristic": "TABU_SEARCH"},
    {"first_solution": "CHRISTOFIDES", "metaheuristic": "GUIDED_LOCAL_SEARCH"},
)

#: Seconds a forked worker keeps free before the deadline to read out its routes and send them back.
_RESULT_MARGIN_S = 0.1

#: Insertion LNS operators switched off under ILS in the distance preset: ruin and recreate already does their
#: job, and they make every descent after a perturbation several times slower (fewer ILS iterations).
ILS_LNS_OFF = """local_search_operators {
  use_global_cheapest_insertion_path_lns: BOOL_FALSE
  use_local_cheapest_insertion_path_lns: BOOL_FALSE
  use_relocate_path_global_cheapest_insertion_insert_unperformed: BOOL_FALSE
  use_global_cheapest_insertion_visit_types_lns: BOOL_FALSE
  use_local_cheapest_insertion_visit_types_lns: BOOL_FALSE
}
"""

#: The distance preset's recreate step inserts the removed visits in random order (diversity between ILS steps).
_ILS_RANDOM_ORDER = ILS_PARAMETERS.replace(
    "recreate_strategy { heuristic: LOCAL_CHEAPEST_INSERTION }",
    "recreate_strategy { heuristic: LOCAL_CHEAPEST_INSERTION parameters { local_cheapest_insertion {\n"
    "    insertion_sorting_properties: SORTING_PROPERTY_RANDOM } } }",
)

#: Extra workers of :func:`distance_params`: two different ILS trajectories (construction, insertion order,
#: temperature), since ILS runs vary a lot from instance to instance and the best of two diverse runs gains most.
DISTANCE_PORTFOLIO: tuple[dict[str, object], ...] = (
    {
        "first_solution": "PARALLEL_CHEAPEST_INSERTION",
        "ils_parameters": ILS_PARAMETERS,
        "ils_temperature": 1.0,
    },
    {"first_solution": "SAVINGS", "ils_parameters": ILS_PARAMETERS, "ils_temperature": 0.3},
)


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
    extra OR-Tools ``RoutingSearchParameters`` in protobuf text format (merged last).

    ``metaheuristic``: a ``LocalSearchMetaheuristic`` name or :data:`ILS`; for ILS, ``ils_parameters`` is the
    ``IteratedLocalSearchParameters`` text (default :data:`ILS_PARAMETERS`) and ``ils_temperature`` scales the
    simulated-annealing temperatures of OR-Tools' automatic rule (start 0.1, end 0.001 x the mean arc cost):
    1.0 is that rule, lower is greedier. ``portfolio``: field overrides per extra worker when ``workers > 1``
    (default :data:`PORTFOLIO`)."""

    time_limit_s: float = 10.0
    first_solution: str = "PARALLEL_CHEAPEST_INSERTION"
    metaheuristic: str = "GUIDED_LOCAL_SEARCH"
    solution_limit: int | None = None
    workers: int = 1
    gls_lambda: float | None = None
    overrides: str = ""
    log_search: bool = False
    ils_parameters: str = ""
    ils_temperature: float = 1.0
    portfolio: tuple[dict[str, object], ...] | None = None


def distance_params(time_limit_s: float, workers: int = 1) -> RoutingParams:
    """The preset for pure distance objectives (the Solomon benchmark): ILS with SISR ruin and insertion LNS
    off, Savings construction, random insertion order and a cool annealing schedule on worker 0, and
    :data:`DISTANCE_PORTFOLIO` on the other workers. Crew dispatch (weighted completion times, warm starts) keeps
    the GLS defaults: this preset is measured on Solomon only."""
    return RoutingParams(
        time_limit_s=time_limit_s,
        first_solution="SAVINGS",
        metaheuristic=ILS,
        workers=workers,
        overrides=ILS_LNS_OFF,
        ils_parameters=_ILS_RANDOM_ORDER,
        ils_temperature=0.1,
        portfolio=DISTANCE_PORTFOLIO,
    )


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


def solve_routing(
    data: RoutingData, params: RoutingParams = RoutingParams(), initial: Sequence[tuple[Routes, str]] = ()
) -> RoutingResult:
    """Solve ``data``; with ``params.workers > 1`` run a strategy portfolio in parallel processes, keep the best.

    ``initial`` lists candidate first solutions ``(routes, label)``, tried in order (``routes`` may be a
    function returning them, called only when needed): the first the model accepts (all constraints met) starts
    the search; if none does, the first-solution strategy builds one. Returns a
    result with ``objective == -1`` and empty routes when no solution was found in time.
    """
    if params.workers <= 1:
        return _solve_one(data, params, initial)
    portfolio = PORTFOLIO if params.portfolio is None else params.portfolio
    runs = [replace(params, workers=1)] + [
        replace(params, workers=1, **extra) for extra in portfolio[: params.workers - 1]
    ]
    # Worker 0 (with the warm start, which may be a function) runs here; the others in forked processes.
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    deadline = time.monotonic() + params.time_limit_s
    with ctx.Pool(len(runs) - 1) as pool:
        others = pool.starmap_async(_solve_one, [(data, p, (), deadline) for p in runs[1:]])
        results = [_solve_one(data, runs[0], initial)]
        # A worker past the time limit (seen under load) is abandoned, not waited for.
        with contextlib.suppress(mp.TimeoutError):
            results += others.get(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
    found = [r for r in results if r.found]
    if not found:
        return results[0]
    best = min(found, key=lambda r: r.objective)
    best.strategy += f" (best of {len(runs)} workers)"
    return best


def _solve_one(
    data: RoutingData,
    params: RoutingParams,
    initial: Sequence[tuple[Routes, str]] = (),
    deadline: float | None = None,
) -> RoutingResult:
    """One search. ``deadline`` (``time.monotonic()``) caps the search of a forked worker so that its result is
    back by then: its fork and model build count against the same budget as the caller's own run."""
    t0 = time.perf_counter()
    manager = pywrapcp.RoutingIndexManager(data.n_nodes, data.n_vehicles, list(data.starts), list(data.ends))
    routing = pywrapcp.RoutingModel(manager)
    _build(data, manager, routing)

    search = pywrapcp.DefaultRoutingSearchParameters()
    search.first_solution_strategy = getattr(routing_enums_pb2.FirstSolutionStrategy, params.first_solution)
    use_ils = params.metaheuristic == ILS
    if use_ils:
        # ILS improves each perturbed solution by plain descent; a metaheuristic inside it only slows it down.
        search.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT
        _set_ils(search, data, params)
    else:
        search.local_search_metaheuristic = getattr(
            routing_enums_pb2.LocalSearchMetaheuristic, params.metaheuristic
        )
    limit_s = params.time_limit_s
    if deadline is not None:
        limit_s = max(0.05, min(limit_s, deadline - _RESULT_MARGIN_S - time.monotonic()))
    search.time_limit.FromMilliseconds(max(1, int(limit_s * 1000)))
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
            if use_ils:
                # ILS takes no start assignment; local cheapest insertion rebuilds it from the hint instead.
                routing.SetFirstSolutionHint(start)
                search.first_solution_strategy = (
                    routing_enums_pb2.FirstSolutionStrategy.LOCAL_CHEAPEST_INSERTION
                )
                solution = routing.SolveWithIteratedLocalSearch(search)
            else:
                solution = routing.SolveFromAssignmentWithParameters(start, search)
            break
    if solution is None:
        solution = (
            routing.SolveWithIteratedLocalSearch(search) if use_ils else routing.SolveWithParameters(search)
        )
    seconds = time.perf_counter() - t0
    status = _status_name(routing.status())
    if use_ils and solution is not None and status == "not solved":
        status = "ils finished"  # SolveWithIteratedLocalSearch leaves the model status unset
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


def _set_ils(
    search: routing_parameters_pb2.RoutingSearchParameters, data: RoutingData, params: RoutingParams
) -> None:
    """Turn on ILS in ``search`` with ``params.ils_parameters`` and the scaled annealing temperatures."""
    search.use_iterated_local_search = True
    search.ClearField("iterated_local_search_parameters")
    ils = search.iterated_local_search_parameters
    text_format.Merge(params.ils_parameters or ILS_PARAMETERS, ils)
    accept = ils.reference_solution_acceptance_strategy
    if accept.HasField("simulated_annealing") and params.ils_temperature != 1.0:
        # OR-Tools' automatic rule with a factor: its own rule samples arc costs, we take their mean.
        cost = np.asarray(data.travel if data.arc_cost is None else data.arc_cost, dtype=float)
        mean_arc = float(cost[~np.eye(len(cost), dtype=bool)].mean()) if len(cost) > 1 else 1.0
        sa = accept.simulated_annealing
        sa.automatic_temperatures = False
        sa.initial_temperature = max(1e-6, 0.1 * params.ils_temperature * mean_arc)
        sa.final_temperature = max(1e-9, 0.001 * params.ils_temperature * mean_arc)


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
        routing.AddDimensionWithVehicleCapacity(demand_cb, 0, [int(c) for c in data.capacity], True, "load")

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
