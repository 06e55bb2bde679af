"""Small dispatch problems for tests: points on a line or a grid with an exact travel matrix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from dispatch.model import Crew, Job
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
