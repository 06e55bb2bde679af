"""A :class:`~dispatch.model.Problem` in numbers: the one translation every dispatcher and the plan builder share.

Node layout: jobs ``0 .. J-1`` (in ``problem.jobs`` order), then each crew's start ``J + k``, then each crew's end
``J + K + k``. A crew without an end depot gets an "anywhere" end node: zero travel into it. Times are seconds from
``problem.now``; travel comes from the injected travel-time source, called once for all points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dispatch.model import DispatchInputError, Job, Problem
from dispatch.travel import TravelTime


@dataclass(frozen=True)
class Instance:
    """Numeric view of a problem. Arrays indexed by node (``travel``, ``service``, ``ready``, ``due``), by job
    (``weight``, ``capable``, ``assignable``), or by crew (``shift_open``, ``shift_close``, ``on_duty``)."""

    problem: Problem
    travel: np.ndarray          # (N, N) seconds, float; inf = no way
    service: np.ndarray         # (N,) seconds of work still to do (0 at crew terminals)
    ready: np.ndarray           # (N,) earliest start, seconds from now
    due: np.ndarray             # (N,) latest start, seconds from now (horizon when unbounded)
    weight: np.ndarray          # (J,) effective weight per minute waited (hazard bonus included)
    capable: np.ndarray         # (J, K) bool: skills cover the job
    assignable: np.ndarray      # (J, K) bool: capable, on duty, and can reach the job
    shift_open: np.ndarray      # (K,) seconds from now
    shift_close: np.ndarray     # (K,) seconds from now
    on_duty: np.ndarray         # (K,) bool
    locked: dict[int, int]      # crew -> job it is on site at (first stop, never moved)
    heading: dict[int, int]     # crew -> job it is en route to (stability)
    horizon: int

    @property
    def n_jobs(self) -> int:
        return len(self.problem.jobs)

    @property
    def n_crews(self) -> int:
        return len(self.problem.crews)

    def start_node(self, k: int) -> int:
        return self.n_jobs + k

    def end_node(self, k: int) -> int:
        return self.n_jobs + self.n_crews + k


def effective_weights(jobs: tuple[Job, ...], hazard_factor: float) -> np.ndarray:
    """Weights the optimizer uses: a hazard job's weight is raised above every non-hazard weight
    (``hazard_factor`` x the largest weight in the problem is added), so make-safe work comes first."""
    w = np.array([j.weight for j in jobs], dtype=float)
    if len(w) and hazard_factor > 0:
        hazard = np.array([j.hazard for j in jobs], dtype=bool)
        w = w + hazard * hazard_factor * w.max()
    return w


def compile_problem(problem: Problem, travel: TravelTime, hazard_factor: float = 2.0) -> Instance:
    """Translate ``problem`` into an :class:`Instance`, calling ``travel`` once for all points.

    Raises :class:`DispatchInputError` when a job cannot be reached by any capable crew (no road), or when the
    travel source returns a matrix of the wrong shape or negative times.
    """
    jobs, crews, now = problem.jobs, problem.crews, problem.now
    J, K = len(jobs), len(crews)
    N = J + 2 * K

    points = [j.location for j in jobs] + [c.start for c in crews] + [c.end for c in crews if c.end is not None]
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    t = np.asarray(travel(pts, pts), dtype=float)
    if t.shape != (len(pts), len(pts)):
        raise DispatchInputError(f"travel source returned shape {t.shape}, expected {(len(pts), len(pts))}")
    t = np.where(np.isnan(t), np.inf, t)
    if (t < 0).any():
        raise DispatchInputError("travel source returned negative travel times")
    np.fill_diagonal(t, 0.0)

    # Map node -> row in pts; "anywhere" ends get row -1 (zero travel in, nothing out).
    row = np.empty(N, dtype=np.int64)
    row[:J] = np.arange(J)
    row[J:J + K] = J + np.arange(K)
    next_row = J + K
    for k, c in enumerate(crews):
        if c.end is None:
            row[J + K + k] = -1
        else:
            row[J + K + k] = next_row
            next_row += 1
    safe = np.where(row < 0, 0, row)
    tt = t[np.ix_(safe, safe)]
    anywhere = row < 0
    tt[:, anywhere] = 0.0
    tt[anywhere, :] = np.inf
    tt[np.ix_(anywhere, anywhere)] = 0.0

    shift_open = np.array([max(0.0, (c.shift_start - now).total_seconds()) for c in crews])
    shift_close = np.array([(c.shift_end - now).total_seconds() for c in crews])
    on_duty = np.array([c.status != "off_shift" for c in crews]) & (shift_close > shift_open)
    horizon = int(np.ceil(max(shift_close.max(), 1.0)))

    service = np.zeros(N)
    ready = np.zeros(N)
    due = np.full(N, float(horizon))
    for i, j in enumerate(jobs):
        service[i] = j.service_minutes * 60.0
        if j.started_at is not None:
            service[i] = max(0.0, service[i] - max(0.0, (now - j.started_at).total_seconds()))
        if j.earliest is not None:
            ready[i] = max(0.0, (j.earliest - now).total_seconds())
        if j.latest is not None:
            due[i] = min(float(horizon), (j.latest - now).total_seconds())

    capable = np.array([[j.skills <= c.skills for c in crews] for j in jobs], dtype=bool).reshape(J, K)
    reach = np.isfinite(tt[J:J + K, :J]).T  # (J, K): crew start -> job
    assignable = capable & on_duty[None, :] & reach

    locked: dict[int, int] = {}
    heading: dict[int, int] = {}
    for k, c in enumerate(crews):
        if c.current_job is None or not on_duty[k]:
            continue
        (locked if c.status == "on_site" else heading)[k] = problem.job_index[c.current_job]
    for k, i in locked.items():
        tt[J + k, i] = 0.0  # the crew is already there
        assignable[i, :] = False
        assignable[i, k] = True

    for i, j in enumerate(jobs):
        cap = capable[i] & on_duty
        if cap.any() and not (cap & reach[i]).any():
            raise DispatchInputError(
                f"job {j.id!r}: unreachable: no road from any capable crew "
                f"({', '.join(crews[k].id for k in np.flatnonzero(cap)[:5])}) to {j.location}")

    return Instance(problem=problem, travel=tt, service=service, ready=ready, due=due,
                    weight=effective_weights(jobs, hazard_factor), capable=capable, assignable=assignable,
                    shift_open=shift_open, shift_close=shift_close, on_duty=on_duty, locked=locked,
                    heading=heading, horizon=horizon)
