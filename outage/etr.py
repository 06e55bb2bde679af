"""Estimated restoration times: a range with a confidence, never in the past, not churned, never overriding a crew.

Before a crew is assigned the estimate comes from the storm's backlog and crew capacity (a storm-wide or area ETR
while damage is still being assessed); once assigned, from the ETA that dispatch computes (passed in as minutes:
this package does not import dispatch) plus a repair estimate by device kind and cause. Ranges are rounded to
15 minutes: an ETR of "14:07" claims a precision nobody has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

#: typical repair minutes (low, high) per device kind on a blue-sky day
REPAIR_MINUTES = {
    "service": (45, 120), "transformer": (90, 240), "fuse": (45, 150), "sectionalizer": (60, 180),
    "recloser": (90, 240), "breaker": (120, 360), "substation": (240, 720), "switch": (60, 180),
}
#: multiplier on repair time by cause
CAUSE_FACTOR = {"": 1.0, "equipment": 1.0, "tree": 1.5, "wires_down": 1.5, "vehicle": 2.0, "lightning": 1.2,
                "storm": 1.5}
ROUND = timedelta(minutes=15)
MIN_LEAD = timedelta(minutes=15)  # an estimate is never sooner than this from now
CHURN_THRESHOLD = timedelta(minutes=30)  # smaller moves of the range's middle are not published


@dataclass(frozen=True, slots=True)
class Etr:
    earliest: datetime
    latest: datetime
    confidence: str  # "high" or "low"
    source: str  # "crew", "assigned", "storm", "estimate"; the learned model: its stage (outage.etr_model)
    basis: str
    #: the stated chance that restoration falls in [earliest, latest] (learned model); None: a label only
    probability: float | None = None

    @property
    def middle(self) -> datetime:
        return self.earliest + (self.latest - self.earliest) / 2

    def overdue(self, now: datetime) -> bool:
        return self.latest < now


def etr_to_dict(e: Etr) -> dict:
    """The journal form of an ETR (JSON: ISO times)."""
    return {"earliest": e.earliest.isoformat(), "latest": e.latest.isoformat(), "confidence": e.confidence,
            "source": e.source, "basis": e.basis, "probability": e.probability}


def etr_from_dict(d: dict) -> Etr:
    """An ETR from :func:`etr_to_dict`'s form."""
    return Etr(datetime.fromisoformat(d["earliest"]), datetime.fromisoformat(d["latest"]), d["confidence"],
               d["source"], d.get("basis", ""), d.get("probability"))


def _round_up(t: datetime) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=t.tzinfo)
    steps = math.ceil((t - epoch) / ROUND)
    return epoch + steps * ROUND


def _range(now: datetime, low: timedelta, high: timedelta, confidence: str, source: str, basis: str) -> Etr:
    earliest = _round_up(max(now + low, now + MIN_LEAD))
    latest = _round_up(max(now + high, earliest + ROUND))
    return Etr(earliest, latest, confidence, source, basis)


def repair_minutes(device_kind: str, cause: str = "") -> tuple[float, float]:
    try:
        low, high = REPAIR_MINUTES[device_kind]
    except KeyError:
        raise KeyError(f"ETR: no repair estimate for device kind {device_kind!r}") from None
    factor = CAUSE_FACTOR.get(cause, 1.2)  # an unknown cause widens the estimate a little
    return low * factor, high * factor


def assigned_etr(now: datetime, eta_minutes: float, device_kind: str, cause: str = "") -> Etr:
    """A crew is assigned and dispatch says it arrives in ``eta_minutes``: ETA + repair range, high confidence."""
    if eta_minutes < 0:
        raise ValueError(f"ETR: eta_minutes must be >= 0, got {eta_minutes}")
    low, high = repair_minutes(device_kind, cause)
    eta = timedelta(minutes=eta_minutes)
    return _range(now, eta + timedelta(minutes=low), eta + timedelta(minutes=high), "high", "assigned",
                  f"crew ETA {eta_minutes:.0f} min + {device_kind} repair {low:.0f}-{high:.0f} min")


def backlog_etr(now: datetime, device_kind: str, backlog_repair_minutes: float, crews: int, cause: str = "",
                travel_minutes: float = 30.0) -> Etr:
    """No crew yet: wait for the backlog ahead to be worked off by ``crews``, then travel and repair. Low
    confidence (damage is still being assessed)."""
    if crews < 1:
        raise ValueError(f"ETR: crews must be >= 1, got {crews}")
    if backlog_repair_minutes < 0:
        raise ValueError(f"ETR: backlog_repair_minutes must be >= 0, got {backlog_repair_minutes}")
    wait = backlog_repair_minutes / crews
    low, high = repair_minutes(device_kind, cause)
    return _range(now, timedelta(minutes=wait * 0.75 + travel_minutes + low),
                  timedelta(minutes=wait * 1.25 + travel_minutes + high), "low", "storm",
                  f"{backlog_repair_minutes:.0f} repair-min backlog / {crews} crews + travel + {device_kind} repair")


def storm_wide_etr(now: datetime, backlog_repair_minutes: float, crews: int, travel_minutes: float = 30.0) -> Etr:
    """Latest time nearly all customers of an area are restored: the whole backlog shared by the crews."""
    if crews < 1:
        raise ValueError(f"ETR: crews must be >= 1, got {crews}")
    per_crew = backlog_repair_minutes / crews
    return _range(now, timedelta(minutes=per_crew + travel_minutes),
                  timedelta(minutes=1.5 * per_crew + 2 * travel_minutes), "low", "storm",
                  f"area backlog {backlog_repair_minutes:.0f} repair-min over {crews} crews")


def crew_etr(now: datetime, at: datetime) -> Etr:
    """An ETR entered by a crew on site: kept exactly as entered (the estimator never overwrites it)."""
    if at < now:
        raise ValueError(f"ETR: crew-entered time {at.isoformat()} is in the past (now {now.isoformat()})")
    return Etr(at, at, "high", "crew", "entered by crew")


def update(previous: Etr | None, proposed: Etr, now: datetime, threshold: timedelta = CHURN_THRESHOLD) -> Etr:
    """The previous no-churn rule, kept only as the benchmark's "today" baseline (``bench/etr.py``,
    :mod:`api.simulation.restoration`): a crew's ETR is never replaced by an estimate; a change of the middle smaller
    than ``threshold`` keeps the previous range unless the previous one has become past. What is published is
    decided by :func:`outage.etr_policy.decide` (the engine, and through it notifications, maps and the console)."""
    if previous is None:
        return proposed
    if previous.source == "crew" and proposed.source != "crew":
        return previous
    if previous.overdue(now) or previous.earliest < now:
        return proposed
    if previous.confidence == proposed.confidence and abs(proposed.middle - previous.middle) < threshold:
        return previous
    return proposed
