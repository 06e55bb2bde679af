"""Machine intake: meter head-end batches (``POST /ami``) and SCADA device operations (``POST /scada``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import func, select

from api.errors import ApiError, json_body, parse_json
from api.service.intake import MAX_CLOCK_SKEW
from api.store.models import ScadaMessage
from api.web.auth import Principal, require
from api.web.routes.public import rate_limit
from api.web.schemas import AmiBatchIn, IntakeAccepted, Rejected, ScadaIn

router = APIRouter(tags=["integration"])
INTEGRATION = require("integration", "admin")
#: SCADA operations that open a device; a ``close`` ends the latest of them.
OPENS = ("lockout", "commanded_open")


def window(state) -> tuple[datetime, datetime]:
    """The times a device or meter message may carry: not older than the configured age, not in the future."""
    now = state.clock()
    return now - timedelta(hours=state.settings.max_message_age_hours), now + MAX_CLOCK_SKEW


def out_of_window(at: datetime, earliest: datetime, latest: datetime) -> str | None:
    if at > latest:
        return f"time {at.isoformat()} is in the future"
    if at < earliest:
        return f"time {at.isoformat()} is older than {earliest.isoformat()} (OMS_MAX_MESSAGE_AGE_HOURS)"
    return None


@router.post("/ami", status_code=202, response_model=IntakeAccepted,
             summary="A batch of meter messages (last gasp, power restore); unknown meters are listed as rejected",
             openapi_extra=json_body(AmiBatchIn, "meter messages from the head-end"))
async def post_ami(request: Request, principal: Principal = Depends(INTEGRATION)):
    """(Served by :mod:`api.web.fastpath`; this route documents it.)"""
    return await accept_ami(request.app.state.oms, principal, await request.body(), request.headers)


async def accept_ami(state, principal: Principal, raw: bytes, _headers) -> Response:
    """``POST /ami``: store the known meters' messages in one transaction, list the rest as rejected."""
    body = parse_json(AmiBatchIn, raw)  # one Rust call for thousands of messages
    if len(body.messages) > state.settings.ami_batch_max:
        raise ApiError(413, "payload_too_large",
                       f"batch has {len(body.messages)} messages; at most {state.settings.ami_batch_max}")
    rate_limit(state, principal, cost=max(1.0, len(body.messages) / 100))
    earliest, latest = window(state)
    rows, rejected = [], []
    for i, m in enumerate(body.messages):
        if (late := out_of_window(m.at, earliest, latest)) is not None:
            rejected.append(Rejected(index=i, reason=f"meter {m.meter!r}: {late}"))
        elif not state.live.known_meter(m.meter):
            rejected.append(Rejected(index=i, reason=f"unknown meter {m.meter!r}"))
        else:
            rows.append({"meter": m.meter, "kind": m.kind, "at": m.at})
    if not rows:
        raise ApiError(422, "invalid", "no message in the batch was accepted",
                       [{"field": f"body.messages.{r.index}", "message": r.reason} for r in rejected[:100]])
    try:
        accepted = await state.writer.submit_meter(rows)
    except Exception as exc:
        raise ApiError(503, "unavailable", "the batch could not be stored; please retry") from exc
    return Response(IntakeAccepted(accepted=accepted, rejected=rejected).model_dump_json(), status_code=202,
                    media_type="application/json")


@router.post("/scada", status_code=202, response_model=IntakeAccepted, summary="A device operation from SCADA")
async def post_scada(body: ScadaIn, request: Request, principal: Principal = Depends(INTEGRATION)):
    state = request.app.state.oms
    rate_limit(state, principal)
    if (late := out_of_window(body.at, *window(state))) is not None:
        raise ApiError(422, "invalid", late, [{"field": "body.at", "message": late}])
    if not state.live.known_device(body.device_id):
        raise ApiError(422, "invalid", f"unknown device {body.device_id!r}")
    if body.kind == "close":
        # A close stamped before the device's latest opening cannot end it: taken in arrival order it would make
        # the event "restored before it started" (and every report on that window fail).
        with state.db.read() as session:
            opened = session.scalar(select(func.max(ScadaMessage.at)).where(
                ScadaMessage.device_id == body.device_id, ScadaMessage.kind.in_(OPENS)))
        if opened is not None and body.at < opened:
            why = f"close at {body.at.isoformat()} is before the device's latest opening at {opened.isoformat()}"
            raise ApiError(422, "invalid", why, [{"field": "body.at", "message": why}])
    try:
        await state.writer.submit_scada({"device_id": body.device_id, "kind": body.kind, "at": body.at})
    except Exception as exc:
        raise ApiError(503, "unavailable", "the message could not be stored; please retry") from exc
    return IntakeAccepted(accepted=1)
