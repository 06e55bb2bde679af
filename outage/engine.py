"""The outage engine: incremental trouble-call analysis and the event life cycle.

Evidence (customer reports, AMI last gasps and restores, SCADA operations, ping answers) marks service points out
or on. Each new out-evidence walks the service point's device chain once (transformer -> fuse(s) -> recloser(s) ->
breaker -> substation), updating per-device counters, re-evaluating each device's rule bottom-up, and placing the
evidence in the event of the highest device whose rule passes (merging the events below it). Per-report work is
O(chain length); nothing ever scans the network.

How a device is judged is the rule set's business (:mod:`outage.rules`): count rules, or the likelihood roll-up that
keeps per device the log-likelihood that it operated against the best explanation below it, updated along the same
chain. With AMI, meters time-stamp when the power went: a meter that went dark well before the meters that lift a
device above it was out already (an earlier, separate fault) and keeps its own event (``ami_separation``); each
event remembers the newest time one of its meters went dark, so this holds however the device came to be predicted
(a last gasp, a ping, a re-placement after a demotion). With calls only, the calls are the clock: when every caller
under the device came long after an event below it began, longer than one outage's call delays would plausibly
spread (``call_separation_p``), that event is an earlier outage and is kept too.

Devices that interrupt exactly the same customers (a fuse feeding a single transformer) cannot be told apart by
any report, last gasp or ping: the engine predicts the one whose kind fails more often (the rule set's fault prior),
among those whose call floor the evidence meets. Every new prediction is verified by AMI ping when a meter
interface exists (meters that do not answer are asked again); meters below another open event are not pinged for
it, since they are off either way.

Events the engine predicted (unconfirmed, probable) take part in the roll-up. Events confirmed by a dispatcher,
crew, SCADA or AMI, events merged by hand, and events whose evidence went quiet for longer than the time separation
are *frozen*: they keep explaining their customers (later evidence under them is absorbed without roll-up work),
but no longer roll up or combine with new evidence. The count rules stop counting them; the likelihood keeps their
customers as out (not silent) until they close.

Every public method returns the list of :class:`~outage.events.Change` records it caused. All times come from the
evidence or the injected ``clock``; randomness lives only in the simulator.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from gis.topology import Topology
from outage import etr as etr_mod
from outage.events import (
    CLOSED_STATES,
    NEXT_STATES,
    PREDICTED_STATES,
    WORK_STATES,
    Change,
    EventCancelled,
    EventClass,
    EventCreated,
    EventMerged,
    EventRestored,
    EventState,
    EventUpdated,
    OutageEvent,
    ReportAttached,
    Transition,
)
from outage.grid import Grid
from outage.meters import PING_OFF, PING_ON, PING_UNKNOWN, MeterInterface
from outage.priority import Priority, priority
from outage.records import Interruption
from outage.reports import AmiEvent, Report, ScadaEvent
from outage.rules import RuleSet, RuleSets, lognormal_sf

ENGINE = "engine"
#: how long after a last gasp a call from the same service point still counts for the call-rate estimate (calls
#: come a median of minutes after the power goes, a long tail after; an hour catches nearly all)
CALL_RATE_WINDOW = timedelta(hours=1)


class _Track:
    """Internal bookkeeping of one event (the public part is ``event``)."""

    __slots__ = ("event", "dev", "sp", "sps", "cust", "first_gasp", "frozen", "restored", "records", "pinged", "hazard_only",
                 "devices", "newest_gasp")

    def __init__(self, event: OutageEvent, dev: int, sp: int):
        self.event = event
        self.dev = dev  # device index, or -1 for a single service point
        self.sp = sp  # service point index for single-service events, else -1
        self.sps: dict[int, list[str]] = {}  # service points with out-evidence -> report ids
        self.cust = 0  # customers behind ``sps``
        self.first_gasp: datetime | None = None  # earliest AMI out-evidence
        self.newest_gasp: datetime | None = None  # latest time a meter of this event went dark
        self.frozen = False
        self.restored: set[int] = set()  # service points already restored (partial restoration)
        self.records: dict[int, Interruption] = {}  # closed interruption records by service point
        self.pinged: set[int] = set()  # devices already verified by ping
        self.hazard_only = False
        self.devices: list[int] = [dev] if dev >= 0 else []  # own device + devices merged in by hand


class OutageEngine:
    """Trouble-call analysis and event life cycle over one territory.

    ``topology`` is the energized radial tree (:func:`gis.topology.build`); ``critical_kind`` and ``meters`` are
    per service point in topology order (see :meth:`from_network`). ``clock`` returns the current tz-aware UTC
    time; ``meters`` is the AMI ping interface (``None``: no pings). ``telemetered`` lists devices with SCADA that
    are known closed (never predicted). ``bellwethers`` are the meters heard in storm mode.
    """

    def __init__(self, topology: Topology, rules: RuleSets | None = None,
                 clock: Callable[[], datetime] | None = None, meters: MeterInterface | None = None, *,
                 critical_kind: Iterable[str] | None = None, meter_ids: Iterable[str] | None = None,
                 sp_xy=None, telemetered: Iterable[str] = (), bellwethers: Iterable[str] = (),
                 metered: Iterable[bool] | None = None):
        self.grid = Grid(topology, list(critical_kind) if critical_kind is not None else None,
                         list(meter_ids) if meter_ids is not None else None, sp_xy,
                         list(metered) if metered is not None else None)
        self.rules = rules or RuleSets.default_sets()
        self.clock = clock or _no_clock
        self.meters = meters
        self.bellwethers = set(bellwethers)
        self._ids = itertools.count(1)
        self._events: dict[str, _Track] = {}
        self._changes: list[Change] = []
        g = self.grid
        n = g.n_devices
        # pending roll-up counters per device
        self._out_sps = [0] * n
        self._lik_out = [0] * n  # the same for the likelihood, which keeps frozen events' service points until they close
        self._out_cust = [0] * n
        self._on = [0] * n
        self._hint = [0] * n  # per transformer: callers with out-evidence who say their neighbours are out too
        self._nohint = [0] * n  # ... and who say their neighbours are NOT out
        self._sp_hint: dict[int, bool] = {}  # service point -> its caller's neighbours answer (counted above)
        self._pred_children = [0] * n
        self._active = [0] * n  # children (devices) with out-evidence
        self._pred = [False] * n
        # likelihood roll-up (see outage.rules): per device the log-likelihood that it operated, of the best
        # explanation by the devices and service points below it, and the best of the two; the summed evidence LLR
        # of its pending service points; per service point what it added (evidence, neighbours answer, leaf value)
        self._oper = [0.0] * n
        self._below = [0.0] * n
        self._best = [0.0] * n
        self._esum = [0.0] * n
        self._sp_ev: dict[int, tuple[float, float, float]] = {}
        # per feeder (index 0: above the feeders, i.e. any feeder) whether its meters send last gasps: silence
        # under its devices is evidence
        feeder_ix = {f: i for i, f in enumerate(sorted((set(g.feeder) | set(g.sp_feeder)) - {""}), start=1)}
        feeder_ix[""] = 0
        self._dev_feeder = [feeder_ix[f] for f in g.feeder]
        self._sp_feeder = [feeder_ix[f] for f in g.sp_feeder]
        self._ami_feeder = [False] * len(feeder_ix)
        self._call_rate_n = 0  # AMI-backed service points whose call window has closed ...
        self._call_rate_calls = 0  # ... and how many of them called
        self._call_rate_seen: set[int] = set()
        self._sp_called: dict[int, datetime] = {}  # service point -> first out call
        self._sp_gasp: dict[int, datetime] = {}  # service point -> declared last gasp (when its meter went dark)
        self._lik_cache: dict[tuple[int, bool], tuple] = {}
        self._closed_tele = [False] * n
        for d in telemetered:
            self._closed_tele[self._dev(d)] = True  # no evidence yet, so no child counts to adjust
        # where evidence lives
        self._event_at: dict[int, _Track] = {}  # device -> open pending event there
        self._frozen_at: dict[int, _Track] = {}  # device -> open frozen event there
        self._frozen_sp: dict[int, _Track] = {}  # service point -> open frozen single-service event
        self._under: dict[int, set[_Track]] = {}  # device -> open events strictly below it
        self._sp_track: dict[int, _Track] = {}  # service point -> event holding its out-evidence
        self._sp_last: dict[int, datetime] = {}  # service point -> last out report time
        self._sp_on: dict[int, datetime] = {}  # service points with power-on evidence -> its time
        self._restored_at: dict[int, _Track] = {}  # device -> last restored event there
        self._restored_sp: dict[int, _Track] = {}
        self._carry: dict[int, datetime] = {}  # service point -> start of an interruption carried over
        self._report_track: dict[str, _Track] = {}
        self._gasps: dict[int, datetime] = {}  # undeclared last gasps
        self._timers: list[tuple[datetime, int, str, object]] = []
        self._seq = itertools.count()
        self.stats = {"reports": 0, "duplicates": 0, "last_gasps": 0, "gasps_absorbed": 0, "gasps_cancelled": 0,
                      "gasps_ignored_storm": 0, "restores": 0, "scada": 0, "pings": 0, "momentary_reports": 0}

    @classmethod
    def from_network(cls, network, rules: RuleSets | None = None, clock: Callable[[], datetime] | None = None,
                     meters: MeterInterface | None = None, topology: Topology | None = None, **kw) -> OutageEngine:
        """Engine over a :class:`gis.network.Network`: critical kinds, meter ids and coordinates from its tables."""
        import numpy as np

        from gis.topology import build

        topo = topology or build(network)
        spt = network.service_points.set_index("sp_id").loc[list(topo.sp_ids)]
        # an unmetered service point is known by its own id (so messages naming it still find it) but never pinged
        metered = [bool(m) for m in spt["meter"].tolist()]
        meter_ids = [m if m else s for m, s in zip(spt["meter"].tolist(), topo.sp_ids.tolist(), strict=True)]
        xy = np.column_stack([spt.geometry.x.to_numpy(), spt.geometry.y.to_numpy()])
        return cls(topo, rules, clock, meters, critical_kind=spt["critical_kind"].tolist(), meter_ids=meter_ids,
                   sp_xy=xy, metered=metered, **kw)

    # ================================================================ public API: evidence
    def ingest_report(self, report: Report) -> list[Change]:
        """Take one customer report. Out/partial reports are out-evidence; ``on`` reports are power-on evidence
        (and, with a hazard, a hazard event); ``flicker`` is recorded as momentary and predicts nothing."""
        self._run_timers(report.time)
        self.stats["reports"] += 1
        k = self._locate(report)
        hazards = _hazards(report)
        if report.power_out:
            if k not in self._sp_called:
                self._sp_called[k] = report.time
            tr = self._add_out(k, report.time, report_id=report.report_id, hint=report.neighbours_out,
                               source=report.channel)
            ev = tr.event
            for h in hazards:
                if h not in ev.hazards:
                    ev.hazards.append(h)
            if report.medical_equipment:
                ev.medical += 1
        elif report.power == "on":
            self._add_on(k, report.time)
            if hazards:
                self._hazard_event(k, report, hazards)
        else:
            self.stats["momentary_reports"] += 1
        return self._flush()

    def ingest_ami(self, events: Iterable[AmiEvent]) -> list[Change]:
        """Take AMI messages (any order, duplicates allowed). A last gasp counts once its declaration delay has
        passed without a matching restore (see :meth:`tick`); restores inside the delay cancel it."""
        g = self.grid
        for e in events:
            self._run_timers(e.time)
            k = g.meter_index.get(e.meter)
            if k is None:
                raise KeyError(f"AMI event from unknown meter {e.meter!r}")
            rs = self._ruleset_sp(k)
            if rs.ami_bellwether_only and e.meter not in self.bellwethers:
                self.stats["gasps_ignored_storm"] += 1
                continue
            if e.kind == "last_gasp":
                self.stats["last_gasps"] += 1
                tr = self._sp_track.get(k)
                if tr is None:
                    tr = self._explained_by_frozen(k)
                if tr is not None:  # already explained: absorbed without work
                    self._learn_call_rate(k, e.time)
                    tr.event.last_gasps += 1
                    tr.event.mark_changed()
                    self.stats["gasps_absorbed"] += 1
                    continue
                if k not in self._gasps or e.time < self._gasps[k]:
                    self._gasps[k] = e.time
                    self._push(e.time + rs.ami_declaration_delay, "gasp", (k, e.time))
            else:
                self.stats["restores"] += 1
                t0 = self._gasps.get(k)
                if t0 is not None and e.time - t0 <= rs.ami_declaration_delay:
                    del self._gasps[k]  # momentary: restore inside the declaration delay
                    self.stats["gasps_cancelled"] += 1
                    continue
                self._gasps.pop(k, None)
                self._add_on(k, e.time)
        return self._flush()

    def ingest_scada(self, event: ScadaEvent) -> list[Change]:
        """A lockout or commanded open creates a confirmed event at the device (reports received before stay in
        their own events until merged; later ones fold in). A close restores it and marks the device closed."""
        self._run_timers(event.time)
        self.stats["scada"] += 1
        d = self._dev(event.device_id)
        if event.kind in ("lockout", "commanded_open"):
            self._set_telemetered_closed(d, False)
            existing = self._frozen_at.get(d) or self._event_at.get(d)
            if existing is not None:
                existing.event.scada.append(f"{event.kind}@{event.time.isoformat()}")
                if existing.event.state in PREDICTED_STATES:
                    self._transition(existing, EventState.CONFIRMED, event.time, "scada", f"SCADA {event.kind}")
                    self._freeze(existing)
                return self._flush()
            tr = self._new_track(d, -1, event.time, EventState.CONFIRMED, actor="scada",
                                 reason=f"SCADA {event.kind} of {self.grid.device_ids[d]}", frozen=True)
            tr.event.scada.append(f"{event.kind}@{event.time.isoformat()}")
            tr.event.cause = "planned" if event.kind == "commanded_open" else tr.event.cause
            self._explain(tr)
        else:
            self._set_telemetered_closed(d, True)
            tr = self._frozen_at.get(d) or self._event_at.get(d)
            if tr is not None and tr.event.open:
                tr.event.scada.append(f"close@{event.time.isoformat()}")
                self._restore(tr, event.time, "scada", "SCADA close")
            else:
                self._reevaluate(self._chain_from(d))
        return self._flush()

    def tick(self, now: datetime | None = None) -> list[Change]:
        """Run due timers: AMI declarations, unconfirmed -> probable, time separation."""
        self._run_timers(now or self.clock())
        return self._flush()

    # ================================================================ public API: life cycle
    def confirm(self, event_id: str, actor: str, reason: str = "confirmed") -> list[Change]:
        return self.set_event_state(event_id, EventState.CONFIRMED, actor, reason)

    def set_event_state(self, event_id: str, state: EventState | str, actor: str, reason: str = "",
                        now: datetime | None = None) -> list[Change]:
        """Move an event along predicted -> confirmed -> dispatched -> en route -> on site. Use :meth:`restore`
        and :meth:`cancel` to close. Confirmed and later events are frozen (no more roll-up)."""
        tr = self._track(event_id)
        state = EventState(state)
        now = now or self.clock()
        if state in CLOSED_STATES:
            raise ValueError(f"event {event_id}: use restore() or cancel() to move to {state.value}")
        if state not in NEXT_STATES.get(tr.event.state, set()) and state != tr.event.state:
            raise ValueError(f"event {event_id}: cannot go from {tr.event.state.value} to {state.value}")
        self._transition(tr, state, now, actor, reason or state.value)
        if state in WORK_STATES:
            self._freeze(tr)
        return self._flush()

    def cancel(self, event_id: str, actor: str, reason: str, now: datetime | None = None) -> list[Change]:
        """Close as a false alarm or customer-side problem: no interruption is recorded."""
        tr = self._track(event_id)
        self._close_evidence(tr)
        self._transition(tr, EventState.CANCELLED, now or self.clock(), actor, reason)
        self._changes.append(EventCancelled(tr.event.event_id, now or self.clock(), reason))
        return self._flush()

    def restore(self, event_id: str, actor: str, reason: str = "restored", now: datetime | None = None,
                devices: Iterable[str] = (), service_points: Iterable[str] = ()) -> list[Change]:
        """Restore an event, or with ``devices``/``service_points`` only that part of it (partial restoration by
        switching). Restoration is verified by pinging a sample of meters when a meter interface is present:
        meters still off become nested events backdated to the original start."""
        tr = self._track(event_id)
        now = now or self.clock()
        part = [self._dev(d) for d in devices]
        sps = [self.grid.sp_index[s] if s in self.grid.sp_index else self._bad_sp(s) for s in service_points]
        if part or sps:
            self._restore_part(tr, now, actor, reason, part, sps)
        else:
            self._restore(tr, now, actor, reason)
        return self._flush()

    def merge(self, target_id: str, other_ids: Iterable[str], actor: str, reason: str = "merged",
              now: datetime | None = None) -> list[Change]:
        """Merge events into ``target_id`` (a dispatcher grouping a storm cluster). The target keeps every report
        of the merged events; merged events across feeders make a community event."""
        target = self._track(target_id)
        now = now or self.clock()
        self._freeze(target)
        for oid in other_ids:
            if oid == target_id:
                continue
            other = self._track(oid)
            if not other.event.open:
                raise ValueError(f"event {oid}: is {other.event.state.value}, cannot merge")
            self._freeze(other)
            self._absorb(target, other, now, actor, reason)
            for d in other.devices:
                if d not in target.devices:
                    target.devices.append(d)
                    target.event.extra_devices.append(self.grid.device_ids[d])
        self._refresh(target)
        return self._flush()

    def split(self, event_id: str, device_id: str, actor: str, reason: str = "split",
              now: datetime | None = None) -> list[Change]:
        """Carve the part of an event below ``device_id`` into its own (frozen) event."""
        tr = self._track(event_id)
        now = now or self.clock()
        d = self._dev(device_id)
        g = self.grid
        if not any(g.lo[own] <= g.lo[d] and g.hi[d] <= g.hi[own] for own in tr.devices) or d in tr.devices:
            raise ValueError(f"event {event_id}: device {device_id} is not below its device")
        self._freeze(tr)
        new = self._new_track(d, -1, tr.event.start, tr.event.state, actor=actor, reason=reason, frozen=True)
        for k in [k for k in tr.sps if g.lo[d] <= g.sp_pos[k] < g.hi[d]]:
            reps = self._sp_pop(tr, k)
            self._sp_put(new, k, reps)
            self._sp_track[k] = new
            for r in reps:
                self._report_track[r] = new
        self._rebuild_reports(tr)
        self._rebuild_reports(new)
        self._refresh(tr)
        self._refresh(new)
        return self._flush()

    def update_etr(self, event_id: str, now: datetime | None = None, *, eta_minutes: float | None = None,
                   crew_at: datetime | None = None, backlog_repair_minutes: float | None = None,
                   crews: int | None = None) -> list[Change]:
        """Recompute an event's ETR: crew-entered (``crew_at``), assigned (``eta_minutes`` from dispatch), or
        from the storm backlog (``backlog_repair_minutes`` and ``crews``). Small changes are not churned."""
        tr = self._track(event_id)
        now = now or self.clock()
        ev = tr.event
        kind = ev.device_kind
        if crew_at is not None:
            proposed = etr_mod.crew_etr(now, crew_at)
            new = proposed
        else:
            if eta_minutes is not None:
                proposed = etr_mod.assigned_etr(now, eta_minutes, kind, ev.cause)
            elif backlog_repair_minutes is not None and crews:
                proposed = etr_mod.backlog_etr(now, kind, backlog_repair_minutes, crews, ev.cause)
            else:  # nothing known yet: travel + repair by device kind, low confidence
                proposed = etr_mod.backlog_etr(now, kind, 0.0, 1, ev.cause)
            new = etr_mod.update(ev.etr, proposed, now)
        if new is not ev.etr:
            ev.etr = new
            self._changes.append(EventUpdated(ev.event_id, now, "etr"))
        return self._flush()

    # ================================================================ public API: queries
    @property
    def events(self) -> list[OutageEvent]:
        """Open events (not restored, cancelled or merged away)."""
        return [t.event for t in self._events.values() if t.event.open]

    def all_events(self) -> list[OutageEvent]:
        return [t.event for t in self._events.values()]

    def event(self, event_id: str) -> OutageEvent:
        return self._track(event_id).event

    def event_of_report(self, report_id: str) -> OutageEvent | None:
        tr = self._report_track.get(report_id)
        return None if tr is None else tr.event

    def priority(self, event_id: str, now: datetime | None = None) -> Priority:
        return priority(self._track(event_id).event, now or self.clock())

    def interruptions(self, now: datetime | None = None) -> list[Interruption]:
        """Exact per-service-point interruptions: closed ones from restored events (partial restorations and
        nested outages included, each customer-minute once) and open ones (``end=None``) for open events."""
        out: list[Interruption] = []
        for tr in self._events.values():
            out.extend(tr.records.values())
        still_out: dict[int, Interruption] = {}  # one open record per service point: the earliest start
        for tr in self._events.values():
            ev = tr.event
            if not ev.open or tr.hazard_only:
                continue
            for k in self._scope(tr):
                if k in tr.restored:
                    continue
                rec = self._record(tr, k, self._carry.get(k, ev.start), None)
                if k not in still_out or rec.start < still_out[k].start:
                    still_out[k] = rec
        out.extend(still_out.values())
        return out

    def switch_rules(self, district: str | None, name: str) -> None:
        """Put a district (feeder breaker id or substation id; ``None`` = default) on a named rule set."""
        self.rules.switch(district, name)

    # ================================================================ evidence internals
    def _add_out(self, k: int, t: datetime, report_id: str | None = None, hint: bool | None = None,
                 source: str = "") -> _Track:
        """Out-evidence at service point ``k``; returns the event now holding it."""
        g = self.grid
        tr = self._sp_track.get(k)
        rs = self._ruleset_sp(k)
        if tr is not None and tr.event.open:
            last = self._sp_last.get(k, t)
            if report_id is not None:
                self.stats["duplicates"] += t - last <= rs.duplicate_window
                self._attach_report(tr, k, report_id, t, duplicate=True)
            elif source == "ami":
                tr.event.last_gasps += 1
                tr.event.mark_changed()
            if t > (tr.event.last_evidence or t):
                tr.event.last_evidence = t
            return tr
        if k in self._sp_on:
            self._remove_on(k)
        nested_parent = None
        frozen = self._explained_by_frozen(k)
        if frozen is not None:
            if k not in frozen.restored:
                self._attach(frozen, k, report_id, t, source)
                return frozen
            nested_parent = frozen
        else:
            nested_parent = self._recently_restored(k, t, rs)
        chain = g.chain(k)
        c = g.sp_customers[k]
        parent, out_sps, active, tele, lik_out = g.parent, self._out_sps, self._active, self._closed_tele, self._lik_out
        if chain:
            e, h, leaf = self._evidence_llr(chain[0], source, hint)
            self._sp_ev[k] = (e, h, leaf)
            self._below[chain[0]] += leaf
            eh = e + h
        esum = self._esum
        for d in chain:
            if out_sps[d] == 0 and parent[d] >= 0 and not tele[d]:
                active[parent[d]] += 1
            out_sps[d] += 1
            lik_out[d] += 1
            self._out_cust[d] += c
            esum[d] += eh
        if hint is not None and chain and g.is_transformer[chain[0]]:
            self._sp_hint[k] = hint
            (self._hint if hint else self._nohint)[chain[0]] += 1
        self._reevaluate(chain)
        tr = self._place(k, chain, t, ami_t=t if source == "ami" else None)
        self._attach(tr, k, report_id, t, source)
        if nested_parent is not None:
            self._make_nested(tr, nested_parent, t)
        self._verify(tr, t)
        return tr

    def _attach(self, tr: _Track, k: int, report_id: str | None, t: datetime, source: str) -> None:
        ev = tr.event
        if k not in tr.sps:
            self._sp_put(tr, k, [])
            ev.service_points_out += 1
        self._sp_track[k] = tr
        if source == "ami":
            ev.last_gasps += 1
            if tr.first_gasp is None or t < tr.first_gasp:
                tr.first_gasp = t
            if tr.newest_gasp is None or t > tr.newest_gasp:
                tr.newest_gasp = t
            if k not in self._sp_gasp or t < self._sp_gasp[k]:
                self._sp_gasp[k] = t
        if report_id is not None:
            self._attach_report(tr, k, report_id, t, duplicate=False)
        if ev.last_evidence is None or t > ev.last_evidence:
            ev.last_evidence = t
        ev.mark_changed()  # counts changed; device, customers and class did not

    def _attach_report(self, tr: _Track, k: int, report_id: str, t: datetime, duplicate: bool) -> None:
        if report_id in self._report_track:
            raise ValueError(f"report {report_id!r} was already ingested")
        if k not in tr.sps:
            self._sp_put(tr, k, [])
        tr.sps[k].append(report_id)
        tr.event.reports.append(report_id)
        tr.event.mark_changed()
        self._report_track[report_id] = tr
        self._sp_last[k] = t
        self._changes.append(ReportAttached(tr.event.event_id, t, report_id, duplicate))

    def _add_on(self, k: int, t: datetime) -> None:
        """Power-on evidence at ``k``: it is not out, and no device above it can be out."""
        tr = self._sp_track.get(k)
        if tr is not None and tr.event.open:
            tr.event.power_on_evidence += 1
            if tr.frozen:
                return  # a worked event: the crew decides; the evidence is on record
            self._remove_out(tr, k)
        self._push(t + self._ruleset_sp(k).power_on_ttl, "on_expire", (k, t))
        if k in self._sp_on:
            self._sp_on[k] = t
            return
        self._sp_on[k] = t
        chain = self.grid.chain(k)
        for d in chain:
            self._on[d] += 1
        self._reevaluate(chain)

    def _remove_on(self, k: int, t: datetime | None = None) -> None:
        del self._sp_on[k]
        chain = self.grid.chain(k)
        for d in chain:
            self._on[d] -= 1
        self._reevaluate(chain, t)

    def _expire_on(self, k: int, now: datetime) -> None:
        """Power-on evidence has aged out. If it still matters (out-evidence around it) and meters can be asked,
        ask again: still on renews it, off turns it into out-evidence. Otherwise it lapses."""
        g = self.grid
        if self.meters is not None and any(self._out_sps[d] for d in g.chain(k)):
            answer = self._ping([k], now, self._ruleset_sp(k))[k]
            if answer == PING_ON:
                self._sp_on[k] = now
                self._push(now + self._ruleset_sp(k).power_on_ttl, "on_expire", (k, now))
                return
            self._remove_on(k, now)
            if answer == PING_OFF:
                self._add_out(k, now, source="ping")
            return
        self._remove_on(k, now)

    def _remove_out(self, tr: _Track, k: int) -> None:
        """Take ``k``'s out-evidence out of a pending event (it has power after all)."""
        reps = self._sp_pop(tr, k)
        self._sp_track.pop(k, None)
        tr.event.service_points_out -= 1
        chain = self.grid.chain(k)
        self._uncount(k, chain)
        if not tr.sps:
            # nothing left: the prediction was wrong (reports stay on the cancelled event's record)
            self._close_evidence(tr)
            for r in reps:
                tr.event.reports.remove(r) if r in tr.event.reports else None
            self._transition(tr, EventState.CANCELLED, tr.event.last_evidence or self.clock(), ENGINE,
                             "power-on evidence: no customer left out")
            self._changes.append(EventCancelled(tr.event.event_id, tr.event.last_evidence or self.clock(),
                                                "power-on evidence"))
            self._orphan_reports(reps, k)
            return
        self._orphan_reports(reps, k)
        self._rebuild_reports(tr)
        self._refresh(tr)

    def _orphan_reports(self, reps: list[str], k: int) -> None:
        """Reports of a service point that turned out to have power: kept on a cancelled record event."""
        if not reps:
            return
        tr = self._new_track(-1, k, self._sp_last.get(k, self.clock()), EventState.UNCONFIRMED, actor=ENGINE,
                             reason="report from a service point with power", frozen=True)
        self._sp_put(tr, k, list(reps))
        for r in reps:
            self._report_track[r] = tr
        self._rebuild_reports(tr)
        self._transition(tr, EventState.CANCELLED, tr.event.start, ENGINE, "service point has power")

    def _uncount(self, k: int, chain: list[int], rules: bool = True, likelihood: bool = True) -> None:
        """Take ``k``'s out-evidence off the counters along ``chain``: the count rules' (``rules``) and the
        likelihood's (``likelihood``). A settled (frozen) event leaves the count rules when it freezes but stays
        in the likelihood until it closes: its customers are still out, neither silent nor new evidence, and
        taking them away would read them as silence under the devices above it."""
        c = self.grid.sp_customers[k]
        parent, out_sps, active, tele = self.grid.parent, self._out_sps, self._active, self._closed_tele
        if likelihood:
            e, h, leaf = self._sp_ev.pop(k, (0.0, 0.0, 0.0))
            if chain:
                self._below[chain[0]] -= leaf
            esum, eh, lik_out = self._esum, e + h, self._lik_out
            for d in chain:
                lik_out[d] -= 1
                esum[d] -= eh
        if rules:
            if chain:
                hint = self._sp_hint.pop(k, None)
                if hint is not None:
                    (self._hint if hint else self._nohint)[chain[0]] -= 1
            for d in chain:
                out_sps[d] -= 1
                self._out_cust[d] -= c
                if out_sps[d] == 0 and parent[d] >= 0 and not tele[d]:
                    active[parent[d]] -= 1
        self._reevaluate(chain)

    def _set_telemetered_closed(self, d: int, closed: bool) -> None:
        """A telemetered-closed device is never predicted and does not count as a child with evidence."""
        if self._closed_tele[d] == closed:
            return
        self._closed_tele[d] = closed
        p = self.grid.parent[d]
        if p >= 0 and self._out_sps[d] > 0:
            self._active[p] += -1 if closed else 1

    # ================================================================ roll-up
    def _passes(self, d: int) -> bool:
        """Whether ``d`` is predicted: its rule passes — or, for devices with exactly the same customers (a fuse
        feeding one transformer), the rule of any of them passes and ``d`` is the one the prior favours."""
        members = self.grid.equiv[d]
        if members is None:
            return self._own_passes(d)
        if self._equiv_choice(members) != d:
            return False
        return any(self._own_passes(m) for m in members)

    def _equiv_choice(self, members: tuple[int, ...]) -> int:
        """Of devices that interrupt the same customers (top first), the one the fault prior favours: evidence
        cannot tell them apart, so the kind that fails more often is the better bet (ties: the higher device).
        Only devices that telemetry does not show closed are in the running, and only those whose call floor
        (``min_calls``) the evidence meets — except that a lateral device (fuse, sectionalizer: rules counting
        children with evidence) drops its floor once the class's lowest member (the transformer) passes its own
        rule: then the customers are out whichever member operated, and a fuse feeding only that transformer is
        the better bet even on one call with "my neighbours are out too". Backbone devices (recloser, breaker,
        substation) always keep theirs, and one call never lifts a fuse over customers the transformer does not
        share."""
        g, best, best_p = self.grid, -1, -1.0
        out = self._out_sps[members[0]]  # the same service points below every member
        for m in members:
            if self._closed_tele[m]:
                continue
            rs = self._ruleset_dev(m)
            rule = rs.devices.get(g.kind[m])
            if rule is None or (out < rule.min_calls
                                and (rule.children != "evidence" or not self._own_passes(members[-1]))):
                continue
            p = rs.likelihood.fault_prior.get(g.kind[m], 0.0)
            if p > best_p:
                best, best_p = m, p
        return best

    def _twin_above(self, d: int) -> int:
        """The predicted device above ``d`` with the same customers that the prior chose over it, else -1."""
        members = self.grid.equiv[d]
        if members is None:
            return -1
        c = self._equiv_choice(members)
        return c if c >= 0 and self._pred[c] and members.index(c) < members.index(d) else -1

    def _own_passes(self, d: int) -> bool:
        """Whether ``d``'s own rule (count rules or likelihood) passes on the evidence beneath it."""
        out = self._out_sps[d]
        if out == 0 or self._on[d] or self._closed_tele[d]:
            return False
        g = self.grid
        rs = self._ruleset_dev(d)
        if rs.rollup == "likelihood":  # the rule's call floor still applies: one call never lifts a fuse
            rule = rs.devices.get(g.kind[d])
            return rule is not None and out >= rule.min_calls and self._oper[d] > self._below[d]
        rule = rs.devices.get(g.kind[d])
        if rule is None:
            return False
        if g.is_transformer[d]:
            children, n_children = out + self._hint[d], g.hi[d] - g.lo[d]
            if out == 1 and self._nohint[d] == 1 and n_children > 1:
                # a lone caller who says the neighbours are not out: a service-level problem (a service drop or
                # customer-side), not the transformer, however few customers the transformer has
                return False
        elif rule.children == "evidence":
            children, n_children = self._active[d], g.n_children[d]
        else:
            children, n_children = self._pred_children[d], g.n_children[d]
        total = g.device_customers[d]
        ok = rule.passes(out, children, self._out_cust[d] / total if total else 0.0, n_children)
        if rs.likelihood_check and not self._ami_at(d) and not g.is_transformer[d]:
            # calls only: a second opinion from the likelihood comparison (outage.rules), which weighs what the
            # count rules cannot see — the silence of the customers below the device who did not call. When it
            # clearly disagrees, it wins: a stray call on a second lateral no longer lifts a transformer outage to
            # a big fuse, and a small fuse whose calls all came from one of its transformers is still predicted.
            # A backbone device (its rule counts predicted children) is lifted this way only once at least one
            # child outage below it is predicted: calls scattered over laterals, or below devices telemetry shows
            # closed, never lift it on their own
            margin = rs.likelihood_margin
            diff = self._oper[d] - self._below[d]
            if ok and diff < -margin:
                return False
            if not ok and diff > margin and out >= rule.min_calls and (
                    rule.children == "evidence" or self._pred_children[d] > 0):
                return True
        return ok

    @staticmethod
    def _likelihood_kept(rs: RuleSet, ami: bool) -> bool:
        """Whether the likelihood numbers are kept for a device under ``rs`` whose feeder is AMI (``ami``) or not:
        it rolls up by likelihood, or its count rules take the likelihood as a second opinion while the evidence
        there is calls alone."""
        return rs.rollup == "likelihood" or (rs.likelihood_check and not ami)

    def _ami_at(self, d: int) -> bool:
        """Whether meters below device ``d`` send last gasps: its feeder's have (above the feeders: any have).
        Utilities roll AMI out area by area, and a feeder's head-end link can be down in a storm, so one feeder's
        last gasps say nothing about the silence of customers on another."""
        return self._ami_feeder[self._dev_feeder[d]]

    def _reevaluate(self, chain: list[int], t: datetime | None = None) -> None:
        """Re-evaluate rules bottom-up along a chain; demoted devices dissolve their events. With ``t``, a device
        promoted without new evidence of its own (power-on evidence expired) gathers the events below it."""
        parent, equiv = self.grid.parent, self.grid.equiv
        self._update_likelihood(chain)
        demoted = []
        promoted = False
        for d in chain:
            new = self._passes(d)
            if new != self._pred[d]:
                self._pred[d] = new
                members = equiv[d]  # one device of a class is predicted: it counts as the class's child
                p = parent[members[0] if members is not None else d]
                if p >= 0:
                    self._pred_children[p] += 1 if new else -1
                if new:
                    promoted = True
                else:
                    demoted.append(d)
        for d in demoted:
            tr = self._event_at.get(d)
            if tr is not None and not tr.frozen:
                up = self._twin_above(d)
                if up >= 0:  # the prediction moved up to a device with the same customers: roll the event up
                    self._gather(up, tr.event.last_evidence or self.clock())
                else:
                    self._dissolve(tr)
        if promoted and t is not None:
            top = -1
            for d in chain:
                if self._pred[d]:
                    top = d
            if top >= 0 and top not in self._event_at and any(
                    not c.frozen and c.event.open for c in self._under.get(top, ())):
                self._verify(self._gather(top, t), t)  # a new prediction is verified however it came about

    # -- likelihood roll-up (outage.rules module docstring) ----------------------------------------------------------
    def _lik_terms(self, rs, ami: bool) -> tuple:
        """Log terms of a rule set's likelihood model at the current call-rate estimate, for devices whose meters
        send last gasps (``ami``) or not (cached). The call rate learned where meters tell who is out holds for
        the customers elsewhere too."""
        lk = rs.likelihood
        w = lk.call_rate_weight
        p_call = (self._call_rate_calls + lk.call_rate * w) / (self._call_rate_n + w)
        p_call = min(0.95, max(0.01, p_call))
        key = (p_call, ami)
        hit = self._lik_cache.get((id(rs), ami))
        if hit is not None and hit[0] == key and hit[1] is rs:
            return hit[2]
        p_gasp = 1.0 - lk.ami_loss if ami else 0.0
        silent = math.log((1.0 - p_call) * (1.0 - p_gasp))
        terms = (
            {k: math.log(v) for k, v in lk.fault_prior.items()},
            silent,
            math.log(p_call / lk.false_call_rate),  # a call: out vs. a customer who is not out
            math.log((1.0 - lk.ami_loss) / lk.false_meter_rate),  # a declared last gasp or a ping saying off
            math.log(lk.neighbours_odds),
        )
        self._lik_cache[(id(rs), ami)] = (key, rs, terms)
        return terms

    def _evidence_llr(self, first: int, source: str, hint: bool | None) -> tuple[float, float, float]:
        """(evidence LLR out vs. on, neighbours-answer LLR for device hypotheses, leaf value) of a new service
        point with out-evidence whose first device is ``first``."""
        rs, ami = self._ruleset_dev(first), self._ami_at(first)
        if not self._likelihood_kept(rs, ami):
            return 0.0, 0.0, 0.0
        logp, _, e_call, e_meter, h_odds = self._lik_terms(rs, ami)
        e = e_meter if source in ("ami", "ping") else e_call
        h = 0.0 if hint is None else (h_odds if hint else -h_odds)
        leaf = max(0.0, logp.get("service", -9.0) + e - (h_odds if hint else 0.0))
        return e, h, leaf

    def _update_likelihood(self, chain: list[int]) -> None:
        """Recompute operated/best bottom-up along ``chain`` and pass each change to the parent's ``below``."""
        g = self.grid
        oper, below, best, esum, out, parent = (self._oper, self._below, self._best, self._esum, self._lik_out,
                                                 g.parent)
        on, tele, kind, lo, hi = self._on, self._closed_tele, g.kind, g.lo, g.hi
        terms_of, kept = self._lik_terms, self._likelihood_kept
        ami_feeder, dev_feeder = self._ami_feeder, self._dev_feeder
        rs_prev = ami_prev = terms = None
        for d in chain:
            rs = self._ruleset_dev(d)
            ami = ami_feeder[dev_feeder[d]]
            if not kept(rs, ami):
                continue
            if rs is not rs_prev or ami is not ami_prev:
                terms, rs_prev, ami_prev = terms_of(rs, ami), rs, ami
            logp, silent = terms[0], terms[1]
            m = out[d]
            if on[d] or tele[d] or m == 0:
                o = -math.inf
            else:
                o = logp.get(kind[d], -9.0) + esum[d] + (hi[d] - lo[d] - m) * silent
            oper[d] = o
            b = below[d]
            new = o if o > b else b
            delta = new - best[d]
            if delta:
                best[d] = new
                p = parent[d]
                if p >= 0:
                    below[p] += delta

    def _learn_call_rate(self, k: int, t: datetime) -> None:
        """An AMI-backed outage at ``k``: after an hour, whether its customer called updates the call-rate
        estimate (calls and last gasps are independent, so this share is unbiased)."""
        self._ami_feeder[self._sp_feeder[k]] = self._ami_feeder[0] = True
        if k in self._call_rate_seen:
            return
        self._call_rate_seen.add(k)
        self._push(t + CALL_RATE_WINDOW, "call_rate", (k, t))

    def _place(self, k: int, chain: list[int], t: datetime, ami_t: datetime | None = None) -> _Track:
        """The pending event for ``k``: at the highest predicted device of its chain, merging events below it."""
        top = -1
        for d in chain:
            if self._pred[d]:
                top = d
        if top < 0:
            return self._new_track(-1, k, t, EventState.UNCONFIRMED, actor=ENGINE, reason="single-service call")
        return self._gather(top, t, ami_t=ami_t, own=(k, chain))

    def _gather(self, top: int, t: datetime, ami_t: datetime | None = None,
                own: tuple[int, list[int]] | None = None) -> _Track:
        """The pending event at ``top`` (created if needed), with every pending event below it merged in — except
        events whose meters went out (or whose customers called) well before the top's meters did (AMI time
        separation: meters time-stamp when the power went, so an earlier, separate outage stays its own event).

        ``own`` is the service point (and its chain) whose new evidence caused the gathering; the returned event
        is where that evidence belongs. Evidence without an outage time (a call, a ping: ``ami_t`` is None) under
        such an earlier outage belongs to it, not to the top: it says nothing about when the power went."""
        tr = self._event_at.get(top)
        # the top's outage time is the newest last gasp among what it gathers: meters below a device that operated
        # go dark together, so a meter that went dark well before them was out already (an earlier, separate fault)
        children = [c for c in self._under.get(top, ()) if not c.frozen and c is not tr and c.event.open]
        ref = ami_t
        if tr is not None and tr.newest_gasp is not None and (ref is None or tr.newest_gasp > ref):
            ref = tr.newest_gasp
        for child in children:
            if child.newest_gasp is not None and (ref is None or child.newest_gasp > ref):
                ref = child.newest_gasp
        keep_before = None if ref is None else ref - self._ruleset_dev(top).ami_separation
        if ref is None and children:
            keep_before = self._call_onset(top, tr, children, own, t)
        absorb, home = [], None
        for child in children:
            # when the child went dark: its newest last gasp, else (calls only, the gasps lost) at the latest when
            # its first call came — either way, well before the top's meters means a separate, earlier outage
            dark = child.newest_gasp if child.newest_gasp is not None else child.event.start
            if keep_before is not None and dark < keep_before:
                if not _holds(child, own):
                    continue
                if ami_t is None:
                    home = child
                    continue
            absorb.append(child)
        if tr is None:
            if home is not None and not absorb:
                return home
            tr = self._new_track(top, -1, t, EventState.UNCONFIRMED, actor=ENGINE,
                                 reason=f"roll-up to {self.grid.kind[top]} {self.grid.device_ids[top]}")
        for child in absorb:
            self._absorb(tr, child, t, ENGINE, f"rolled up to {self.grid.device_ids[top]}")
        if tr.sps:
            self._refresh(tr)
        return home or tr

    def _call_onset(self, top: int, tr: _Track | None, children: list[_Track], own: tuple[int, list[int]] | None,
                    t: datetime) -> datetime | None:
        """Calls only: when the outage at ``top`` began, if the events below it split in time into earlier ones
        and a later group that one outage would hardly explain (``RuleSet.call_separation_p``); else None.

        Each event below starts at its first call. Were it all one outage, every caller of the later group waited
        at least the gap since the last earlier event began: for ``m`` of them that has a chance of at most
        ``S(gap) ** m``, ``S`` the lognormal survival of the call delay. The earlier events must all be events
        below (the top's own evidence and the call being placed are part of its outage)."""
        rs = self._ruleset_dev(top)
        units = [(c.event.start, len(c.sps), True) for c in children]  # (first call, callers, an event below?)
        if tr is not None and tr.sps:
            units.append((tr.event.start, len(tr.sps), False))
        if own is not None and not any(_holds(c, own) for c in children):
            units.append((t, 1, False))
        units.sort(key=lambda u: u[0])
        later = sum(n for _, n, _ in units)
        median = rs.call_delay_median.total_seconds()
        best, onset = math.log(rs.call_separation_p), None
        for i in range(1, len(units)):
            if not units[i - 1][2]:
                break  # the top's own evidence is in the earlier part
            later -= units[i - 1][1]
            gap = (units[i][0] - units[i - 1][0]).total_seconds()
            if gap <= median:
                continue
            log_s = math.log(max(1e-300, lognormal_sf(gap, median, rs.call_delay_sigma)))
            if later * log_s < best:
                best, onset = later * log_s, units[i][0]
        return onset

    def _dissolve(self, tr: _Track) -> None:
        """A device whose rule no longer passes: cancel its event and re-place its evidence."""
        sps = tr.sps
        tr.sps = {}
        tr.cust = 0
        self._unregister(tr)
        now = tr.event.last_evidence or self.clock()
        self._transition(tr, EventState.CANCELLED, now, ENGINE, "superseded: evidence no longer supports "
                         f"{self.grid.device_ids[tr.dev]}")
        self._changes.append(EventCancelled(tr.event.event_id, now, "superseded"))
        placed: list[_Track] = []
        for k, reps in sps.items():
            self._sp_track.pop(k, None)
            gasp = self._sp_gasp.get(k)
            new = self._place(k, self.grid.chain(k), self._sp_last.get(k, now), ami_t=gasp)
            if gasp is not None and (new.first_gasp is None or gasp < new.first_gasp):
                new.first_gasp = gasp
            if gasp is not None and (new.newest_gasp is None or gasp > new.newest_gasp):
                new.newest_gasp = gasp
            self._sp_put(new, k, [])
            new.event.service_points_out += 1
            self._sp_track[k] = new
            for r in reps:
                new.sps[k].append(r)
                self._report_track[r] = new
            self._rebuild_reports(new)
            self._refresh(new)
            placed.append(new)
        tr.event.reports.clear()
        for new in dict.fromkeys(placed):
            self._verify(new, now)

    def _absorb(self, into: _Track, child: _Track, t: datetime, actor: str, reason: str) -> None:
        """Move ``child``'s evidence into ``into`` and close ``child`` as merged."""
        for k, reps in child.sps.items():
            if k in into.sps:
                into.sps[k].extend(reps)
            else:
                self._sp_put(into, k, list(reps))
                into.event.service_points_out += 1
            self._sp_track[k] = into
            for r in reps:
                self._report_track[r] = into
        ev, cev = into.event, child.event
        ev.reports.extend(cev.reports)
        ev.last_gasps += cev.last_gasps
        ev.power_on_evidence += cev.power_on_evidence
        ev.medical += cev.medical
        for h in cev.hazards:
            if h not in ev.hazards:
                ev.hazards.append(h)
        if child.first_gasp is not None and (into.first_gasp is None or child.first_gasp < into.first_gasp):
            into.first_gasp = child.first_gasp
        if child.newest_gasp is not None and (into.newest_gasp is None or child.newest_gasp > into.newest_gasp):
            into.newest_gasp = child.newest_gasp
        ev.merged_from.append(cev.event_id)
        ev.merged_from.extend(cev.merged_from)
        if cev.start < ev.start:
            ev.start = cev.start
        if cev.nested_from and not ev.nested_from:
            ev.nested_from = cev.nested_from
        child.sps = {}
        child.cust = 0
        self._unregister(child)
        cev.merged_into = ev.event_id
        self._transition(child, EventState.CANCELLED, t, actor, f"merged into {ev.event_id}: {reason}")
        self._changes.append(EventMerged(cev.event_id, t, ev.event_id))

    # ================================================================ verification (AMI ping)
    def _verify(self, tr: _Track, t: datetime) -> None:
        """Ping a sample of meters (per transformer) under a new prediction; answers become evidence."""
        if self.meters is None or tr.frozen or not tr.event.open:
            return
        g = self.grid
        dev = tr.dev if tr.dev >= 0 else g.sp_first[tr.sp]
        if dev < 0 or dev in tr.pinged:
            return
        tr.pinged.add(dev)
        rs = self._ruleset_dev(dev)
        per_xfmr: dict[int, int] = {}
        sample: list[int] = []
        if tr.dev < 0 or g.is_transformer[tr.dev]:
            # are the callers' own meters on? then it is a customer-side problem, not an outage
            sample.extend(k for k, reps in tr.sps.items() if reps and g.metered[k])
        explained: dict[int, bool] = {}
        for k in g.sp_order[g.lo[dev]:g.hi[dev]].tolist():
            if k in self._sp_track or k in self._sp_on or k in self._gasps or not g.metered[k]:
                continue
            x = g.sp_first[k]
            if per_xfmr.get(x, 0) >= rs.ping_per_transformer:
                continue
            if x not in explained:
                explained[x] = self._explained_between(x, dev, tr)
            if explained[x]:
                continue
            per_xfmr[x] = per_xfmr.get(x, 0) + 1
            sample.append(k)
            if len(sample) >= rs.ping_cap:
                break
        if not sample:
            return
        answers = self._ping(sample, t, rs)
        for k in sample:
            a = answers[k]
            holder = self._sp_track.get(k) or tr
            holder.event.pings[a] = holder.event.pings.get(a, 0) + 1
            holder.event.mark_changed()
            if a == PING_OFF:
                if k not in self._sp_track:
                    self._add_out(k, t, source="ping")
            elif a == PING_ON:
                self._add_on(k, t)

    def _explained_between(self, x: int, top: int, tr: _Track) -> bool:
        """Whether an open event other than ``tr`` sits on a device from ``x`` up to (not including) ``top``: its
        meters are off whether or not ``top`` operated, so pinging them cannot verify ``top``."""
        g, d = self.grid, x
        while d >= 0 and d != top:
            other = self._event_at.get(d) or self._frozen_at.get(d)
            if other is not None and other is not tr and other.event.open:
                return True
            d = g.parent[d]
        return False

    def _ping(self, sps: list[int], t: datetime, rs) -> dict[int, str]:
        """Ping the meters of service points ``sps``; answers per service point. Meters that do not answer are
        asked again up to ``rs.ping_retries`` times (head-ends retry: a lost answer on an RF mesh or PLC is
        usually congestion, not a dead meter); what is still unanswered stays ``unknown``."""
        g = self.grid
        out: dict[int, str] = {}
        todo = sps
        for _ in range(1 + rs.ping_retries):
            answers = self.meters.ping([g.meters[k] for k in todo], t)
            self.stats["pings"] += len(todo)
            for k in todo:
                out[k] = answers.get(g.meters[k], PING_UNKNOWN)
            todo = [k for k in todo if out[k] == PING_UNKNOWN]
            if not todo:
                break
        return out

    # ================================================================ tracks
    def _new_track(self, dev: int, sp: int, t: datetime, state: EventState, actor: str, reason: str,
                   frozen: bool = False) -> _Track:
        g = self.grid
        eid = f"E{next(self._ids)}"
        kind = g.kind[dev] if dev >= 0 else "service"
        ev = OutageEvent(event_id=eid, device_id=g.device_ids[dev] if dev >= 0 else None, device_kind=kind,
                         sp_id=g.sp_ids[sp] if sp >= 0 else None, start=t, state=state,
                         event_class=EventClass.SINGLE_CUSTOMER if dev < 0 else EventClass.FEEDER,
                         last_evidence=t)
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
            self._under.setdefault(d, set()).add(tr)
            d = g.parent[d]

    def _unregister(self, tr: _Track) -> None:
        g = self.grid
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
                s.discard(tr)
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
        if tr is not None:
            return tr
        g, d, found = self.grid, self.grid.sp_first[k], None
        frozen_at = self._frozen_at
        while d >= 0:
            if d in frozen_at:
                found = frozen_at[d]
                break
            d = g.parent[d]
        return found

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
            ev.history.append(Transition(t, ev.state, ENGINE, f"nested outage: still out after "
                                         f"{parent.event.event_id} was restored"))
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
            return g.sp_order[g.lo[d]:g.hi[d]].tolist()
        seen: set[int] = set()
        for d in tr.devices:
            seen.update(g.sp_order[g.lo[d]:g.hi[d]].tolist())
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
        self._changes.append(EventRestored(ev.event_id, now, False, sum(self.grid.sp_customers[k] for k in scope)))
        ev.customers = 0
        self._verify_restoration(tr, scope, now)

    def _restore_part(self, tr: _Track, now: datetime, actor: str, reason: str, devices: list[int],
                      sps: list[int]) -> None:
        g = self.grid
        own = set(self._scope(tr))
        part: list[int] = []
        for d in devices:
            ks = g.sp_order[g.lo[d]:g.hi[d]].tolist()
            if not own.issuperset(ks) or not ks:
                raise ValueError(f"event {tr.event.event_id}: device {g.device_ids[d]} is not inside the event")
            part.extend(ks)
        for k in sps:
            if k not in own:
                raise ValueError(f"event {tr.event.event_id}: service point {g.sp_ids[k]} is not inside it")
            part.append(k)
        part = [k for k in dict.fromkeys(part) if k not in tr.restored]
        self._close_records(tr, part, now)
        tr.restored.update(part)
        for k in part:
            self._let_go(tr, k)
        tr.event.history.append(Transition(now, tr.event.state, actor, f"partial restoration: {reason}"))
        self._changes.append(EventRestored(tr.event.event_id, now, True, sum(g.sp_customers[k] for k in part)))
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
        return Interruption(customer_id=g.sp_ids[k], start=start, end=end, event_id=ev.event_id,
                            customers=g.sp_customers[k], feeder_id=g.sp_feeder[k],
                            substation_id=g.sp_substation[k], cause=ev.cause, device_id=ev.key,
                            device_kind=ev.device_kind)

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
            customers = (g.device_customers[tr.devices[0]] if len(tr.devices) == 1
                         else sum(g.device_customers[d] for d in tr.devices))
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
            multi = len(feeders) > 1 or any(g.kind[d] == "substation" for d in tr.devices) or len(subs) > 1
            ev.event_class = EventClass.COMMUNITY if multi else EventClass.FEEDER
        elif tr.hazard_only:
            ev.event_class = EventClass.HAZARD
        else:
            k = tr.sp
            ev.customers = g.sp_customers[k] if k >= 0 and k not in tr.restored else 0
            kind = g.critical_kind[k] if k >= 0 else "none"
            ev.critical_kinds = {kind: ev.customers} if kind != "none" and ev.customers else {}
            ev.feeders = (g.sp_feeder[k],) if k >= 0 and g.sp_feeder[k] else ()
            ev.substation_id = g.sp_substation[k] if k >= 0 else ""
            ev.event_class = EventClass.SINGLE_CUSTOMER
        ev.critical_customers = sum(ev.critical_kinds.values()) if ev.critical_kinds else 0
        self._explain(tr)

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
                bits.append(f"{n_sp} of {g.hi[d] - g.lo[d]} service points ({cust} of {g.device_customers[d]} "
                            f"customers) under {label} out")
            else:
                kids = g.n_children[d]
                act = self._active[d] if not tr.frozen else None
                under = f"{act} of {kids} devices with evidence" if act is not None else f"{kids} devices"
                bits.append(f"{n_sp} service points out ({cust} of {g.device_customers[d]} customers) under "
                            f"{label} ({under} below it)")
            twins = g.equiv[d]
            if twins is not None:
                others = ", ".join(f"{g.kind[m]} {g.device_ids[m]}" for m in twins if m != d)
                bits.append(f"same customers as {others}: no report tells them apart; chosen by how often "
                            "each kind fails")
            if len(tr.devices) > 1:
                bits.append("merged with " + ", ".join(g.device_ids[x] for x in tr.devices[1:]))
        elif tr.hazard_only:
            bits.append("hazard reported: " + ", ".join(ev.hazards))
        else:
            bits.append(f"one service point out ({g.sp_ids[tr.sp]}); not enough evidence that its transformer "
                        "is out")
        if ev.last_gasps:
            bits.append(f"{ev.last_gasps} last gasps")
        if ev.pings:
            bits.append("pings: " + ", ".join(f"{n} {a}" for a, n in sorted(ev.pings.items())))
        bits.append(f"{ev.power_on_evidence} restore/power-on messages" if ev.power_on_evidence
                    else "no restore messages")
        explanation = "; ".join(bits)
        # confidence: how far the evidence is past the rule, plus pings
        if ev.scada:
            conf = 1.0
        elif tr.devices:
            d = tr.devices[0]
            rule = self._ruleset_dev(d).devices.get(g.kind[d])
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

    def _rebuild_reports(self, tr: _Track) -> None:
        tr.event.reports = [r for reps in tr.sps.values() for r in reps]

    def _hazard_event(self, k: int, report: Report, hazards: list[str]) -> _Track:
        """A hazard with the power on: its own event (one outage call plus one hazard call are two calls), outside
        the roll-up."""
        tr = self._new_track(-1, k, report.time, EventState.UNCONFIRMED, actor=ENGINE,
                             reason="hazard report with power on")
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
                self._call_rate_n += 1
                called = self._sp_called.get(k)
                self._call_rate_calls += called is not None and called <= t0 + CALL_RATE_WINDOW
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
                    tr.event.history.append(Transition(due, tr.event.state, ENGINE,
                                                       "time separation: no new evidence, settled"))
                    self._freeze(tr)

    # ================================================================ helpers
    def _flush(self) -> list[Change]:
        out, self._changes = self._changes, []
        return out

    def _track(self, event_id: str) -> _Track:
        try:
            return self._events[event_id]
        except KeyError:
            raise KeyError(f"event {event_id!r} not found") from None

    def _dev(self, device_id: str) -> int:
        try:
            return self.grid.device_index[device_id]
        except KeyError:
            raise KeyError(f"device {device_id!r} not found") from None

    def _bad_sp(self, sp_id: str) -> int:
        raise KeyError(f"service point {sp_id!r} not found")

    def _locate(self, report: Report) -> int:
        g = self.grid
        if report.sp_id:
            k = g.sp_index.get(report.sp_id)
            if k is None:
                raise KeyError(f"report {report.report_id!r}: service point {report.sp_id!r} not found")
            return k
        return g.nearest_sp(report.lon, report.lat)

    def _chain_from(self, d: int) -> list[int]:
        out = []
        while d >= 0:
            out.append(d)
            d = self.grid.parent[d]
        return out

    def _ruleset_dev(self, d: int):
        g = self.grid
        return self.rules.for_district(g.feeder[d], g.substation[d])

    def _ruleset_sp(self, k: int):
        g = self.grid
        return self.rules.for_district(g.sp_feeder[k], g.sp_substation[k])

    def _ruleset_track(self, tr: _Track):
        return self._ruleset_dev(tr.dev) if tr.dev >= 0 else self._ruleset_sp(tr.sp)


def _holds(child: _Track, own: tuple[int, list[int]] | None) -> bool:
    """Is ``own`` (a service point and its chain, the evidence being placed) under event ``child``?"""
    return own is not None and (child.sp == own[0] or child.dev in own[1])


def _hazards(report: Report) -> list[str]:
    return [h for h, on in (("wires_down", report.wires_down), ("fire_sparks", report.fire_sparks),
                            ("tree_on_line", report.tree_on_line)) if on]


def _no_clock() -> datetime:
    raise RuntimeError("OutageEngine: no clock was given; pass clock=... or give times explicitly")

