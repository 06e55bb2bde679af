"""Outage events, their life cycle, and the change records the engine emits.

An :class:`OutageEvent` is one believed outage: the device that operated (or the single service point), the
customers it interrupts, its evidence, a confidence, a plain-language explanation, and the history of every state
transition with time, actor and reason. The engine mutates events; everything outside reads them and the
:class:`Change` records returned by each engine call (the service persists and publishes those).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class EventState(StrEnum):
    UNCONFIRMED = "unconfirmed"  # predicted by the engine, timer running
    PROBABLE = "probable"  # predicted, survived the probable timer
    CONFIRMED = "confirmed"  # by a dispatcher, a crew, SCADA or AMI
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    RESTORED = "restored"
    CANCELLED = "cancelled"  # false alarm, customer-side problem, or superseded by a merge


PREDICTED_STATES = (EventState.UNCONFIRMED, EventState.PROBABLE)
WORK_STATES = (EventState.CONFIRMED, EventState.DISPATCHED, EventState.EN_ROUTE, EventState.ON_SITE)
CLOSED_STATES = (EventState.RESTORED, EventState.CANCELLED)
#: allowed forward moves (restored/cancelled reachable from every open state)
NEXT_STATES = {
    EventState.UNCONFIRMED: {EventState.PROBABLE, EventState.CONFIRMED, EventState.DISPATCHED},
    EventState.PROBABLE: {EventState.CONFIRMED, EventState.DISPATCHED},
    EventState.CONFIRMED: {EventState.DISPATCHED},
    EventState.DISPATCHED: {EventState.EN_ROUTE, EventState.ON_SITE, EventState.CONFIRMED},
    EventState.EN_ROUTE: {EventState.ON_SITE, EventState.DISPATCHED},
    EventState.ON_SITE: {EventState.DISPATCHED},
}


class EventClass(StrEnum):
    SINGLE_CUSTOMER = "single_customer"
    FEEDER = "feeder"
    COMMUNITY = "community"  # more than one feeder, a substation or source, or a storm cluster spanning feeders
    HAZARD = "hazard"  # a hazard report (wires down, fire) with no outage behind it
    # one call that is likelier a problem on the customer's side (a tripped main, a blown meter fuse) than an
    # outage of the utility's: no other outage is starting around it and nothing in the call speaks for one
    # (customer_side._customer_side). Not an outage prediction; verify with the customer before sending a line crew
    CUSTOMER_SIDE = "customer_side"


@dataclass(frozen=True, slots=True)
class Transition:
    time: datetime
    state: EventState
    actor: str
    reason: str


@dataclass
class OutageEvent:
    """One outage. ``device_id`` is the predicted/confirmed device (``None`` for a single-service outage, then
    ``sp_id`` names the service point; ``substation:<id>`` for a whole substation). ``extra_devices`` holds devices of
    events merged in by hand. Counts are current; ``customers`` excludes parts already restored."""

    event_id: str
    device_id: str | None
    device_kind: str  # transformer, fuse, ..., substation, or "service"
    sp_id: str | None
    start: datetime
    state: EventState
    event_class: EventClass
    customers: int = 0
    critical_customers: int = 0
    critical_kinds: dict[str, int] = field(default_factory=dict)
    feeders: tuple[str, ...] = ()
    substation_id: str = ""
    reports: list[str] = field(default_factory=list)  # report ids (duplicates included)
    service_points_out: int = 0  # distinct service points with out-evidence
    last_gasps: int = 0
    power_on_evidence: int = 0
    pings: dict[str, int] = field(default_factory=dict)  # on/off/unknown counts
    scada: list[str] = field(default_factory=list)
    hazards: list[str] = field(default_factory=list)  # "wires_down", "fire_sparks", "tree_on_line"
    medical: int = 0  # reports naming medical equipment at home
    history: list[Transition] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)
    merged_into: str | None = None
    nested_from: str | None = None
    extra_devices: list[str] = field(default_factory=list)
    restored_sps: list[str] = field(default_factory=list)  # service points already restored (partial restoration)
    restored_at: datetime | None = None
    last_evidence: datetime | None = None
    cause: str = ""
    etr: object | None = None  # outage.etr.Etr, set by the engine's ETR update
    # confidence and explanation are computed on first read after a change (the engine marks them stale per
    # message; building the sentence for every last gasp would cost more than the roll-up itself)
    describe: Callable[[], tuple[float, str]] | None = field(default=None, repr=False, compare=False)
    _described: tuple[float, str] | None = field(default=None, repr=False, compare=False)

    @property
    def confidence(self) -> float:
        """0..1: how far the evidence is past the rule that chose the device, plus ping answers."""
        return self._description()[0]

    @property
    def explanation(self) -> str:
        """Why this device, in words: "7 service points out ... under fuse F-212; 5 last gasps; ..."."""
        return self._description()[1]

    def _description(self) -> tuple[float, str]:
        if self._described is None:
            self._described = self.describe() if self.describe is not None else (0.0, "")
        return self._described

    def mark_changed(self) -> None:
        self._described = None

    @property
    def open(self) -> bool:
        return self.state not in CLOSED_STATES

    @property
    def predicted(self) -> bool:
        return self.state in PREDICTED_STATES

    @property
    def key(self) -> str:
        """What was predicted, as one string: the device id, or ``sp:<id>`` for a single service."""
        return self.device_id if self.device_id is not None else f"sp:{self.sp_id}"


# -- changes -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """Base of every change record: which event, when."""

    event_id: str
    time: datetime


@dataclass(frozen=True, slots=True)
class EventCreated(Change):
    device_id: str | None
    sp_id: str | None
    state: EventState


@dataclass(frozen=True, slots=True)
class EventUpdated(Change):
    """Device, counts, class, state or explanation changed (``what`` says which)."""

    what: str


@dataclass(frozen=True, slots=True)
class EventMerged(Change):
    """``event_id`` was absorbed into ``into``; its reports now belong there."""

    into: str


@dataclass(frozen=True, slots=True)
class EventRestored(Change):
    partial: bool
    customers: int


@dataclass(frozen=True, slots=True)
class EventCancelled(Change):
    reason: str


@dataclass(frozen=True, slots=True)
class ReportAttached(Change):
    report_id: str
    duplicate: bool
