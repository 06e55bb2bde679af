"""How good could any plan be? A lower bound on weighted customer-minutes, to judge a plan against.

A plan's weighted completion time is only meaningful next to what is achievable. No exact optimum is in reach at
storm size, but a valid bound is: :func:`lower_bound` takes the larger of two relaxations, per group of jobs that
the same crews can do (groups are disjoint, so their bounds add up):

* **each job alone**: done by the crew that finishes it earliest straight from its start, as if no crew had any
  other work;
* **crews as parallel machines** (Eastman, Even and Isaacs, 1964): the group's crews are identical machines; a job
  takes its work time plus the shortest drive into it from anywhere; then ``sum(w x C) >= (1/m) sum_j w_j P_j +
  (m-1)/(2m) sum_j w_j p_j`` with ``P_j`` the work ahead of and including ``j`` in weight-per-minute order (Smith's
  rule). This is what queueing behind other jobs costs, which the first relaxation ignores.

A third relaxation couples what the first two see apart: a **time-indexed linear program** over all jobs at
once (:func:`_time_indexed`, in the spirit of Dyer and Wolsey, 1990, and Hall, Schulz, Shmoys and Wein, 1997).
Crews with the same skills and reach form classes; each class has so many crew-seconds in each 5-minute period of
its shifts; a job takes its work time plus its shortest drive in, not before it could be reached, on one crew at a
time, by its deadline; its weighted completion is its weighted mean busy time plus half its length, each second
counted at the earliest time of its period. Line crews that also take service jobs, and the hours life-safety
work holds them, are then counted together, which roughly halves the room the other two leave on storm scenarios.

A job left out of a plan is charged as done at ``drop_at`` (the last shift end): the bound allows for that too,
so it holds for plans that drop jobs. Jobs that must be started by a deadline (life-safety work held to the greedy
arrival) take crew time before anything else can use it; the machine bound and the linear program count that when
told.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from dispatch.instance import Instance

#: Seconds: the fluid clock's resolution (times are rounded down to it, so the bound stays a bound).
CLOCK_STEP = 5.0
#: Seconds: the linear program's period. Finer is tighter and slower (100 crews x 1,000 jobs: about 6 s at 5 min;
#: 10 min gives a bound about one point of reduction looser in a quarter of the time). Long horizons get longer
#: periods, at most ``LP_PERIODS`` of them, so the program's size stays bounded.
LP_PERIOD = 300.0
LP_PERIODS = 200


def lower_bound(inst: Instance, weight: np.ndarray | None = None, drop_at: float | None = None,
                must_start_by: dict[int, float] | None = None) -> float:
    """Weighted minutes (``sum(weight x minutes from now to completion)``) that no plan of ``inst`` can beat.

    ``weight``: per job (default: the jobs' own weights, without the hazard bonus). ``drop_at``: seconds from now
    at which a dropped job is charged as done (default: the latest shift end). ``must_start_by`` (job index ->
    seconds from now) limits the bound to plans that start those jobs by then (life-safety jobs held to a
    deadline): their work then takes crew time early, which :func:`_parallel_machines` counts. Time windows'
    closing times bound only the linear program; precedences and the hazard rule are relaxed, so the bound
    holds for every such plan.
    """
    J, K = inst.n_jobs, inst.n_crews
    if J == 0:
        return 0.0
    w = np.array([j.weight for j in inst.problem.jobs], dtype=float) if weight is None else np.asarray(weight, float)
    if w.shape != (J,):
        raise ValueError(f"lower_bound: weight has shape {w.shape}, expected ({J},)")
    horizon = float(inst.shift_close.max()) if drop_at is None else float(drop_at)
    committed = must_start_by or {}

    reach = np.where(inst.assignable, inst.shift_open[None, :] + inst.travel[J:J + K, :J].T, np.inf)
    done_by = np.maximum(reach.min(axis=1), inst.ready[:J]) + inst.service[:J]  # earliest possible completion
    alone = np.minimum(done_by, horizon)
    into = inst.travel[:J + K, :J].copy()
    into[np.arange(J), np.arange(J)] = np.inf  # a job is not its own predecessor
    work = inst.service[:J] + np.minimum(into.min(axis=0), horizon)

    total = 0.0
    groups: dict[bytes, list[int]] = {}
    for i in range(J):
        groups.setdefault(np.packbits(inst.assignable[i]).tobytes(), []).append(i)
    for members in groups.values():
        idx = np.array(members)
        crews = np.flatnonzero(inst.assignable[idx[0]])
        if not len(crews):  # nobody can do these: every plan drops them
            total += float(w[idx].sum()) * horizon
            continue
        opens = float(inst.shift_open[crews].min())
        best = max(_parallel_machines(w[idx], work[idx], len(crews), opens, horizon),
                   float((w[idx] * alone[idx]).sum()))
        held = np.array([i in committed for i in idx], dtype=bool)
        if held.any():  # the held jobs' own cost alone, the rest behind the crew time they take
            rest = idx[~held]
            early = [(committed[i], work[i] - inst.service[i], inst.service[i]) for i in idx[held]]
            behind = max(_parallel_machines(w[rest], work[rest], len(crews), opens, horizon, early),
                         float((w[rest] * alone[rest]).sum()))
            best = max(best, float((w[idx[held]] * alone[idx[held]]).sum()) + behind)
        total += best
    return max(total, _time_indexed(inst, w, horizon, committed, work, done_by - work)) / 60.0


def _time_indexed(inst: Instance, w: np.ndarray, horizon: float, committed: dict[int, float],
                  work: np.ndarray, release: np.ndarray, period: float = LP_PERIOD) -> float:
    """The time-indexed linear program's value (weighted seconds; 0 when it has no answer, e.g. deadlines no
    plan can keep: the other relaxations stand alone then).

    Why it holds: in any plan, give job ``j`` the last ``work[j]`` seconds before its completion ``C`` on its crew
    (its shortest drive in, then its service). Those stretches never overlap on one crew, lie inside the crew's
    shift, start no earlier than ``release[j]`` (the earliest the job's service could end, less ``work[j]``) and,
    for a job held to a deadline, end by deadline + service. So ``y[j, class, period]`` = the seconds of that stretch
    in each period is feasible here, and ``C = mean busy time + work / 2 >= sum(y x (earliest second of the
    period)) / work + work / 2``. A dropped job costs ``horizon`` as in the plans."""
    J, K = inst.n_jobs, inst.n_crews
    service = inst.service[:J]
    last = inst.due[:J].astype(float) + service
    for i, t in committed.items():
        last[i] = min(last[i], t + service[i])
    columns: dict[bytes, list[int]] = {}
    for k in range(K):
        if inst.assignable[:, k].any():
            columns.setdefault(inst.assignable[:, k].tobytes(), []).append(k)
    classes = list(columns.values())
    planned = np.isfinite(release) & (work > 0)
    if not classes or not planned.any():
        return 0.0
    t0 = min(0.0, float(inst.shift_open.min()))
    period = max(period, (horizon - t0) / LP_PERIODS)
    edges = np.arange(t0, horizon + period, period)
    begin, end = edges[:-1], edges[1:]
    capacity = np.array([sum(np.clip(np.minimum(end, inst.shift_close[k]) - np.maximum(begin, inst.shift_open[k]),
                                     0.0, None) for k in ks) for ks in classes])  # (classes, periods)
    can = np.stack([inst.assignable[:, ks[0]] for ks in classes], axis=1) & planned[:, None]  # (J, classes)
    earliest = np.maximum(begin[None, :], release[:, None])  # (J, periods)
    room = end[None, :] - earliest  # one crew at a time: at most this much of a job in a period
    usable = (room > 0) & (begin[None, :] < last[:, None])
    j, c, t = np.nonzero(can[:, :, None] & usable[:, None, :] & (capacity > 0)[None, :, :])
    n_y = len(j)
    drop = np.array([i for i in np.flatnonzero(planned) if i not in committed], dtype=int)
    rows = np.flatnonzero(planned)
    row_of = np.full(J, -1)
    row_of[rows] = np.arange(len(rows))
    cost = np.concatenate([w[j] / work[j] * (earliest[j, t] + work[j] / 2), w[drop] * horizon])
    equal = coo_matrix((np.concatenate([np.ones(n_y), work[drop]]),
                        (np.concatenate([row_of[j], row_of[drop]]), np.arange(n_y + len(drop)))),
                       shape=(len(rows), n_y + len(drop))).tocsr()
    cell = c * len(begin) + t
    upper = coo_matrix((np.ones(n_y), (cell, np.arange(n_y))),
                       shape=(capacity.size, n_y + len(drop))).tocsr()
    bounds = np.column_stack([np.zeros(n_y + len(drop)), np.concatenate([room[j, t], np.ones(len(drop))])])
    res = linprog(cost, A_ub=upper, b_ub=capacity.ravel(), A_eq=equal, b_eq=work[rows], bounds=bounds,
                  method="highs")
    if res.status != 0:
        return 0.0
    # Jobs no crew can reach are dropped by every plan; the solver's tolerance is shaved off.
    return float(res.fun) * (1 - 1e-6) + float(w[~np.isfinite(release)].sum()) * horizon


def _parallel_machines(w: np.ndarray, p: np.ndarray, m: int, start: float, horizon: float,
                       early: list[tuple[float, float, float]] = ()) -> float:
    """Lower bound on ``sum(w x C)`` for jobs (weights ``w``, times ``p``) on ``m`` identical machines free from
    ``start``, when other jobs ``early`` = [(latest start, drive before it, work)] must start by their times.

    A job's completion is its mean busy time plus half its length. Let all machines together act as one that does
    ``m`` units of work per second, less the early jobs, each started as late as it may be: then giving the earliest
    capacity to the most weight per unit of work (Smith's rule) minimizes the total weighted mean busy time, and
    no real schedule does better (its busy times fit that capacity). Without early work this is the bound of
    Eastman, Even and Isaacs (1964). It is lowered by what leaving jobs out (each charged at ``horizon``) could
    save: taking job ``j`` out saves at most its own term plus the delay its time puts on the jobs after it (taken
    out last-first, each removal leaves the jobs ahead of it where they were, so the savings add up)."""
    if not len(w):
        return 0.0
    order = np.lexsort((np.arange(len(w)), -w / np.maximum(p, 1e-9)))
    w, p = w[order], p[order]
    ends = np.cumsum(p)
    if early:
        at = _fluid_clock(m, start, early, float(ends[-1]))
        # Left sums (of right limits) of an increasing function: a lower bound on its mean over each job's work.
        span = (ends - p)[:, None] + p[:, None] * (np.arange(32) / 32.0)[None, :]
        mean_busy = at(span).mean(axis=1)
        advance = _largest_advance(at, ends - p, p)
    else:
        mean_busy = start + (ends - p / 2) / m
        advance = p / m
    finish = mean_busy + p / 2
    after = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])
    saving = w * finish + advance * after
    return float((w * finish).sum() + np.minimum(0.0, w * horizon - saving).sum())


def _largest_advance(at, begins: np.ndarray, p: np.ndarray, points: int = 4000) -> np.ndarray:
    """Per job: an upper bound on how much earlier any work after ``begins[j]`` could be done if job ``j``'s
    ``p[j]`` units were not there, i.e. the largest ``at(z + p[j]) - at(z)`` over ``z >= begins[j]`` (on a grid of
    ``points`` cells, each window widened to whole cells, plus the clock's rounding: so it stays an upper bound)."""
    xs = np.linspace(0.0, float(begins[-1] + p[-1] + p.max()), points)
    low = at(xs)
    out = np.empty(len(p))
    for chunk in np.array_split(np.arange(len(p)), max(1, len(p) // 100)):
        gain = at(xs[1:][None, :] + p[chunk][:, None]) - low[None, :-1]
        tail = np.maximum.accumulate(gain[:, ::-1], axis=1)[:, ::-1]  # best from grid cell k on
        first = np.clip(np.searchsorted(xs, begins[chunk], side="right") - 1, 0, points - 2)
        out[chunk] = tail[np.arange(len(chunk)), first]
    return out + CLOCK_STEP


def _fluid_clock(m: int, start: float, early: list[tuple[float, float, float]], work: float,
                 step: float = CLOCK_STEP):
    """``x -> `` the earliest time (rounded down to ``step``) by which ``m`` machines from ``start`` can have done
    more than ``x`` units of other work, while each ``early`` job (latest start, drive, work) has been driven to by
    its latest start and worked on without a break from then at the latest. Capacity left by ``t`` is
    ``m (t - start)`` less what the early jobs must have had by ``t``, and work done by ``t`` is done at every later
    time too, so the usable capacity at ``t`` is the least of that over all later times."""
    latest = np.array([s for s, _, _ in early])[None, :]
    drive = np.array([d for _, d, _ in early])[None, :]
    busy = np.array([a for _, _, a in early])[None, :]
    stop = start + (work + float(drive.sum() + busy.sum())) / m + float((latest + busy).max()) + step
    # Capacity is piecewise linear between the early jobs' start and end deadlines: with them on the grid, the
    # least over later grid times is the least over all later times.
    marks = np.concatenate([latest.ravel(), (latest + busy).ravel()])
    t = np.union1d(np.arange(start, stop, step), marks[marks >= start])[:, None]
    owed = ((t >= latest) * drive + np.clip(t - latest, 0.0, busy)).sum(axis=1)
    t = t.ravel()
    usable = np.minimum.accumulate((m * (t - start) - owed)[::-1])[::-1]

    def at(x: np.ndarray) -> np.ndarray:
        i = np.searchsorted(usable, x, side="right")
        return t[np.clip(i - 1, 0, len(t) - 1)]

    return at
