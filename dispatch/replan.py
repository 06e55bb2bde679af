"""Re-optimization as the day unfolds: a job arrives, a crew reports a status or position, a job completes.

A :class:`~dispatch.model.Problem` is an immutable snapshot; the functions here make the next snapshot from the
last one and an event, and :func:`replan` solves it warm-started from the previous plan. Two guarantees come from
the model itself (:mod:`dispatch.solver`), not from post-processing: an on-site crew's job never moves, and an
en-route crew is only turned away from its destination when that saves more than the stability penalty.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from dispatch.model import DispatchInputError, Job, Location, Problem
from dispatch.plan import Plan
from dispatch.solver import SolveOptions, solve
from dispatch.travel import TravelTime

#: Re-planning is interactive: a short default budget (the previous plan is already good).
REPLAN_OPTIONS = SolveOptions(time_limit_s=2.0)


def add_job(problem: Problem, job: Job) -> Problem:
    """The snapshot with ``job`` added (a new outage, a hazard call)."""
    if job.id in problem.job_index:
        raise DispatchInputError(f"job {job.id!r} is already open")
    return replace(problem, jobs=problem.jobs + (job,))


def complete_job(problem: Problem, job_id: str, now: datetime | None = None) -> Problem:
    """The snapshot after ``job_id`` is done (or cancelled): the job leaves, the crew that held it becomes
    available at the job's location, and jobs that had to follow it no longer wait for it."""
    finished = problem.job(job_id)  # KeyError naming the job if it is not open
    crews = tuple(
        replace(c, status="available", current_job=None, start=finished.location)
        if c.current_job == job_id else c for c in problem.crews)
    jobs = tuple(replace(j, after=tuple(p for p in j.after if p != job_id))
                 for j in problem.jobs if j.id != job_id)
    return replace(problem, crews=crews, jobs=jobs, now=now or problem.now)


def update_crew(problem: Problem, crew_id: str, *, status: str | None = None, position: Location | None = None,
                current_job: str | None = None, now: datetime | None = None) -> Problem:
    """The snapshot after a crew reports: a new status (``en_route`` / ``on_site`` need ``current_job``;
    ``available`` / ``off_shift`` clear it), a GPS position, or both."""
    crew = problem.crew(crew_id)
    changes: dict = {}
    if position is not None:
        changes["start"] = position
    if status is not None:
        changes["status"] = status
        changes["current_job"] = current_job if status in ("en_route", "on_site") else None
    elif current_job is not None:
        changes["current_job"] = current_job
    if changes.get("status") == "on_site" and "start" not in changes and changes.get("current_job"):
        changes["start"] = problem.job(changes["current_job"]).location
    jobs = problem.jobs
    if changes.get("status") == "on_site":  # work starts now: only the remainder is planned from here on
        when = now or problem.now
        jobs = tuple(replace(j, started_at=j.started_at or when) if j.id == changes["current_job"] else j
                     for j in jobs)
    crews = tuple(replace(c, **changes) if c.id == crew.id else c for c in problem.crews)
    return replace(problem, crews=crews, jobs=jobs, now=now or problem.now)


def advance(problem: Problem, now: datetime) -> Problem:
    """The same snapshot at a later clock time."""
    return replace(problem, now=now)


def commit_first_stops(problem: Problem, plan: Plan) -> Problem:
    """Send every available crew toward its first planned stop: status ``en_route`` with that job as
    ``current_job`` (what happens when the dispatcher releases the plan)."""
    first = {crew: r.stops[0].job_id for crew, r in plan.routes.items() if r.stops}
    crews = tuple(replace(c, status="en_route", current_job=first[c.id])
                  if c.status == "available" and c.id in first else c for c in problem.crews)
    return replace(problem, crews=crews)


def replan(problem: Problem, travel: TravelTime, previous: Plan | None,
           options: SolveOptions = REPLAN_OPTIONS) -> Plan:
    """Solve the new snapshot, warm-started from ``previous`` (its routes minus jobs that are gone)."""
    return solve(problem, travel, options, previous=previous)
