"""Calls-only time separation: is an earlier event below a device part of that device's outage, or a separate,
earlier one?

Without meters the calls are the only clock. Customers call a lognormal delay after their power goes (median and
log-sigma of ``RuleSet.call_delay_median`` / ``call_delay_sigma``), each out customer with the call-in rate. Two
explanations of calls under a device ``D`` with an event below it that began earlier are weighed by Bayes' rule:

* **one outage** at ``D`` from an onset ``T`` before the first call: every caller's delay is counted from ``T``,
  and every customer of ``D`` who has not called is silent since ``T``;
* **separate outages**: the earlier events are faults of their own (each from its own onset), and ``D`` went later,
  from an onset ``T2`` before the first call of the later group: its other customers are silent only since ``T2``,
  and its callers' delays are counted from ``T2``.

Which one is likelier rests mostly on the silence: were ``D`` out since the earlier event began, its other
customers would have called by the time the later calls start (each with the call-in rate times the chance of a
delay that short); a long quiet spell followed by a burst of calls is a second outage. One call, or a few, in that
spell is not. An onset is not known: each hypothesis is integrated over it, uniform over ``window`` (the time
separation, after which evidence is a new outage anyway) before its group's first call, so that the separate
outages pay for their extra onset (an Occam factor), and each extra fault pays its prior (``Likelihood.fault_prior``
of its device kind).

Everything here is pure: times are seconds, plain floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr

#: onsets tried before a group's first call (seconds), log-spaced: the integral over the onset is a sum over them
_GRID = np.geomspace(10.0, 12 * 3600.0, 64)
_LOG_STEP = math.log(_GRID[1] / _GRID[0])


def lognormal_logpdf(delay: np.ndarray, median: float, sigma: float) -> np.ndarray:
    """log density of a lognormal call delay with this median and log-sigma; minus infinity for a delay <= 0 (a
    call before the onset)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.log(delay) - math.log(median)) / sigma
        out = -0.5 * z * z - np.log(delay * sigma * math.sqrt(2.0 * math.pi))
    return np.where(delay > 0, out, -np.inf)


def onset_log_evidence(
    calls: Sequence[float], silent: int, now: float, p_call: float, median: float, sigma: float, window: float
) -> float:
    """log P(calls at ``calls`` and ``silent`` customers without a call up to ``now`` | one outage of them, its onset
    uniform over ``window`` before the first call). The call-in rate's own factor (``p_call`` per caller) is left
    out: every hypothesis has the same callers."""
    if not len(calls):
        return 0.0
    t = np.asarray(calls, dtype=float)
    d = _GRID[: int(np.searchsorted(_GRID, window, side="right"))]
    onset = t.min() - d  # (G,)
    delay = t[:, None] - onset[None, :]  # (n, G), all > 0
    ll = lognormal_logpdf(delay, median, sigma).sum(axis=0)
    if silent:
        quiet = now - onset
        called_by_now = ndtr((np.log(quiet) - math.log(median)) / sigma)
        ll = ll + silent * np.log1p(-p_call * called_by_now)
    # integral over the onset with d(onset) = d * dlog(d), over the window
    ll = ll + np.log(d) + _LOG_STEP - math.log(window)
    top = float(ll.max())
    return top + math.log(float(np.exp(ll - top).sum()))


def log_odds_separate(
    earlier: Sequence[tuple[Sequence[float], int, float]],
    later: Sequence[float],
    later_silent: int,
    now: float,
    p_call: float,
    median: float,
    sigma: float,
    window: float,
    memo: dict | None = None,
) -> float:
    """log odds of separate outages against one: ``earlier`` is, per earlier event, (its callers' call times, its
    customers without a call, the log prior of its device failing); ``later`` the later group's call times and
    ``later_silent`` the device's other customers without a call.

    ``memo``: one dict for the calls with the same other arguments. The roll-up tries every split of the same
    events: each event's own evidence, and the one-outage evidence of all calls, are then computed once."""
    args = (now, p_call, median, sigma, window)
    memo = {} if memo is None else memo

    def evidence(calls: Sequence[float], silent: int) -> float:
        key = (tuple(calls), silent)
        if key not in memo:
            memo[key] = onset_log_evidence(calls, silent, *args)
        return memo[key]

    all_calls = [c for calls, _, _ in earlier for c in calls] + list(later)
    silent = later_silent + sum(s for _, s, _ in earlier)
    one = evidence(all_calls, silent)
    apart = onset_log_evidence(later, later_silent, *args)
    for calls, quiet, log_prior in earlier:
        apart += log_prior + evidence(calls, quiet)
    return apart - one
