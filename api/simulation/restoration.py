"""Restoration in simulated time: a storm's faults, from fault to restoration, and the ETRs members see meanwhile.

A discrete-event simulation over one storm of :func:`outage.simulate.generate_storm` (its ground truth):

* **Events are the true faults** (not the engine's predictions): ETR accuracy is measured apart from detection
  accuracy (which ``bench/outage.py`` measures), and a 3-day storm stays tractable. A fault is known at its first
  call or last gasp; one that sent nothing (nested below another fault, or no meter and no caller) is found when
  the fault above it is repaired and its customers stay dark, else by patrol 2 h after it started. A known event
  becomes plannable after a confirmation delay (the engine's prediction settling, a dispatcher confirming).
* **Crews** start at a depot, more (mutual aid) arrive after ``aid_after``. The dispatch plan (``dispatch``'s greedy
  baseline) is recomputed whenever a job becomes plannable, a crew comes free, aid arrives, and every ``tick``; a
  free crew drives to the first stop of its route. Travel is the road graph where the territory has roads
  (:mod:`gis.roads`), else straight line x circuity; the truth is that time x a storm-debris factor.
* **Repair** times come from this module's own heavy-tailed distributions (lognormal by device kind and cause, plus
  a rare broken pole and, for trees, a wait for a tree crew). The ETR model never reads them: it learns from the
  events this simulation restores (and from whatever history it was given).
* **Partial restoration**: on arrival the crew assesses (and finds the cause); when the damage sits in one
  branch below the device that operated, it isolates that branch and closes the device, restoring everyone else,
  and repairs the branch afterwards.

Customers' state is a per-service-point count of the active fault zones covering it; every change is a
:class:`Step` (interrupted or restored service points), so CMI comes out exactly from the steps.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from dispatch import Crew, Job, MatrixTravel, Problem, StraightLine, solve_greedy
from outage import etr as etr_today
from outage.etr import Etr
from outage.etr_issue import learn_outcome, plan_stage, propose, storm_wait
from outage.etr_model import EtrModel
from outage.etr_policy import Ledger
from outage.grid import Grid
from outage.storm import STORM_START, Storm

#: the simulator's truth: median repair minutes per kind (crew arrival to restoration), cause factors, spread
TRUE_MEDIAN = {"service": 55.0, "transformer": 140.0, "fuse": 70.0, "sectionalizer": 95.0, "recloser": 120.0,
               "breaker": 170.0, "substation": 330.0, "switch": 90.0, "regulator": 150.0}
TRUE_CAUSE = {"tree": 1.35, "storm": 1.15, "equipment": 1.0, "lightning": 0.85, "vehicle": 1.8}
CAUSES_WIRES_DOWN = (("tree", 0.55), ("storm", 0.3), ("vehicle", 0.15))
CAUSES_OTHER = (("tree", 0.35), ("storm", 0.25), ("equipment", 0.2), ("lightning", 0.15), ("vehicle", 0.05))
TRUE_SIGMA = 0.5
BROKEN_POLE = 0.07  # chance of a long job (pole replacement): + lognormal, median 240 min
TREE_WAIT = 0.15  # trees: chance the line crew waits for a tree crew: + lognormal, median 90 min
PARTIAL = 0.5  # chance the damage of a multi-branch device fault sits in one branch (isolate and restore rest)
STAGES = ("storm", "queued", "assigned", "on_site")


@dataclass(frozen=True)
class RestorationConfig:
    crews: int = 4
    aid_crews: int = 0
    aid_after: timedelta = timedelta(hours=8)
    tick: timedelta = timedelta(minutes=30)
    confirm_median_min: float = 20.0
    speed_kph: float = 40.0  # no roads: straight line x circuity at this speed
    circuity: float = 1.3
    horizon: timedelta = timedelta(days=10)  # a storm not over by then is a bug


@dataclass(frozen=True, slots=True)
class Step:
    """Service points interrupted (``restored=False``) or restored at ``time`` because of fault ``key``."""

    time: datetime
    key: str
    sps: tuple[int, ...]
    restored: bool
    partial: bool = False


@dataclass(frozen=True, slots=True)
class Leg:
    """A crew's activity: ``travel`` from ``origin`` to ``dest`` or ``work`` at ``dest`` (location indices)."""

    crew: str
    activity: str
    start: datetime
    end: datetime
    origin: int
    dest: int
    key: str


@dataclass
class Issue:
    """An event's stage entry: the model's estimate, what was published after it, and today's published ETR."""

    time: datetime
    stage: str
    wait_minutes: float
    proposed: Etr
    published: Etr
    today: Etr | None


@dataclass
class EventRecord:
    key: str
    kind: str
    cause: str  # the truth, hidden until the crew reports it
    zone: np.ndarray  # service points the device cuts off
    damaged: np.ndarray  # the part still out once the crew has isolated the damage
    location: int
    start: datetime
    known: datetime | None = None
    plannable: datetime | None = None
    dispatched: datetime | None = None
    arrived: datetime | None = None
    reported: datetime | None = None  # cause reported (the on-site stage)
    restored: datetime | None = None
    isolated: datetime | None = None  # the undamaged part closed back in (partial restoration)
    stage: str = ""
    new_fact: bool = False  # a fact since the last estimate (the cause reported, part restored)
    issues: list[Issue] = field(default_factory=list)
    published: list[tuple[datetime, Etr]] = field(default_factory=list)  # every range published, in order
    today: list[tuple[datetime, Etr]] = field(default_factory=list)  # today's ETR (outage.etr) as published
    crew: str | None = None

    @property
    def out_zone(self) -> np.ndarray:
        """The service points this fault still keeps out (all of its zone until the damage is isolated)."""
        return self.damaged if self.isolated is not None else self.zone


@dataclass
class RestorationResult:
    events: dict[str, EventRecord]
    steps: list[Step]
    legs: list[Leg]
    first_report: dict[int, datetime]  # member (service point) -> first report
    sp_customers: list[int]
    end: datetime

    def customer_minutes(self) -> float:
        """CMI from the steps: each service point's customers x minutes between interruption and restoration."""
        since: dict[int, datetime] = {}
        total = 0.0
        for s in self.steps:
            for k in s.sps:
                if not s.restored:
                    since[k] = s.time
                else:
                    total += self.sp_customers[k] * (s.time - since.pop(k)).total_seconds() / 60.0
        return total


def _draw_cause(rng: np.random.Generator, wires_down: bool) -> str:
    causes, w = zip(*(CAUSES_WIRES_DOWN if wires_down else CAUSES_OTHER), strict=True)
    return str(causes[int(rng.choice(len(causes), p=np.array(w) / sum(w)))])


def _draw_repair(rng: np.random.Generator, kind: str, cause: str) -> float:
    m = TRUE_MEDIAN.get(kind, 120.0) * TRUE_CAUSE.get(cause, 1.0)
    minutes = float(rng.lognormal(math.log(m), TRUE_SIGMA))
    if rng.random() < BROKEN_POLE:
        minutes += float(rng.lognormal(math.log(240.0), 0.4))
    if cause == "tree" and rng.random() < TREE_WAIT:
        minutes += float(rng.lognormal(math.log(90.0), 0.6))
    return minutes


class Restoration:
    """One storm's restoration (see the module docstring); :meth:`run` returns a :class:`RestorationResult`."""

    def __init__(self, grid: Grid, storm: Storm, config: RestorationConfig, model: EtrModel, seed: int,
                 depots: list[tuple[float, float]] | None = None, road=None) -> None:
        self.g, self.storm, self.cfg, self.model = grid, storm, config, model
        self.rng = np.random.default_rng(seed)
        g = grid
        self.cover = np.zeros(len(g.sp_ids), dtype=np.int64)
        self.steps: list[Step] = []
        self.legs: list[Leg] = []
        self.events: dict[str, EventRecord] = {}
        self.ledger = Ledger()  # the no-churn rule's memory, as the live engine keeps it
        depots = depots or [tuple(np.nanmean(g.sp_xy, axis=0))]
        points: list[tuple[float, float]] = [tuple(map(float, d)) for d in depots]
        for f in storm.faults:
            if f.key.startswith("sp:"):
                zone = np.array([g.sp_index[f.key[3:]]])
            else:
                zone = g.sps_of(g.device_index[f.key])
            damaged = zone
            if f.kind not in ("service", "transformer") and not f.key.startswith("sp:"):
                d = g.device_index[f.key]
                kids = [c for c in range(g.n_devices) if g.parent[c] == d and g.hi[c] > g.lo[c]]
                if kids and self.rng.random() < PARTIAL:
                    damaged = g.sps_of(kids[int(self.rng.integers(len(kids)))])
            xy = g.sp_xy[zone]
            points.append(tuple(map(float, xy.mean(axis=0))))
            self.events[f.key] = EventRecord(f.key, f.kind, _draw_cause(self.rng, f.wires_down), zone, damaged,
                                             len(points) - 1, f.start)
        self.points = points
        pts = np.array(points)
        seconds = (road.travel_time_matrix(pts, pts) if road is not None
                   else StraightLine(config.speed_kph, config.circuity)(pts, pts))
        self.travel = MatrixTravel(points, seconds)
        self.seconds = np.asarray(seconds, float)
        self.repair = {k: _draw_repair(self.rng, e.kind, e.cause) for k, e in self.events.items()}
        self.assess = {k: float(self.rng.lognormal(math.log(12.0), 0.4)) for k in self.events}
        self.crews: dict[str, dict] = {}
        self.queue: list[tuple[datetime, int, str, object]] = []
        self._seq = 0
        self._wire = {f.key: f.wires_down for f in storm.faults}
        self._from: dict[str, int] = {}  # event -> where its crew drove from
        self.first_report: dict[int, datetime] = {}
        for r in storm.reports:
            k = g.sp_index.get(r.sp_id) if r.sp_id else None
            if k is not None and k in storm.cause and (k not in self.first_report or r.time < self.first_report[k]):
                self.first_report[k] = r.time
        for i in range(config.crews):
            self._add_crew(f"C{i + 1}", i % len(depots), STORM_START)

    # ------------------------------------------------------------------------------------------------ plumbing
    def _at(self, t: datetime, what: str, payload: object = None) -> None:
        self._seq += 1
        heapq.heappush(self.queue, (t, self._seq, what, payload))

    def _add_crew(self, cid: str, loc: int, t: datetime) -> None:
        self.crews[cid] = {"loc": loc, "free_at": t, "job": None}

    def _apply(self, t: datetime, key: str, delta: np.ndarray, sign: int, partial: bool = False) -> None:
        """Add (``sign`` 1) or remove (-1) zone ``delta`` of fault ``key``; record who went out or came back."""
        before = self.cover[delta]
        self.cover[delta] += sign
        if sign > 0:
            changed = delta[before == 0]
        else:
            changed = delta[before == 1]
        if len(changed):
            self.steps.append(Step(t, key, tuple(int(k) for k in changed), sign < 0, partial))
        if sign < 0:  # customers still dark behind a fault nobody knew of: it is found now
            for ev in self.events.values():
                if ev.known is None and ev.start <= t and (self.cover[ev.zone] == 1).any():
                    self._at(t + timedelta(minutes=10), "known", ev.key)

    # ------------------------------------------------------------------------------------------------ the run
    def run(self) -> RestorationResult:
        cfg = self.cfg
        for ev in self.events.values():
            self._at(ev.start, "fault", ev.key)
            first = self.storm.first_message.get(ev.key)
            if first is not None:
                self._at(first, "known", ev.key)
            else:
                self._at(ev.start + timedelta(hours=2), "patrol", ev.key)
        for i in range(cfg.aid_crews):
            self._at(STORM_START + cfg.aid_after, "aid", f"A{i + 1}")
        self._at(STORM_START + cfg.tick, "tick")
        end = STORM_START + cfg.horizon
        t = STORM_START
        while self.queue:
            t, _, what, payload = heapq.heappop(self.queue)
            if t > end:
                raise RuntimeError(f"restoration: storm not over after {cfg.horizon}")
            if what == "tick":
                if any(e.restored is None for e in self.events.values()):
                    self._at(t + cfg.tick, "tick")
                    self._plan(t)
                continue
            getattr(self, f"_on_{what}")(t, payload)
        return RestorationResult(self.events, self.steps, self.legs, self.first_report, self.g.sp_customers, t)

    def _on_fault(self, t: datetime, key: str) -> None:
        self._apply(t, key, self.events[key].zone, +1)

    def _on_patrol(self, t: datetime, key: str) -> None:
        self._on_known(t, key)

    def _on_known(self, t: datetime, key: str) -> None:
        ev = self.events[key]
        if ev.known is not None:
            return
        ev.known = t
        delay = float(self.rng.lognormal(math.log(self.cfg.confirm_median_min), 0.5))
        self._at(t + timedelta(minutes=delay), "plannable", key)
        self._stage(t, ev, "storm", self._storm_wait(t))

    def _on_plannable(self, t: datetime, key: str) -> None:
        self.events[key].plannable = t
        self._plan(t)

    def _on_aid(self, t: datetime, cid: str) -> None:
        self._add_crew(cid, 0, t)
        self._plan(t)

    def _on_arrive(self, t: datetime, key: str) -> None:
        ev = self.events[key]
        ev.arrived = t
        self.legs.append(Leg(ev.crew, "travel", ev.dispatched, t, self._from[key], ev.location, key))
        self._at(t + timedelta(minutes=self.assess[key]), "assessed", key)

    def _on_assessed(self, t: datetime, key: str) -> None:
        ev = self.events[key]
        ev.reported = t
        ev.new_fact = True
        self._stage(t, ev, "on_site", 0.0)
        done = ev.arrived + timedelta(minutes=max(self.repair[key], self.assess[key]))
        if len(ev.damaged) < len(ev.zone):  # isolate the damaged branch, close the device: the rest comes back
            switch = t + timedelta(minutes=float(10 + 15 * self.rng.random()))
            if switch < done:
                self._at(switch, "isolated", key)
        self._at(done, "repaired", key)

    def _on_isolated(self, t: datetime, key: str) -> None:
        ev = self.events[key]
        rest = np.setdiff1d(ev.zone, ev.damaged)
        ev.isolated = t
        ev.new_fact = True
        self._apply(t, key, rest, -1, partial=True)

    def _on_repaired(self, t: datetime, key: str) -> None:
        ev = self.events[key]
        ev.restored = t
        self._apply(t, key, ev.out_zone, -1)
        crew = self.crews[ev.crew]
        self.legs.append(Leg(ev.crew, "work", ev.arrived, t, ev.location, ev.location, key))
        crew.update(loc=ev.location, free_at=t, job=None)
        self._learn(ev)
        self._plan(t)

    def _learn(self, ev: EventRecord) -> None:
        """What the utility's own records show once the event is restored (never the simulator's tables), learned
        by the code the live service learns with."""
        entries: dict[str, tuple[datetime, float]] = {}
        for issue in ev.issues:
            entries.setdefault(issue.stage, (issue.time, issue.wait_minutes))
        learn_outcome(self.model, ev.kind, ev.cause, ev.arrived, ev.restored, entries)

    # ------------------------------------------------------------------------------------------------ ETRs
    # The staging is the live service's (outage.etr_issue, api.service.etr): the same wait, the same offer, the
    # same no-churn ledger; only the events (true faults) and the clock are simulated.
    def _storm_wait(self, t: datetime) -> float:
        """Backlog crew-minutes per crew on shift: expected work of every open event not yet finished."""
        work = [(e.kind, e.cause if e.reported else "",
                 None if e.arrived is None else (t - e.arrived).total_seconds() / 60.0)
                for e in self.events.values() if e.known is not None and e.restored is None]
        crews = sum(1 for c in self.crews.values() if c["free_at"] <= t or c["job"] is not None)
        return storm_wait(self.model, work, crews)

    def _stage(self, t: datetime, ev: EventRecord, stage: str, wait: float, today: Etr | None = None) -> None:
        """Propose the ETR at ``stage`` as the service does; entering a stage is an :class:`Issue` (what the
        bench scores: the model's own estimate then, and what members saw after the no-churn rule)."""
        entering = stage != ev.stage
        ev.stage = stage
        elapsed = (t - ev.arrived).total_seconds() / 60.0 if ev.arrived is not None else 0.0
        cause = ev.cause if stage == "on_site" else ""
        current, fact = self.ledger.published(ev.key), ev.new_fact
        got = propose(self.model, t, stage, ev.kind, current=current, wait=wait, cause=cause, elapsed=elapsed,
                      news=lambda etr, holds: self.ledger.news(ev.key, etr, t, current=current, holds=holds,
                                                               fact=fact))
        if got is not None:
            ev.new_fact = False
            new = self.ledger.apply(ev.key, got[0], t, current=current, holds=got[1], fact=fact)
            if new is not None:
                ev.published.append((t, new))
        if entering:
            proposed = self.model.estimate(t, stage, ev.kind, wait_minutes=max(wait, 0.0), cause=cause,
                                           elapsed=elapsed)
            ev.issues.append(Issue(t, stage, wait, proposed, self.ledger.published(ev.key),
                                   today or self._today(ev)))

    def _today(self, ev: EventRecord) -> Etr | None:
        return ev.today[-1][1] if ev.today else None

    def _today_update(self, t: datetime, ev: EventRecord, eta_minutes: float) -> Etr:
        """Today's behaviour (api.service.replan): every planned job's ETA + the table's repair, cause unknown
        until the crew reports it, through :func:`outage.etr.update`."""
        cause = ev.cause if ev.reported else ""
        proposed = etr_today.assigned_etr(t, eta_minutes, ev.kind, cause if cause in etr_today.CAUSE_FACTOR
                                          else "")
        new = etr_today.update(self._today(ev), proposed, t)
        if new is not self._today(ev):
            ev.today.append((t, new))
        return new

    # ------------------------------------------------------------------------------------------------ dispatch
    def _plan(self, t: datetime) -> None:
        crews, jobs = [], []
        far = t + self.cfg.horizon
        for cid, c in self.crews.items():
            free_at, loc = c["free_at"], c["loc"]
            if c["job"] is not None:  # busy: free at its job once the work is expected done
                ev = self.events[c["job"]]
                loc = ev.location
                elapsed = (t - ev.arrived).total_seconds() / 60.0 if ev.arrived else 0.0
                left = float(np.mean(self.model.repair_samples(ev.kind, ev.cause if ev.reported else "",
                                                               elapsed)))
                eta = ev.arrived or t + timedelta(minutes=self._drive(c["loc"], loc))
                free_at = max(t, eta) + timedelta(minutes=left)
            crews.append(Crew(cid, frozenset(), self.points[loc], max(free_at, t), far))
        waiting = [e for e in self.events.values() if e.plannable and e.dispatched is None]
        for e in waiting:
            wires = self._wire.get(e.key, False)
            cust = sum(self.g.sp_customers[k] for k in e.out_zone.tolist())
            jobs.append(Job(e.key.replace(":", "_"), self.points[e.location], self.model.expected_repair(e.kind),
                            weight=max(cust, 1) * (10.0 if wires else 1.0), priority=1 if wires else 3,
                            customers=cust, hazard=wires))
        if jobs:
            plan = solve_greedy(Problem(tuple(crews), tuple(jobs), t), self.travel)
            by_id = {e.key.replace(":", "_"): e for e in waiting}
            for cid, route in plan.routes.items():
                c = self.crews[cid]
                for pos, stop in enumerate(route.stops):
                    ev = by_id[stop.job_id]
                    wait = (stop.arrival - t).total_seconds() / 60.0
                    if pos == 0 and c["job"] is None and c["free_at"] <= t:
                        self._dispatch(t, cid, ev)
                    else:  # behind other stops or the crew's current job: queued, as the service says
                        stage = plan_stage(pos, False, c["job"] is not None or c["free_at"] > t)
                        self._stage(t, ev, stage, wait, self._today_update(t, ev, wait))
        storm = None
        for ev in self.events.values():
            if ev.known is None or ev.restored is not None or ev.dispatched is not None:
                if ev.arrived is not None and ev.reported is not None and ev.restored is None:
                    self._stage(t, ev, "on_site", 0.0)
                continue
            if not ev.plannable or ev.stage == "storm":
                storm = self._storm_wait(t) if storm is None else storm
                self._stage(t, ev, "storm", storm)

    def _drive(self, a: int, b: int) -> float:
        return float(self.seconds[a, b]) / 60.0

    def _dispatch(self, t: datetime, cid: str, ev: EventRecord) -> None:
        c = self.crews[cid]
        plan_min = self._drive(c["loc"], ev.location)
        true_min = plan_min * float(self.rng.lognormal(0.05, 0.2)) + 2.0  # debris, getting out of the truck
        ev.dispatched, ev.crew = t, cid
        c["job"] = ev.key
        self._from[ev.key] = c["loc"]
        self._stage(t, ev, "assigned", plan_min, self._today_update(t, ev, plan_min))
        self._at(t + timedelta(minutes=true_min), "arrive", ev.key)


def simulate_restoration(grid: Grid, storm: Storm, config: RestorationConfig, model: EtrModel, seed: int,
                         depots=None, road=None) -> RestorationResult:
    """Run one storm's restoration; ``model`` learns from it as events restore."""
    return Restoration(grid, storm, config, model, seed, depots, road).run()
