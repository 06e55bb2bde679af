"""Major Event Days by the 2.5 beta method, on histories built so that alpha, beta and T_MED are known."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from outage.records import Interruption
from outage.reliability import Conventions, history_window, med_threshold, reliability_report

ALPHA, BETA = math.log(2.0), 0.8
POP_T_MED = 2.0 * math.exp(2.5 * BETA)  # exp(ln 2 + 2.5 * 0.8) = 14.7781...
PERIOD = (date(2024, 1, 1), date(2024, 12, 31))


def test_hand_example_sample_and_population():
    # history 0.5, 1, 2, 4 and a zero day: the zero is dropped, ln = -0.6931, 0, 0.6931, 1.3863
    daily = pd.Series([0.5, 1.0, 2.0, 4.0, 0.0], index=[date(2020, 1, d) for d in range(1, 6)])
    sample = med_threshold(daily)
    assert sample.alpha == pytest.approx(0.34657, abs=1e-5)
    assert sample.beta == pytest.approx(0.89485, abs=1e-5)
    assert sample.t_med == pytest.approx(13.246, abs=1e-3)
    assert sample.days_used == 4 and sample.zero_days == 1
    population = med_threshold(daily, Conventions(beta_std="population"))
    assert population.beta == pytest.approx(0.77496, abs=1e-5)
    assert population.t_med == pytest.approx(9.816, abs=1e-3)
    # an 11-minute day is a MED under one convention and not the other
    assert population.t_med < 11 < sample.t_med


def five_year_file() -> pd.DataFrame:
    """Daily totals 2018-01-01 .. 2024-12-31 for 1000 customers, in one file.

    2019-2023 (the five years before the period): days alternate SAIDI exp(alpha + beta) and exp(alpha - beta),
    so the logs have mean alpha and population standard deviation beta exactly; every 70th day is a zero day
    (excluded before the logarithm). 2018 is full of 500-minute days that must NOT enter the threshold. 2024 is
    the period: quiet 0.5-minute days, one day just above the population threshold and one far above both.
    """
    rows = []
    day = date(2018, 1, 1)
    k = j = 0
    while day <= PERIOD[1]:
        if day.year == 2018:
            saidi = 500.0
        elif day.year < 2024:
            k += 1
            if k % 70 == 0:
                saidi = 0.0
            else:
                j += 1  # counts positive days only, so + and - beta stay paired
                saidi = math.exp(ALPHA + (BETA if j % 2 == 0 else -BETA))
        elif day == date(2024, 3, 1):
            saidi = POP_T_MED + 0.004  # above exp(alpha + 2.5 beta) with beta = population std only
        elif day == date(2024, 7, 4):
            saidi = 80.0
        else:
            saidi = 0.5
        rows.append({"date": day, "customer_minutes": saidi * 1000, "customer_interruptions": round(saidi * 10),
                     "customers_served": 1000})
        day += timedelta(days=1)
    return pd.DataFrame(rows)


def test_synthetic_five_years_known_threshold():
    daily = five_year_file()
    assert history_window(PERIOD[0]) == (date(2019, 1, 1), date(2023, 12, 31))
    rep = reliability_report(*PERIOD, daily_history=daily, conventions=Conventions(beta_std="population"))
    th = rep.threshold
    hist = daily[(daily["date"] >= date(2019, 1, 1)) & (daily["date"] <= date(2023, 12, 31))]
    # 1826 days (2020 is a leap year), every 70th a zero day: 26 zero days, 1800 positive days in +/- pairs
    assert len(hist) == 1826
    assert th.zero_days == 26 and th.days_used == 1800
    n = th.days_used
    assert th.alpha == pytest.approx(ALPHA, abs=1e-12)
    assert th.beta == pytest.approx(BETA, abs=1e-12)
    assert th.t_med == pytest.approx(POP_T_MED, rel=1e-12)
    assert th.history_from == date(2019, 1, 1) and th.history_to == date(2023, 12, 31)
    assert [d for d, _ in rep.med_days] == [date(2024, 3, 1), date(2024, 7, 4)]
    # with and without MEDs from the daily totals: 364 quiet days of 0.5 plus the two MEDs
    assert rep.system.saidi == pytest.approx(364 * 0.5 + POP_T_MED + 0.004 + 80.0)
    assert rep.system_excluding_meds.saidi == pytest.approx(364 * 0.5)
    assert rep.system.customers_served == 1000
    # the sample standard deviation raises T_MED by the factor exp(2.5 beta (sqrt(n/(n-1)) - 1)): 1 March is
    # then not a MED
    sample = reliability_report(*PERIOD, daily_history=daily).threshold
    assert sample.beta == pytest.approx(th.beta * math.sqrt(n / (n - 1)), rel=1e-12)
    assert sample.t_med > POP_T_MED + 0.004
    assert [d for d, _ in reliability_report(*PERIOD, daily_history=daily).med_days] == [date(2024, 7, 4)]


def test_history_file_with_period_records():
    daily = five_year_file()
    daily = daily[daily["date"] < PERIOD[0]]  # history only; the period comes from the system's own records
    t0 = datetime(2024, 3, 1, 14, tzinfo=UTC)
    recs = [Interruption(f"c{i}", t0, t0 + timedelta(minutes=20), "STORM", feeder_id="F1") for i in range(1000)]
    t1 = datetime(2024, 3, 2, 9, tzinfo=UTC)
    recs += [Interruption(f"c{i}", t1, t1 + timedelta(minutes=10), "SMALL", feeder_id="F1") for i in range(100)]
    rep = reliability_report(*PERIOD, interruptions=recs, customers_served=1000, daily_history=daily,
                             conventions=Conventions(beta_std="population"))
    # 1 March: 1000 x 20 / 1000 = 20 min > 14.78: a MED; 2 March: 100 x 10 / 1000 = 1 min: not
    assert rep.med_days == [(date(2024, 3, 1), pytest.approx(20.0))]
    assert rep.system.saidi == pytest.approx(21.0)
    assert rep.system.saifi == pytest.approx(1.1)
    assert rep.system_excluding_meds.saidi == pytest.approx(1.0)
    assert rep.system_excluding_meds.saifi == pytest.approx(0.1)
    assert rep.groups["feeder"]["F1"]["excluding_meds"].customer_minutes == pytest.approx(1000)
    assert rep.to_dict()["med"]["days"] == [{"date": "2024-03-01", "saidi": pytest.approx(20.0)}]


def test_threshold_from_the_records_themselves():
    # three history days from records: 10 of 10 customers out 10, 20, 40 min -> SAIDI 10, 20, 40 per day
    # (every other day has no record: a zero day, excluded)
    recs = []
    for day, minutes in ((date(2023, 5, 1), 10), (date(2023, 6, 1), 20), (date(2023, 7, 1), 40)):
        start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        recs += [Interruption(f"c{i}", start, start + timedelta(minutes=minutes), f"E{day}") for i in range(10)]
    rep = reliability_report(*PERIOD, interruptions=recs, customers_served=10)
    logs = [math.log(10), math.log(20), math.log(40)]
    alpha = sum(logs) / 3
    beta = math.sqrt(sum((x - alpha) ** 2 for x in logs) / 2)
    assert rep.threshold.t_med == pytest.approx(math.exp(alpha + 2.5 * beta))
    assert rep.system.saidi == 0.0  # the period itself had nothing


def test_too_little_history_means_no_threshold():
    daily = pd.DataFrame({"date": [date(2023, 6, 1), date(2023, 6, 2)], "customer_minutes": [100.0, 0.0],
                          "customer_interruptions": [5, 0], "customers_served": [100, 100]})
    rep = reliability_report(*PERIOD, daily_history=daily, customers_served=100)
    assert rep.threshold is None and rep.med_days == []
    assert rep.system_excluding_meds.saidi == rep.system.saidi == 0.0
    assert any("no MED threshold" in n for n in rep.notes)
