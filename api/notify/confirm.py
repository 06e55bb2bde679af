"""Confirmation of addresses given anonymously: nobody can make the utility text or e-mail someone else.

A report posted without a token (``client_id`` ``ip:...``) may type any phone number or e-mail address. Until that
address is confirmed it gets one message only — a confirmation request (SMS: reply YES; e-mail: a link with a
code), at most one per ``confirm_interval_s`` — and the report's acknowledgment is ``held``; confirming releases it,
and the planner leaves such reporters out of later notices until then. Reports that prove their number need no
step: an SMS from that number (the inbound webhook), or anything a gateway or staff posted with a token.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update

from api.notify.models import NotifyConfirmation, normalize_address
from api.store.models import OutboxMessage

#: Outbox state of an acknowledgment waiting for its address to be confirmed.
HELD = "held"


def needs_confirmation(client_id: str | None, channel: str) -> str | None:
    """The channel to confirm on (voice by SMS) if a report from ``client_id`` must confirm its ``channel`` address."""
    if not (client_id or "").startswith("ip:") or channel not in ("sms", "email", "voice"):
        return None
    return "sms" if channel == "voice" else channel


def confirmed(session, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Those ``(channel, normalised address)`` pairs that are confirmed."""
    if not pairs:
        return set()
    rows = session.execute(select(NotifyConfirmation.channel, NotifyConfirmation.address).where(
        NotifyConfirmation.confirmed.is_(True), NotifyConfirmation.address.in_([a for _, a in pairs]))).all()
    return {(c, a) for c, a in rows} & pairs


def hold_key(channel: str, address: str) -> str:
    return f"{channel}:{normalize_address(channel, address)}"


def request(session, channel: str, address: str, language: str, reference: str | None, now: datetime,
            interval_s: float) -> bool:
    """Queue a confirmation request unless one went out within ``interval_s``. True if the address is already
    confirmed (the caller then releases what it held)."""
    norm = normalize_address(channel, address)
    row = session.scalar(select(NotifyConfirmation).where(NotifyConfirmation.channel == channel,
                                                          NotifyConfirmation.address == norm))
    if row is not None and row.confirmed:
        return True
    if row is not None and row.requested_at is not None and now - row.requested_at < timedelta(seconds=interval_s):
        return False  # rate limit: one request per address per interval, whoever asks
    code = secrets.token_urlsafe(16)
    if row is None:
        row = NotifyConfirmation(channel=channel, address=norm, confirmed=False, requests=0)
        session.add(row)
    row.token_hash, row.requested_at, row.requests = _hash(code), now, row.requests + 1
    session.flush()
    session.execute(insert(OutboxMessage).values(
        kind="confirm_request", channel=channel, status="pending", attempts=0, created_at=now, next_attempt_at=now,
        idempotency_key=f"confirm:{channel}:{norm}:{row.requests}"[:120],
        payload={"to": address, "language": language, "context": {"reference": reference, "confirm_code": code}}))
    return False


def confirm(session, channel: str, address: str, now: datetime) -> int:
    """Mark ``address`` confirmed (creating the row) and release its held acknowledgments; returns how many."""
    norm = normalize_address(channel, address)
    row = session.scalar(select(NotifyConfirmation).where(NotifyConfirmation.channel == channel,
                                                          NotifyConfirmation.address == norm))
    if row is None:
        session.add(NotifyConfirmation(channel=channel, address=norm, confirmed=True, requests=0, confirmed_at=now))
    elif not row.confirmed:
        row.confirmed, row.confirmed_at, row.token_hash = True, now, None
    session.flush()
    return release(session, channel, address, now)


def confirm_code(session, code: str, now: datetime) -> tuple[str, int] | None:
    """Confirm the address a code was sent to: ``(channel, released)``, or None for an unknown or used code."""
    row = session.scalar(select(NotifyConfirmation).where(NotifyConfirmation.token_hash == _hash(code)))
    if row is None:
        return None
    row.confirmed, row.confirmed_at, row.token_hash = True, now, None
    session.flush()
    return row.channel, release(session, row.channel, row.address, now)


def release(session, channel: str, address: str, now: datetime) -> int:
    """Held acknowledgments for this address back to pending (the worker sends them now it is confirmed)."""
    return session.execute(update(OutboxMessage).where(
        OutboxMessage.status == HELD, OutboxMessage.payload["held_for"].as_string() == hold_key(channel, address))
        .values(status="pending", next_attempt_at=now, last_error=None)
        .execution_options(synchronize_session=False)).rowcount


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
