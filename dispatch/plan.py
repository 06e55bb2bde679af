"""Plans: who goes where, when, and why.

:func:`build_plan` turns routes (job order per crew) into a :class:`Plan` by driving them on the travel-time matrix:
arrive = leave previous + travel, start = max(arrive, window opens, predecessors finished), leave = start +
service. Every dispatcher (OR-Tools, greedy, re-plan) goes through it, so ETAs always agree with the matrix and two
plans of the same problem are measured the same way. :meth:`Plan.violations` re-checks a plan against the problem
independently of whoever made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from dispatch.instance import Instance

_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Stop:
    """One job on a route. ``arrival`` is the ETA; work runs ``start`` .. ``departure``."""

    job_id: str
    arrival: datetime
    start: datetime
    departure: datetime
    travel_minutes: float
    wait_minutes: float


@dataclass(frozen=True, slots=True)
class Route:
    """A crew's ordered stops; ``end_arrival`` is when it reaches its end depot (or finishes, without one)."""

    crew_id: str
    stops: tuple[Stop, ...]
    end_arrival: datetime
    travel_minutes: float

    @property
    def job_ids(self) -> list[str]:
        return [s.job_id for s in self.stops]


@dataclass(frozen=True, slots=True)
class Assignment:
    """A job's crew, ETA, completion, position on the route, and a sentence a dispatcher can read."""

    job_id: str
    crew_id: str
    eta: datetime
    start: datetime
    completion: datetime
    position: int
    explanation: str


@dataclass(frozen=True, slots=True)
class Dropped:
    job_id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """The result of a dispatcher.

    ``weighted_customer_minutes`` is sum(weight x minutes from ``now`` to completion) over assigned jobs with the
    jobs' own weights (no hazard bonus); ``travel_minutes`` is the total driving; ``worst_p1_minutes`` the latest
    P1 arrival (``None`` without P1 jobs); ``dropped_weight`` the total weight of jobs left out.
    """

    now: datetime
    routes: dict[str, Route]
    assignments: dict[str, Assignment]
    dropped: tuple[Dropped, ...]
    weighted_customer_minutes: float
    travel_minutes: float
    worst_p1_minutes: float | None
    dropped_weight: float
    solver: str
    solve_seconds: float = 0.0
    status: str = ""
    notes: tuple[str, ...] = ()
    _violations: tuple[str, ...] = field(default=(), repr=False)

    def job_routes(self) -> dict[str, list[str]]:
        """Crew id -> job ids in order: the form a warm start and :func:`build_plan` take."""
        return {crew: r.job_ids for crew, r in self.routes.items()}

    def eta(self, job_id: str) -> datetime | None:
        a = self.assignments.get(job_id)
        return None if a is None else a.eta

    def violations(self) -> list[str]:
        """Constraint violations found when the routes were driven (empty for a feasible plan)."""
        return list(self._violations)

    def objective(self) -> dict[str, float]:
        return {"weighted_customer_minutes": self.weighted_customer_minutes,
                "travel_minutes": self.travel_minutes,
                "assigned": len(self.assignments), "dropped": len(self.dropped)}

    def explain(self) -> str:
        """A readable summary: the objective, then one line per assignment and per dropped job."""
        lines = [f"{self.solver}: {len(self.assignments)} jobs assigned, {len(self.dropped)} dropped; "
                 f"{self.weighted_customer_minutes:,.0f} weighted customer-minutes, "
                 f"{self.travel_minutes:,.0f} min driving"]
        for route in self.routes.values():
            for stop in route.stops:
                lines.append(f"  {stop.job_id}: {self.assignments[stop.job_id].explanation}")
        lines += [f"  {d.job_id}: not scheduled: {d.reason}" for d in self.dropped]
        return "\n".join(lines)


def drive(inst: Instance, routes: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Times along ``routes`` (job indices per crew): arrival, start, departure per job (nan when unassigned) and
    end arrival per crew. Precedences across crews are resolved by repeating until nothing moves."""
    J = inst.n_jobs
    arrival, start, depart = (np.full(J, np.nan) for _ in range(3))
    end = np.array(inst.shift_open, dtype=float)
    preds = [[inst.problem.job_index[p] for p in j.after] for j in inst.problem.jobs]
    for _ in range(J + 1):
        changed = False
        for k, route in enumerate(routes):
            t, loc = inst.shift_open[k], inst.start_node(k)
            for i in route:
                arr = t + inst.travel[loc, i]
                begin = max(arr, inst.ready[i])
                for p in preds[i]:
                    if not np.isnan(depart[p]):
                        begin = max(begin, depart[p])
                if start[i] != begin:  # nan != x, so a first visit counts as a change
                    changed = True
                arrival[i], start[i], depart[i] = arr, begin, begin + inst.service[i]
                t, loc = depart[i], i
            end[k] = t + inst.travel[loc, inst.end_node(k)]
        if not changed:
            break
    return arrival, start, depart, end


def build_plan(inst: Instance, routes: list[list[int]], solver: str, solve_seconds: float = 0.0,
               status: str = "", notes: tuple[str, ...] = ()) -> Plan:
    """Drive ``routes`` (job indices per crew, in crew order) and assemble the :class:`Plan`, with reasons for
    every job left out and an explanation for every assignment."""
    prob, now = inst.problem, inst.problem.now
    arrival, start, depart, end = drive(inst, routes)

    def at(seconds: float) -> datetime:
        return now + timedelta(seconds=float(seconds))

    routes_out: dict[str, Route] = {}
    assignments: dict[str, Assignment] = {}
    total_travel = 0.0
    for k, route in enumerate(routes):
        crew = prob.crews[k]
        stops = []
        loc = inst.start_node(k)
        prev_done = inst.shift_open[k]
        for pos, i in enumerate(route, 1):
            drive_min = inst.travel[loc, i] / 60.0
            stops.append(Stop(prob.jobs[i].id, at(arrival[i]), at(start[i]), at(depart[i]), drive_min,
                              (start[i] - arrival[i]) / 60.0))
            total_travel += drive_min
            assignments[prob.jobs[i].id] = Assignment(
                prob.jobs[i].id, crew.id, at(arrival[i]), at(start[i]), at(depart[i]), pos,
                _explain(inst, k, i, pos, len(route), loc, prev_done, arrival[i]))
            loc, prev_done = i, depart[i]
        back = inst.travel[loc, inst.end_node(k)] / 60.0 if route else 0.0
        total_travel += back
        routes_out[crew.id] = Route(crew.id, tuple(stops), at(end[k] if route else inst.shift_open[k]), back
                                    + sum(s.travel_minutes for s in stops))

    assigned = {i for r in routes for i in r}
    dropped = tuple(Dropped(prob.jobs[i].id, drop_reason(inst, i, assigned))
                    for i in sorted(set(range(inst.n_jobs)) - assigned, key=lambda i: -inst.weight[i]))
    wcm = sum(prob.jobs[i].weight * depart[i] / 60.0 for i in assigned)
    p1 = [arrival[i] / 60.0 for i in assigned if prob.jobs[i].priority == 1]
    return Plan(now=now, routes=routes_out, assignments=assignments, dropped=dropped,
                weighted_customer_minutes=float(wcm), travel_minutes=float(total_travel),
                worst_p1_minutes=float(max(p1)) if p1 else None,
                dropped_weight=float(sum(prob.jobs[i].weight for i in range(inst.n_jobs) if i not in assigned)),
                solver=solver, solve_seconds=solve_seconds,
                status=status, notes=notes, _violations=tuple(_check(inst, routes, arrival, start, depart, end)))


def routes_by_index(inst: Instance, job_routes: dict[str, list[str]]) -> list[list[int]]:
    """Crew id -> job ids (a plan's :meth:`Plan.job_routes`) as job-index lists in crew order; unknown crews
    and jobs (completed, cancelled) are skipped."""
    prob = inst.problem
    out: list[list[int]] = [[] for _ in prob.crews]
    for crew_id, ids in job_routes.items():
        k = prob.crew_index.get(crew_id)
        if k is not None:
            out[k] = [prob.job_index[j] for j in ids if j in prob.job_index]
    return out


def drop_reason(inst: Instance, i: int, assigned: set[int]) -> str:
    """Why job ``i`` is not in the plan, from the most to the least fundamental cause."""
    prob = inst.problem
    job = prob.jobs[i]
    missing = [p for p in job.after if prob.job_index[p] not in assigned]
    if not inst.capable[i].any():
        return f"no crew has skills {sorted(job.skills)}"
    if not (inst.capable[i] & inst.on_duty).any():
        return f"no crew with skills {sorted(job.skills)} is on shift"
    if inst.due[i] < 0:
        return "its time window closed before now"
    if inst.ready[i] > inst.due[i]:
        return "its time window opens after every shift ends"
    ks = np.flatnonzero(inst.assignable[i])
    earliest = inst.shift_open[ks] + inst.travel[inst.n_jobs + ks, i]
    if (np.maximum(earliest, inst.ready[i]) > inst.due[i] + _EPS).all():
        return "no capable crew can get there before its window closes"
    begin = np.maximum(earliest, inst.ready[i])
    back = inst.travel[i, inst.n_jobs + inst.n_crews + ks]
    if (begin + inst.service[i] + back > inst.shift_close[ks] + _EPS).all():
        return "the job does not fit in any capable crew's remaining shift"
    if missing:
        return f"it must follow {', '.join(missing)}, which could not be scheduled"
    lighter = [j for j in assigned if inst.weight[j] < inst.weight[i] and inst.capable[j, ks].any()]
    if lighter and not any(inst.service[j] >= inst.service[i] for j in lighter):
        # The model leaves out as few jobs as it can, then the lightest: one long job does not push out several.
        return (f"all {len(ks)} capable crews' shifts are full; its {inst.service[i] / 60:.0f} min of work would "
                f"take the place of more than one of the {len(lighter)} lighter, shorter jobs planned, and the plan "
                f"leaves out as few jobs as it can")
    if lighter:
        return (f"all {len(ks)} capable crews' shifts are full; {len(lighter)} lighter jobs are planned instead "
                f"(the search did not swap them in within its time limit)")
    return (f"all {len(ks)} capable crews' shifts are full of higher-weight work "
            f"(weight {job.weight:g} is lower than what they do)")


def _explain(inst: Instance, k: int, i: int, pos: int, n: int, prev: int, prev_done: float,
             arrival: float) -> str:
    prob = inst.problem
    crew, job = prob.crews[k], prob.jobs[i]
    where = "its start" if prev == inst.start_node(k) else prob.jobs[prev].id
    parts = [f"crew {crew.id} ({crew.kind}, {crew.size} people), stop {pos} of {n}: arrives "
             f"{(prob.now + timedelta(seconds=float(arrival))):%H:%M}Z, {inst.travel[prev, i] / 60:.0f} min "
             f"drive from {where}"]
    tags = [f"P{job.priority}", f"weight {job.weight:g}"]
    if job.customers:
        tags.append(f"{job.customers} customers out")
    if job.hazard:
        tags.append("hazard: make safe first")
    if k in inst.locked and inst.locked[k] == i:
        tags.append("crew already on site")
    parts.append(", ".join(tags))
    ks = np.flatnonzero(inst.assignable[i])
    direct = inst.travel[inst.n_jobs + ks, i]
    nearest = int(ks[np.argmin(direct)])
    if nearest == k:
        parts.append(f"nearest of {len(ks)} capable crews")
    else:
        parts.append(f"nearer crew {prob.crews[nearest].id} ({direct.min() / 60:.0f} min from its position) "
                     f"is committed to other work; this crew is free at "
                     f"{(prob.now + timedelta(seconds=float(prev_done))):%H:%M}Z")
    return "; ".join(parts)


def _check(inst: Instance, routes: list[list[int]], arrival: np.ndarray, start: np.ndarray,
           depart: np.ndarray, end: np.ndarray) -> list[str]:
    prob = inst.problem
    out: list[str] = []
    seen: dict[int, str] = {}
    for k, route in enumerate(routes):
        crew = prob.crews[k]
        if route and not inst.on_duty[k]:
            out.append(f"crew {crew.id}: is off shift but has {len(route)} jobs")
        if k in inst.locked and (not route or route[0] != inst.locked[k]):
            out.append(f"crew {crew.id}: on-site job {prob.jobs[inst.locked[k]].id} is not its first stop")
        for i in route:
            job = prob.jobs[i]
            if i in seen:
                out.append(f"job {job.id}: on two routes ({seen[i]}, {crew.id})")
            seen[i] = crew.id
            if not inst.capable[i, k]:
                out.append(f"job {job.id}: crew {crew.id} lacks skills {sorted(job.skills - crew.skills)}")
            if start[i] > inst.due[i] + _EPS:
                out.append(f"job {job.id}: starts {start[i] / 60:.1f} min from now, after its window closes")
        if route and end[k] > inst.shift_close[k] + _EPS:
            out.append(f"crew {crew.id}: ends {end[k] / 60:.1f} min from now, after its shift")
    for i, job in enumerate(prob.jobs):
        for p in job.after:
            pi = prob.job_index[p]
            if i in seen and (pi not in seen or start[i] + _EPS < depart[pi]):
                out.append(f"job {job.id}: starts before {p} is finished")
    for k, i in inst.locked.items():
        if seen.get(i) not in (None, prob.crews[k].id):
            out.append(f"job {prob.jobs[i].id}: locked to crew {prob.crews[k].id} but moved")
    return out
