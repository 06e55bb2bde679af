"""A fast local search for the weighted-completion-time objective: relocate jobs within and across crews.

OR-Tools evaluates a soft cumul bound per node through its dimension machinery, which makes each of its moves
expensive; on storm-sized problems (hundreds of jobs) its search barely leaves the first solution in the time a
dispatcher can wait. This pass works directly on what the objective is: for a route ``start, a1 .. aL, end``
the cost is ``sum(weight[a] x start[a])``, and putting job ``i`` into the gap before position ``p`` delays every
later job by the same detour (when nobody waits for a window), so the change is ``weight[i] x start[i] +
detour x (weight of the jobs after p)`` -- one vectorized expression over all gaps of a route. Every promising
move is then re-timed exactly (windows, waiting, shift end and the return to the depot) before it is accepted,
so the result is feasible by construction and never worse than the input.

Moves: *relocate* (a job to its best gap on any crew that can take it, its own crew included: that is or-opt
within a route) and *swap* of two jobs on different crews. First stops that are locked (on site) or headed to
(en route), and every job that takes part in a precedence, stay where they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dispatch.routing import RoutingData


@dataclass
class _Route:
    """One crew's route and the arrays the move filter needs (gap p is before ``jobs[p]``; p = L is the end)."""

    jobs: list[int]
    cost: float
    prev: np.ndarray      # (L+1,) node before gap p
    nxt: np.ndarray       # (L+1,) node after gap p (the end node for p = L)
    done: np.ndarray      # (L+1,) departure from prev[p]
    after: np.ndarray     # (L+1,) weight of the jobs after gap p (those that a detour delays)
    first_free: int       # gaps before this one are closed (a locked or en-route first stop)


def schedule_cost(data: RoutingData, k: int, jobs: list[int]) -> tuple[float, np.ndarray] | None:
    """Exact cost ``sum(weight x start)`` of crew ``k`` doing ``jobs`` in order, and each job's departure; ``None``
    when a window, the shift end (return to the end node included) is violated."""
    t = float(data.shift_open[k])
    loc = data.starts[k]
    cost = 0.0
    depart = np.empty(len(jobs))
    for n, i in enumerate(jobs):
        begin = max(t + data.travel[loc, i], data.ready[i])
        if begin > data.due[i]:
            return None
        cost += data.weight[i] * begin
        t = begin + data.service[i]
        depart[n] = t
        loc = i
    if t + data.travel[loc, data.ends[k]] > data.shift_close[k]:
        return None
    return cost, depart


def improve_routes(data: RoutingData, routes: list[list[int]], assignable: np.ndarray, fixed_first: set[int],
                   frozen: set[int], time_limit_s: float, max_rounds: int = 50) -> tuple[list[list[int]], int]:
    """Improve ``routes`` (job nodes per vehicle) by relocate and swap moves until no move helps, ``max_rounds``
    passes are made or ``time_limit_s`` is used up. ``assignable[i, k]``: crew k may do job i. ``fixed_first``:
    vehicles whose first stop must stay first. ``frozen``: jobs never moved (and their routes never touched).
    Returns the new routes and how many moves were made. Deterministic: jobs are visited heaviest first."""
    deadline = time.perf_counter() + time_limit_s
    K = len(routes)
    state, locked_routes = _start(data, routes, fixed_first, frozen, "improve_routes")
    movable = [i for r_k, r in enumerate(routes) if r_k not in locked_routes
               for p, i in enumerate(r) if not (p == 0 and r_k in fixed_first)]
    movable.sort(key=lambda i: (-data.weight[i], i))
    where = {i: k for k, r in enumerate(routes) for i in r}
    crews_of = {i: [k for k in np.flatnonzero(assignable[i]) if k not in locked_routes] for i in movable}
    moves = 0
    for _ in range(max_rounds):
        improved = False
        for i in movable:
            if time.perf_counter() > deadline:
                return [s.jobs for s in state], moves
            if _relocate(data, state, where, i, crews_of[i]):
                moves += 1
                improved = True
        for i in movable:
            if time.perf_counter() > deadline:
                return [s.jobs for s in state], moves
            if _swap(data, state, where, i, crews_of, K):
                moves += 1
                improved = True
        if not improved:
            break
    return [s.jobs for s in state], moves


def _start(data: RoutingData, routes: list[list[int]], fixed_first: set[int], frozen: set[int],
           caller: str) -> tuple[list[_Route], set[int]]:
    """Route states for ``routes`` (refused if any is infeasible) and the crews whose routes hold a frozen job."""
    state = [_state(data, k, list(r), k in fixed_first) for k, r in enumerate(routes)]
    if any(s is None for s in state):
        raise ValueError(f"{caller}: the starting routes are not feasible")
    return state, {k for k, r in enumerate(routes) if frozen.intersection(r)}


def _state(data: RoutingData, k: int, jobs: list[int], fixed: bool) -> _Route | None:
    timed = schedule_cost(data, k, jobs)
    if timed is None:
        return None
    cost, depart = timed
    nodes = [data.starts[k], *jobs]
    w = data.weight[jobs].astype(float) if jobs else np.zeros(0)
    after = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]]) if jobs else np.zeros(1)
    return _Route(jobs, cost, np.array(nodes), np.array([*jobs, data.ends[k]]),
                  np.concatenate([[float(data.shift_open[k])], depart]), after, 1 if (fixed and jobs) else 0)


def _insertion_estimates(data: RoutingData, r: _Route, i: int) -> np.ndarray:
    """Estimated cost increase of inserting job ``i`` into each gap of ``r`` (inf where closed or late)."""
    to_i = data.travel[r.prev, i]
    begin = np.maximum(r.done + to_i, data.ready[i])
    detour = begin + data.service[i] + data.travel[i, r.nxt] - (r.done + data.travel[r.prev, r.nxt])
    est = data.weight[i] * begin + detour * r.after
    est[begin > data.due[i]] = np.inf
    est[: r.first_free] = np.inf
    return est


def _relocate(data: RoutingData, state: list[_Route], where: dict[int, int], i: int, crews: list[int]) -> bool:
    """Move job ``i`` to the best gap (exactly re-timed) if that lowers the total cost."""
    a = where[i]
    src = state[a]
    without = [j for j in src.jobs if j != i]
    timed = schedule_cost(data, a, without)
    if timed is None:  # removing a job can only fail on windows that needed the wait it caused: keep it
        return False
    gain = src.cost - timed[0]
    src_without = _state(data, a, without, src.first_free == 1)
    best: tuple[float, int, list[int]] | None = None
    for k in crews:
        r = src_without if k == a else state[k]
        est = _insertion_estimates(data, r, i)
        for p in np.argsort(est)[:3]:
            if not np.isfinite(est[p]) or est[p] >= gain - 1e-9:
                break
            new = r.jobs[:p] + [i] + r.jobs[p:]
            exact = schedule_cost(data, k, new)
            if exact is None:
                continue
            delta = exact[0] - r.cost
            if delta < gain - 1e-9 and (best is None or delta < best[0]):
                best = (delta, k, new)
            break
    if best is None:
        return False
    _, k, new = best
    state[a] = src_without
    state[k] = _state(data, k, new, state[k].first_free == 1 or (k == a and src.first_free == 1))
    where[i] = k
    return True


def _swap(data: RoutingData, state: list[_Route], where: dict[int, int], i: int,
          crews_of: dict[int, list[int]], K: int) -> bool:
    """Swap job ``i`` with a job on another crew (each takes the other's place) if that lowers the cost."""
    a = where[i]
    ra = state[a]
    pa = ra.jobs.index(i)
    for b in crews_of[i]:
        if b == a:
            continue
        rb = state[b]
        for pb, j in enumerate(rb.jobs):
            if j not in crews_of or a not in crews_of[j] or (pb == 0 and rb.first_free):
                continue
            new_a = ra.jobs[:pa] + [j] + ra.jobs[pa + 1:]
            new_b = rb.jobs[:pb] + [i] + rb.jobs[pb + 1:]
            ta = schedule_cost(data, a, new_a)
            if ta is None:
                continue
            tb = schedule_cost(data, b, new_b)
            if tb is None or ta[0] + tb[0] >= ra.cost + rb.cost - 1e-9:
                continue
            state[a] = _state(data, a, new_a, ra.first_free == 1)
            state[b] = _state(data, b, new_b, rb.first_free == 1)
            where[i], where[j] = b, a
            return True
    return False


def place_left_out(data: RoutingData, routes: list[list[int]], assignable: np.ndarray, fixed_first: set[int],
                   frozen: set[int], left_out: list[int], time_limit_s: float) -> tuple[list[list[int]], int]:
    """Give jobs that no route holds a place, heaviest first: the cheapest gap that fits, or else a lighter
    job's place on a capable crew (that job is left out instead and tries in turn) when the model's objective
    -- drop penalties included -- says so. Only lighter jobs are pushed out, so what stays out drifts to the
    lightest work: "drop the lowest weights first". A first solution fills shifts in its own order and the
    search, at storm size, rarely gets round to this exchange. Returns the routes and how many jobs were placed.
    ``frozen`` jobs (and routes holding them) are left alone, as in :func:`improve_routes`."""
    deadline = time.perf_counter() + time_limit_s
    state, locked_routes = _start(data, routes, fixed_first, frozen, "place_left_out")
    queue = sorted((i for i in left_out if i not in frozen), key=lambda i: (-data.weight[i], i))
    placed = 0
    while queue and time.perf_counter() < deadline:
        i = queue.pop(0)
        crews = [int(k) for k in np.flatnonzero(assignable[i]) if k not in locked_routes]
        fits = [(g[0], k, g[1]) for k in crews if (g := _fitting_gap(data, state[k], k, i)) is not None]
        if fits:
            _, k, new = min(fits, key=lambda c: (c[0], c[1]))
            state[k] = _state(data, k, new, k in fixed_first)
            placed += 1
            continue
        best: tuple[float, int, list[int], int] | None = None
        for k in crews:
            r = state[k]
            lighter = [p for p in range(r.first_free, len(r.jobs)) if data.weight[r.jobs[p]] < data.weight[i]]
            for p in sorted(lighter, key=lambda p: (data.weight[r.jobs[p]], p))[:3]:
                out = r.jobs[p]
                rest = _state(data, k, r.jobs[:p] + r.jobs[p + 1:], k in fixed_first)
                gap = None if rest is None else _fitting_gap(data, rest, k, i)
                if gap is None:
                    continue
                delta = rest.cost + gap[0] - r.cost + float(data.drop_penalty[out]) - float(data.drop_penalty[i])
                if delta < -1e-9 and (best is None or delta < best[0]):
                    best = (delta, k, gap[1], out)
        if best is not None:
            _, k, new, out = best
            state[k] = _state(data, k, new, k in fixed_first)
            placed += 1
            queue.append(out)
            queue.sort(key=lambda j: (-data.weight[j], j))
    return [s.jobs for s in state], placed


def _fitting_gap(data: RoutingData, r: _Route, k: int, i: int) -> tuple[float, list[int]] | None:
    """The cheapest gap of route ``r`` (crew ``k``) that job ``i`` fits in, exactly re-timed: gaps are tried in
    order of estimated cost, so the first that fits is (nearly always) the cheapest. ``(cost increase, jobs)``."""
    est = _insertion_estimates(data, r, i)
    for p in np.argsort(est, kind="stable"):
        if not np.isfinite(est[p]):
            break
        new = r.jobs[:p] + [i] + r.jobs[p:]
        exact = schedule_cost(data, k, new)
        if exact is not None:
            return exact[0] - r.cost, new
    return None
