"""Public intake: ``POST /reports`` (members and their gateways), report status by reference, health."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy import func, select

from api.errors import ApiError, json_body, parse_json
from api.maps.geojson import etr_confidence
from api.store.models import ACTIVE_ASSIGNMENT, Assignment, Event, Report
from api.web.auth import Principal, require
from api.web.schemas import CONTROL, Health, PublicEvent, ReportAccepted, ReportIn, ReportStatus
from outage.figures import event_customers

router = APIRouter(tags=["public"])
ANYONE = require("member", "crew", "integration", "dispatcher", "admin")
TRUSTED = ("integration", "dispatcher", "admin")
#: What every member is told, matched or not: the answer must not tell whether an account or phone exists.
REVIEW_NOTE = ("Thank you. If the details do not match a service point on file, a person will look at the report "
               "and it stays on record.")


#: Event state -> the stage a member reads ("dispatched" is our word, not theirs).
STAGE = {"unconfirmed": "assessing", "probable": "assessing", "confirmed": "assessing",
         "dispatched": "crew_assigned", "en_route": "crew_en_route", "on_site": "crew_on_site",
         "restored": "restored", "cancelled": "cancelled"}


class PublicEventStatus(PublicEvent):
    """The outage behind a report followed to its end: ``stage`` in plain terms, ``restored_at`` once restored
    (then no ETR and no crew: they are over), ``etr_confidence`` from the ETR window's width."""

    stage: Literal["assessing", "crew_assigned", "crew_en_route", "crew_on_site", "restored", "cancelled"]
    restored_at: datetime | None = None
    etr_confidence: Literal["high", "medium", "low"] | None = None


class ReportStatusOut(ReportStatus):
    event: PublicEventStatus | None


def rate_limit(state, principal: Principal, cost: float = 1.0) -> None:
    s = state.settings
    if principal.role in TRUSTED:
        state.limiter.take(principal.client_key, s.trusted_rate_limit_per_minute, s.trusted_rate_limit_burst, cost)
    else:
        state.limiter.take(principal.client_key, s.rate_limit_per_minute, s.rate_limit_burst, cost)


@router.post("/reports", status_code=202, response_model=ReportAccepted,
             summary="Report an outage or hazard (stored durably before the answer)",
             openapi_extra=json_body(ReportIn, "the report"),
             responses={400: {"description": "malformed JSON"},
                        404: {"description": "the account, meter, phone or address names no service point"},
                        422: {"description": "invalid report, a place outside the service area, or ambiguous"},
                        413: {"description": "body too large"}, 429: {"description": "rate limited"}})
async def post_report(request: Request, principal: Principal = Depends(ANYONE)) -> Response:
    """Send an ``Idempotency-Key`` header (at most 120 characters) to make retries safe: a repeat answers with the
    first report's reference and ``duplicate: true``. (Served by :mod:`api.web.fastpath`; this route documents it.)"""
    return await accept_report(request.app.state.oms, principal, await request.body(), request.headers)


async def accept_report(state, principal: Principal, raw: bytes, headers) -> Response:
    """``POST /reports``: rate limit, validate, locate, store with its acknowledgment (group commit), answer 202."""
    rate_limit(state, principal)
    body = parse_json(ReportIn, raw)
    idempotency_key = headers.get("idempotency-key")
    if idempotency_key is not None and (not 0 < len(idempotency_key) <= 120 or CONTROL.search(idempotency_key)):
        raise ApiError(422, "invalid", "Idempotency-Key header must be 1 to 120 characters, none a control character")
    public = principal.role == "member"
    try:
        sp_id = state.live.locate_report(body)  # raises 404/422 naming an unknown account / meter / place
    except ApiError:
        # Members get one answer whether or not their account, phone or address is on file; the report is kept
        # (no service point) for a person to match. Only coordinates outside the area are refused: no one's data.
        if not public or body.lat is not None:
            raise
        sp_id = None
    row = body.model_dump(exclude={"contact"})
    # A key is scoped to the caller *and* the report: two people behind one address (a shared IP) who happen to
    # send the same key do not swallow each other's reports; a retry of the same report still is one report.
    digest = hashlib.blake2b(body.model_dump_json().encode(), digest_size=8).hexdigest()
    row.update(contact=body.contact.model_dump(exclude_none=True) if body.contact else None,
               client_id=f"{principal.client_key}#{digest}", idempotency_key=idempotency_key, sp_id=sp_id)
    try:
        reference, received_at, duplicate = await state.writer.submit_report(row)
    except Exception as exc:
        raise ApiError(503, "unavailable", "the report could not be stored; please retry") from exc
    return Response(ReportAccepted(reference=reference, received_at=received_at, duplicate=duplicate,
                                   status_url=f"/reports/{reference}",
                                   note=REVIEW_NOTE if public else None).model_dump_json(),
                    status_code=202, media_type="application/json")


@router.get("/reports/{reference}", response_model=ReportStatusOut, summary="Look up a report by its reference")
def report_status(reference: Annotated[str, Path(max_length=24)], request: Request,
                  principal: Principal = Depends(ANYONE)) -> ReportStatusOut:
    state = request.app.state.oms
    rate_limit(state, principal, cost=0.25)  # references are unguessable; a look-up flood is still refused
    with state.db.read() as session:
        report = session.scalar(select(Report).where(Report.reference == reference))
        if report is None:
            raise ApiError(404, "not_found", "no report with this reference")
        event = None
        if report.event_id is not None:
            ev = session.get(Event, report.event_id)
            while ev is not None and ev.merged_into:  # follow merges to the surviving event
                ev = session.get(Event, ev.merged_into)
            if ev is not None:
                event = public_event(session, ev)
        status = "linked" if event else "analysed" if report.processed_at else "received"
        return ReportStatusOut(reference=report.reference, received_at=report.received_at, status=status,
                               event=event)


def public_event(session, ev: Event) -> PublicEventStatus:
    """What a reporter may know of their outage, to the end: after restoration the restore time, not a stale ETR
    or "no crew" (the crew's assignment is done, which used to read as "not yet assigned")."""
    cause = ev.cause if ev.cause_confirmed else None
    if ev.state in ("restored", "cancelled"):
        return PublicEventStatus(state=ev.state, stage=STAGE[ev.state], customers_out=0, cause=cause,
                                 etr_earliest=None, etr_latest=None, crew_assigned=False,
                                 restored_at=ev.restored_at if ev.state == "restored" else None)
    crews = session.scalars(select(Assignment.status).where(
        Assignment.event_id == ev.id, Assignment.status.in_(ACTIVE_ASSIGNMENT))).all()
    furthest = max((ACTIVE_ASSIGNMENT.index(c) for c in crews), default=-1)
    stage = ("crew_assigned", "crew_en_route", "crew_on_site")[furthest] if furthest >= 0 else STAGE.get(
        ev.state, "assessing")
    confidence = etr_confidence(ev.etr_earliest, ev.etr_latest)
    return PublicEventStatus(state=ev.state, stage=stage, customers_out=event_customers(ev.customers_out), cause=cause,
                             etr_earliest=ev.etr_earliest, etr_latest=ev.etr_latest, crew_assigned=bool(crews),
                             etr_confidence=confidence, etr_probability=ev.etr_probability)


@router.get("/health", response_model=Health, summary="Liveness and backlog",
            responses={503: {"model": Health, "description": "degraded: same body; a load balancer takes the "
                                                             "process out (or, with ?leader=1, it is not the leader)"}})
def health(request: Request, leader: bool = False) -> Response:
    """200 when the database answers, the intake writer commits and the engine is in sync (or deliberately off,
    or a standby); 503 with the same body otherwise. ``?leader=1``: 503 unless this process runs the engine (for a
    load balancer's pool of dispatcher traffic)."""
    state = request.app.state.oms
    try:
        with state.db.read() as session:
            pending = session.scalar(select(func.count()).select_from(Report).where(Report.processed_at.is_(None)))
        database = "ok"
    except Exception:  # noqa: BLE001 - health must answer even when the database does not
        pending, database = -1, "unreachable"
    writer, engine, role = state.writer.status, state.live.status, state.live.role
    ok = database == "ok" and writer == "ok" and not engine.startswith("degraded") and engine != "stopped"
    body = Health(status="ok" if ok else "degraded", database=database, writer=writer, engine=engine, role=role,
                  pending_reports=pending or 0)
    return Response(body.model_dump_json(), status_code=200 if ok and (role != "standby" or not leader) else 503,
                    media_type="application/json")
