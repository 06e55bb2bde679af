"""Opt-in roll-up rules (off by default: the engine's contract tests hold the defaults): the likelihood lifting a
lateral device below its call floor. (The calls-only split by the callers a later outage will have is the default
now, judged by the silence of its customers: outage.separation, tests/outage/test_rollup.py.)"""

from __future__ import annotations

from outage_feeders import call, engine, keys, one_rule_set


def test_opt_in_one_call_lifts_a_small_fuse_the_likelihood_favours():
    """RuleSet.likelihood_below_floor: one call under a fuse of two transformers (six customers, five silent): the
    fuse fails ten times as often as a transformer, which outweighs the silence; by default one call never lifts a
    fuse."""
    feeder = {"fuses": 2, "xfmrs": 2, "sps": 3}
    for kw, want in (({}, {"T1.1.1"}), ({"likelihood_below_floor": True}, {"F1.1"})):
        eng = engine(feeder, rules=one_rule_set(**kw))
        eng.ingest_report(call("r1", "sp1.1.1.1"))
        assert keys(eng) == want

