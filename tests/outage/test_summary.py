"""Restoration metrics and the post-event summary, worked by hand."""

from __future__ import annotations

import base64
import csv
from datetime import UTC, datetime, timedelta

import pytest

from outage.records import Interruption
from outage.reliability import ReliabilityError
from outage.summary import (
    EventSummary,
    etr_accuracy,
    percentiles,
    post_event_summary,
    restoration_curve,
    restoration_metrics,
    write_csv,
    write_html,
)

T0 = datetime(2024, 6, 10, 12, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def storm() -> list[EventSummary]:
    """Four events. E1 P1 feeder 100 customers 0->180 min (3 h); E2 P2 single 1 customer 30->330 (5 h);
    E3 P3 feeder 50 customers 60->120; E4 P4 single 1 customer 90, still open."""
    return [
        EventSummary("E1", at(0), at(180), 100, "P1", "feeder", "tree", at(2),
                     etrs=((at(10), at(120)), (at(100), at(170))), crew_hours=6.0),
        EventSummary("E2", at(30), at(330), 1, "P2", "single", "equipment", at(35),
                     etrs=((at(40), at(360)),), crew_hours=3.5),
        EventSummary("E3", at(60), at(120), 50, "P3", "feeder", "tree", crew_hours=2.0,
                     etrs=((at(70), at(150)), (at(130), at(200)))),  # the second ETR came after restoration
        EventSummary("E4", at(90), None, 1, "P4", "single", "", crew_hours=0.5),
    ]


def test_restoration_metrics_by_hand():
    acks = [(at(0), at(1)), (at(5), at(20)), (at(6), at(30)), (at(7), None)]
    m = restoration_metrics(storm(), acks, as_of=at(400))
    # minutes to restore of the restored events: 180, 300, 60 -> sorted 60, 180, 300
    # numpy linear percentiles: p50 = 180; p90 = 180 + 0.8 * 120 = 276; p95 = 180 + 0.9 * 120 = 288
    assert m.minutes_to_restore == {"p50": 180.0, "p90": pytest.approx(276.0), "p95": pytest.approx(288.0)}
    assert m.events == 4 and m.events_restored == 3 and m.events_open == 1
    assert m.by_tier["P1"]["p50"] == 180.0 and m.by_tier["P1"]["events"] == 1
    assert m.by_class["feeder"]["p50"] == pytest.approx(120.0)  # 60 and 180
    # P1/P2 within 4 h: E1 (100 customers, 3 h) yes, E2 (1 customer, 5 h) no -> 100 / 101
    assert m.priority_within["within"] == 100 and m.priority_within["customers"] == 101
    assert m.priority_within["share"] == pytest.approx(100 / 101)
    # ack SLA 15 min: 1 and 15 min are within, 24 min is late, one never acknowledged -> 2 / 4
    assert m.acknowledgments["within_sla"] == 2 and m.acknowledgments["unacknowledged"] == 1
    assert m.acknowledgments["share"] == 0.5
    assert m.crew_hours == 12.0 and m.crew_hours_by_tier["P1"] == 6.0


def test_open_priority_event_is_pending_until_its_deadline():
    ev = [EventSummary("E", at(0), None, 10, "P1")]
    assert restoration_metrics(ev, as_of=at(100)).priority_within["pending"] == 10
    late = restoration_metrics(ev, as_of=at(241)).priority_within
    assert late["share"] == 0.0 and late["customers"] == 10


def test_empty_inputs_give_none_not_errors():
    m = restoration_metrics([], [])
    assert m.minutes_to_restore == {"p50": None, "p90": None, "p95": None}
    assert m.priority_within["share"] is None and m.acknowledgments["share"] is None
    assert percentiles([]) == {"p50": None, "p90": None, "p95": None}
    assert etr_accuracy([])["first_mean_abs_error_min"] is None


def test_etr_accuracy_by_hand():
    acc = etr_accuracy(storm())
    # E1 first ETR 120, restored 180: +60; last ETR 170: +10. E2: 360 vs 330: -30 (both). E3: only the ETR
    # issued before restoration counts: 150 vs 120: -30 (first and last).
    assert acc["events"] == 3
    assert acc["first_mean_abs_error_min"] == pytest.approx((60 + 30 + 30) / 3)
    assert acc["last_mean_abs_error_min"] == pytest.approx((10 + 30 + 30) / 3)
    assert acc["first_met_share"] == pytest.approx(2 / 3)  # E2, E3 restored before their ETR
    assert acc["first_within_tolerance_share"] == 1.0  # all within +/- 60


def test_curve_counts_each_customer_once():
    recs = [
        Interruption("a", at(0), at(60), "E1", customers=2),
        Interruption("a", at(30), at(90), "E2", customers=2),  # nested: a stays out until 90, counted once
        Interruption("b", at(10), at(20), "E1"),
        Interruption("c", at(-30), None, "E0"),  # out before the window opens and still out
    ]
    curve = restoration_curve(at(0), at(120), recs)
    got = [(int((t - T0).total_seconds() // 60), n) for t, n in zip(curve["time"], curve["customers_out"],
                                                                    strict=True)]
    assert got == [(0, 3), (10, 4), (20, 3), (90, 1)]


def test_post_event_summary_html_and_csv(tmp_path):
    recs = ([Interruption(f"f{i}", at(0), at(180), "E1") for i in range(100)]
            + [Interruption("s1", at(30), at(330), "E2")]
            + [Interruption(f"f{i}", at(60), at(120), "E3") for i in range(50, 100)]  # nested in E1
            + [Interruption("s2", at(90), None, "E4")])
    s = post_event_summary(at(0), at(24 * 60), storm(), recs, title="June storm", as_of=at(400))
    # distinct customers: f0..f99, s1, s2 = 102 (E3's customers were already out under E1)
    assert s.customers_affected == 102
    # peak: 100 from E1 + s1 at 30 + s2 at 90 = 102 between 90 and 180
    assert s.peak_customers_out == 102 and s.peak_time == at(90)
    assert s.events_by_class == {"feeder": 2, "single": 2}
    assert s.events_by_cause == {"(unknown)": 1, "equipment": 1, "tree": 2}
    assert s.metrics.crew_hours == 12.0
    html_path = write_html(s, tmp_path / "report.html")
    text = html_path.read_text()
    assert "June storm" in text and text.count("data:image/png;base64,") == 3
    png = base64.b64decode(text.split("data:image/png;base64,")[1].split('"')[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    paths = write_csv(s, tmp_path / "csv")
    rows = dict(csv.reader(paths[0].open()))
    assert rows["peak_customers_out"] == "102" and rows["customers_affected"] == "102"
    assert sum(1 for _ in paths[1].open()) == 5  # header + 4 events
    # without records the summary says what it had to assume
    s2 = post_event_summary(at(0), at(24 * 60), storm())
    assert s2.customers_affected == 152 and any("sum over events" in n for n in s2.notes)
    assert s2.peak_customers_out == 152  # E1 + E2 + E3 overlap between 60 and 120, E4 at 90 -> 152


def test_bad_event_is_named():
    with pytest.raises(ReliabilityError, match="'E9'.*before its start"):
        EventSummary("E9", at(10), at(0))
    with pytest.raises(ReliabilityError, match="timezone-aware"):
        EventSummary("E9", datetime(2024, 1, 1))


@pytest.mark.parametrize("span_min,n", [(20, 2), (200, 5), (3000, 100), (3 * 24 * 60, 30)])
def test_plots_of_any_storm_length_draw_without_warnings(span_min, n, recwarn):
    import random

    from outage.summary import plots

    rng = random.Random(1)
    events = []
    for i in range(n):
        start = at(rng.uniform(0, span_min / 2))
        out = timedelta(minutes=rng.uniform(1, span_min / 2))
        events.append(EventSummary(f"E{i}", start, start + out, 3, "P2", "feeder", "tree",
                                   etrs=((start, start + out * 1.1),)))
    s = post_event_summary(at(0), at(span_min + 1), events)
    assert sorted(plots(s)) == ["curve", "etr", "ttr"]
    assert [str(w.message) for w in recwarn] == []  # a time axis that cannot pick its ticks warns on stderr


def test_a_long_breakdown_sums_its_tail_in_one_row():
    """Thirty areas: the twelve largest by customer-minutes each have a row, the other eighteen share one, and no
    customer or event is lost from the totals."""
    import re

    from outage.summary_report import BREAKDOWN_ROWS, _breakdown

    events = [EventSummary(f"E{i}", at(0), at(10 + i), i + 1, "P3", "feeder", "tree", area=f"Area {i}")
              for i in range(30)]
    table = _breakdown(events, "area", at(100), "area")
    rows = re.findall(r"<tr><td[^>]*>([^<]*)</td><td[^>]*>(\d+)</td><td[^>]*>([\d,]+)</td>", table)
    assert len(rows) == BREAKDOWN_ROWS + 1
    assert [r[0] for r in rows[:3]] == ["Area 29", "Area 28", "Area 27"]  # largest first
    assert rows[-1][0] == "18 other areas" and int(rows[-1][1]) == 18
    assert sum(int(r[2].replace(",", "")) for r in rows) == sum(e.customers for e in events)
    # one group more than the limit is shown whole: a row saying "1 other area" would hide nothing
    assert "other" not in _breakdown(events[:BREAKDOWN_ROWS + 1], "area", at(100), "area")
