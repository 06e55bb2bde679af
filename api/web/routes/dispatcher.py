"""Dispatcher routes: events (list, detail, confirm / cancel / merge / split / restore), plans, assignments, crews."""

from __future__ import annotations

import hashlib
import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from sqlalchemy import insert, select

from api.errors import ApiError
from api.store.models import ACTIVE_ASSIGNMENT, Assignment, Crew, Event, EventHistory, Plan, Report
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
    In,
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


class NoteIn(In):
    text: str = Field(min_length=1, max_length=300, description="a short note, sent as written")


#: Channels a note may take; the notification worker sends on those it has and records the rest.
NOTE_CHANNELS = {"sms", "email", "voice", "webhook"}
_planners: dict[int, Any] = {}  # by id(network): the planner's topology is built once per territory
_planners_lock = threading.Lock()


def _audience_planner(request: Request):
    """A notification planner used only for its audience (reporters + enrolled contacts downstream)."""
    from api.notify.config import NotifySettings
    from api.notify.planner import Planner

    live, db = _live(request), request.app.state.oms.db
    with _planners_lock:
        planner = _planners.get(id(live.network))
        if planner is None:
            settings = getattr(request.app.state, "notify_settings", None) or NotifySettings()
            _planners.clear()
            planner = _planners[id(live.network)] = Planner(db, settings, network=live.network,
                                                            channels=NOTE_CHANNELS)
    return planner


@router.post("/events/{event_id}/note", status_code=201,
             summary="Send a note to the event's customers: its reporters and the enrolled contacts it takes out")
def note_to_customers(event_id: PathId, body: NoteIn, request: Request, who: Principal = Depends(DISPATCHER)):
    """One outbox message (``dispatcher_note``, in each reader's language) per person, and one timeline entry.
    Opt-outs are honoured; enrolled contacts' quiet hours hold it back, reporters get it at once."""
    from api.notify.models import NotifyOptOut, normalize_address
    from api.notify.policy import quiet_until
    from api.store.models import OutboxMessage

    live = _live(request)
    with live.db.read() as session:
        ev = session.get(Event, event_id)
        if ev is None:
            raise ApiError(404, "not_found", f"no event {event_id!r}")
        if ev.merged_into:
            raise ApiError(409, "conflict", f"event {event_id} was merged into {ev.merged_into}; write there")
        if ev.state == "cancelled":
            raise ApiError(409, "conflict", f"event {event_id} is cancelled: it has no customers to tell")
        planner = _audience_planner(request)
        reporters, subscribers = planner.people(session, ev)
        people = subscribers + reporters
        opted = {(o.channel, o.address) for o in session.scalars(
            select(NotifyOptOut).where(NotifyOptOut.opted_out.is_(True)))} if people else set()
    audience = {a.key: a for a in people  # a reporter's entry wins (their language and reference)
                if (a.channel, normalize_address(a.channel, a.address)) not in opted}
    now = live.clock()
    with live.db.write() as session, session.begin():
        entry = EventHistory(event_id=ev.id, at=now, actor=who.name, action="customer_note",
                             detail={"note": body.text, "recipients": len(audience)})
        session.add(entry)
        session.flush()
        rows = [{"kind": "dispatcher_note", "event_id": ev.id, "channel": a.channel, "status": "pending",
                 "attempts": 0, "created_at": now,
                 "payload": {"to": a.address, "language": a.language,
                             "context": {"reference": a.reference, "note": body.text}},
                 "idempotency_key": f"note:{entry.id}:{hashlib.blake2b(k.encode(), digest_size=12).hexdigest()}",
                 "next_attempt_at": (None if a.reporter else
                                     quiet_until(now, a.quiet_start, a.quiet_end, a.timezone)) or now}
                for k, a in audience.items()]
        if rows:
            session.execute(insert(OutboxMessage), rows)
    return {"event_id": ev.id, "recipients": len(audience), "history_id": entry.id}


@router.get("/events", response_model=list[EventOut], summary="Events, most urgent first")
def list_events(request: Request, _: Principal = Depends(DISPATCHER),
                event_class: Annotated[list[EventClass] | None, Query(alias="class")] = None,
                tier: Annotated[list[Annotated[int, Field(ge=1, le=4)]] | None, Query(description="1..4")] = None,
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


# ------------------------------------------------------------------------------------ what the console reads
class ModeIn(In):
    mode: Literal["auto", "propose"]


def _crew_names(session) -> dict[str, str]:
    return {c.id: c.name or c.id for c in session.scalars(select(Crew))}


@router.get("/events/{event_id}/evidence", summary="An event's evidence (calls with their answers, AMI, SCADA), "
                                                    "timeline (who did what), critical customers and ETR basis")
def event_evidence(event_id: PathId, request: Request, _: Principal = Depends(DISPATCHER)) -> dict[str, Any]:
    with request.app.state.oms.db.read() as session:
        ev = session.get(Event, event_id)
        if ev is None:
            raise ApiError(404, "not_found", f"no event {event_id!r}")
        names = _crew_names(session)
        calls = session.scalars(select(Report).where(Report.event_id == event_id)
                                .order_by(Report.received_at.desc()).limit(200)).all()
        history = session.scalars(select(EventHistory).where(EventHistory.event_id == event_id)
                                  .order_by(EventHistory.id)).all()
        work = session.scalars(select(Assignment).where(Assignment.event_id == event_id,
                                                        Assignment.status != "proposed")
                               .order_by(Assignment.id)).all()
        evidence = ev.evidence or {}
        timeline = [{"at": h.at, "actor": h.actor, "action": h.action, "from": h.from_state, "to": h.to_state,
                     "detail": h.detail} for h in history]
        timeline += [{"at": a.created_at, "actor": "dispatcher" if a.manual else "optimizer",
                      "action": "assignment", "from": None, "to": a.status,
                      "detail": {"crew": names.get(a.crew_id, a.crew_id), "eta": a.eta, "locked": a.locked}}
                     for a in work]
        timeline.sort(key=lambda t: t["at"])
        return {
            "event": EventOut.model_validate(ev).model_dump(),
            "etr": {"earliest": ev.etr_earliest, "latest": ev.etr_latest, **(ev.etr_detail or {})},
            "calls": [{"id": r.id, "at": r.received_at, "channel": r.channel, "power": r.power,
                       "hazards": r.hazards, "medical_equipment": r.medical_equipment,
                       "neighbours_out": r.neighbours_out, "address": r.address, "sp_id": r.sp_id,
                       "comment": r.comment} for r in calls],
            "calls_total": ev.report_count,
            "last_gasps": evidence.get("last_gasps", 0), "pings": evidence.get("pings", {}),
            "scada": evidence.get("scada", []), "power_on_evidence": evidence.get("power_on_evidence", 0),
            "critical": evidence.get("critical_kinds", {}), "medical": evidence.get("medical", 0),
            "merged_from": evidence.get("merged_from", []),
            "assignments": [{**AssignmentOut.model_validate(a).model_dump(), "crew_name": names.get(a.crew_id)}
                            for a in work],
            "timeline": timeline,
        }


@router.get("/crews/roster", summary="Crews with their current job, next jobs with ETAs, shift end, position age")
def roster(request: Request, _: Principal = Depends(DISPATCHER)) -> list[dict[str, Any]]:
    with request.app.state.oms.db.read() as session:
        crews = session.scalars(select(Crew).order_by(Crew.id)).all()
        active = session.scalars(select(Assignment).where(Assignment.status.in_(ACTIVE_ASSIGNMENT))
                                 .order_by(Assignment.crew_id, Assignment.sequence, Assignment.id)).all()
    jobs: dict[str, list[dict]] = {}
    for a in active:
        jobs.setdefault(a.crew_id, []).append({"assignment_id": a.id, "event_id": a.event_id, "status": a.status,
                                               "eta": a.eta, "locked": a.locked, "manual": a.manual})
    out = []
    for c in crews:
        mine = sorted(jobs.get(c.id, []), key=lambda j: ACTIVE_ASSIGNMENT.index(j["status"]), reverse=True)
        out.append({"id": c.id, "name": c.name or c.id, "status": c.status, "skills": c.skills,
                    "lat": c.lat, "lon": c.lon, "position_at": c.position_at, "shift_end": c.shift_end,
                    "current": mine[0] if mine else None, "next": mine[1:]})
    return out


def _plan_or_404(session, plan_id: int) -> Plan:
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise ApiError(404, "not_found", f"no plan {plan_id}")
    return plan


@router.get("/plans/{plan_id}/diff", summary="A plan against the work crews hold now: who moves, and the change in "
                                             "weighted customer-minutes until crews arrive")
def plan_diff(plan_id: DbId, request: Request, _: Principal = Depends(DISPATCHER)) -> dict[str, Any]:
    live = request.app.state.oms.live
    now = live.clock()
    with live.db.read() as session:
        plan = _plan_or_404(session, plan_id)
        names = _crew_names(session)
        proposed = {a.event_id: a for a in session.scalars(select(Assignment).where(
            Assignment.plan_id == plan_id, Assignment.status.in_(("proposed", *ACTIVE_ASSIGNMENT))))}
        current = {a.event_id: a for a in session.scalars(select(Assignment).where(
            Assignment.status.in_(ACTIVE_ASSIGNMENT),
            Assignment.plan_id.is_(None) | (Assignment.plan_id != plan_id)))}
        ids = set(proposed) | set(current)
        events = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_(ids)))} if ids else {}

    def wcm(a: Assignment | None, ev: Event | None) -> float:
        if a is None or a.eta is None or ev is None:
            return 0.0
        return float(ev.weight or 0.0) * max(0.0, (a.eta - now).total_seconds() / 60.0)

    moves, before, after = [], 0.0, 0.0
    for eid in sorted(ids):
        old, new, ev = current.get(eid), proposed.get(eid), events.get(eid)
        if old is not None and (old.locked or old.manual or old.status != "assigned"):
            new = None  # the dispatcher's or the crew's decision stands (see Replanner._apply)
        b, a = wcm(old, ev), wcm(new if new is not None else old, ev)
        before, after = before + b, after + a
        if new is not None and (old is None or old.crew_id != new.crew_id):
            moves.append({"event_id": eid, "tier": ev.tier if ev else None,
                          "customers_out": ev.customers_out if ev else None,
                          "from_crew": old.crew_id if old else None, "from_name": names.get(old.crew_id) if old else None,
                          "to_crew": new.crew_id, "to_name": names.get(new.crew_id),
                          "eta_before": old.eta if old else None, "eta_after": new.eta,
                          "delta": round(a - b, 1)})
    return {"plan": {"id": plan.id, "status": plan.status, "solver": plan.solver, "created_at": plan.created_at,
                     "objective": plan.objective, "notes": (plan.detail or {}).get("notes", []),
                     "excluded": (plan.detail or {}).get("excluded", {})},
            "moves": moves, "weighted_customer_minutes_before": round(before, 1),
            "weighted_customer_minutes_after": round(after, 1), "delta": round(after - before, 1)}


@router.post("/plans/{plan_id}/reject", summary="Reject a proposed plan: crews keep the work they hold")
def reject_plan(plan_id: DbId, request: Request, who: Principal = Depends(DISPATCHER)) -> dict[str, Any]:
    return _live(request).reject_plan(plan_id, who.name)


@router.put("/plans/mode", summary="Re-planning: 'auto' applies each plan, 'propose' waits for a dispatcher")
def plan_mode(body: ModeIn, request: Request, who: Principal = Depends(DISPATCHER)) -> dict[str, str]:
    live = request.app.state.oms.live
    settings = live.update_settings({"plan_mode": body.mode}, who.name)
    live.broker.publish("plan", {"mode": settings["plan_mode"], "by": who.name})
    return settings
