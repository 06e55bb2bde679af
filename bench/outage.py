"""Outage engine benchmark: prediction accuracy over seeded storms, and throughput on a 1M-customer territory.

Accuracy (issue 3 definitions, see :mod:`outage.simulate`): on the sample territory and the IEEE 123 territory,
at call-in rates of 10/30/50 %, with AMI, with AMI on half the meters (whole feeders, then part of one; the others
calls only, as while a utility rolls meters out area by area) and without AMI, the engine's device-prediction
precision and recall, the share of predicted events correctly classified (and the confusion matrix of classes), and minutes from a fault's first message to its correct prediction,
beside a naive baseline (each cluster of nearby calls is one event), for the count rules (``normal``) and the
likelihood roll-up (``likelihood``, see :mod:`outage.rules`).

What counts as a prediction (so the figures mean one thing): every open event the engine holds at the end of the
evidence stream, in the state the engine left it (unconfirmed or probable; SCADA-confirmed events too), except
hazard-only events (wires down with the power on). Single-service events from one lone call count — nothing is
held back as "unconfirmed, not yet a prediction" — so a call from a customer who is not out, which no evidence
short of a meter ping can tell from a real service drop, is a wrong prediction (column "cust. false").

Ceiling (rows without AMI): the best precision and recall any engine could reach on the same storms from calls
alone: an engine told which calls share a cause, choosing each group's device by Bayes' rule under the simulator's
own model, at the posterior threshold that scores best (:mod:`outage.ceiling`).

Throughput: a storm of ``--messages`` reports + AMI messages (+ SCADA lockouts) through one engine on a generated
territory of ``--customers`` customers, timing every call: messages/s, per-message latency percentiles, and the
process's resident memory against the number of open events at checkpoints.

    .venv/bin/python bench/outage.py                 # everything (a few minutes)
    .venv/bin/python bench/outage.py --quick         # fewer storms, 100k customers
    .venv/bin/python bench/outage.py --json          # one JSON object with the figures
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

# this file is called outage.py: run as a script, its folder must not shadow the ``outage`` package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from outage.engine import OutageEngine  # noqa: E402
from outage.simulate import (  # noqa: E402
    STORM_START,
    StormConfig,
    confusion_text,
    evaluate,
    generate_storm,
    storm_engine,
)

CALL_RATES = (0.1, 0.3, 0.5)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def territories(names: list[str]) -> dict:
    out = {}
    for name in names:
        if name == "sample":
            from data.sample import sample_territory

            out[name] = sample_territory()
        elif name == "ieee123":
            from data.ieee123 import ieee123_territory

            out[name] = ieee123_territory()
        else:
            from gis.io import read_territory

            out[name] = read_territory(name)
    return out


def accuracy(names: list[str], storms: int, seed: int, log, rule_sets: list[str]) -> list[dict]:
    from outage.rules import RuleSets

    rows = []
    for name, net in territories(names).items():
        # AMI on half the meters: whole feeders, then part of one (IEEE 123 is one feeder: half of its meters)
        shares = (1.0, 0.5)
        for rules in rule_sets:
            for ami, share in [(True, s) for s in shares] + [(False, 1.0)]:
                for rate in CALL_RATES:
                    t = time.perf_counter()
                    r = evaluate(net, storms=storms, call_rate=rate, ami=ami, seed=seed,
                                 rules=RuleSets.default_sets(rules), ami_feeders=share)
                    r.update(territory=name, rules=rules, seconds=round(time.perf_counter() - t, 2))
                    rows.append(r)
                    log(_acc_line(r))
                    log(f"{'':30}classes (truth -> predicted): {confusion_text(r['confusion'])}")
    return rows


def _acc_line(r: dict) -> str:
    med = "-" if r["minutes_to_correct_median"] is None else f"{r['minutes_to_correct_median']:.1f}"
    p90 = "-" if r["minutes_to_correct_p90"] is None else f"{r['minutes_to_correct_p90']:.1f}"
    ami = ("half" if r["ami_feeders"] < 1.0 else "yes") if r["ami"] else "no"
    c = r["ceiling"]
    ceiling = f"{c['precision']:.3f} {c['recall']:.3f}" if c else "    -     -"
    return (f"{r['territory']:<8} {r['rules']:<10} {ami:<4} {r['call_rate']:>5.0%} "
            f"{r['precision']:>6.3f} {r['recall']:>6.3f} {r['classified']:>6.3f} {med:>6} {p90:>6}   "
            f"{r['baseline_precision']:>6.3f} {r['baseline_recall']:>6.3f} {r['faults_reporting']:>6} "
            f"{r['false_customer_side']:>5} {r['false_other']:>5}   {ceiling}")


ACC_HEADER = ("territ.  rules      AMI  call  prec.  recall class.  t-med  t-p90   base-P base-R faults cust. other"
              "   ceiling\n"
              "                                                   (min)  (min)                        false false"
              "   P     R")


def throughput(customers: int, messages: int, seed: int, log) -> dict:
    from data.synthetic import generate_territory
    from gis.topology import build

    t0 = time.perf_counter()
    net = generate_territory(customers, seed=seed)
    t1 = time.perf_counter()
    topo = build(net)
    base = OutageEngine.from_network(net, clock=lambda: STORM_START, topology=topo)
    grid = base.grid
    t2 = time.perf_counter()
    log(f"territory: {customers:,} customers, {len(grid.sp_ids):,} service points, "
        f"{grid.n_devices:,} devices; generated in {t1 - t0:.1f} s, topology + engine index in {t2 - t1:.1f} s")
    # a storm big enough for the message budget: faults scale with the territory
    faults = max(50, len(grid.sp_ids) // 110)
    storm = generate_storm(grid, StormConfig(faults=faults, call_rate=0.2, ami=True,
                                             duration=timedelta(hours=6)), seed)
    msgs = storm.messages()[:messages]
    t3 = time.perf_counter()
    n_reports = sum(1 for m in msgs if m[1] == 0)
    n_ami = sum(1 for m in msgs if m[1] == 1)
    log(f"storm: {faults:,} faults, {len(msgs):,} messages ({n_reports:,} reports, {n_ami:,} AMI, "
        f"{len(msgs) - n_reports - n_ami} SCADA) generated in {t3 - t2:.1f} s")
    del base, net
    engine = storm_engine(grid, storm)
    # a long-lived service freezes its start-up heap so the cyclic GC does not rescan millions of index objects
    gc.collect()
    gc.freeze()
    lat = np.empty(len(msgs))
    checkpoints = {int(len(msgs) * q) - 1 for q in (0.25, 0.5, 0.75, 1.0)}
    memory = []
    rss0 = _rss_mb()
    pc = time.perf_counter
    ingest_report, ingest_ami, ingest_scada = engine.ingest_report, engine.ingest_ami, engine.ingest_scada
    start, cpu0 = pc(), time.process_time()
    for i, (_, kind, m) in enumerate(msgs):
        a = pc()
        if kind == 0:
            ingest_report(m)
        elif kind == 1:
            ingest_ami((m,))
        else:
            ingest_scada(m)
        lat[i] = pc() - a
        if i in checkpoints:
            memory.append({"messages": i + 1, "open_events": len(engine.events),
                           "rss_growth_mb": round(_rss_mb() - rss0, 1)})
    total, cpu = pc() - start, time.process_time() - cpu0
    gc.unfreeze()
    ms = lat * 1e3
    out = {
        "customers": customers, "service_points": len(grid.sp_ids), "faults": faults, "messages": len(msgs),
        "reports": n_reports, "ami": n_ami, "seconds": round(total, 2),
        "messages_per_s": round(len(msgs) / total), "messages_per_cpu_s": round(len(msgs) / cpu),
        "cpu_seconds": round(cpu, 2), "latency_ms_p50": round(float(np.percentile(ms, 50)), 4),
        "latency_ms_p99": round(float(np.percentile(ms, 99)), 4),
        "latency_ms_p999": round(float(np.percentile(ms, 99.9)), 3), "latency_ms_max": round(float(ms.max()), 2),
        "open_events": len(engine.events), "pings": engine.stats["pings"],
        "gasps_absorbed": engine.stats["gasps_absorbed"], "memory": memory,
        "territory_seconds": round(t1 - t0, 1), "index_seconds": round(t2 - t1, 1),
    }
    log(f"throughput: {out['messages_per_s']:,} messages/s wall ({out['messages_per_cpu_s']:,} per CPU-second: "
        f"the machine is shared) over {total:.1f} s; latency p50 "
        f"{out['latency_ms_p50']:.3f} ms, p99 {out['latency_ms_p99']:.3f} ms, p99.9 {out['latency_ms_p999']:.2f} "
        f"ms, max {out['latency_ms_max']:.1f} ms; {out['open_events']:,} open events; "
        f"{out['pings']:,} meters pinged; {out['gasps_absorbed']:,} last gasps absorbed")
    log("memory:  " + "; ".join(f"{m['messages']:,} msgs -> {m['open_events']:,} events, +{m['rss_growth_mb']} MB"
                                 for m in memory))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storms", type=int, default=10, help="seeded storms per accuracy cell (default 10)")
    p.add_argument("--territory", action="append", default=None,
                   help="accuracy territories: sample, ieee123 or a GeoPackage path (repeatable)")
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rules", action="append", default=None,
                   help="named rule sets to score: normal (count rules, the default), storm, likelihood "
                        "(repeatable; default: normal and likelihood)")
    p.add_argument("--quick", action="store_true", help="3 storms per cell, 100k customers, 30k messages")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = p.parse_args(argv)
    if args.quick:
        args.storms, args.customers, args.messages = 3, 100_000, 30_000
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    result: dict = {"storms_per_cell": args.storms, "seed": args.seed}
    if not args.skip_accuracy:
        log(f"accuracy over {args.storms} seeded storms per cell (engine vs naive baseline)")
        log(ACC_HEADER)
        result["accuracy"] = accuracy(args.territory or ["sample", "ieee123"], args.storms, args.seed, log,
                                    args.rules or ["normal", "likelihood"])
    if not args.skip_throughput:
        log("")
        result["throughput"] = throughput(args.customers, args.messages, args.seed, log)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
