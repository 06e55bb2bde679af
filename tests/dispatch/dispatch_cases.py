"""Small dispatch problems for tests: points on a line or a grid with an exact travel matrix."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np

from dispatch.instance import compile_problem
from dispatch.model import Crew, Job, Problem
from dispatch.plan import build_plan
from dispatch.travel import MatrixTravel

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def point(x: float, y: float = 0.0) -> tuple[float, float]:
    """A position ``x`` (and ``y``) km east (north) of an origin, as lon/lat-like coordinates (exact keys)."""
    return (11.0 + x / 100.0, 50.0 + y / 100.0)


def manhattan_travel(points: list[tuple[float, float]], minutes_per_km: float = 1.0) -> MatrixTravel:
    """Exact integer-second travel: Manhattan distance in 'km' x ``minutes_per_km``."""
    p = np.array([((lon - 11.0) * 100.0, (lat - 50.0) * 100.0) for lon, lat in points])
    d = np.abs(p[:, None, :] - p[None, :, :]).sum(axis=2)
    return MatrixTravel(points, np.round(d * minutes_per_km * 60.0))


def crew(cid: str, x: float = 0.0, y: float = 0.0, skills=("line",), hours: float = 12.0, end=None, **kw) -> Crew:
    return Crew(cid, frozenset(skills), point(x, y), NOW, at(hours * 60), end=end, **kw)


def job(jid: str, x: float, y: float = 0.0, minutes: float = 30.0, weight: float = 1.0, skills=("line",),
        **kw) -> Job:
    return Job(jid, point(x, y), minutes, frozenset(skills), weight=weight, **kw)


def travel_for(crews, jobs, extra=()) -> MatrixTravel:
    pts = list(dict.fromkeys([c.start for c in crews] + [c.end for c in crews if c.end] +
                             [j.location for j in jobs] + list(extra)))
    return manhattan_travel(pts)


def brute_force_wcm(problem: Problem, travel, drop_at_minutes: float | None = None,
                    never_drop: frozenset[str] = frozenset()) -> float:
    """Minimum weighted customer-minutes over every assignment and order (tiny problems only). With
    ``drop_at_minutes`` a job (other than those in ``never_drop``) may also be left out, charged as done then."""
    inst = compile_problem(problem, travel)
    J, K = inst.n_jobs, inst.n_crews
    owners = K + (drop_at_minutes is not None)
    weights = np.array([j.weight for j in problem.jobs])
    best = np.inf
    kept = [i for i, j in enumerate(problem.jobs) if j.id in never_drop]
    for owner in itertools.product(range(owners), repeat=J):
        if any(owner[i] == K for i in kept):
            continue
        per_crew = [[i for i in range(J) if owner[i] == k] for k in range(K)]
        left_out = sum(weights[i] for i in range(J) if owner[i] == K) * (drop_at_minutes or 0.0)
        for orders in itertools.product(*(itertools.permutations(r) for r in per_crew)):
            plan = build_plan(inst, [list(o) for o in orders], "brute force")
            if not plan.violations():
                best = min(best, plan.weighted_customer_minutes + left_out)
    return best
