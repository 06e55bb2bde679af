"""What a simulated storm is: its settings, its faults and the messages they send, and the fault mix it draws from.

The storm simulator (:mod:`outage.simulate`) makes storms of this shape and scores engines on them; the ceiling
(:mod:`outage.ceiling`) weighs the same storms under the same model to say how well any engine could do from calls
alone. Both read the model here, so neither has to import the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from outage.events import EventClass
from outage.grid import Grid
from outage.meters import SimulatedHeadEnd
from outage.reports import AmiEvent, Report, ScadaEvent

STORM_START = datetime(2026, 6, 1, 18, 0, tzinfo=UTC)
# customer-side callers who answer "no" to "are your neighbours out?" (others: nothing)
CUSTOMER_SIDE_SAYS_NO = 0.5
#: relative failure rate per device of each kind in a storm: most storm faults blow a lateral fuse (or open a
#: sectionalizer) or take down a service drop; fewer lock out a recloser or breaker; a substation fails rarely (its
#: bus is telemetered, so it arrives as a SCADA lockout). Multiplied by the number of devices of each kind present
#: (large and substation transformers are transformers). A fault at a switch or regulator (``CLEARED_ABOVE``) is
#: cleared by the protective device above it: it adds to that device's faults.
DEFAULT_FAULT_MIX = {"service": 0.1, "transformer": 0.3, "fuse": 3.0, "sectionalizer": 3.0, "recloser": 3.0,
                     "breaker": 2.0, "switch": 0.1, "regulator": 0.1, "substation": 0.5}
#: kinds that do not interrupt on their own: a fault there operates the nearest protective device above
CLEARED_ABOVE = ("switch", "regulator")


@dataclass(frozen=True)
class StormConfig:
    """What a storm looks like. ``faults`` is the number of independent faults."""

    faults: int = 12
    fault_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAULT_MIX))  # per device
    duration: timedelta = timedelta(hours=3)
    call_rate: float = 0.3  # share of out service points whose customer calls
    call_delay_median_min: float = 12.0  # lognormal call delay after the fault
    call_delay_sigma: float = 1.0
    neighbours_answer_rate: float = 0.6  # callers who say whether neighbours are out (Grid.neighbourhood)
    wrong_answer_rate: float = 0.1
    unlocated_rate: float = 0.05  # calls with coordinates only (no account)
    mislocated_rate: float = 0.02  # calls placed on a neighbouring service point
    false_call_rate: float = 0.03  # calls from customers not out, per real call
    duplicate_call_rate: float = 0.1  # callers who call again
    nested_rate: float = 0.15  # chance that a fault gets a second fault nested below it
    wires_down_rate: float = 0.2
    wires_mention_rate: float = 0.3  # callers out behind downed wires who say so
    ami: bool = True
    # share of the meters that are AMI (utilities roll AMI out area by area): whole feeders, then part of one
    ami_feeders: float = 1.0
    ami_loss: float = 0.15
    ami_duplicate_rate: float = 0.1
    ami_delay_s: float = 20.0  # mean head-end latency after the meter's declaration
    momentary_rate: float = 0.005  # share of all meters that blink (gasp + restore within seconds)
    ping_failure_rate: float = 0.05
    # telemetered device kinds: their faults arrive as lockouts
    scada_kinds: tuple[str, ...] = ("breaker", "substation")

    def __post_init__(self) -> None:
        if not 0.0 <= self.call_rate <= 1.0:
            raise ValueError(f"StormConfig.call_rate must be in [0, 1], got {self.call_rate}")
        if self.faults < 1:
            raise ValueError(f"StormConfig.faults must be >= 1, got {self.faults}")
        if not 0.0 < self.ami_feeders <= 1.0:
            raise ValueError(f"StormConfig.ami_feeders must be in (0, 1], got {self.ami_feeders}")


@dataclass(frozen=True)
class Fault:
    key: str  # device id, or sp:<id> for a service drop
    kind: str
    start: datetime
    wires_down: bool
    nested_in: str | None  # key of the fault above it, if nested


@dataclass
class Storm:
    faults: list[Fault]
    reports: list[Report]
    ami: list[AmiEvent]
    cause: dict[int, str]  # service point index -> key of the fault that took it out (the highest one)
    reporting: set[str]  # fault keys that produced at least one message
    first_message: dict[str, datetime]
    head_end: SimulatedHeadEnd
    false_reports: int
    scada: list[ScadaEvent] = field(default_factory=list)
    # device ids with SCADA (known closed unless tripped)
    telemetered: list[str] = field(default_factory=list)
    # AMI meter per service point ("" where none), when only some of the meters are AMI
    meters: list[str] | None = None
    # device keys (or sp:<id>) that cut off exactly the customers of a faulted device, and are not themselves
    # faulted or their fault sent nothing -> that fault's key: no evidence can tell them apart, so scoring counts either
    alias: dict[str, str] = field(default_factory=dict)
    # fault key -> the class its event should have (single customer, feeder, community)
    truth_class: dict[str, EventClass] = field(default_factory=dict)

    def fault_of(self, key: str) -> str | None:
        """The fault an event on device ``key`` (or ``sp:<id>``) finds: a fault that cuts off exactly the same
        customers (``alias``: when the device has none of its own, or its own, nested in that one, sent nothing),
        else its own fault, else None."""
        return self.alias.get(key, key if key in self.truth_class else None)

    def messages(self) -> list[tuple[datetime, int, object]]:
        """Reports, AMI and SCADA messages in arrival order."""
        msgs = (
            [(r.time, 0, r) for r in self.reports]
            + [(a.time, 1, a) for a in self.ami]
            + [(s.time, 2, s) for s in self.scada]
        )
        msgs.sort(key=lambda m: (m[0], m[1]))
        return msgs


def devices_by_kind(grid: Grid) -> dict[str, list[int]]:
    """Devices with customers behind them (the ones that can fail in a storm), by kind."""
    by_kind: dict[str, list[int]] = {}
    for d in range(grid.n_devices):
        if grid.hi[d] > grid.lo[d]:
            by_kind.setdefault(grid.kind[d], []).append(d)
    return by_kind


def kind_weights(grid: Grid, fault_mix: dict[str, float], by_kind: dict[str, list[int]]) -> dict[str, float]:
    """Each kind's share of a storm's faults, unnormalized: its per-device weight in ``fault_mix`` times how many
    there are (service drops: one per service point)."""
    return {
        k: w * (len(grid.sp_ids) if k == "service" else len(by_kind.get(k, ())))
        for k, w in fault_mix.items()
        if k == "service" or by_kind.get(k)
    }


def key_span(grid: Grid, key: str) -> tuple[int, int]:
    """The run of service-point positions ``[lo, hi)`` that a fault key (a device id, or ``sp:<id>`` for a service
    drop) cuts off: a device's customers are one contiguous run of the depth-first order."""
    if key.startswith("sp:"):
        pos = grid.sp_pos[grid.sp_index[key[3:]]]
        return pos, pos + 1
    d = grid.device_index[key]
    return int(grid.lo[d]), int(grid.hi[d])


def same_customers(grid: Grid, key: str) -> list[str]:
    """Keys of every device (``sp:<id>`` for a service drop) that cuts off exactly the customers ``key`` does,
    ``key`` included: a fuse feeding one transformer, a transformer with one service point and its drop."""
    g = grid
    if key.startswith("sp:"):
        k = g.sp_index[key[3:]]
        return [key] + [g.device_ids[d] for d in g.chain(k) if g.hi[d] - g.lo[d] == 1]
    d = g.device_index[key]
    out = [g.device_ids[m] for m in (g.equiv[d] or (d,))]
    if g.hi[d] - g.lo[d] == 1:
        out.append(f"sp:{g.sp_ids[int(g.sp_order[g.lo[d]])]}")
    return out


def truth_class(grid: Grid, key: str) -> EventClass:
    """The class an outage of ``key`` has: a service drop is single-customer; a device whose customers span
    several feeders, or that sits above the feeder heads, is community (:attr:`Grid.community`); else feeder."""
    if key.startswith("sp:"):
        return EventClass.SINGLE_CUSTOMER
    return EventClass.COMMUNITY if grid.community[grid.device_index[key]] else EventClass.FEEDER


def ami_meters(grid: Grid, share: float, seed: int) -> list[bool]:
    """Which service points have AMI when ``share`` of the meters do. Utilities roll meters out area by area:
    whole feeders in a seeded order while they fit in the share, then what is left of it as one area (a run of
    the depth-first order) of a feeder that did not fit, so a territory with one feeder is metered in part too."""
    g, rng = grid, np.random.default_rng(seed)
    n = len(g.sp_ids)
    left = int(round(share * n))
    feeder = [g.sp_feeder[int(k)] for k in g.sp_order.tolist()]  # by depth-first position
    runs: dict[str, list[int]] = {}  # feeder -> [first, end) positions (a feeder is a subtree: one run)
    for pos, f in enumerate(feeder):
        runs.setdefault(f, [pos, pos + 1])[1] = pos + 1
    chosen = np.zeros(n, dtype=bool)
    names = sorted(runs)
    rest = []
    for i in rng.permutation(len(names)).tolist():
        a, b = runs[names[i]]
        if b - a <= left:
            chosen[a:b], left = True, left - (b - a)
        else:
            rest.append((a, b))
    if left and rest:
        a, b = rest[0]
        start = a + int(rng.integers(0, b - a - left + 1))
        chosen[start : start + left] = True
    out = np.zeros(n, dtype=bool)
    out[g.sp_order] = chosen
    return out.tolist()
