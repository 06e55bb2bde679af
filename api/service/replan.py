"""From open events to a crew plan: jobs, crews, the optimizer, and applying (or proposing) its answer.

Events become :class:`dispatch.model.Job` s — repair minutes from the device kind and cause
(:func:`outage.etr.repair_minutes`), required skills from device kind, cause and hazard, weight from the engine's
priority — and crews come from the database with their positions, shifts and current work. A dispatcher's decisions
are never undone: a locked or manual assignment pins its crew to that event (the crew's ``current_job``) and the
optimizer plans everything else around it. In ``auto`` mode the plan replaces only unlocked, not yet started
assignments; in ``propose`` mode it is stored for a dispatcher to accept. Each assignment's ETA becomes the event's
learned ETR at its stage (queued, assigned, on site), and every open event without a crew's ETA gets the storm
stage's (:mod:`api.service.etr`; through the engine's no-churn rule, journaled like any other action).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select

from api.errors import ApiError
from api.service.messages import assignment_message
from api.store.models import ACTIVE_ASSIGNMENT, Assignment, Crew, Event, Plan
from outage.etr_issue import plan_stage

log = logging.getLogger("oms.replan")
#: Required skills per device kind; tree trouble adds ``tree``. Crews' skills use the same words.
SKILLS_BY_KIND = {"service": {"service"}, "transformer": {"line"}, "fuse": {"line"}, "sectionalizer": {"line"},
                  "recloser": {"line"}, "switch": {"line"}, "regulator": {"line"}, "breaker": {"line"},
                  "substation": {"substation"}}
DEFAULT_SHIFT = timedelta(hours=12)


def job_skills(device_kind: str | None, cause: str | None, hazards: list[str]) -> set[str]:
    skills = set(SKILLS_BY_KIND.get(device_kind or "service", {"line"}))
    if cause == "tree" or "tree_on_line" in hazards:
        skills.add("tree")
    if "wires_down" in hazards:
        skills.add("line")
    return skills


def service_minutes(device_kind: str | None, cause: str | None) -> float:
    from outage.etr import repair_minutes

    try:
        low, high = repair_minutes(device_kind or "service", cause or "")
    except KeyError:
        low, high = repair_minutes("service", cause or "")
    return (low + high) / 2.0


def event_job(ev, skills_known: set[str]):
    """The dispatch job for an open event, or why it cannot be planned (a sentence). ``ev`` has the ``events``
    columns a job needs: id, lat, lon, device_kind, device_id, sp_id, cause, hazards, weight, tier, customers_out.
    The service and the storm dispatch benchmark both make their jobs here."""
    from dispatch.model import Job

    if ev.lat is None or ev.lon is None:
        return "no location"
    skills = job_skills(ev.device_kind, ev.cause, ev.hazards or [])
    missing = skills - skills_known
    if missing:
        return f"no crew has skill {', '.join(sorted(missing))}"
    return Job(id=ev.id, location=(ev.lon, ev.lat), service_minutes=service_minutes(ev.device_kind, ev.cause),
               skills=frozenset(skills), weight=max(ev.weight, 1e-3), priority=min(max(ev.tier, 1), 4),
               customers=ev.customers_out, hazard=bool(ev.hazards), label=ev.device_id or ev.sp_id or ev.id)


class PlanHost(Protocol):
    """What the re-planner needs of the service that owns it (:class:`api.service.live.LiveEngine`): the territory,
    the outage engine, the database and the stream, and the one way actions reach the engine (journaled)."""

    settings: Any
    network: Any
    directory: Any
    engine: Any
    db: Any
    broker: Any
    plan_mode: str
    etr: Any  # api.service.etr.LiveEtr: the learned model and the ETR actions it proposes
    _lock: Any

    def clock(self) -> datetime: ...

    def publish(self, messages: list[tuple[str, dict]]) -> None: ...

    def act_many(self, actions: list[dict[str, Any]], *, session_work=None, replan: bool = True,
                 skip_invalid: bool = False) -> list[tuple[str, dict]]: ...


class Replanner:
    def __init__(self, live: PlanHost) -> None:
        self.live = live
        self.travel = _travel_source(live.network)
        self.last: dict[str, Any] = {}
        self.previous = None  # the last plan: warm start for the next
        self._executor: ProcessPoolExecutor | None = None
        self._decide = threading.Lock()  # one decision on a proposed plan at a time: accept or reject, not both

    # -------------------------------------------------------------------------------------------------- build
    def build(self, session, now: datetime):
        """The dispatch problem now, plus what was left out and why."""
        from dispatch.model import Crew as DCrew
        from dispatch.model import Job, Problem

        crews = [c for c in session.scalars(select(Crew).where(Crew.status != "off_shift"))
                 if (c.shift_end or now + DEFAULT_SHIFT) > now]
        if not crews:  # nobody to plan for: skip reading (and explaining) every open event
            return None, {}, {}
        t = Event.__table__  # the columns a job needs, not whole rows (evidence JSON): storms have thousands
        events = session.execute(select(t.c.id, t.c.lat, t.c.lon, t.c.device_kind, t.c.device_id, t.c.sp_id,
                                        t.c.cause, t.c.hazards, t.c.weight, t.c.tier, t.c.customers_out)
                                 .where(t.c.state.not_in(("restored", "cancelled")), t.c.merged_into.is_(None))).all()
        active = session.scalars(select(Assignment).where(Assignment.status.in_(ACTIVE_ASSIGNMENT))
                                 .order_by(Assignment.sequence, Assignment.id)).all()
        skills_known = set().union(*(set(c.skills or ()) for c in crews))
        excluded: dict[str, str] = {}
        jobs: dict[str, Job] = {}
        for ev in events:
            job = event_job(ev, skills_known)
            if isinstance(job, str):
                excluded[ev.id] = job
            else:
                jobs[ev.id] = job
        pinned: dict[str, Assignment] = {}  # crew -> its current (started or dispatcher-fixed) assignment
        kept: list[Assignment] = []  # further locked work: stays as the dispatcher set it
        for a in active:
            if a.event_id not in jobs:
                continue
            if a.status in ("en_route", "on_site") or a.locked or a.manual:
                if a.crew_id not in pinned and a.event_id not in {p.event_id for p in pinned.values()}:
                    pinned[a.crew_id] = a
                else:
                    kept.append(a)
        d_crews = []
        centre = _centre(self.live)
        for c in crews:
            start = (c.lon, c.lat) if c.lat is not None and c.lon is not None else self._depot(c.depot_id) or centre
            shift_start = min(c.shift_start or now, now)
            shift_end = c.shift_end or (now + DEFAULT_SHIFT)
            pin = pinned.get(c.id)
            status = "available"
            if pin is not None:
                status = "on_site" if pin.status == "on_site" else "en_route"
                if pin.status == "on_site" and pin.event_id in jobs:
                    jobs[pin.event_id] = _replace(jobs[pin.event_id], started_at=pin.updated_at)
            if pin is not None and not jobs[pin.event_id].skills <= set(c.skills or ()):
                jobs[pin.event_id] = _replace(jobs[pin.event_id], skills=frozenset())  # a dispatcher's call stands
            d_crews.append(DCrew(id=c.id, skills=frozenset(c.skills or ()), start=start, shift_start=shift_start,
                                 shift_end=shift_end, status=status,
                                 current_job=pin.event_id if pin is not None else None))
        for a in kept:
            jobs.pop(a.event_id, None)
            excluded[a.event_id] = f"locked to crew {a.crew_id} by a dispatcher"
        return Problem(crews=tuple(d_crews), jobs=tuple(jobs.values()), now=now), excluded, pinned

    def _depot(self, depot_id: str | None):
        net = self.live.network
        if not depot_id or net is None or len(net.depots) == 0:
            return None
        hit = net.depots[net.depots["depot_id"].astype(str) == depot_id]
        if hit.empty:
            return None
        g = hit.geometry.iloc[0]
        return (g.x, g.y)

    # -------------------------------------------------------------------------------------------------- run
    def run(self) -> int | None:
        """Plan now; apply (auto) or store (propose). Returns the plan id, or ``None`` with nothing to plan."""
        live = self.live
        now = live.clock()
        started = time.monotonic()
        with live.db.read() as session:
            problem, excluded, pinned = self.build(session, now)
        if problem is None or not problem.jobs:
            if not excluded:
                self.storm_etrs(now)
                self.last = {"jobs": 0, "excluded": {}, "seconds": time.monotonic() - started}
                return None  # nothing open, or no crew on shift: no plan to show
            # open events but nothing to plan: store that, with the reasons, so the dispatcher sees why
            solver, plan, rows = "none", None, []
        else:
            solver, plan = self._solve(problem)
            rows = _plan_rows(plan, problem)
        seconds = time.monotonic() - started
        detail = {"jobs": len(problem.jobs) if problem else 0, "crews": len(problem.crews) if problem else 0,
                  "excluded": excluded,
                  "dropped": _dropped(plan) if plan else {}, "seconds": round(seconds, 3), "mode": live.plan_mode,
                  "travel_minutes": round(plan.travel_minutes, 1) if plan else 0.0,
                  "worst_p1_minutes": plan.worst_p1_minutes if plan else None,
                  "explanations": {a.job_id: a.explanation for a in plan.assignments.values()} if plan else {},
                  "notes": list(plan.notes) if plan else []}
        self.last = detail
        status = "proposed" if live.plan_mode == "propose" else "applied"
        with live.db.write() as session, session.begin():
            for old in session.scalars(select(Plan).where(Plan.status == "proposed")):
                old.status = "superseded"
            p = Plan(created_at=now, status=status, solver=solver, objective=_objective(plan) if plan else None,
                     detail=detail)
            session.add(p)
            session.flush()
            plan_id = p.id
            if status == "proposed":
                for r in rows:
                    session.add(Assignment(event_id=r["event_id"], crew_id=r["crew_id"], plan_id=plan_id,
                                           status="proposed", sequence=r["sequence"], eta=r["eta"],
                                           created_at=now, updated_at=now))
        if status == "applied":
            self._apply(plan_id, rows, now)
        self.storm_etrs(now)
        live.broker.publish("plan", {"id": plan_id, "status": status, "solver": solver, **{
            k: v for k, v in detail.items() if k != "excluded"}})
        return plan_id

    def storm_etrs(self, now: datetime) -> None:
        """The ``storm`` stage: an ETR for every open event without a crew's ETA (not planned, dropped, or no crew
        on shift), from the backlog per crew on shift (:meth:`api.service.etr.LiveEtr.storm_actions`)."""
        live = self.live
        if live.engine is None or getattr(live, "etr", None) is None:
            return
        with live.db.read() as session:
            planned = set(session.scalars(select(Assignment.event_id).where(
                Assignment.status.in_(ACTIVE_ASSIGNMENT), Assignment.eta.is_not(None))))
            crews = sum(1 for c in session.scalars(select(Crew).where(Crew.status != "off_shift"))
                        if c.shift_end is None or c.shift_end > now)
        with live._lock:
            actions = live.etr.storm_actions(live.engine, now, planned, crews, "etr")
        if actions:
            live.act_many(actions, replan=False, skip_invalid=True)

    def _solve(self, problem):
        """OR-Tools in a worker process, warm-started from the previous plan; the greedy baseline if it fails.

        The routing search holds the interpreter lock for its whole time limit; in this process it would stall
        intake for seconds in the middle of a storm. So the travel-time matrix is computed here and the search
        runs in a separate process."""
        from dispatch.greedy import solve_greedy
        from dispatch.travel import MatrixTravel

        points = sorted({tuple(map(float, c.start)) for c in problem.crews}
                        | {tuple(map(float, c.end)) for c in problem.crews if c.end is not None}
                        | {tuple(map(float, j.location)) for j in problem.jobs})
        arr = np.asarray(points, dtype=float)
        travel = MatrixTravel(points, self.travel(arr, arr))
        s = self.live.settings
        try:
            if s.replan_deterministic:  # by solution count, in this thread: the plan never depends on the load
                plan = _solve_worker(problem, travel, s.replan_time_limit_s, self.previous, s.replan_solution_limit)
            else:
                plan = self._pool().submit(_solve_worker, problem, travel, s.replan_time_limit_s,
                                           self.previous).result(timeout=s.replan_time_limit_s * 20 + 60)
        except Exception:  # noqa: BLE001 - the greedy plan is the documented fallback
            log.exception("optimizer failed; falling back to greedy")
            self._shutdown_pool()
            plan = solve_greedy(problem, travel)
        self.previous = plan
        return plan.solver, plan

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    def _shutdown_pool(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        self._shutdown_pool()

    def accept(self, plan_id: int, actor: str) -> list[Assignment]:
        live = self.live
        now = live.clock()
        with self._decide:
            with live.db.read() as session:
                _proposed(session, plan_id, "accepted")
                rows = [{"event_id": a.event_id, "crew_id": a.crew_id, "sequence": a.sequence, "eta": a.eta}
                        for a in session.scalars(select(Assignment).where(Assignment.plan_id == plan_id,
                                                                          Assignment.status == "proposed"))]
            with live.db.write() as session, session.begin():
                session.get(Plan, plan_id).status = "applied"
                for a in session.scalars(select(Assignment).where(Assignment.plan_id == plan_id,
                                                                  Assignment.status == "proposed")):
                    a.status = "cancelled"  # replaced by the applied copies below (keeps one code path)
            return self._apply(plan_id, rows, now, actor=actor)

    def reject(self, plan_id: int, actor: str) -> dict[str, Any]:
        """Reject a proposed plan: its proposed assignments are cancelled, crews keep the work they hold, and the
        stream says so (the consoles drop the plan)."""
        live = self.live
        with self._decide:
            with live.db.write() as session, session.begin():
                plan = _proposed(session, plan_id, "rejected")
                plan.status = "rejected"
                plan.detail = {**(plan.detail or {}), "rejected_by": actor}
                for a in session.scalars(select(Assignment).where(Assignment.plan_id == plan_id,
                                                                  Assignment.status == "proposed")):
                    a.status, a.updated_at = "cancelled", live.clock()
            live.publish([("plan", {"id": plan_id, "status": "rejected", "by": actor})])
        return {"id": plan_id, "status": "rejected"}

    def _apply(self, plan_id: int, rows: list[dict], now: datetime, actor: str = "optimizer") -> list[Assignment]:
        """Make the plan's assignments current for unlocked work; set events dispatched and their ETRs."""
        live = self.live
        out: list[Assignment] = []
        messages = []
        with live.db.write() as session, session.begin():
            current = {(a.event_id): a for a in session.scalars(select(Assignment).where(
                Assignment.status.in_(ACTIVE_ASSIGNMENT)))}
            busy = {a.crew_id for a in current.values() if a.status in ("en_route", "on_site")}
            planned = {r["event_id"]: r["crew_id"] for r in rows}
            for eid, a in current.items():  # unlocked, unstarted work the plan moved elsewhere or dropped
                if not (a.locked or a.manual) and a.status == "assigned" and planned.get(eid) != a.crew_id:
                    a.status, a.updated_at = "cancelled", now
                    messages.append(("assignment", _msg(a)))
            for r in rows:
                a = current.get(r["event_id"])
                if a is not None and a.status != "cancelled":
                    if a.crew_id == r["crew_id"]:  # same crew: refresh sequence and ETA, keep everything else
                        a.sequence, a.eta, a.plan_id, a.updated_at = r["sequence"], r["eta"], plan_id, now
                        out.append(a)
                        messages.append(("assignment", _msg(a)))
                    continue  # locked/started elsewhere: the dispatcher's or crew's decision stands
                a = Assignment(event_id=r["event_id"], crew_id=r["crew_id"], plan_id=plan_id, status="assigned",
                               sequence=r["sequence"], eta=r["eta"], created_at=now, updated_at=now)
                session.add(a)
                out.append(a)
            session.flush()
            messages += [("assignment", _msg(a)) for a in out if a.id is not None]
        live.publish(messages)
        actions, cache = [], {}
        for a in out:
            if live.engine.event(a.event_id).state.value in ("unconfirmed", "probable", "confirmed"):
                actions.append({"action": "state", "event_id": a.event_id, "state": "dispatched", "actor": actor,
                                "verb": "dispatch a crew to"})
            if a.eta is not None and (e := _etr_action(live, a, now, actor, cache, busy)) is not None:
                actions.append(e)
        # one engine pass and one transaction for the whole plan; an event closed meanwhile is skipped
        live.act_many(actions, replan=False, skip_invalid=True)
        return out


def _proposed(session, plan_id: int, verb: str) -> Plan:
    """The plan, if it is still a proposal; else 404 (no such plan) or 409 (already decided or superseded)."""
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise ApiError(404, "not_found", f"no plan {plan_id}")
    if plan.status != "proposed":
        raise ApiError(409, "conflict", f"plan {plan_id} is {plan.status}; only a proposed plan can be {verb}")
    return plan


def _solve_worker(problem, travel, time_limit_s: float, previous, solution_limit: int | None = None):
    """Runs in the optimizer process (or inline, with ``solution_limit``: deterministic, by solution count)."""
    from dispatch.solver import SolveOptions, solve

    options = SolveOptions(time_limit_s=time_limit_s) if solution_limit is None else SolveOptions(
        time_limit_s=time_limit_s, deterministic=True, solution_limit=solution_limit)
    try:
        return solve(problem, travel, options, previous=previous)
    except Exception:  # noqa: BLE001 - a warm start from a stale plan must not cost the plan
        if previous is None:
            raise
        return solve(problem, travel, options)


def _replace(job, **changes):
    from dataclasses import replace

    return replace(job, **changes)


def _centre(live: PlanHost):
    d = live.directory
    if d is None or not d.sp_xy:
        return (0.0, 0.0)
    xs = [x for x, _ in d.sp_xy.values()]
    ys = [y for _, y in d.sp_xy.values()]
    return (sum(xs) / len(xs), sum(ys) / len(ys))


def _travel_source(network):
    from dispatch.travel import StraightLine

    if network is None or len(network.road_edges) == 0:
        return StraightLine()
    from gis.roads import RoadGraph

    graph = RoadGraph.from_tables(network.road_nodes, network.road_edges)
    return graph.travel_time_matrix


def _etr_action(live: PlanHost, a: Assignment, now: datetime, actor: str, cache: dict,
                busy: set[str] = frozenset()) -> dict | None:
    """The ETR a planned job gets from the service's learned model (:class:`api.service.etr.LiveEtr`) at its
    stage (:func:`outage.etr_issue.plan_stage`): ``on_site`` while its crew works there, ``assigned`` for a free
    crew's next stop (or a crew on its way), ``queued`` behind other stops or a job its crew (``busy``: crews on
    their way to or working at a job) is still on; None when it changes nothing members would see."""
    ev = live.engine.event(a.event_id)
    eta = max(0.0, (a.eta - now).total_seconds() / 60.0)
    en_route = a.status == "en_route"
    working = a.crew_id in busy and not en_route  # its crew is on its way to, or working at, another job
    stage = "on_site" if ev.state.value == "on_site" else plan_stage(a.sequence, en_route, working)
    return live.etr.action(live.engine, ev, now, stage, actor, wait=eta, cache=cache)


def _msg(a: Assignment) -> dict:
    return assignment_message(a)


def _plan_rows(plan, problem) -> list[dict]:
    """Per planned job: event, crew, position in the crew's route, ETA (tz-aware)."""
    return [{"event_id": stop.job_id, "crew_id": crew_id, "sequence": seq, "eta": stop.arrival}
            for crew_id, route in plan.routes.items() for seq, stop in enumerate(route.stops)]


def _dropped(plan) -> dict[str, str]:
    return {d.job_id: d.reason for d in plan.dropped}


def _objective(plan) -> float:
    return float(plan.weighted_customer_minutes)
