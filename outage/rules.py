"""Roll-up rules: when does evidence beneath a device mean that the device itself operated?

A :class:`DeviceRule` per device kind says how much evidence predicts that kind of device:

* ``min_calls``    distinct service points with out-evidence beneath it (a floor, required but for the
                   likelihood's lift of a small fuse on calls alone, ``RuleSet.likelihood_below_floor``);
* ``min_children`` distinct children directly beneath it with out-evidence (child devices, or for a transformer
                   its service points, where a caller saying "my neighbours are out too" counts as one more);
* ``min_child_share`` share of its children that must count for the children test to pass;
* ``children``     which children count: ``"evidence"`` (any out-evidence below them) or ``"predicted"`` (their own
                   rule passed) — backbone devices count predicted children so that stray single calls on other
                   laterals do not lift a fuse outage to the recloser;
* ``min_share``    share of its downstream customers with out-evidence;
* ``both_must_pass`` whether children AND share must pass (else either one is enough).

Likelihood roll-up (``RuleSet.rollup = "likelihood"``, the named set ``likelihood``; the default sets still use
the count rules, whose behaviour the service and its tests rely on): instead of fixed counts, each device on a
report's chain compares two explanations of the evidence beneath it — *the device operated* (every service point
below it is out; those that sent nothing were silent at the expected detection rate) against *the best explanation
by lower, independent faults* (each child device or service drop on its own, or a call from a customer who is not
out). Both are log-likelihoods relative to "nothing is out", built from the :class:`Likelihood` parameters below:

    operated(d) = log prior(kind) + sum(evidence LLR of service points out below d)
                  + silent customers(d) * log(1 - p_call) + silent meters(d) * log(1 - p_gasp)
    below(d)    = sum over children c of best(c),    best(c) = max(operated(c), below(c))
    service point with evidence: best = max(0 [a false call], log prior(service) + evidence LLR)

A device is predicted when ``operated(d) > below(d)``; the event sits on the highest predicted device of the chain
(top-down decoding of the most probable explanation on the tree, as a binomial test per device up the chain).
Every value is kept per device and updated along one chain per message, so per-report work stays O(chain length).
``p_detect`` combines the call-in rate (learned online from AMI-backed service points when meters send last
gasps, see :class:`Likelihood`) and, with AMI, the chance that a last gasp gets through (``1 - ami_loss``): with
meters, silence under a device is strong evidence that it did not operate; without them it is weak. Which holds is
decided per feeder (a feeder is AMI once one of its meters has declared a last gasp), since utilities roll meters
out area by area; the call-in rate learned on AMI feeders serves the others too.

The count rules borrow this comparison as a second opinion when the evidence is calls alone (no last gasps):
``RuleSet.likelihood_check``, see there.

Rules are grouped in named :class:`RuleSet` s (``normal``, ``storm``), and :class:`RuleSets` picks one per
district (a feeder's breaker id or a substation id), so a storm-hit area can run storm rules while the rest of the
territory stays on normal rules — as Oracle NMS and ArcFM Responder do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import timedelta

#: Kinds the roll-up may predict; other devices (switch, regulator) do not interrupt on their own and are skipped.
PREDICTABLE_KINDS = ("transformer", "fuse", "sectionalizer", "recloser", "breaker", "substation")


@dataclass(frozen=True, slots=True)
class DeviceRule:
    """How much evidence predicts one device kind. See the module docstring."""

    min_calls: int = 1
    min_children: int = 2
    min_share: float = 0.5
    both_must_pass: bool = False
    min_child_share: float = 0.0
    children: str = "evidence"

    def __post_init__(self) -> None:
        if self.min_calls < 1:
            raise ValueError(f"DeviceRule.min_calls must be >= 1, got {self.min_calls}")
        if self.min_children < 0:
            raise ValueError(f"DeviceRule.min_children must be >= 0, got {self.min_children}")
        if self.children not in ("evidence", "predicted"):
            raise ValueError(f"DeviceRule.children must be 'evidence' or 'predicted', got {self.children!r}")
        if not 0.0 < self.min_share <= 1.0:
            raise ValueError(f"DeviceRule.min_share must be in (0, 1], got {self.min_share}")

    def passes(self, calls: int, children: int, share: float, n_children: int = 0) -> bool:
        if calls < self.min_calls:
            return False
        children_ok = (self.min_children > 0 and children >= self.min_children
                       and (not n_children or children >= self.min_child_share * n_children))
        share_ok = share >= self.min_share
        return (children_ok and share_ok) if self.both_must_pass else (children_ok or share_ok)


def _default_device_rules() -> dict[str, DeviceRule]:
    return {
        # a caller (or one saying the neighbours are out too) per tenth of its service points at least: two calls
        # do not take down a transformer serving dozens (an imported large transformer)
        "transformer": DeviceRule(min_calls=1, min_children=2, min_share=0.5, min_child_share=0.1),
        "fuse": DeviceRule(min_calls=2, min_children=2, min_share=0.5, min_child_share=0.3),
        "sectionalizer": DeviceRule(min_calls=2, min_children=2, min_share=0.5, min_child_share=0.3),
        "recloser": DeviceRule(min_calls=3, min_children=2, min_share=0.5, min_child_share=0.3,
                               children="predicted"),
        "breaker": DeviceRule(min_calls=3, min_children=2, min_share=0.5, min_child_share=0.3,
                              children="predicted"),
        # a transformer with devices below it (grid.rule_kind): judged as the backbone device it is, by predicted
        # children, never by a couple of calls spread over its laterals
        "large_transformer": DeviceRule(min_calls=3, min_children=2, min_share=0.5, min_child_share=0.3,
                                        children="predicted"),
        # substation equipment (and transformers above the feeder heads): SCADA, most of its customers, or
        # predicted outages under at least half of what hangs on it
        "substation": DeviceRule(min_calls=5, min_children=2, min_share=0.6, min_child_share=0.5,
                                 children="predicted"),
    }


#: per-device chance of operating in the period the rule set is used for (a storm): protective devices that clear
#: faults anywhere on their section (fuses, reclosers) operate far more often per device than a transformer fails
#: or one service drop comes down. A utility calibrates these from its outage history (``outage.history`` records
#: device kind per interruption); they only need to be right within a factor of a few. Both roll-ups (count rules
#: too) use them to choose between devices that interrupt exactly the same customers (a fuse feeding one
#: transformer), which no evidence can tell apart.
DEFAULT_FAULT_PRIOR = {"service": 0.003, "transformer": 0.01, "fuse": 0.1, "sectionalizer": 0.1, "recloser": 0.1,
                       "breaker": 0.05, "substation": 0.01}


def lognormal_sf(x: float, median: float, sigma: float) -> float:
    """P(X > x) for a lognormal delay ``X`` with this median and log-sigma (1 for x <= 0): how customers' call
    delays after their power goes are modelled."""
    if x <= 0:
        return 1.0
    return 0.5 * math.erfc(math.log(x / median) / (sigma * math.sqrt(2.0)))


@dataclass(frozen=True)
class Likelihood:
    """Parameters of the likelihood roll-up (see the module docstring)."""

    #: prior per device kind (and "service" for one service drop)
    fault_prior: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAULT_PRIOR))
    #: expected share of customers out who call (prior; with AMI it is learned online, see ``call_rate_weight``)
    call_rate: float = 0.25
    #: weight of the prior call rate, in service points, against the online estimate
    call_rate_weight: float = 20.0
    #: share of an out meter's last gasps that never arrive (mesh/PLC loss, dead batteries)
    ami_loss: float = 0.2
    #: chance per service point that a customer who is not out calls "out" (customer-side problem) in the period
    false_call_rate: float = 0.002
    #: chance that a declared last gasp (or a ping saying off) comes from a meter that has power
    false_meter_rate: float = 1e-4
    #: how far a caller's answer "my neighbours are out too" (or "not out") moves a device hypothesis: the odds
    #: ratio of that answer when the neighbours are out vs. when only the caller is (callers are often wrong). The
    #: neighbours are those around the caller (``Grid.neighbourhood``): the answer moves the devices that hold them
    neighbours_odds: float = 5.0

    def __post_init__(self) -> None:
        for kind, p in self.fault_prior.items():
            if not 0.0 < p < 1.0:
                raise ValueError(f"Likelihood.fault_prior[{kind!r}] must be in (0, 1), got {p}")
        for name in ("call_rate", "ami_loss", "false_call_rate", "false_meter_rate"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"Likelihood.{name} must be in (0, 1), got {v}")
        if self.neighbours_odds < 1.0:
            raise ValueError(f"Likelihood.neighbours_odds must be >= 1, got {self.neighbours_odds}")


@dataclass(frozen=True)
class RuleSet:
    """One named set of roll-up rules and timers."""

    name: str = "normal"
    devices: dict[str, DeviceRule] = field(default_factory=_default_device_rules)
    #: "likelihood" (compare explanations, see the module docstring) or "rules" (the count rules in ``devices``)
    rollup: str = "rules"
    likelihood: Likelihood = field(default_factory=Likelihood)
    #: count rules, calls only (no meter on the feeder has sent a last gasp): devices above transformers also get a
    #: second opinion from the likelihood comparison (module docstring), which weighs the silence of the customers
    #: below who did not call; where it disagrees by more than ``likelihood_margin`` (log-likelihood, e ~ 2.7 times
    #: as likely), it wins. With meters, last gasps and pings measure that silence directly and the count rules
    #: stand alone
    likelihood_check: bool = True
    likelihood_margin: float = 1.0
    #: calls only: the likelihood's second opinion may also lift a lateral device (fuse, sectionalizer) below its
    #: call floor (``min_calls``), on pending evidence alone: one call under a small fuse whose few other customers
    #: are silent, where the fuse's prior (it operates ten times as often as a transformer fails) outweighs that
    #: silence. Silence counts customers, not service points, so one call from a block of flats never lifts the
    #: fuse above it: the flats' neighbours under the fuse would have called. Off: one call never lifts a fuse
    likelihood_below_floor: bool = True
    #: unconfirmed -> probable after this long without contrary evidence (ArcFM: 20 min, Oracle-like: 15 min)
    probable_after: timedelta = timedelta(minutes=15)
    #: evidence this far apart under one device is a new outage (time separation)
    separation: timedelta = timedelta(hours=2)
    #: a second report from the same service point within this window is a duplicate
    duplicate_window: timedelta = timedelta(hours=2)
    #: a last gasp counts only after this long without a matching restore (meters declare after 30-45 s)
    ami_declaration_delay: timedelta = timedelta(seconds=40)
    #: listen only to bellwether meters (storm mode in EnergyIP)
    ami_bellwether_only: bool = False
    #: meters pinged per transformer to verify a prediction (Oracle meterPingPercentage = -1 is one)
    ping_per_transformer: int = 1
    #: most meters pinged per verification request
    ping_cap: int = 40
    #: times a meter that did not answer a ping is asked again before its answer stays "unknown"
    ping_retries: int = 1
    #: AMI time separation: an event whose meters all went dark this much before the newest meter of the device
    #: being predicted above it is a separate, earlier outage (kept, not merged). Meters time-stamp when power
    #: went, and the meters below one device go dark within a declaration delay plus seconds of each other
    ami_separation: timedelta = timedelta(minutes=3)
    #: calls-only time separation (:mod:`outage.separation`). Customers call a lognormal delay after their power
    #: goes (median, sigma of its log): an event below a device being predicted is a separate, earlier outage (as
    #: with ``ami_separation``) when separate outages explain the calls and the silence under the device better
    #: than one, by at least ``call_separation_odds`` to one (fault priors and an onset per outage included). The
    #: silence decides most: a device out since the earlier event began would have had its other customers calling
    #: long before its later callers began
    call_delay_median: timedelta = timedelta(minutes=12)
    call_delay_sigma: float = 1.0
    call_separation_odds: float = 1.0
    #: calls only: a lone call (one service point, no meter to ask) is judged customer-side (EventClass.CUSTOMER_SIDE,
    #: not an outage prediction) when the odds that an outage explains it fall below ``customer_side_odds``.
    #: Outages begin in bursts while the weather does its damage; customer-side calls (a tripped main, a meter-base
    #: fault) come at any time, about ``customer_side_share`` of the storm's callers (a utility sets it from its
    #: history). Lone calls of outages (service drops, transformers one customer called about) are taken to come at
    #: ``alpha`` per multi-customer outage beginning nearby (counted within ``customer_side_window`` either side of
    #: the call, shrunk towards the mean over the last ``customer_side_horizon``), ``alpha`` fitted to the open lone
    #: calls (customer_side._fit_lone_calls); the odds of a call are then alpha x that rate over the customer-side rate.
    #: Until ``customer_side_min_onsets`` outages have begun (and as many lone calls came) nothing is judged; a
    #: duplicate call, a hazard, medical equipment or "my neighbours are out too" always speak for an outage.
    #: Judged again every ``customer_side_window`` / 4 as the storm goes on, for half a horizon after the call; then the
    #: judgement stands. A call on a device serving only the caller's service point is a lone call too
    customer_side_odds: float = 0.5
    customer_side_window: timedelta = timedelta(minutes=20)
    customer_side_horizon: timedelta = timedelta(hours=6)
    customer_side_min_onsets: int = 3
    customer_side_share: float = 0.03
    #: power-on evidence (a restore message, a ping answer, a "my power is on" call) blocks roll-up this long
    power_on_ttl: timedelta = timedelta(minutes=30)
    #: a "still out" report this long after its event was restored makes a nested (backdated) event
    nested_window: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if not self.call_separation_odds > 0.0:
            raise ValueError(f"RuleSet {self.name!r}: call_separation_odds must be > 0, got "
                             f"{self.call_separation_odds}")
        if self.call_delay_median <= timedelta(0) or self.call_delay_sigma <= 0:
            raise ValueError(f"RuleSet {self.name!r}: call_delay_median and call_delay_sigma must be > 0")
        if self.customer_side_odds < 0 or self.customer_side_window <= timedelta(0):
            raise ValueError(f"RuleSet {self.name!r}: customer_side_odds must be >= 0 and customer_side_window > 0")
        if self.ping_retries < 0:
            raise ValueError(f"RuleSet {self.name!r}: ping_retries must be >= 0, got {self.ping_retries}")
        if self.rollup not in ("likelihood", "rules"):
            raise ValueError(f"RuleSet {self.name!r}: rollup must be 'likelihood' or 'rules', got {self.rollup!r}")

    def rule(self, kind: str) -> DeviceRule:
        try:
            return self.devices[kind]
        except KeyError:
            raise KeyError(f"rule set {self.name!r} has no rule for device kind {kind!r}") from None

    def with_rule(self, kind: str, **changes) -> RuleSet:
        """A copy with one device kind's rule changed, e.g. ``rs.with_rule("fuse", min_children=3)``."""
        devices = dict(self.devices)
        devices[kind] = replace(self.rule(kind), **changes)
        return replace(self, devices=devices)


def storm_rules() -> RuleSet:
    """Storm rules: several faults per feeder are likely, so roll up more reluctantly and listen to bellwethers."""
    base = _default_device_rules()
    devices = {
        **base,
        "fuse": DeviceRule(min_calls=3, min_children=2, min_share=0.5, min_child_share=0.4),
        "recloser": DeviceRule(min_calls=4, min_children=3, min_share=0.6, min_child_share=0.4,
                               children="predicted"),
        "breaker": DeviceRule(min_calls=4, min_children=3, min_share=0.6, min_child_share=0.4,
                              children="predicted"),
    }
    # the storm floors are the utility's word: the likelihood does not lift a fuse below them
    return RuleSet(name="storm", devices=devices, probable_after=timedelta(minutes=20),
                   ami_bellwether_only=True, likelihood_below_floor=False)


def likelihood_rules(likelihood: Likelihood | None = None) -> RuleSet:
    """Likelihood roll-up (module docstring) with the normal rules' call floors (one call never lifts a fuse)."""
    return RuleSet(name="likelihood", rollup="likelihood", likelihood=likelihood or Likelihood())


@dataclass
class RuleSets:
    """Named rule sets and which one each district uses (district = feeder breaker id or substation id)."""

    sets: dict[str, RuleSet]
    default: str = "normal"
    districts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.default not in self.sets:
            raise KeyError(f"rule sets: default {self.default!r} is not one of {sorted(self.sets)}")
        for district, name in self.districts.items():
            if name not in self.sets:
                raise KeyError(f"rule sets: district {district!r} uses unknown rule set {name!r}")

    @classmethod
    def default_sets(cls, default: str = "normal") -> RuleSets:
        return cls({"normal": RuleSet(), "storm": storm_rules(), "likelihood": likelihood_rules()}, default=default)

    def switch(self, district: str | None, name: str) -> None:
        """Put ``district`` (or, with ``None``, the whole territory's default) on rule set ``name``."""
        if name not in self.sets:
            raise KeyError(f"unknown rule set {name!r}; known: {', '.join(sorted(self.sets))}")
        if district is None:
            self.default = name
        else:
            self.districts[district] = name

    def for_district(self, feeder: str | None, substation: str | None) -> RuleSet:
        """The rule set of a feeder, else of its substation, else the default."""
        if not self.districts:
            return self.sets[self.default]
        name = self.districts.get(feeder or "") or self.districts.get(substation or "") or self.default
        return self.sets[name]
