"""Roll-up rules on small hand-made feeders: one call, transformers under a fuse, AMI blocking and declaration,
SCADA lockout, telemetered devices, time separation, duplicates, pings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from outage_feeders import tree_feeder

from outage.engine import OutageEngine
from outage.events import EventClass, EventState
from outage.meters import SimulatedHeadEnd
from outage.reports import AmiEvent, Report, ScadaEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def engine(**kw) -> OutageEngine:
    return OutageEngine.from_network(tree_feeder(**kw.pop("feeder", {})), clock=lambda: T0, **kw)


def call(rid: str, sp: str, minutes: float = 0, **kw) -> Report:
    return Report(rid, at(minutes), sp_id=sp, **kw)


def keys(eng: OutageEngine) -> set[str]:
    return {e.key for e in eng.events}


def test_one_call_is_a_single_service_outage():
    eng = engine()
    changes = eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=False))
    (ev,) = eng.events
    assert ev.key == "sp:sp1.1.1.1"
    assert ev.event_class == EventClass.SINGLE_CUSTOMER
    assert ev.state == EventState.UNCONFIRMED
    assert ev.reports == ["r1"] and ev.customers == 1
    assert {type(c).__name__ for c in changes} == {"EventCreated", "ReportAttached"}


def test_one_call_without_an_answer_sits_on_a_small_transformer_not_its_drop():
    # calls only: a transformer fails more often than one service drop comes down (the fault prior), so with
    # three customers on it and nothing said about the neighbours, the one call's event sits on the transformer
    eng = engine()
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    (ev,) = eng.events
    assert ev.key == "T1.1.1" and ev.reports == ["r1"] and ev.event_class == EventClass.FEEDER
    assert not eng._pred[eng.grid.device_index["T1.1.1"]]  # not a prediction the devices above count on
    # on a transformer of a dozen, the silence of eleven customers says it is the drop
    big = engine(feeder={"sps": 12})
    big.ingest_report(call("r1", "sp1.1.1.1"))
    assert keys(big) == {"sp:sp1.1.1.1"}
    # a neighbour's "my power is on" moves it back to the drop
    eng.ingest_report(call("r2", "sp1.1.1.2", 5, power="on"))
    assert keys(eng) == {"sp:sp1.1.1.1"} and eng.event_of_report("r1").key == "sp:sp1.1.1.1"
    # with a meter to ping, the pings decide instead (the caller's meter answers off, the neighbours' on)
    head = SimulatedHeadEnd({"M-sp1.1.1.1": [(T0, None)]})
    metered = engine(meters=head)
    metered.ingest_report(call("r1", "sp1.1.1.1"))
    assert keys(metered) == {"sp:sp1.1.1.1"}


def test_neighbours_out_or_second_call_predicts_the_transformer():
    eng = engine()
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    assert keys(eng) == {"T1.1.1"}
    eng2 = engine()
    eng2.ingest_report(call("r1", "sp1.1.1.1"))
    eng2.ingest_report(call("r2", "sp1.1.1.2", 3))
    (ev,) = eng2.events
    assert ev.key == "T1.1.1" and sorted(ev.reports) == ["r1", "r2"]
    assert ev.event_class == EventClass.FEEDER and "2 of 3 service points" in ev.explanation


def test_two_transformers_under_a_fuse_roll_up_to_the_fuse():
    eng = engine()
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    eng.ingest_report(call("r2", "sp1.1.2.1", 2))
    (ev,) = eng.events
    assert ev.key == "F1.1"
    assert sorted(ev.reports) == ["r1", "r2"]
    assert len(ev.merged_from) == 1  # the first single-service event merged upward
    merged = eng.event(ev.merged_from[0])
    assert merged.merged_into == ev.event_id and merged.state == EventState.CANCELLED
    assert ev.customers == 9 and ev.start == T0
    # a third transformer under another fuse does not lift it to the recloser (1 of 3 fuses)
    eng.ingest_report(call("r3", "sp1.2.1.1", 4))
    assert keys(eng) == {"F1.1", "T1.2.1"}


def test_power_on_evidence_blocks_roll_up_past_a_device():
    eng = engine()
    eng.ingest_ami([AmiEvent("M-sp1.1.3.1", "power_restore", at(0))])
    eng.ingest_report(call("r1", "sp1.1.1.1", 1))
    eng.ingest_report(call("r2", "sp1.1.2.1", 2))
    assert keys(eng) == {"T1.1.1", "T1.1.2"}
    # the power-on evidence expires (30 min) and new evidence then rolls up
    eng.tick(at(40))
    eng.ingest_report(call("r3", "sp1.1.1.2", 41))
    assert "F1.1" in keys(eng)


def test_power_on_report_from_a_caller_retracts_their_evidence():
    eng = engine()
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    eng.ingest_report(call("r2", "sp1.1.1.1", 5, power="on"))
    assert eng.events == []
    assert eng.event_of_report("r1").state == EventState.CANCELLED


def test_ami_last_gasp_counts_only_after_the_declaration_delay():
    eng = engine()
    eng.ingest_ami([AmiEvent("M-sp1.1.1.1", "last_gasp", at(0))])
    assert eng.events == []  # not yet declared
    eng.ingest_ami([AmiEvent("M-sp1.1.1.1", "power_restore", at(0.3))])  # 18 s: a blink
    eng.tick(at(5))
    assert eng.events == [] and eng.stats["gasps_cancelled"] == 1
    eng.ingest_ami([AmiEvent("M-sp1.1.1.2", "last_gasp", at(10)), AmiEvent("M-sp1.1.1.3", "last_gasp", at(10))])
    eng.tick(at(11))
    (ev,) = eng.events
    assert ev.key == "T1.1.1" and ev.last_gasps == 2


def test_scada_lockout_confirms_later_reports_fold_in_earlier_stay_separate():
    eng = engine()
    eng.ingest_report(call("early", "sp1.1.1.1"))
    eng.ingest_scada(ScadaEvent("R1", "lockout", at(1)))
    assert keys(eng) == {"T1.1.1", "R1"}
    scada_ev = next(e for e in eng.events if e.key == "R1")
    assert scada_ev.state == EventState.CONFIRMED and scada_ev.confidence == 1.0
    for i, sp in enumerate(["sp1.2.1.1", "sp1.3.1.1", "sp1.1.2.2"]):
        eng.ingest_report(call(f"late{i}", sp, 2 + i))
    assert sorted(scada_ev.reports) == ["late0", "late1", "late2"]
    early = eng.event_of_report("early")
    assert early.event_id != scada_ev.event_id
    eng.merge(scada_ev.event_id, [early.event_id], actor="dispatcher:ann", reason="same fault")
    assert sorted(scada_ev.reports) == ["early", "late0", "late1", "late2"]
    assert keys(eng) == {"R1"}
    # AMI last gasps already explained by the event are absorbed without roll-up work
    eng.ingest_ami([AmiEvent("M-sp1.3.3.3", "last_gasp", at(10))])
    assert eng.stats["gasps_absorbed"] == 1 and scada_ev.last_gasps == 1


def test_a_telemetered_closed_device_is_never_predicted():
    eng = engine(telemetered=["R1", "BRK1"])
    for i, sp in enumerate(["sp1.1.1.1", "sp1.1.2.1", "sp1.2.1.1", "sp1.2.2.1", "sp1.3.1.1", "sp1.3.2.1"]):
        eng.ingest_report(call(f"r{i}", sp, i))
    assert keys(eng) == {"F1.1", "F1.2", "F1.3"}
    free = engine()
    for i, sp in enumerate(["sp1.1.1.1", "sp1.1.2.1", "sp1.2.1.1", "sp1.2.2.1", "sp1.3.1.1", "sp1.3.2.1"]):
        free.ingest_report(call(f"r{i}", sp, i))
    assert keys(free) == {"R1"}  # without telemetry the same calls predict the recloser


def test_time_separation_starts_a_new_outage():
    eng = engine()
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    eng.tick(at(20))
    assert eng.events[0].state == EventState.PROBABLE
    eng.tick(at(180))  # quiet for longer than the 2 h separation
    eng.ingest_report(call("r2", "sp1.1.2.1", 181))
    assert keys(eng) == {"T1.1.1", "T1.1.2"}


def test_duplicate_reports_attach_to_the_same_evidence():
    eng = engine()
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    changes = eng.ingest_report(call("r2", "sp1.1.1.1", 10, wires_down=True))
    (ev,) = eng.events
    assert ev.reports == ["r1", "r2"] and ev.service_points_out == 1
    assert changes[-1].duplicate and "wires_down" in ev.hazards
    with pytest.raises(ValueError, match="r1"):
        eng.ingest_report(call("r1", "sp1.1.1.2", 11))


def test_ping_verifies_a_prediction_and_clears_customer_side_calls():
    head = SimulatedHeadEnd({f"M-sp1.1.1.{k}": [(T0, None)] for k in (1, 2, 3)})
    eng = engine(meters=head)
    eng.ingest_report(call("r1", "sp1.1.1.1", 1))
    (ev,) = eng.events
    assert ev.key == "T1.1.1"  # the pinged neighbours are off too
    assert ev.pings.get("off", 0) >= 1 and ev.confidence > 0.8
    eng.ingest_report(call("r2", "sp1.3.3.3", 2))  # a customer-side problem: the meter has power
    assert keys(eng) == {"T1.1.1"}
    assert eng.event_of_report("r2").state == EventState.CANCELLED


def test_storm_mode_listens_to_bellwether_meters_only():
    eng = engine(bellwethers=["M-sp1.1.1.1"])
    eng.switch_rules(None, "storm")
    eng.ingest_ami([AmiEvent("M-sp1.1.1.2", "last_gasp", at(0)), AmiEvent("M-sp1.1.1.1", "last_gasp", at(0))])
    eng.tick(at(2))
    assert keys(eng) == {"sp:sp1.1.1.1"} and eng.stats["gasps_ignored_storm"] == 1


def test_rule_sets_switch_per_district():
    eng = engine(feeder={"feeders": 2})
    eng.switch_rules("FD2", "storm")  # storm rules on feeder 2: fuses need 3 calls
    for f in (1, 2):
        eng.ingest_report(call(f"a{f}", f"sp{f}.1.1.1"))
        eng.ingest_report(call(f"b{f}", f"sp{f}.1.2.1", 1))
    assert "F1.1" in keys(eng) and "F2.1" not in keys(eng)


def test_reports_located_by_coordinates():
    eng = engine()
    net = tree_feeder()
    pt = net.service_points.set_index("sp_id").loc["sp1.2.3.1"].geometry
    eng.ingest_report(Report("r1", T0, lon=pt.x, lat=pt.y))
    (ev,) = eng.events
    assert ev.key == "T1.2.3"  # the nearest service point's (one call on a transformer of three)


def test_bad_input_names_the_culprit():
    eng = engine()
    with pytest.raises(KeyError, match="nope"):
        eng.ingest_report(call("r1", "nope"))
    with pytest.raises(KeyError, match="M-x"):
        eng.ingest_ami([AmiEvent("M-x", "last_gasp", T0)])
    with pytest.raises(ValueError, match="r9"):
        Report("r9", datetime(2026, 1, 1), sp_id="sp1.1.1.1")


def test_ami_time_separation_keeps_an_earlier_outage_apart():
    eng = engine()
    # transformer T1.1.1 goes out at 12:00; its meters gasp
    eng.ingest_ami([AmiEvent(f"M-sp1.1.1.{k}", "last_gasp", at(0)) for k in (1, 2, 3)])
    eng.tick(at(1))
    assert keys(eng) == {"T1.1.1"}
    # 40 minutes later the rest of fuse F1.1 goes out: a separate, later outage above it
    eng.ingest_ami([AmiEvent(f"M-sp1.1.{j}.{k}", "last_gasp", at(40)) for j in (2, 3) for k in (1, 2, 3)])
    eng.tick(at(41))
    assert keys(eng) == {"T1.1.1", "F1.1"}
    # the same gasps within minutes of each other are one outage at the fuse
    same = engine()
    same.ingest_ami([AmiEvent(f"M-sp1.1.{j}.{k}", "last_gasp", at(j)) for j in (1, 2, 3) for k in (1, 2, 3)])
    same.tick(at(5))
    assert keys(same) == {"F1.1"}
    # one open interruption per customer even with the earlier outage nested under the later one
    recs = eng.interruptions()
    assert len(recs) == len({r.customer_id for r in recs}) == 9
    assert {r.start for r in recs if r.customer_id.startswith("sp1.1.1.")} == {T0}


# -- likelihood roll-up and AMI time ordering (issue 3 follow-up) --------------------------------------------------
def likelihood_engine(**kw) -> OutageEngine:
    from outage.rules import RuleSets

    return engine(rules=RuleSets.default_sets("likelihood"), **kw)


def test_likelihood_one_call_stays_a_single_service_and_many_lift_the_fuse():
    eng = likelihood_engine(feeder={"xfmrs": 4, "sps": 6})
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    assert keys(eng) == {"sp:sp1.1.1.1"}
    # callers under three of the fuse's four transformers: independent transformer faults are far less likely
    for i, sp in enumerate(["sp1.1.2.1", "sp1.1.3.1", "sp1.1.3.2", "sp1.1.4.4"]):
        eng.ingest_report(call(f"r{i + 2}", sp, i + 1))
    assert keys(eng) == {"F1.1"}


def test_likelihood_silent_meters_keep_one_gasp_off_its_transformer():
    # with AMI, a transformer whose other meters stay silent did not operate: the lone last gasp is a service drop
    eng = likelihood_engine(feeder={"sps": 6})
    eng.ingest_ami([AmiEvent("M-sp1.2.2.1", "last_gasp", at(0))])
    eng.ingest_ami([AmiEvent("M-sp1.1.1.1", "last_gasp", at(0.2))])
    eng.tick(at(2))
    assert keys(eng) == {"sp:sp1.1.1.1", "sp:sp1.2.2.1"}
    # all six meters of T1.1.1 dark: the transformer
    eng.ingest_ami([AmiEvent(f"M-sp1.1.1.{k}", "last_gasp", at(3)) for k in range(2, 7)])
    eng.tick(at(5))
    assert "T1.1.1" in keys(eng) and "sp:sp1.1.1.1" not in keys(eng)


def test_likelihood_rule_set_is_checked():
    from outage.rules import Likelihood, RuleSet

    with pytest.raises(ValueError, match="rollup"):
        RuleSet(rollup="votes")
    with pytest.raises(ValueError, match="call_rate"):
        Likelihood(call_rate=0.0)


def test_call_rate_is_learned_from_ami_backed_outages():
    eng = likelihood_engine()
    sps = [f"sp1.{i}.{j}.{k}" for i in (1, 2) for j in (1, 2, 3) for k in (1, 2, 3)]
    eng.ingest_ami([AmiEvent(f"M-{sp}", "last_gasp", at(0)) for sp in sps])
    for n, sp in enumerate(sps[:9]):  # half of them call within the hour
        eng.ingest_report(call(f"c{n}", sp, 10))
    eng.tick(at(70))
    assert eng._call_rate_n == len(sps) and eng._call_rate_calls == 9


def test_an_earlier_outage_below_a_later_bigger_one_stays_separate():
    # a service drop goes dark at 0; five minutes later its fuse blows (meters time-stamp when power went):
    # the fuse event must not swallow the earlier, separate outage — whichever way the fuse gets predicted
    eng = engine(meters=SimulatedHeadEnd())
    eng.ingest_ami([AmiEvent("M-sp1.1.1.1", "last_gasp", at(0))])
    eng.tick(at(1))
    eng.ingest_ami([AmiEvent(f"M-sp1.1.{j}.{k}", "last_gasp", at(5)) for j in (1, 2, 3) for k in (1, 2, 3)
                    if (j, k) != (1, 1)])
    eng.tick(at(7))
    assert keys(eng) == {"sp:sp1.1.1.1", "F1.1"}


def test_calls_only_an_earlier_outage_below_a_later_one_stays_separate():
    """Without meters, calls are the only clock: customers call minutes to an hour after their power goes. When
    every caller under the recloser called long after the fuse's outage began, one outage would hardly explain
    it: the fuse is an earlier, separate fault (a second repair), not part of the recloser's outage."""
    # the recloser's callers, in the order they call (call delays: median 12 minutes, sigma 1); had the recloser
    # been out since the fuse's calls, its 18 other customers would hardly all have stayed silent that long
    later = [("sp1.2.1.1", 101), ("sp1.3.1.3", 102), ("sp1.2.2.2", 103), ("sp1.2.3.1", 104), ("sp1.3.2.1", 106),
             ("sp1.3.3.2", 110), ("sp1.2.2.3", 115), ("sp1.3.1.1", 120)]

    def storm(fuse_calls_at: float) -> OutageEngine:
        eng = engine()
        eng.ingest_report(call("f1", "sp1.1.1.1", fuse_calls_at))
        eng.ingest_report(call("f2", "sp1.1.2.1", fuse_calls_at + 3))
        eng.tick(at(fuse_calls_at + 5))
        assert keys(eng) == {"F1.1"}
        for i, (sp, m) in enumerate(later):
            eng.ingest_report(call(f"r{i}", sp, m))
        eng.tick(at(125))
        return eng

    eng = storm(0)
    assert keys(eng) == {"F1.1", "R1"}
    fuse = next(e for e in eng.events if e.key == "F1.1")
    assert sorted(fuse.reports) == ["f1", "f2"] and fuse.start == T0
    # a later call from the fuse's customers belongs to the fuse's outage, not the recloser's
    eng.ingest_report(call("f3", "sp1.1.3.1", 121))
    assert "f3" in eng.event(fuse.event_id).reports
    recs = eng.interruptions()  # each customer once, the fuse's from the fuse's start
    assert len(recs) == len({r.customer_id for r in recs}) == 27
    assert {r.start for r in recs if r.customer_id.startswith("sp1.1.")} == {T0}
    # 50 minutes before the recloser's callers, the fuse's calls are still an earlier outage: had the recloser
    # been out since then, some of its 18 other customers would have called long before minute 101
    assert keys(storm(50)) == {"F1.1", "R1"}
    # the same fuse calls within the spread of the recloser's callers are one outage at the recloser
    assert keys(storm(95)) == {"R1"}
    from outage.rules import RuleSet

    with pytest.raises(ValueError, match="call_separation_odds"):
        RuleSet(call_separation_odds=0.0)
    with pytest.raises(ValueError, match="call_delay_median"):
        RuleSet(call_delay_sigma=0.0)


def test_calls_only_an_early_lone_call_is_not_swallowed_by_a_later_outage_on_its_transformer():
    """A lone call, then forty minutes of quiet, then the caller's fuse blows and a neighbour on the same
    transformer calls first. The transformer's event holds both calls, but had the fuse (or the transformer) been
    out since the first call, its other customers would hardly all have stayed silent for forty minutes: the first
    call is an outage of its own (a service drop), the rest are the fuse's."""
    eng = engine()
    eng.ingest_report(call("r0", "sp1.1.1.1", 0))
    eng.tick(at(30))
    for i, (sp, m) in enumerate([("sp1.1.1.2", 40), ("sp1.1.2.1", 43), ("sp1.1.3.2", 45), ("sp1.1.2.3", 48)]):
        eng.ingest_report(call(f"r{i + 1}", sp, m))
    eng.tick(at(60))
    by_key = {e.key: e for e in eng.events}
    assert set(by_key) == {"sp:sp1.1.1.1", "F1.1"}
    assert by_key["sp:sp1.1.1.1"].reports == ["r0"] and by_key["sp:sp1.1.1.1"].start == T0
    fuse = by_key["F1.1"]
    assert sorted(fuse.reports) == ["r1", "r2", "r3", "r4"] and fuse.start == at(40)
    # the same calls coming together are one outage: the fuse's
    eng = engine()
    for i, (sp, m) in enumerate([("sp1.1.1.1", 0), ("sp1.1.1.2", 3), ("sp1.1.2.1", 5), ("sp1.1.3.2", 6)]):
        eng.ingest_report(call(f"r{i}", sp, m))
    eng.tick(at(20))
    assert keys(eng) == {"F1.1"}


def test_a_lockout_above_does_not_promote_a_fuse_once_its_power_on_evidence_expires():
    """A service drop and a transformer under one fuse, minutes apart: the fuse's other meters answer the
    verification ping, so the fuse is not predicted. Then the breaker locks out: every meter is off. When the
    power-on evidence ages out, the fuse's rule passes again, but nothing says it operated; the customers are out
    by the breaker. The two earlier outages stay apart, and no fuse event appears."""
    head = SimulatedHeadEnd()
    eng = engine(meters=head, telemetered=["BRK1"])
    head.set_off("M-sp1.1.1.1", at(0))
    eng.ingest_ami([AmiEvent("M-sp1.1.1.1", "last_gasp", at(0))])
    for k in (1, 2, 3):
        head.set_off(f"M-sp1.1.2.{k}", at(2))
    eng.ingest_ami([AmiEvent(f"M-sp1.1.2.{k}", "last_gasp", at(2)) for k in (1, 2, 3)])
    eng.tick(at(4))
    assert keys(eng) == {"sp:sp1.1.1.1", "T1.1.2"}
    for m in eng.grid.meters:
        if m:
            head.set_off(m, at(10))
    eng.ingest_scada(ScadaEvent("BRK1", "lockout", at(10)))
    eng.tick(at(90))  # the power-on evidence from the ping has aged out
    assert keys(eng) == {"sp:sp1.1.1.1", "T1.1.2", "BRK1"}
