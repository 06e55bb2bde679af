"""Storm simulator and accuracy scoring for trouble-call analysis.

:func:`generate_storm` injects faults on a territory (device failures by kind, several at once, some nested under
others, wires-down hazards) and produces what a real population and meter network would send: calls at a call-in
rate with human delays, missing or wrong answers, mislocated calls, calls from customers who are not out; AMI last
gasps with loss, duplicates and momentary blinks; plus the ground truth and a simulated head-end for pings. What a
storm is (:class:`StormConfig`, :class:`Storm`, the fault mix) is defined in :mod:`outage.storm`, which the ceiling
(:mod:`outage.ceiling`) reads too.

:func:`run_storm` feeds it through an :class:`~outage.engine.OutageEngine` in time order and :func:`score` computes
the figures the issue defines — scored on the engine's own predictions before any crew or dispatcher confirms:

* an event is correct when its device is exactly a faulted device (``sp:<id>`` for a single service), also one
  whose fault sent nothing itself (found by a meter ping, or by a call placed on the wrong service point);
* precision = correct events / predicted events (open predicted events at the end of the evidence stream);
* recall = faults predicted correctly / faults that produced at least one report or AMI message;
* an event on a device that cuts off exactly the customers of a faulted device counts as that fault's (nothing
  can tell the two apart: a fuse feeding one transformer, the importer's twin transformers);
* classified = share of every predicted event whose class (single-customer / feeder / community) is the class of
  the fault it matches (an event matching no fault is never right), from the confusion matrix (``confusion``:
  truth class, or ``false``, against predicted class);
* time to correct = from a fault's first message to the first moment an event sat on its device.

A fault nested below another fault produces no message while its parent is out, so it is outside the recall
denominator of this (pre-restoration) score.

:func:`naive_baseline` scores the textbook alternative on the same storm: every cluster of nearby calls is one
event, placed on the lowest device common to the cluster.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import numpy as np

from outage.ceiling import call_only_ceiling
from outage.engine import OutageEngine
from outage.events import EventClass, EventCreated, EventUpdated
from outage.grid import Grid
from outage.meters import SimulatedHeadEnd
from outage.reports import AmiEvent, Report, ScadaEvent
from outage.rules import RuleSets
from outage.storm import (
    CLEARED_ABOVE,
    CUSTOMER_SIDE_SAYS_NO,
    STORM_START,
    Fault,
    Storm,
    StormConfig,
    ami_meters,
    devices_by_kind,
    kind_weights,
    same_customers,
    truth_class,
)

CALL_CHANNELS = ("phone", "ivr", "web", "app", "sms")  # where simulated callers report from


def generate_storm(grid: Grid, config: StormConfig, seed: int) -> Storm:
    """A seeded storm on ``grid`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    g = grid
    by_kind = devices_by_kind(g)
    mix = kind_weights(g, config.fault_mix, by_kind)
    kinds, weights = list(mix), np.array(list(mix.values()), dtype=float)
    weights /= weights.sum()
    n_sp = len(g.sp_ids)
    t0 = STORM_START
    faults: list[Fault] = []
    fault_sps: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def add_fault(kind: str, start: datetime, nested_in: str | None, within: int | None) -> None:
        if kind == "service":
            pool = np.arange(n_sp) if within is None else g.sps_of(within)
            k = int(rng.choice(pool))
            key, sps = f"sp:{g.sp_ids[k]}", np.array([k])
        else:
            cands = by_kind[kind]
            if within is not None:
                cands = [
                    d for d in cands if g.lo[within] <= g.lo[d] and g.hi[d] <= g.hi[within] and d != within
                ]
                if not cands:
                    return
            d = int(cands[int(rng.integers(len(cands)))])
            if kind in CLEARED_ABOVE:  # the protective device above clears it
                d = g.parent[d]
                if d < 0 or (within is not None and d == within):
                    return
                kind = g.kind[d]
            key, sps = g.device_ids[d], g.sps_of(d)
        if key in used:
            return
        used.add(key)
        wires = kind != "service" and rng.random() < config.wires_down_rate
        faults.append(Fault(key, kind, start, bool(wires), nested_in))
        fault_sps[key] = sps
        if nested_in is None and kind not in ("service", "transformer") and rng.random() < config.nested_rate:
            sub_kind = "transformer" if rng.random() < 0.6 else "service"
            add_fault(
                sub_kind, start + timedelta(minutes=float(rng.uniform(0, 30))), key, g.device_index[key]
            )

    attempts = 0
    while sum(f.nested_in is None for f in faults) < config.faults and attempts < config.faults * 20:
        attempts += 1
        start = t0 + config.duration * float(rng.random()) * 0.5
        add_fault(kinds[int(rng.choice(len(kinds), p=weights))], start, None, None)

    # who is out, and because of which fault: the fault that took the service point out first (it sends the
    # messages); on a tie the bigger one. A fault below one that is already out sends nothing.
    order = sorted(faults, key=lambda f: (f.start, -len(fault_sps[f.key])))
    cause: dict[int, str] = {}
    out_since: dict[int, datetime] = {}
    for f in order:
        for k in fault_sps[f.key].tolist():
            if k not in cause:
                cause[k] = f.key
                out_since[k] = f.start
            else:
                out_since[k] = min(out_since[k], f.start)
    head = SimulatedHeadEnd(failure_rate=config.ping_failure_rate, seed=seed + 1)
    for k, t in out_since.items():
        head.set_off(g.meters[k], t)
    fault_by_key = {f.key: f for f in faults}

    reports: list[Report] = []
    ami: list[AmiEvent] = []
    reporting: set[str] = set()
    first_msg: dict[str, datetime] = {}
    rid = 0

    def note(key: str, t: datetime) -> None:
        reporting.add(key)
        if key not in first_msg or t < first_msg[key]:
            first_msg[key] = t

    out_list = sorted(cause)
    meters = list(g.meters)
    partial_ami = config.ami and config.ami_feeders < 1.0
    if partial_ami:  # own stream: the storm itself stays the same as with full AMI
        chosen = ami_meters(g, config.ami_feeders, seed + 2)
        meters = [m if c else "" for m, c in zip(meters, chosen, strict=True)]
    out_pos = sorted(int(g.sp_pos[k]) for k in out_list)

    def neighbours_out(k: int) -> bool:  # another service point out around the caller (Grid.neighbourhood)
        d = g.neighbourhood(k)
        return d >= 0 and bisect_left(out_pos, g.hi[d]) - bisect_left(out_pos, g.lo[d]) > 1

    for k in out_list:
        f = fault_by_key[cause[k]]
        if rng.random() < config.call_rate:
            t = out_since[k] + timedelta(
                minutes=float(rng.lognormal(math.log(config.call_delay_median_min), config.call_delay_sigma))
            )
            neighbours = None
            if rng.random() < config.neighbours_answer_rate:
                neighbours = neighbours_out(k)
                if rng.random() < config.wrong_answer_rate:
                    neighbours = not neighbours
            target = k
            if rng.random() < config.mislocated_rate:
                target = int(g.sp_order[min(len(g.sp_order) - 1, g.sp_pos[k] + 1)])
            n_calls = 2 if rng.random() < config.duplicate_call_rate else 1
            for c in range(n_calls):
                rid += 1
                tc = t + timedelta(minutes=30 * c)
                loc = {"sp_id": g.sp_ids[target]}
                if rng.random() < config.unlocated_rate and g.sp_xy is not None:
                    loc = {"lon": float(g.sp_xy[target, 0]), "lat": float(g.sp_xy[target, 1])}
                reports.append(
                    Report(
                        f"R{rid}",
                        tc,
                        channel=str(rng.choice(CALL_CHANNELS)),
                        power="out",
                        wires_down=bool(f.wires_down and rng.random() < config.wires_mention_rate),
                        neighbours_out=neighbours,
                        **loc,
                    )
                )
            note(f.key, t)
        if config.ami and rng.random() >= config.ami_loss:
            ta = out_since[k] + timedelta(seconds=float(45 + rng.exponential(config.ami_delay_s)))
            gasps = [AmiEvent(g.meters[k], "last_gasp", ta)]
            if rng.random() < config.ami_duplicate_rate:
                gasps.append(
                    AmiEvent(g.meters[k], "last_gasp", ta + timedelta(seconds=float(rng.uniform(5, 120))))
                )
            if meters[k]:  # the draws above happen either way, so calls match the storm with AMI everywhere
                ami.extend(gasps)
                note(f.key, ta)
    # calls from customers who are not out (customer-side problems)
    not_out = np.setdiff1d(np.arange(n_sp), np.array(out_list, dtype=np.int64))
    n_false = int(rng.poisson(config.false_call_rate * len(reports)))
    channels = np.random.default_rng(seed + 3)  # own stream: the rest of the storm stays as it was
    for k in rng.choice(not_out, size=min(n_false, len(not_out)), replace=False).tolist():
        rid += 1
        # they come in on every channel, like real calls: the channel must tell the engine nothing
        reports.append(
            Report(
                f"R{rid}",
                t0 + config.duration * float(rng.random()),
                sp_id=g.sp_ids[k],
                channel=str(channels.choice(CALL_CHANNELS)),
                power="out",
                neighbours_out=False if rng.random() < CUSTOMER_SIDE_SAYS_NO else None,
            )
        )
    # momentary blinks: a last gasp and a restore within seconds, which must not make events
    if config.ami:
        for k in rng.choice(
            not_out, size=min(len(not_out), int(config.momentary_rate * n_sp)), replace=False
        ).tolist():
            tb = t0 + config.duration * float(rng.random())
            back = tb + timedelta(seconds=float(rng.uniform(2, 20)))  # drawn either way: the storm stays the same
            if meters[k]:
                ami.append(AmiEvent(g.meters[k], "last_gasp", tb))
                ami.append(AmiEvent(g.meters[k], "power_restore", back))
    scada = []
    for f in faults:
        if f.kind in config.scada_kinds and f.nested_in is None:
            ts = f.start + timedelta(seconds=2)
            scada.append(ScadaEvent(f.key, "lockout", ts))
            note(f.key, ts)
    telemetered = [g.device_ids[d] for kind in config.scada_kinds for d in by_kind.get(kind, [])]
    # an event on a device that cuts off exactly a fault's customers finds that fault -- also when the device has a
    # fault of its own nested in it that sent nothing (a blown transformer below the blown fuse feeding only it)
    alias: dict[str, str] = {}
    for f in faults:
        for other in same_customers(g, f.key):
            if other not in fault_by_key or (other != f.key and f.key in reporting and other not in reporting):
                alias.setdefault(other, f.key)
    return Storm(
        faults,
        reports,
        ami,
        cause,
        reporting,
        first_msg,
        head,
        n_false,
        scada,
        telemetered,
        meters if partial_ami else None,
        alias,
        {f.key: truth_class(g, f.key) for f in faults},
    )


@dataclass
class StormResult:
    predicted: dict[str, EventClass]  # event key -> class, for open predicted events at the end
    first_correct: dict[str, datetime]  # fault key -> first time an event sat on it
    messages: int
    seconds: float


def storm_engine(grid: Grid, storm: Storm, rules: RuleSets | None = None, ami: bool = True) -> OutageEngine:
    """A fresh engine over ``grid`` for ``storm`` to be fed into (:func:`run_storm`): the storm's meters and
    telemetered devices, its head-end for pings (``ami=False``: no pings, as on a system without meters), and a clock
    at the storm's start."""
    return OutageEngine(
        grid.topology,
        rules=rules,
        clock=lambda: STORM_START,
        meters=storm.head_end if ami else None,
        critical_kind=grid.critical_kind,
        meter_ids=storm.meters or grid.meters,
        sp_xy=grid.sp_xy,
        telemetered=storm.telemetered,
    )


def run_storm(engine: OutageEngine, storm: Storm, tick: timedelta = timedelta(minutes=1)) -> StormResult:
    """Feed the storm through ``engine`` in arrival order, ticking timers; track when each fault was first hit."""
    import time

    first: dict[str, datetime] = {}
    events = engine._events  # read-only peek to map change ids to keys cheaply

    def seen(changes, t):
        for c in changes:
            if isinstance(c, (EventCreated, EventUpdated)):
                tr = events.get(c.event_id)
                if tr is not None and tr.event.open:
                    key = storm.fault_of(tr.event.key)
                    if key is not None and key not in first:
                        first[key] = t

    msgs = storm.messages()
    started = time.perf_counter()
    next_tick = msgs[0][0] if msgs else STORM_START
    for t, kind, m in msgs:
        while next_tick <= t:
            seen(engine.tick(next_tick), next_tick)
            next_tick += tick
        if kind == 0:
            ch = engine.ingest_report(m)
        elif kind == 1:
            ch = engine.ingest_ami([m])
        else:
            ch = engine.ingest_scada(m)
        seen(ch, t)
    end = (msgs[-1][0] if msgs else STORM_START) + timedelta(minutes=5)
    seen(engine.tick(end), end)
    for ev in engine.events:  # events whose device was set without a change record of their own
        key = storm.fault_of(ev.key)
        if key is not None and key not in first:
            first[key] = ev.last_evidence or end
    elapsed = time.perf_counter() - started
    # no crew or dispatcher takes part in a simulated storm: every open event is the engine's own (predicted, or
    # confirmed by SCADA)
    # a hazard without an outage, and a lone call judged customer-side, predict no outage of the utility's
    predicted = {
        ev.key: ev.event_class
        for ev in engine.events
        if ev.event_class not in (EventClass.HAZARD, EventClass.CUSTOMER_SIDE)
    }
    return StormResult(predicted, first, len(msgs), elapsed)


#: the confusion matrix's row for an event that matches no fault
FALSE = "false"


@dataclass
class Score:
    predicted: int
    correct: int
    faults_reporting: int
    faults_found: int
    # (truth, predicted class) -> events: truth is the class of the fault the event matches, or FALSE
    confusion: Counter
    minutes_to_correct: list[float]

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.faults_found / self.faults_reporting if self.faults_reporting else 1.0

    @property
    def classified_ok(self) -> int:
        return sum(n for (truth, cls), n in self.confusion.items() if truth == cls)

    @property
    def classified(self) -> float:
        """Share of every predicted event whose class is its fault's (an event matching no fault is never right)."""
        return self.classified_ok / self.predicted if self.predicted else 1.0

    def confusion_table(self) -> dict[str, dict[str, int]]:
        """{truth: {predicted class: events}}, truth ``false`` for events that match no fault."""
        out: dict[str, dict[str, int]] = {}
        for (truth, cls), n in sorted(self.confusion.items()):
            out.setdefault(truth, {})[cls] = n
        return out

    def __add__(self, other: Score) -> Score:
        return Score(
            self.predicted + other.predicted,
            self.correct + other.correct,
            self.faults_reporting + other.faults_reporting,
            self.faults_found + other.faults_found,
            self.confusion + other.confusion,
            self.minutes_to_correct + other.minutes_to_correct,
        )


def confusion_text(table: dict[str, dict[str, int]]) -> str:
    """One line of a confusion table (:meth:`Score.confusion_table`): ``truth -> predicted n, ...; ...``."""
    return "; ".join(
        f"{truth} -> " + ", ".join(f"{cls} {n}" for cls, n in row.items()) for truth, row in table.items()
    )


def score(
    storm: Storm, predicted: dict[str, EventClass], first_correct: dict[str, datetime] | None = None
) -> Score:
    """The issue's definitions: an event is correct when its device is exactly a faulted device, or one that cuts
    off exactly the same customers (a fault that sent nothing counts too, when the engine found it by pinging
    meters); recall counts the faults that sent at least one message, and how many of those have an event. Two
    events on one fault count once. Every event goes into the confusion matrix: its fault's class (or ``false``)
    against its own."""
    matched: set[str] = set()
    confusion: Counter = Counter()
    for k, cls in predicted.items():
        f = storm.fault_of(k)
        if f is not None and f not in matched:
            matched.add(f)
            confusion[(storm.truth_class[f].value, cls.value)] += 1
        else:
            confusion[(FALSE, cls.value)] += 1
    found = [f for f in matched if f in storm.reporting]
    minutes = []
    for k in found:
        if first_correct and k in first_correct:
            minutes.append(max(0.0, (first_correct[k] - storm.first_message[k]).total_seconds() / 60))
    return Score(len(predicted), len(matched), len(storm.reporting), len(found), confusion, minutes)


def naive_baseline(
    grid: Grid, storm: Storm, radius_m: float = 300.0, window: timedelta = timedelta(hours=1)
) -> dict[str, EventClass]:
    """Each cluster of nearby calls (and last gasps, when present) is one event, on the lowest device common to
    the cluster's service points (a lone call is a single-service event)."""
    g = grid
    pts: list[int] = []
    times: list[float] = []
    for r in storm.reports:
        pts.append(g.sp_index[r.sp_id] if r.sp_id else g.nearest_sp(r.lon, r.lat))
        times.append(r.time.timestamp())
    restored = {a.meter for a in storm.ami if a.kind == "power_restore"}
    for a in storm.ami:
        if a.kind == "last_gasp" and a.meter not in restored:
            pts.append(g.meter_index[a.meter])
            times.append(a.time.timestamp())
    if not pts:
        return {}
    if g.sp_xy is None:
        raise ValueError("naive baseline needs service point coordinates")
    xy = g.sp_xy[np.array(pts)]
    lat0 = float(np.radians(xy[:, 1].mean()))
    metres = np.column_stack([xy[:, 0] * 111_320 * math.cos(lat0), xy[:, 1] * 110_540])
    labels = _near_in_space_and_time(metres, np.array(times), radius_m, window.total_seconds())
    clusters: dict[int, set[int]] = {}
    for label, k in zip(labels.tolist(), pts, strict=True):
        clusters.setdefault(label, set()).add(k)
    out: dict[str, EventClass] = {}
    for sps in clusters.values():
        if len(sps) == 1:
            (k,) = sps
            out[f"sp:{g.sp_ids[k]}"] = EventClass.SINGLE_CUSTOMER
            continue
        common = g.common_chain(sps)
        if common:
            d = common[0]
            out[g.device_ids[d]] = EventClass.COMMUNITY if g.community[d] else EventClass.FEEDER
    return out


def _near_in_space_and_time(metres: np.ndarray, times: np.ndarray, radius: float, window: float,
                            chunk: int = 512) -> np.ndarray:
    """Cluster labels of points (x, y in metres; times in seconds), chained through pairs within ``radius`` and
    ``window`` of each other. Pairs are found a chunk of points at a time and folded into the components so far: a
    substation's last gasps put thousands of meters within the radius of each other, and all their pairs at once
    would not fit in memory."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(metres)
    nodes = np.arange(n)
    rep = nodes.copy()  # a node of each one's component so far
    tree = cKDTree(metres)
    for lo in range(0, n, chunk):
        near = cKDTree(metres[lo : lo + chunk]).sparse_distance_matrix(tree, radius, output_type="ndarray")
        i, j = near["i"] + lo, near["j"]
        keep = (i < j) & (np.abs(times[i] - times[j]) <= window)
        if not keep.any():
            continue
        rows, cols = np.concatenate([i[keep], nodes]), np.concatenate([j[keep], rep])
        _, comp = connected_components(coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)), directed=False)
        first = np.full(comp.max() + 1, n)
        np.minimum.at(first, comp, nodes)
        rep = first[comp]
    return rep


def evaluate(
    network,
    storms: int = 10,
    call_rate: float = 0.3,
    ami: bool = True,
    seed: int = 0,
    faults: int | None = None,
    rules=None,
    topology=None,
    ami_feeders: float = 1.0,
) -> dict:
    """Run ``storms`` seeded storms; return the engine's and the naive baseline's figures as a plain dict.
    ``ami_feeders`` < 1: AMI on that share of the meters only (whole feeders, then part of one; calls alone on
    the rest)."""
    engine0 = OutageEngine.from_network(network, clock=lambda: STORM_START, topology=topology)
    grid = engine0.grid
    n_faults = faults or max(3, min(40, len(grid.sp_ids) // 80))
    eng_total = base_total = None
    msgs = 0
    secs = 0.0
    customer_side = 0  # wrong predictions that are calls from customers who were not out (no fault to find)
    cfg = StormConfig(faults=n_faults, call_rate=call_rate, ami=ami, ami_feeders=ami_feeders)
    call_only = []  # storms without meters, for the ceiling of any engine on them
    for i in range(storms):
        storm = generate_storm(grid, cfg, seed * 10_007 + i)
        if not ami and 0.0 < call_rate < 1.0:
            call_only.append(storm)
        res = run_storm(storm_engine(grid, storm, rules, ami), storm)
        s = score(storm, res.predicted, res.first_correct)
        customer_side += sum(
            1
            for k in res.predicted
            if k.startswith("sp:") and k not in storm.reporting and grid.sp_index[k[3:]] not in storm.cause
        )
        b = score(storm, naive_baseline(grid, storm))
        eng_total = s if eng_total is None else eng_total + s
        base_total = b if base_total is None else base_total + b
        msgs += res.messages
        secs += res.seconds
    mins = sorted(eng_total.minutes_to_correct)
    ceiling = ceiling_timed = None
    if call_only:
        ceiling = asdict(call_only_ceiling(grid, call_only, cfg))
        ceiling_timed = asdict(call_only_ceiling(grid, call_only, cfg, timed=True))
    return {
        "storms": storms,
        "call_rate": call_rate,
        "ami": ami,
        "ami_feeders": ami_feeders if ami else 0.0,
        "faults_per_storm": n_faults,
        "precision": round(eng_total.precision, 4),
        "recall": round(eng_total.recall, 4),
        "classified": round(eng_total.classified, 4),
        "confusion": eng_total.confusion_table(),  # {truth class or "false": {predicted class: events}}
        "minutes_to_correct_median": round(float(np.median(mins)), 2) if mins else None,
        "minutes_to_correct_p90": round(float(np.percentile(mins, 90)), 2) if mins else None,
        "baseline_precision": round(base_total.precision, 4),
        "baseline_recall": round(base_total.recall, 4),
        "predicted_events": eng_total.predicted,
        "faults_reporting": eng_total.faults_reporting,
        "false_customer_side": customer_side,
        "false_other": eng_total.predicted - eng_total.correct - customer_side,
        "messages": msgs,
        "messages_per_s": round(msgs / secs) if secs else None,
        "ceiling": ceiling,  # without AMI: the best any engine could score (outage.ceiling), told the grouping
        "ceiling_timed": ceiling_timed,  # the same, told only what the calls' times can tell (outage.ceiling)
    }
