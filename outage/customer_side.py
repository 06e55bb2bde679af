"""Lone calls: an outage, or customer-side? Calls only, an event of one call from one customer may be a service drop
or small outage, or a problem on the customer's side (a tripped main breaker at home) that no crew of the utility
should be sent to. Lone calls that come while outages are beginning around them are the storm's; those that come
in quiet hours are likelier customer-side. ``_fit_lone_calls`` fits how they follow the storm, ``_customer_side``
judges each one by the fit, and the event's class says so (``EventClass.CUSTOMER_SIDE``).

A part of :class:`~outage.engine.OutageEngine`, like :mod:`outage.rollup`: it reads the engine's counters and
timers and refreshes events through :mod:`outage.lifecycle`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from datetime import datetime

from outage.events import PREDICTED_STATES, EventUpdated
from outage.lifecycle import _Track


class CustomerSideMixin:
    """Judging events of one call: an outage, or customer-side (see the module docstring)."""

    def _note_onset(self, tr: _Track) -> None:
        """``tr`` holds more than one service point now: an outage began (at its first evidence), and it is no
        longer a lone call."""
        if len(tr.sps) < 2:
            return
        tr.suspect = False
        if not tr.onset:
            tr.onset = True
            insort(self._onsets, tr.event.start)

    def _judge(self, tr: _Track, now: datetime) -> None:
        """Judge an event of one call again (``_customer_side``); its class follows."""
        suspect = self._customer_side(tr, now)
        if suspect != tr.suspect:
            tr.suspect = suspect
            self._refresh(tr)
            self._changes.append(EventUpdated(tr.event.event_id, now, "class"))

    def _judge_lone_calls(self, now: datetime) -> None:
        """Every open event of one call, judged again as the storm goes on (``RuleSet.customer_side_window``), after
        fitting how lone calls follow the storm (``_fit_lone_calls``)."""
        rs = self.rules.for_district(None, None)
        self._next_judge = now + rs.customer_side_window / 4
        horizon = now - rs.customer_side_horizon - rs.customer_side_window
        del self._onsets[: bisect_left(self._onsets, horizon)]
        del self._call_times[: bisect_left(self._call_times, horizon)]
        for eid, tr in list(self._lone_tracks.items()):
            if not tr.event.open or len(tr.sps) > 1 or not self._one_service_point(tr):
                del self._lone_tracks[eid]
                if tr.suspect:
                    tr.suspect = False
                    if tr.event.open:
                        self._refresh(tr)
        self._lone_fit = self._fit_lone_calls(now, rs)
        for tr in list(self._lone_tracks.values()):
            if tr.sps:
                self._judge(tr, now)

    def _lone_call_time(self, tr: _Track) -> datetime | None:
        """When the one call of ``tr`` came, if it is a call that could be customer-side: one call, no meter that
        can tell, no hazard, no medical equipment, not "my neighbours are out too"; else None."""
        ev = tr.event
        if len(tr.sps) != 1 or tr.hazard_only or not self._one_service_point(tr) or ev.state not in PREDICTED_STATES:
            return None
        ((k, reps),) = tr.sps.items()
        g = self.grid
        if len(reps) != 1 or ev.hazards or ev.medical or ev.last_gasps or k not in self._sp_ev:
            return None
        if g.metered[k] and (self.meters is not None or self._ami_feeder[self._sp_feeder[k]]):
            return None  # a ping, or the missing last gasp, tells
        e, h, _ = self._sp_ev[k]
        if e == 0.0 or h > 0.0:  # no likelihood kept here (the rule set rolls up otherwise); or "neighbours out too"
            return None
        return self._sp_called.get(k, ev.start)

    def _fit_lone_calls(self, now: datetime, rs) -> tuple[float, float] | None:
        """How lone calls follow the storm: their rate is ``alpha`` per outage beginning nearby (service drops,
        small transformers that one customer called about, in step with the storm's damage) plus ``beta`` per second
        at any time (customer-side problems), fitted by expectation-maximization over the open lone calls of the
        horizon. None until there are a few of each to fit."""
        times = [t for t in map(self._lone_call_time, self._lone_tracks.values()) if t is not None]
        start = max(self._first_seen or now, now - rs.customer_side_horizon)
        span = (now - start).total_seconds()
        n_all = bisect_right(self._onsets, now) - bisect_left(self._onsets, start)
        if len(times) < rs.customer_side_min_onsets or n_all < rs.customer_side_min_onsets or span <= 0:
            return None
        rho = [r for r in (self._onset_density(t, now, rs) for t in times) if r is not None]
        if not rho:
            return None
        calls = len(self._call_times) - bisect_left(self._call_times, start)
        beta = max(1e-12, rs.customer_side_share * calls / span)
        alpha = 0.5 * len(rho) / n_all
        for _ in range(30):
            alpha = max(1e-9, sum(alpha * r / (alpha * r + beta) for r in rho) / n_all)
        return alpha, beta

    def _customer_side(self, tr: _Track, now: datetime) -> bool:
        """Calls only: whether the one call of ``tr`` is likelier a customer-side problem than an outage: the odds
        of the fitted rates (``_fit_lone_calls``) at the call's time, against ``RuleSet.customer_side_odds``. Never
        for the calls ``_lone_call_time`` leaves out.

        A call is judged again for half a ``customer_side_horizon``; then its judgement stands, as it does while
        there are no figures to judge by. The fit covers the horizon before now: hours of quiet after a storm, with
        the storm's outages leaving the horizon, say nothing new about a call made during it."""
        t = self._lone_call_time(tr)
        if t is None:
            return False
        rs = self._ruleset_sp(tr.sp if tr.dev < 0 else next(iter(tr.sps)))
        if rs.customer_side_odds <= 0.0:
            return False
        if now - t > rs.customer_side_horizon / 2:
            return tr.suspect
        fit = self._lone_fit
        rho = None if fit is None else self._onset_density(t, now, rs)
        if rho is None:
            return tr.suspect
        alpha, beta = fit
        return alpha * rho < rs.customer_side_odds * beta

    def _onset_density(self, t: datetime, now: datetime, rs) -> float | None:
        """Outages of more than one service point beginning per second around ``t``: those within
        ``customer_side_window`` of it (up to ``now``), shrunk towards their mean rate over the horizon by one
        outage's worth (Poisson counts: a quiet window of a small storm means little). None before any began."""
        onsets, first = self._onsets, self._first_seen
        if first is None:
            return None
        start = max(first, now - rs.customer_side_horizon)
        span = (now - start).total_seconds()
        n_all = bisect_right(onsets, now) - bisect_left(onsets, start)
        a, b = max(start, t - rs.customer_side_window), min(now, t + rs.customer_side_window)
        width = (b - a).total_seconds()
        if n_all == 0 or span <= 0 or width <= 0:
            return None
        n = bisect_right(onsets, b) - bisect_left(onsets, a)
        mean = n_all / span
        return (n + 1.0) / (mean * width + 1.0) * mean
