"""What the maps show: a small input shape the service maps its live state onto.

The maps do not know the outage engine or the dispatcher. The service hands them a :class:`MapState` (events, crews
and their routes, a time stamp) and the :class:`~gis.network.Network`; a :class:`MapProvider` is anything that can
answer both. :class:`StaticProvider` holds fixed values (tests, demos, snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np

from gis.network import Network

#: Priority tiers (P1 life-safety .. P4 single customer); the dispatcher map colours events by these.
TIERS = (1, 2, 3, 4)
#: Crew statuses in increasing order of "help is here"; the public map shows the furthest one per area.
CREW_STATUSES = ("", "assigned", "en route", "on site")


@dataclass(frozen=True, slots=True)
class MapEvent:
    """One open outage event as the maps need it.

    ``lon``/``lat`` place the event (the operated device); ``sp_indices`` are the affected service points as
    row positions in ``network.service_points`` (the public map counts customers out per area from them, never
    shows them). ETRs are timezone-aware UTC or ``None`` while being assessed.
    """

    event_id: str
    device_id: str
    lon: float
    lat: float
    tier: int
    event_class: str
    customers_out: int
    sp_indices: np.ndarray | tuple[int, ...] = ()
    cause: str = ""
    crew_status: str = ""
    etr_low: datetime | None = None
    etr_high: datetime | None = None
    #: the ETR range's stated probability (0.8: 80% of similar outages were restored within it); None: not stated
    etr_probability: float | None = None
    explanation: str = ""
    status: str = "predicted"
    started: datetime | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"event {self.event_id}: tier must be one of {TIERS}, got {self.tier!r}")
        if self.customers_out < 0:
            raise ValueError(f"event {self.event_id}: customers_out must be >= 0, got {self.customers_out}")
        if self.crew_status not in CREW_STATUSES:
            raise ValueError(f"event {self.event_id}: crew_status must be one of {CREW_STATUSES}, "
                             f"got {self.crew_status!r}")
        for name in ("etr_low", "etr_high", "started"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"event {self.event_id}: {name} must be timezone-aware (UTC)")
        if self.etr_low and self.etr_high and self.etr_high < self.etr_low:
            raise ValueError(f"event {self.event_id}: etr_high is before etr_low")
        if not (-180 <= self.lon <= 180 and -90 <= self.lat <= 90):
            raise ValueError(f"event {self.event_id}: lon/lat out of range ({self.lon}, {self.lat})")


@dataclass(frozen=True, slots=True)
class MapCrew:
    """A crew: where it is, what it is doing, and its planned route as (lon, lat) points in visiting order."""

    crew_id: str
    name: str
    lon: float
    lat: float
    status: str = "available"
    route: tuple[tuple[float, float], ...] = ()
    job_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (-180 <= self.lon <= 180 and -90 <= self.lat <= 90):
            raise ValueError(f"crew {self.crew_id}: lon/lat out of range ({self.lon}, {self.lat})")


@dataclass(frozen=True, slots=True)
class MapState:
    """Everything live on the maps at one moment. ``version`` (any hashable, e.g. a change counter) lets the
    router reuse the GeoJSON it built last time while nothing changed; ``None`` means "always rebuild"."""

    events: tuple[MapEvent, ...]
    crews: tuple[MapCrew, ...]
    updated_at: datetime
    version: object = None
    open_segments: tuple[str, ...] = field(default=())  # segments switched open right now (beyond normal)
    #: Set while a replay runs on a storm clock (e.g. "storm time, 120x"): the maps then say so next to the time.
    clock_note: str = ""

    def __post_init__(self) -> None:
        if self.updated_at.tzinfo is None:
            raise ValueError("MapState.updated_at must be timezone-aware (UTC)")


@runtime_checkable
class MapProvider(Protocol):
    """Where the maps get their data: the service implements this over its live engine state."""

    def network(self) -> Network: ...

    def state(self) -> MapState: ...


@dataclass
class StaticProvider:
    """A provider over fixed values; replace ``current`` to simulate a change."""

    territory: Network
    current: MapState

    def network(self) -> Network:
        return self.territory

    def state(self) -> MapState:
        return self.current


@dataclass
class ClockedProvider:
    """A provider on a storm clock: the state's time is the clock's (not the wall clock's), labelled with
    ``note``; the version changes with the clock's minute so the maps' time keeps moving."""

    inner: MapProvider
    clock: Callable[[], datetime]
    note: str

    def network(self) -> Network:
        return self.inner.network()

    def state(self) -> MapState:
        s = self.inner.state()
        now = self.clock()
        return replace(s, updated_at=now, clock_note=self.note, version=(s.version, now.replace(second=0)))
