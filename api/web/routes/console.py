"""The dispatcher's console: the page (``/console``), its assets, and the JSON and GeoJSON it loads.

A browser reaches the page with a session cookie (``/session``); a member or crew session (or token) gets 403,
no session at all is sent to the sign-in form. The page is a shell: ``board.json`` fills the events grid and the
roster, the map layers come from here too, and the SSE stream (``/stream``) keeps everything current.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.console import console_html, forbidden_html
from api.console.render import media_type, static_file
from api.console.routes_geo import RoutePaths
from api.errors import ApiError
from api.maps.assets import resolve as maps_asset
from api.maps.geojson import etag_of
from api.maps.router import conditional
from api.service.review import waiting_count
from api.store.models import ACTIVE_ASSIGNMENT, CLOSED_STATES, Assignment, Crew, Event, Plan
from api.web.auth import SESSION_COOKIE, Principal, csrf_of, current_principal, require
from outage.figures import event_customers

router = APIRouter(prefix="/console", tags=["console"])
DISPATCHER = require("dispatcher", "admin")
ROLES = ("dispatcher", "admin")
NO_STORE = {"Cache-Control": "no-store"}
_assets: dict[str, tuple[bytes, str, str]] = {}
_paths: dict[int, RoutePaths] = {}
_paths_lock = threading.Lock()
_routes_body: dict[tuple, str] = {}  # the last routes.geojson, by its legs


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def console_page(request: Request) -> Response:
    who = await current_principal(request)
    if who.anonymous:
        return RedirectResponse("/session", status_code=303, headers=NO_STORE)
    csrf = csrf_of(request.cookies.get(SESSION_COOKIE, "")) if who.session else ""
    if who.role not in ROLES:
        return HTMLResponse(forbidden_html(user=who.name, role=who.role, csrf=csrf), status_code=403,
                            headers=NO_STORE)
    maps = getattr(request.app.state, "maps", None)
    title = getattr(getattr(maps, "page", None), "utility_name", "") or "Outage management"
    # The board goes inside the page: one round trip to a filled grid instead of two (a storm's board is ~1 MB).
    board = await run_in_threadpool(lambda: to_json(board_body(request.app.state.oms, figures=_figures(request))))  # off the event loop
    state = request.app.state.oms
    return HTMLResponse(console_html(user=who.name, role=who.role, csrf=csrf, title=title, board=board,
                                     p1_response_minutes=state.settings.p1_response_minutes,
                                     clock_note=state.clock_note), headers=NO_STORE)


@router.get("/assets/{path:path}", include_in_schema=False)
def asset(path: str, request: Request) -> Response:
    if path not in _assets:
        prefix, _, rest = path.partition("/")
        file = maps_asset(path) if prefix == "leaflet" else static_file(rest) if prefix == "console" else None
        if file is None:
            raise ApiError(404, "not_found", f"no asset {path!r}")
        body = file.read_bytes()
        _assets[path] = (body, etag_of(body), media_type(file))
    body, etag, kind = _assets[path]
    return conditional(request, body, kind, "private, max-age=3600", etag)  # URLs carry ?v=<hash of the assets>


def _row(e, work: Assignment | None, names: dict[str, str]) -> dict[str, Any]:
    return {"id": e.id, "state": e.state, "tier": e.tier, "reason": e.priority_reason, "weight": e.weight,
            "class": e.event_class, "device_id": e.device_id, "device_kind": e.device_kind, "feeder_id": e.feeder_id,
            "customers_out": event_customers(e.customers_out), "critical_count": e.critical_count, "hazards": e.hazards,
            "cause": e.cause, "calls": e.report_count, "started_at": e.started_at, "lat": e.lat, "lon": e.lon,
            "etr_earliest": e.etr_earliest, "etr_latest": e.etr_latest, "closed": e.state in CLOSED_STATES,
            "assignment": None if work is None else {
                "id": work.id, "crew_id": work.crew_id, "crew_name": names.get(work.crew_id, work.crew_id),
                "status": work.status, "eta": work.eta, "locked": work.locked, "manual": work.manual}}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def to_json(body: Any) -> str:
    """Plain ``json.dumps``: FastAPI's generic encoder spends ~0.5 s walking a storm's 2,000-row board."""
    return json.dumps(body, default=_plain, separators=(",", ":"))


@router.get("/board.json", summary="The console's state: open events with their crew and ETA, crews, the plan")
def board(request: Request, _: Principal = Depends(DISPATCHER),
          ids: Annotated[str | None, Query(max_length=20_000, description="comma-separated event ids")] = None):
    return Response(to_json(board_body(request.app.state.oms, ids, _figures(request))), media_type="application/json",
                    headers=NO_STORE)


@router.get("/stream", summary="The SSE stream for the console, from sequence number `after` (the page's board)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "an SSE stream"}})
async def stream(request: Request, _: Principal = Depends(DISPATCHER),
                 after: Annotated[int | None, Query(ge=0, description="the board's `seq`")] = None,
                 last_event_id: Annotated[str | None, Header(max_length=20)] = None):
    """Like ``/stream``, but a page whose board was rendered into it can ask for everything after that board's
    ``seq`` (``Last-Event-ID``, sent by a reconnecting browser, wins), so nothing falls between page and stream."""
    state = request.app.state.oms
    last = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    return StreamingResponse(state.broker.subscribe(last, state.settings.sse_keepalive_s),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _figures(request: Request) -> dict[str, Any] | None:
    """The headline figures last published on the stream (:mod:`api.web.figures`), for the console's bar."""
    last = getattr(getattr(request.app.state, "figures", None), "last", None)
    return last.message()["figures"] if last is not None else None


def board_body(state, ids: str | None = None, figures: dict[str, Any] | None = None) -> dict[str, Any]:
    seq = state.broker.seq  # read first: stream messages after this are applied on top of what we read
    t = Event.__table__  # not the evidence JSON: a storm has thousands of events
    cols = [c for c in t.c if c.name not in ("evidence", "etr_detail", "explanation")]
    q = select(*cols).where(t.c.merged_into.is_(None))
    wanted = [i for i in (ids or "").split(",") if i][:500]
    q = q.where(t.c.id.in_(wanted)) if ids is not None else q.where(t.c.state.not_in(CLOSED_STATES))
    with state.db.read() as session:
        events = session.execute(q.order_by(t.c.tier, t.c.weight.desc(), t.c.started_at)).all()
        crews = session.scalars(select(Crew).order_by(Crew.id)).all()
        names = {c.id: c.name or c.id for c in crews}
        work = {a.event_id: a for a in session.scalars(
            select(Assignment).where(Assignment.status.in_(ACTIVE_ASSIGNMENT)).order_by(Assignment.id))}
        plan = None if ids is not None else session.scalar(
            select(Plan).where(Plan.status == "proposed").order_by(Plan.id.desc()).limit(1))
        unmatched = None if ids is not None else waiting_count(session)
    body: dict[str, Any] = {"seq": seq, "now": state.live.clock(), "events": [_row(e, work.get(e.id), names)
                                                                             for e in events]}
    if figures is not None:  # the storm's headline figures, as the maps and the stream state them
        body["figures"] = figures
    if state.clock_note:  # a replay's storm clock: the console says so next to its time ("storm time 14:20, 120x")
        body["clock"] = state.clock_note
    if ids is None:
        jobs: dict[str, list[Assignment]] = {}
        for a in sorted(work.values(), key=lambda a: (a.sequence, a.id)):
            jobs.setdefault(a.crew_id, []).append(a)
        body["crews"] = [{"id": c.id, "name": c.name or c.id, "status": c.status, "lat": c.lat, "lon": c.lon,
                          "position_at": c.position_at, "shift_end": c.shift_end, "skills": c.skills,
                          "jobs": [{"assignment_id": a.id, "event_id": a.event_id, "status": a.status, "eta": a.eta,
                                    "locked": a.locked} for a in jobs.get(c.id, [])]} for c in crews]
        body["plan"] = None if plan is None else {"id": plan.id, "status": plan.status, "created_at": plan.created_at}
        body["mode"] = state.live.plan_mode
        body["unmatched"] = unmatched  # public reports waiting for a person to match them (the Reports tab)
    return body


def _map_data(request: Request):
    maps = getattr(request.app.state, "maps", None)
    try:
        return maps.data() if maps is not None else None
    except LookupError as exc:
        raise ApiError(503, "unavailable", str(exc)) from None


@router.get("/network.geojson", summary="Feeder lines and protective devices for the console map")
def network(request: Request, _: Principal = Depends(DISPATCHER)) -> Response:
    data = _map_data(request)
    return conditional(request, data.network_body(), "application/geo+json", "private, max-age=300")


@router.get("/roads.geojson", summary="Roads under the console map (OpenStreetMap, ODbL)")
def roads(request: Request, _: Principal = Depends(DISPATCHER)) -> Response:
    data = _map_data(request)
    return conditional(request, data.roads_body(), "application/geo+json", "private, max-age=86400")


@router.get("/deenergized.json", summary="Line numbers of network.geojson below an operated device")
def deenergized(request: Request, _: Principal = Depends(DISPATCHER)) -> dict[str, Any]:
    data = _map_data(request)
    # Only the events' devices matter here: one narrow query, not the map provider's full state (which works out
    # every event's customers, seconds for a storm's first call, and holds the GIL while the stream waits).
    t = Event.__table__
    with request.app.state.oms.db.read() as session:
        devices = session.execute(select(t.c.device_id, t.c.sp_id).where(
            t.c.state.not_in(CLOSED_STATES), t.c.merged_into.is_(None), t.c.lat.is_not(None))).all()
    state = _Devices(tuple(_Device(d or sp or "") for d, sp in devices))
    return {"lines": data.deenergized_lines(state).tolist(), "bounds": data.bounds()}


class _Device(NamedTuple):
    device_id: str


class _Devices(NamedTuple):
    """What :meth:`MapData.deenergized_lines` reads of a map state: each open event's device."""
    events: tuple[_Device, ...]


@router.get("/routes.geojson", summary="Each crew's route along the roads: crew -> its jobs in order")
def routes(request: Request, _: Principal = Depends(DISPATCHER)) -> Response:
    live = request.app.state.oms.live
    if live.network is None:
        raise ApiError(503, "unavailable", "no territory is loaded")
    with _paths_lock:
        paths = _paths.get(id(live.network))
        if paths is None:
            _paths.clear()
            paths = _paths[id(live.network)] = RoutePaths(live.network)
    with live.db.read() as session:
        crews = {c.id: c for c in session.scalars(select(Crew))}
        active = session.scalars(select(Assignment).where(Assignment.status.in_(ACTIVE_ASSIGNMENT))
                                 .order_by(Assignment.crew_id, Assignment.sequence, Assignment.id)).all()
        t = Event.__table__
        at = {r.id: (r.lon, r.lat) for r in session.execute(select(t.c.id, t.c.lon, t.c.lat).where(
            t.c.id.in_({a.event_id for a in active}))) if r.lon is not None} if active else {}
    legs, owners = [], []
    by_crew: dict[str, list[Assignment]] = {}
    for a in active:
        by_crew.setdefault(a.crew_id, []).append(a)
    for crew_id, work in by_crew.items():
        c = crews.get(crew_id)
        if c is None or c.lon is None:
            continue
        # on site first, then en route, then the rest in the plan's order
        work.sort(key=lambda a: (-ACTIVE_ASSIGNMENT.index(a.status), a.sequence, a.id))
        here = (float(c.lon), float(c.lat))
        for n, a in enumerate(x for x in work if x.event_id in at):
            legs.append((here, at[a.event_id]))
            owners.append((crew_id, a.event_id, n))
            here = at[a.event_id]
    key = (id(live.network), tuple(legs), tuple(owners))
    with _paths_lock:
        body = _routes_body.get(key)
    if body is None:  # the same legs as last time (a new event moves no crew): the same bytes, not re-encoded
        features = [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": path},
                     "properties": {"crew": crew, "event": eid, "leg": n}}
                    for (crew, eid, n), path in zip(owners, paths.legs(legs), strict=True)]
        body = to_json({"type": "FeatureCollection", "features": features})
        with _paths_lock:
            _routes_body.clear()
            _routes_body[key] = body
    return Response(body, media_type="application/geo+json", headers=NO_STORE)
