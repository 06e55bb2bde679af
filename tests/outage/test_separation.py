"""Calls-only time separation (outage.separation): separate outages against one, by the silence of the customers
who did not call and the call times, with fault priors and an onset per outage."""

from __future__ import annotations

import math

from outage.separation import log_odds_separate, onset_log_evidence

MIN = 60.0
ARGS = (0.25, 12 * MIN, 1.0, 2 * 3600.0)  # call-in rate, median delay, sigma, onset window


def odds(earlier_at: float, later_at: list[float], others: int, now: float) -> float:
    """A fuse of nine customers whose two callers called at ``earlier_at`` and 3 minutes later, and a device above
    it with ``others`` more customers, of whom the ones at ``later_at`` called (minutes; judged at ``now``)."""
    fuse = ([(earlier_at - now) * MIN, (earlier_at + 3 - now) * MIN], 7, math.log(0.1))
    later = [(m - now) * MIN for m in later_at]
    return log_odds_separate([fuse], later, others - len(later), 0.0, *ARGS)


def test_a_long_silence_then_calls_is_a_second_outage():
    # the device above was quiet for 50 minutes after the fuse's calls: 18 customers would have called
    assert odds(50, [101], 18, 101) > 2.0
    assert odds(50, [101, 102, 103], 18, 103) > odds(
        50, [101], 18, 101
    )  # more calls after the silence: surer


def test_calls_within_one_outages_spread_are_one_outage():
    assert odds(95, [101], 18, 101) < 0.0
    assert odds(99, [101, 102, 103], 18, 103) < 0.0


def test_a_small_device_above_says_little_by_its_silence():
    # two other customers stay silent for 50 minutes about as often as not: only the caller's long wait speaks
    assert odds(50, [101], 3, 101) < odds(50, [101], 18, 101) - 2.0
    assert odds(80, [101], 3, 101) < 0.0


def test_silence_lowers_the_evidence_of_an_early_onset():
    calls = [-5 * MIN]
    assert onset_log_evidence(calls, 20, 0.0, *ARGS) < onset_log_evidence(calls, 0, 0.0, *ARGS)
    assert onset_log_evidence([], 5, 0.0, *ARGS) == 0.0
