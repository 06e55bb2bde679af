"""Reliability reporting at scale: five years of per-customer interruption records for a synthetic utility.

Prints how long import-free preparation (merge, classify, day assignment) and a full report (indices with and
without MEDs, by feeder and cause, 2.5 beta threshold from the records) take. ``--json`` prints one JSON object.

    .venv/bin/python bench/reliability.py [--customers 50000] [--years 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from outage.reliability import CustomersServed, prepare, reliability_report  # noqa: E402


def synthetic_history(customers: int, years: int, seed: int) -> pd.DataFrame:
    """Roughly 1.5 sustained interruptions per customer-year in device-sized events, plus momentaries and a few
    storm days; customers sit on 100-customer-ish feeders. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    feeders = max(1, customers // 500)
    feeder_of = rng.integers(0, feeders, customers)
    t0 = datetime(2019, 1, 1, tzinfo=UTC)
    span_s = years * 365 * 86400
    rows_c, rows_s, rows_m, rows_e = [], [], [], []
    n_events = int(customers * 1.5 * years / 40)
    storm_days = rng.integers(0, years * 365, years * 3)
    for e in range(n_events):
        size = int(min(customers, rng.lognormal(3.0, 1.2)))
        members = rng.integers(0, customers, size)
        if rng.random() < 0.15:  # storm-day clustering
            start = int(storm_days[rng.integers(0, len(storm_days))]) * 86400 + int(rng.integers(0, 86400))
        else:
            start = int(rng.integers(0, span_s))
        dur = float(rng.lognormal(4.3, 1.0)) if rng.random() > 0.25 else float(rng.uniform(0.05, 4.9))
        rows_c.append(members)
        rows_s.append(np.full(size, start))
        rows_m.append(np.full(size, dur))
        rows_e.append(np.full(size, e))
    c = np.concatenate(rows_c)
    s = np.concatenate(rows_s)
    m = np.concatenate(rows_m)
    ev = np.concatenate(rows_e)
    start = pd.to_datetime(t0) + pd.to_timedelta(s, unit="s")
    end = start + pd.to_timedelta(m, unit="m")
    causes = np.array(["tree", "animal", "equipment", "weather", "unknown"])
    return pd.DataFrame({"customer_id": c.astype(str), "start": start, "end": end, "event_id": ev.astype(str),
                         "customers": 1, "feeder_id": np.char.add("F", feeder_of[c].astype(str)),
                         "cause": causes[ev % len(causes)]})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--years", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    t = time.perf_counter()
    df = synthetic_history(args.customers, args.years, args.seed)
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    prepared = prepare(df)
    prep_s = time.perf_counter() - t
    by_feeder = df.drop_duplicates("customer_id").groupby("feeder_id").size().to_dict()
    served = CustomersServed(args.customers, by_feeder)
    last_year = 2019 + args.years - 1
    t = time.perf_counter()
    rep = reliability_report(date(last_year, 1, 1), date(last_year, 12, 31), prepared, served)
    report_s = time.perf_counter() - t
    fig = {
        "customers": args.customers, "years": args.years, "records": len(df),
        "merged_interruptions": len(prepared.interruptions), "generate_s": round(gen_s, 3),
        "prepare_s": round(prep_s, 3), "report_s": round(report_s, 3),
        "records_per_s": round(len(df) / (prep_s + report_s)), "feeders": len(by_feeder),
        "t_med": rep.threshold.t_med if rep.threshold else None, "med_days": len(rep.med_days),
        "saifi": rep.system.saifi, "saidi": rep.system.saidi,
        "saidi_excluding_meds": rep.system_excluding_meds.saidi,
    }
    if args.json:
        print(json.dumps(fig))
    else:
        print(f"{'figure':<24}{'value':>16}")
        for k, v in fig.items():
            print(f"{k:<24}{(f'{v:.4f}' if isinstance(v, float) else str(v)):>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
