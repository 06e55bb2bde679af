"""Roll-up on calls alone (no AMI), issue 3 accuracy work: the callers' "neighbours not out" answer, the likelihood
second opinion on the count rules (silence of the customers who did not call), and devices with the same customers
once the transformer's rule shows them out."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from outage_feeders import T0, at, call, engine, keys, one_rule_set, tree_feeder

from outage.engine import OutageEngine
from outage.reports import AmiEvent, Report
from outage.rules import DEFAULT_FAULT_PRIOR, DeviceRule, Likelihood, RuleSet


# -- the caller's "are your neighbours out too?" answer ---------------------------------------------------------------
def test_a_lone_caller_whose_neighbours_are_not_out_is_a_service_problem():
    # two customers on the transformer: one call is half of them (the share test passes) ...
    feeder = {"fuses": 2, "xfmrs": 6, "sps": 2}
    eng = engine(feeder)
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    assert keys(eng) == {"T1.1.1"}
    # ... but a caller who says the neighbours are not out points at the service drop, not the transformer
    eng = engine(feeder)
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=False))
    assert keys(eng) == {"sp:sp1.1.1.1"}
    # a second customer of the transformer calling out contradicts the answer: the transformer
    eng.ingest_report(call("r2", "sp1.1.1.2", 5, neighbours_out=False))
    (ev,) = eng.events
    assert ev.key == "T1.1.1" and sorted(ev.reports) == ["r1", "r2"]


def test_one_call_saying_the_neighbours_are_out_does_not_lift_a_big_transformer():
    # "my neighbours are out too" passes a transformer's count rule on one call; on a transformer of fourteen service
    # points the silence of the other thirteen says the caller is wrong (callers often are) more likely than not
    eng = engine({"fuses": 2, "xfmrs": 3, "sps": 14})
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    assert keys(eng) == {"sp:sp1.1.1.1"}
    # a second customer of it calling out: the transformer
    eng.ingest_report(call("r2", "sp1.1.1.2", 5))
    assert keys(eng) == {"T1.1.1"}
    # on a transformer of three, the answer carries the one call
    eng = engine({"fuses": 2, "xfmrs": 3, "sps": 3})
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    assert keys(eng) == {"T1.1.1"}


def test_a_caller_alone_on_a_transformer_answers_about_the_lateral():
    # the neighbours of a customer alone on a transformer are on the lateral around it: "out too" speaks for the fuse
    # (seven customers, six silent, against the transformer of one), "not out" against it; on the transformer of one
    # the answer says nothing either way
    feeder = {"fuses": 2, "xfmrs": 3, "sps": 3, "sps_at": {"T1.1.1": 1}}
    eng = engine(feeder)
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    assert keys(eng) == {"F1.1"}
    eng = engine(feeder)
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=False))
    assert keys(eng) == {"T1.1.1"}


def test_a_neighbours_answer_leaves_with_its_evidence():
    # "my neighbours are out too" predicts the transformer; once that customer's power is on, the answer no longer
    # counts: a later lone call on the same transformer is a single service again
    eng = engine()
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    assert keys(eng) == {"T1.1.1"}
    eng.ingest_report(Report("r2", at(5), sp_id="sp1.1.1.1", power="on"))
    assert keys(eng) == set()
    eng.tick(at(60))  # the power-on evidence has aged out
    eng.ingest_report(call("r3", "sp1.1.1.2", 61, neighbours_out=False))
    assert keys(eng) == {"sp:sp1.1.1.2"}


# -- the likelihood second opinion (calls only) ----------------------------------------------------------------------
BIG_FUSE = {"fuses": 2, "xfmrs": 6, "sps": 8}  # 48 customers per fuse


def stray_call_under_a_big_fuse(eng: OutageEngine) -> None:
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    eng.ingest_report(call("r2", "sp1.1.1.2", 4))
    eng.ingest_report(call("r3", "sp1.1.2.5", 9))  # one call on a second transformer of the lateral


def test_a_stray_call_does_not_lift_a_transformer_outage_to_a_big_fuse():
    # count rules alone: two transformers with calls under the fuse pass its children test
    eng = engine(BIG_FUSE, rules=one_rule_set(likelihood_check=False))
    stray_call_under_a_big_fuse(eng)
    assert keys(eng) == {"F1.1"}
    # but 45 of the fuse's 48 customers did not call: the transformer (and one lone call) explain it far better
    eng = engine(BIG_FUSE)
    stray_call_under_a_big_fuse(eng)
    assert keys(eng) == {"T1.1.1", "sp:sp1.1.2.5"}
    ev = next(e for e in eng.events if e.key == "T1.1.1")
    assert sorted(ev.reports) == ["r1", "r2"]


def test_with_meters_the_count_rules_stand_alone():
    # once meters send last gasps, their silence is measured directly: no second opinion on the count rules
    eng = engine(BIG_FUSE)
    eng.ingest_ami([AmiEvent("M-sp1.2.6.8", "last_gasp", at(0))])
    eng.tick(at(1))
    stray_call_under_a_big_fuse(eng)
    assert "F1.1" in keys(eng)


def test_meters_on_another_feeder_leave_the_second_opinion_on():
    # AMI reaches feeder 2 only (rolled out area by area): its last gasps say nothing about the silence of
    # feeder 1's customers, whose evidence is still calls alone
    eng = engine({**BIG_FUSE, "feeders": 2})
    eng.ingest_ami([AmiEvent("M-sp2.2.6.8", "last_gasp", at(0))])
    eng.tick(at(1))
    stray_call_under_a_big_fuse(eng)
    assert keys(eng) == {"T1.1.1", "sp:sp1.1.2.5", "sp:sp2.2.6.8"}
    # a last gasp on feeder 1 too: there the count rules stand alone again
    eng.ingest_ami([AmiEvent("M-sp1.2.6.8", "last_gasp", at(10))])
    eng.tick(at(11))
    eng.ingest_report(call("r4", "sp1.1.3.1", 12))
    assert "F1.1" in keys(eng)


def test_likelihood_rollup_weighs_silence_by_whether_the_feeder_has_meters():
    # twelve calls from four of the six transformers under a fuse: the fuse. Were feeder 1's silent customers
    # read as meters that would have sent last gasps (because feeder 2's meters do), the roll-up would split
    # the outage into four transformer outages
    eng = engine({**BIG_FUSE, "feeders": 2}, rules=one_rule_set(rollup="likelihood"))
    eng.ingest_ami([AmiEvent("M-sp2.2.6.8", "last_gasp", at(0))])
    eng.tick(at(1))
    for n, (j, k) in enumerate(((j, k) for j in (1, 2, 3, 4) for k in (1, 2, 3)), start=1):
        eng.ingest_report(call(f"r{n}", f"sp1.1.{j}.{k}", 2 + n))
    assert keys(eng) == {"F1.1", "sp:sp2.2.6.8"}


SMALL_FUSE = {"fuses": 2, "xfmrs": 2, "sps": 3}  # 6 customers per fuse


def test_calls_from_one_transformer_of_a_small_fuse_predict_the_fuse():
    # two calls on one of the fuse's two transformers: the count rules see one child and a third of the customers
    eng = engine(SMALL_FUSE, rules=one_rule_set(likelihood_check=False))
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    eng.ingest_report(call("r2", "sp1.1.1.2", 3))
    assert keys(eng) == {"T1.1.1"}
    # fuses operate ten times as often as transformers fail, and only four customers are silent: the fuse
    eng = engine(SMALL_FUSE)
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    eng.ingest_report(call("r2", "sp1.1.1.2", 3))
    (ev,) = eng.events
    assert ev.key == "F1.1" and sorted(ev.reports) == ["r1", "r2"]
    # a wider margin leaves the decision to the count rules
    eng = engine(SMALL_FUSE, rules=one_rule_set(likelihood_margin=5.0))
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    eng.ingest_report(call("r2", "sp1.1.1.2", 3))
    assert keys(eng) == {"T1.1.1"}


def test_one_call_lifts_a_small_fuse_the_likelihood_favours():
    """One call under a fuse of two transformers (six customers, five silent): the fuse fails ten times as often as
    a transformer, which outweighs the silence, so the event is on the fuse, below its call floor of two. Without
    RuleSet.likelihood_below_floor, and under the storm rules (their floors are the utility's word), it stays on the
    caller's transformer."""
    for rules, want in ((None, {"F1.1"}), (one_rule_set(likelihood_below_floor=False), {"T1.1.1"})):
        eng = engine(SMALL_FUSE, rules=rules)
        eng.ingest_report(call("r1", "sp1.1.1.1"))
        assert keys(eng) == want
    eng = engine(SMALL_FUSE)
    eng.switch_rules(None, "storm")
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    assert keys(eng) == {"T1.1.1"}


def test_one_call_from_a_block_of_flats_does_not_lift_the_fuse_above_it():
    """Silence counts customers: a block of ten flats behind one service point (alone on its transformer) under a
    fuse whose two other service points hold ten flats each. One call from the block leaves the fuse's twenty other
    households silent; had the fuse blown, some of them would have called. The event stays on the block's
    transformer (counted by service points, three of them with two silent, the fuse would win on its prior)."""
    flats = {f"sp1.1.{j}.1": 10 for j in (1, 2, 3)}
    eng = engine({"fuses": 2, "xfmrs": 3, "sps": 1, "customers": flats})
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    (ev,) = eng.events
    assert ev.key == "T1.1.1" and ev.customers == 10
    # the same feeder with one household per service point: the fuse is the likelier device
    eng = engine({"fuses": 2, "xfmrs": 3, "sps": 1})
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    assert keys(eng) == {"F1.1"}


def test_lone_calls_under_many_small_fuses_do_not_lift_the_recloser():
    """A fuse the likelihood lifts on one call is the likeliest device to patrol, not a predicted outage that the
    backbone rules count: one call under each of five small fuses leaves the recloser and breaker alone."""
    eng = engine({"fuses": 5, "xfmrs": 2, "sps": 3})
    for i in range(1, 6):
        eng.ingest_report(call(f"r{i}", f"sp1.{i}.1.1", i))
    assert keys(eng) == {f"F1.{i}" for i in range(1, 6)}
    # a second call under each fuse puts every fuse on its floor: now they count, and the recloser is predicted
    for i in range(1, 6):
        eng.ingest_report(call(f"s{i}", f"sp1.{i}.2.1", 10 + i))
    assert "R1" in keys(eng)


def test_a_late_call_does_not_open_an_event_as_wide_as_the_substation():
    """Thirty lateral outages across a substation's ten feeders make the substation the likelier single cause, but
    the calls-only time separation keeps those earlier outages apart. A lone call two hours later then has only
    itself to show for the substation: it stays on its own transformer, not in an event of every customer."""
    eng = engine({"fuses": 8, "xfmrs": 4, "sps": 1, "feeders": 10})
    calls = [call(f"o{n}.{j}", f"sp{1 + n // 3}.{1 + n % 3}.{j}.1", 3 * n + 2 * j) for n in range(30) for j in (1, 2)]
    for r in sorted([*calls, call("e1", "sp5.7.4.1", 15, neighbours_out=False)], key=lambda r: r.time):
        eng.ingest_report(r)
    g = eng.grid
    assert any(eng._pred[d] for d in range(g.n_devices) if g.kind[d] == "substation")  # the case this is about
    eng.ingest_report(call("late", "sp8.7.4.1", 170, neighbours_out=False))
    (late,) = [e for e in eng.events if "late" in e.reports]
    assert late.key == "T8.7.4" and late.customers == 1
    assert not any(e.device_kind == "substation" for e in eng.events)


# -- devices with the same customers ---------------------------------------------------------------------------------
def test_a_fuse_feeding_one_transformer_is_chosen_once_its_customers_are_out():
    # one call and "my neighbours are out too": the transformer's rule passes, so its customers are out; the fuse
    # feeding only that transformer (same customers, operates far more often) needs no call floor of its own
    feeder = {"xfmrs": 1, "sps": 6}
    eng = engine(feeder)
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    assert keys(eng) == {"F1.1"}
    # one call with nothing else predicts neither; its event sits on the transformer, likelier than the drop with
    # the prior of the fuse feeding only it (0.11 against 0.003, five customers silent), and says so
    eng = engine(feeder)
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    (ev,) = eng.events
    assert ev.key == "T1.1.1" and "one call" in ev.history[0].reason
    # a caller who says the neighbours have power weighs five to one against it (callers are often wrong): the pair
    # still wins on a transformer of six (0.11 x 0.75^5 / 5 > 0.003), not on one of twelve (0.75^11)
    for sps, want in ((6, "T1.1.1"), (12, "sp:sp1.1.1.1")):
        eng = engine({"xfmrs": 1, "sps": sps})
        eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=False))
        assert keys(eng) == {want}


def test_a_backbone_device_with_the_same_customers_keeps_its_call_floor():
    # one lateral on the feeder: recloser, fuse and transformer (and breaker, substation) all interrupt the same six
    # customers; on one call with "neighbours out too" the fuse drops its floor, the backbone devices do not
    eng = engine({"fuses": 1, "xfmrs": 1, "sps": 6})
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    assert keys(eng) == {"F1.1"}
    # three calls meet the recloser's floor: it operates as often as a fuse, and ties go to the higher device
    eng.ingest_report(call("r2", "sp1.1.1.2", 2))
    eng.ingest_report(call("r3", "sp1.1.1.3", 4))
    assert keys(eng) == {"R1"}


# -- calls only, any order: nothing lost, the answers' counters stay exact ---------------------------------------------
PROP_NET = tree_feeder(fuses=3, xfmrs=3, sps=3, feeders=2)
PROP_SPS = PROP_NET.service_points["sp_id"].tolist()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PROP_SPS), st.sampled_from(["out", "out", "out", "on"]),
                          st.sampled_from([True, False, None]), st.integers(0, 240)), min_size=1, max_size=40))
def test_calls_only_lose_no_report_and_keep_answer_counts_exact(msgs):
    eng = OutageEngine.from_network(PROP_NET, clock=lambda: T0)
    outs = []
    for i, (sp, power, nb, minute) in sorted(enumerate(msgs), key=lambda x: x[1][3]):
        r = Report(f"r{i}", at(minute), sp_id=sp, power=power, neighbours_out=nb)
        eng.ingest_report(r)
        if power == "out":
            outs.append(r.report_id)
        g = eng.grid
        yes, no = [0] * g.n_devices, [0] * g.n_devices
        for k, hint in eng._sp_hint.items():
            (yes if hint else no)[g.sp_first[k]] += 1
        assert yes == eng._hint and no == eng._nohint
    eng.tick(at(360))
    holders = {}
    for ev in eng.all_events():
        if ev.merged_into is None:
            for rid in ev.reports:
                assert rid not in holders
                holders[rid] = ev.event_id
    assert set(holders) == set(outs)


def test_a_neighbours_out_too_answer_counts_once_against_the_service_drop():
    """One caller saying "my neighbours are out too", under a rule set whose transformer rule asks two calls: the
    likelihood puts the event on the transformer or the service drop. The answer weighs for the transformer by
    the odds of the answer (neighbours_odds, 5) once, as "not out" weighs against it once; it is not also held
    against the drop (under which, as under no outage, the neighbours are on). Defaults: the transformer fails
    3.3 times as often as one drop; each silent neighbour calls at 0.25: x 0.75. Eight customers: 3.3 x 5 x
    0.75^7 = 2.2, the transformer; twelve: 3.3 x 5 x 0.75^11 = 0.70, the drop (counted twice: 3.5)."""
    rules = one_rule_set(devices={**RuleSet().devices, "transformer": DeviceRule(min_calls=2, min_share=0.5)})
    for n, want in ((8, {"T1.1.1"}), (12, {"sp:sp1.1.1.1"})):
        eng = engine({"fuses": 1, "xfmrs": 2, "sps": n}, rules=rules)
        eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
        assert keys(eng) == want, n


def test_the_service_drops_likelihood_does_not_hear_the_neighbours_answer():
    """The drop's term (the best explanation below a transformer) is the same whatever the caller answered about
    the neighbours: the answer weighs on the device hypotheses only (here drops fail often enough for it to show)."""
    lk = Likelihood(fault_prior={**DEFAULT_FAULT_PRIOR, "service": 0.05})
    eng = engine({"fuses": 1, "xfmrs": 2, "sps": 3}, rules=one_rule_set(likelihood=lk))
    t = eng.grid.device_index["T1.1.1"]
    leaves = {hint: eng._evidence_llr(t, "call", hint)[2] for hint in (None, True, False)}
    assert leaves[None] > 0.0 and leaves[True] == leaves[None] == leaves[False]


# -- a lockout above freezes what the calls below it can say ---------------------------------------------------------
def fuse_calls_then_lockout(lockout_minute: float) -> OutageEngine:
    """Two calls on one transformer of a 48-customer fuse and one on another within five minutes, then the breaker
    above locks out (SCADA) and the rest of the fuse's customers call about it."""
    from outage.reports import ScadaEvent

    eng = engine(BIG_FUSE)
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    eng.ingest_report(call("r2", "sp1.1.1.2", 3))
    eng.ingest_report(call("r3", "sp1.1.2.5", 4.6))
    eng.ingest_scada(ScadaEvent("BRK1", "lockout", at(lockout_minute)))
    for i, sp in enumerate(("sp1.1.3.1", "sp1.1.4.2", "sp1.1.5.3")):
        eng.ingest_report(call(f"late{i}", sp, lockout_minute + 3 + i))
    return eng


def test_a_lockout_minutes_after_a_fuses_first_calls_leaves_the_fuse_predicted():
    # minutes after the first call most of the fuse's customers would not have called yet: their silence says little,
    # and one fuse (which operates ten times as often as a transformer fails) explains all three calls. After the
    # lockout every customer below the breaker is out whatever the fuse did, so no later silence tells against it,
    # and later calls are the breaker's: the fuse is judged on what came before
    eng = fuse_calls_then_lockout(6)
    fuse = next(e for e in eng.events if e.key == "F1.1")
    assert sorted(fuse.reports) == ["r1", "r2", "r3"]
    assert {e.key for e in eng.events} == {"F1.1", "BRK1"}


def test_a_lockout_hours_after_leaves_the_earlier_judgement():
    # two hours of silence from 45 customers: a transformer outage and a stray call, as without the lockout
    eng = fuse_calls_then_lockout(120)
    assert {e.key for e in eng.events} == {"T1.1.1", "sp:sp1.1.2.5", "BRK1"}
