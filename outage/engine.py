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
(a last gasp, a ping, a re-placement after a demotion). With calls only, the calls are the clock: when the device's
customers stayed silent long after an event below it began and then called, separate outages explain it better
than one (:mod:`outage.separation`, ``call_separation_odds``), and that event is an earlier outage kept too.

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

The engine is assembled from four parts, each in its own module, around the state its constructor sets up:
:mod:`outage.evidence` (evidence in and out of the per-device counters, likelihood terms, call-rate learning,
pings), :mod:`outage.rollup` (which devices the evidence says operated, and which event each piece of evidence
belongs to), :mod:`outage.customer_side` (whether a lone call is an outage or customer-side) and
:mod:`outage.lifecycle` (event tracks, freezing, restoration and records, descriptions, timers).
This module holds the public API that composes them.

Every public method returns the list of :class:`~outage.events.Change` records it caused. All times come from the
evidence or the injected ``clock``; randomness lives only in the simulator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import datetime

from gis.topology import Topology
from outage import etr as etr_mod
from outage.customer_side import CustomerSideMixin
from outage.etr_policy import Ledger
from outage.events import (
    CLOSED_STATES,
    NEXT_STATES,
    PREDICTED_STATES,
    WORK_STATES,
    Change,
    EventCancelled,
    EventState,
    EventUpdated,
    OutageEvent,
)
from outage.evidence import CALL_RATE_WINDOW, EvidenceMixin
from outage.grid import Grid
from outage.lifecycle import ENGINE, LifeCycleMixin, _Track
from outage.meters import MeterInterface
from outage.priority import Priority, priority
from outage.records import Interruption
from outage.reports import AmiEvent, Report, ScadaEvent
from outage.rollup import RollUpMixin
from outage.rules import RuleSets

__all__ = ["CALL_RATE_WINDOW", "ENGINE", "OutageEngine"]


class OutageEngine(EvidenceMixin, RollUpMixin, CustomerSideMixin, LifeCycleMixin):
    """Trouble-call analysis and event life cycle over one territory.

    ``topology`` is the energized radial tree (:func:`gis.topology.build`); ``critical_kind`` and ``meters`` are
    per service point in topology order (see :meth:`from_network`). ``clock`` returns the current tz-aware UTC
    time; ``meters`` is the AMI ping interface (``None``: no pings). ``telemetered`` lists devices with SCADA that
    are known closed (never predicted). ``bellwethers`` are the meters heard in storm mode.
    """

    def __init__(
        self,
        topology: Topology,
        rules: RuleSets | None = None,
        clock: Callable[[], datetime] | None = None,
        meters: MeterInterface | None = None,
        *,
        critical_kind: Iterable[str] | None = None,
        meter_ids: Iterable[str] | None = None,
        sp_xy=None,
        telemetered: Iterable[str] = (),
        bellwethers: Iterable[str] = (),
        metered: Iterable[bool] | None = None,
    ):
        self.grid = Grid(
            topology,
            list(critical_kind) if critical_kind is not None else None,
            list(meter_ids) if meter_ids is not None else None,
            sp_xy,
            list(metered) if metered is not None else None,
        )
        self.rules = rules or RuleSets.default_sets()
        self.clock = clock or _no_clock
        self.meters = meters
        self.bellwethers = set(bellwethers)
        self._ids = itertools.count(1)
        self._events: dict[str, _Track] = {}
        self._changes: list[Change] = []
        #: per event: what the no-churn rule published, the count of new facts, the last stage proposed
        self._etr_ledger = Ledger()
        g = self.grid
        n = g.n_devices
        # pending roll-up counters per device
        self._out_sps = [0] * n
        # the same for the likelihood, which keeps frozen events' service points until they close
        self._lik_out = [0] * n
        self._lik_out_m = [0] * n  # ... of them metered
        self._lik_out_c = [0] * n  # ... their customers
        self._out_cust = [0] * n
        self._on = [0] * n
        # per transformer: callers with out-evidence who say their neighbours are out too
        self._hint = [0] * n
        self._nohint = [0] * n  # ... and who say their neighbours are NOT out
        self._sp_hint: dict[int, bool] = {}  # service point -> its caller's neighbours answer (counted above)
        self._pred_children = [0] * n
        self._counted = [False] * n  # predicted and counted as a predicted child (rollup._on_its_floor)
        self._active = [0] * n  # children (devices) with out-evidence
        self._pred = [False] * n
        # devices predicted when a lockout above them froze their evidence (rollup._lift_under_lockout)
        self._lifted: set[int] = set()
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
        # per feeder whether every service point on it has a meter (else silence is partly only callers' silence)
        self._fully_metered = [True] * len(feeder_ix)
        for f, m in zip(self._sp_feeder, g.metered, strict=True):
            if not m:
                self._fully_metered[f] = self._fully_metered[0] = False
        self._call_rate_n = 0  # AMI-backed service points whose call window has closed ...
        self._call_rate_calls = 0  # ... and how many of them called
        self._call_rate_seen: set[int] = set()
        self._sp_called: dict[int, datetime] = {}  # service point -> first out call
        # service point -> declared last gasp (when its meter went dark)
        self._sp_gasp: dict[int, datetime] = {}
        self._lik_cache: dict[tuple[int, bool], tuple] = {}
        self._closed_tele = [False] * n
        for d in telemetered:
            self._closed_tele[self._dev(d)] = True  # no evidence yet, so no child counts to adjust
        # where evidence lives
        self._event_at: dict[int, _Track] = {}  # device -> open pending event there
        self._frozen_at: dict[int, _Track] = {}  # device -> open frozen event there
        self._frozen_sp: dict[int, _Track] = {}  # service point -> open frozen single-service event
        # device -> open events strictly below it, in the order they were registered: a set of tracks would iterate
        # by memory address, and merges would then depend on it (the same calls, other events after a replay)
        self._under: dict[int, dict[_Track, None]] = {}
        self._sp_track: dict[int, _Track] = {}  # service point -> event holding its out-evidence
        self._sp_last: dict[int, datetime] = {}  # service point -> last out report time
        self._sp_on: dict[int, datetime] = {}  # service points with power-on evidence -> its time
        self._restored_at: dict[int, _Track] = {}  # device -> last restored event there
        self._restored_sp: dict[int, _Track] = {}
        self._carry: dict[int, datetime] = {}  # service point -> start of an interruption carried over
        self._report_track: dict[str, _Track] = {}
        # when outages of more than one service point began (their first evidence), in order, and since when the
        # engine hears evidence: how busy the storm is around a lone call (customer_side._customer_side)
        self._onsets: list[datetime] = []
        self._first_seen: datetime | None = None
        self._call_times: list[datetime] = []  # out-calls, in order of arrival (the horizon's)
        self._lone_tracks: dict[
            str, _Track
        ] = {}  # open events of one call, judged again as the storm goes on
        self._next_judge: datetime | None = None
        self._lone_fit: tuple[float, float] | None = None  # customer_side._fit_lone_calls
        self._gasps: dict[int, datetime] = {}  # undeclared last gasps
        # device messages by their own time: a meter's latest last gasp and power restore, a device's latest SCADA
        # operation; a message stamped before the latest one of the other kind (or operation) is stale
        self._meter_gasp_latest: dict[int, datetime] = {}  # service point -> its meter's latest last gasp
        self._meter_restore_latest: dict[int, datetime] = {}  # service point -> its meter's latest power restore
        self._scada_latest: dict[int, datetime] = {}  # device -> its latest SCADA operation
        self._timers: list[tuple[datetime, int, str, object]] = []
        self._seq = itertools.count()
        self.stats = {
            "reports": 0,
            "duplicates": 0,
            "last_gasps": 0,
            "gasps_absorbed": 0,
            "gasps_cancelled": 0,
            "gasps_ignored_storm": 0,
            "restores": 0,
            "scada": 0,
            "pings": 0,
            "momentary_reports": 0,
            "stale_device_messages": 0,
        }

    @classmethod
    def from_network(
        cls,
        network,
        rules: RuleSets | None = None,
        clock: Callable[[], datetime] | None = None,
        meters: MeterInterface | None = None,
        topology: Topology | None = None,
        **kw,
    ) -> OutageEngine:
        """Engine over a :class:`gis.network.Network`: critical kinds, meter ids and coordinates from its tables."""
        import numpy as np

        from gis.topology import build

        topo = topology or build(network)
        spt = network.service_points.set_index("sp_id").loc[list(topo.sp_ids)]
        # an unmetered service point is known by its own id (so messages naming it still find it) but never pinged
        metered = [bool(m) for m in spt["meter"].tolist()]
        meter_ids = [m if m else s for m, s in zip(spt["meter"].tolist(), topo.sp_ids.tolist(), strict=True)]
        xy = np.column_stack([spt.geometry.x.to_numpy(), spt.geometry.y.to_numpy()])
        return cls(
            topo,
            rules,
            clock,
            meters,
            critical_kind=spt["critical_kind"].tolist(),
            meter_ids=meter_ids,
            sp_xy=xy,
            metered=metered,
            **kw,
        )

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
            tr = self._add_out(
                k, report.time, report_id=report.report_id, hint=report.neighbours_out, source=report.channel
            )
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
        passed without a matching restore (see :meth:`tick`); restores inside the delay cancel it.

        Each message counts by its own time, not its arrival: a power restore stamped before the meter's latest last
        gasp (or before a call from that service point) says nothing about the outage since, and a last gasp stamped
        before the meter's latest power restore is of an outage already over; both are stale and change nothing
        (``stats["stale_device_messages"]``)."""
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
            if self._stale_meter_message(k, e.kind, e.time):
                self.stats["stale_device_messages"] += 1
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
        their own events until merged; later ones fold in). A close restores it and marks the device closed.

        By its own time: an operation stamped before the device's latest one, or a close stamped before the start of
        the open event at the device, is stale and changes nothing (``stats["stale_device_messages"]``): it never
        restores an outage that started after it."""
        self._run_timers(event.time)
        self.stats["scada"] += 1
        d = self._dev(event.device_id)
        latest = self._scada_latest.get(d)
        if latest is not None and event.time < latest:
            self.stats["stale_device_messages"] += 1
            return self._flush()
        if event.kind == "close":
            tr = self._frozen_at.get(d) or self._event_at.get(d)
            if tr is not None and tr.event.open and event.time < tr.event.start:
                self.stats["stale_device_messages"] += 1
                return self._flush()
        self._scada_latest[d] = event.time
        if event.kind in ("lockout", "commanded_open"):
            self._set_telemetered_closed(d, False)
            existing = self._frozen_at.get(d) or self._event_at.get(d)
            if existing is not None:
                existing.event.scada.append(f"{event.kind}@{event.time.isoformat()}")
                if existing.event.state in PREDICTED_STATES:
                    self._transition(
                        existing, EventState.CONFIRMED, event.time, "scada", f"SCADA {event.kind}"
                    )
                    self._freeze(existing)
                return self._flush()
            tr = self._new_track(
                d,
                -1,
                event.time,
                EventState.CONFIRMED,
                actor="scada",
                reason=f"SCADA {event.kind} of {self.grid.device_ids[d]}",
                frozen=True,
            )
            tr.event.scada.append(f"{event.kind}@{event.time.isoformat()}")
            tr.event.cause = "planned" if event.kind == "commanded_open" else tr.event.cause
            self._explain(tr)
            self._lift_under_lockout(d, event.time)
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

    def set_event_state(
        self,
        event_id: str,
        state: EventState | str,
        actor: str,
        reason: str = "",
        now: datetime | None = None,
    ) -> list[Change]:
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

    def restore(
        self,
        event_id: str,
        actor: str,
        reason: str = "restored",
        now: datetime | None = None,
        devices: Iterable[str] = (),
        service_points: Iterable[str] = (),
    ) -> list[Change]:
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

    def merge(
        self,
        target_id: str,
        other_ids: Iterable[str],
        actor: str,
        reason: str = "merged",
        now: datetime | None = None,
    ) -> list[Change]:
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

    def split(
        self, event_id: str, device_id: str, actor: str, reason: str = "split", now: datetime | None = None
    ) -> list[Change]:
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
            self._move_sp(tr, new, k)
        self._rebuild_reports(tr)
        self._rebuild_reports(new)
        self._refresh(tr)
        self._refresh(new)
        return self._flush()

    def update_etr(
        self,
        event_id: str,
        now: datetime | None = None,
        *,
        eta_minutes: float | None = None,
        crew_at: datetime | None = None,
        backlog_repair_minutes: float | None = None,
        crews: int | None = None,
        etr: etr_mod.Etr | dict | None = None,
        holds: float | None = None,
        fact: bool = False,
    ) -> list[Change]:
        """Recompute an event's ETR: crew-entered (``crew_at``), a ready-made estimate (``etr``), assigned
        (``eta_minutes`` from dispatch), or from the storm backlog (``backlog_repair_minutes`` and ``crews``).

        ``etr``: the learned model's estimate (:mod:`outage.etr_model`; an :class:`~outage.etr.Etr` or its journal
        form, :func:`outage.etr.etr_from_dict`). Every estimate is published through the one no-churn rule,
        :func:`outage.etr_policy.decide`: ``holds`` is the published range's probability under the new estimate,
        ``fact`` says a new fact arrived (the cause reported, part of the customers restored); a change of stage
        (the estimate's ``source``) is one too. A crew-entered ETR is published as entered and never replaced by an
        estimate."""
        tr = self._track(event_id)
        now = now or self.clock()
        ev = tr.event
        kind = ev.device_kind
        if etr is not None:
            proposed = etr_mod.etr_from_dict(etr) if isinstance(etr, dict) else etr
        elif crew_at is not None:
            proposed = etr_mod.crew_etr(now, crew_at)
        elif eta_minutes is not None:
            proposed = etr_mod.assigned_etr(now, eta_minutes, kind, ev.cause)
        elif backlog_repair_minutes is not None and crews:
            proposed = etr_mod.backlog_etr(now, kind, backlog_repair_minutes, crews, ev.cause)
        else:  # nothing known yet: travel + repair by device kind, low confidence
            proposed = etr_mod.backlog_etr(now, kind, 0.0, 1, ev.cause)
        new = self._etr_ledger.apply(ev.event_id, proposed, now, current=ev.etr, holds=holds, fact=fact)
        if new is not None:
            ev.etr = new
            self._changes.append(EventUpdated(ev.event_id, now, "etr"))
        return self._flush()

    def etr_news(self, event_id: str, proposed: etr_mod.Etr, now: datetime, *, holds: float | None = None,
                 fact: bool = False) -> bool:
        """Whether :meth:`update_etr` with ``proposed`` would change anything (publish it, or count a new fact or
        stage); the engine is not changed. A service asks before journaling an estimate nobody would see."""
        ev = self._track(event_id).event
        return self._etr_ledger.news(ev.event_id, proposed, now, current=ev.etr, holds=holds, fact=fact)

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


def _hazards(report: Report) -> list[str]:
    return [
        h
        for h, on in (
            ("wires_down", report.wires_down),
            ("fire_sparks", report.fire_sparks),
            ("tree_on_line", report.tree_on_line),
        )
        if on
    ]


def _no_clock() -> datetime:
    raise RuntimeError("OutageEngine: no clock was given; pass clock=... or give times explicitly")
