"""The live service's ETRs: one learned model (:class:`outage.etr_model.EtrModel`), every stage, one no-churn rule.

:class:`LiveEtr` is owned by :class:`api.service.live.LiveEngine`. It

* **learns** from the service's own restored events: for each event restored after a crew was on site, the repair
  minutes (on site -> restored) by device kind and the cause the crew reported, and per stage the ratio of the
  actual wait for the crew to the wait planned when the event entered that stage. It learns from what the engine
  sees, whether live (:meth:`observe` on every batch of engine changes) or while the journal is replayed at
  start-up, so a restarted service has learned everything its database holds. An imported history (an events CSV,
  the format :meth:`outage.etr_model.EtrModel.learn_history` reads; setting ``OMS_ETR_HISTORY``) is learned first.
* **proposes** an ETR per stage as a journaled ``etr`` action (:meth:`action`): ``storm`` for a known event not in
  the plan (the backlog's crew-minutes per crew on shift, :meth:`storm_actions`), ``queued`` and ``assigned`` from
  the plan's ETA (the re-planner), ``on_site`` once the crew is there, with the cause it reported. The engine
  publishes through :func:`outage.etr_policy.decide` (what docs/etr.md says "matters"); a crew-entered ETR is never
  replaced. The first range of an event states :data:`outage.etr_policy.FIRST` (90%), later ones the model's 80%.

The staging itself (which stage, what wait, what is offered, what an outcome teaches) is
:mod:`outage.etr_issue`, the code the restoration simulator and ``bench/etr.py`` run too: this module adapts it
to the engine, the journal and the plan. Everything here runs under the live engine's lock (the engine and its
journal are single-threaded).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

log = logging.getLogger("oms.etr")


class LiveEtr:
    def __init__(self, history_csv: str | None = None) -> None:
        from outage.etr_model import EtrModel

        self.model = EtrModel()
        self.history = 0
        self.status = "no history imported"
        if history_csv:
            try:
                self.history = self.model.learn_history(history_csv)
                self.status = f"{self.history} restored events learned from {history_csv}"
            except (OSError, ValueError, KeyError) as exc:  # a bad setting must not stop the service
                self.status = f"OMS_ETR_HISTORY {history_csv!r} not learned: {exc}"
                log.error("%s", self.status)
        #: event -> stage -> (time it entered the stage, the wait planned then, minutes)
        self.entries: dict[str, dict[str, tuple[datetime, float]]] = {}
        #: event -> the cause a crew or dispatcher reported (the engine's own guess is not a report)
        self.causes: dict[str, str] = {}
        self.learned = {"repairs": 0, "waits": 0}
        #: events partly restored since their last estimate: a new fact for the next one (docs/etr.md)
        self.new_facts: set[str] = set()
        self._passed: dict[str, object] = {}  # event -> its passed estimate, already flagged for a re-plan

    # ------------------------------------------------------------------------------------------------ learning
    def note_action(self, a: dict[str, Any], now: datetime) -> None:
        """A journaled action was applied (live or replayed): remember stage entries and reported causes."""
        eid = a.get("event_id")
        if eid is None:
            return
        if a["action"] == "etr" and a.get("stage"):
            self.entries.setdefault(eid, {}).setdefault(a["stage"], (now, float(a.get("wait") or 0.0)))
        elif a["action"] in ("confirm", "cause", "restore") and a.get("cause"):
            self.causes[eid] = a["cause"]

    def observe(self, engine, changes) -> None:
        """Learn from every event the changes restore in whole (a partial restoration is not an outcome yet)."""
        from outage.etr_issue import learn_outcome
        from outage.events import EventCancelled, EventMerged, EventRestored, EventState

        for c in changes:
            if isinstance(c, (EventCancelled, EventMerged)):
                self.entries.pop(c.event_id, None)
                self.new_facts.discard(c.event_id)
                continue
            if isinstance(c, EventRestored) and c.partial:
                self.new_facts.add(c.event_id)
            if not isinstance(c, EventRestored) or c.partial:
                continue
            try:
                ev = engine.event(c.event_id)
            except KeyError:
                continue
            on_site = next((t.time for t in ev.history if t.state == EventState.ON_SITE), None)
            entries = self.entries.pop(c.event_id, {})
            self.new_facts.discard(c.event_id)
            if on_site is None or c.time < on_site:
                continue  # restored without a crew on site (switching, meters back): no repair time to learn
            cause = self.causes.pop(c.event_id, "") or ev.cause or ""
            self.learned["waits"] += learn_outcome(
                self.model, ev.device_kind or "*", cause, on_site, c.time, entries
            )
            self.learned["repairs"] += 1

    # ------------------------------------------------------------------------------------------------ estimates
    def action(
        self,
        engine,
        ev,
        now: datetime,
        stage: str,
        actor: str,
        *,
        wait: float = 0.0,
        cause: str | None = None,
        fact: bool = False,
        cache: dict | None = None,
    ) -> dict | None:
        """The journaled ``etr`` action proposing ``ev``'s ETR at ``stage``, or None when it would change nothing
        (the published range holds, or a crew's ETR stands). ``on_site``: the time already on site comes from the
        event's history; ``cause``: the reported one (default: what was reported so far). ``cache``: estimates
        shared by the events of one pass (same stage, kind and wait: the same range)."""
        from outage.etr import etr_to_dict
        from outage.etr_issue import propose

        fact = fact or ev.event_id in self.new_facts
        elapsed = 0.0
        if stage == "on_site":
            cause = self.causes.get(ev.event_id, "") if cause is None else cause
            since = next((t.time for t in ev.history if t.state.value == "on_site"), None)
            elapsed = (now - since).total_seconds() / 60.0 if since is not None else 0.0
        got = propose(
            self.model,
            now,
            stage,
            ev.device_kind or "*",
            current=ev.etr,
            news=lambda etr, holds: engine.etr_news(ev.event_id, etr, now, holds=holds, fact=fact),
            wait=wait,
            cause=cause or "",
            elapsed=elapsed,
            cache=cache,
        )
        if got is None:
            return None
        new, holds = got
        wait = max(0.0, float(wait))
        self.new_facts.discard(ev.event_id)
        return {
            "action": "etr",
            "event_id": ev.event_id,
            "actor": actor,
            "stage": stage,
            "wait": round(wait, 2),
            "args": {"etr": etr_to_dict(new), "holds": holds, "fact": fact},
        }

    def storm_actions(self, engine, now: datetime, planned: set[str], crews: int, actor: str) -> list[dict]:
        """``storm`` ETRs for every open event not in the plan (``planned``: events with a crew's ETA): wait = the
        open backlog's crew-minutes (expected repair of every open event, + a drive for those not reached yet) per
        crew on shift; and ``on_site`` ones for every event a crew works on (the time on site grows)."""
        from outage.etr_issue import storm_wait

        events = [e for e in engine.events if not e.merged_into]

        def work(e) -> tuple[str, str, float | None]:
            if e.state.value != "on_site":
                return e.device_kind or "*", "", None
            since = next((t.time for t in e.history if t.state.value == "on_site"), now)
            return e.device_kind or "*", self.causes.get(e.event_id, ""), (now - since).total_seconds() / 60.0

        wait = storm_wait(self.model, map(work, events), crews)
        out, cache = [], {}
        for e in events:
            if e.state.value == "on_site":  # its crew's estimate, also when the plan does not list the job
                a = self.action(engine, e, now, "on_site", actor)
                if a is not None:
                    out.append(a)
                continue
            if e.event_id in planned:
                continue
            a = self.action(engine, e, now, "storm", actor, wait=wait, cache=cache)
            if a is not None:
                out.append(a)
        return out

    def overdue(self, engine, now: datetime) -> bool:
        """Whether an open event's published estimate has passed since the last look (a crew's own ETR is its
        word, not renewed): the service then re-plans once, and the next estimate replaces it (rule 2)."""
        passed = {
            e.event_id: e.etr
            for e in engine.events
            if e.etr is not None and e.etr.source != "crew" and e.etr.latest < now
        }
        new = any(self._passed.get(eid) != etr for eid, etr in passed.items())
        self._passed = passed
        return new
