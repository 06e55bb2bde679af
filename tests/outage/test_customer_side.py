"""Calls only: a lone call while no other outage is beginning is judged customer-side (EventClass.CUSTOMER_SIDE),
not an outage prediction; a lone call in the middle of the storm's damage stays an outage (customer_side._customer_side)."""

from __future__ import annotations

from outage_feeders import at, call, engine

from outage.events import EventClass
from outage.meters import SimulatedHeadEnd
from outage.simulate import run_storm
from outage.storm import Storm

FEEDER = {"fuses": 8, "xfmrs": 4, "sps": 3, "feeders": 5}
LONE_EARLY = ("sp2.7.4.1", "sp4.8.4.1")  # lone calls among the storm's outages (minutes 15 and 35)
LONE_LATE = ("sp3.7.4.1", "sp5.8.4.1")  # lone calls two hours after the last outage began (minutes 170, 176)


def storm_calls(late_kw: dict | None = None) -> list:
    """Thirty transformer outages beginning in the first 90 minutes (two calls each), two lone calls among them and two
    lone calls long after, all saying "my neighbours are not out"."""
    reports = []
    for n in range(30):
        f, i = 1 + n // 6, 1 + n % 6
        for c in (1, 2):
            reports.append(call(f"o{n}.{c}", f"sp{f}.{i}.1.{c}", 3 * n + 2 * c))
    reports += [
        call("e1", LONE_EARLY[0], 15, neighbours_out=False),
        call("e2", LONE_EARLY[1], 35, neighbours_out=False),
    ]
    reports += [
        call("l1", LONE_LATE[0], 170, neighbours_out=False, **(late_kw or {})),
        call("l2", LONE_LATE[1], 176, neighbours_out=False, **(late_kw or {})),
    ]
    return sorted(reports, key=lambda r: r.time)


def classes(eng) -> dict[str, EventClass]:
    return {e.key: e.event_class for e in eng.events}


def run(reports, feeder: dict = FEEDER, **kw):
    eng = engine(feeder, **kw)
    for r in reports:
        eng.ingest_report(r)
    eng.tick(at(190))
    return eng


def test_a_lone_call_long_after_the_storm_damage_is_customer_side():
    got = classes(run(storm_calls()))
    for sp in LONE_LATE:
        assert got[f"sp:{sp}"] == EventClass.CUSTOMER_SIDE, sp
    for sp in LONE_EARLY:
        assert got[f"sp:{sp}"] == EventClass.SINGLE_CUSTOMER, sp
    assert sum(c == EventClass.FEEDER for c in got.values()) == 30  # the thirty transformer outages


def test_the_judgement_holds_through_the_quiet_hours_after_the_storm():
    # eight hours on, the storm's outages have left the six-hour horizon: nothing new to judge by, so nothing changes
    eng = run(storm_calls())
    for minutes in range(195, 190 + 8 * 60, 30):
        eng.tick(at(minutes))
    got = classes(eng)
    for sp in LONE_LATE:
        assert got[f"sp:{sp}"] == EventClass.CUSTOMER_SIDE, sp
    for sp in LONE_EARLY:
        assert got[f"sp:{sp}"] == EventClass.SINGLE_CUSTOMER, sp


def test_the_judgement_says_why_and_a_second_call_reverses_it():
    eng = run(storm_calls())
    ev = next(e for e in eng.events if e.key == f"sp:{LONE_LATE[0]}")
    assert "likely customer-side" in ev.explanation
    # the customer calls again: customer-side callers call once
    eng.ingest_report(call("l1b", LONE_LATE[0], 191))
    ev = next(e for e in eng.events if e.key == f"sp:{LONE_LATE[0]}")
    assert ev.event_class == EventClass.SINGLE_CUSTOMER


def test_hazards_and_neighbours_out_are_never_customer_side():
    got = classes(run(storm_calls({"wires_down": True})))
    assert all(got[f"sp:{sp}"] != EventClass.CUSTOMER_SIDE for sp in LONE_LATE)
    reports = [r for r in storm_calls() if r.report_id not in ("l1", "l2")]
    reports.append(call("l1", LONE_LATE[0], 170, neighbours_out=True))
    got = classes(run(reports))
    assert EventClass.CUSTOMER_SIDE not in got.values()


def test_a_meter_that_can_be_pinged_decides_instead():
    head = SimulatedHeadEnd(failure_rate=0.0, seed=1)  # every meter answers, and every one of them is on
    eng = run(storm_calls(), meters=head)
    assert EventClass.CUSTOMER_SIDE not in {e.event_class for e in eng.events}


def test_a_customer_side_event_is_no_outage_prediction_in_the_score():
    reports = storm_calls()
    storm = Storm([], reports, [], {}, set(), {}, SimulatedHeadEnd(seed=1), 0)
    predicted = run_storm(engine(FEEDER), storm).predicted
    assert not any(k in predicted for k in (f"sp:{sp}" for sp in LONE_LATE))
    assert all(f"sp:{sp}" in predicted for sp in LONE_EARLY)


def test_a_lone_call_on_a_transformer_of_one_customer_is_judged_too():
    # that transformer passes its rule on its one customer's call: the call is a lone call all the same
    eng = run(storm_calls(), feeder=dict(FEEDER, sps_at={"T2.7.4": 1, "T3.7.4": 1}))
    got = classes(eng)
    assert got["T2.7.4"] == EventClass.FEEDER  # LONE_EARLY[0]
    assert got["T3.7.4"] == EventClass.CUSTOMER_SIDE  # LONE_LATE[0]
    assert got[f"sp:{LONE_LATE[1]}"] == EventClass.CUSTOMER_SIDE
