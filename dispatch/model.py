"""Crews, jobs and the dispatch problem: the inputs of every dispatcher (:mod:`dispatch.solver`,
:mod:`dispatch.greedy`).

Plain frozen dataclasses, PyVRP-like and small. Positions are ``(lon, lat)`` in WGS84; times are timezone-aware UTC
datetimes. A :class:`Problem` is a snapshot: the crews as they are *now* (where they are, what they are doing), the
open jobs, and the clock. It checks itself on construction and raises :class:`DispatchInputError` naming the crew or
job at fault, so a dispatcher never has to guess what a bad input meant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

#: ``(lon, lat)`` in WGS84 degrees.
Location = tuple[float, float]

#: What a crew is. Informational (shown in explanations); what a crew *can do* is its ``skills``.
CREW_KINDS = ("line", "service", "tree", "damage_assessment", "substation")
#: ``available``: free at ``start``; ``en_route``: driving to ``current_job`` (a stability penalty discourages
#: changing that); ``on_site``: working ``current_job`` (locked: it stays this crew's first stop);
#: ``off_shift``: not dispatched.
CREW_STATUSES = ("available", "en_route", "on_site", "off_shift")
#: Priority tiers: 1 life safety (wires down, life support, hospitals), 2 critical infrastructure, 3 feeder
#: events, 4 single customers.
PRIORITIES = (1, 2, 3, 4)


class DispatchInputError(ValueError):
    """A problem that cannot be dispatched as given; the message names the crew/job and the field."""


@dataclass(frozen=True, slots=True)
class Crew:
    """A crew: who it is, what it can do, where it is, when it works.

    ``start`` is where the crew is now (its GPS position, or its depot before the shift). ``end`` is the depot the
    crew must return to by ``shift_end``; ``None`` lets the shift end wherever the last job is. ``current_job`` is
    the job the crew is working (``on_site``: locked as the first stop, never moved) or driving to
    (``en_route``: kept unless a change saves more than the stability penalty).
    """

    id: str
    skills: frozenset[str]
    start: Location
    shift_start: datetime
    shift_end: datetime
    end: Location | None = None
    kind: str = "line"
    size: int = 2
    status: str = "available"
    current_job: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "skills", frozenset(self.skills))
        _check_id(self.id, "crew")
        where = f"crew {self.id!r}"
        if self.kind not in CREW_KINDS:
            raise DispatchInputError(f"{where}: kind {self.kind!r} is not one of {', '.join(CREW_KINDS)}")
        if self.status not in CREW_STATUSES:
            raise DispatchInputError(f"{where}: status {self.status!r} is not one of {', '.join(CREW_STATUSES)}")
        if self.size < 1:
            raise DispatchInputError(f"{where}: size must be >= 1, got {self.size}")
        _check_location(self.start, f"{where}: start")
        if self.end is not None:
            _check_location(self.end, f"{where}: end")
        _check_utc(self.shift_start, f"{where}: shift_start")
        _check_utc(self.shift_end, f"{where}: shift_end")
        if self.shift_end <= self.shift_start:
            raise DispatchInputError(f"{where}: shift_end {self.shift_end} is not after shift_start {self.shift_start}")
        if self.status in ("en_route", "on_site") and not self.current_job:
            raise DispatchInputError(f"{where}: status {self.status!r} needs current_job")


@dataclass(frozen=True, slots=True)
class Job:
    """One piece of field work: go to ``location``, spend ``service_minutes`` there.

    ``weight`` is what one minute of waiting costs (typically priority factor x customers out): the optimizer
    minimizes the sum of weight x completion time. ``hazard`` (wires down) makes the job a make-safe job that
    comes before ordinary restoration work. ``earliest``/``latest`` bound the arrival (the start of work).
    ``after`` lists jobs that must be finished before this one starts (assess before repair). ``started_at`` is
    when on-site work began, so only the remaining service time is planned.
    """

    id: str
    location: Location
    service_minutes: float
    skills: frozenset[str] = frozenset()
    weight: float = 1.0
    priority: int = 3
    customers: int = 0
    hazard: bool = False
    earliest: datetime | None = None
    latest: datetime | None = None
    after: tuple[str, ...] = ()
    started_at: datetime | None = None
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "skills", frozenset(self.skills))
        object.__setattr__(self, "after", tuple(self.after))
        _check_id(self.id, "job")
        where = f"job {self.id!r}"
        _check_location(self.location, f"{where}: location")
        if not (self.service_minutes >= 0):
            raise DispatchInputError(f"{where}: service_minutes must be >= 0, got {self.service_minutes}")
        if not (self.weight > 0):
            raise DispatchInputError(f"{where}: weight must be > 0, got {self.weight}")
        if self.priority not in PRIORITIES:
            raise DispatchInputError(f"{where}: priority must be one of {PRIORITIES}, got {self.priority}")
        for name in ("earliest", "latest", "started_at"):
            value = getattr(self, name)
            if value is not None:
                _check_utc(value, f"{where}: {name}")
        if self.earliest is not None and self.latest is not None and self.latest < self.earliest:
            raise DispatchInputError(f"{where}: latest {self.latest} is before earliest {self.earliest}")
        if self.id in self.after:
            raise DispatchInputError(f"{where}: a job cannot come after itself")


@dataclass(frozen=True)
class Problem:
    """A dispatch snapshot: crews, open jobs, and the clock ``now`` (tz-aware UTC).

    Checks on construction: unique ids, every required skill held by some crew (a skill nobody has is a typo, not
    a staffing problem), ``after`` references known jobs without cycles, ``current_job`` references known jobs and
    no job is locked to two crews.
    """

    crews: tuple[Crew, ...]
    jobs: tuple[Job, ...]
    now: datetime
    crew_index: dict[str, int] = field(init=False, repr=False, compare=False)
    job_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "crews", tuple(self.crews))
        object.__setattr__(self, "jobs", tuple(self.jobs))
        _check_utc(self.now, "problem: now")
        if not self.crews:
            raise DispatchInputError("problem: the crew list is empty; nothing can be dispatched")
        object.__setattr__(self, "crew_index", _index(self.crews, "crew"))
        object.__setattr__(self, "job_index", _index(self.jobs, "job"))
        known_skills = set().union(*(c.skills for c in self.crews))
        for job in self.jobs:
            unknown = sorted(job.skills - known_skills)
            if unknown:
                raise DispatchInputError(
                    f"job {job.id!r}: unknown skill {', '.join(map(repr, unknown))}: no crew has it "
                    f"(known skills: {', '.join(sorted(known_skills)) or 'none'})")
            for pred in job.after:
                if pred not in self.job_index:
                    raise DispatchInputError(f"job {job.id!r}: 'after' names unknown job {pred!r}")
        _check_acyclic(self.jobs)
        locked: dict[str, str] = {}
        for crew in self.crews:
            if crew.current_job is None:
                continue
            if crew.current_job not in self.job_index:
                raise DispatchInputError(f"crew {crew.id!r}: current_job {crew.current_job!r} is not an open job")
            if crew.current_job in locked:
                raise DispatchInputError(f"job {crew.current_job!r} is the current job of both crew "
                                         f"{locked[crew.current_job]!r} and crew {crew.id!r}")
            job = self.jobs[self.job_index[crew.current_job]]
            if not job.skills <= crew.skills:
                raise DispatchInputError(f"crew {crew.id!r}: current_job {job.id!r} needs skills "
                                         f"{sorted(job.skills - crew.skills)} the crew does not have")
            locked[crew.current_job] = crew.id

    def crew(self, crew_id: str) -> Crew:
        try:
            return self.crews[self.crew_index[crew_id]]
        except KeyError:
            raise KeyError(f"unknown crew {crew_id!r}") from None

    def job(self, job_id: str) -> Job:
        try:
            return self.jobs[self.job_index[job_id]]
        except KeyError:
            raise KeyError(f"unknown job {job_id!r}") from None

    def capable_crews(self, job: Job) -> list[Crew]:
        """Crews (any status) whose skills cover the job's required skills."""
        return [c for c in self.crews if job.skills <= c.skills]


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise DispatchInputError(f"{what} id must be a non-empty string, got {value!r}")


def _check_location(loc: object, where: str) -> None:
    try:
        lon, lat = loc  # type: ignore[misc]
        lon, lat = float(lon), float(lat)
    except (TypeError, ValueError):
        raise DispatchInputError(f"{where}: expected (lon, lat), got {loc!r}") from None
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise DispatchInputError(f"{where}: ({lon}, {lat}) is not a WGS84 (lon, lat) position")


def _check_utc(value: object, where: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise DispatchInputError(f"{where}: expected a timezone-aware datetime, got {value!r}")


def _index(items: Iterable, what: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in index:
            raise DispatchInputError(f"duplicate {what} id {item.id!r}")
        index[item.id] = i
    return index


def _check_acyclic(jobs: tuple[Job, ...]) -> None:
    after = {j.id: j.after for j in jobs}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(job_id: str, path: list[str]) -> None:
        if state.get(job_id) == 2:
            return
        if state.get(job_id) == 1:
            cycle = path[path.index(job_id):] + [job_id]
            raise DispatchInputError(f"jobs {' -> '.join(cycle)}: 'after' forms a cycle")
        state[job_id] = 1
        for pred in after[job_id]:
            visit(pred, path + [job_id])
        state[job_id] = 2

    for j in jobs:
        visit(j.id, [])
