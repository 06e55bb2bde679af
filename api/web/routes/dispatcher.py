"""Dispatcher routes: events (list, detail, confirm / cancel / merge / split / restore), plans, assignments, crews."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from api.errors import ApiError
from api.store.models import Assignment, Crew, Event, EventHistory, Plan, Report
from api.web.auth import Principal, require
from api.web.schemas import (
    AssignIn,
    AssignmentOut,
    CancelIn,
    ConfirmIn,
    CrewIn,
    CrewOut,
    DbId,
    EventClass,
    EventDetail,
    EventOut,
    EventState,
    HistoryOut,
    LockIn,
    MergeIn,
    PathId,
    PlanOut,
    RestoreIn,
    SplitIn,
)

router = APIRouter(tags=["dispatcher"])
DISPATCHER = require("dispatcher", "admin")
CREW_VIEW = require("dispatcher", "admin", "crew")


def _live(request: Request):
    return request.app.state.oms.live


@router.get("/events", response_model=list[EventOut], summary="Events, most urgent first")
def list_events(request: Request, _: Principal = Depends(DISPATCHER),
                event_class: Annotated[list[EventClass] | None, Query(alias="class")] = None,
                tier: Annotated[list[int] | None, Query(description="1..4")] = None,
                feeder: Annotated[str | None, Query(max_length=64)] = None,
                state: Annotated[list[EventState] | None, Query()] = None,
                include_closed: bool = False,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 500):
    if tier and any(t not in (1, 2, 3, 4) for t in tier):
        raise ApiError(422, "invalid", "tier must be 1, 2, 3 or 4")
    q = select(Event).where(Event.merged_into.is_(None))
    if event_class:
        q = q.where(Event.event_class.in_(event_class))
    if tier:
        q = q.where(Event.tier.in_(tier))
    if feeder:
        q = q.where(Event.feeder_id == feeder)
    if state:
        q = q.where(Event.state.in_(state))
    elif not include_closed:
        q = q.where(Event.state.not_in(("restored", "cancelled")))
    q = q.order_by(Event.tier, Event.weight.desc(), Event.started_at).limit(limit)
    with request.app.state.oms.db.read() as session:
        return [EventOut.model_validate(e) for e in session.scalars(q)]


@router.get("/events/{event_id}", response_model=EventDetail, summary="One event with evidence, history, crews")
def event_detail(event_id: PathId, request: Request, _: Principal = Depends(DISPATCHER)):
    with request.app.state.oms.db.read() as session:
        ev = session.get(Event, event_id)
        if ev is None:
            raise ApiError(404, "not_found", f"no event {event_id!r}")
        history = session.scalars(select(EventHistory).where(EventHistory.event_id == event_id)
                                  .order_by(EventHistory.id)).all()
        assignments = session.scalars(select(Assignment).where(Assignment.event_id == event_id)
                                      .order_by(Assignment.id)).all()
        report_ids = session.scalars(select(Report.id).where(Report.event_id == event_id)
                                     .order_by(Report.id).limit(1000)).all()
        return EventDetail(**EventOut.model_validate(ev).model_dump(), evidence=ev.evidence,
                           history=[HistoryOut.model_validate(h, from_attributes=True) for h in history],
                           assignments=[AssignmentOut.model_validate(a) for a in assignments],
                           report_ids=list(report_ids))


@router.post("/events/{event_id}/confirm", response_model=EventOut, summary="Confirm an event (optionally its cause)")
def confirm(event_id: PathId, body: ConfirmIn, request: Request, who: Principal = Depends(DISPATCHER)):
    return _live(request).confirm(event_id, who.name, cause=body.cause, note=body.note)


@router.post("/events/{event_id}/cancel", response_model=EventOut, summary="Cancel (false alarm, customer side)")
def cancel(event_id: PathId, body: CancelIn, request: Request, who: Principal = Depends(DISPATCHER)):
    return _live(request).cancel(event_id, who.name, body.reason)


@router.post("/events/{event_id}/restore", response_model=EventOut,
             summary="Mark an event restored, or part of it (devices / service points back by switching)")
def restore(event_id: PathId, body: RestoreIn, request: Request, who: Principal = Depends(DISPATCHER)):
    return _live(request).restore(event_id, who.name, cause=body.cause, note=body.note, devices=body.devices,
                                  service_points=body.service_points)


@router.post("/events/{event_id}/merge", response_model=EventOut, summary="Merge other events into this one")
def merge(event_id: PathId, body: MergeIn, request: Request, who: Principal = Depends(DISPATCHER)):
    return _live(request).merge(event_id, body.event_ids, who.name)


@router.post("/events/{event_id}/split", response_model=list[EventOut],
             summary="Split: the outage is really at a device below this event's device")
def split(event_id: PathId, body: SplitIn, request: Request, who: Principal = Depends(DISPATCHER)):
    return _live(request).split(event_id, body.device_id, who.name)


@router.get("/plans/current", response_model=PlanOut | None,
            summary="The latest plan (proposed for review in 'propose' mode, else the applied one)")
def current_plan(request: Request, _: Principal = Depends(DISPATCHER)):
    with request.app.state.oms.db.read() as session:
        plan = session.scalar(select(Plan).where(Plan.status.in_(("proposed", "applied")))
                              .order_by(Plan.id.desc()).limit(1))
        if plan is None:
            return None
        rows = session.scalars(select(Assignment).where(Assignment.plan_id == plan.id)).all()
        return PlanOut(**{k: getattr(plan, k) for k in ("id", "created_at", "status", "solver", "objective",
                                                        "detail")},
                       assignments=[AssignmentOut.model_validate(a) for a in rows])


@router.post("/plans/{plan_id}/accept", response_model=list[AssignmentOut], summary="Apply a proposed plan")
def accept_plan(plan_id: DbId, request: Request, who: Principal = Depends(DISPATCHER)):
    return _live(request).accept_plan(plan_id, who.name)


@router.post("/assignments", response_model=AssignmentOut, status_code=201,
             summary="Override: put this crew on this event (locked by default; the optimizer keeps it)")
def assign(body: AssignIn, request: Request, who: Principal = Depends(DISPATCHER)):
    return _live(request).assign(body.event_id, body.crew_id, lock=body.lock, actor=who.name)


@router.post("/assignments/{assignment_id}/lock", response_model=AssignmentOut, summary="Lock or unlock")
def lock(assignment_id: DbId, body: LockIn, request: Request, who: Principal = Depends(DISPATCHER)):
    return _live(request).set_lock(assignment_id, body.locked, who.name)


@router.get("/crews", response_model=list[CrewOut], summary="Crews with position and status")
def crews(request: Request, _: Principal = Depends(CREW_VIEW)):
    with request.app.state.oms.db.read() as session:
        return [CrewOut.model_validate(c) for c in session.scalars(select(Crew).order_by(Crew.id))]


@router.put("/crews/{crew_id}", response_model=CrewOut, summary="Create or update a crew")
def put_crew(crew_id: PathId, body: CrewIn, request: Request, who: Principal = Depends(DISPATCHER)):
    if body.id != crew_id:
        raise ApiError(422, "invalid", f"crew id in the body ({body.id!r}) differs from the path ({crew_id!r})")
    return _live(request).upsert_crew(body, who.name)
