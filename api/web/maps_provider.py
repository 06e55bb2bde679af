"""The live maps' data: the service's events, crews and plans as an :class:`api.maps.MapState`.

:class:`LiveMapProvider` answers :class:`api.maps.MapProvider` over a running :class:`api.service.live.LiveEngine`. It reads
what the engine persisted (the ``events``, ``crews`` and ``assignments`` tables) rather than the engine's in-memory
objects, so a map request never takes the engine's lock in the middle of a storm. The state is rebuilt at most every
``min_interval_s`` seconds (many browsers polling at once cost one read), and only when the database's change stamp
(:meth:`api.store.db.Database.change_stamp`) moved since the last read: while nothing was committed, a refresh costs
one tiny query instead of reading every open event, crew and assignment under the interpreter lock. It carries a
``version`` that changes only when the content changes, so the maps' router reuses its GeoJSON and answers 304 to
unchanged polls.

The dispatcher map is guarded by :func:`dispatcher_access`: a dispatcher's bearer token in the ``Authorization``
header, or — because a browser cannot send a header when it opens a page — the console's session cookie (a
password sign-in), or the HttpOnly, Secure cookie scoped to ``/maps`` that ``POST /session`` sets from a token.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from datetime import UTC, datetime

import numpy as np
from fastapi import Request
from sqlalchemy import Row, select

from api.maps.state import MapCrew, MapEvent, MapState
from api.store.models import ACTIVE_ASSIGNMENT, CLOSED_STATES, Assignment, Crew, Event
from api.web.auth import Principal, check_role, resolve_principal, session_principal
from outage.figures import event_customers

#: Assignment status -> the maps' crew status words.
CREW_STATUS = {"assigned": "assigned", "en_route": "en route", "on_site": "on site"}
TOKEN_COOKIE = "oms_map_token"
DISPATCHER_ROLES = ("dispatcher", "admin")
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{8,200}")
#: What the maps read of an open event: its rows as plain tuples, not ORM objects with every column (priority
#: reasons, hazards ...) decoded; with 3,000 open events this halved the CPU of a state rebuild.
EVENT_COLUMNS = (
    Event.id,
    Event.device_id,
    Event.sp_id,
    Event.lat,
    Event.lon,
    Event.tier,
    Event.event_class,
    Event.customers_out,
    Event.cause,
    Event.etr_earliest,
    Event.etr_latest,
    Event.etr_detail,
    Event.explanation,
    Event.state,
    Event.started_at,
    Event.evidence,
)


class LiveMapProvider:
    """A :class:`api.maps.MapProvider` over a live engine (see the module docstring)."""

    def __init__(self, live, min_interval_s: float = 1.0) -> None:
        self.live = live
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._state: MapState | None = None
        self._built_at = 0.0
        self._read_at: tuple | None = None  # (network, database change stamp) the state was read at
        self._sp_cache: dict[tuple[str, str | None, str | None], np.ndarray] = {}
        self._topology = None
        self._sp_row: dict[str, int] = {}
        self._topology_of = None

    def network(self):
        if self.live.network is None:
            raise LookupError("no territory is loaded; the maps need one (oms serve --territory)")
        return self.live.network

    def state(self) -> MapState:
        return self._state_within(self.min_interval_s)

    def fresh(self) -> MapState:
        """The state as the database has it now: for a count that must agree with a read made just after it
        (:mod:`api.web.figures`), where a layer up to ``min_interval_s`` old would miss the latest change."""
        return self._state_within(0.0)

    def _state_within(self, max_age_s: float) -> MapState:
        with self._lock:
            if self._state is None or time.monotonic() - self._built_at >= max_age_s:
                # the stamp before the read: a commit in between moves it again, so the next call reads again
                stamp, network = self.live.db.change_stamp(), self.live.network
                last = self._read_at
                if (
                    self._state is None
                    or stamp is None
                    or last is None
                    or last[0] is not network
                    or last[1] != stamp
                ):
                    self._state = self._build(self._state)
                    self._read_at = (network, stamp)
                self._built_at = time.monotonic()
            return self._state

    # ------------------------------------------------------------------------------------------------ building
    def _build(self, previous: MapState | None) -> MapState:
        with self.live.db.read() as session:
            events = session.execute(
                select(*EVENT_COLUMNS).where(
                    Event.state.not_in(CLOSED_STATES),
                    Event.merged_into.is_(None),
                    Event.lat.is_not(None),
                    Event.lon.is_not(None),
                )
            ).all()
            crews = session.scalars(select(Crew).order_by(Crew.id)).all()
            active = session.scalars(
                select(Assignment)
                .where(Assignment.status.in_(ACTIVE_ASSIGNMENT))
                .order_by(Assignment.crew_id, Assignment.sequence, Assignment.id)
            ).all()
        furthest: dict[str, str] = {}  # event -> the furthest crew status on it ("help is here")
        for a in active:
            word = CREW_STATUS[a.status]
            if ACTIVE_ASSIGNMENT.index(a.status) >= ACTIVE_ASSIGNMENT.index(
                _status_of(furthest.get(a.event_id))
            ):
                furthest[a.event_id] = word
        map_events = tuple(self._event(ev, furthest.get(ev.id, "")) for ev in events)  # (all located)
        located = {ev.id: (ev.lon, ev.lat) for ev in events}
        by_crew: dict[str, list[Assignment]] = {}
        for a in active:
            by_crew.setdefault(a.crew_id, []).append(a)
        map_crews = tuple(
            self._crew(c, by_crew.get(c.id, []), located)
            for c in crews
            if c.lat is not None and c.lon is not None
        )
        version = _digest(map_events, map_crews)
        if previous is not None and previous.version == version:
            return previous  # same content: keep the old time stamp so the GeoJSON stays byte-identical
        return MapState(events=map_events, crews=map_crews, updated_at=datetime.now(UTC), version=version)

    def _event(self, ev: Row, crew_status: str) -> MapEvent:
        """``ev``: an event's :data:`EVENT_COLUMNS`."""
        return MapEvent(
            event_id=ev.id,
            device_id=ev.device_id or ev.sp_id or "",
            lon=float(ev.lon),
            lat=float(ev.lat),
            tier=min(max(int(ev.tier or 4), 1), 4),
            event_class=ev.event_class or "",
            customers_out=event_customers(ev.customers_out),
            sp_indices=self._service_points(ev),
            cause=ev.cause or "",
            crew_status=crew_status,
            etr_low=_utc(ev.etr_earliest),
            etr_high=_utc(_later(ev.etr_earliest, ev.etr_latest)),
            etr_probability=(ev.etr_detail or {}).get("probability") if ev.etr_latest else None,
            explanation=ev.explanation or "",
            status=ev.state,
            started=_utc(ev.started_at),
        )

    @staticmethod
    def _crew(c: Crew, work: list[Assignment], located: dict[str, tuple[float, float]]) -> MapCrew:
        stops = [located[a.event_id] for a in work if a.event_id in located]
        route = ((float(c.lon), float(c.lat)), *stops) if stops else ()
        status = (
            c.status
            if c.status in ("available", "off_shift", "needs_help")
            else CREW_STATUS.get(c.status, c.status)
        )
        return MapCrew(
            crew_id=c.id,
            name=c.name or c.id,
            lon=float(c.lon),
            lat=float(c.lat),
            status=status,
            route=route,
            job_ids=tuple(a.event_id for a in work),
        )

    def _service_points(self, ev: Row) -> np.ndarray:
        """Row positions in ``network.service_points`` of the customers the event takes out (cached per device),
        less those a partial restoration already gave back (so the maps' count is the event's own)."""
        restored = (ev.evidence or {}).get("restored_sps") or ()
        key = (ev.id, ev.device_id, ev.sp_id, len(restored))
        hit = self._sp_cache.get(key)
        if hit is not None:
            return hit
        from api.notify.policy import affected_service_points

        network = self.live.network
        if self._topology_of is not network:
            from gis.topology import build

            self._topology, self._topology_of = build(network), network
            self._sp_row = {str(s): i for i, s in enumerate(network.service_points["sp_id"].astype(str))}
            self._substations = dict(
                zip(
                    network.substations["substation_id"].astype(str),
                    network.substations["source_node"].astype(str),
                    strict=True,
                )
            )
            self._sp_cache.clear()
        devices = [ev.device_id] if ev.device_id else []
        ids = affected_service_points(self._topology, devices, ev.sp_id, self._substations)
        gone = set(restored)
        rows = np.fromiter(
            (self._sp_row[i] for i in ids if i in self._sp_row and i not in gone), dtype=np.int64
        )
        if len(self._sp_cache) > 50_000:
            self._sp_cache.clear()
        self._sp_cache[key] = rows
        return rows


def _status_of(word: str | None) -> str:
    for status, w in CREW_STATUS.items():
        if w == word:
            return status
    return "assigned"


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    """The ETR range's end, never before its start."""
    return b if a is None or b is None else max(a, b)


def _utc(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _digest(events: tuple[MapEvent, ...], crews: tuple[MapCrew, ...]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for e in events:
        h.update(
            repr(
                (
                    e.event_id,
                    e.device_id,
                    e.tier,
                    e.event_class,
                    e.customers_out,
                    e.cause,
                    e.crew_status,
                    e.etr_low,
                    e.etr_high,
                    e.etr_probability,
                    e.status,
                    e.explanation,
                    len(e.sp_indices),
                )
            ).encode()
        )
    for c in crews:
        h.update(repr((c.crew_id, round(c.lon, 6), round(c.lat, 6), c.status, c.route)).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------- access
async def dispatcher_access(request: Request) -> Principal:
    """A dispatcher or admin, by ``Authorization: Bearer`` or the map cookie set by ``POST /session``. Never from
    the query string: a URL ends up in logs, histories and Referer headers."""
    header = request.headers.get("authorization")
    if not header:
        signed_in = await session_principal(request)  # a console sign-in opens the map too
        if signed_in is not None:
            return check_role(signed_in, DISPATCHER_ROLES)
        token = request.cookies.get(TOKEN_COOKIE)
        header = f"Bearer {token}" if token and TOKEN_SHAPE.fullmatch(token) else None
    principal = await resolve_principal(
        request.app.state.oms, header, request.client.host if request.client else None
    )
    return check_role(principal, DISPATCHER_ROLES)
