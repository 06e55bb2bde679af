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
#: most recent labelled samples pooled for the shape of the repair distribution
KEEP_POOLED = 3000
#: prior weight (samples) of the coarser group's log-location when a group's own is estimated (shrinkage)
SHRINK = 10.0
#: quantile levels used to combine two distributions (sum of grids); 99 levels: error well under a minute
_LEVELS = np.linspace(0.005, 0.995, 99)
#: wait offset (min) so a planned wait of zero still has a ratio
_WAIT_PAD = 15.0
ANY = "*"
_PRIOR_RATIO = np.array([0.5, 0.7, 0.85, 1.0, 1.15, 1.4, 2.0])
_ROUND = timedelta(minutes=15)


def _shortest(total: np.ndarray, probability: float) -> tuple[float, float]:
    """The shortest interval holding ``probability`` of ``total`` (repair times are right-skewed: the central one
    would sit late, with a middle far from where most restorations fall)."""
    starts = np.linspace(0.0, 1.0 - probability, 21)
    lows = np.quantile(total, starts)
    highs = np.quantile(total, starts + probability)
    best = int(np.argmin(highs - lows))
    return float(lows[best]), float(highs[best])


def _rounded(now: datetime, low: float, high: float, total: np.ndarray,
             probability: float) -> tuple[datetime, datetime]:
    """Quarter-hour ends that still hold ``probability``: of each end rounded down or up, the narrowest pair whose
    mass under ``total`` is at least ``probability`` (nearest rounding of a short range loses coverage: a 45-min
    range rounded in at both ends holds a third less), else both outwards."""
    floor_now = _floor(now)
    best = None
    for a in (_floor(now + timedelta(minutes=low)), _floor(now + timedelta(minutes=low)) + _ROUND):
        for b in (_floor(now + timedelta(minutes=high)), _floor(now + timedelta(minutes=high)) + _ROUND):
            a2 = max(a, floor_now)
            b2 = max(b, a2 + _ROUND)
            lo_m, hi_m = (a2 - now).total_seconds() / 60.0, (b2 - now).total_seconds() / 60.0
            mass = float(np.mean((total >= lo_m) & (total <= hi_m)))
            if mass >= probability - 0.005 and (best is None or b2 - a2 < best[1] - best[0]):
                best = (a2, b2)
    if best is None:
        a2 = max(_floor(now + timedelta(minutes=low)), floor_now)
        best = (a2, max(_floor(now + timedelta(minutes=high)) + _ROUND, a2 + _ROUND))
    return best


def _floor(t: datetime) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=t.tzinfo)
    return epoch + ((t - epoch) // _ROUND) * _ROUND


def _table_log(kind: str, cause: str) -> float:
    """Log of today's table's typical repair (geometric middle of its range) x cause factor: a prior's shape."""
    low, high = REPAIR_MINUTES.get(kind, (60, 180)) if kind != ANY else (60, 180)
    f = CAUSE_FACTOR.get(cause, 1.2) if cause != ANY else 1.0
    return 0.5 * (np.log(low) + np.log(high)) + float(np.log(f))


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
    #: every repair sample with its labels (kind, cause, minutes), for the pooled shape (see :meth:`repair_shape`)
    labelled: deque = field(default_factory=lambda: deque(maxlen=KEEP_POOLED))
    _fit: tuple | None = field(default=None, repr=False, compare=False)
    _prior: tuple = field(default=(0.0, 0.0, 0.0), repr=False, compare=False)
    #: totals already computed since the last sample (a service asks the same question for many events at once)
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

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
        self.labelled.append((kind, cause, float(minutes)))
        self.restored += 1
        self._memo.clear()

    def learn_wait(self, stage: str, planned_minutes: float, actual_minutes: float) -> None:
        """At ``stage`` the wait for a crew was planned as ``planned_minutes``; it took ``actual_minutes``."""
        if stage not in STAGES[:3]:
            raise ValueError(f"learn_wait: stage must be one of {STAGES[:3]}, got {stage!r}")
        r = (max(actual_minutes, 0.0) + _WAIT_PAD) / (max(planned_minutes, 0.0) + _WAIT_PAD)
        self.ratio.setdefault(stage, deque(maxlen=KEEP)).append(r)
        self._memo.clear()

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

    def _fitted(self) -> tuple:
        """Log-locations per group (shrunk: (kind, cause) -> kind x cause effect -> all) and the pooled log
        residuals, with the cause known and not; refitted when a sample has arrived since the last fit."""
        if self._fit is not None and self._fit[0] == self.restored:
            return self._fit
        kinds = np.array([k for k, _, _ in self.labelled], dtype=object)
        causes = np.array([c for _, c, _ in self.labelled], dtype=object)
        logs = np.log(np.maximum(np.array([m for _, _, m in self.labelled], dtype=float), 1.0))
        mu_all = float(logs.mean())

        def shrunk(mask: np.ndarray, prior: float) -> float:
            n = int(mask.sum())
            return (float(logs[mask].sum()) + SHRINK * prior) / (n + SHRINK)

        # a rare kind (cause) starts from today's table's relative scale, around the learned overall level
        tk = {k: _table_log(k, ANY) for k in set(kinds.tolist())}
        tc = {c: _table_log(ANY, c) for c in set(causes.tolist())}
        tk_mean = float(np.mean([tk[k] for k in kinds]))
        tc_mean = float(np.mean([tc[c] for c in causes]))
        mu_kind = {k: shrunk(kinds == k, mu_all + tk[k] - tk_mean) for k in tk}
        mu_cause = {c: shrunk(causes == c, mu_all + tc[c] - tc_mean) for c in tc}
        self._prior = (mu_all, tk_mean, tc_mean)
        mu_kc = {}
        for k, c in set(zip(kinds.tolist(), causes.tolist(), strict=True)):
            prior = mu_kind[k] + mu_cause[c] - mu_all
            mu_kc[k, c] = shrunk((kinds == k) & (causes == c), prior)
        # a residual from a location fitted to its own sample is too small by 1/(n + SHRINK) of the variance, and a
        # new outcome misses the location's own error by as much: widen both (see repair_shape)
        n_kc = {key: int(((kinds == key[0]) & (causes == key[1])).sum()) for key in mu_kc}
        n_k = {k: int((kinds == k).sum()) for k in mu_kind}
        known = np.array([(lg - mu_kc[k, c]) / np.sqrt(1.0 - 1.0 / (n_kc[k, c] + SHRINK))
                          for k, c, lg in zip(kinds, causes, logs, strict=True)])
        unknown = np.array([(lg - mu_kind[k]) / np.sqrt(1.0 - 1.0 / (n_k[k] + SHRINK))
                            for k, lg in zip(kinds, logs, strict=True)])
        self._fit = (self.restored, mu_all, mu_kind, mu_cause, mu_kc, known, unknown, n_k, n_kc)
        return self._fit

    def repair_shape(self, kind: str, cause: str = "", elapsed: float = 0.0) -> np.ndarray:
        """Repair minutes still to go after ``elapsed`` on site, as a large sample: the group's (shrunk) log-location
        plus every group's residuals. A group's own quantiles from a few dozen samples under-cover (both tails are
        thin in a small sample of a heavy-tailed time); the shape is shared, the location is the group's. Given
        ``elapsed``, the repair is known to be longer than it: the samples longer, minus it. Falls back to
        :meth:`repair_samples` until :data:`N_MIN` samples have been learned."""
        if len(self.labelled) < N_MIN:
            return self.repair_samples(kind, cause, elapsed)
        _, mu_all, mu_kind, mu_cause, mu_kc, known, unknown, n_k, n_kc = self._fitted()
        cause = cause or ANY
        _, tk_mean, tc_mean = self._prior
        mk = mu_kind.get(kind, mu_all + _table_log(kind, ANY) - tk_mean)
        if cause == ANY:
            mu, res, n = mk, unknown, n_k.get(kind, 0)
        else:
            mc = mu_cause.get(cause, mu_all + _table_log(ANY, cause) - tc_mean)
            mu, res, n = mu_kc.get((kind, cause), mk + mc - mu_all), known, n_kc.get((kind, cause), 0)
        s = np.exp(mu + res * np.sqrt(1.0 + 1.0 / (n + SHRINK)))
        left = s[s > elapsed] - elapsed
        if len(left) < N_MIN:  # past almost every sample: the longest ones' excess, at least the tail's
            left = np.sort(s)[-N_MIN:] - min(elapsed, float(np.sort(s)[-N_MIN]))
            left = np.maximum(left, 15.0)
        return left

    def expected_repair(self, kind: str, cause: str = "") -> float:
        """Mean repair minutes (what a planner should budget for a job)."""
        return float(np.mean(self.repair_samples(kind, cause)))

    def ratio_samples(self, stage: str) -> np.ndarray:
        s = np.asarray(self.ratio.get(stage, ()), dtype=float)
        if len(s) >= N_MIN:
            return s
        return np.concatenate([s, _PRIOR_RATIO]) if len(s) < N_MIN // 3 else s

    def total(self, stage: str, wait_minutes: float, kind: str, cause: str = "", elapsed: float = 0.0) -> np.ndarray:
        """A sample of the minutes to restoration at ``stage`` (wait + repair, independent: sum of quantile grids)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        key = (stage, float(wait_minutes), kind, cause, float(elapsed))
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) > 1024:
                self._memo.clear()
            hit = self._memo[key] = self._total(stage, wait_minutes, kind, cause, elapsed)
        return hit

    def _total(self, stage: str, wait_minutes: float, kind: str, cause: str, elapsed: float) -> np.ndarray:
        rep = np.quantile(self.repair_shape(kind, cause, elapsed), _LEVELS)
        if stage == "on_site":
            return rep
        ratio = np.quantile(self.ratio_samples(stage), _LEVELS)
        wait = np.maximum(ratio * (max(wait_minutes, 0.0) + _WAIT_PAD) - _WAIT_PAD, 0.0)
        return (wait[:, None] + rep[None, :]).ravel()

    def remaining(self, stage: str, wait_minutes: float, kind: str, cause: str = "",
                  elapsed: float = 0.0) -> tuple[float, float, float]:
        """(low, median, high) minutes to restoration at ``stage``: the shortest :attr:`probability` interval."""
        total = self.total(stage, wait_minutes, kind, cause, elapsed)
        low, high = _shortest(total, self.probability)
        return low, float(np.median(total)), high

    def holds(self, etr: Etr, now: datetime, stage: str, kind: str, *, wait_minutes: float = 0.0, cause: str = "",
              elapsed: float = 0.0) -> float:
        """The probability that restoration falls in ``etr``'s range, under the estimate at ``stage`` made at ``now``
        (what :func:`outage.etr_policy.decide` needs to keep a promise that still holds)."""
        total = self.total(stage, wait_minutes, kind, cause, elapsed)
        a = (etr.earliest - now).total_seconds() / 60.0
        b = (etr.latest - now).total_seconds() / 60.0
        return float(np.mean((total >= a) & (total <= b)))

    # -------------------------------------------------------------------------------------------- estimates
    def estimate(self, now: datetime, stage: str, kind: str, *, wait_minutes: float = 0.0, cause: str = "",
                 elapsed: float = 0.0, probability: float | None = None) -> Etr:
        """The ETR at ``stage`` (see the module docstring for what ``wait_minutes`` means at each), holding
        ``probability`` (default :attr:`probability`; the first range published for an event is a wider one,
        :data:`outage.etr_policy.FIRST`, so that it holds as the plan firms up)."""
        p = self.probability if probability is None else probability
        if not 0.0 < p < 1.0:
            raise ValueError(f"probability must be in (0, 1), got {p}")
        total = self.total(stage, wait_minutes, kind, cause, elapsed)
        low, high = _shortest(total, p)
        earliest, latest = _rounded(now, low, high, total, p)
        confidence = "high" if stage in ("assigned", "on_site") else "low"
        basis = {"storm": f"storm backlog: {wait_minutes:.0f} crew-min per crew ahead + {kind} repair",
                 "queued": f"plan: crew in {wait_minutes:.0f} min + {kind} repair",
                 "assigned": f"crew ETA {wait_minutes:.0f} min + {kind} repair",
                 "on_site": f"crew on site {elapsed:.0f} min, {kind} {cause or 'cause unknown'} repair"}[stage]
        return Etr(earliest, latest, confidence, stage,
                   f"{basis} ({p:.0%} of similar outages were restored within this range)", probability=p)

    def storm_wait(self, backlog_minutes: float, crews: int) -> float:
        """The storm stage's planned wait: the backlog's crew-minutes shared by the crews."""
        if crews < 1:
            raise ValueError(f"crews must be >= 1, got {crews}")
        return backlog_minutes / crews
