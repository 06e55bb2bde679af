"""``oms simulate``: seeded storms on any territory, scored like the outage benchmark.

Prints device-prediction precision and recall, the share of predicted events correctly classified (and the
confusion matrix of classes), and minutes from
first message to correct prediction for the engine and for a naive baseline (each cluster of nearby calls is one
event), so the figures can be checked on feeders nobody tuned for. Without AMI it also prints the ceiling: the
best precision and recall any engine could reach on the same storms from calls alone (:mod:`outage.ceiling`).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="score trouble-call analysis on seeded storms over a territory")
    p.add_argument("territory", help="territory GeoPackage (see `oms territory`)")
    p.add_argument("--storms", type=int, default=10, help="number of seeded storms (default 10)")
    p.add_argument("--call-rate", type=float, default=0.3, help="share of out customers who call (default 0.3)")
    p.add_argument("--ami", action="store_true", help="meters send last gasps and answer pings")
    p.add_argument("--ami-feeders", type=float, default=1.0, metavar="SHARE",
                   help="with --ami: share of the meters that are AMI (whole feeders, then part of one), the rest "
                   "calls only (default 1)")
    p.add_argument("--faults", type=int, default=None, help="faults per storm (default: 1 per 80 service points, "
                   "3..40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from gis.validate import read_valid_territory
    from outage.simulate import confusion_text, evaluate

    if args.storms < 1:
        raise ValueError(f"--storms must be >= 1, got {args.storms}")
    if not 0.0 < args.call_rate <= 1.0:
        raise ValueError(f"--call-rate must be in (0, 1], got {args.call_rate}")
    if not 0.0 < args.ami_feeders <= 1.0:
        raise ValueError(f"--ami-feeders must be in (0, 1], got {args.ami_feeders}")
    net = read_valid_territory(args.territory)  # a bad one: one line naming the file, not the engine's words
    r = evaluate(net, storms=args.storms, call_rate=args.call_rate, ami=args.ami, seed=args.seed,
                 faults=args.faults, ami_feeders=args.ami_feeders)
    r["territory"] = args.territory
    if args.json:
        print(json.dumps(r))
        return 0
    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    print(f"{args.territory}: {r['storms']} storms x {r['faults_per_storm']} faults, call-in {r['call_rate']:.0%}, "
          f"AMI {_ami_label(r)}, seed {args.seed}")
    ceilings = [c for c in (r["ceiling"], r["ceiling_timed"]) if c]
    print(f"{'':22}{'engine':>10}{'baseline':>10}" + ("   ceiling     timed" if ceilings else ""))
    for name, label in (("precision", "precision"), ("recall", "recall")):
        print(f"{label:22}{r[name]:>10.3f}{r['baseline_' + name]:>10.3f}"
              + "".join(f"{c[name]:>10.3f}" for c in ceilings))
    print(f"{'correctly classified':22}{r['classified']:>10.3f}  (of every predicted event)")
    print(f"classes (truth -> predicted): {confusion_text(r['confusion'])}")
    print(f"{'min to correct (med)':22}{fmt(r['minutes_to_correct_median'], '10.1f')}")
    print(f"{'min to correct (p90)':22}{fmt(r['minutes_to_correct_p90'], '10.1f')}")
    print(f"predicted events {r['predicted_events']}, faults that reported {r['faults_reporting']}, "
          f"wrong: {r['false_customer_side']} customer-side calls + {r['false_other']} other")
    if ceilings:
        print("ceiling: the best any engine could score on these storms from calls alone, even one told which calls "
              "share a cause; timed: told only what the calls' times can tell (outage.ceiling)")
    return 0


def _ami_label(r: dict) -> str:
    if not r["ami"]:
        return "off"
    return "on" if r["ami_feeders"] >= 1.0 else f"on {r['ami_feeders']:.0%} of the meters"
