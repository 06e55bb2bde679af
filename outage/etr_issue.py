"""Issuing ETRs: the stage of a planned job, the storm stage's wait, the estimate offered to the no-churn rule, and
what a restored event teaches the model. Pure domain code, and the one implementation two callers share:

* the live service (:mod:`api.service.etr`), which journals what :func:`propose` returns and applies it through
  :meth:`outage.engine.OutageEngine.update_etr` (an :class:`outage.etr_policy.Ledger`);
* the restoration simulator (:mod:`api.simulation.restoration`), which ``bench/etr.py`` scores: it keeps its own
  :class:`~outage.etr_policy.Ledger` and calls the same functions, so what the benchmark measures is what the
  service issues (a change here changes both).

Stages and waits are described in ``docs/etr.md`` and :mod:`outage.etr_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from outage.etr import Etr
from outage.etr_model import EtrModel
from outage.etr_policy import FIRST

#: minutes of driving budgeted per job not yet reached, in the storm stage's backlog
DRIVE_MINUTES = 20.0


def plan_stage(sequence: int, en_route: bool, crew_busy: bool = False) -> str:
    """The stage of a job in the dispatch plan: ``assigned`` once a crew is sent to it (on its way, or a free
    crew's next stop), ``queued`` while it waits in the plan (behind other stops, or behind the job its crew is
    still working on). Why not every next stop: the wait behind a job being worked holds that job's remaining
    repair, a heavy-tailed time, and a drive does not; one learned wait ratio for both covered neither (the
    benchmark's assigned stage fell to 0.71 on the sample's 3-day storm)."""
    return "assigned" if en_route or (sequence == 0 and not crew_busy) else "queued"


def storm_wait(model: EtrModel, work: Iterable[tuple[str, str, float | None]], crews: int) -> float:
    """The storm stage's planned wait: the open backlog's crew-minutes per crew on shift. ``work``: per open
    event, (device kind, reported cause or "", minutes a crew has been on site, or None when no crew is there):
    the expected repair plus a drive for an event not reached, the expected remaining repair for one being worked."""
    backlog = 0.0
    for kind, cause, on_site in work:
        if on_site is None:
            backlog += model.expected_repair(kind) + DRIVE_MINUTES
        else:
            backlog += float(model.repair_samples(kind, cause, max(0.0, on_site)).mean())
    return model.storm_wait(backlog, max(crews, 1))


def propose(
    model: EtrModel,
    now: datetime,
    stage: str,
    kind: str,
    *,
    current: Etr | None,
    news: Callable[[Etr, float | None], bool],
    wait: float = 0.0,
    cause: str = "",
    elapsed: float = 0.0,
    cache: dict | None = None,
) -> tuple[Etr, float | None] | None:
    """The estimate to offer the no-churn rule for an event at ``stage`` and the probability of its published range
    ``current`` under it (``holds``), or None when the offer would change nothing (``news(etr, holds)`` says
    whether it would: :meth:`outage.etr_policy.Ledger.news`) or a crew's ETR stands.

    The first range of an event states :data:`~outage.etr_policy.FIRST` (90%), later ones the model's 80%; a
    range that slips later is renewed at FIRST too. ``cause`` and ``elapsed`` (minutes on site) count on site
    only. ``cache``: estimates shared by the events of one pass (same stage, kind, wait: the same range)."""
    if current is not None and current.source == "crew":
        return None
    on_site = stage == "on_site"
    cause = cause if on_site else ""
    elapsed = max(0.0, elapsed) if on_site else 0.0
    wait = max(0.0, float(wait))
    first = current is None
    args = {"wait_minutes": wait, "cause": cause, "elapsed": elapsed}
    key = (stage, kind, wait, cause, elapsed, first)
    new = cache.get(key) if cache is not None else None
    if new is None:
        new = model.estimate(now, stage, kind, probability=FIRST if first else None, **args)
        if cache is not None:
            cache[key] = new
    holds = None if first else model.holds(current, now, stage, kind, **args)
    if not news(new, holds):
        return None
    if not first and new.latest > current.latest:  # a slip: the renewed promise states FIRST too (wider)
        wide = model.estimate(now, stage, kind, probability=FIRST, **args)
        if news(wide, holds):
            new = wide
    return new, holds


def learn_outcome(
    model: EtrModel,
    kind: str,
    cause: str,
    on_site: datetime,
    restored: datetime,
    entries: Mapping[str, tuple[datetime, float]],
) -> int:
    """A restored event teaches the model: its repair minutes (crew on site -> restored) for ``kind`` and the
    reported ``cause``, and per stage it entered before the crew arrived the ratio of the actual wait to the wait
    planned then (``entries``: stage -> (time entered, planned wait)). Returns the count of waits learned."""
    model.learn_repair(kind, cause, (restored - on_site).total_seconds() / 60.0)
    n = 0
    for stage, (t, wait) in entries.items():
        if stage != "on_site" and t <= on_site:
            model.learn_wait(stage, wait, (on_site - t).total_seconds() / 60.0)
            n += 1
    return n
