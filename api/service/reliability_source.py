"""Reliability reporting from the system's own records: interruption records, event summaries, acknowledgments.

The source of truth for who was out, from when to when, is the outage engine's per-customer
:class:`outage.records.Interruption` records (partial restorations and nested outages included, each customer-minute
once). The database does not store them; it stores the engine's *journal* (every input and action, in order), and
the engine is deterministic given its journal. So :class:`JournalReplica` replays the journal into its own engine,
exactly as the service does on restart, and keeps up by replaying only the entries added since its last call. While
replaying it also notes each ETR the moment it was issued (the database keeps only an event's latest ETR), which
ETR accuracy needs.

The rest comes from the tables: an event's start, restoration, tier, class and cause from ``events``; when a report
was acknowledged from the ``outbox`` (its ``acknowledgment`` row's ``sent_at``; never sent = not acknowledged); crew
time from ``assignments`` and the event history (see :func:`crew_hours`).

Conventions, chosen here and stated in every answer's ``notes`` where they matter:

- An event counts as an outage when it interrupted at least one customer (it has interruption records). Cancelled
  events, events merged into another and hazard-only events are not outages; their records (if any) belong to the
  event that absorbed them.
- An event's customers are the customers on its records (distinct service points), not its final count (which the
  engine sets to zero on restoration).
- The ETR of an event is the latest time of its range (what the customer was told to expect power by).
- Feeders are named by :meth:`gis.topology.Topology.feeder_name` in the engine's records and in customers served
  alike, so indices by feeder divide by that feeder's customers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from api.store.db import Database
from api.store.models import Assignment, Event, EventHistory, JournalEntry, OutboxMessage, Report, utcnow
from outage.records import Interruption
from outage.reliability import ReliabilityError
from outage.summary import EventSummary

#: Event states during which a crew is at work on an event (rolling to it or on site).
CREW_WORKING = ("en_route", "on_site")
#: Journal entries replayed per database read.
CHUNK = 5000


@dataclass
class ServiceRecords:
    """Everything the reliability and restoration reports need, taken from the service at ``as_of``."""

    interruptions: list[Interruption]
    events: list[EventSummary]
    acks: list[tuple[datetime, datetime | None]]
    as_of: datetime
    journal_seq: int  # the last journal entry the records include
    #: Stored rows the reports cannot use (e.g. an event restored before it started): left out, and named here.
    bad_rows: list[dict] = field(default_factory=list)


class JournalReplica:
    """An outage engine kept in step with the service's journal, for reporting (never writes to the database).

    ``catch_up()`` replays the entries added since the last call (the first call replays all of them) and is safe
    to call from several threads. The live engine writes the journal under one lock and commits each entry before
    the next, so entry numbers grow in commit order and reading ``seq > last`` misses nothing.
    """

    def __init__(self, db: Database, network, settings=None) -> None:
        from api.service.live import LiveEngine
        from api.service.stream import Broker
        from api.settings import Settings
        from outage.engine import OutageEngine

        self.db, self.network = db, network
        # a LiveEngine that is never started: its replay and action code is the one the service restarts with
        self._live = LiveEngine(settings or Settings(database_url=db.url), db, Broker())
        self._live._load_operator_settings()
        self._live.network = network
        self._live.engine = OutageEngine.from_network(network, clock=self._live.clock)
        if self._live.rules_name != "normal":
            self._live.engine.switch_rules(None, self._live.rules_name)
        self.seq = 0
        self.etrs: dict[str, list[tuple[datetime, datetime]]] = {}
        self._etr_seen: dict[str, object] = {}
        self._lock = threading.Lock()

    @property
    def engine(self):
        return self._live.engine

    def catch_up(self) -> int:
        """Replay new journal entries; returns how many were replayed."""
        with self._lock:
            replayed = 0
            with self.db.read() as session:
                while True:
                    chunk = session.scalars(select(JournalEntry).where(JournalEntry.seq > self.seq)
                                            .order_by(JournalEntry.seq).limit(CHUNK)).all()
                    if not chunk:
                        break
                    self._replay(session, chunk)
                    replayed += len(chunk)
                    self.seq = chunk[-1].seq
            return replayed

    def _replay(self, session, chunk: list[JournalEntry]) -> None:
        """Replay ``chunk`` in runs, stopping after each ETR action to note the ETR it issued."""
        run: list[JournalEntry] = []
        for entry in chunk:
            run.append(entry)
            payload = entry.payload or {}
            if entry.kind == "action" and payload.get("action") == "etr":
                self._live._replay(session, run)
                run = []
                self._note_etr(payload["event_id"], entry.at)
        if run:
            self._live._replay(session, run)

    def _note_etr(self, event_id: str, at: datetime) -> None:
        etr = self.engine.event(event_id).etr
        if etr is not None and etr is not self._etr_seen.get(event_id):
            self._etr_seen[event_id] = etr
            self.etrs.setdefault(event_id, []).append((at, etr.latest))

    def interruptions(self) -> list[Interruption]:
        return self.engine.interruptions()


def crew_hours(session, event_ids: Iterable[str], as_of: datetime) -> dict[str, float]:
    """Crew-hours per event: for each assignment, from when its crew started work on the event to when the
    assignment ended.

    The crew starts work at the event's first move to ``en_route`` or ``on_site`` while the assignment is active
    (a crew queued behind other jobs is not yet spending time on this one); the assignment ends at its last update
    when ``done`` or ``cancelled``, else it is still running at ``as_of``. An assignment that never rolled counts
    zero. Proposed assignments (a plan nobody accepted) count zero.
    """
    ids = list(event_ids)
    out: dict[str, float] = dict.fromkeys(ids, 0.0)
    rolled: dict[str, list[datetime]] = {}
    assignments: list[Assignment] = []
    for i in range(0, len(ids), 900):
        part = ids[i:i + 900]
        for eid, at in session.execute(select(EventHistory.event_id, EventHistory.at).where(
                EventHistory.event_id.in_(part), EventHistory.action == "transition",
                EventHistory.to_state.in_(CREW_WORKING)).order_by(EventHistory.at)):
            rolled.setdefault(eid, []).append(at)
        assignments += session.scalars(select(Assignment).where(Assignment.event_id.in_(part),
                                                                Assignment.status != "proposed")).all()
    for a in assignments:
        end = a.updated_at if a.status in ("done", "cancelled") else as_of
        start = next((t for t in rolled.get(a.event_id, ()) if a.created_at <= t <= end), None)
        if start is not None:
            out[a.event_id] += (end - start).total_seconds() / 3600.0
    return out


def acknowledgments(session, start: datetime | None = None,
                    end: datetime | None = None) -> list[tuple[datetime, datetime | None]]:
    """``(reported_at, acknowledged_at)`` per report received in ``[start, end)``; ``None`` when the
    acknowledgment was never accepted by a provider (pending, claimed or dead)."""
    q = (select(Report.received_at, OutboxMessage.status, OutboxMessage.sent_at)
         .join(OutboxMessage, (OutboxMessage.report_id == Report.id) & (OutboxMessage.kind == "acknowledgment")))
    if start is not None:
        q = q.where(Report.received_at >= start)
    if end is not None:
        q = q.where(Report.received_at < end)
    return [(received, sent if status == "sent" else None) for received, status, sent in session.execute(q)]


def event_summaries(session, interruptions: Iterable[Interruption], etrs: dict[str, list[tuple[datetime, datetime]]],
                    as_of: datetime, start: datetime | None = None, end: datetime | None = None,
                    bad_rows: list[dict] | None = None) -> list[EventSummary]:
    """One :class:`EventSummary` per outage event starting in ``[start, end)`` (see the module's conventions).
    An event whose stored row contradicts itself is left out and appended to ``bad_rows``: one bad row must not
    take the whole report down."""
    customers: dict[str, dict[str, int]] = {}
    for r in interruptions:
        customers.setdefault(r.event_id, {})[r.customer_id] = r.customers
    q = select(Event).where(Event.state != "cancelled", Event.merged_into.is_(None))
    if start is not None:
        q = q.where(Event.started_at >= start)
    if end is not None:
        q = q.where(Event.started_at < end)
    # every event, nested ones too (a fuse out under an open recloser): its crews, device and reports belong in the
    # report; its customers are those it interrupted first, none when all were out already (counted once, above)
    rows = list(session.scalars(q.order_by(Event.started_at, Event.id)))
    ids = [e.id for e in rows]
    hours = crew_hours(session, ids, as_of)
    first: dict[str, datetime] = {}
    for i in range(0, len(ids), 900):
        for eid, t in session.execute(select(Report.event_id, Report.received_at)
                                      .where(Report.event_id.in_(ids[i:i + 900]))):
            if eid not in first or t < first[eid]:
                first[eid] = t
    out = []
    for e in rows:
        try:
            out.append(EventSummary(
                event_id=e.id, start=e.started_at, restored=e.restored_at if e.state == "restored" else None,
                customers=sum(customers.get(e.id, {}).values()), tier=f"P{e.tier}", event_class=e.event_class,
                cause=e.cause or "", first_report=first.get(e.id), etrs=tuple(etrs.get(e.id, ())),
                crew_hours=max(hours[e.id], 0.0)))
        except ReliabilityError as exc:
            if bad_rows is not None:
                bad_rows.append({"table": "events", "id": e.id, "problem": str(exc)})
    return out


def usable_interruptions(records: Iterable[Interruption], bad_rows: list[dict]) -> list[Interruption]:
    """``records`` without those ending before they start (named in ``bad_rows``, one line per event)."""
    out, bad = [], {}
    for r in records:
        if r.end is not None and r.end < r.start:
            bad.setdefault(r.event_id, r)
        else:
            out.append(r)
    bad_rows += [{"table": "interruptions", "id": eid, "problem": f"customer {r.customer_id} restored "
                  f"{r.end.isoformat()} before the interruption started {r.start.isoformat()}"}
                 for eid, r in bad.items()]
    return out


def service_records(replica: JournalReplica, start: datetime | None = None, end: datetime | None = None,
                    as_of: datetime | None = None) -> ServiceRecords:
    """Bring ``replica`` up to date and read everything the reports need for events starting in ``[start, end)``
    (all of them when not given). ``as_of`` (default now) is 'now' for work still running."""
    replica.catch_up()
    as_of = as_of or utcnow()
    with replica._lock:
        records = replica.interruptions()
        etrs = {k: list(v) for k, v in replica.etrs.items()}
        seq = replica.seq
    bad_rows: list[dict] = []
    records = usable_interruptions(records, bad_rows)
    with replica.db.read() as session:
        events = event_summaries(session, records, etrs, as_of, start, end, bad_rows)
        acks = acknowledgments(session, start, end)
    return ServiceRecords(records, events, acks, as_of, seq, bad_rows)
