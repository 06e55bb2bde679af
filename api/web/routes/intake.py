"""Machine intake: meter head-end batches (``POST /ami``) and SCADA device operations (``POST /scada``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import func, select

from api.errors import ApiError, json_body, parse_json
from api.service.intake import MAX_CLOCK_SKEW
from api.store.models import MeterMessage, ScadaMessage
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
    """``POST /ami``: store the known meters' messages in one transaction, list the rest as rejected.

    Messages count by their own time: a batch is stored in time order, and a message older than what its meter has
    since said (a power restore before the meter's latest stored last gasp, a last gasp before its latest stored
    power restore) is rejected with the reason, since taken in arrival order it would end an outage that started
    after it, or open one that is over."""
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
            rows.append({"meter": m.meter, "kind": m.kind, "at": m.at, "index": i})
    stale = _stale_meter_messages(state, rows) if rows else {}
    if stale:
        rejected.extend(Rejected(index=r["index"], reason=stale[r["index"]]) for r in rows if r["index"] in stale)
        rejected.sort(key=lambda r: r.index)
        rows = [r for r in rows if r["index"] not in stale]
    rows.sort(key=lambda r: r["at"])  # in time order: the engine takes them as stored
    for r in rows:
        del r["index"]
    if not rows:
        raise ApiError(422, "invalid", "no message in the batch was accepted",
                       [{"field": f"body.messages.{r.index}", "message": r.reason} for r in rejected[:100]])
    try:
        accepted = await state.writer.submit_meter(rows)
    except Exception as exc:
        raise ApiError(503, "unavailable", "the batch could not be stored; please retry") from exc
    return Response(IntakeAccepted(accepted=accepted, rejected=rejected).model_dump_json(), status_code=202,
                    media_type="application/json")


def _stale_meter_messages(state, rows: list[dict]) -> dict[int, str]:
    """Batch positions of messages older than their meter's latest stored message of the other kind, with why."""
    meters = sorted({r["meter"] for r in rows})
    latest: dict[tuple[str, str], datetime] = {}
    with state.db.read() as session:
        for i in range(0, len(meters), 500):
            latest.update(((m, k), at) for m, k, at in session.execute(
                select(MeterMessage.meter, MeterMessage.kind, func.max(MeterMessage.at))
                .where(MeterMessage.meter.in_(meters[i:i + 500])).group_by(MeterMessage.meter, MeterMessage.kind)))
    stale = {}
    for r in rows:
        if r["kind"] == "power_restore":
            gasp = latest.get((r["meter"], "last_gasp"))
            if gasp is not None and r["at"] < gasp:
                stale[r["index"]] = (f"meter {r['meter']!r}: power restore at {r['at'].isoformat()} is before its "
                                     f"latest last gasp at {gasp.isoformat()}; it cannot end the outage since")
        else:
            back = latest.get((r["meter"], "power_restore"))
            if back is not None and r["at"] < back:
                stale[r["index"]] = (f"meter {r['meter']!r}: last gasp at {r['at'].isoformat()} is before its "
                                     f"latest power restore at {back.isoformat()}; that outage is over")
    return stale


@router.post("/scada", status_code=202, response_model=IntakeAccepted, summary="A device operation from SCADA")
async def post_scada(body: ScadaIn, request: Request, principal: Principal = Depends(INTEGRATION)):
    state = request.app.state.oms
    rate_limit(state, principal)
    if (late := out_of_window(body.at, *window(state))) is not None:
        raise ApiError(422, "invalid", late, [{"field": "body.at", "message": late}])
    if not state.live.known_device(body.device_id):
        raise ApiError(404, "not_found", f"no device {body.device_id!r}", [{"field": "body.device_id", "message": "no such device"}])
    # By its own time: a close stamped before the device's latest opening cannot end it (taken in arrival order it
    # would make the event "restored before it started", and every report on that window fail); an opening stamped
    # before the device's latest close tells of an outage that is over.
    other = OPENS if body.kind == "close" else ("close",)
    with state.db.read() as session:
        since = session.scalar(select(func.max(ScadaMessage.at)).where(
            ScadaMessage.device_id == body.device_id, ScadaMessage.kind.in_(other)))
    if since is not None and body.at < since:
        latest = "opening" if body.kind == "close" else "close"
        why = f"{body.kind} at {body.at.isoformat()} is before the device's latest {latest} at {since.isoformat()}"
        raise ApiError(422, "invalid", why, [{"field": "body.at", "message": why}])
    try:
        await state.writer.submit_scada({"device_id": body.device_id, "kind": body.kind, "at": body.at})
    except Exception as exc:
        raise ApiError(503, "unavailable", "the message could not be stored; please retry") from exc
    return IntakeAccepted(accepted=1)
