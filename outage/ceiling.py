"""How well *any* engine could predict from calls alone: a ceiling for the simulator's no-AMI storms.

Without meters a lone call is ambiguous. The same call ("my power is out", maybe "the neighbours are out too")
comes from a service drop, from one customer of a few under a blown transformer or fuse when the others did not
call, or from a customer who is not out at all (a tripped main breaker at home). The simulator makes all of
these, as a real population does, so no engine can be right about every one of them: the question is how close
to the issue's goal the best possible engine could get.

The ceiling is the score of an engine that knows more than any real one. It is told which calls share a cause (the
ground truth's grouping of callers into faults; a customer-side call is a group of its own, not marked as such)
and which breakers SCADA saw lock out (the others it shows closed). For each group it then weighs every device
that holds all of the group's callers, plus "not out" for a lone caller, by Bayes' rule under the simulator's own
model (:class:`StormConfig`):

- prior: faults per storm x the fault mix's weight for the device's kind, over the territory's total weight;
  customer-side calls at the storm's own rate per customer who is not out;
- the callers: each of the device's customers calls with the call-in rate, so exactly these callers and no others
  has likelihood ``c**k * (1-c)**(n-k)`` for a device with ``n`` customers;
- the answers: a customer who is out calls twice with the duplicate rate, says whether neighbours are out with the
  answer rate (wrong with the wrong-answer rate; "yes" when others around them are out: on their transformer, or
  for a customer alone on one, on the lateral around it, :meth:`Grid.neighbourhood`), mentions wires down
  for a fault with downed wires; a customer-side caller calls once, says "no" or nothing, never wires down;
- when: a fault's first call comes a lognormal delay after a start spread over the storm's first half; a
  customer-side call comes any time in the storm.

It predicts, for each group, the most likely device (and the second most likely, when that helps), keeping those
whose posterior is at least a threshold (devices that cut off exactly the same customers are one candidate, as
scoring counts either), and reports the threshold with the best lower of precision and recall,
scored against the ground truth as :func:`outage.simulate.score` does. Given the grouping, and picking its
threshold knowing the outcome, it is a ceiling for any engine that has to find the groups from the feeder graph,
up to the model's approximations: a customer already out from another fault still counts as one who could have
called, and a call put on a neighbour's account is not modelled. ``expected_precision`` and ``expected_recall``
score the same choices by their own posteriors instead of the ground truth; the gap between the two pairs shows
how much those approximations matter.

Told the grouping, the ceiling knows more than the calls can say: a service drop that failed under a fuse that
blew minutes later has one call among the fuse's calls, which the fuse explains as well, so no engine can find the
drop, and the ceiling does. ``timed=True`` tells it only what the calls' times, the silence and the priors can
(:func:`_apart`): each group weighs as much as it is likely to be an outage of its own rather than part of an
outage of a device above it and another group; and calls that came after a lockout SCADA saw above them are the
lockout's (:func:`_heard_before_lockouts`). It is still a ceiling (every other grouping is told, the threshold
is picked knowing the outcome), closer to what an engine could do from calls alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from outage.grid import Grid
from outage.rules import lognormal_sf
from outage.separation import lognormal_logpdf
from outage.storm import (
    CUSTOMER_SIDE_SAYS_NO,
    STORM_START,
    Storm,
    StormConfig,
    devices_by_kind,
    key_span,
    kind_weights,
    same_customers,
)

NOT_OUT = "not out"


@dataclass(frozen=True)
class Candidate:
    """One device a group of calls could be, with its posterior; ``right`` when it is the group's true cause."""

    key: str
    posterior: float
    right: bool


@dataclass(frozen=True)
class Ceiling:
    """The best lower-of-precision-and-recall over posterior thresholds (see the module docstring)."""

    threshold: float
    precision: float
    recall: float
    expected_precision: float  # the same predictions scored by their posteriors instead of the ground truth
    expected_recall: float
    groups: int  # groups of calls sharing a cause (SCADA-seen breakers included)
    # calls on customers who were not out: customer-side calls, calls put on a wrong account
    not_out_groups: int


def _log(x: float) -> float:
    return math.log(x) if x > 0.0 else -math.inf


def group_candidates(
    grid: Grid, storm: Storm, config: StormConfig, timed: bool = False
) -> tuple[list[list[Candidate]], int]:
    """Each group of calls in ``storm`` with its candidates, most likely first (a breaker SCADA saw lock out is
    a certain candidate), and how many groups are calls on customers who were not out. ``timed``: a group whose
    callers are all cut off by another reporting fault too weighs only as much as the calls' times say it is an
    outage of its own (:func:`_apart`)."""
    if config.ami:
        raise ValueError("the call-only ceiling is for storms without AMI (StormConfig.ami=False)")
    g = grid
    c = config.call_rate
    if not 0.0 < c < 1.0:
        raise ValueError(f"the call-only ceiling needs a call-in rate in (0, 1), got {c}")
    weight = sum(kind_weights(g, config.fault_mix, devices_by_kind(g)).values())
    minutes = config.duration.total_seconds() / 60
    first_half = minutes / 2
    median, sigma = config.call_delay_median_min, config.call_delay_sigma
    answer, wrong, dup = config.neighbours_answer_rate, config.wrong_answer_rate, config.duplicate_call_rate
    customer_side_rate = storm.false_reports / max(1, len(g.sp_ids) - len(storm.cause))

    calls_at: dict[int, list] = defaultdict(list)
    for r in storm.reports:
        if r.power != "out":
            continue
        calls_at[g.sp_index[r.sp_id] if r.sp_id else g.nearest_sp(r.lon, r.lat)].append(r)
    groups: dict[str, list[int]] = defaultdict(list)
    for k in calls_at:
        groups[storm.cause.get(k, f"{NOT_OUT}:{k}")].append(k)
    locked_out = {s.device_id: s.time for s in storm.scada if s.kind == "lockout"}
    closed = set(storm.telemetered) - locked_out.keys()  # SCADA shows them closed: never the cause
    if timed:
        _heard_before_lockouts(g, locked_out, groups, calls_at)
    for key in locked_out:
        groups.setdefault(key, [])

    apart = _apart(g, storm, config, groups, calls_at, weight, closed, locked_out) if timed else {}
    out: list[list[Candidate]] = []
    not_out = 0
    for key, sps in groups.items():
        if key in locked_out:
            out.append([Candidate(key, 1.0, True)])
            continue
        if not sps:
            continue  # all its callers called after a lockout above them (_heard_before_lockouts)
        not_out += key.startswith(NOT_OUT)
        calls = [r for k in sps for r in calls_at[k]]
        t = (min(r.time for r in calls) - STORM_START).total_seconds() / 60
        # the fault started at a uniform time in the storm's first half: the first call's delay is in [t - half, t]
        when = (lognormal_sf(t - first_half, median, sigma) - lognormal_sf(t, median, sigma)) / first_half
        wires = any(r.wires_down for r in calls)
        n_calls = {k: len(calls_at[k]) for k in sps}
        said = {
            k: next((r.neighbours_out for r in calls_at[k] if r.neighbours_out is not None), None)
            for k in sps
        }
        # service points of the device whose other customers are the caller's neighbours (Grid.neighbourhood): a
        # device that holds them all (nested devices: as many or more) has them out too
        nb_size = {k: (g.n_sp[d] if (d := g.neighbourhood(k)) >= 0 else 1) for k in sps}

        def log_weight(
            kind: str, n: int, sps=sps, n_calls=n_calls, said=said, nb_size=nb_size, when=when, wires=wires,
            n_all=len(calls)
        ) -> float:
            """log P(this fault, and exactly these callers saying this) - in logs: hundreds of callers underflow."""
            if n < len(sps):
                return -math.inf
            lw = (
                _log(config.faults * config.fault_mix[kind] / weight)
                + len(sps) * math.log(c)
                + (n - len(sps)) * math.log(1 - c)
                + _log(when)
            )
            for k in sps:
                lw += _log(1 - dup) if n_calls[k] == 1 else (n_calls[k] - 1) * _log(dup)
                if said[k] is None:
                    lw += _log(1 - answer)
                else:  # the truth: others around the caller are out -- when the device holds its neighbourhood
                    truth = kind != "service" and 1 < nb_size[k] <= n
                    lw += _log(answer * (1 - wrong if said[k] == truth else wrong))
            p_wires = (
                0.0
                if kind == "service"
                else config.wires_down_rate * (1 - (1 - config.wires_mention_rate) ** n_all)
            )
            return lw + _log(p_wires if wires else 1 - p_wires)

        log_weights: dict[str, float] = {}
        if len(sps) == 1:
            (k,) = sps
            if n_calls[k] == 1 and not wires and said[k] is not True:
                # a customer-side caller says "no" or nothing, at any time in the storm
                log_weights[NOT_OUT] = _log(
                    customer_side_rate
                    / minutes
                    * (CUSTOMER_SIDE_SAYS_NO if said[k] is False else 1 - CUSTOMER_SIDE_SAYS_NO)
                )
            log_weights[f"sp:{g.sp_ids[k]}"] = log_weight("service", 1)
        for d in g.common_chain(sps):
            kind = g.kind[d]
            if kind in config.fault_mix and kind != "service" and g.device_ids[d] not in closed:
                log_weights[g.device_ids[d]] = log_weight(kind, int(g.hi[d] - g.lo[d]))
        top = max(log_weights.values(), default=-math.inf)
        if top == -math.inf:
            out.append([])
            continue
        # devices that cut off exactly the same customers are one candidate: nothing tells them apart, and an
        # event on either finds the fault (outage.simulate.score)
        weights: dict[str, float] = {}
        for name, lw in log_weights.items():
            rep = name if name == NOT_OUT else min(same_customers(g, name))
            weights[rep] = weights.get(rep, 0.0) + math.exp(lw - top)
        total = sum(weights.values())
        share = apart.get(key, 1.0)
        ranked = sorted(((share * w / total, name) for name, w in weights.items() if name != NOT_OUT), reverse=True)
        out.append([Candidate(name, p, key in same_customers(g, name)) for p, name in ranked])
    return out, not_out


def _heard_before_lockouts(
    g: Grid, locked_out: dict[str, datetime], groups: dict[str, list[int]], calls_at: dict[int, list]
) -> None:
    """Leave out of each group the callers who first called after a lockout SCADA saw above them (``locked_out``:
    device -> when): from the lockout every customer below that device is out and calls because of it, to any
    engine; only the calls before it can tell of another outage below (a fuse that blew minutes before the breaker
    above it)."""
    locks = [(name, *key_span(g, name), t) for name, t in locked_out.items()]
    for key, sps in groups.items():
        sps[:] = [
            k for k in sps
            if not any(name != key and lo <= g.sp_pos[k] < hi and min(r.time for r in calls_at[k]) >= t
                       for name, lo, hi, t in locks)
        ]


def _apart(
    g: Grid,
    storm: Storm,
    config: StormConfig,
    groups: dict[str, list[int]],
    calls_at: dict[int, list],
    weight: float,
    closed: set[str],
    locked_out: dict[str, datetime],
) -> dict[str, float]:
    """For each fault that reported, the probability that an engine not told the grouping would see its calls as an
    outage of its own. Nothing but the times, the silence and the priors tells apart a fault's calls from those of
    another outage that cut off the same callers: each caller is out either way and says the same of the neighbours
    (:mod:`outage.simulate` answers for the whole storm).

    For every device ``d`` above the callers of two reporting faults, pair by pair: when ``d`` failed, each fault
    below it against ``d``'s own (a service drop under a blown fuse); else each fault below it against each other
    one (two transformers under a fuse that held, which would explain both with one fault). Weighed under the
    simulator's model, with every call in hand: each fault's onset uniform over the storm's first half (a lockout
    SCADA saw: at the lockout), each customer's first call a lognormal delay after it. Apart: both faults' priors,
    each one's calls from its own onset. Together: ``d``'s prior, all the calls from one onset, and ``d``'s customers
    that no fault below it cut off out and silent. A fault keeps the least probability of its pairs."""
    half = config.duration.total_seconds() / 60 / 2
    median, sigma = config.call_delay_median_min, config.call_delay_sigma
    log_quiet = math.log(1.0 - config.call_rate)
    onsets = np.linspace(0.0, half, 721)
    known = {name: (t - STORM_START).total_seconds() / 60 for name, t in locked_out.items()}

    def log_prior(kind: str) -> float:
        return _log(config.faults * config.fault_mix.get(kind, 0.0) / weight)

    def evidence(t: np.ndarray, onset: float | None) -> float:
        """log P(first calls at ``t`` | one outage): its onset ``onset``, else uniform over the first half."""
        if onset is not None:
            return float(lognormal_logpdf(t - onset, median, sigma).sum())
        ll = lognormal_logpdf(t[:, None] - onsets[None, :], median, sigma).sum(axis=0)
        top = ll.max()
        return -math.inf if top == -np.inf else float(top + np.log(np.exp(ll - top).mean()))

    # each fault that reported: the customers it cut off (a run of positions), its first calls, prior and evidence
    units: dict[str, tuple[int, int, np.ndarray, float, float]] = {}
    for f in storm.faults:
        sps = groups.get(f.key)
        if sps is None or (not sps and f.key not in known):
            continue
        lo, hi = key_span(g, f.key)
        t = np.array([(min(r.time for r in calls_at[k]) - STORM_START).total_seconds() / 60 for k in sps])
        units[f.key] = (lo, hi, t, log_prior(f.kind), evidence(t, known.get(f.key)))
    over: dict[int, list[str]] = defaultdict(list)  # device -> the faults whose customers it holds
    for key, (lo, hi, *_) in units.items():
        for d in g.chain(int(g.sp_order[lo])):
            if g.lo[d] <= lo and hi <= g.hi[d]:
                over[d].append(key)
    out: dict[str, float] = {}
    for d, keys in over.items():
        name = g.device_ids[d]
        if len(keys) < 2 or g.kind[d] not in config.fault_mix or g.kind[d] == "service" or name in closed:
            continue
        spans = sorted((units[k][0], units[k][1]) for k in keys)
        cut_off, reach = 0, -1  # customers the faults below d cut off between them (runs nest or are apart)
        for lo, hi in spans:
            cut_off += max(0, hi - max(lo, reach))
            reach = max(reach, hi)
        # together, d's customers that no fault below it cut off were out and silent too
        silence = (cut_off - g.n_sp[d]) * log_quiet
        # pairs: each fault below d with d's own fault (a drop under a blown fuse), or, where d did not fail, with
        # each other fault below it (two transformers under a fuse that held)
        pairs = [(k, name) for k in keys if k != name] if name in units else [
            (k, other) for k in keys for other in keys if other != k
        ]
        for k, other in pairs:
            odds = (
                units[k][3]
                + units[k][4]
                + units[other][4]
                - evidence(np.concatenate([units[k][2], units[other][2]]), known.get(name))
            )
            if name not in units:
                odds += units[other][3] - log_prior(g.kind[d]) + silence
            p = 1.0 / (1.0 + math.exp(-odds)) if odds > -700 else 0.0
            out[k] = min(out.get(k, 1.0), p)
    return out


def _ranked(
    grid: Grid, storms: list[Storm], config: StormConfig, per_group: int, timed: bool = False
) -> tuple[list[tuple[float, bool, int, str]], int, int, int]:
    """Every storm's candidates (up to ``per_group`` a group) as (posterior, right, storm index, candidate key),
    most likely first; with the faults that reported, the groups, and the groups of customers not out."""
    items: list[tuple[float, bool, int, str]] = []
    reporting = groups = not_out = 0
    for i, storm in enumerate(storms):
        reporting += len(storm.reporting)
        cands, n_not_out = group_candidates(grid, storm, config, timed)
        groups += len(cands)
        not_out += n_not_out
        items += [(cand.posterior, cand.right, i, cand.key) for group in cands for cand in group[:per_group]]
    items.sort(key=lambda x: -x[0])
    return items, reporting, groups, not_out


def _best(items: list[tuple[float, bool, int, str]], reporting: int) -> tuple[int, tuple, tuple]:
    """How many of the ranked ``items`` the ceiling predicts (the threshold with the best lower of precision and
    recall), with (threshold, precision, recall) there and the best (precision, recall) by the posteriors."""
    best = best_expected = None
    n_best = 0
    right = expected = 0.0
    for n, (p, ok, _, _) in enumerate(items, 1):
        right += ok
        expected += p
        pr = (right / n, right / reporting if reporting else 1.0)
        if best is None or min(pr) > min(best[1:]):
            best, n_best = (p, *pr), n
        ex = (expected / n, expected / reporting if reporting else 1.0)
        if best_expected is None or min(ex) > min(best_expected):
            best_expected = ex
    return n_best, best, best_expected


def call_only_ceiling(
    grid: Grid, storms: Iterable[Storm], config: StormConfig, per_group: int = 2, timed: bool = False
) -> Ceiling:
    """The ceiling over ``storms`` (all generated with ``config``): see the module docstring. ``per_group``: how
    many candidates of one group an engine may predict at once."""
    items, reporting, groups, not_out = _ranked(grid, list(storms), config, per_group, timed)
    _, best, best_expected = _best(items, reporting)
    if best is None:
        return Ceiling(1.0, 1.0, 0.0 if reporting else 1.0, 1.0, 0.0 if reporting else 1.0, groups, not_out)
    return Ceiling(
        round(best[0], 4),
        round(best[1], 4),
        round(best[2], 4),
        round(best_expected[0], 4),
        round(best_expected[1], 4),
        groups,
        not_out,
    )


def ceiling_finds(
    grid: Grid, storms: Iterable[Storm], config: StormConfig, per_group: int = 2, timed: bool = False
) -> list[set[str]]:
    """Per storm, the faults the ceiling finds (its right predictions, :func:`call_only_ceiling`). Set beside an
    engine's finds, it shows where the engine falls short of the ceiling and where it does better."""
    storms = list(storms)
    items, reporting, _, _ = _ranked(grid, storms, config, per_group, timed)
    n, _, _ = _best(items, reporting)
    found: list[set[str]] = [set() for _ in storms]
    for _, right, i, key in items[:n]:
        if right:  # the candidate is the fault's device, or one that cuts off the same customers
            found[i].add(storms[i].fault_of(key))
    return found
