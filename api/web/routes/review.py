"""Dispatcher routes for public reports no service point matched: the review list, the service point search, and
the two decisions (match: the report goes to the engine as if located; dismiss). See :mod:`api.service.review`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.service import review
from api.web.auth import Principal, require
from api.web.schemas import BigDbId, In

router = APIRouter(prefix="/review", tags=["review"])
DISPATCHER = require("dispatcher", "admin")


class UnmatchedReport(BaseModel):
    """What the member sent, as they typed it (no service point fits it)."""

    id: int
    reference: str
    received_at: datetime
    channel: str
    power: str
    account: str | None
    meter: str | None
    phone: str | None
    address: str | None
    comment: str | None
    hazards: list[str]
    medical_equipment: bool


class UnmatchedList(BaseModel):
    total: int = Field(description="reports waiting for review (the list holds the newest of them)")
    reports: list[UnmatchedReport]


class ServicePointHit(BaseModel):
    sp_id: str
    address: str
    account: str
    meter: str
    feeder: str


class MatchIn(In):
    sp_id: str = Field(min_length=1, max_length=64, description="the service point the member meant")


class DismissIn(In):
    note: str | None = Field(
        None, max_length=200, description="why (a prank, a duplicate, outside the territory)"
    )


class ReviewOut(BaseModel):
    id: int
    review: Literal["matched", "dismissed"]
    sp_id: str | None
    by: str
    at: datetime


_NOT_WAITING = {
    404: {"description": "no such report"},
    409: {"description": "already reviewed, located after all, or not analysed yet"},
}


@router.get(
    "/reports",
    response_model=UnmatchedList,
    summary="Public reports no service point matched, newest first, waiting for a person",
)
def unmatched_reports(
    request: Request,
    _: Principal = Depends(DISPATCHER),
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> UnmatchedList:
    total, rows = review.unmatched(request.app.state.oms.db, limit, offset)
    return UnmatchedList(
        total=total,
        reports=[
            UnmatchedReport(
                id=r.id,
                reference=r.reference,
                received_at=r.received_at,
                channel=r.channel,
                power=r.power,
                account=r.account,
                meter=r.meter,
                phone=r.phone,
                address=r.address,
                comment=r.comment,
                hazards=list(r.hazards or ()),
                medical_equipment=bool(r.medical_equipment),
            )
            for r in rows
        ],
    )


@router.get(
    "/service-points",
    response_model=list[ServicePointHit],
    summary="Search the territory's service points by address words, account, meter, id or phone",
    responses={503: {"description": "no territory is loaded"}},
)
async def service_points(
    q: Annotated[str, Query(min_length=2, max_length=100, description="what to look for")],
    request: Request,
    _: Principal = Depends(DISPATCHER),
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> list[dict[str, str]]:
    live = request.app.state.oms.live
    return await run_in_threadpool(review.search_service_points, live, q, limit)  # a scan: off the event loop


@router.post(
    "/reports/{report_id}/match",
    response_model=ReviewOut,
    summary="Match a report to a service point: the engine takes it as if intake had located it",
    responses={
        **_NOT_WAITING,
        422: {"description": "unknown service point"},
        503: {"description": "standby process, or no territory"},
    },
)
def match_report(
    report_id: BigDbId, body: MatchIn, request: Request, who: Principal = Depends(DISPATCHER)
) -> dict:
    return review.match(request.app.state.oms.live, report_id, body.sp_id, who.name)


@router.post(
    "/reports/{report_id}/dismiss",
    response_model=ReviewOut,
    summary="Dismiss a report: off the review list, kept on record with who dismissed it and why",
    responses=_NOT_WAITING,
)
def dismiss_report(
    report_id: BigDbId, request: Request, body: DismissIn | None = None, who: Principal = Depends(DISPATCHER)
) -> dict:
    return review.dismiss(request.app.state.oms.live, report_id, who.name, body.note if body else None)
