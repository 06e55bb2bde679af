"""The live loop: the outage engine inside the service.

Committed intake (reports, AMI, SCADA) arrives from the group-commit writer on a queue; one thread feeds it through
the :class:`outage.engine.OutageEngine`, writes the engine's output (events, their history, each report's event)
together with journal entries listing the consumed inputs in one transaction, publishes the changes to the SSE stream and
marks the plan dirty. Dispatcher and crew actions (confirm, cancel, merge, split, restore, status updates) go
through the same engine under the same lock, are journaled the same way, and so survive restarts.

Restart: the engine is rebuilt by replaying the journal in order (the engine is deterministic given its inputs and
their times), then every stored-but-unprocessed input is processed. So an accepted report is never lost: it is in
the database before its 202, and in an event after the next start at the latest.

Re-planning (see :mod:`api.service.replan`) is debounced: the first change of a burst starts a clock; the plan is made
``replan_debounce_s`` after the last change, or ``replan_max_wait_s`` after the first, whichever comes first.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from api.errors import ApiError
from api.service.actions import DispatchActions
from api.service.intake import Committed
from api.service.intake_rows import (
    MODELS,
    chunks,
    domain_report,
    link_reports,
    load_rows,
    mark_processed,
    mark_reports,
    read_rows,
)
from api.service.messages import event_message
from api.service.queue_thread import QueueThread
from api.service.review import unmatched_messages
from api.service.stream import Broker
from api.service.territory import Directory
from api.settings import Settings
from api.store.db import Database
from api.store.models import (
    Assignment,
    Event,
    EventHistory,
    JournalEntry,
    MeterMessage,
    Report,
    ScadaMessage,
    SettingRow,
    utcnow,
)

log = logging.getLogger("oms.live")
#: Most significant change first: the one message published per event per batch.
_SIGNIFICANCE = ("event_created", "event_merged", "event_restored", "event_cancelled", "event_reclassified", "etr",
                 "event_updated")


class LiveEngine(DispatchActions, QueueThread):
    """Owns the territory, the outage engine and the re-planner; every method is safe to call from any thread."""

    thread_name = "oms-live"

    def __init__(self, settings: Settings, db: Database, broker: Broker, clock=utcnow) -> None:
        super().__init__()
        self.settings, self.db, self.broker, self.clock = settings, db, broker, clock
        self.network = None
        self.directory: Directory | None = None
        self.engine = None
        self.status = "stopped"
        self.role = "single"  # with hot standby: "leader" or "standby" (see api.service.standby)
        self.election = None
        self._seen_max = {"meter": 0, "scada": 0}  # highest ids consumed: the leader's poll window
        self.plan_mode = settings.plan_mode
        self.rules_name = "normal"
        self._lock = threading.RLock()
        self._hist_n: dict[str, int] = {}
        self._first_dirty: float | None = None
        self._last_dirty: float | None = None
        self.replanner = None
        self.etr = None  # api.service.etr.LiveEtr, with the territory
        self.stats = {"processed": 0, "replans": 0, "batches": 0, "resyncs": 0}
        self._resync_at: float | None = None  # monotonic time of the next resync attempt; None: in sync
        self._resync_failures = 0
        self._idle = threading.Condition()  # settle(): wait until every queued batch has been consumed
        self._unfinished = 0

    # ================================================================ lifecycle
    def start(self, network=None) -> None:
        self._load_operator_settings()
        if network is None and self.settings.territory:
            from gis.io import read_territory

            network = read_territory(self.settings.territory)
        if network is not None and self.settings.engine_enabled:
            with self._lock:
                self._load(network)
                if self._elect():
                    self._rebuild()
        else:
            self.status = "off: no territory loaded" if self.settings.engine_enabled else "off: disabled"
        super().start()

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        if self.election is not None:
            self.election.stop()  # after the loop: the lock goes only once this process has stopped writing
        if self.replanner is not None:
            self.replanner.close()

    def submit(self, committed: list[Committed]) -> None:
        """Called by the intake writer after commit (from its thread), so before the request's answer."""
        self._put(committed)

    def _put(self, item: list) -> None:
        with self._idle:
            self._unfinished += 1
        self._queue.put(item)

    def _taken(self, n: int) -> None:
        if n:
            with self._idle:
                self._unfinished -= n
                self._idle.notify_all()

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until the loop has consumed everything submitted so far (an accepted input's 202 comes after its
        submit): its engine pass, transaction and plan-dirty mark are done. For a driver that owns the clock."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._unfinished == 0, timeout):
                raise TimeoutError(f"the live engine did not consume its input in {timeout:.0f} s "
                                   f"({self._unfinished} batches queued)")

    def _load(self, network) -> None:
        from outage.engine import OutageEngine

        self.network = network
        self.engine = OutageEngine.from_network(network, clock=self.clock)
        self.directory = Directory.from_network(network, self.engine.grid.topology)
        if self.rules_name != "normal":
            self.engine.switch_rules(None, self.rules_name)
        self._hist_n = {}
        from api.service.etr import LiveEtr
        from api.service.replan import Replanner

        self.etr = LiveEtr(self.settings.etr_history)  # learns again from the journal as it is replayed

        if self.replanner is not None:
            self.replanner.close()
        self.replanner = Replanner(self)
        if self._resync_at is None:  # a resync says "running" only once it has caught up
            self.status = "running"

    def _run(self) -> None:
        tick_s = self.settings.engine_tick_s  # 0: the timers are the driver's (tick())
        next_tick = time.monotonic() + (tick_s or 1.0)
        while True:
            wake = min(next_tick, self._replan_due() or next_tick, self._resync_at or next_tick)
            timeout = max(0.05, wake - time.monotonic())
            try:
                first, taken = self._queue.get(timeout=timeout), 1
            except queue.Empty:
                first, taken = [], 0
            if first is None:
                return
            batch, stop = list(first), False
            while True:  # drain: everything queued becomes one engine pass and one transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
                taken += 1
            try:
                timers = time.monotonic() >= next_tick
                if timers:
                    next_tick = time.monotonic() + (tick_s or 1.0)
                self._pass(batch, timers and tick_s > 0)
            finally:
                self._taken(taken)
            if stop:
                return

    def _pass(self, batch: list[Committed], timers: bool) -> None:
        """One pass of the loop: the batch, the timers when due, the debounced re-plan."""
        if self._resync_at is not None:
            if time.monotonic() >= self._resync_at:  # before then, committed intake waits in the database
                self._resync()
            return
        if self.role == "standby":
            return  # the leader takes committed intake from the database
        try:
            if batch and self.engine is not None:
                self._process(batch)
            if timers and self.engine is not None:
                if self.role == "leader":  # what the other processes committed
                    self._catch_up(window=10_000)
                self.tick()
                if self.etr is not None and self.etr.overdue(self.engine, self.clock()):
                    self._dirty()  # a promise has passed: the next plan renews it (docs/etr.md, rule 2)
            due = self._replan_due()
            if due is not None and time.monotonic() >= due:
                try:
                    self.replan()
                except Exception:  # noqa: BLE001 - a plan changes no engine state: try again later
                    log.exception("re-planning failed; retrying after the debounce")
                    self._dirty()
        except Exception as exc:  # noqa: BLE001 - the loop must survive; the journal makes a resync exact
            log.exception("live loop step failed")
            self.need_resync(exc)

    # ================================================================ resynchronising after a failed write
    def need_resync(self, exc: BaseException | None = None) -> None:
        """The engine's memory may now differ from the database (its write failed after the engine moved on):
        rebuild it from the database as soon as the database answers. Safe from any thread."""
        if self.network is None or self.role == "standby":
            return
        self.status = f"degraded: resynchronising after {type(exc).__name__ if exc else 'a failed write'}"
        if self._resync_at is None:
            self._resync_at = time.monotonic()
            self._put([])  # wake the loop

    def _resync(self) -> None:
        try:
            with self._lock:
                self._load(self.network)
                self._rebuild()
        except Exception as exc:  # noqa: BLE001 - the database is still away: back off, try again
            self._resync_failures += 1
            delay = min(5.0, 0.5 * 2 ** self._resync_failures)
            log.warning("engine resync failed (%s); next try in %.1f s", type(exc).__name__, delay)
            self.status = f"degraded: resynchronising (attempt {self._resync_failures} failed: {type(exc).__name__})"
            self._resync_at = time.monotonic() + delay
            return
        log.warning("engine resynchronised from the database after %d failed attempts", self._resync_failures)
        self._resync_at, self._resync_failures = None, 0
        self.status = "running"
        self.stats["resyncs"] += 1

    # ================================================================ hot standby
    def _elect(self) -> bool:
        """With ``standby`` on PostgreSQL: take the leader lock if free, else follow. True: run the engine."""
        if not self.settings.standby:
            return True
        if self.db.is_sqlite:
            log.warning("standby needs PostgreSQL (an advisory lock); running as the only process")
            return True
        from api.service.standby import LeaderElection

        s = self.settings
        self.election = LeaderElection(self.db.url, s.leader_lock_key, s.leader_poll_s, self._elected,
                                       self._deposed)
        leader = self.election.try_once()
        self.role = "leader" if leader else "standby"
        if not leader:
            self.status = "standby: following the leader"
        self.election.start()
        return leader

    def _elected(self) -> None:
        self.role = "leader"
        self.need_resync()  # rebuild from the journal the old leader wrote, then take the pending intake

    def _deposed(self) -> None:
        self.role = "standby"
        self._resync_at = None
        self.status = "standby: following the leader (lost the lock)"

    def _check_leader(self) -> None:
        if self.role == "standby":
            raise ApiError(503, "unavailable", "this process is the standby; the leader runs dispatch and plans")

    def act_many(self, *args, **kwargs):
        self._check_leader()
        try:
            return super().act_many(*args, **kwargs)
        except SQLAlchemyError as exc:  # the engine applied the action but the database has not: rebuild
            self.need_resync(exc)
            raise ApiError(503, "unavailable", "the database did not take the action; please retry") from exc

    # ================================================================ intake -> engine
    def _process(self, batch: list[Committed]) -> None:
        with self._lock:
            reports, meters, scada = load_rows(self.db, batch)
            self._consume(reports, meters, scada, publish=True)

    def _consume(self, reports: list[Report], meters: list[MeterMessage], scada: list[ScadaMessage],
                 publish: bool) -> None:
        """Feed rows to the engine in a stable order, persist output + journal, publish."""
        from outage.reports import AmiEvent, ScadaEvent

        changes: list = []
        report_event: dict[int, str | None] = {}
        eng = self.engine
        consumed: dict[str, list[int]] = {"report": [], "meter": [], "scada": []}
        for row in reports:
            try:
                changes += eng.ingest_report(domain_report(row))
                consumed["report"].append(row.id)
            except (KeyError, ValueError) as exc:
                log.warning("report %s not analysed: %s", row.id, exc)
        for row in meters:
            try:
                changes += eng.ingest_ami([AmiEvent(row.meter, row.kind, row.at)])
                consumed["meter"].append(row.id)
            except (KeyError, ValueError) as exc:
                log.warning("meter message %s not analysed: %s", row.id, exc)
        for row in scada:
            try:
                changes += eng.ingest_scada(ScadaEvent(row.device_id, row.kind, row.at))
                consumed["scada"].append(row.id)
            except (KeyError, ValueError) as exc:
                log.warning("SCADA message %s not analysed: %s", row.id, exc)
        for rid in consumed["report"]:  # where each report is after the whole pass (a later one may have moved it)
            ev = eng.event_of_report(str(rid))
            report_event[rid] = ev.event_id if ev is not None else None
        now = self.clock()
        # one journal entry per kind and pass, listing the ids in the order the engine took them
        journal = [{"kind": kind, "ref_id": None, "at": now, "payload": {"ids": ids}}
                   for kind, ids in consumed.items() if ids]
        with self.db.write() as session, session.begin():
            if journal:
                session.execute(JournalEntry.__table__.insert(), journal)
            mark_reports(session, {r.id: report_event.get(r.id) for r in reports}, now)
            mark_processed(session, MeterMessage, [m.id for m in meters], now)
            mark_processed(session, ScadaMessage, [s.id for s in scada], now)
            messages = self._persist_events(session, changes, now) + unmatched_messages(reports, report_event)
        self.stats["processed"] += len(reports) + len(meters) + len(scada)
        for kind, rows in (("meter", meters), ("scada", scada)):
            if rows:
                self._seen_max[kind] = max(self._seen_max[kind], max(r.id for r in rows))
        self.stats["batches"] += 1
        if changes:
            self._dirty()
        if publish:
            self.publish(messages)

    def tick(self, now: datetime | None = None) -> None:
        """Run the engine's timers at ``now`` (default: the clock). The loop does this every ``engine_tick_s``;
        a driver that owns the clock (``engine_tick_s`` 0) calls it itself."""
        with self._lock:
            if self.engine is None:
                return
            now = now or self.clock()
            changes = self.engine.tick(now)
            if not changes:
                return  # a tick that changed nothing need not be replayed: the next input runs the same timers
            with self.db.write() as session, session.begin():
                session.add(JournalEntry(kind="tick", at=now))
                messages = self._persist_events(session, changes, now)
            self._dirty()
        self.publish(messages)

    # ================================================================ engine output -> database, stream
    def _persist_events(self, session, changes: Iterable, now: datetime,
                        extra_ids: Iterable[str] = ()) -> list[tuple[str, dict]]:
        """Upsert every event the changes touch (and its new history); returns stream messages to publish."""
        from outage.events import EventCancelled, EventCreated, EventMerged, EventRestored, EventUpdated

        kinds: dict[str, str] = {eid: "event_updated" for eid in extra_ids}

        def note(eid: str, kind: str) -> None:
            old = kinds.get(eid)
            if old is None or _SIGNIFICANCE.index(kind) < _SIGNIFICANCE.index(old):
                kinds[eid] = kind

        merged: list[tuple[str, str]] = []
        for c in changes:
            if isinstance(c, EventCreated):
                note(c.event_id, "event_created")
            elif isinstance(c, EventMerged):
                note(c.event_id, "event_merged")
                note(c.into, "event_updated")
                merged.append((c.event_id, c.into))
            elif isinstance(c, EventRestored):
                note(c.event_id, "event_restored")
            elif isinstance(c, EventCancelled):
                note(c.event_id, "event_cancelled")
            elif isinstance(c, EventUpdated) and c.what == "etr":
                note(c.event_id, "etr")
            else:
                note(c.event_id, "event_updated")
        if self.etr is not None:
            self.etr.observe(self.engine, changes)
        if not kinds:
            return []
        before, written = self._write_events(session, list(kinds), now)
        messages = []
        for eid, kind in kinds.items():
            values, old = written[eid], before.get(eid)
            if kind == "event_updated" and old is not None and (
                    (old.device_id, old.event_class, old.tier) != (values["device_id"], values["event_class"],
                                                                   values["tier"])):
                kind = "event_reclassified"
            messages.append((kind, event_message(values)))
        for old_id, into in merged:  # reports follow their event
            session.execute(update(Report).where(Report.event_id == old_id).values(event_id=into))
        self._relink_cancelled(session, [eid for eid, kind in kinds.items() if kind == "event_cancelled"])
        return messages

    def _relink_cancelled(self, session, event_ids: list[str]) -> None:
        """Reports of a cancelled event that the engine placed again (an event superseded when its device was no
        longer supported, ``outage.rollup``) follow it to their new event, so that whoever called still leads to
        their open outage (notes, notices, the status page). A dispatcher's cancel leaves them where they are."""
        if not event_ids:
            return
        rows = session.scalars(select(Report.id).where(Report.event_id.in_(event_ids))).all()
        moved = {}
        for rid in rows:
            ev = self.engine.event_of_report(str(rid))
            if ev is not None and ev.event_id not in event_ids:
                moved[rid] = ev.event_id
        link_reports(session, moved)

    def _write_events(self, session, eids: list[str], now: datetime) -> tuple[dict[str, Any], dict[str, dict]]:
        """Upsert the rows of events ``eids`` and append their new history, with bulk Core statements (the ORM
        unit of work cost more CPU than the rest of the live loop in a storm). Returns the rows as they were
        (the columns :data:`_KEPT` names, keyed by event id) and the values written."""
        table, history = Event.__table__, EventHistory.__table__
        before: dict[str, Any] = {}
        for chunk in chunks(eids):
            before.update((r.id, r) for r in session.execute(
                select(table.c.id, *(table.c[c] for c in _KEPT)).where(table.c.id.in_(chunk))))
        inserts, updates, steps, written = [], [], [], {}
        for eid in eids:
            ev = self.engine.event(eid)
            old = before.get(eid)
            values = written[eid] = self._event_values(ev, now, old)
            if old is None:
                inserts.append({**values, "started_at": ev.start})
            else:
                updates.append({**values, "_id": eid})
            done = self._hist_n.get(eid, 0)
            steps += [{"event_id": eid, "at": t.time, "actor": t.actor, "action": "transition",
                       "from_state": None, "to_state": t.state.value, "detail": {"reason": t.reason}}
                      for t in ev.history[done:]]
            self._hist_n[eid] = len(ev.history)
        if inserts:
            session.execute(table.insert(), inserts)
        if updates:
            cols = {c: bindparam(c) for c in updates[0] if c != "_id"}
            session.execute(table.update().where(table.c.id == bindparam("_id")).values(cols), updates)
        if steps:
            session.execute(history.insert(), steps)
        return before, written

    def _event_values(self, ev, now: datetime, old=None) -> dict[str, Any]:
        """The ``events`` row for engine event ``ev``. From ``old`` (the row as it is, or None) it keeps what the
        engine does not own or no longer knows: a confirmed cause, the priority of a closed event, the last ETR."""
        d = self.directory
        xy = d.event_xy(ev.device_id, ev.sp_id)
        values = {
            "id": ev.event_id, "state": ev.state.value, "device_id": ev.device_id, "device_kind": ev.device_kind,
            "sp_id": ev.sp_id, "event_class": ev.event_class.value,
            "feeder_id": ev.feeders[0] if ev.feeders else (d.sp_feeder.get(ev.sp_id) if ev.sp_id else None),
            "customers_out": int(ev.customers), "critical_count": int(ev.critical_customers),
            "hazards": list(ev.hazards), "confidence": float(ev.confidence), "report_count": len(ev.reports),
            "explanation": ev.explanation,
            "evidence": {"service_points_out": ev.service_points_out, "last_gasps": ev.last_gasps,
                         "power_on_evidence": ev.power_on_evidence, "pings": dict(ev.pings),
                         "scada": list(ev.scada), "medical": ev.medical, "feeders": list(ev.feeders),
                         "substation_id": ev.substation_id, "critical_kinds": dict(ev.critical_kinds),
                         "merged_from": list(ev.merged_from), "extra_devices": list(ev.extra_devices),
                         "restored_sps": list(ev.restored_sps)},
            "lon": xy[0] if xy else None, "lat": xy[1] if xy else None,
            "merged_into": ev.merged_into, "nested_from": ev.nested_from,
            "restored_at": ev.restored_at, "updated_at": now,
        }
        kept = {c: getattr(old, c) for c in _KEPT} if old is not None else dict(_KEPT)
        values["cause"] = kept["cause"] if kept["cause_confirmed"] else (ev.cause or None)
        values["cause_confirmed"] = kept["cause_confirmed"]
        if ev.open:
            p = self.engine.priority(ev.event_id, now)
            kept.update(tier=p.tier, weight=p.weight, priority_reason=p.reason)
        if ev.etr is not None:
            kept.update(etr_earliest=ev.etr.earliest, etr_latest=ev.etr.latest,
                        etr_detail={"confidence": ev.etr.confidence, "source": ev.etr.source,
                                    "basis": ev.etr.basis, "probability": ev.etr.probability})
        values.update((c, kept[c]) for c in ("tier", "weight", "priority_reason", "etr_earliest", "etr_latest",
                                             "etr_detail"))
        return values

    def publish(self, messages: list[tuple[str, dict]]) -> None:
        for kind, data in messages:
            self.broker.publish(kind, data)

    # ================================================================ restart
    def _rebuild(self) -> None:
        """Replay the journal into a fresh engine, sync events to the database, then process what is pending."""
        started = time.monotonic()
        replayed = 0
        with self.db.read() as session:
            last = 0
            while True:
                chunk = session.scalars(select(JournalEntry).where(JournalEntry.seq > last)
                                        .order_by(JournalEntry.seq).limit(5000)).all()
                if not chunk:
                    break
                self._replay(session, chunk)
                replayed += sum(len(j.payload["ids"]) if j.payload and "ids" in j.payload else 1 for j in chunk)
                last = chunk[-1].seq
        now = self.clock()
        ids = [ev.event_id for ev in self.engine.all_events()]
        # The history is in the database already; the rows are rewritten (a row the database lost is re-added).
        self._hist_n = {eid: len(self.engine.event(eid).history) for eid in ids}
        with self.db.write() as session, session.begin():
            self._write_events(session, ids, now)
        pending = self._catch_up()
        log.info("engine rebuilt: %d journal entries replayed, %d pending inputs processed, %d events, %.1f s",
                 replayed, pending, len(ids), time.monotonic() - started)
        self.rebuild_stats = {"replayed": replayed, "pending": pending, "events": len(ids),
                              "seconds": time.monotonic() - started}

    def _catch_up(self, window: int | None = None) -> int:
        """Process every stored-but-unprocessed input; returns how many. ``window``: look at meter and SCADA ids
        within this many of the highest consumed (those tables have no index on ``processed_at``; the leader
        polls each second for what other processes committed, and a restart scans them whole)."""
        pending = 0
        while True:
            floor = {k: (v - window if window else 0) for k, v in self._seen_max.items()}
            with self.db.read() as session:
                reports = session.scalars(select(Report).where(Report.processed_at.is_(None))
                                          .order_by(Report.id).limit(5000)).all()
                meters = session.scalars(select(MeterMessage).where(MeterMessage.processed_at.is_(None),
                                                                    MeterMessage.id > floor["meter"])
                                         .order_by(MeterMessage.id).limit(5000)).all()
                scada = session.scalars(select(ScadaMessage).where(ScadaMessage.processed_at.is_(None),
                                                                   ScadaMessage.id > floor["scada"])
                                        .order_by(ScadaMessage.id).limit(5000)).all()
            if not (reports or meters or scada):
                return pending
            with self._lock:
                self._consume(list(reports), list(meters), list(scada), publish=True)  # ORM rows read the same
            pending += len(reports) + len(meters) + len(scada)

    def _replay(self, session, chunk: list[JournalEntry]) -> None:
        from outage.reports import AmiEvent, ScadaEvent

        by_kind: dict[str, list[int]] = {"report": [], "meter": [], "scada": []}
        for j in chunk:
            if j.kind in by_kind:
                by_kind[j.kind].extend(j.payload["ids"])
        rows = {kind: {r.id: r for r in read_rows(session, MODELS[kind], ids)} for kind, ids in by_kind.items()}
        eng, changes = self.engine, []
        for j in chunk:
            if j.kind == "report":
                for i in j.payload["ids"]:
                    changes += eng.ingest_report(domain_report(rows["report"][i]))
            elif j.kind == "meter":
                changes += eng.ingest_ami([AmiEvent(m.meter, m.kind, m.at) for m in (rows["meter"][i]
                                                                                    for i in j.payload["ids"])])
            elif j.kind == "scada":
                for i in j.payload["ids"]:
                    s = rows["scada"][i]
                    changes += eng.ingest_scada(ScadaEvent(s.device_id, s.kind, s.at))
            elif j.kind == "tick":
                changes += eng.tick(j.at)
            elif j.kind == "action":
                changes += self._apply_action(j.payload, j.at)
        if self.etr is not None:  # what the journal restored teaches the ETR model, as it did live
            self.etr.observe(eng, changes)

    # ================================================================ plans
    def _dirty(self) -> None:
        now = time.monotonic()
        if self._first_dirty is None:
            self._first_dirty = now
        self._last_dirty = now

    def _replan_due(self) -> float | None:
        if self._first_dirty is None or self.replanner is None:
            return None
        s = self.settings
        return min(self._last_dirty + s.replan_debounce_s, self._first_dirty + s.replan_max_wait_s)

    def replan_if_dirty(self) -> int | None:
        """Plan now if anything changed since the last plan, whatever the debounce says; returns the plan id."""
        if self._first_dirty is None:
            return None
        return self.replan()

    def replan(self) -> int | None:
        """Make a plan now (the debounce calls this; tests and the CLI may too). Returns the plan id."""
        if self.replanner is None:
            return None
        self._first_dirty = self._last_dirty = None
        self.stats["replans"] += 1
        return self.replanner.run()

    def accept_plan(self, plan_id: int, actor: str) -> list[Assignment]:
        return self._planner().accept(plan_id, actor)

    def reject_plan(self, plan_id: int, actor: str) -> dict[str, Any]:
        return self._planner().reject(plan_id, actor)

    def _planner(self):
        """The re-planner, for a dispatcher's decision on a plan: only the leader decides, and only with a territory."""
        self._check_leader()
        if self.replanner is None:
            raise ApiError(503, "unavailable", "no territory is loaded; nothing to plan")
        return self.replanner

    # ================================================================ settings, territory
    def _load_operator_settings(self) -> None:
        try:
            with self.db.read() as session:
                rows = {r.key: r.value for r in session.scalars(select(SettingRow))}
        except Exception:  # noqa: BLE001 - before `oms db upgrade` the table does not exist
            log.warning("settings table not readable; run `oms db upgrade`")
            return
        self.plan_mode = rows.get("plan_mode", {}).get("value", self.plan_mode)
        self.rules_name = rows.get("rules", {}).get("value", self.rules_name)

    def operator_settings(self) -> dict[str, str]:
        return {"plan_mode": self.plan_mode, "rules": self.rules_name}

    def update_settings(self, changes: dict[str, str], actor: str) -> dict[str, str]:
        self._check_leader()
        with self._lock:
            if "rules" in changes and self.engine is not None:
                try:
                    self.engine.switch_rules(None, changes["rules"])
                except (KeyError, ValueError) as exc:
                    raise ApiError(422, "invalid", str(exc)) from None
            with self.db.write() as session, session.begin():
                for key, value in changes.items():
                    row = session.get(SettingRow, key) or SettingRow(key=key, value={})
                    row.value, row.updated_at = {"value": value, "by": actor}, self.clock()
                    session.add(row)
            self.plan_mode = changes.get("plan_mode", self.plan_mode)
            self.rules_name = changes.get("rules", self.rules_name)
        return self.operator_settings()

    def replace_territory(self, network, actor: str) -> dict[str, Any]:
        """Load a new territory. Allowed only while no event is open: events refer to the old network's devices."""
        from gis.validate import validate

        self._check_leader()
        problems = validate(network)
        if problems:
            raise ApiError(422, "invalid", "territory not valid: " + "; ".join(problems[:5]),
                           [{"field": "territory", "message": p} for p in problems[:50]])
        with self._lock:
            if self.engine is not None and self.engine.events:
                raise ApiError(409, "conflict", f"{len(self.engine.events)} events are open; restore or cancel "
                                                "them before replacing the territory")
            with self.db.read() as session:
                if session.scalar(select(JournalEntry.seq).limit(1)) is not None:
                    raise ApiError(409, "conflict", "this database already holds history for a territory; "
                                                    "import into a fresh database")
            self._load(network)
            self._rebuild()
        return {"name": network.name, "service_points": len(network.service_points),
                "segments": len(network.segments), "substations": len(network.substations), "by": actor}

    # ================================================================ edge checks used by the routes
    def locate_report(self, body) -> str | None:
        """The service point a report names (account, meter, phone, address or place), or 422 saying what failed.

        Without a territory nothing can be checked; the report is stored and analysed once one is loaded."""
        return None if self.directory is None else self.directory.locate_report(body)

    def known_meter(self, meter: str) -> bool:
        return self.directory is None or self.directory.meter_of(meter) is not None

    def known_device(self, device_id: str) -> bool:
        return self.directory is None or device_id in self.directory.devices


#: ``events`` columns the engine does not always own, with their value for a new row: see
#: :meth:`LiveEngine._event_values`. The reclassification check reads device, class and tier too.
_KEPT = {"cause": None, "cause_confirmed": False, "tier": 4, "weight": 0.0, "priority_reason": "",
         "etr_earliest": None, "etr_latest": None, "etr_detail": None, "device_id": None,
         "event_class": "single_customer"}
