"""Notification endpoints (the lead mounts ``router``): the SMS gateway's inbound webhook (STOP / START / HELP /
OUT), the acknowledgment SLA and dead letters for dispatchers, and customer enrollment for proactive notices.

Inbound SMS: with ``OMS_NOTIFY_INBOUND_SECRET`` set, the gateway signs the raw body (HMAC-SHA256, hex, header
``X-OMS-Signature``) and no token is needed; otherwise an integration token is required. Replies go through the
outbox like every other message, so they are retried and logged; the STOP confirmation is the one message sent to
an opted-out number, as the FCC's revocation rule allows.
"""

from __future__ import annotations

import hmac
import inspect
import json
from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import Field, field_validator, model_validator
from sqlalchemy import insert, select, update

from api.errors import ApiError
from api.notify import confirm as confirm_mod
from api.notify.channels import sign, webhook_target
from api.notify.config import NotifySettings
from api.notify.models import NotifyContact, NotifyInbound, normalize_address
from api.notify.policy import e164, parse_keyword, zone_problem
from api.notify.sla import ack_sla
from api.notify.worker import set_opt_out
from api.store.models import OutboxMessage, Report, utcnow
from api.web.auth import Principal, current_principal, require
from api.web.routes.public import ANYONE, rate_limit
from api.web.schemas import CONTROL, BigDbId, In

router = APIRouter(prefix="/notify", tags=["notifications"])
DISPATCHER = require("dispatcher", "admin")
INTEGRATION = require("integration", "admin")


def _settings(request: Request) -> NotifySettings:
    s = getattr(request.app.state, "notify_settings", None)
    if s is None:
        s = request.app.state.notify_settings = NotifySettings()
    return s


class ContactIn(In):
    sp_id: str = Field(min_length=1, max_length=64)
    account: str | None = Field(None, max_length=64)
    name: str | None = Field(None, max_length=120)
    email: str | None = Field(None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")
    sms: str | None = Field(None, max_length=32, description="E.164, e.g. +15550102000 (spaces, dashes allowed)")
    voice: str | None = Field(None, max_length=32, description="E.164")
    webhook_url: str | None = Field(None, max_length=500, pattern=r"^https?://")
    language: Literal["en", "es"] = "en"
    prefer: Literal["sms", "email", "voice", "webhook"] = "sms"
    proactive: bool = True
    quiet_start: int | None = Field(None, ge=0, lt=1440, description="minutes after local midnight")
    quiet_end: int | None = Field(None, ge=0, lt=1440)
    timezone: str | None = Field(None, max_length=64, description="IANA name, e.g. America/Chicago")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        problem = zone_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _quiet_pair(self) -> ContactIn:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("give both quiet_start and quiet_end, or neither")
        return self


@router.post("/contacts", status_code=201, summary="Enroll a customer contact for outage notices")
def add_contacts(body: list[ContactIn], request: Request, _: Principal = Depends(INTEGRATION)) -> dict:
    if len(body) > 10_000:
        raise ApiError(413, "payload_too_large", f"{len(body)} contacts; at most 10,000 per request")
    live = request.app.state.oms.live
    directory = getattr(live, "directory", None)
    s = _settings(request)
    rows = []
    for i, c in enumerate(body):
        row = c.model_dump()
        for f in ("sms", "voice"):  # stored in E.164: the planner and the gateway see one form
            if row[f] is None:
                continue
            row[f] = e164(row[f], s.default_country_code)
            if row[f] is None:
                raise ApiError(422, "invalid", f"{f} {getattr(c, f)!r} is not a phone number (E.164: +15550102000)",
                               [{"field": f"body.{i}.{f}", "message": "not a phone number in E.164 form"}])
        rows.append(row)
        if directory is not None and c.sp_id not in directory.sp_xy:
            raise ApiError(404, "not_found", f"no service point {c.sp_id!r}",
                           [{"field": f"body.{i}.sp_id", "message": "no such service point"}])
        if c.webhook_url:
            _, why = webhook_target(c.webhook_url, s.webhook_allow_hosts, s.webhook_allow_networks)
            if why:
                raise ApiError(422, "invalid", f"webhook_url refused: {why}",
                               [{"field": f"body.{i}.webhook_url", "message": why}])
        if not (c.email or c.sms or c.voice or c.webhook_url):
            raise ApiError(422, "invalid", "give at least one of email, sms, voice, webhook_url",
                           [{"field": f"body.{i}", "message": "no address"}])
    if not body:  # an empty executemany would insert one row of defaults
        return {"added": 0}
    now = utcnow()
    with request.app.state.oms.db.write() as session, session.begin():
        session.execute(insert(NotifyContact), [{**row, "created_at": now, "updated_at": now} for row in rows])
    return {"added": len(body)}


async def _inbound_principal(request: Request, x_oms_signature: Annotated[str | None, Header()] = None):
    secret = _settings(request).inbound_secret
    if secret:
        body = await request.body()
        if not x_oms_signature or not hmac.compare_digest(sign(secret, body), x_oms_signature):
            raise ApiError(401, "unauthorized", "inbound SMS signature missing or wrong")
        return None
    principal = current_principal(request)
    if inspect.isawaitable(principal):
        principal = await principal
    if principal.anonymous:
        raise ApiError(401, "unauthorized", "the inbound SMS webhook needs an integration token or a signature")
    if principal.role not in ("integration", "admin"):
        raise ApiError(403, "forbidden", "the inbound SMS webhook needs an integration token or a signature")
    return principal


#: Bounds on the inbound fields (an SMS is at most 10 concatenated parts; provider ids are short).
INBOUND_LIMITS = {"From": 32, "Body": 1600, "MessageSid": 64}
_INBOUND_FIELD = {"type": "string"}
_INBOUND_SCHEMA = {"type": "object", "properties": {
    "From": {**_INBOUND_FIELD, "maxLength": 32}, "from": {**_INBOUND_FIELD, "maxLength": 32},
    "Body": {**_INBOUND_FIELD, "maxLength": 1600}, "text": {**_INBOUND_FIELD, "maxLength": 1600},
    "MessageSid": {**_INBOUND_FIELD, "maxLength": 64}, "id": {**_INBOUND_FIELD, "maxLength": 64}},
    # the sender is required: From (or from) not empty
    "anyOf": [{"required": [f], "properties": {f: {"type": "string", "minLength": 1}}} for f in ("From", "from")]}
INBOUND_BODY = {"requestBody": {"required": True, "description": "the gateway's message (Twilio-style form or JSON)",
                                "content": {"application/x-www-form-urlencoded": {"schema": _INBOUND_SCHEMA},
                                            "application/json": {"schema": _INBOUND_SCHEMA}}}}


def _inbound_field(form: dict, names: tuple[str, str]) -> str:
    present = [form[n] for n in names if n in form]
    value = next((v for v in present if v), "")
    if any(not isinstance(v, str) for v in present):  # as documented: null or a number is not a string
        raise ApiError(422, "invalid", f"inbound SMS field {names[0]} must be a string",
                       [{"field": f"body.{names[0]}", "message": "not a string"}])
    value, limit = str(value), INBOUND_LIMITS[names[0]]
    if len(value) > limit or CONTROL.search(value.replace("\n", "").replace("\r", "")):
        raise ApiError(422, "invalid", f"inbound SMS field {names[0]}: at most {limit} characters, no control "
                                       "characters", [{"field": f"body.{names[0]}", "message": "out of bounds"}])
    return value


@router.post("/sms/inbound", summary="Inbound SMS from the gateway: STOP, START, HELP, OUT (still out)",
             openapi_extra=INBOUND_BODY)
async def sms_inbound(request: Request, principal=Depends(_inbound_principal)) -> dict:
    state = request.app.state.oms
    if principal is None:  # signed by the gateway: meter the gateway as a whole
        state.limiter.take("sms-gateway", state.settings.trusted_rate_limit_per_minute,
                           state.settings.trusted_rate_limit_burst)
    else:
        rate_limit(state, principal)
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            form = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(422, "invalid", "inbound SMS body is not JSON") from None
        if not isinstance(form, dict):
            raise ApiError(422, "invalid", "inbound SMS body must be a JSON object")
    else:  # form-encoded, as Twilio-style gateways post (parsed here: no python-multipart needed)
        form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
    sender = _inbound_field(form, ("From", "from"))
    text = _inbound_field(form, ("Body", "text"))
    msg_id = _inbound_field(form, ("MessageSid", "id")) or None
    if not sender:
        raise ApiError(422, "invalid", "inbound SMS without a sender", [{"field": "From", "message": "required"}])
    keyword = parse_keyword(text)
    address = normalize_address("sms", sender)
    now = utcnow()
    with state.db.read() as session:
        # the sender's latest report: its language, and where they are if the phone is not on file
        last = session.execute(select(Report.language, Report.sp_id).where(
            Report.contact["sms"].as_string() == sender).order_by(Report.id.desc()).limit(1)).first()
    language = last[0] if last else "en"
    outcome = keyword
    if keyword == "out":
        directory = getattr(state.live, "directory", None)
        sp_id = (directory.sp_by_phone(sender) if directory is not None else None) or (last[1] if last else None)
        if sp_id is None:
            keyword_reply, outcome = "help", "OUT from an unknown number: sent HELP"
        else:
            row = {"power": "out", "channel": "sms", "client_id": "sms-gateway",
                   "idempotency_key": f"sms:{msg_id}" if msg_id else None, "sp_id": sp_id, "phone": sender,
                   "language": language, "contact": {"sms": sender, "prefer": "sms"}, "hazards": [],
                   "comment": f"SMS: {text[:200]}"}
            reference, _, _ = await state.writer.submit_report(row)
            keyword_reply, outcome = None, f"still out: report {reference}"  # its acknowledgment is the reply
    else:
        keyword_reply = {"stop": "stop_confirm", "start": "start_confirm"}.get(keyword, "help")
    with state.db.write() as session, session.begin():
        if keyword in ("stop", "start"):
            set_opt_out(session, "sms", address, keyword == "stop", "keyword", now)
        if keyword != "stop":  # a text from this number proves it: acknowledgments held for it go out now
            released = confirm_mod.confirm(session, "sms", sender, now)
            if released and keyword == "start":  # YES answered a confirmation request: the ack is the reply
                keyword_reply, outcome = None, f"confirmed: {released} acknowledgment(s) released"
        session.add(NotifyInbound(address=address, body=text[:1000], keyword=keyword, outcome=outcome[:200],
                                  provider_id=msg_id, at=now))
        if keyword_reply:
            key = f"{keyword_reply}:inbound:{msg_id or address + ':' + now.isoformat()}"[:120]
            exists = session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key))
            if exists is None:
                session.add(OutboxMessage(kind=keyword_reply, channel="sms", payload={
                    "to": sender, "language": language, "context": {}}, status="pending", attempts=0,
                    idempotency_key=key, created_at=now, next_attempt_at=now))
    return {"keyword": keyword, "outcome": outcome}


class ConfirmIn(In):
    code: str = Field(min_length=8, max_length=64)


@router.post("/confirm", summary="Confirm an address given with an anonymous report (the code from the e-mail)")
def confirm(body: ConfirmIn, request: Request, principal: Principal = Depends(ANYONE)) -> dict:
    state = request.app.state.oms
    rate_limit(state, principal)  # codes are 128-bit random; the limit only keeps guessing expensive
    with state.db.write() as session, session.begin():
        done = confirm_mod.confirm_code(session, body.code, utcnow())
    if done is None:
        raise ApiError(404, "not_found", "unknown or already used confirmation code")
    return {"confirmed": done[0], "released": done[1]}


@router.get("/sla", summary="Acknowledgment SLA: latency, reports at risk and in breach")
def sla(request: Request, _: Principal = Depends(DISPATCHER),
        hours: Annotated[float, Query(gt=0, le=24 * 31)] = 24.0) -> dict:
    from datetime import timedelta

    s = _settings(request)
    with request.app.state.oms.db.read() as session:
        return ack_sla(session, utcnow(), sla_s=s.ack_sla_s, at_risk_s=s.ack_at_risk_s,
                       window=timedelta(hours=hours))


@router.get("/dead", summary="Dead letters: messages that could not be delivered, with the last error")
def dead_letters(request: Request, _: Principal = Depends(DISPATCHER),
                 limit: Annotated[int, Query(ge=1, le=5000)] = 200) -> list[dict]:
    with request.app.state.oms.db.read() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "dead")
                               .order_by(OutboxMessage.id.desc()).limit(limit)).all()
    return [{"id": r.id, "kind": r.kind, "channel": r.channel, "event_id": r.event_id, "report_id": r.report_id,
             "attempts": r.attempts, "last_error": _status_line(r.last_error), "created_at": r.created_at}
            for r in rows]


def _status_line(error: str | None) -> str | None:
    """The first line, cut short: a provider's (or an older row's webhook) reply body is not for display."""
    return error.splitlines()[0][:200] if error else error


@router.post("/dead/{row_id}/retry", summary="Queue a dead letter again (after fixing the provider or address)")
def retry_dead(row_id: BigDbId, request: Request, _: Principal = Depends(DISPATCHER)) -> dict:
    with request.app.state.oms.db.write() as session, session.begin():
        res = session.execute(update(OutboxMessage).where(OutboxMessage.id == row_id,
                                                          OutboxMessage.status == "dead")
                              .values(status="pending", attempts=0, next_attempt_at=utcnow(), claimed_by=None))
        if not res.rowcount:
            raise ApiError(404, "not_found", f"no dead letter {row_id}")
    return {"id": row_id, "status": "pending"}
