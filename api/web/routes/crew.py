"""Crew routes: my assignments, status updates, position pings. A crew sees and changes only its own work."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from api.errors import ApiError
from api.store.models import ACTIVE_ASSIGNMENT, Assignment
from api.web.auth import Principal, require
from api.web.routes.intake import out_of_window, window
from api.web.schemas import AssignmentOut, CrewOut, CrewStatusIn, DbId, PositionIn

router = APIRouter(prefix="/crew", tags=["crew"])
CREW = require("crew")


def _crew_id(who: Principal) -> str:
    if not who.crew_id:
        raise ApiError(403, "forbidden", f"user {who.name!r} is not attached to a crew")
    return who.crew_id


@router.get("/assignments", response_model=list[AssignmentOut], summary="My open assignments, in route order")
def my_assignments(request: Request, who: Principal = Depends(CREW)):
    crew_id = _crew_id(who)
    with request.app.state.oms.db.read() as session:
        rows = session.scalars(select(Assignment).where(
            Assignment.crew_id == crew_id, Assignment.status.in_(ACTIVE_ASSIGNMENT))
            .order_by(Assignment.sequence, Assignment.id))
        return [AssignmentOut.model_validate(a) for a in rows]


@router.post("/assignments/{assignment_id}/status", response_model=AssignmentOut,
             summary="En route, on site (with the cause found), needs help, or restored (with cause); "
                     "optionally the crew's own ETR")
def update_status(assignment_id: DbId, body: CrewStatusIn, request: Request, who: Principal = Depends(CREW)):
    return request.app.state.oms.live.crew_update(assignment_id, _crew_id(who), body.status, cause=body.cause,
                                                  note=body.note, actor=who.name, etr=body.etr)


@router.post("/position", response_model=CrewOut, summary="Where my crew is now")
def position(body: PositionIn, request: Request, who: Principal = Depends(CREW)):
    if body.at is not None and (late := out_of_window(body.at, *window(request.app.state.oms))) is not None:
        raise ApiError(422, "invalid", late, [{"field": "body.at", "message": late}])
    return request.app.state.oms.live.crew_position(_crew_id(who), body.lat, body.lon, body.at)
