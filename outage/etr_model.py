"""A learned ETR: an interval with a stated probability, at every stage of an outage, from restored events.

Stages (what is known when the estimate is made):

``storm``    the event is known but not yet planned (damage still being assessed): wait = the open backlog's
             crew-minutes shared by the crews on shift, times a learned ratio, then the repair
``queued``   the event is in the dispatch plan, no crew dispatched: wait = the plan's ETA, times a learned ratio
``assigned`` a crew is driving to it: wait = the crew's ETA, times a learned ratio
``on_site``  the crew is there and has reported the cause: the repair's remaining time given how long it has
             already taken

Every interval is a quantile interval of ``remaining = wait + repair`` where both parts are empirical
distributions learned from outcomes, never a formula's guess: repair minutes (crew arrival to restoration) per
(device kind, cause), and per stage the ratio of the actual wait to the planned one. The two are combined by
summing their quantile grids (they are taken as independent). A group with few samples is topped up from the
next coarser group (kind and cause -> kind -> all), so a rare kind borrows from the rest until it has its own
(shrinkage). Before any outcome is seen, a stated prior stands in: the repair table of :mod:`outage.etr` and a
wait ratio between 0.5 and 2; it is outweighed as soon as real samples arrive.

History: :meth:`EtrModel.learn_history` reads an events CSV (the ``events`` kind of :mod:`outage.history`, as
``oms report event`` reads) with two optional extra columns, ``device_kind`` and ``on_site`` (crew arrival);
repair samples are ``restored - on_site`` (or ``crew_hours`` when there is no ``on_site``).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from outage.etr import CAUSE_FACTOR, REPAIR_MINUTES, Etr

STAGES = ("storm", "queued", "assigned", "on_site")
PROBABILITY = 0.8
#: samples a group needs to stand on its own; a group with fewer is topped up from its coarser group
N_MIN = 30
#: most recent samples kept per group (a storm's conditions drift; old storms should not dominate)
KEEP = 600
#: quantile levels used to combine two distributions (sum of grids); 99 levels: error well under a minute
_LEVELS = np.linspace(0.005, 0.995, 99)
#: wait offset (min) so a planned wait of zero still has a ratio
_WAIT_PAD = 15.0
ANY = "*"
_PRIOR_RATIO = np.array([0.5, 0.7, 0.85, 1.0, 1.15, 1.4, 2.0])
_ROUND = timedelta(minutes=15)


def _round(t: datetime) -> datetime:
    """Nearest quarter hour (both ends: rounding outwards would add coverage nobody asked for)."""
    epoch = datetime(2000, 1, 1, tzinfo=t.tzinfo)
    return epoch + round((t - epoch) / _ROUND) * _ROUND


def _prior_repair(kind: str, cause: str) -> np.ndarray:
    """Cold start only: today's table (low..high, cause factor) spread to a long right tail."""
    low, high = REPAIR_MINUTES.get(kind, (60, 180))
    f = CAUSE_FACTOR.get(cause, 1.2) if cause != ANY else 1.2
    return np.linspace(low * f, 2 * high * f, 9)


@dataclass
class EtrModel:
    """Empirical quantile model of repair minutes and wait ratios, learned online (see the module docstring)."""

    probability: float = PROBABILITY
    repair: dict[tuple[str, str], deque] = field(default_factory=dict)
    ratio: dict[str, deque] = field(default_factory=dict)
    restored: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.probability < 1.0:
            raise ValueError(f"EtrModel.probability must be in (0, 1), got {self.probability}")

    # -------------------------------------------------------------------------------------------- learning
    def learn_repair(self, kind: str, cause: str, minutes: float) -> None:
        """One restored event: ``minutes`` from crew arrival to restoration, of a ``kind`` with ``cause``."""
        if not minutes >= 0:
            raise ValueError(f"repair minutes must be >= 0, got {minutes}")
        cause = cause or ANY
        for key in {(kind, cause), (kind, ANY), (ANY, cause), (ANY, ANY)}:
            self.repair.setdefault(key, deque(maxlen=KEEP)).append(float(minutes))
        self.restored += 1

    def learn_wait(self, stage: str, planned_minutes: float, actual_minutes: float) -> None:
        """At ``stage`` the wait for a crew was planned as ``planned_minutes``; it took ``actual_minutes``."""
        if stage not in STAGES[:3]:
            raise ValueError(f"learn_wait: stage must be one of {STAGES[:3]}, got {stage!r}")
        r = (max(actual_minutes, 0.0) + _WAIT_PAD) / (max(planned_minutes, 0.0) + _WAIT_PAD)
        self.ratio.setdefault(stage, deque(maxlen=KEEP)).append(r)

    def learn_history(self, path: str | os.PathLike, columns: dict[str, str] | None = None,
                      tz: str = "UTC") -> int:
        """Repair samples from an events CSV (see the module docstring); returns how many were learned."""
        import pandas as pd

        from outage.history import conform_history

        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        table = conform_history(raw, "events", columns, tz, source=str(path))
        lower = {str(c).strip().lower(): c for c in raw.columns}
        kinds = raw[lower["device_kind"]].astype(str).str.strip() if "device_kind" in lower else None
        on_site = (pd.to_datetime(raw[lower["on_site"]].replace("", None), utc=True, format="ISO8601")
                   if "on_site" in lower else None)
        n = 0
        for i, row in table.iterrows():
            if pd.isna(row["restored"]):
                continue
            kind = kinds.iloc[i] if kinds is not None and kinds.iloc[i] else ANY
            if on_site is not None and not pd.isna(on_site.iloc[i]):
                minutes = (row["restored"] - on_site.iloc[i]).total_seconds() / 60.0
            elif row["crew_hours"] > 0:
                minutes = 60.0 * float(row["crew_hours"])
            else:
                continue
            if minutes >= 0:
                self.learn_repair(kind, row["cause"], minutes)
                n += 1
        return n

    # -------------------------------------------------------------------------------------------- distributions
    def repair_samples(self, kind: str, cause: str = "", elapsed: float = 0.0) -> np.ndarray:
        """Repair minutes still to go after ``elapsed`` on site, for ``kind`` and ``cause`` ("" = not known),
        shrunk towards the coarser groups while the finer one has fewer than :data:`N_MIN` samples."""
        cause = cause or ANY
        chain = [(kind, cause), (kind, ANY), (ANY, cause), (ANY, ANY)]
        seen: list[tuple[str, str]] = []
        for key in chain:  # finest first, no repeats
            if key not in seen:
                seen.append(key)
        out = np.empty(0)
        for key in seen:
            s = np.asarray(self.repair.get(key, ()), dtype=float)
            s = s[s > elapsed] - elapsed
            if len(out) >= N_MIN:
                break
            if len(out) == 0:
                out = s
            elif len(s):  # top up with the coarser group's quantiles, as many as are missing
                need = N_MIN - len(out)
                out = np.concatenate([out, np.quantile(s, (np.arange(need) + 0.5) / need)])
        if len(out) < N_MIN // 3:
            prior = _prior_repair(kind, cause)
            prior = prior[prior > elapsed] - elapsed
            if not len(prior):  # already past the whole prior: the tail beyond it, by its own spread
                prior = np.array([15.0, 30.0, 60.0, 120.0])
            out = np.concatenate([out, prior])
        return out

    def expected_repair(self, kind: str, cause: str = "") -> float:
        """Mean repair minutes (what a planner should budget for a job)."""
        return float(np.mean(self.repair_samples(kind, cause)))

    def ratio_samples(self, stage: str) -> np.ndarray:
        s = np.asarray(self.ratio.get(stage, ()), dtype=float)
        if len(s) >= N_MIN:
            return s
        return np.concatenate([s, _PRIOR_RATIO]) if len(s) < N_MIN // 3 else s

    def remaining(self, stage: str, wait_minutes: float, kind: str, cause: str = "",
                  elapsed: float = 0.0) -> tuple[float, float, float]:
        """(low, median, high) minutes to restoration at ``stage``: the shortest :attr:`probability` interval."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        rep = np.quantile(self.repair_samples(kind, cause, elapsed), _LEVELS)
        if stage == "on_site":
            total = rep
        else:
            ratio = np.quantile(self.ratio_samples(stage), _LEVELS)
            wait = np.maximum(ratio * (max(wait_minutes, 0.0) + _WAIT_PAD) - _WAIT_PAD, 0.0)
            total = (wait[:, None] + rep[None, :]).ravel()
        # the shortest interval holding ``probability`` (repair times are right-skewed: the central one would sit
        # late, with a middle far from where most restorations fall)
        starts = np.linspace(0.0, 1.0 - self.probability, 21)
        lows = np.quantile(total, starts)
        highs = np.quantile(total, starts + self.probability)
        best = int(np.argmin(highs - lows))
        return float(lows[best]), float(np.median(total)), float(highs[best])

    # -------------------------------------------------------------------------------------------- estimates
    def estimate(self, now: datetime, stage: str, kind: str, *, wait_minutes: float = 0.0, cause: str = "",
                 elapsed: float = 0.0) -> Etr:
        """The ETR at ``stage`` (see the module docstring for what ``wait_minutes`` means at each)."""
        low, _, high = self.remaining(stage, wait_minutes, kind, cause, elapsed)
        earliest = max(_round(now + timedelta(minutes=low)), _round(now))
        latest = max(_round(now + timedelta(minutes=high)), earliest + _ROUND)
        confidence = "high" if stage in ("assigned", "on_site") else "low"
        basis = {"storm": f"storm backlog: {wait_minutes:.0f} crew-min per crew ahead + {kind} repair",
                 "queued": f"plan: crew in {wait_minutes:.0f} min + {kind} repair",
                 "assigned": f"crew ETA {wait_minutes:.0f} min + {kind} repair",
                 "on_site": f"crew on site {elapsed:.0f} min, {kind} {cause or 'cause unknown'} repair"}[stage]
        return Etr(earliest, latest, confidence, stage,
                   f"{basis} ({self.probability:.0%} of similar outages were restored within this range)",
                   probability=self.probability)

    def storm_wait(self, backlog_minutes: float, crews: int) -> float:
        """The storm stage's planned wait: the backlog's crew-minutes shared by the crews."""
        if crews < 1:
            raise ValueError(f"crews must be >= 1, got {crews}")
        return backlog_minutes / crews
