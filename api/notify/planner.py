"""Turns event changes into outbox rows: proactive notices, crew dispatched / ETA, ETR updates, restoration.

The planner watches the ``events`` table (what the live engine persists) rather than hooking into the engine, so
it runs in a notification worker process and never slows the engine down. Every second it reads the events
updated since its last look (with an overlap: a transaction may commit an older ``updated_at`` late), follows
merges to the surviving event, finds the audience — the event's reporters who left contact details, and every
opted-in contact downstream of the event's device — and asks :func:`api.notify.policy.decide` per audience and
kind. Decisions are written with the ledger in one transaction; idempotency keys (kind, event, audience, content)
make a rescan, a restart or a second planner harmless. An ETR update goes out when the event's published ETR changes:
the engine decided that by the one no-churn rule (:mod:`outage.etr_policy`); the planner adds no threshold.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from api.notify import confirm as confirm_mod
from api.notify.config import NotifySettings
from api.notify.models import NotifyContact, NotifyLedger, NotifyOptOut, normalize_address
from api.notify.policy import (
    CREW_STATES,
    NOTICE_STATES,
    Sent,
    affected_service_points,
    choose_route,
    contact_problem,
    decide,
    digest,
    etr_digest,
    etr_probability,
    quiet_until,
)
from api.store.db import Database
from api.store.models import ACTIVE_ASSIGNMENT, Assignment, Event, OutboxMessage, Report, utcnow
from outage.figures import event_customers

log = logging.getLogger("oms.notify.planner")


@dataclass(frozen=True, slots=True)
class Audience:
    """One person on one channel: the unit of 'at most one message per event per kind'."""

    channel: str
    address: str
    language: str
    reporter: bool
    reference: str | None = None
    quiet_start: int | None = None
    quiet_end: int | None = None
    timezone: str | None = None
    contact_id: int | None = None

    @property
    def key(self) -> str:
        return f"{self.channel}:{normalize_address(self.channel, self.address)}"


class Planner:
    def __init__(self, db: Database, settings: NotifySettings, *, network=None, channels: set[str] | None = None,
                 clock=utcnow, lookback: timedelta = timedelta(days=1)) -> None:
        self.db, self.s, self.clock = db, settings, clock
        self.channels = channels or {"log"}
        self.watermark: datetime | None = None
        #: Events whose planning failed: retried on the next scans even once the watermark has moved past them.
        self.retry: set[str] = set()
        self._to_park: dict[int, str] = {}
        self.lookback = lookback
        self.topology, self.substation_nodes = None, {}
        if network is not None:
            from gis.topology import build

            self.topology = build(network)
            self.substation_nodes = dict(zip(network.substations["substation_id"].astype(str),
                                             network.substations["source_node"].astype(str), strict=True))
        self.stats = {"scans": 0, "queued": 0, "coalesced": 0, "failed": 0, "parked": 0}

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - the next scan retries; keys make it idempotent
                log.exception("notification planning failed")
            stop.wait(self.s.plan_interval_s)

    def scan(self, now: datetime | None = None) -> int:
        """Plan notifications for events changed since the last scan. Returns the outbox rows written."""
        now = now or self.clock()
        since = (self.watermark - timedelta(seconds=30)) if self.watermark else now - self.lookback
        with self.db.read() as session:
            changed = session.scalars(select(Event).where(Event.updated_at >= since)).all()
            if self.retry:
                changed += session.scalars(select(Event).where(Event.id.in_(list(self.retry)))).all()
            roots: dict[str, Event] = {}
            for ev in changed:
                root, hops = ev, 0
                while root.merged_into and hops < 20:
                    nxt = session.get(Event, root.merged_into)
                    if nxt is None:
                        break
                    root, hops = nxt, hops + 1
                roots[root.id] = root
        self.watermark = now
        written = 0
        for ev in roots.values():
            try:
                written += self.plan_event(ev, now)
                self.retry.discard(ev.id)
            except IntegrityError:  # another planner got there first; its rows stand
                log.info("event %s planned concurrently; skipped", ev.id)
            except Exception:  # noqa: BLE001 - one event's failure must not stop the others' notices
                log.exception("planning event %s failed; retried next scan", ev.id)
                self.retry.add(ev.id)
                self.stats["failed"] += 1
        self.stats["scans"] += 1
        self.stats["queued"] += written
        return written

    # ---------------------------------------------------------------------------------------------- one event
    def plan_event(self, ev: Event, now: datetime) -> int:
        if ev.state == "cancelled":
            return 0
        family = event_family(ev)
        with self.db.read() as session:
            reporters, subscribers = self.people(session, ev)
            ledger = {(r.audience, r.kind): r for r in session.scalars(
                select(NotifyLedger).where(NotifyLedger.event_id.in_(family))).all()}
            crew_eta = session.scalar(select(Assignment.eta).where(
                Assignment.event_id == ev.id, Assignment.status.in_(ACTIVE_ASSIGNMENT),
                Assignment.eta.is_not(None)).order_by(Assignment.eta).limit(1))
            crew = session.scalar(select(Assignment.id).where(
                Assignment.event_id == ev.id, Assignment.status.in_(ACTIVE_ASSIGNMENT)).limit(1)) is not None
            opted = {(o.channel, o.address) for o in session.scalars(select(NotifyOptOut).where(
                NotifyOptOut.opted_out.is_(True)))} if (reporters or subscribers) else set()
        if self._to_park:
            self._park(self._to_park)
            self._to_park = {}
        told = {aud for aud, _ in ledger}
        audience: dict[str, Audience] = {}
        for a in subscribers + reporters:  # a reporter's entry wins (their language and reference)
            if (a.channel, normalize_address(a.channel, a.address)) not in opted:
                audience[a.key] = a
        context = {"customers": event_customers(ev.customers_out), "cause": ev.cause if ev.cause_confirmed else None,
                   "etr_earliest": ev.etr_earliest.isoformat() if ev.etr_earliest else None,
                   "etr_latest": ev.etr_latest.isoformat() if ev.etr_latest else None,
                   "etr_probability": etr_probability(ev.etr_detail),
                   "crew_eta": crew_eta.isoformat() if crew_eta else None}
        plans = []
        for a in audience.values():
            states_etr = False  # a notice or crew message sent now states the ETR itself
            for kind, dig in self._kinds(ev, a, crew, a.key in told):
                if kind == "etr_update" and states_etr:
                    continue
                last = ledger.get((a.key, kind))
                sent = Sent(last.digest, last.etr, last.at) if last is not None else None
                quiet = quiet_until(now, a.quiet_start, a.quiet_end, a.timezone) if not a.reporter else None
                d = decide(kind, sent, dig, now, quiet_end=quiet)
                if d.send:
                    plans.append((a, kind, dig, d.at, last))
                    states_etr = states_etr or kind in ("outage_notice", "crew_dispatched")
        if not plans:
            return 0
        with self.db.write() as session, session.begin():
            for a, kind, dig, at, last in plans:
                self._write(session, ev, a, kind, dig, at, last, context)
        return len(plans)

    def _kinds(self, ev: Event, a: Audience, crew: bool, told_before: bool):
        """(kind, digest) pairs this audience should have now, given the event's state."""
        if ev.state == "restored":
            if a.reporter or told_before:
                yield "restoration", digest("restored")
            return
        # one caller's event (a single customer, or a call judged customer-side) is not announced while unconfirmed
        notice_worthy = ev.state in NOTICE_STATES or (
            ev.state == "unconfirmed" and ev.event_class not in ("single_customer", "customer_side"))
        if not notice_worthy:
            return
        if not a.reporter:
            yield "outage_notice", digest("notice")
        if ev.state in CREW_STATES and crew:
            yield "crew_dispatched", digest("crew")
        if ev.etr_latest is not None:
            yield "etr_update", published_etr(ev)

    def _write(self, session, ev: Event, a: Audience, kind: str, dig: str, at: datetime, last, context) -> None:
        payload = {"to": a.address, "language": a.language,
                   "context": {**context, "reference": a.reference}}
        key = f"{kind}:{ev.id}:{a.key}:{dig}"[:120]
        outbox_id = None
        if kind == "etr_update" and last is not None and last.outbox_id is not None:
            # coalesce: a waiting ETR update is replaced by the newer one instead of sending both
            res = session.execute(update(OutboxMessage).where(
                OutboxMessage.id == last.outbox_id, OutboxMessage.status == "pending").values(
                payload=payload, idempotency_key=key, next_attempt_at=at))
            if res.rowcount:
                outbox_id = last.outbox_id
                self.stats["coalesced"] += 1
        if outbox_id is None:
            outbox_id = session.scalar(insert(OutboxMessage).returning(OutboxMessage.id).values(
                kind=kind, event_id=ev.id, channel=a.channel, payload=payload, status="pending", attempts=0,
                idempotency_key=key, created_at=self.clock(), next_attempt_at=at))
        etr = ev.etr_latest
        values = {"digest": dig, "etr": etr if kind == "etr_update" else None, "outbox_id": outbox_id, "at": at}
        row = session.scalar(select(NotifyLedger).where(NotifyLedger.audience == a.key,
                                                        NotifyLedger.event_id == ev.id, NotifyLedger.kind == kind))
        if row is None:
            session.add(NotifyLedger(audience=a.key, event_id=ev.id, kind=kind, **values))
        else:
            for k, v in values.items():
                setattr(row, k, v)
        if kind in ("outage_notice", "crew_dispatched") and etr is not None:
            # the notice states the ETR: an ETR update is only news once the published ETR changes
            self._ledger_etr(session, a.key, ev.id, etr, published_etr(ev), at)
        session.flush()

    @staticmethod
    def _ledger_etr(session, audience: str, event_id: str, etr: datetime, dig: str, at: datetime) -> None:
        row = session.scalar(select(NotifyLedger).where(NotifyLedger.audience == audience,
                                                        NotifyLedger.event_id == event_id,
                                                        NotifyLedger.kind == "etr_update"))
        if row is None:
            session.add(NotifyLedger(audience=audience, event_id=event_id, kind="etr_update",
                                     digest=dig, etr=etr, at=at))

    # ---------------------------------------------------------------------------------------------- audiences
    def people(self, session, ev: Event) -> tuple[list[Audience], list[Audience]]:
        """Who is told about ``ev``: its reporters (those of events merged into it too) and the enrolled proactive
        contacts downstream of its device. The planner's notices and a dispatcher's note reach the same people."""
        return self._reporters(session, event_family(ev)), self._subscribers(session, ev)

    def _reporters(self, session, family: list[str]) -> list[Audience]:
        rows = session.execute(select(Report.reference, Report.contact, Report.language, Report.phone,
                                      Report.client_id).where(
            Report.event_id.in_(family), Report.contact.is_not(None)).order_by(Report.id)).all()
        out, unconfirmed = [], []
        for reference, contact, language, phone, client_id in rows:
            contact = contact or {}
            prefer = contact.get("prefer") if contact.get("prefer") not in (None, "none", "app") else None
            route = choose_route(prefer, {"sms": contact.get("sms"), "email": contact.get("email"),
                                          "voice": contact.get("sms") or phone}, set(), self.channels)
            if route is None:
                continue
            a = Audience(route.channel, route.address, language or "en", True, reference)
            on = confirm_mod.needs_confirmation(client_id, route.channel)
            if on:
                unconfirmed.append((on, a))
            else:
                out.append(a)
        if unconfirmed:  # typed anonymously: only once the address is confirmed
            ok = confirm_mod.confirmed(session, {(on, normalize_address(on, a.address)) for on, a in unconfirmed})
            out += [a for on, a in unconfirmed if (on, normalize_address(on, a.address)) in ok]
        return out

    def _subscribers(self, session, ev: Event) -> list[Audience]:
        if self.topology is not None:
            devices = [d for d in [ev.device_id, *((ev.evidence or {}).get("extra_devices") or [])] if d]
            sps = affected_service_points(self.topology, devices, ev.sp_id, self.substation_nodes)
        else:
            sps = [ev.sp_id] if ev.sp_id else []
        out, parked = [], {}
        for i in range(0, len(sps), 900):
            for c in session.scalars(select(NotifyContact).where(NotifyContact.sp_id.in_(sps[i:i + 900]),
                                                                 NotifyContact.proactive.is_(True),
                                                                 NotifyContact.parked.is_(None))):
                problem = contact_problem(c.timezone, c.language)
                if problem is not None:  # stored before enrollment validated it: set aside, never retried
                    parked[c.id] = problem
                    continue
                route = choose_route(c.prefer, {"sms": c.sms, "email": c.email, "voice": c.voice,
                                                "webhook": c.webhook_url}, set(), self.channels)
                if route is not None:
                    out.append(Audience(route.channel, route.address, c.language, False, None, c.quiet_start,
                                        c.quiet_end, c.timezone, c.id))
        self._to_park.update(parked)  # written once the read is over (plan_event)
        return out

    def _park(self, reasons: dict[int, str]) -> None:
        with self.db.write() as session, session.begin():
            for cid, reason in reasons.items():
                session.execute(update(NotifyContact).where(NotifyContact.id == cid).values(
                    parked=reason[:200], updated_at=self.clock()))
        self.stats["parked"] += len(reasons)
        log.warning("parked %d contacts the planner cannot serve: %s", len(reasons),
                    "; ".join(f"{cid}: {r}" for cid, r in list(reasons.items())[:5]))


def published_etr(ev) -> str:
    """The digest of an ``events`` row's published ETR (range and stated probability)."""
    return etr_digest(ev.etr_earliest, ev.etr_latest, etr_probability(ev.etr_detail))


def event_family(ev: Event) -> list[str]:
    """The event's id and those of the events merged into it: their reporters and ledger rows are its own."""
    return [ev.id, *((ev.evidence or {}).get("merged_from") or [])]
