"""Rules keyed on what a device serves, devices with the same customers, the classes' confusion matrix and partly
metered feeders: the engine on networks shaped like imported utility feeders (a substation transformer, large
transformers with devices below, laterals without fuses)."""

from __future__ import annotations

from collections import Counter

from outage_feeders import _build, at, call, tree_feeder

from outage.engine import OutageEngine
from outage.events import EventClass
from outage.reports import AmiEvent
from outage.rules import RuleSets
from outage.simulate import STORM_START, StormConfig, generate_storm, score
from outage.storm import same_customers


def _feeder(sub_above_breaker: bool, laterals: int = 6, sps: int = 4, fuses: bool = False):
    """A source, a substation transformer XS (above the head breaker BRK, or below it as importers make it) and
    ``laterals`` laterals off the backbone, each one transformer T<i> (behind fuse F<i> with ``fuses``)."""
    nodes = {"S": (11.5, 50.0), "h": (11.501, 50.0), "b": (11.502, 50.0)}
    first, second = (("XS", "transformer"), ("BRK", "breaker"))
    if not sub_above_breaker:
        first, second = second, first
    segs = [(first[0], "S", "h", first[1], False, "FD1"), (second[0], "h", "b", second[1], False, "FD1")]
    rows = []
    for i in range(laterals):
        nodes[f"l{i}"] = (11.503 + 0.001 * i, 50.001)
        nodes[f"t{i}"] = (11.503 + 0.001 * i, 50.002)
        segs.append((f"L{i}", "b", f"l{i}", "line", False, "FD1"))
        up = f"l{i}"
        if fuses:
            nodes[f"f{i}"] = (11.503 + 0.001 * i, 50.0015)
            segs.append((f"F{i}", up, f"f{i}", "fuse", False, "FD1"))
            up = f"f{i}"
        segs.append((f"T{i}", up, f"t{i}", "transformer", False, "FD1"))
        rows += [(f"sp{i}.{k}", f"t{i}", 1, "none") for k in range(sps)]
    return _build(nodes, segs, rows, [("SUB1", "S")], "utility")


def _spread_calls(eng: OutageEngine, laterals: int = 6) -> set[str]:
    for i in range(laterals):
        eng.ingest_report(call(f"r{i}", f"sp{i}.0", i))
    eng.tick(at(30))
    return {e.key for e in eng.events}


def test_calls_spread_under_many_laterals_do_not_take_down_the_substation_transformer():
    for above in (False, True):
        for fuses in (False, True):
            eng = OutageEngine.from_network(_feeder(above, fuses=fuses), clock=lambda: at(0))
            g = eng.grid
            xs = g.device_index["XS"]
            # judged by what it serves: a substation rule above the feeder head, a backbone rule below it
            assert g.rule_kind[xs] == ("substation" if above else "large_transformer")
            assert g.community[xs] == above
            got = _spread_calls(eng)
            assert not got & {"XS", "BRK"} and not any(k.startswith("substation:") for k in got), (above, fuses)
            # each lone call sits on its transformer of four (likelier than the drop), which no device above counts
            assert got == {f"T{i}" for i in range(6)}


def test_a_transformer_serving_dozens_is_not_predicted_from_two_calls():
    net = tree_feeder(fuses=1, xfmrs=1, sps=40)
    eng = OutageEngine.from_network(net, clock=lambda: at(0))
    eng.ingest_report(call("a", "sp1.1.1.1", 0))
    eng.ingest_report(call("b", "sp1.1.1.2", 1))
    twins = {"T1.1.1", "F1.1", "R1", "BRK1"}  # one feeder, one lateral, one transformer: the same customers
    assert not twins & {e.key for e in eng.events}
    for k in range(3, 9):  # a tenth of its customers (or callers saying the neighbours are out) is enough
        eng.ingest_report(call(f"c{k}", f"sp1.1.1.{k}", k))
    assert twins & {e.key for e in eng.events}


def test_an_outage_of_the_substation_transformer_is_a_community_event():
    """A substation transformer feeding two feeders: its outage spans both (community), and it is judged by the
    substation rule: most of its customers (meters here) or predicted outages under half of what hangs on it."""
    nodes = {"S": (11.5, 50.0), "h": (11.501, 50.0)}
    segs = [("XS", "S", "h", "transformer", False, None)]
    rows = []
    for f in (1, 2):
        nodes[f"b{f}"], nodes[f"t{f}"] = (11.502, 50.0 + 0.01 * f), (11.503, 50.0 + 0.01 * f)
        segs += [(f"BRK{f}", "h", f"b{f}", "breaker", False, f"FD{f}"),
                 (f"T{f}", f"b{f}", f"t{f}", "transformer", False, f"FD{f}")]
        rows += [(f"sp{f}.{k}", f"t{f}", 1, "none") for k in range(4)]
    eng = OutageEngine.from_network(_build(nodes, segs, rows, [("SUB1", "S")], "two"), clock=lambda: at(0))
    g = eng.grid
    assert g.rule_kind[g.device_index["XS"]] == "substation" and g.community[g.device_index["XS"]]
    eng.ingest_ami([AmiEvent(f"M-sp{f}.{k}", "last_gasp", at(0)) for f in (1, 2) for k in range(4)])
    eng.tick(at(5))
    (ev,) = eng.events
    assert ev.event_class == EventClass.COMMUNITY
    assert ev.key in ("XS", "substation:SUB1")  # the same customers: either


def test_devices_with_the_same_customers_count_either_way():
    grid = OutageEngine.from_network(tree_feeder(fuses=4, xfmrs=1, sps=3, feeders=2), clock=lambda: STORM_START).grid
    hits = 0
    for seed in range(6):
        storm = generate_storm(grid, StormConfig(faults=4, call_rate=0.3), seed)
        for twin, key in storm.alias.items():
            if twin.startswith("sp:"):
                continue
            s = score(storm, {twin: storm.truth_class[key]})
            assert (s.correct, s.faults_found) == (1, int(key in storm.reporting))
            # two events on the one customer set count once
            both = score(storm, {twin: storm.truth_class[key], key: storm.truth_class[key]})
            assert (both.predicted, both.correct) == (2, 1)
            hits += 1
    assert hits


def test_the_confusion_matrix_reports_misclassification():
    grid = OutageEngine.from_network(tree_feeder(feeders=2), clock=lambda: STORM_START).grid
    storm = generate_storm(grid, StormConfig(faults=6, call_rate=0.3), 3)
    keys = [f.key for f in storm.faults if not f.key.startswith("sp:")][:2]
    assert len(keys) == 2
    # one device fault predicted as a single-customer event, one right, one event on no fault
    predicted = {keys[0]: EventClass.SINGLE_CUSTOMER, keys[1]: storm.truth_class[keys[1]],
                 "sp:no-such-fault": EventClass.SINGLE_CUSTOMER}
    s = score(storm, predicted)
    assert s.correct == 2 and s.classified == 1 / 3
    assert s.confusion == Counter({("feeder", "single_customer"): 1, ("feeder", "feeder"): 1,
                                   ("false", "single_customer"): 1})


def test_silence_of_unmetered_customers_on_a_partly_metered_feeder_is_not_evidence():
    def engine(partly: bool) -> OutageEngine:
        net = tree_feeder(fuses=1, xfmrs=3, sps=3)
        if partly:  # only the first transformer's customers have meters
            spt = net.service_points
            spt.loc[~spt["sp_id"].str.startswith("sp1.1.1."), "meter"] = ""
        return OutageEngine.from_network(net, clock=lambda: at(0), rules=RuleSets.default_sets("likelihood"))

    opers = []
    for partly in (False, True):
        eng = engine(partly)
        eng.ingest_ami([AmiEvent(f"M-sp1.1.1.{k}", "last_gasp", at(0)) for k in range(1, 4)])
        eng.tick(at(5))
        fuse = eng.grid.device_index["F1.1"]
        assert eng._ami_at(fuse) and eng._silence_measured(fuse) != partly
        opers.append(eng._oper[eng.grid.device_index["F1.1"]])
    # six silent customers below the fuse: with meters their silence counts against it, without only as callers'
    assert opers[1] > opers[0] + 6


def test_a_transformer_at_the_substation_bus_serving_customers_only_is_judged_by_its_customers():
    """A load at the substation bus (a big customer, or an imported model's equivalent of another feeder) has a
    transformer above the feeder heads with no device below it: it has no predicted children to count, so the
    substation rule could never predict it from calls. Judged by its customers, a tenth of them calling is an
    outage of it, and two calls are not."""
    nodes = {"S": (11.5, 50.0), "b": (11.501, 50.0), "t": (11.502, 50.0), "x": (11.5, 50.001)}
    segs = [("BRK", "S", "b", "breaker", False, "FD1"), ("T1", "b", "t", "transformer", False, "FD1"),
            ("TX", "S", "x", "transformer", False, None)]
    rows = [(f"sp1.{k}", "t", 1, "none") for k in range(4)] + [(f"spx.{k}", "x", 1, "none") for k in range(40)]
    net = _build(nodes, segs, rows, [("SUB1", "S")], "bus load")
    eng = OutageEngine.from_network(net, clock=lambda: at(0))
    tx = eng.grid.device_index["TX"]
    assert eng.grid.community[tx] and eng.grid.rule_kind[tx] == "transformer"
    for k in range(2):
        eng.ingest_report(call(f"r{k}", f"spx.{k}", k))
    assert "TX" not in {e.key for e in eng.events}
    for k in range(2, 12):  # 30 % call-in
        eng.ingest_report(call(f"r{k}", f"spx.{k}", k))
    eng.tick(at(30))
    (ev,) = eng.events
    assert ev.key == "TX" and ev.event_class == EventClass.COMMUNITY


def test_a_twin_with_a_silent_fault_of_its_own_still_finds_the_fault_that_reported():
    """A fuse feeding one transformer blows, and the transformer below it fails too (a nested fault): the fuse's
    fault sends every message, the transformer's none. An event on the transformer has the fuse's customers, so it
    finds the fuse's fault, as it does when the transformer has no fault of its own."""
    grid = OutageEngine.from_network(tree_feeder(fuses=4, xfmrs=1, sps=3, feeders=2), clock=lambda: STORM_START).grid
    cases = 0
    for seed in range(300):
        storm = generate_storm(grid, StormConfig(faults=4, call_rate=0.3), seed)
        for f in storm.faults:
            twins = [t for t in same_customers(grid, f.key) if t != f.key and t in storm.truth_class]
            for twin in twins:
                if f.key in storm.reporting and twin not in storm.reporting:
                    s = score(storm, {twin: storm.truth_class[f.key]})
                    assert (s.correct, s.faults_found) == (1, 1)
                    cases += 1
    assert cases
