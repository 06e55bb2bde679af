"""Opt-in roll-up rules (off by default: the engine's contract tests hold the defaults): the likelihood lifting a
lateral device below its call floor, and the calls-only split judged by the callers a later outage will have."""

from __future__ import annotations

from outage_feeders import at, call, engine, keys, one_rule_set


def test_opt_in_one_call_lifts_a_small_fuse_the_likelihood_favours():
    """RuleSet.likelihood_below_floor: one call under a fuse of two transformers (six customers, five silent): the
    fuse fails ten times as often as a transformer, which outweighs the silence; by default one call never lifts a
    fuse."""
    feeder = {"fuses": 2, "xfmrs": 2, "sps": 3}
    for kw, want in (({}, {"T1.1.1"}), ({"likelihood_below_floor": True}, {"F1.1"})):
        eng = engine(feeder, rules=one_rule_set(**kw))
        eng.ingest_report(call("r1", "sp1.1.1.1"))
        assert keys(eng) == want


def test_opt_in_separation_counts_the_callers_a_later_outage_will_have():
    """RuleSet.call_separation_expected: a fuse outage 50 minutes before its recloser's callers begin is judged
    when the recloser's first call rolls it up, by the callers the recloser's other 18 customers are expected to
    make, so it stays separate; by default (one caller so far) it is merged."""

    def storm(**kw):
        eng = engine(rules=one_rule_set(**kw))
        eng.ingest_report(call("f1", "sp1.1.1.1", 50))
        eng.ingest_report(call("f2", "sp1.1.2.1", 53))
        for i, (sp, m) in enumerate([("sp1.2.1.1", 101), ("sp1.3.1.3", 102), ("sp1.2.2.2", 103)]):
            eng.ingest_report(call(f"r{i}", sp, m))
        eng.tick(at(125))
        return keys(eng)

    assert storm() == {"R1"}
    assert storm(call_separation_expected=True) == {"F1.1", "R1"}
