"""IEEE 1366 indices from per-customer records, checked against values worked by hand in each test."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from outage.records import Interruption
from outage.reliability import (
    Conventions,
    CustomersServed,
    ReliabilityError,
    compute_indices,
    format_report,
    period_minutes,
    prepare,
    reliability_report,
)

YEAR = (date(2023, 1, 1), date(2023, 12, 31))  # 365 days: T = 525,600 minutes


def t(day: int, hour: int = 10, minute: int = 0, second: int = 0) -> datetime:
    """A time in 2023: ``day`` is the day of the year (1 = 1 January)."""
    return datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=day - 1, hours=hour, minutes=minute, seconds=second)


def outage(customers: range, start: datetime, minutes: float, event: str, **kw) -> list[Interruption]:
    return [Interruption(f"c{c}", start, start + timedelta(minutes=minutes), event, **kw) for c in customers]


def worked_example() -> list[Interruption]:
    """200 customers served. O1: 1-50 for 100 min; O2: 1-120 for 30 min; O3: 101-120 for 300 min;
    O4: 191-200 for 45 min. A recloser over 1-100 trips twice within 40 s (5 s each) and holds."""
    recs = (outage(range(1, 51), t(10), 100, "O1", cause="tree")
            + outage(range(1, 121), t(40), 30, "O2", cause="animal")
            + outage(range(101, 121), t(100), 300, "O3", cause="tree")
            + outage(range(191, 201), t(200), 45, "O4", cause="equipment"))
    for c in range(1, 101):
        recs += [Interruption(f"c{c}", t(300), t(300, second=5), "M1"),
                 Interruption(f"c{c}", t(300, second=35), t(300, second=40), "M1")]
    return recs


def test_worked_example_by_hand():
    c = Conventions(cemi_n=(1, 2), celid_t_hours=(2,), celid_s_hours=(2,))
    rep = reliability_report(*YEAR, interruptions=worked_example(), customers_served=200, conventions=c)
    ix = rep.system
    # CI = 50 + 120 + 20 + 10 = 200; CMI = 5000 + 3600 + 6000 + 450 = 15050; CN = 1..120 and 191..200 = 130
    assert ix.customer_interruptions == 200
    assert ix.customer_minutes == pytest.approx(15050)
    assert ix.customers_interrupted == 130
    assert ix.period_minutes == 525_600
    assert ix.saifi == pytest.approx(1.0)
    assert ix.saidi == pytest.approx(75.25)
    assert ix.caidi == pytest.approx(75.25)
    assert ix.caifi == pytest.approx(200 / 130)
    assert ix.ctaidi == pytest.approx(15050 / 130)
    assert ix.asai == pytest.approx(1 - 15050 / (200 * 525_600))
    # 100 customers x 2 operations = 200 momentary interruptions; one event each
    assert ix.maifi == pytest.approx(1.0)
    assert ix.maifie == pytest.approx(0.5)
    # customers 1-50 and 101-120 had 2 sustained interruptions (more than 1): 70 / 200; nobody more than 2
    assert ix.cemi == {"1": pytest.approx(0.35), "2": 0.0}
    # total >= 2 h: 1-50 (130 min) and 101-120 (330 min); single >= 2 h: only 101-120 (300 min)
    assert ix.celid_t["2h"] == pytest.approx(0.35)
    assert ix.celid_s["2h"] == pytest.approx(0.10)
    # no history: no MED threshold, and the report says so
    assert rep.threshold is None and rep.med_days == []
    assert any("no MED threshold" in n for n in rep.notes)
    assert "SAIDI" in format_report(rep)


def test_by_cause_adds_up_and_by_feeder_uses_feeder_customers():
    recs = (outage(range(1, 4), t(5), 60, "E1", feeder_id="F1", cause="tree")
            + outage(range(11, 13), t(6), 30, "E2", feeder_id="F2", cause="animal"))
    served = CustomersServed(20, by_feeder={"F1": 10, "F2": 8, "F3": 2})
    rep = reliability_report(*YEAR, interruptions=recs, customers_served=served)
    # system: CI 5, CMI 180 + 60 = 240 over 20 customers
    assert rep.system.saifi == pytest.approx(5 / 20)
    assert rep.system.saidi == pytest.approx(240 / 20)
    feeders = rep.groups["feeder"]
    assert feeders["F1"]["all"].saifi == pytest.approx(3 / 10)
    assert feeders["F1"]["all"].saidi == pytest.approx(180 / 10)
    assert feeders["F2"]["all"].saidi == pytest.approx(60 / 8)
    assert feeders["F3"]["all"].saifi == 0.0  # served, never out: a real zero
    assert feeders["F3"]["all"].caidi is None  # no interruptions: no duration per interruption
    causes = rep.groups["cause"]
    assert causes["tree"]["all"].saidi + causes["animal"]["all"].saidi == pytest.approx(rep.system.saidi)


@pytest.mark.parametrize(("seconds", "convention", "sustained"), [
    (299, "momentary", False), (300, "momentary", False), (301, "momentary", True),
    (299, "sustained", False), (300, "sustained", True), (301, "sustained", True),
])
def test_five_minute_boundary(seconds, convention, sustained):
    rec = [Interruption("a", t(3), t(3) + timedelta(seconds=seconds), "E")]
    c = Conventions(exactly_at_boundary=convention)
    ix = reliability_report(*YEAR, interruptions=rec, customers_served=10, conventions=c).system
    assert ix.customer_interruptions == (1 if sustained else 0)
    assert ix.momentary_interruptions == (0 if sustained else 1)
    assert ix.saidi == pytest.approx(seconds / 60 / 10 if sustained else 0.0)


def test_explicit_kind_overrides_duration():
    import pandas as pd

    df = pd.DataFrame({"customer_id": ["a", "b"], "start": [t(3), t(3)],
                       "end": [t(3, minute=2), pd.NaT], "kind": ["sustained", "momentary"]})
    ix = reliability_report(*YEAR, interruptions=df, customers_served=10).system
    assert ix.customer_interruptions == 1 and ix.customer_minutes == pytest.approx(2)
    assert ix.momentary_interruptions == 1


def test_nested_and_partial_restorations_counted_once():
    # Customer a: fuse outage 10:00-12:00 (parent) and a nested transformer record 11:00-13:00 still out after
    # the parent restored -> one interruption 10:00-13:00 = 180 min. Customer b: partial restoration recorded
    # twice (10:00-11:00 and the same customer again 10:30-10:45 inside it) -> 60 min. Customer c: restored at
    # 11:00 and re-interrupted at exactly 11:00 (touching) -> one interruption 10:00-11:30 = 90 min.
    recs = [
        Interruption("a", t(20, 10), t(20, 12), "FUSE"), Interruption("a", t(20, 11), t(20, 13), "XFMR"),
        Interruption("b", t(20, 10), t(20, 11), "FUSE"), Interruption("b", t(20, 10, 30), t(20, 10, 45), "X"),
        Interruption("c", t(20, 10), t(20, 11), "FUSE"), Interruption("c", t(20, 11), t(20, 11, 30), "Y"),
        Interruption("d", t(20, 10), t(20, 11), "FUSE", customers=3),
        Interruption("d", t(21, 10), t(21, 10, 20), "LATER", customers=3),  # separate: counted twice
    ]
    prepared = prepare(recs)
    assert len(prepared.interruptions) == 5
    ix = reliability_report(*YEAR, interruptions=prepared, customers_served=10).system
    assert ix.customer_interruptions == 1 + 1 + 1 + 3 + 3
    assert ix.customer_minutes == pytest.approx(180 + 60 + 90 + 3 * 60 + 3 * 20)
    assert ix.customers_interrupted == 6
    # the merged interruption keeps the earliest record's event
    a = prepared.interruptions.set_index("customer_id").loc["a"]
    assert a["event_id"] == "FUSE" and a["records"] == 2


def test_empty_period_gives_clear_zeros_and_nones():
    recs = outage(range(3), t(5), 60, "E")
    rep = reliability_report(date(2024, 3, 1), date(2024, 3, 31), interruptions=recs, customers_served=100)
    ix = rep.system
    assert ix.saifi == 0.0 and ix.saidi == 0.0 and ix.maifi == 0.0 and ix.asai == 1.0
    assert ix.caidi is None and ix.caifi is None and ix.ctaidi is None
    assert ix.customers_interrupted == 0 and ix.cemi["1"] == 0.0
    # no records at all and no customers: nothing divides by zero
    empty = reliability_report(*YEAR, interruptions=[], customers_served=0).system
    assert empty.saifi is None and empty.saidi is None and empty.asai is None and empty.caidi is None
    assert empty.customer_interruptions == 0


def test_midnight_start_day_versus_split():
    # 23:00 on 1 Feb to 01:00 on 2 Feb: 120 minutes, 60 on each day
    rec = [Interruption("a", t(32, 23), t(33, 1), "E")]
    start_day = prepare(rec)
    assert start_day.pieces["day"].tolist() == [date(2023, 2, 1)]
    assert start_day.pieces["minutes"].tolist() == [120.0]
    split = prepare(rec, Conventions(midnight="split"))
    assert split.pieces["day"].tolist() == [date(2023, 2, 1), date(2023, 2, 2)]
    assert split.pieces["minutes"].tolist() == [60.0, 60.0]
    assert split.pieces["first"].tolist() == [1, 0]
    # a report of 2 Feb alone: start_day gives it nothing; split gives it 60 minutes but no interruption count
    c = Conventions(midnight="split")
    feb2 = reliability_report(date(2023, 2, 2), date(2023, 2, 2), interruptions=rec, customers_served=1,
                              conventions=c).system
    assert feb2.customer_minutes == pytest.approx(60) and feb2.customer_interruptions == 0
    feb2_sd = reliability_report(date(2023, 2, 2), date(2023, 2, 2), interruptions=rec, customers_served=1).system
    assert feb2_sd.customer_minutes == 0


def test_local_day_follows_the_configured_time_zone():
    # 23:30 UTC on 1 Feb is 00:30 on 2 Feb in Berlin (UTC+1 in winter)
    rec = [Interruption("a", t(32, 23, 30), t(32, 23, 50), "E")]
    assert prepare(rec).pieces["day"].iloc[0] == date(2023, 2, 1)
    assert prepare(rec, Conventions(timezone="Europe/Berlin")).pieces["day"].iloc[0] == date(2023, 2, 2)
    # the DST spring-forward day in Berlin has 23 hours
    assert period_minutes(date(2023, 3, 26), date(2023, 3, 26), "Europe/Berlin") == 23 * 60


def test_maifie_window_and_lockout():
    recs = [
        # x: three operations at 0 s, 60 s and 250 s (all within 5 min of the first) -> 1 event, 3 operations;
        # then one more at 10 min -> a second event
        *[Interruption("x", t(50, 8, 0, s), t(50, 8, 0, s + 2), "M") for s in (0, 60, 250)],
        Interruption("x", t(50, 8, 10), t(50, 8, 10, 2), "M"),
        # y: two operations then lockout 40 s after the first -> operations count in MAIFI, not in MAIFIe
        Interruption("y", t(50, 9, 0, 0), t(50, 9, 0, 2), "R"),
        Interruption("y", t(50, 9, 0, 20), t(50, 9, 0, 22), "R"),
        Interruption("y", t(50, 9, 0, 40), t(50, 11), "R"),
    ]
    ix = reliability_report(*YEAR, interruptions=recs, customers_served=10).system
    assert ix.momentary_interruptions == 4 + 2
    assert ix.momentary_events == 2
    assert ix.maifi == pytest.approx(0.6) and ix.maifie == pytest.approx(0.2)
    keep = Conventions(maifie_exclude_before_lockout=False)
    assert reliability_report(*YEAR, interruptions=recs, customers_served=10,
                              conventions=keep).system.momentary_events == 3
    wide = Conventions(maifie_window_minutes=15)
    assert reliability_report(*YEAR, interruptions=recs[:4], customers_served=10,
                              conventions=wide).system.momentary_events == 1


def test_cemi_more_than_versus_at_least():
    recs = [Interruption("a", t(d), t(d, 11), f"E{d}") for d in (1, 2, 3)]  # a: 3 interruptions
    recs += [Interruption("b", t(d), t(d, 11), f"E{d}") for d in (1, 2)]  # b: 2
    more = reliability_report(*YEAR, interruptions=recs, customers_served=4,
                              conventions=Conventions(cemi_n=(2, 3))).system
    assert more.cemi == {"2": 0.25, "3": 0.0}
    least = reliability_report(*YEAR, interruptions=recs, customers_served=4,
                               conventions=Conventions(cemi_n=(2, 3), cemi_rule="at_least")).system
    assert least.cemi == {"2": 0.5, "3": 0.25}


def test_open_interruptions_count_in_frequency_not_duration_unless_as_of():
    recs = [Interruption("a", t(7), None, "E"), Interruption("b", t(7), t(7, 11), "E")]
    rep = reliability_report(*YEAR, interruptions=recs, customers_served=2)
    assert rep.system.customer_interruptions == 2
    assert rep.system.customer_minutes == pytest.approx(60)
    assert rep.system.open_interruptions == 1
    assert any("still open" in n for n in rep.notes)
    closed = reliability_report(*YEAR, interruptions=recs, customers_served=2, as_of=t(7, 12))
    assert closed.system.customer_minutes == pytest.approx(120 + 60)
    assert closed.system.open_interruptions == 0


def test_restoration_steps_do_not_claim_distinct_customers():
    from outage.reliability import Prepared  # noqa: F401  (the type the flag lives on)

    recs = outage(range(2), t(9), 10, "E")
    prepared = prepare(recs, customer_identity=False)
    ix = compute_indices(prepared, None, 10, 1440.0)
    assert ix.saifi == pytest.approx(0.2)
    assert ix.caifi is None and ix.customers_interrupted is None and ix.cemi["1"] is None


def test_bad_records_are_named():
    with pytest.raises(ReliabilityError, match=r"customer 'b'.*ends before it starts"):
        prepare([Interruption("a", t(1), t(1, 11), "E"), Interruption("b", t(2), t(1), "E2")])
    with pytest.raises(ReliabilityError, match="naive"):
        prepare([Interruption("a", datetime(2023, 1, 1), None, "E")])
    with pytest.raises(ReliabilityError, match="midnight"):
        Conventions(midnight="noon")
    with pytest.raises(ReliabilityError, match="before"):
        reliability_report(date(2023, 2, 1), date(2023, 1, 1), interruptions=[], customers_served=1)


def test_customers_served_from_network():
    sys.path.insert(0, str(Path(__file__).parents[1] / "gis"))
    from small import small_feeder

    served = CustomersServed.from_network(small_feeder())
    # feeder F1: sp1 2 + sp2 1 + sp3 3 + sp4 1 = 7; feeder F2: sp5 4; all on substation SUB1
    assert served.total == 11
    assert served.by_feeder == {"F1": 7, "F2": 4}
    assert served.by_substation == {"SUB1": 11}
