"""The demo's crews: each follows its plan through the crew API, on storm time.

:class:`CrewSimulator` is stepped by the demo's driver (:meth:`CrewSimulator.step`) with the storm clock's time;
it never reads the wall clock, so one seed gives the same crew story at any speed. At each step an idle crew asks
for its assignments and takes the first in route order; a travelling crew pings its interpolated position and
reports on site on arrival; a working crew reports restored, with a cause, when the repair time is up. Drive and
repair times are storm minutes (repair: the planner's own estimate for the device kind and cause, times a seeded
factor 0.6-1.4 per event). A 404/409 (the plan moved the job, or the event closed) sends the crew back to idle.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from api.store.models import ACTIVE_ASSIGNMENT

log = logging.getLogger("oms.demo")

#: Crew driving speed on the straight line between stops, km/h, and the detour factor of real roads.
DRIVE_KMH = 40.0
DETOUR = 1.3
#: Causes a crew may find when the engine had no clue; weighted like a wind storm's.
FOUND_CAUSES = (("tree", 5), ("storm", 3), ("equipment", 2), ("lightning", 1), ("vehicle", 1))


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def drive_minutes(a: tuple[float, float], b: tuple[float, float]) -> float:
    return 2.0 + distance_km(a, b) * DETOUR / DRIVE_KMH * 60.0


@dataclass
class _CrewState:
    crew_id: str
    http: httpx.Client
    pos: tuple[float, float]
    phase: str = "idle"  # idle, travel, work
    assignment: int | None = None
    event_id: str | None = None
    cause: str = ""
    repair_minutes: float = 0.0
    origin: tuple[float, float] = (0.0, 0.0)
    target: tuple[float, float] = (0.0, 0.0)
    phase_start: datetime | None = None
    phase_end: datetime | None = None
    started_at: datetime | None = None


@dataclass
class CrewSimulator:
    """Moves every crew along its plan through the crew API (see the module docstring). ``crew_hours`` per event
    (storm hours from en route to restored) feed the summary; ``crews_on`` lists the crews that worked each."""

    url: str
    crew_tokens: dict[str, str]
    dispatcher_token: str
    start_positions: dict[str, tuple[float, float]]
    seed: int = 1
    #: Called with an event id after its restoration was accepted (the demo's meter head-end answers with
    #: power-restore messages from the meters that came back).
    on_restored: object = None
    crew_hours: dict[str, float] = field(default_factory=dict)
    crews_on: dict[str, list[str]] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._dispatcher = httpx.Client(base_url=self.url, timeout=30,
                                        headers={"Authorization": f"Bearer {self.dispatcher_token}"})
        self.crews = {cid: _CrewState(cid, httpx.Client(base_url=self.url, timeout=30,
                                                        headers={"Authorization": f"Bearer {tok}"}),
                                      self.start_positions[cid]) for cid, tok in sorted(self.crew_tokens.items())}

    def close(self) -> None:
        for c in self.crews.values():
            c.http.close()
        self._dispatcher.close()

    def phases(self) -> Counter:
        return Counter(c.phase for c in self.crews.values())

    def step(self, now: datetime) -> None:
        """Every crew, in crew order, does what is due at storm time ``now``."""
        for crew in self.crews.values():
            self._step(crew, now)

    def _back_to_idle(self, crew: _CrewState, why: str) -> None:
        log.info("crew %s drops assignment %s: %s", crew.crew_id, crew.assignment, why)
        crew.phase, crew.assignment, crew.event_id = "idle", None, None

    def _status(self, crew: _CrewState, status: str, cause: str | None = None) -> bool:
        body = {"status": status} | ({"cause": cause} if cause else {})
        r = crew.http.post(f"/crew/assignments/{crew.assignment}/status", json=body)
        if r.status_code in (404, 409):
            self._back_to_idle(crew, r.json().get("error", {}).get("message", r.text))
            return False
        r.raise_for_status()
        return True

    def _take_work(self, crew: _CrewState, now: datetime) -> None:
        r = crew.http.get("/crew/assignments")
        r.raise_for_status()
        work = sorted((a for a in r.json() if a["status"] in ACTIVE_ASSIGNMENT), key=lambda a: (a["sequence"], a["id"]))
        if not work:
            return
        a = work[0]
        ev = self._dispatcher.get(f"/events/{a['event_id']}")
        if ev.status_code != 200 or ev.json().get("lat") is None:
            return
        ev = ev.json()
        crew.assignment, crew.event_id = a["id"], a["event_id"]
        crew.target = (float(ev["lon"]), float(ev["lat"]))
        crew.cause = ev.get("cause") or self._found_cause(a["event_id"])
        crew.repair_minutes = self._repair_minutes(a["event_id"], ev.get("device_kind"), crew.cause)
        if a["status"] != "en_route" and not self._status(crew, "en_route"):
            return
        crew.started_at = now
        crew.phase, crew.origin, crew.phase_start = "travel", crew.pos, now
        crew.phase_end = now + timedelta(minutes=drive_minutes(crew.pos, crew.target))

    def _step(self, crew: _CrewState, now: datetime) -> None:
        if crew.phase == "idle":
            self._take_work(crew, now)
            return
        if crew.phase == "travel":
            span = (crew.phase_end - crew.phase_start).total_seconds()
            share = min(1.0, (now - crew.phase_start).total_seconds() / max(span, 1e-9))
            crew.pos = (crew.origin[0] + share * (crew.target[0] - crew.origin[0]),
                        crew.origin[1] + share * (crew.target[1] - crew.origin[1]))
            crew.http.post("/crew/position", json={"lon": crew.pos[0], "lat": crew.pos[1]}).raise_for_status()
            if now >= crew.phase_end and self._status(crew, "on_site", crew.cause):  # the cause it found
                crew.phase, crew.phase_start = "work", now
                crew.phase_end = now + timedelta(minutes=crew.repair_minutes)
        elif crew.phase == "work" and now >= crew.phase_end:
            eid = crew.event_id
            if self._status(crew, "restored", crew.cause):
                hours = (now - crew.started_at).total_seconds() / 3600.0
                self.crew_hours[eid] = self.crew_hours.get(eid, 0.0) + hours
                self.crews_on.setdefault(eid, []).append(crew.crew_id)
                self.restored.append(eid)
                if self.on_restored is not None:
                    self.on_restored(eid)
                crew.phase, crew.assignment, crew.event_id = "idle", None, None

    def _rng(self, event_id: str) -> random.Random:
        return random.Random(f"{self.seed}:{event_id}")  # same event, same luck

    def _found_cause(self, event_id: str) -> str:
        causes, weights = zip(*FOUND_CAUSES, strict=True)
        return self._rng(event_id).choices(causes, weights)[0]

    def _repair_minutes(self, event_id: str, device_kind: str | None, cause: str) -> float:
        return repair_minutes(self._rng(event_id + ":repair"), device_kind, cause)


#: Device kinds of last season's outages (most are a transformer or one customer's service drop).
PAST_KINDS = (("service", 6), ("transformer", 5), ("fuse", 3), ("recloser", 1), ("switch", 1), ("breaker", 1))


def repair_minutes(rng: random.Random, device_kind: str | None, cause: str) -> float:
    """The demo's truth of a repair (crew on site -> restored): the planner's estimate x a factor 0.6-1.4."""
    from api.service.replan import service_minutes

    return service_minutes(device_kind, cause) * rng.uniform(0.6, 1.4)


def past_season(path, seed: int, events: int = 300) -> str:
    """Write last season's restored outages as an events CSV (the format ``EtrModel.learn_history`` reads, with
    ``device_kind`` and ``on_site``), drawn from the demo's own crews -- another seed, not this storm's draws. The
    demo's service learns its ETRs from it (``OMS_ETR_HISTORY``), as a utility imports its outage history."""
    from datetime import UTC

    rng = random.Random(f"past-season:{seed}")
    kinds, kw = zip(*PAST_KINDS, strict=True)
    causes, cw = zip(*FOUND_CAUSES, strict=True)
    t = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)
    rows = ["event_id,start,on_site,restored,device_kind,cause"]
    for i in range(events):
        t += timedelta(hours=rng.uniform(2, 40))
        kind, cause = rng.choices(kinds, kw)[0], rng.choices(causes, cw)[0]
        on_site = t + timedelta(minutes=rng.uniform(20, 120))
        done = on_site + timedelta(minutes=repair_minutes(rng, kind, cause))
        rows.append(f"P{i + 1},{t.isoformat()},{on_site.isoformat()},{done.isoformat()},{kind},{cause}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    return str(path)
