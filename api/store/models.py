"""The system of record: SQLAlchemy 2.0 typed tables.

Intake (``reports``, ``meter_messages``, ``scada_messages``) is append-only: the engine's in-memory state is rebuilt
from it on start. ``events`` and ``event_history`` are the engine's output plus every human decision (who, when,
what). ``crews``/``crew_positions``, ``plans``/``assignments`` hold dispatch; ``outbox`` is the transactional
notification queue (a report and its acknowledgment row are written in one transaction); ``users``/``api_tokens``
(SHA-256 of the token, never the token), ``web_sessions`` (browser sign-in) and ``audit_log`` cover who did what.

Times are stored as UTC and always come back timezone-aware (SQLite keeps no zone; :class:`UTCDateTime` adds it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Roles, from least to most trusted. ``member`` is also what an anonymous caller is.
ROLES = ("member", "crew", "integration", "dispatcher", "admin")
#: Intake vocabularies mirror :mod:`outage.reports` (the engine checks them again; the API rejects them first).
POWER_STATES = ("out", "partial", "flicker", "on")
REPORT_CHANNELS = ("web", "app", "ivr", "sms", "phone", "crew", "dispatcher")
HAZARDS = ("wires_down", "fire_sparks", "tree_on_line", "visible_damage")
METER_KINDS = ("last_gasp", "power_restore")
SCADA_OPERATIONS = ("lockout", "close", "commanded_open")
EVENT_STATES = ("unconfirmed", "probable", "confirmed", "dispatched", "en_route", "on_site", "restored", "cancelled")
CLOSED_STATES = ("restored", "cancelled")
CREW_STATUSES = ("available", "en_route", "on_site", "needs_help", "off_shift")
ASSIGNMENT_STATES = ("proposed", "assigned", "en_route", "on_site", "done", "cancelled")
#: A crew holds the job: assigned, driving to it, or working on it (in that order).
ACTIVE_ASSIGNMENT = ("assigned", "en_route", "on_site")
OUTBOX_STATES = ("pending", "claimed", "sent", "dead")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC that always reads back timezone-aware; naive input is refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    crew_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("crews.id"), default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: ``scrypt$n$r$p$salt$hash`` (see :func:`api.web.auth.hash_password`); None: no browser sign-in.
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)


class WebSession(Base):
    """A browser session: the cookie's SHA-256 (never the cookie), its user and its end. Signing out revokes it."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: First characters of the token, for an admin to tell tokens apart (not enough to use one).
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    #: After this the token no longer authenticates (None: never; tokens issued before 0003_sessions).
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class Report(Base):
    """A trouble report from a member, gateway or call taker. Personal data stays in this table."""

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("client_id", "idempotency_key", name="uq_reports_idempotency"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    #: The public reference a reporter uses to look the report up (random, unguessable).
    reference: Mapped[str] = mapped_column(String(24), unique=True)
    client_id: Mapped[str] = mapped_column(String(80))
    idempotency_key: Mapped[str | None] = mapped_column(String(120), default=None)
    power: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    hazards: Mapped[list[Any]] = mapped_column(default=list)
    medical_equipment: Mapped[bool] = mapped_column(Boolean, default=False)
    neighbours_out: Mapped[bool | None] = mapped_column(Boolean, default=None)
    account: Mapped[str | None] = mapped_column(String(64), default=None)
    meter: Mapped[str | None] = mapped_column(String(64), default=None)
    phone: Mapped[str | None] = mapped_column(String(32), default=None)
    address: Mapped[str | None] = mapped_column(String(200), default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    sp_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    language: Mapped[str] = mapped_column(String(8), default="en")
    contact: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set by the live engine once the report has gone through trouble-call analysis.
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    event_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    #: A person's decision on a report that matched no service point (``sp_id`` None, kept for review):
    #: ``matched`` (they set ``sp_id``; the engine then takes the report) or ``dismissed``; None: not reviewed.
    review: Mapped[str | None] = mapped_column(String(16), default=None)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    review_note: Mapped[str | None] = mapped_column(String(200), default=None)


Index("ix_reports_unprocessed", Report.processed_at, Report.id)


class MeterMessage(Base):
    """An AMI message (last gasp, power restore, ping) from the meter head-end."""

    __tablename__ = "meter_messages"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    meter: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)


class ScadaMessage(Base):
    """A device operation reported by SCADA (breaker/recloser open, close, lockout)."""

    __tablename__ = "scada_messages"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)


class Event(Base):
    """An outage event: what the engine predicted plus the dispatcher's decisions about it."""

    __tablename__ = "events"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    device_id: Mapped[str | None] = mapped_column(String(64), default=None)
    device_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    feeder_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    event_class: Mapped[str] = mapped_column(String(16), default="single_customer")
    sp_id: Mapped[str | None] = mapped_column(String(64), default=None)
    tier: Mapped[int] = mapped_column(Integer, default=4, index=True)
    priority_reason: Mapped[str] = mapped_column(Text, default="")
    weight: Mapped[float] = mapped_column(Float, default=0.0)
    customers_out: Mapped[int] = mapped_column(Integer, default=0)
    critical_count: Mapped[int] = mapped_column(Integer, default=0)
    hazards: Mapped[list[Any]] = mapped_column(default=list)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    cause: Mapped[str | None] = mapped_column(String(64), default=None)
    cause_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    explanation: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    nested_from: Mapped[str | None] = mapped_column(String(64), default=None)
    merged_into: Mapped[str | None] = mapped_column(String(64), default=None)
    #: ETR range (earliest/latest) with its confidence and basis.
    etr_earliest: Mapped[datetime | None] = mapped_column(default=None)
    etr_latest: Mapped[datetime | None] = mapped_column(default=None)
    etr_detail: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    restored_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def etr_probability(self) -> float | None:
        """The ETR range's stated probability (``etr_detail``), what every surface shows beside the range."""
        p = (self.etr_detail or {}).get("probability") if self.etr_latest is not None else None
        return float(p) if p is not None else None


class EventHistory(Base):
    """Every transition of an event with time and actor (``engine``, ``optimizer`` or a user name)."""

    __tablename__ = "event_history"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16), default=None)
    to_state: Mapped[str | None] = mapped_column(String(16), default=None)
    detail: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class Crew(Base):
    __tablename__ = "crews"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    skills: Mapped[list[Any]] = mapped_column(default=list)
    depot_id: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16), default="available")
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    position_at: Mapped[datetime | None] = mapped_column(default=None)
    shift_start: Mapped[datetime | None] = mapped_column(default=None)
    shift_end: Mapped[datetime | None] = mapped_column(default=None)


class CrewPosition(Base):
    __tablename__ = "crew_positions"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    crew_id: Mapped[str] = mapped_column(ForeignKey("crews.id"), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Plan(Base):
    """One optimizer run: proposed (waiting for a dispatcher), applied, rejected or superseded."""

    __tablename__ = "plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    solver: Mapped[str] = mapped_column(String(32), default="")
    objective: Mapped[float | None] = mapped_column(Float, default=None)
    detail: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class Assignment(Base):
    """A crew's job on an event. ``locked``/``manual`` work belongs to the dispatcher: the optimizer keeps it."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    crew_id: Mapped[str] = mapped_column(ForeignKey("crews.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="assigned")
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    eta: Mapped[datetime | None] = mapped_column(default=None)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """A notification waiting to be sent. Workers claim rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"), default=None, index=True)
    event_id: Mapped[str | None] = mapped_column(String(64), default=None)
    channel: Mapped[str | None] = mapped_column(String(16), default=None)
    payload: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Provider-side idempotency key: a crash never sends twice what the provider accepted once.
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(80), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


Index("ix_outbox_due", OutboxMessage.status, OutboxMessage.next_attempt_at)


class JournalEntry(Base):
    """Everything the live engine consumed, in order: intake rows by id, and dispatcher/crew actions with their
    arguments. Replaying the journal rebuilds the engine's in-memory state exactly after a restart; it is written in
    the same transaction as the engine's output, so the two never disagree."""

    __tablename__ = "engine_journal"
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # report, meter, scada, action, tick
    ref_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    at: Mapped[datetime]
    payload: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(48))
    target: Mapped[str | None] = mapped_column(String(120), default=None)
    detail: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class SettingRow(Base):
    """Operator settings changed at run time (roll-up rules, plan mode), as JSON values by key."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
