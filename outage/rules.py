"""Roll-up rules: when does evidence beneath a device mean that the device itself operated?

A :class:`DeviceRule` per device kind says how much evidence predicts that kind of device:

* ``min_calls``    distinct service points with out-evidence beneath it (a floor, always required);
* ``min_children`` distinct children directly beneath it with out-evidence (child devices, or for a transformer
                   its service points, where a caller saying "my neighbours are out too" counts as one more);
* ``min_child_share`` share of its children that must count for the children test to pass;
* ``children``     which children count: ``"evidence"`` (any out-evidence below them) or ``"predicted"`` (their own
                   rule passed) — backbone devices count predicted children so that stray single calls on other
                   laterals do not lift a fuse outage to the recloser;
* ``min_share``    share of its downstream customers with out-evidence;
* ``both_must_pass`` whether children AND share must pass (else either one is enough).

Rules are grouped in named :class:`RuleSet` s (``normal``, ``storm``), and :class:`RuleSets` picks one per
district (a feeder's breaker id or a substation id), so a storm-hit area can run storm rules while the rest of the
territory stays on normal rules — as Oracle NMS and ArcFM Responder do.
"""

from __future__ import annotations

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
        "transformer": DeviceRule(min_calls=1, min_children=2, min_share=0.5),
        "fuse": DeviceRule(min_calls=2, min_children=2, min_share=0.5, min_child_share=0.3),
        "sectionalizer": DeviceRule(min_calls=2, min_children=2, min_share=0.5, min_child_share=0.3),
        "recloser": DeviceRule(min_calls=3, min_children=2, min_share=0.5, min_child_share=0.3,
                               children="predicted"),
        "breaker": DeviceRule(min_calls=3, min_children=2, min_share=0.5, min_child_share=0.3,
                              children="predicted"),
        "substation": DeviceRule(min_calls=5, min_children=2, min_share=0.6, min_child_share=0.5,
                                 children="predicted"),
    }


@dataclass(frozen=True)
class RuleSet:
    """One named set of roll-up rules and timers."""

    name: str = "normal"
    devices: dict[str, DeviceRule] = field(default_factory=_default_device_rules)
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
    #: AMI time separation: an event whose first last gasp is this much older than the last gasp that lifts a
    #: device above it is a separate, earlier outage (kept, not merged); meters time-stamp when power went
    ami_separation: timedelta = timedelta(minutes=10)
    #: power-on evidence (a restore message, a ping answer, a "my power is on" call) blocks roll-up this long
    power_on_ttl: timedelta = timedelta(minutes=30)
    #: a "still out" report this long after its event was restored makes a nested (backdated) event
    nested_window: timedelta = timedelta(hours=24)

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
    return RuleSet(name="storm", devices=devices, probable_after=timedelta(minutes=20),
                   ami_bellwether_only=True)


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
    def default_sets(cls) -> RuleSets:
        return cls({"normal": RuleSet(), "storm": storm_rules()})

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
