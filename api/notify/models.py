"""Notification tables on the service's ``Base``: contacts and their preferences, opt-outs, the per-customer
ledger of what was said about which event, the delivery log, and inbound SMS.

Addresses are stored normalised (:func:`normalize_address`) so that ``+1 (555) 010-2000`` from a report and
``15550102000`` from the SMS gateway's inbound webhook are the same person.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.service.territory import phone_digits
from api.store.models import Base, utcnow

#: Every channel a message can go out on. ``log`` is the demo channel (and the answer for reports without contact).
CHANNELS = ("sms", "email", "voice", "webhook", "log")
#: Outbox states this package adds to ``api.store.models.OUTBOX_STATES``: not sent on purpose (opted out, superseded).
SUPPRESSED = "suppressed"


def normalize_address(channel: str, address: str) -> str:
    """The comparable form of an address: phone digits for sms/voice, lower-case for email, as given otherwise."""
    if channel in ("sms", "voice"):
        return phone_digits(address)
    if channel == "email":
        return address.strip().lower()
    return address.strip()


class NotifyContact(Base):
    """A customer who asked to hear about outages at a service point (proactive notices), with preferences.

    ``quiet_start``/``quiet_end`` are minutes after local midnight in ``timezone`` (e.g. 22:00-07:00 is 1320/420);
    non-urgent messages wait until the quiet period ends."""

    __tablename__ = "notify_contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sp_id: Mapped[str] = mapped_column(String(64), index=True)
    account: Mapped[str | None] = mapped_column(String(64), default=None)
    name: Mapped[str | None] = mapped_column(String(120), default=None)
    email: Mapped[str | None] = mapped_column(String(200), default=None)
    sms: Mapped[str | None] = mapped_column(String(32), default=None)
    voice: Mapped[str | None] = mapped_column(String(32), default=None)
    webhook_url: Mapped[str | None] = mapped_column(String(500), default=None)
    language: Mapped[str] = mapped_column(String(8), default="en")
    prefer: Mapped[str] = mapped_column(String(16), default="sms")
    #: Opted in to proactive outage notices (not only answers to their own reports).
    proactive: Mapped[bool] = mapped_column(Boolean, default=True)
    quiet_start: Mapped[int | None] = mapped_column(Integer, default=None)
    quiet_end: Mapped[int | None] = mapped_column(Integer, default=None)
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    #: Why the planner set this contact aside (e.g. an unknown time zone); parked contacts get no notices.
    parked: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotifyOptOut(Base):
    """Consent per channel and address: ``opted_out`` after STOP (or a provider's opt-out error), cleared by START."""

    __tablename__ = "notify_optouts"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_notify_optouts_address"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(200))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(40), default="keyword")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class NotifyLedger(Base):
    """What one audience (``channel:address``) was last told about one event, per message kind.

    The planner consults it so a customer gets at most one message per event per kind unless the content changed
    (and an ETR update only when the change passes the threshold)."""

    __tablename__ = "notify_ledger"
    __table_args__ = (UniqueConstraint("audience", "event_id", "kind", name="uq_notify_ledger"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    audience: Mapped[str] = mapped_column(String(220))
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    digest: Mapped[str] = mapped_column(String(32))
    etr: Mapped[datetime | None] = mapped_column(default=None)
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class NotifyDelivery(Base):
    """One delivery attempt: accepted by the provider (with its message id), retried, dead-lettered or suppressed."""

    __tablename__ = "notify_deliveries"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    outbox_id: Mapped[int] = mapped_column(BigInteger, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(120), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    worker: Mapped[str] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(16))  # accepted, retry, dead, suppressed
    provider_id: Mapped[str | None] = mapped_column(String(160), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class NotifyConfirmation(Base):
    """Whether an address given anonymously (a web report typing a phone or e-mail) belongs to the reporter.

    Until it is ``confirmed`` (SMS reply YES, any text from that number, or the e-mail's code) nothing but one
    confirmation request per ``confirm_interval_s`` goes to it; the report's acknowledgment waits (``held``)."""

    __tablename__ = "notify_confirmations"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_notify_confirmations_address"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(200))  # normalised
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    token_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    requested_at: Mapped[datetime | None] = mapped_column(default=None)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)


class NotifyInbound(Base):
    """An inbound SMS from the gateway's webhook, with the keyword it was read as and what was done."""

    __tablename__ = "notify_inbound"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    address: Mapped[str] = mapped_column(String(32), index=True)
    body: Mapped[str] = mapped_column(Text)
    keyword: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(200), default="")
    provider_id: Mapped[str | None] = mapped_column(String(160), default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)


Index("ix_notify_deliveries_at", NotifyDelivery.at)


_UPSERTS: dict[str, Any] = {}


def ledger_upsert(dialect: str):
    """The ledger upsert for ``executemany``: sending threads record concurrently, and two acknowledgments to one
    person about one event must not collide on the unique key (select-then-insert did, on PostgreSQL)."""
    stmt = _UPSERTS.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        ins = upsert(NotifyLedger.__table__)
        stmt = _UPSERTS[dialect] = ins.on_conflict_do_update(
            index_elements=["audience", "event_id", "kind"],
            set_={c: ins.excluded[c] for c in ("digest", "etr", "outbox_id", "at")})
    return stmt
