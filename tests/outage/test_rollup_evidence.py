"""Roll-up on small hand-made feeders, issue 3 accuracy work: devices with the same customers decided by the fault
prior, ping retries, verification of every new prediction, and AMI time separation of call-only outages."""

from __future__ import annotations

from datetime import datetime

from outage_feeders import T0, at, call, engine, keys, one_rule_set, tree_feeder

from outage.engine import OutageEngine
from outage.meters import PING_UNKNOWN, SimulatedHeadEnd
from outage.reports import AmiEvent
from outage.rules import DEFAULT_FAULT_PRIOR, Likelihood, RuleSets


def transformer_favoured() -> RuleSets:
    """A utility whose history says transformers fail more often than their fuses operate."""
    prior = {**DEFAULT_FAULT_PRIOR, "transformer": 0.2}
    return one_rule_set(likelihood=Likelihood(fault_prior=prior))


class ScriptedHeadEnd(SimulatedHeadEnd):
    """A head-end that knows the truth but gives scripted answers (e.g. no answer) to the first pings of some
    meters."""

    def __init__(self, outages: dict, script: dict[str, list[str]]):
        super().__init__(outages)
        self.script = {m: list(answers) for m, answers in script.items()}

    def ping(self, meters: list[str], now: datetime) -> dict[str, str]:
        out = super().ping(meters, now)
        for m in meters:
            if self.script.get(m):
                out[m] = self.script[m].pop(0)
        return out


# -- devices with the same customers ---------------------------------------------------------------------------------
def test_grid_knows_devices_with_the_same_customers():
    g = engine({"xfmrs": 1}).grid
    fuse, xfmr = g.device_index["F1.1"], g.device_index["T1.1.1"]
    assert g.equiv[fuse] == g.equiv[xfmr] == (fuse, xfmr)  # top of the chain first
    # one feeder on the substation: substation, breaker and recloser all interrupt every customer
    assert g.equiv[g.device_index["R1"]] == tuple(
        g.device_index[d] for d in ("substation:SUB1", "BRK1", "R1")
    )
    assert engine().grid.equiv[g.device_index["F1.1"]] is None  # three transformers: no twin
    two = engine({"feeders": 2}).grid  # two feeders: the substation has no twin, each breaker its recloser
    assert two.equiv[two.device_index["R1"]] == (two.device_index["BRK1"], two.device_index["R1"])
    assert two.equiv[two.device_index["substation:SUB1"]] is None


def test_a_fuse_feeding_one_transformer_is_predicted_over_it_by_the_prior():
    # no evidence can tell the transformer from the fuse that feeds only it, and fuses operate far more often than
    # transformers fail: once the customers are out (two calls), the fuse
    feeder = {"xfmrs": 1, "sps": 6}
    eng = engine(feeder)
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    assert keys(eng) == {"T1.1.1"}  # one call: the fuse feeding only it adds its prior to the transformer's
    first = eng.events[0]
    eng.ingest_report(call("r2", "sp1.1.1.2", 1))
    (ev,) = eng.events
    assert ev.key == "F1.1" and sorted(ev.reports) == ["r1", "r2"]
    assert first.merged_into == ev.event_id
    # a prior that favours transformers picks the transformer on the same evidence
    eng = engine(feeder, rules=transformer_favoured())
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    eng.ingest_report(call("r2", "sp1.1.1.2", 1))
    assert keys(eng) == {"T1.1.1"}
    # a fuse that telemetry shows closed is out of the running
    eng = engine(feeder, telemetered=["F1.1"])
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=True))
    eng.ingest_report(call("r2", "sp1.1.1.2", 1))
    assert keys(eng) == {"T1.1.1"}


def test_a_single_call_under_a_twin_fuse_stays_a_single_service():
    eng = engine({"xfmrs": 1, "sps": 12})  # "not out" from one of twelve: the drop
    eng.ingest_report(call("r1", "sp1.1.1.1", neighbours_out=False))
    assert keys(eng) == {"sp:sp1.1.1.1"}
    # with no answer the transformer of three is likelier than the drop; the fuse keeps its floor of two calls
    eng = engine({"xfmrs": 1})
    eng.ingest_report(call("r1", "sp1.1.1.1"))
    assert keys(eng) == {"T1.1.1"}


def test_the_chosen_twin_counts_as_a_predicted_child_of_the_device_above():
    # the recloser counts predicted children: the transformers chosen over their fuses count for it
    eng = engine({"fuses": 2, "xfmrs": 1, "sps": 5}, rules=transformer_favoured())
    for i, sp in enumerate(["sp1.1.1.1", "sp1.1.1.2", "sp1.2.1.1", "sp1.2.1.2"]):
        eng.ingest_report(call(f"r{i}", sp, i))
    assert keys(eng) == {"R1"}


# -- pings -------------------------------------------------------------------------------------------------------------
def test_an_unanswered_ping_is_asked_again():
    # a customer-side problem: the caller's meter has power but does not answer the first ping
    head = ScriptedHeadEnd({}, {"M-sp1.3.3.3": [PING_UNKNOWN]})
    eng = engine(meters=head)
    eng.ingest_report(call("r1", "sp1.3.3.3"))
    assert eng.events == [] and head.pinged >= 2
    # without retries the unanswered ping leaves the call standing
    head = ScriptedHeadEnd({}, {"M-sp1.3.3.3": [PING_UNKNOWN]})
    eng = engine(meters=head, rules=one_rule_set(ping_retries=0))
    eng.ingest_report(call("r1", "sp1.3.3.3"))
    assert keys(eng) == {"sp:sp1.3.3.3"}


def test_unmetered_service_points_are_never_pinged():
    # sp1.3.3.3 has no meter: the engine knows it by its own id (messages naming it still find it), but a ping to
    # that id could only come back "unknown", so neither its caller's check nor a verification sample asks it
    net = tree_feeder()
    unmetered = net.service_points["sp_id"].isin(["sp1.3.3.3", "sp1.3.3.1"])
    net.service_points.loc[unmetered, "meter"] = ""
    head = ScriptedHeadEnd({}, {})
    asked: list[str] = []
    ping = head.ping
    head.ping = lambda meters, now: asked.extend(meters) or ping(meters, now)
    eng = OutageEngine.from_network(net, clock=lambda: T0, meters=head)
    eng.ingest_report(call("r1", "sp1.3.3.3"))
    assert keys(eng) == {"sp:sp1.3.3.3"}  # no meter to say otherwise: the call stands
    eng.ingest_report(call("r2", "sp1.3.3.2", 1))
    eng.ingest_report(call("r3", "sp1.3.2.1", 2))
    eng.tick(at(10))
    assert asked and not {"sp1.3.3.3", "sp1.3.3.1"} & set(asked)
    assert eng.grid.sp_index["sp1.3.3.3"] == eng.grid.meter_index["sp1.3.3.3"]


def test_a_prediction_made_when_power_on_evidence_lapses_is_verified():
    # two service drops under fuse F1.1; the pings of their neighbours say "on", which blocks the fuse. Later the
    # neighbours do not answer the re-pings, so the power-on evidence lapses and the fuse would be predicted: the
    # new prediction is pinged like any other, and the neighbours (still on) block it again
    head = ScriptedHeadEnd(
        {"M-sp1.1.1.1": [(T0, None)], "M-sp1.1.2.1": [(T0, None)]},
        {
            "M-sp1.1.1.2": ["on", PING_UNKNOWN, PING_UNKNOWN],
            "M-sp1.1.2.2": ["on", PING_UNKNOWN, PING_UNKNOWN],
        },
    )
    eng = engine(meters=head)
    eng.ingest_report(call("r1", "sp1.1.1.1", 1))
    eng.ingest_report(call("r2", "sp1.1.2.1", 2))
    assert keys(eng) == {"sp:sp1.1.1.1", "sp:sp1.1.2.1"}
    eng.tick(at(40))
    assert keys(eng) == {"sp:sp1.1.1.1", "sp:sp1.1.2.1"}


# -- AMI time separation -----------------------------------------------------------------------------------------------
def test_a_call_only_outage_before_a_later_outage_above_stays_separate():
    # a service drop at 0 whose last gasp was lost: its customer calls at 5. At 60 fuse F1.1 blows and the other
    # meters gasp. The call says that service point was out by 5, long before the fuse's meters went dark
    fuse_sps = [f"sp1.1.{j}.{k}" for j in (1, 2, 3) for k in (1, 2, 3)]
    head = SimulatedHeadEnd(
        {"M-sp1.1.1.1": [(T0, None)], **{f"M-{sp}": [(at(60), None)] for sp in fuse_sps[1:]}}
    )
    eng = engine(meters=head)
    eng.ingest_report(call("r1", "sp1.1.1.1", 5))
    eng.ingest_ami([AmiEvent(f"M-{sp}", "last_gasp", at(60)) for sp in fuse_sps[1:]])
    eng.tick(at(62))
    assert keys(eng) == {"sp:sp1.1.1.1", "F1.1"}
    assert eng.event_of_report("r1").key == "sp:sp1.1.1.1"


def test_evidence_without_an_outage_time_joins_the_earlier_outage_it_sits_under():
    # transformer T1.1.1 out at 0 (one meter's gasp lost), fuse F1.1 out at 40: the fuse's verification does not
    # ping meters under the earlier outage (they are off either way), and a later call from the meter whose gasp
    # was lost belongs to the transformer's outage, not the fuse's
    xfmr = [f"sp1.1.1.{k}" for k in (1, 2, 3, 4)]
    rest = [f"sp1.1.{j}.{k}" for j in (2, 3) for k in (1, 2, 3, 4)]
    head = SimulatedHeadEnd(
        {**{f"M-{sp}": [(T0, None)] for sp in xfmr}, **{f"M-{sp}": [(at(40), None)] for sp in rest}}
    )
    eng = engine({"sps": 4}, meters=head)
    eng.ingest_ami([AmiEvent(f"M-{sp}", "last_gasp", at(0)) for sp in xfmr[:2]])
    eng.tick(at(1))
    assert keys(eng) == {"T1.1.1"}
    eng.ingest_ami([AmiEvent(f"M-{sp}", "last_gasp", at(40)) for sp in rest])
    eng.tick(at(42))
    assert keys(eng) == {"T1.1.1", "F1.1"}
    eng.ingest_report(call("late", "sp1.1.1.4", 50))
    assert keys(eng) == {"T1.1.1", "F1.1"}
    assert eng.event_of_report("late").key == "T1.1.1"
