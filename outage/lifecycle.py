"""The event life cycle: how an event is created, found, frozen, restored, described and timed.

An :class:`~outage.engine.OutageEngine` is assembled from four parts; this is the one that keeps the events. Each
event has a :class:`_Track` (the engine's bookkeeping beside the public :class:`~outage.events.OutageEvent`) and is
registered where its evidence lives: at its device (open predicted events take part in the roll-up, frozen ones
only explain their customers) and on every device above it. Here are the track tables and their upkeep
(register, unregister, freeze, release), nested outages after a restoration, restoration whole or in part with its
interruption records and verification by ping, state transitions, the event's counts, class and description, and
the timers (AMI declaration, unconfirmed -> probable, time separation, power-on evidence expiry, call-rate windows).

The tables live on the engine (its constructor creates them); evidence (:mod:`outage.evidence`) and the roll-up
(:mod:`outage.rollup`) reach events through the methods here. ``ENGINE`` (the actor of the engine's own changes)
and ``_Track`` are defined here because all the parts use them and this module needs neither of the others.
"""

from __future__ import annotations

import heapq
from datetime import datetime

from outage.events import (
    PREDICTED_STATES,
    EventClass,
    EventCreated,
    EventRestored,
    EventState,
    EventUpdated,
    OutageEvent,
    Transition,
)
from outage.meters import PING_OFF
from outage.records import Interruption
from outage.reports import Report

ENGINE = "engine"


class _Track:
    """Internal bookkeeping of one event (the public part is ``event``)."""

    __slots__ = (
        "event",
        "dev",
        "sp",
        "sps",
        "cust",
        "first_gasp",
        "frozen",
        "restored",
        "records",
        "pinged",
        "hazard_only",
        "devices",
        "newest_gasp",
        "lone",
        "onset",
        "suspect",
    )

    def __init__(self, event: OutageEvent, dev: int, sp: int):
        self.event = event
        self.dev = dev  # device index, or -1 for a single service point
        self.sp = sp  # service point index for single-service events, else -1
        self.sps: dict[int, list[str]] = {}  # service points with out-evidence -> report ids
        self.cust = 0  # customers behind ``sps``
        # placed on a transformer by one call, the transformer not predicted (rollup._lone_call_transformer)
        self.lone = False
        self.onset = False  # counted among the outages that began (customer_side._note_onset)
        self.suspect = False  # one call judged customer-side (customer_side._customer_side)
        self.first_gasp: datetime | None = None  # earliest AMI out-evidence
        self.newest_gasp: datetime | None = None  # latest time a meter of this event went dark
        self.frozen = False
        self.restored: set[int] = set()  # service points already restored (partial restoration)
        self.records: dict[int, Interruption] = {}  # closed interruption records by service point
        self.pinged: set[int] = set()  # devices already verified by ping
        self.hazard_only = False
        self.devices: list[int] = [dev] if dev >= 0 else []  # own device + devices merged in by hand


class LifeCycleMixin:
    """Event tracks and their tables, freezing, nested outages, restoration and interruption records, state
    transitions and descriptions, and the timers.

    A part of :class:`~outage.engine.OutageEngine`, not usable alone: it reads the engine's grid, rules, clock and
    meters, and hands evidence to :class:`~outage.evidence.EvidenceMixin` (``_add_out``, ``_uncount``, ``_ping``)
    and the roll-up (:class:`~outage.rollup.RollUpMixin`).
    """

    # ================================================================ tracks
    def _new_track(
        self, dev: int, sp: int, t: datetime, state: EventState, actor: str, reason: str, frozen: bool = False
    ) -> _Track:
        g = self.grid
        eid = f"E{next(self._ids)}"
        kind = g.kind[dev] if dev >= 0 else "service"
        ev = OutageEvent(
            event_id=eid,
            device_id=g.device_ids[dev] if dev >= 0 else None,
            device_kind=kind,
            sp_id=g.sp_ids[sp] if sp >= 0 else None,
            start=t,
            state=state,
            event_class=EventClass.SINGLE_CUSTOMER if dev < 0 else EventClass.FEEDER,
            last_evidence=t,
        )
        ev.history.append(Transition(t, state, actor, reason))
        tr = _Track(ev, dev, sp)
        ev.describe = lambda: self._describe(tr)
        tr.frozen = frozen
        self._events[eid] = tr
        self._register(tr)
        if state in PREDICTED_STATES:
            self._push(t + self._ruleset_track(tr).probable_after, "probable", eid)
            self._push(t + self._ruleset_track(tr).separation, "separate", eid)
        self._changes.append(EventCreated(eid, t, ev.device_id, ev.sp_id, state))
        self._refresh(tr)
        return tr

    def _register(self, tr: _Track) -> None:
        g = self.grid
        if tr.dev >= 0:
            (self._frozen_at if tr.frozen else self._event_at)[tr.dev] = tr
            d = g.parent[tr.dev]
        else:
            if tr.frozen:
                self._frozen_sp[tr.sp] = tr
            d = g.sp_first[tr.sp]
        while d >= 0:
            self._under.setdefault(d, {})[tr] = None
            d = g.parent[d]

    def _unregister(self, tr: _Track) -> None:
        g = self.grid
        self._lifted.discard(tr.dev)  # a lift lasts as long as its event (rollup._lift_under_lockout)
        if tr.dev >= 0:
            for table in (self._event_at, self._frozen_at):
                if table.get(tr.dev) is tr:
                    del table[tr.dev]
            d = g.parent[tr.dev]
        else:
            if self._frozen_sp.get(tr.sp) is tr:
                del self._frozen_sp[tr.sp]
            d = g.sp_first[tr.sp]
        while d >= 0:
            s = self._under.get(d)
            if s is not None:
                s.pop(tr, None)
                if not s:
                    del self._under[d]
            d = g.parent[d]

    def _freeze(self, tr: _Track) -> None:
        """Take an event out of the roll-up: its evidence stops counting, it keeps explaining its customers."""
        if tr.frozen or not tr.event.open:
            return
        self._unregister(tr)
        tr.frozen = True
        self._register(tr)
        g = self.grid
        for k in tr.sps:
            self._uncount(k, g.chain(k), likelihood=False)

    def _close_evidence(self, tr: _Track) -> None:
        """Release the event's service points (restored or cancelled)."""
        g = self.grid
        self._unregister(tr)  # first, so that re-evaluation below cannot dissolve this very event
        for k in tr.sps:
            self._sp_gasp.pop(k, None)
            self._let_go(tr, k)
            if not tr.frozen:
                self._uncount(k, g.chain(k))

    def _let_go(self, tr: _Track, k: int) -> None:
        """``tr`` no longer holds ``k``'s out-evidence (closed, or ``k`` restored). A frozen event's service point
        leaves the likelihood only now: the count rules let go of it when the event froze (see ``_uncount``)."""
        if self._sp_track.get(k) is not tr:
            return
        del self._sp_track[k]
        if tr.frozen and k in self._sp_ev:
            self._uncount(k, self.grid.chain(k), rules=False)

    def _explained_by_frozen(self, k: int) -> _Track | None:
        tr = self._frozen_sp.get(k)
        return tr if tr is not None else self._frozen_over(self.grid.sp_first[k])

    def _frozen_over(self, d: int) -> _Track | None:
        """The frozen (worked or SCADA-confirmed) event at device ``d`` or above it; closed ones are unregistered."""
        parent, frozen_at = self.grid.parent, self._frozen_at
        while d >= 0:
            tr = frozen_at.get(d)
            if tr is not None:
                return tr
            d = parent[d]
        return None

    def _recently_restored(self, k: int, t: datetime, rs) -> _Track | None:
        tr = self._restored_sp.get(k)
        if tr is None:
            d = self.grid.sp_first[k]
            while d >= 0:
                tr = self._restored_at.get(d)
                if tr is not None:
                    break
                d = self.grid.parent[d]
        if tr is None or k not in tr.records:
            return None
        if t - tr.event.restored_at > rs.nested_window:
            return None
        return tr

    def _make_nested(self, tr: _Track, parent: _Track, t: datetime) -> None:
        """``tr`` holds customers still out after ``parent`` was (partly) restored: backdate it and take over their
        interruption records so no customer-minute is counted twice."""
        ev = tr.event
        if ev.nested_from is None:
            ev.nested_from = parent.event.event_id
            ev.history.append(
                Transition(
                    t,
                    ev.state,
                    ENGINE,
                    f"nested outage: still out after {parent.event.event_id} was restored",
                )
            )
        if parent.event.start < ev.start:
            ev.start = parent.event.start
        for k in self._scope(tr):
            rec = parent.records.pop(k, None)
            if rec is not None:
                self._carry[k] = rec.start
        self._changes.append(EventUpdated(ev.event_id, t, "nested"))

    # ================================================================ restoration
    def _scope(self, tr: _Track) -> list[int]:
        """Service points the event interrupts (device slices, or its single service point)."""
        g = self.grid
        if tr.hazard_only:
            return []
        if not tr.devices:
            return [tr.sp] if tr.sp >= 0 else list(tr.sps)
        if len(tr.devices) == 1:
            d = tr.devices[0]
            return g.sp_order[g.lo[d] : g.hi[d]].tolist()
        seen: set[int] = set()
        for d in tr.devices:
            seen.update(g.sp_order[g.lo[d] : g.hi[d]].tolist())
        seen.update(tr.sps)
        return sorted(seen)

    def _open_cover_above(self, tr: _Track) -> _Track | None:
        g = self.grid
        d = g.parent[tr.dev] if tr.dev >= 0 else (g.sp_first[tr.sp] if tr.sp >= 0 else -1)
        while d >= 0:
            other = self._frozen_at.get(d) or self._event_at.get(d)
            if other is not None and other is not tr and other.event.open:
                return other
            d = g.parent[d]
        return None

    def _restore(self, tr: _Track, now: datetime, actor: str, reason: str) -> None:
        ev = tr.event
        if not ev.open:
            raise ValueError(f"event {ev.event_id}: already {ev.state.value}")
        scope = [k for k in self._scope(tr) if k not in tr.restored]
        self._close_records(tr, scope, now)
        self._close_evidence(tr)
        ev.restored_at = now
        if tr.dev >= 0:
            self._restored_at[tr.dev] = tr
        elif tr.sp >= 0:
            self._restored_sp[tr.sp] = tr
        self._transition(tr, EventState.RESTORED, now, actor, reason)
        self._changes.append(
            EventRestored(ev.event_id, now, False, sum(self.grid.sp_customers[k] for k in scope))
        )
        ev.customers = 0
        self._verify_restoration(tr, scope, now)

    def _restore_part(
        self, tr: _Track, now: datetime, actor: str, reason: str, devices: list[int], sps: list[int]
    ) -> None:
        g = self.grid
        own = set(self._scope(tr))
        part: list[int] = []
        for d in devices:
            ks = g.sp_order[g.lo[d] : g.hi[d]].tolist()
            if not own.issuperset(ks) or not ks:
                raise ValueError(
                    f"event {tr.event.event_id}: device {g.device_ids[d]} is not inside the event"
                )
            part.extend(ks)
        for k in sps:
            if k not in own:
                raise ValueError(f"event {tr.event.event_id}: service point {g.sp_ids[k]} is not inside it")
            part.append(k)
        part = [k for k in dict.fromkeys(part) if k not in tr.restored]
        self._close_records(tr, part, now)
        tr.restored.update(part)
        tr.event.restored_sps.extend(g.sp_ids[k] for k in part)
        for k in part:
            self._let_go(tr, k)
        tr.event.history.append(Transition(now, tr.event.state, actor, f"partial restoration: {reason}"))
        self._changes.append(
            EventRestored(tr.event.event_id, now, True, sum(g.sp_customers[k] for k in part))
        )
        self._refresh(tr)
        self._verify_restoration(tr, part, now)

    def _close_records(self, tr: _Track, scope: list[int], now: datetime) -> None:
        """Write interruption records for ``scope``, unless another open event still covers a customer (then its
        start is carried over to that event)."""
        ev = tr.event
        above = self._open_cover_above(tr)
        below: dict[int, _Track] = {}
        for d in tr.devices:
            for other in self._under.get(d, ()):
                if other is not tr and other.event.open and not other.hazard_only:
                    for k in self._scope(other):
                        below[k] = other
        for k in scope:
            start = self._carry.pop(k, ev.start)
            if above is not None or k in below:
                prev = self._carry.get(k)
                self._carry[k] = start if prev is None or start < prev else prev
                continue
            tr.records[k] = self._record(tr, k, start, now)

    def _record(self, tr: _Track, k: int, start: datetime, end: datetime | None) -> Interruption:
        g, ev = self.grid, tr.event
        return Interruption(
            customer_id=g.sp_ids[k],
            start=start,
            end=end,
            event_id=ev.event_id,
            customers=g.sp_customers[k],
            feeder_id=g.sp_feeder[k],
            substation_id=g.sp_substation[k],
            cause=ev.cause,
            device_id=ev.key,
            device_kind=ev.device_kind,
        )

    def _verify_restoration(self, tr: _Track, scope: list[int], now: datetime) -> None:
        """Ping a sample per transformer of what was restored; meters still off are nested outages."""
        if self.meters is None or not scope:
            return
        g = self.grid
        rs = self._ruleset_track(tr)
        per: dict[int, int] = {}
        sample = []
        for k in scope:
            x = g.sp_first[k]
            if g.metered[k] and per.get(x, 0) < rs.ping_per_transformer:
                per[x] = per.get(x, 0) + 1
                sample.append(k)
        if not sample:
            return
        answers = self._ping(sample, now, rs)
        for k in sample:
            if answers[k] == PING_OFF:
                self._add_out(k, now, source="ping")

    # ================================================================ events: state and description
    def _transition(self, tr: _Track, state: EventState, t: datetime, actor: str, reason: str) -> None:
        ev = tr.event
        if ev.state == state:
            return
        ev.state = state
        ev.history.append(Transition(t, state, actor, reason))
        self._changes.append(EventUpdated(ev.event_id, t, f"state:{state.value}"))

    def _refresh(self, tr: _Track) -> None:
        """Recompute counts, class, confidence and explanation (O(devices of the event))."""
        g, ev = self.grid, tr.event
        if tr.devices:
            restored = sum(g.sp_customers[k] for k in tr.restored) if tr.restored else 0
            customers = (
                g.device_customers[tr.devices[0]]
                if len(tr.devices) == 1
                else sum(g.device_customers[d] for d in tr.devices)
            )
            ev.customers = customers - restored
            crit: dict[str, int] = {}
            for d in tr.devices:
                for kind, n in g.critical_in(g.lo[d], g.hi[d]).items():
                    crit[kind] = crit.get(kind, 0) + n
            for k in tr.restored:
                kind = g.critical_kind[k]
                if kind in crit:
                    crit[kind] -= g.sp_customers[k]
            ev.critical_kinds = {k: n for k, n in crit.items() if n > 0}
            feeders = {g.feeder[d] for d in tr.devices if g.feeder[d]}
            subs = {g.substation[d] for d in tr.devices if g.substation[d]}
            ev.feeders = tuple(sorted(feeders))
            ev.substation_id = ",".join(sorted(subs))
            multi = len(feeders) > 1 or any(g.community[d] for d in tr.devices) or len(subs) > 1
            ev.event_class = EventClass.COMMUNITY if multi else EventClass.FEEDER
            if tr.suspect and self._one_service_point(tr):
                ev.event_class = EventClass.CUSTOMER_SIDE
        elif tr.hazard_only:
            ev.event_class = EventClass.HAZARD
        else:
            k = tr.sp
            ev.customers = g.sp_customers[k] if k >= 0 and k not in tr.restored else 0
            kind = g.critical_kind[k] if k >= 0 else "none"
            ev.critical_kinds = {kind: ev.customers} if kind != "none" and ev.customers else {}
            ev.feeders = (g.sp_feeder[k],) if k >= 0 and g.sp_feeder[k] else ()
            ev.substation_id = g.sp_substation[k] if k >= 0 else ""
            ev.event_class = EventClass.CUSTOMER_SIDE if tr.suspect else EventClass.SINGLE_CUSTOMER
        ev.critical_customers = sum(ev.critical_kinds.values()) if ev.critical_kinds else 0
        self._explain(tr)

    def _one_service_point(self, tr: _Track) -> bool:
        """Whether ``tr`` is the outage of one service point: on the service point itself, on the transformer a lone
        call sits on (``lone``), or on a device with no other service point below it."""
        return tr.dev < 0 or tr.lone or self.grid.n_sp[tr.dev] == 1

    def _explain(self, tr: _Track) -> None:
        tr.event.mark_changed()

    def _describe(self, tr: _Track) -> tuple[float, str]:
        """(confidence, explanation) of an event from its current evidence."""
        g, ev = self.grid, tr.event
        n_sp = len(tr.sps)
        cust = tr.cust
        bits = []
        if ev.scada:
            bits.append("SCADA " + ", ".join(s.split("@")[0] for s in ev.scada))
        if tr.devices:
            d = tr.devices[0]
            label = f"{g.kind[d]} {g.device_ids[d]}"
            if g.is_transformer[d]:
                bits.append(
                    f"{n_sp} of {g.hi[d] - g.lo[d]} service points ({cust} of {g.device_customers[d]} "
                    f"customers) under {label} out"
                )
            else:
                kids = g.n_children[d]
                act = self._active[d] if not tr.frozen else None
                under = f"{act} of {kids} devices with evidence" if act is not None else f"{kids} devices"
                bits.append(
                    f"{n_sp} service points out ({cust} of {g.device_customers[d]} customers) under "
                    f"{label} ({under} below it)"
                )
            twins = g.equiv[d]
            if twins is not None:
                others = ", ".join(f"{g.kind[m]} {g.device_ids[m]}" for m in twins if m != d)
                bits.append(
                    f"same customers as {others}: no report tells them apart; chosen by how often "
                    "each kind fails"
                )
            if len(tr.devices) > 1:
                bits.append("merged with " + ", ".join(g.device_ids[x] for x in tr.devices[1:]))
            if tr.suspect:
                bits.append("one call while no other outage began near it in time: likely customer-side")
        elif tr.hazard_only:
            bits.append("hazard reported: " + ", ".join(ev.hazards))
        else:
            bits.append(
                f"one service point out ({g.sp_ids[tr.sp]}); not enough evidence that its transformer is out"
            )
            if tr.suspect:
                bits.append("one call while no other outage began near it in time: likely customer-side")
        if ev.last_gasps:
            bits.append(f"{ev.last_gasps} last gasps")
        if ev.pings:
            bits.append("pings: " + ", ".join(f"{n} {a}" for a, n in sorted(ev.pings.items())))
        bits.append(
            f"{ev.power_on_evidence} restore/power-on messages"
            if ev.power_on_evidence
            else "no restore messages"
        )
        explanation = "; ".join(bits)
        # confidence: how far the evidence is past the rule, plus pings
        if ev.scada:
            conf = 1.0
        elif tr.devices:
            d = tr.devices[0]
            rule = self._ruleset_dev(d).devices.get(g.rule_kind[d])
            share = cust / g.device_customers[d] if g.device_customers[d] else 0.0
            conf = 0.4 + 0.4 * min(1.0, share / rule.min_share if rule else share)
        else:
            conf = 0.5
        on, off = ev.pings.get("on", 0), ev.pings.get("off", 0)
        if on + off:
            conf = min(1.0, conf + 0.2 * off / (on + off))
        return round(conf, 2), explanation

    def _sp_put(self, tr: _Track, k: int, reps: list[str]) -> None:
        if k not in tr.sps:
            tr.cust += self.grid.sp_customers[k]
        tr.sps[k] = reps

    def _sp_pop(self, tr: _Track, k: int) -> list[str]:
        reps = tr.sps.pop(k, None)
        if reps is None:
            return []
        tr.cust -= self.grid.sp_customers[k]
        return reps

    def _move_sp(self, src: _Track, dst: _Track, k: int) -> None:
        """Move service point ``k``'s evidence and reports from event ``src`` to ``dst`` (the caller rebuilds both
        events' report lists and refreshes them)."""
        reps = self._sp_pop(src, k)
        src.event.service_points_out -= 1
        if k in dst.sps:
            dst.sps[k].extend(reps)
        else:
            self._sp_put(dst, k, reps)
            dst.event.service_points_out += 1
        self._sp_track[k] = dst
        for r in reps:
            self._report_track[r] = dst

    def _rebuild_reports(self, tr: _Track) -> None:
        tr.event.reports = [r for reps in tr.sps.values() for r in reps]

    def _hazard_event(self, k: int, report: Report, hazards: list[str]) -> _Track:
        """A hazard with the power on: its own event (one outage call plus one hazard call are two calls), outside
        the roll-up."""
        tr = self._new_track(
            -1, k, report.time, EventState.UNCONFIRMED, actor=ENGINE, reason="hazard report with power on"
        )
        self._unregister(tr)
        tr.frozen = True  # never rolls up, and explains nobody's outage
        tr.hazard_only = True
        tr.event.hazards = list(hazards)
        self._attach_report(tr, k, report.report_id, report.time, duplicate=False)
        self._refresh(tr)
        return tr

    # ================================================================ timers
    def _push(self, due: datetime, kind: str, payload) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), kind, payload))

    def _run_timers(self, now: datetime) -> None:
        if self._lone_tracks and (self._next_judge is None or now >= self._next_judge):
            self._judge_lone_calls(now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            due, _, kind, payload = heapq.heappop(timers)
            if kind == "gasp":
                k, t0 = payload
                if self._gasps.get(k) == t0:
                    del self._gasps[k]
                    self._learn_call_rate(k, t0)
                    self._add_out(k, t0, source="ami")
            elif kind == "call_rate":
                k, t0 = payload
                self._close_call_window(k, t0)
            elif kind == "on_expire":
                k, t0 = payload
                if self._sp_on.get(k) == t0:
                    self._expire_on(k, due)
            elif kind == "probable":
                tr = self._events.get(payload)
                if tr is not None and tr.event.state == EventState.UNCONFIRMED:
                    self._transition(tr, EventState.PROBABLE, due, ENGINE, "probable timer: evidence held")
            elif kind == "separate":
                tr = self._events.get(payload)
                if tr is None or not tr.event.open or tr.frozen or tr.hazard_only:
                    continue
                quiet_until = (tr.event.last_evidence or due) + self._ruleset_track(tr).separation
                if quiet_until > due:
                    self._push(quiet_until, "separate", payload)
                else:  # time separation: later evidence below it starts a new outage
                    tr.event.history.append(
                        Transition(due, tr.event.state, ENGINE, "time separation: no new evidence, settled")
                    )
                    self._freeze(tr)
