"""The live loop: the outage engine inside the service.

Committed intake (reports, AMI, SCADA) arrives from the group-commit writer on a queue; one thread feeds it through
the :class:`outage.engine.OutageEngine`, writes the engine's output (events, their history, each report's event)
together with journal entries listing the consumed inputs in one transaction, publishes the changes to the SSE stream and
marks the plan dirty. Dispatcher and crew actions (confirm, cancel, merge, split, restore, status updates) go
through the same engine under the same lock, are journaled the same way, and so survive restarts.

Restart: the engine is rebuilt by replaying the journal in order (the engine is deterministic given its inputs and
their times), then every stored-but-unprocessed input is processed. So an accepted report is never lost: it is in
the database before its 202, and in an event after the next start at the latest.

Re-planning (see :mod:`api.replan`) is debounced: the first change of a burst starts a clock; the plan is made
``replan_debounce_s`` after the last change, or ``replan_max_wait_s`` after the first, whichever comes first.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from api.db import Database
from api.errors import ApiError
from api.intake import Committed
from api.models import (
    ACTIVE_ASSIGNMENT,
    CLOSED_STATES,
    Assignment,
    Crew,
    CrewPosition,
    Event,
    EventHistory,
    JournalEntry,
    MeterMessage,
    Report,
    ScadaMessage,
    SettingRow,
    utcnow,
)
from api.settings import Settings
from api.stream import Broker
from api.territory import Directory
from api.worker import QueueThread

log = logging.getLogger("oms.live")
#: Clocks drift; a message stamped further in the future than this is refused.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: Most significant change first: the one message published per event per batch.
_SIGNIFICANCE = ("event_created", "event_merged", "event_restored", "event_cancelled", "event_reclassified", "etr",
                 "event_updated")


class LiveEngine(QueueThread):
    """Owns the territory, the outage engine and the re-planner; every method is safe to call from any thread."""

    thread_name = "oms-live"

    def __init__(self, settings: Settings, db: Database, broker: Broker, clock=utcnow) -> None:
        super().__init__()
        self.settings, self.db, self.broker, self.clock = settings, db, broker, clock
        self.network = None
        self.directory: Directory | None = None
        self.engine = None
        self.status = "stopped"
        self.plan_mode = settings.plan_mode
        self.rules_name = "normal"
        self._lock = threading.RLock()
        self._hist_n: dict[str, int] = {}
        self._first_dirty: float | None = None
        self._last_dirty: float | None = None
        self.replanner = None
        self.stats = {"processed": 0, "replans": 0, "batches": 0}

    # ================================================================ lifecycle
    def start(self, network=None) -> None:
        self._load_operator_settings()
        if network is None and self.settings.territory:
            from gis.io import read_territory

            network = read_territory(self.settings.territory)
        if network is not None and self.settings.engine_enabled:
            with self._lock:
                self._load(network)
                self._rebuild()
        else:
            self.status = "off: no territory loaded" if self.settings.engine_enabled else "off: disabled"
        super().start()

    def stop(self) -> None:
        super().stop()
        if self.replanner is not None:
            self.replanner.close()

    def submit(self, committed: list[Committed]) -> None:
        """Called by the intake writer after commit (from its thread)."""
        self._queue.put(committed)

    def _load(self, network) -> None:
        from outage.engine import OutageEngine

        self.network = network
        self.engine = OutageEngine.from_network(network, clock=self.clock)
        self.directory = Directory.from_network(network, self.engine.grid.topology)
        if self.rules_name != "normal":
            self.engine.switch_rules(None, self.rules_name)
        self._hist_n = {}
        from api.replan import Replanner

        if self.replanner is not None:
            self.replanner.close()
        self.replanner = Replanner(self)
        self.status = "running"

    def _run(self) -> None:
        next_tick = time.monotonic() + 1.0
        while True:
            timeout = max(0.05, min(next_tick, self._replan_due() or next_tick) - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = []
            if first is None:
                return
            batch = list(first)
            stop = False
            while True:  # drain: everything queued becomes one engine pass and one transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            try:
                if batch and self.engine is not None:
                    self._process(batch)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + 1.0
                    if self.engine is not None:
                        self._tick()
                due = self._replan_due()
                if due is not None and time.monotonic() >= due:
                    self.replan()
            except Exception:  # noqa: BLE001 - the loop must survive; the journal makes a restart exact
                log.exception("live loop step failed")
                self.status = "degraded: an update failed (see log); restart to resynchronise"
            if stop:
                return

    # ================================================================ intake -> engine
    def _process(self, batch: list[Committed]) -> None:
        with self._lock:
            reports, meters, scada = _load_rows(self.db, batch)
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
                changes += eng.ingest_report(_domain_report(row))
                ev = eng.event_of_report(str(row.id))
                report_event[row.id] = ev.event_id if ev is not None else None
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
        now = self.clock()
        # one journal entry per kind and pass, listing the ids in the order the engine took them
        journal = [{"kind": kind, "ref_id": None, "at": now, "payload": {"ids": ids}}
                   for kind, ids in consumed.items() if ids]
        with self.db.write() as session, session.begin():
            if journal:
                session.execute(JournalEntry.__table__.insert(), journal)
            _mark_reports(session, {r.id: report_event.get(r.id) for r in reports}, now)
            _mark_processed(session, MeterMessage, [m.id for m in meters], now)
            _mark_processed(session, ScadaMessage, [s.id for s in scada], now)
            messages = self._persist_events(session, changes, now)
        self.stats["processed"] += len(reports) + len(meters) + len(scada)
        self.stats["batches"] += 1
        if changes:
            self._dirty()
        if publish:
            self._publish(messages)

    def _tick(self) -> None:
        with self._lock:
            now = self.clock()
            changes = self.engine.tick(now)
            if not changes:
                return  # a tick that changed nothing need not be replayed: the next input runs the same timers
            with self.db.write() as session, session.begin():
                session.add(JournalEntry(kind="tick", at=now))
                messages = self._persist_events(session, changes, now)
            self._dirty()
        self._publish(messages)

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
            messages.append((kind, _event_message(values)))
        for old_id, into in merged:  # reports follow their event
            session.execute(update(Report).where(Report.event_id == old_id).values(event_id=into))
        return messages

    def _write_events(self, session, eids: list[str], now: datetime) -> tuple[dict[str, Any], dict[str, dict]]:
        """Upsert the rows of events ``eids`` and append their new history, with bulk Core statements (the ORM
        unit of work cost more CPU than the rest of the live loop in a storm). Returns the rows as they were
        (the columns :data:`_KEPT` names, keyed by event id) and the values written."""
        table, history = Event.__table__, EventHistory.__table__
        before: dict[str, Any] = {}
        for chunk in _chunks(eids):
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
                         "merged_from": list(ev.merged_from), "extra_devices": list(ev.extra_devices)},
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
                                    "basis": ev.etr.basis})
        values.update((c, kept[c]) for c in ("tier", "weight", "priority_reason", "etr_earliest", "etr_latest",
                                             "etr_detail"))
        return values

    def _publish(self, messages: list[tuple[str, dict]]) -> None:
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
        pending = 0
        while True:
            with self.db.read() as session:
                reports = session.scalars(select(Report).where(Report.processed_at.is_(None))
                                          .order_by(Report.id).limit(5000)).all()
                meters = session.scalars(select(MeterMessage).where(MeterMessage.processed_at.is_(None))
                                         .order_by(MeterMessage.id).limit(5000)).all()
                scada = session.scalars(select(ScadaMessage).where(ScadaMessage.processed_at.is_(None))
                                        .order_by(ScadaMessage.id).limit(5000)).all()
            if not (reports or meters or scada):
                break
            self._consume(list(reports), list(meters), list(scada), publish=True)  # ORM rows read the same
            pending += len(reports) + len(meters) + len(scada)
        log.info("engine rebuilt: %d journal entries replayed, %d pending inputs processed, %d events, %.1f s",
                 replayed, pending, len(ids), time.monotonic() - started)
        self.rebuild_stats = {"replayed": replayed, "pending": pending, "events": len(ids),
                              "seconds": time.monotonic() - started}

    def _replay(self, session, chunk: list[JournalEntry]) -> None:
        from outage.reports import AmiEvent, ScadaEvent

        by_kind: dict[str, list[int]] = {"report": [], "meter": [], "scada": []}
        for j in chunk:
            if j.kind in by_kind:
                by_kind[j.kind].extend(j.payload["ids"])
        rows = {kind: {r.id: r for r in _rows(session, MODELS[kind], ids)} for kind, ids in by_kind.items()}
        eng = self.engine
        for j in chunk:
            if j.kind == "report":
                for i in j.payload["ids"]:
                    eng.ingest_report(_domain_report(rows["report"][i]))
            elif j.kind == "meter":
                eng.ingest_ami([AmiEvent(m.meter, m.kind, m.at) for m in (rows["meter"][i]
                                                                         for i in j.payload["ids"])])
            elif j.kind == "scada":
                for i in j.payload["ids"]:
                    s = rows["scada"][i]
                    eng.ingest_scada(ScadaEvent(s.device_id, s.kind, s.at))
            elif j.kind == "tick":
                eng.tick(j.at)
            elif j.kind == "action":
                self._apply_action(j.payload, j.at)

    # ================================================================ actions (dispatcher, crew)
    def _apply_action(self, a: dict[str, Any], now: datetime) -> list:
        """Apply one journaled action to the engine; the single code path for live use and replay."""
        from outage.events import EventState

        eng, kind, eid, actor = self.engine, a["action"], a.get("event_id"), a.get("actor", "?")
        if kind == "confirm":
            changes = []
            if eng.event(eid).state.value in ("unconfirmed", "probable"):
                changes = eng.set_event_state(eid, EventState.CONFIRMED, actor, a.get("reason") or "confirmed",
                                              now=now)
            if a.get("cause"):
                eng.event(eid).cause = a["cause"]
            return changes
        if kind == "cancel":
            return eng.cancel(eid, actor, a["reason"], now=now)
        if kind == "restore":
            if a.get("cause"):
                eng.event(eid).cause = a["cause"]
            return eng.restore(eid, actor, a.get("reason") or "restored", now=now, devices=a.get("devices", ()),
                               service_points=a.get("service_points", ()))
        if kind == "merge":
            return eng.merge(eid, a["others"], actor, now=now)
        if kind == "split":
            return eng.split(eid, a["device_id"], actor, now=now)
        if kind == "state":
            return self._advance(eid, a["state"], actor, now)
        if kind == "etr":
            return eng.update_etr(eid, now, **a["args"])
        raise ValueError(f"journal: unknown action {kind!r}")

    def _advance(self, eid: str, target: str, actor: str, now: datetime) -> list:
        """Walk an event forward to ``target`` through the life cycle (a crew on site implies dispatched)."""
        from outage.events import EventState

        order = ["confirmed", "dispatched", "en_route", "on_site"]
        eng = self.engine
        current = eng.event(eid).state.value
        if current == target:
            return []
        changes = []
        if target == "dispatched" and current in ("en_route", "on_site"):  # crew pulled off: back to dispatched
            return eng.set_event_state(eid, EventState.DISPATCHED, actor, "crew reassigned", now=now)
        start = order.index(current) + 1 if current in order else 1
        for state in order[start:order.index(target) + 1]:
            changes += eng.set_event_state(eid, EventState(state), actor, f"{state.replace('_', ' ')}", now=now)
        return changes

    def act(self, action: dict[str, Any], *, session_work=None, replan: bool = True) -> list[tuple[str, dict]]:
        """Run a dispatcher/crew action: validate, apply to the engine, journal + persist + publish atomically.

        ``session_work(session, now)`` runs inside the same transaction (assignment and crew rows). ``replan``
        False is for the optimizer's own follow-ups, which must not trigger the next re-plan."""
        return self.act_many([action], session_work=session_work, replan=replan)

    def act_many(self, actions: list[dict[str, Any]], *, session_work=None, replan: bool = True,
                 skip_invalid: bool = False) -> list[tuple[str, dict]]:
        """:meth:`act` for several actions in one engine pass and one transaction (a plan's hundreds of dispatch
        and ETR updates). Each action is journaled on its own, in order, so a replay is exact. An action on a
        closed or unknown event raises, or with ``skip_invalid`` is logged and left out."""
        if self.engine is None:
            raise ApiError(503, "unavailable", "no territory is loaded; the outage engine is off")
        with self._lock:
            now = self.clock()
            done, changes = [], []
            for action in actions:
                try:
                    own = self._apply_checked(action, now)
                except ApiError as exc:
                    if not skip_invalid:
                        raise
                    log.info("%s on event %s skipped: %s", action["action"], action.get("event_id"), exc.message)
                    continue
                done.append((action, own))
                changes += own
            with self.db.write() as session, session.begin():
                if done:
                    session.execute(JournalEntry.__table__.insert(),
                                    [{"kind": "action", "at": now, "payload": a} for a, _ in done])
                touched = [x for a, _ in done for x in ([a["event_id"]] if a.get("event_id") else [])
                           + (a.get("others", []) if a["action"] in ("merge", "split") else [])]
                messages = self._persist_events(session, changes, now, extra_ids=touched)
                for action, own in done:
                    self._record_action(session, action, own, now)
                extra = session_work(session, now) if session_work else None
            if replan and done:
                self._dirty()
        self._publish(messages)
        if extra:
            self._publish(extra)
        return messages

    def _apply_checked(self, action: dict[str, Any], now: datetime) -> list:
        eid = action.get("event_id")
        if eid is not None:
            self._check_open(eid, action.get("verb", action["action"]))
        try:
            return self._apply_action(action, now)
        except KeyError as exc:
            raise ApiError(404, "not_found", str(exc.args[0]) if exc.args else "not found") from None
        except ValueError as exc:
            raise ApiError(409, "conflict", str(exc)) from None

    def _record_action(self, session, action: dict[str, Any], changes: list, now: datetime) -> None:
        """The rows an action changes besides its events: a confirmed cause, reports after a split, the
        assignments of a closed event, and the event's history line."""
        eid, kind = action.get("event_id"), action["action"]
        if kind in ("confirm", "restore") and action.get("cause"):
            session.execute(update(Event).where(Event.id == eid).values(cause=action["cause"], cause_confirmed=True))
        if kind == "split":
            self._resync_reports(session, [c.event_id for c in changes] + [eid])
        if kind == "cancel" or (kind == "restore" and not self.engine.event(eid).open):  # not a partial restore
            session.execute(update(Assignment).where(Assignment.event_id == eid,
                                                     Assignment.status.in_(ACTIVE_ASSIGNMENT))
                            .values(status="done" if kind == "restore" else "cancelled", updated_at=now))
        session.add(EventHistory(event_id=eid, at=now, actor=action.get("actor", "?"), action=kind,
                                 detail={k: v for k, v in action.items() if k not in ("action", "actor")}))

    def _check_open(self, eid: str, action: str) -> None:
        try:
            ev = self.engine.event(eid)
        except KeyError:
            raise ApiError(404, "not_found", f"no event {eid!r}") from None
        if ev.merged_into:
            raise ApiError(409, "conflict", f"event {eid} was merged into {ev.merged_into}; act on that one")
        if not ev.open:
            raise ApiError(409, "conflict", f"event {eid} is {ev.state.value}; cannot {action} it")

    def _resync_reports(self, session, event_ids: Iterable[str]) -> None:
        for eid in set(event_ids):
            ids = [int(r) for r in self.engine.event(eid).reports if str(r).isdigit()]
            if ids:
                session.execute(update(Report).where(Report.id.in_(ids)).values(event_id=eid))

    def _event_row(self, eid: str) -> Event:
        with self.db.read() as session:
            row = session.get(Event, eid)
        if row is None:
            raise ApiError(404, "not_found", f"no event {eid!r}")
        return row

    def confirm(self, eid: str, actor: str, cause: str | None = None, note: str | None = None):
        self.act({"action": "confirm", "event_id": eid, "actor": actor, "cause": cause, "reason": note})
        return self._event_row(eid)

    def cancel(self, eid: str, actor: str, reason: str):
        self.act({"action": "cancel", "event_id": eid, "actor": actor, "reason": reason})
        return self._event_row(eid)

    def restore(self, eid: str, actor: str, cause: str | None = None, note: str | None = None,
                devices: list[str] = (), service_points: list[str] = ()):
        """Restore an event; with ``devices`` / ``service_points`` only that part of it (switching), which leaves
        the event open and its crews assigned."""
        d = self.directory
        if d is not None:
            unknown = [x for x in devices if x not in d.devices] + [x for x in service_points if x not in d.sp_feeder]
            if unknown:
                raise ApiError(422, "invalid", f"unknown device or service point {unknown[0]!r}")
        action = {"action": "restore", "event_id": eid, "actor": actor, "cause": cause, "reason": note}
        if devices or service_points:
            action.update(devices=list(devices), service_points=list(service_points))
        self.act(action)
        return self._event_row(eid)

    def merge(self, eid: str, others: list[str], actor: str):
        for o in others:
            if o != eid:
                self._check_open_or_404(o, "merge")
        self.act({"action": "merge", "event_id": eid, "others": others, "actor": actor})
        return self._event_row(eid)

    def split(self, eid: str, device_id: str, actor: str):
        if self.directory is not None and device_id not in self.directory.devices:
            raise ApiError(422, "invalid", f"unknown device {device_id!r}")
        messages = self.act({"action": "split", "event_id": eid, "device_id": device_id, "actor": actor})
        ids = [eid] + [m[1]["id"] for m in messages if m[0] == "event_created"]
        return [self._event_row(i) for i in ids]

    def _check_open_or_404(self, eid: str, action: str) -> None:
        if self.engine is None:
            raise ApiError(503, "unavailable", "no territory is loaded; the outage engine is off")
        with self._lock:
            self._check_open(eid, action)

    # ================================================================ crews and assignments
    def upsert_crew(self, body, actor: str) -> Crew:
        if body.depot_id and self.network is not None and body.depot_id not in set(
                self.network.depots["depot_id"].astype(str)):
            raise ApiError(422, "invalid", f"unknown depot {body.depot_id!r}")
        if body.shift_start and body.shift_end and body.shift_end <= body.shift_start:
            raise ApiError(422, "invalid", "shift_end must be after shift_start")
        with self.db.write() as session, session.begin():
            crew = session.get(Crew, body.id) or Crew(id=body.id)
            for k in ("name", "skills", "depot_id", "shift_start", "shift_end"):
                setattr(crew, k, getattr(body, k))
            if body.lat is not None and body.lon is not None:
                crew.lat, crew.lon, crew.position_at = body.lat, body.lon, self.clock()
            session.add(crew)
        self.broker.publish("crew", _crew_message(crew))
        self._dirty()
        return crew

    def assign(self, eid: str, crew_id: str, *, lock: bool, actor: str) -> Assignment:
        """A dispatcher's override: this crew on this event, replacing whoever else had it."""
        created: list[Assignment] = []

        def work(session, now):
            crew = session.get(Crew, crew_id)
            if crew is None:
                raise ApiError(404, "not_found", f"no crew {crew_id!r}")
            for a in session.scalars(select(Assignment).where(Assignment.event_id == eid,
                                                              Assignment.status.in_(ACTIVE_ASSIGNMENT))):
                if a.crew_id != crew_id or a.status == "assigned":
                    a.status, a.updated_at = "cancelled", now
            seq = len(session.scalars(select(Assignment.id).where(
                Assignment.crew_id == crew_id, Assignment.status.in_(ACTIVE_ASSIGNMENT))).all())
            a = Assignment(event_id=eid, crew_id=crew_id, status="assigned", sequence=seq, locked=lock,
                           manual=True, created_at=now, updated_at=now)
            session.add(a)
            session.flush()
            created.append(a)
            return [("assignment", _assignment_message(a))]

        with self.db.read() as session:  # 404 for an unknown crew before touching the engine
            if session.get(Crew, crew_id) is None:
                raise ApiError(404, "not_found", f"no crew {crew_id!r}")
        self.act({"action": "state", "event_id": eid, "state": "dispatched", "actor": actor, "crew_id": crew_id,
                  "verb": "dispatch a crew to"}, session_work=work)
        return created[0]

    def set_lock(self, assignment_id: int, locked: bool, actor: str) -> Assignment:
        with self.db.write() as session, session.begin():
            a = session.get(Assignment, assignment_id)
            if a is None:
                raise ApiError(404, "not_found", f"no assignment {assignment_id}")
            if a.status not in ACTIVE_ASSIGNMENT and a.status != "proposed":
                raise ApiError(409, "conflict", f"assignment {assignment_id} is {a.status}; nothing to lock")
            a.locked, a.manual, a.updated_at = locked, True, self.clock()
            session.add(EventHistory(event_id=a.event_id, at=a.updated_at, actor=actor, action="lock" if locked
                                     else "unlock", detail={"assignment": a.id, "crew_id": a.crew_id}))
        self.broker.publish("assignment", _assignment_message(a))
        self._dirty()
        return a

    def crew_update(self, assignment_id: int, crew_id: str, status: str, *, cause: str | None, note: str | None,
                    actor: str) -> Assignment:
        with self.db.read() as session:
            a = session.get(Assignment, assignment_id)
        if a is None or a.crew_id != crew_id:
            raise ApiError(404, "not_found", f"your crew has no assignment {assignment_id}")
        if a.status not in ACTIVE_ASSIGNMENT:
            raise ApiError(409, "conflict", f"assignment {assignment_id} is {a.status}")
        result: list[Assignment] = []

        def work(session, now):
            row = session.get(Assignment, assignment_id)
            crew = session.get(Crew, crew_id)
            if status == "restored":
                row.status = "done"
                crew.status = "available"
            elif status == "needs_help":
                crew.status = "needs_help"
            else:
                row.status = status
                crew.status = status
                if status == "on_site":
                    row.locked = True  # work under way never moves
            row.updated_at = now
            result.append(row)
            return [("assignment", _assignment_message(row)), ("crew", _crew_message(crew))]

        if status == "restored":
            action = {"action": "restore", "event_id": a.event_id, "actor": actor, "cause": cause,
                      "reason": f"restored by crew {crew_id}" + (f": {note}" if note else "")}
        elif status == "needs_help":
            action = {"action": "state", "event_id": a.event_id, "actor": actor,
                      "state": self.engine.event(a.event_id).state.value if self.engine else "dispatched",
                      "note": f"crew {crew_id} needs help" + (f": {note}" if note else "")}
        else:
            action = {"action": "state", "event_id": a.event_id, "actor": actor, "state": status}
        self.act(action, session_work=work)
        return result[0]

    def crew_position(self, crew_id: str, lat: float, lon: float, at: datetime | None) -> Crew:
        now = self.clock()
        at = at or now
        if at > now + MAX_CLOCK_SKEW:
            raise ApiError(422, "invalid", f"position time {at.isoformat()} is in the future")
        with self.db.write() as session, session.begin():
            crew = session.get(Crew, crew_id)
            if crew is None:
                raise ApiError(404, "not_found", f"no crew {crew_id!r}")
            session.add(CrewPosition(crew_id=crew_id, lat=lat, lon=lon, at=at))
            if crew.position_at is None or at >= crew.position_at:
                crew.lat, crew.lon, crew.position_at = lat, lon, at
        self.broker.publish("crew", _crew_message(crew))
        return crew

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

    def replan(self) -> int | None:
        """Make a plan now (the debounce calls this; tests and the CLI may too). Returns the plan id."""
        if self.replanner is None:
            return None
        self._first_dirty = self._last_dirty = None
        self.stats["replans"] += 1
        return self.replanner.run()

    def accept_plan(self, plan_id: int, actor: str) -> list[Assignment]:
        if self.replanner is None:
            raise ApiError(503, "unavailable", "no territory is loaded; nothing to plan")
        return self.replanner.accept(plan_id, actor)

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


MODELS = {"report": Report, "meter": MeterMessage, "scada": ScadaMessage}


def _rows(session, model, ids: list[int]) -> list:
    """Plain rows (attribute access by column name) for ``ids``, in id order; cheaper than ORM objects."""
    out = []
    table = model.__table__
    for chunk in _chunks(ids):
        out += session.execute(select(table).where(table.c.id.in_(chunk))).all()
    out.sort(key=lambda r: r.id)
    return out


def _chunks(ids: list, size: int = 900) -> Iterable[list]:
    """``ids`` in slices small enough for an ``IN (...)`` list (SQLite allows 999 bound parameters)."""
    return (ids[i:i + size] for i in range(0, len(ids), size))


def _load_rows(db: Database, batch: list[Committed]):
    ids: dict[str, list[int]] = {"report": [], "meter": [], "scada": []}
    for c in batch:
        ids[c.kind].extend(c.ids)
    with db.read() as session:
        reports, meters, scada = (_rows(session, MODELS[k], ids[k]) for k in ("report", "meter", "scada"))
    # a row already processed (the restart path got to it first) is not fed twice
    return ([r for r in reports if r.processed_at is None], [m for m in meters if m.processed_at is None],
            [s for s in scada if s.processed_at is None])


def _mark_processed(session, model, ids: list[int], now: datetime) -> None:
    table = model.__table__  # Core, not ORM-enabled UPDATE: this runs for every intake batch
    for chunk in _chunks(ids):
        session.execute(table.update().where(table.c.id.in_(chunk)).values(processed_at=now))


def _mark_reports(session, report_event: dict[int, str | None], now: datetime) -> None:
    """Mark reports processed and point each at its event (None: not analysed) in one executemany: one new row
    version per report instead of two, and no UPDATE per event (in a storm most events are one caller's)."""
    table = Report.__table__
    if report_event:
        session.execute(table.update().where(table.c.id == bindparam("_id"))
                        .values(processed_at=now, event_id=bindparam("_event")),
                        [{"_id": rid, "_event": eid} for rid, eid in report_event.items()])


def _domain_report(row: Report):
    from outage.reports import Report as DomainReport

    hazards = set(row.hazards or ())
    contact = row.contact or {}
    return DomainReport(report_id=str(row.id), time=row.received_at, sp_id=row.sp_id,
                        lon=row.lon if row.sp_id is None else None, lat=row.lat if row.sp_id is None else None,
                        channel=row.channel, power=row.power, wires_down="wires_down" in hazards,
                        fire_sparks="fire_sparks" in hazards, tree_on_line="tree_on_line" in hazards,
                        visible_damage="visible_damage" in hazards, medical_equipment=row.medical_equipment,
                        neighbours_out=row.neighbours_out, text=row.comment or "",
                        notify=contact.get("prefer", "none") if contact.get("prefer") != "voice" else "voice")


#: ``events`` columns the engine does not always own, with their value for a new row: see
#: :meth:`LiveEngine._event_values`. The reclassification check reads device, class and tier too.
_KEPT = {"cause": None, "cause_confirmed": False, "tier": 4, "weight": 0.0, "priority_reason": "",
         "etr_earliest": None, "etr_latest": None, "etr_detail": None, "device_id": None,
         "event_class": "single_customer"}


def _event_message(row: dict[str, Any]) -> dict[str, Any]:
    """What the stream says about an event: no personal data (no reports, names, addresses)."""
    msg = {k: row[k] for k in ("id", "state", "tier", "weight", "device_id", "device_kind", "feeder_id",
                               "customers_out", "critical_count", "hazards", "cause", "lat", "lon",
                               "etr_earliest", "etr_latest", "merged_into", "explanation")}
    msg["class"] = row["event_class"]
    msg["closed"] = row["state"] in CLOSED_STATES
    return msg


def _assignment_message(a: Assignment) -> dict[str, Any]:
    return {"id": a.id, "event_id": a.event_id, "crew_id": a.crew_id, "status": a.status, "eta": a.eta,
            "sequence": a.sequence, "locked": a.locked, "manual": a.manual, "plan_id": a.plan_id}


def _crew_message(c: Crew) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "status": c.status, "lat": c.lat, "lon": c.lon,
            "position_at": c.position_at, "skills": c.skills}
