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

A job left out of a plan is charged as done at ``drop_at`` (the last shift end): the bound allows for that too,
so it holds for plans that drop jobs.
"""

from __future__ import annotations

import numpy as np

from dispatch.instance import Instance


def lower_bound(inst: Instance, weight: np.ndarray | None = None, drop_at: float | None = None) -> float:
    """Weighted minutes (``sum(weight x minutes from now to completion)``) that no plan of ``inst`` can beat.

    ``weight``: per job (default: the jobs' own weights, without the hazard bonus). ``drop_at``: seconds from now
    at which a dropped job is charged as done (default: the latest shift end). Time windows' closing times,
    precedences and the hazard rule are relaxed, so the bound holds for every plan, including those that keep them.
    """
    J, K = inst.n_jobs, inst.n_crews
    if J == 0:
        return 0.0
    w = np.array([j.weight for j in inst.problem.jobs], dtype=float) if weight is None else np.asarray(weight, float)
    if w.shape != (J,):
        raise ValueError(f"lower_bound: weight has shape {w.shape}, expected ({J},)")
    horizon = float(inst.shift_close.max()) if drop_at is None else float(drop_at)

    reach = np.where(inst.assignable, inst.shift_open[None, :] + inst.travel[J:J + K, :J].T, np.inf)
    alone = np.minimum(np.maximum(reach.min(axis=1), inst.ready[:J]) + inst.service[:J], horizon)
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
        machines = _parallel_machines(w[idx], work[idx], len(crews), float(inst.shift_open[crews].min()), horizon)
        total += max(machines, float((w[idx] * alone[idx]).sum()))
    return total / 60.0


def _parallel_machines(w: np.ndarray, p: np.ndarray, m: int, start: float, horizon: float) -> float:
    """Eastman-Even-Isaacs bound for jobs (weights ``w``, times ``p``) on ``m`` identical machines free from
    ``start``, lowered by what leaving out jobs (each charged at ``horizon``) could save: taking job ``j`` out
    saves at most its own term plus the delay its time puts on the jobs after it, so the bound subtracts every
    such saving that exceeds the job's drop charge."""
    order = np.lexsort((np.arange(len(w)), -w / np.maximum(p, 1e-9)))
    w, p = w[order], p[order]
    finish = start + np.cumsum(p) / m + (m - 1) / (2 * m) * p
    after = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])
    saving = w * finish + p / m * after
    return float((w * finish).sum() + np.minimum(0.0, w * horizon - saving).sum())
