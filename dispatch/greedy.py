"""The greedy baseline: highest weight first, to the nearest capable free crew.

What a dispatcher does by hand in a storm, and the yardstick the optimizer is measured against. It is also the
fallback when OR-Tools finds nothing in time, and the optimizer's first solution on large problems (it is
feasible by construction and takes milliseconds). Same interface as :func:`dispatch.solver.solve`.
"""

from __future__ import annotations

import time

import numpy as np

from dispatch.instance import Instance, compile_problem
from dispatch.model import Problem
from dispatch.plan import Plan, build_plan
from dispatch.travel import TravelTime

_EPS = 1e-6
#: The baseline's hazard rule: a hazard's weight is raised by this x the largest weight (make-safe first).
HAZARD_FACTOR = 2.0


def solve_greedy(problem: Problem, travel: TravelTime, hazard_factor: float = HAZARD_FACTOR) -> Plan:
    """Plan ``problem`` the way a dispatcher works the board: whenever crews come free, the waiting jobs in order
    of (hazard-boosted) weight, highest first, each to the nearest free crew that has the skills, meets the job's
    window and still gets back by the end of its shift. Jobs no crew can take are dropped with a reason."""
    t0 = time.perf_counter()
    inst = compile_problem(problem, travel, hazard_factor)
    routes = greedy_routes(inst)
    return build_plan(inst, routes, solver="greedy", solve_seconds=time.perf_counter() - t0, status="success")


def greedy_routes(inst: Instance, travel: np.ndarray | None = None,
                  service: np.ndarray | None = None) -> list[list[int]]:
    """Greedy routes (job indices per crew). ``travel``/``service`` override the instance's (the solver passes
    its rounded integer matrices so the routes are feasible in its model too)."""
    return greedy_schedule(inst, travel, service)[0]


def greedy_schedule(inst: Instance, travel: np.ndarray | None = None, service: np.ndarray | None = None,
                    weight: np.ndarray | None = None, rule: str = "weight",
                    first: dict[int, list[int]] | None = None) -> tuple[list[list[int]], np.ndarray]:
    """:func:`greedy_routes` and the start time of every job on them (nan when not placed). ``weight``
    overrides the order (default: the instance's effective weights).

    ``rule="weight"`` is the baseline (heaviest job -> nearest free crew). ``rule="ratio"`` is crew-centric: a
    free crew takes the waiting job with the most weight per minute of its time (drive + wait + work), Smith's
    rule with travel; not a baseline, but a good first solution for the optimizer. ``first`` (crew -> jobs)
    puts those jobs at the head of the crew's route, in that order, before anything else is dispatched.
    """
    if rule not in ("weight", "ratio"):
        raise ValueError(f"rule must be 'weight' or 'ratio', got {rule!r}")
    order_weight = inst.weight if weight is None else weight
    tt = inst.travel if travel is None else travel
    sv = inst.service if service is None else service
    J, K = inst.n_jobs, inst.n_crews
    routes: list[list[int]] = [[] for _ in range(K)]
    free_at = inst.shift_open.astype(float).copy()
    loc = np.array([inst.start_node(k) for k in range(K)])
    ends = np.array([inst.end_node(k) for k in range(K)])
    done = np.full(J, np.nan)
    preds = [[inst.problem.job_index[p] for p in j.after] for j in inst.problem.jobs]
    has_preds = np.array([bool(p) for p in preds], dtype=bool)

    def place(i: int, k: int, begin: float) -> None:
        routes[k].append(i)
        done[i] = begin + sv[i]
        free_at[k] = done[i]
        loc[k] = i

    for k, i in inst.locked.items():
        place(i, k, max(free_at[k] + tt[loc[k], i], inst.ready[i]))
    for k, jobs in (first or {}).items():
        for i in jobs:
            after_preds = max([done[p] for p in preds[i] if not np.isnan(done[p])], default=0.0)
            place(i, k, max(free_at[k] + tt[loc[k], i], inst.ready[i], after_preds))
    placed = set(inst.locked.values()) | {i for jobs in (first or {}).values() for i in jobs}

    # Event-driven, as a dispatcher works the board: whenever crews are free, the heaviest waiting job goes to
    # the nearest free crew that can do it in time; a crew left without work waits for the next event.
    pending = sorted((i for i in range(J) if i not in placed),
                     key=lambda i: (-order_weight[i], inst.problem.jobs[i].id))
    retired = ~inst.on_duty.copy()
    round_ = _ratio_round if rule == "ratio" else _weight_round
    while pending and not retired.all():
        t = free_at[~retired].min()
        free = [k for k in np.flatnonzero(~retired) if free_at[k] <= t + _EPS]
        free = round_(inst, free, pending, preds, has_preds, done, free_at, loc, ends, tt, sv, order_weight, place)
        busy = free_at[~retired][free_at[~retired] > t + _EPS]
        for k in free:  # nothing for them now: wait for the next crew to finish, or stop
            if len(busy):
                free_at[k] = busy.min()
            else:
                retired[k] = True
    return routes, done - sv[:J]


def _weight_round(inst: Instance, free: list[int], pending: list[int], preds, has_preds, done, free_at, loc, ends,
                  tt, sv, weight, place) -> list[int]:
    """The baseline's round: the waiting jobs in order (heaviest first), each to the nearest free crew that has
    the skills, meets the job's window and gets back by the end of its shift. One table of waiting jobs x free
    crews; a job with predecessors is looked at when its turn comes (one placed earlier in the round may release
    it). Returns the crews left without work."""
    jobs, crews = np.array(pending, dtype=np.int64), np.array(free, dtype=np.int64)
    drive = tt[loc[crews][None, :], jobs[:, None]]
    home = tt[jobs[:, None], ends[crews][None, :]]
    begin = np.maximum(np.maximum(free_at[crews][None, :] + drive, inst.ready[jobs][:, None]), 0.0)
    close = inst.shift_close[crews] + _EPS
    ok = (inst.assignable[np.ix_(jobs, crews)] & (begin <= inst.due[jobs][:, None] + _EPS)
          & (begin + sv[jobs][:, None] + home <= close[None, :]))
    taken = np.zeros(len(crews), dtype=bool)
    placed = set()
    judge = has_preds[jobs]
    pos = 0
    while not taken.all():
        # the next job in order that a crew still free can do (or that waits on predecessors: judged in turn)
        rest = np.flatnonzero((ok[pos:] & ~taken).any(axis=1) | judge[pos:])
        if not len(rest):
            break
        r = pos + int(rest[0])
        pos = r + 1
        i = int(jobs[r])
        row_begin, row_ok = begin[r], ok[r]
        if has_preds[i]:
            after = _preds_done(preds[i], done)
            if after is None:
                continue
            row_begin = np.maximum(row_begin, after)
            row_ok = (inst.assignable[i, crews] & (row_begin <= inst.due[i] + _EPS)
                      & (row_begin + sv[i] + home[r] <= close))
        row_ok = row_ok & ~taken
        if not row_ok.any():
            continue
        best = np.flatnonzero(row_ok)[np.argmin(drive[r][row_ok])]
        place(i, int(crews[best]), float(row_begin[best]))
        taken[best] = True
        placed.add(i)
    if placed:
        pending[:] = [i for i in pending if i not in placed]
    return [int(k) for k in crews[~taken]]


def _ratio_round(inst: Instance, free: list[int], pending: list[int], preds, has_preds, done, free_at, loc, ends,
                 tt, sv, weight, place) -> list[int]:
    """Each free crew in turn takes the waiting job with the best weight per minute of its time; returns the
    crews that found nothing."""
    idle = []
    for k in free:
        jobs = np.array(pending, dtype=np.int64)
        mask = inst.assignable[jobs, k]
        after = np.zeros(len(jobs))
        for r in np.flatnonzero(mask & has_preds[jobs]).tolist():
            a = _preds_done(preds[int(jobs[r])], done)
            mask[r] = a is not None
            after[r] = a or 0.0
        cand, after = jobs[mask], after[mask]
        if not len(cand):
            idle.append(k)
            continue
        begin = np.maximum(np.maximum(free_at[k] + tt[loc[k], cand], inst.ready[cand]), after)
        ok = (begin <= inst.due[cand] + _EPS) & (begin + sv[cand] + tt[cand, ends[k]] <= inst.shift_close[k] + _EPS)
        if not ok.any():
            idle.append(k)
            continue
        score = weight[cand] / np.maximum(begin + sv[cand] - free_at[k], 1.0)
        score[~ok] = -np.inf
        best = int(np.argmax(score))
        place(int(cand[best]), k, float(begin[best]))
        pending.remove(int(cand[best]))
    return idle


def _preds_done(preds_i: list[int], done: np.ndarray) -> float | None:
    """When a job's predecessors are all done, the latest of their finishes; ``None`` while one is not."""
    finishes = [done[p] for p in preds_i]
    return None if any(np.isnan(f) for f in finishes) else max(finishes)
