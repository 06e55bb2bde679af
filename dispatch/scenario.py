"""Seeded storm scenarios: crews and jobs for benchmarks and tests (until the outage simulator feeds dispatch).

:func:`storm_jobs` draws jobs from candidate *sites* (where equipment is, and how many customers hang below it):
a mix of single-service, transformer, fuse and feeder-level outages with a few life-safety hazards (wires down),
repair times by kind (log-normal around typical values), skills (line / service / tree), and weights =
priority factor x customers out. :func:`storm_crews` puts line, service and tree crews at depots on storm shifts.
Everything is a function of the ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from dispatch.model import Crew, Job, Location

#: Weight per customer out, by priority tier (P1 life safety .. P4 single customer).
PRIORITY_FACTOR = {1: 10.0, 2: 4.0, 3: 2.0, 4: 1.0}

#: kind -> (share of jobs, median repair minutes, skills, priority). Repair times are log-normal with
#: :data:`REPAIR_SIGMA`: the same kind of job can be a 20-minute fuse replacement or a 3-hour pole job.
JOB_KINDS = {
    "wires_down": (0.06, 30.0, ("line",), 1),
    "critical": (0.04, 60.0, ("line",), 2),
    "feeder": (0.08, 90.0, ("line",), 3),
    "fuse": (0.27, 45.0, ("line",), 3),
    "transformer": (0.25, 45.0, ("line",), 3),
    "tree": (0.10, 60.0, ("tree",), 3),
    "service": (0.20, 30.0, ("service",), 4),
}
REPAIR_SIGMA = 0.8


@dataclass(frozen=True)
class Sites:
    """Candidate job locations: ``locations[i]`` (lon, lat) with ``customers[i]`` downstream and a ``level``
    (0 service/transformer, 1 fuse/lateral, 2 feeder backbone) used to pick plausible outage sizes."""

    locations: list[Location]
    customers: np.ndarray
    level: np.ndarray


def storm_jobs(sites: Sites, n_jobs: int, now: datetime, seed: int = 0) -> list[Job]:
    """``n_jobs`` seeded storm jobs on ``sites``."""
    rng = np.random.default_rng(seed)
    kinds = list(JOB_KINDS)
    shares = np.array([JOB_KINDS[k][0] for k in kinds])
    drawn = rng.choice(len(kinds), size=n_jobs, p=shares / shares.sum())
    by_level = {lvl: np.flatnonzero(sites.level == lvl) for lvl in (0, 1, 2)}
    everywhere = np.arange(len(sites.locations))
    jobs = []
    for n, kind_index in enumerate(drawn):
        kind = kinds[kind_index]
        _, median, skills, priority = JOB_KINDS[kind]
        level = {"feeder": 2, "fuse": 1, "tree": 1, "critical": 1}.get(kind, 0)
        pool = by_level[level] if len(by_level[level]) else everywhere
        site = int(rng.choice(pool))
        if kind == "service":
            customers = 1
        elif kind == "wires_down":
            customers = int(rng.integers(0, 3))
        else:
            customers = max(1, int(sites.customers[site]))
        minutes = float(np.clip(rng.lognormal(np.log(median), REPAIR_SIGMA), 10.0, 480.0))
        weight = PRIORITY_FACTOR[priority] * max(1, customers)
        jobs.append(Job(
            id=f"J{n:04d}", location=sites.locations[site], service_minutes=round(minutes, 1),
            skills=frozenset(skills), weight=weight, priority=priority, customers=customers,
            hazard=kind == "wires_down", label=kind))
    return jobs


def storm_crews(depots: list[Location], n_crews: int, now: datetime, shift_hours: float = 16.0,
                seed: int = 0) -> list[Crew]:
    """``n_crews`` crews spread over ``depots``: 60% line (line + service work), 25% service, 15% tree."""
    rng = np.random.default_rng(seed)
    crews = []
    for k in range(n_crews):
        share = k / max(n_crews, 1)
        if share < 0.60:
            kind, skills = "line", ("line", "service")
        elif share < 0.85:
            kind, skills = "service", ("service",)
        else:
            kind, skills = "tree", ("tree",)
        depot = depots[k % len(depots)]
        start = now + timedelta(minutes=float(rng.choice([0, 0, 0, 15, 30])))
        crews.append(Crew(id=f"{kind[0].upper()}{k:03d}", skills=frozenset(skills), start=depot,
                          shift_start=start, shift_end=now + timedelta(hours=shift_hours), end=depot, kind=kind,
                          size=3 if kind == "line" else 2))
    return crews


def grid_sites(n: int = 2000, size_km: float = 30.0, origin: Location = (11.5, 49.9), seed: int = 0) -> Sites:
    """A synthetic territory: ``n`` sites uniformly on a ``size_km`` square (for when no road data is at hand)."""
    rng = np.random.default_rng(seed)
    dx = rng.uniform(0, size_km, n) / (111.32 * np.cos(np.radians(origin[1])))
    dy = rng.uniform(0, size_km, n) / 110.57
    level = rng.choice(3, size=n, p=[0.7, 0.25, 0.05])
    customers = np.where(level == 0, rng.integers(1, 15, n),
                         np.where(level == 1, rng.integers(10, 150, n), rng.integers(150, 1500, n)))
    return Sites([(origin[0] + a, origin[1] + b) for a, b in zip(dx, dy, strict=True)], customers, level)
