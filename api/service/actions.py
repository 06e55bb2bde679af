"""What dispatchers and crews do to events, through the live engine.

Every action (confirm, cancel, restore in whole or in part, merge, split, advance the life cycle, dispatch, crew
status and position) is validated, applied to the outage engine under the live engine's lock, journaled, persisted
and published in one transaction by :meth:`DispatchActions.act_many`, so that a replay of the journal after a restart
gives the same engine. :class:`api.service.live.LiveEngine` mixes this in: it owns the engine, the database, the
broker and the lock these methods use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from api.errors import ApiError
from api.service.intake import MAX_CLOCK_SKEW
from api.service.messages import assignment_message, crew_message
from api.store.models import (
    ACTIVE_ASSIGNMENT,
    Assignment,
    Crew,
    CrewPosition,
    Event,
    EventHistory,
    JournalEntry,
    Report,
)

log = logging.getLogger("oms.live")


class DispatchActions:
    """Dispatcher and crew actions; mixed into :class:`api.service.live.LiveEngine`."""

    # ================================================================ actions (dispatcher, crew)
    def _apply_action(self, a: dict[str, Any], now: datetime) -> list:
        """Apply one journaled action to the engine; the single code path for live use and replay."""
        from outage.events import EventState

        eng, kind, eid, actor = self.engine, a["action"], a.get("event_id"), a.get("actor", "?")
        if self.etr is not None:
            self.etr.note_action(a, now)
        if kind == "cause":  # a crew or dispatcher reports what caused it (the on-site ETR uses it)
            eng.event(eid).cause = a["cause"]
            return []
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
            args = dict(a["args"])
            if isinstance(args.get("crew_at"), str):  # the journal's JSON form
                args["crew_at"] = datetime.fromisoformat(args["crew_at"])
            return eng.update_etr(eid, now, **args)
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
        self.publish(messages)
        if extra:
            self.publish(extra)
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
        if kind in ("confirm", "restore", "cause") and action.get("cause"):
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
        action = {"action": "confirm", "event_id": eid, "actor": actor, "cause": cause, "reason": note}
        with self._lock:  # a cause reported while the crew is on site: the on-site ETR uses it at once
            ev = self._engine_event(eid) if cause else None
            e = None if ev is None or ev.state.value != "on_site" or self.etr is None else self.etr.action(
                self.engine, ev, self.clock(), "on_site", actor, cause=cause, fact=True)
            self.act_many([action] + ([e] if e is not None else []))
        return self._event_row(eid)

    def _engine_event(self, eid: str):
        try:
            return None if self.engine is None else self.engine.event(eid)
        except KeyError:
            return None  # act_many says 404

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
                raise ApiError(404, "not_found", f"no device or service point {unknown[0]!r}")
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
            raise ApiError(404, "not_found", f"no device {device_id!r}")
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
            raise ApiError(404, "not_found", f"no depot {body.depot_id!r}")
        if body.shift_start and body.shift_end and body.shift_end <= body.shift_start:
            raise ApiError(422, "invalid", "shift_end must be after shift_start")
        with self.db.write() as session, session.begin():
            crew = session.get(Crew, body.id) or Crew(id=body.id)
            for k in ("name", "skills", "depot_id", "shift_start", "shift_end"):
                setattr(crew, k, getattr(body, k))
            if body.lat is not None and body.lon is not None:
                crew.lat, crew.lon, crew.position_at = body.lat, body.lon, self.clock()
            session.add(crew)
        self.broker.publish("crew", crew_message(crew))
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
            return [("assignment", assignment_message(a))]

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
        self.broker.publish("assignment", assignment_message(a))
        self._dirty()
        return a

    def crew_update(self, assignment_id: int, crew_id: str, status: str, *, cause: str | None, note: str | None,
                    actor: str, etr: datetime | None = None) -> Assignment:
        """A crew's status. ``cause``: what the crew found (on site: the on-site ETR uses it); ``etr``: the crew's
        own restoration time, published as entered and never replaced by an estimate."""
        with self.db.read() as session:
            a = session.get(Assignment, assignment_id)
        if a is None or a.crew_id != crew_id:
            raise ApiError(404, "not_found", f"your crew has no assignment {assignment_id}")
        if a.status not in ACTIVE_ASSIGNMENT:
            raise ApiError(409, "conflict", f"assignment {assignment_id} is {a.status}")
        if etr is not None and etr < self.clock():
            raise ApiError(422, "invalid", f"etr {etr.isoformat()} is in the past",
                           [{"field": "body.etr", "message": "in the past"}])
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
            return [("assignment", assignment_message(row)), ("crew", crew_message(crew))]

        if status == "restored":
            action = {"action": "restore", "event_id": a.event_id, "actor": actor, "cause": cause,
                      "reason": f"restored by crew {crew_id}" + (f": {note}" if note else "")}
        elif status == "needs_help":
            action = {"action": "state", "event_id": a.event_id, "actor": actor,
                      "state": self.engine.event(a.event_id).state.value if self.engine else "dispatched",
                      "note": f"crew {crew_id} needs help" + (f": {note}" if note else "")}
        else:
            action = {"action": "state", "event_id": a.event_id, "actor": actor, "state": status}
        with self._lock:
            actions = [action] + ([] if status == "restored" else self._crew_etr_actions(a, status, cause, etr, actor))
            self.act_many(actions, session_work=work)
        return result[0]

    def _crew_etr_actions(self, a: Assignment, status: str, cause: str | None, etr: datetime | None,
                          actor: str) -> list[dict]:
        """What a crew's status says about the ETR: the cause it reports, its own ETR, or the stage it starts
        (``assigned`` on the way, from the plan's ETA; ``on_site`` on arrival, with the cause when reported)."""
        if self.engine is None or self.etr is None:
            return []
        try:
            ev = self.engine.event(a.event_id)
        except KeyError:
            return []  # act_many says 404
        now = self.clock()
        out: list[dict] = []
        if cause:
            out.append({"action": "cause", "event_id": a.event_id, "actor": actor, "cause": cause})
        if etr is not None:
            out.append({"action": "etr", "event_id": a.event_id, "actor": actor,
                        "args": {"crew_at": etr.isoformat()}})
            return out
        on_site = status == "on_site" or (ev.state.value == "on_site" and status != "en_route")
        if on_site:
            e = self.etr.action(self.engine, ev, now, "on_site", actor, cause=cause or None, fact=bool(cause))
        elif status == "en_route" and a.eta is not None:
            eta = a.eta if a.eta.tzinfo else a.eta.replace(tzinfo=now.tzinfo)
            e = self.etr.action(self.engine, ev, now, "assigned", actor, wait=(eta - now).total_seconds() / 60.0)
        else:
            e = None
        return out + ([e] if e is not None else [])

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
        self.broker.publish("crew", crew_message(crew))
        return crew
