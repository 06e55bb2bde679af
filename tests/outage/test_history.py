"""CSV import of interruption history (documented mapping, per-column overrides) and the ``oms report`` CLI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from api.commands.main import main
from outage.history import parse_column_overrides, read_history, steps_as_interruptions
from outage.reliability import ReliabilityError, reliability_report


def write(path, text: str):
    path.write_text(text.strip() + "\n")
    return path


def test_interruptions_with_overridden_columns_and_local_times(tmp_path):
    f = write(tmp_path / "old.csv", """
ACCT_NO,OUT_TIME,ON_TIME,Ticket,Type,Cust
A1,2023-07-01 10:00,2023-07-01 11:30,T1,S,2
A2,2023-07-01T10:00:00+00:00,2023-07-01T10:02:00+00:00,T1,M,
A3,2023-07-02 09:00,,T2,,1
""")
    cols = parse_column_overrides(["interruptions.customer_id=ACCT_NO", "interruptions.start=OUT_TIME",
                                   "interruptions.end=on_time", "interruptions.event_id=Ticket",
                                   "interruptions.kind=Type", "interruptions.customers=Cust"])
    df = read_history(f, "interruptions", cols["interruptions"], tz="Europe/Berlin")
    # 10:00 local Berlin in July (UTC+2) is 08:00 UTC; a time with an offset is kept as given
    assert df["start"].iloc[0] == pd.Timestamp("2023-07-01 08:00", tz="UTC")
    assert df["start"].iloc[1] == pd.Timestamp("2023-07-01 10:00", tz="UTC")
    assert df["kind"].tolist() == ["sustained", "momentary", ""]
    assert df["customers"].tolist() == [2, 1, 1]  # blank means one customer
    assert pd.isna(df["end"].iloc[2])
    ix = reliability_report(date(2023, 7, 1), date(2023, 7, 31), interruptions=df, customers_served=10).system
    assert ix.customer_interruptions == 3  # A1 (2 customers) and the open A3
    assert ix.customer_minutes == pytest.approx(2 * 90)
    assert ix.momentary_interruptions == 1


def test_errors_name_file_line_and_column(tmp_path):
    f = write(tmp_path / "bad.csv", """
customer_id,start,end
A1,2023-07-01 10:00,2023-07-01 11:00
A2,yesterday-ish,2023-07-01 11:00
""")
    with pytest.raises(ReliabilityError, match=r"bad.csv: column 'start', line 3: 'yesterday-ish' is not a time"):
        read_history(f, "interruptions")
    with pytest.raises(ReliabilityError, match=r"column 'ACCT' for field 'customer_id' not found"):
        read_history(f, "interruptions", {"customer_id": "ACCT"})
    with pytest.raises(ReliabilityError, match="no field 'colour'"):
        parse_column_overrides(["interruptions.colour=C"])
    with pytest.raises(ReliabilityError, match="KIND.FIELD=COLUMN"):
        parse_column_overrides(["customer_id=ACCT"])


def test_steps_become_groups_without_customer_identity(tmp_path):
    f = write(tmp_path / "steps.csv", """
event_id,step,start,end,customers
E1,1,2023-03-01T10:00Z,2023-03-01T11:00Z,100
E1,2,2023-03-01T10:00Z,2023-03-01T13:00Z,40
E2,1,2023-03-05T08:00Z,2023-03-05T08:03Z,20
""")
    recs = steps_as_interruptions(read_history(f, "steps"))
    rep = reliability_report(date(2023, 3, 1), date(2023, 3, 31), interruptions=recs, customers_served=1000,
                             customer_identity=False)
    # CI = 100 + 40 (E2's 3-minute step is momentary); CMI = 100 x 60 + 40 x 180 = 13,200
    assert rep.system.customer_interruptions == 140
    assert rep.system.customer_minutes == pytest.approx(13_200)
    assert rep.system.maifi == pytest.approx(20 / 1000)
    assert rep.system.caifi is None and rep.source == "restoration steps"


def _daily_csv(tmp_path) -> tuple:
    """Five years of daily totals (one file) with a steady 1-minute SAIDI except every 10th day at 3 minutes."""
    rows = ["date,customer_minutes,customer_interruptions,customers_served"]
    d = date(2018, 1, 1)
    i = 0
    while d < date(2023, 1, 1):
        i += 1
        rows.append(f"{d},{300 if i % 10 == 0 else 100},{5},100")
        d += timedelta(days=1)
    return write(tmp_path / "daily.csv", "\n".join(rows))


def test_cli_reliability_from_csv_files(tmp_path, capsys):
    daily = _daily_csv(tmp_path)
    start = datetime(2023, 2, 1, 10, tzinfo=UTC)
    lines = ["customer_id,start,end,event_id,feeder_id,cause"]
    for c in range(60):  # a big day: 60 of 100 customers out 300 min -> SAIDI 180: a MED
        lines.append(f"c{c},{start.isoformat()},{(start + timedelta(minutes=300)).isoformat()},BIG,F1,storm")
    small = start + timedelta(days=3)
    for c in range(5):  # a normal day: 5 customers 20 min -> SAIDI 1
        lines.append(f"c{c},{small.isoformat()},{(small + timedelta(minutes=20)).isoformat()},S1,F2,tree")
    intr = write(tmp_path / "intr.csv", "\n".join(lines))
    rc = main(["report", "reliability", "--from", "2023-01-01", "--to", "2023-12-31", "--interruptions",
               str(intr), "--daily-history", str(daily), "--customers-served", "100", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["med"]["days"] == [{"date": "2023-02-01", "saidi": pytest.approx(180.0)}]
    assert out["system"]["saidi"] == pytest.approx(181.0)
    assert out["system_excluding_meds"]["saidi"] == pytest.approx(1.0)
    assert out["system"]["saifi"] == pytest.approx(0.65)
    assert out["med"]["threshold"]["history_from"] == "2018-01-01"
    assert out["conventions"]["beta_std"] == "sample"
    assert set(out["groups"]["feeder"]) == {"F1", "F2"}
    # the text form runs too
    assert main(["report", "reliability", "--from", "2023-01-01", "--to", "2023-12-31", "--interruptions",
                 str(intr), "--customers-served", "100", "--beta-std", "population"]) == 0
    text = capsys.readouterr().out
    assert "SAIFI" in text and "MED threshold" in text


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["report", "reliability", "--from", "2023-01-01", "--to", "2023-12-31"]) == 2
    assert "give --interruptions" in capsys.readouterr().err
    assert main(["report", "reliability", "--from", "2023-01-01", "--to", "2023-12-31", "--interruptions",
                 str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_cli_event_report(tmp_path, capsys):
    events = write(tmp_path / "events.csv", """
event_id,start,restored,customers,tier,event_class,cause,crew_hours
E1,2024-06-10T12:00Z,2024-06-10T15:00Z,100,P1,feeder,tree,6
E2,2024-06-10T12:30Z,2024-06-10T17:30Z,1,P2,single_customer,equipment,3.5
E3,2024-06-12T01:00Z,,4,P4,single_customer,,1
""")
    etrs = write(tmp_path / "etrs.csv", """
event_id,issued_at,etr
E1,2024-06-10T12:10Z,2024-06-10T14:00Z
E1,2024-06-10T13:40Z,2024-06-10T14:50Z
E2,2024-06-10T12:40Z,2024-06-10T18:00Z
""")
    acks = write(tmp_path / "acks.csv", """
reported_at,acknowledged_at
2024-06-10T12:01Z,2024-06-10T12:02Z
2024-06-10T12:31Z,2024-06-10T13:00Z
""")
    out = tmp_path / "storm"
    rc = main(["report", "event", "--from", "2024-06-10", "--to", "2024-06-11", "--events", str(events),
               "--etrs", str(etrs), "--acks", str(acks), "--out", str(out), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["peak_customers_out"] == 101  # E3 falls outside the window
    assert res["restoration"]["minutes_to_restore"]["p50"] == pytest.approx(240.0)  # 180 and 300
    assert res["restoration"]["priority_within"]["share"] == pytest.approx(100 / 101)
    assert res["restoration"]["acknowledgments"]["share"] == 0.5
    assert res["etr_accuracy"]["last_mean_abs_error_min"] == pytest.approx((10 + 30) / 2)
    assert (out / "report.html").exists() and (out / "summary.csv").exists()
    assert main(["report", "event", "--from", "2024-06-10", "--to", "2024-06-11", "--events", str(events)]) == 0
    assert "peak_customers_out" in capsys.readouterr().out
