"""OpenDSS import benchmark: per territory, import time, what was imported, and trouble-call accuracy.

Territories: each feeder in ``../shared/data/feeders`` (beside the repository; skipped when absent), the bundled
IEEE 123 feeder, the sample territory (built, not imported), a generated 5,000-bus feeder (:func:`write_big_feeder`:
a 3-phase trunk with single-phase laterals, a distribution transformer at each lateral bus and two service drops to
a load each; only primary buses carry coordinates, as in real models) for the "5,000 buses under 10 s" goal, and
any feeder named with ``--feeders``/``--dss``.

Columns: import seconds, model buses (nodes that are buses of the model), buses placed from neighbours, segments
by kind, service points, transformers, synthesized devices (``cpu_seconds`` in the JSON: the import's CPU time,
as the machine may be shared); then :func:`accuracy`, seeded storms through the
engine (:func:`outage.simulate.evaluate`, the figures of ``oms simulate``): precision/recall with AMI, without
AMI, and the call-only ceiling (the best any engine could score from calls alone, :mod:`outage.ceiling`), the
share of predicted events correctly classified (with and without AMI); and the goals, pass or fail per row:

* ``ami``: with AMI, precision and recall at least 0.95 (an event on a device that cuts off exactly the customers
  of the faulted one counts: scoring's rule);
* ``calls``: without AMI, recall within 0.03 of the ceiling's and precision at least 0.8 x the ceiling's;
  ``tcalls`` (``calls_ok_timed``) the same against the ceiling told only the grouping that the calls' times can
  tell (``ceiling_timed_*``, :mod:`outage.ceiling`): how far the engine is from what calls alone allow;
* ``import``: under 10 s per 5,000 buses (pro rata above 5,000 buses; 10 s below).

    .venv/bin/python bench/feeders.py                     # a table (20 storms at 30 % call-in, minutes)
    .venv/bin/python bench/feeders.py --json              # one JSON object
    .venv/bin/python bench/feeders.py --only epri_ckt5 --storms 5     # iterate on one territory
    .venv/bin/python bench/feeders.py --only epri_m1 --diagnose       # where the score is lost (diagnose())
    .venv/bin/python bench/feeders.py --feeders DIR       # every feeder folder in DIR instead of the shared one
    .venv/bin/python bench/feeders.py --dss path/Master.dss:40,-80:0.3048   # any OpenDSS master, repeatable

A model that does not import is listed with the reason and the rest go on; the exit status is then 1.

A feeder folder's master is the known one for the EPRI folders, else its only ``master*.dss``. ``--dss
PATH[:LAT,LON[:SCALE]]`` adds one master: planar coordinates are placed with their bounding box centred on LAT,LON
at SCALE metres per unit (0.3048 for feet; default: inferred by the importer, as for the folders, placed at
40,-80); coordinates already in lat/lon need neither.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.network import SEGMENT_KINDS, Network  # noqa: E402

FEEDERS = ROOT / ".." / "shared" / "data" / "feeders"
#: Masters of the EPRI folders (they hold several); other folders: their only ``master*.dss``.
EPRI = {"epri_ckt5": "Master_ckt5.dss", "epri_ckt7": "Master_ckt7.dss", "epri_k1": "Master_NoPV.dss",
        "epri_m1": "Master_NoPV.dss"}
#: Planar coordinates of the feeder folders are placed here; their unit is the importer's to infer (and state).
ANCHOR = (40.0, -80.0)
#: The goals of issue "Real utility networks".
GOAL_AMI = 0.95
GOAL_RECALL_GAP, GOAL_PRECISION_SHARE = 0.03, 0.8
GOAL_SECONDS_PER_5K = 10.0


def write_big_feeder(folder: Path, trunk: int = 152, lateral: int = 8) -> Path:
    """A generated feeder of about ``trunk * (4 * lateral + 1)`` buses (5,016 by default); returns its master."""
    lines = ["Clear", "New Circuit.big bus1=sourcebus basekv=115",
             "New Transformer.SUB phases=3 windings=2 buses=(sourcebus, t0) kvs=(115, 12.47) kvas=(20000, 20000) "
             "sub=y"]
    coords = ["sourcebus, 40.0000, -80.0010", "t0, 40.0000, -80.0000"]
    for t in range(1, trunk):
        lines.append(f"New Line.T{t} bus1=t{t - 1}.1.2.3 bus2=t{t}.1.2.3 length=0.1 units=km")
        coords.append(f"t{t}, 40.0000, {-80.0 + t * 0.0012:.4f}")
    for t in range(trunk):
        side = 1 if t % 2 else -1
        prev = f"t{t}.{t % 3 + 1}"
        for k in range(1, lateral + 1):
            bus = f"l{t}_{k}"
            lines += [f"New Line.L{t}_{k} phases=1 bus1={prev} bus2={bus}.{t % 3 + 1} length=40 units=m",
                      f"New Transformer.X{t}_{k} phases=1 windings=2 buses=({bus}.{t % 3 + 1}, s{t}_{k}.1.0) "
                      "kvs=(7.2, 0.24) kvas=(25, 25)"]
            for d in (1, 2):
                lines += [f"New Line.D{t}_{k}_{d} phases=1 bus1=s{t}_{k}.1 bus2=h{t}_{k}_{d}.1 length=15 units=m",
                          f"New Load.H{t}_{k}_{d} bus1=h{t}_{k}_{d}.1 phases=1 kv=0.24 kw=4"]
            coords.append(f"{bus}, {40.0 + side * k * 0.00036:.5f}, {-80.0 + t * 0.0012:.4f}")
            prev = f"{bus}.{t % 3 + 1}"
    lines.append("LatLongCoords coords.csv")
    (folder / "coords.csv").write_text("\n".join(coords) + "\n")
    master = folder / "big.dss"
    master.write_text("\n".join(lines) + "\n")
    return master


def figures(net: Network, seconds: float, imported: bool = True) -> dict:
    """The import columns of one territory (``imported``: from OpenDSS, so the import goal applies)."""
    seg, nodes = net.segments, net.nodes
    model = ~nodes["node_id"].str.contains("~", regex=False)
    kinds = seg["kind"].value_counts()
    synth = seg.loc[seg["synthesized"] & ~seg["kind"].isin(["line", "service", "transformer"]), "kind"]
    buses = int(model.sum())
    return {"territory": net.name, "seconds": round(seconds, 2), "buses": buses,
            "placed": int((nodes["placed"] & model).sum()),
            "segments": {k: int(kinds.get(k, 0)) for k in SEGMENT_KINDS if kinds.get(k, 0)},
            "service_points": int(len(net.service_points)), "transformers": int(kinds.get("transformer", 0)),
            "synthesized_devices": {k: int(v) for k, v in synth.value_counts().items()},
            "synthesized_transformers": int((seg["synthesized"] & (seg["kind"] == "transformer")).sum()),
            "import_ok": seconds < GOAL_SECONDS_PER_5K * max(1.0, buses / 5000) if imported else None}


def accuracy(net: Network, storms: int, seed: int, call_rate: float = 0.3) -> dict:
    """Seeded storms with AMI and without (with the call-only ceiling), and the goal checks on them."""
    from outage.simulate import evaluate

    ami = evaluate(net, storms=storms, call_rate=call_rate, ami=True, seed=seed)
    calls = evaluate(net, storms=storms, call_rate=call_rate, ami=False, seed=seed)
    ceiling, timed = calls["ceiling"], calls["ceiling_timed"]
    return {
        "ami_precision": ami["precision"], "ami_recall": ami["recall"], "ami_classified": ami["classified"],
        "calls_precision": calls["precision"], "calls_recall": calls["recall"],
        "calls_classified": calls["classified"],
        "ceiling_precision": ceiling["precision"], "ceiling_recall": ceiling["recall"],
        "ami_ok": ami["precision"] >= GOAL_AMI and ami["recall"] >= GOAL_AMI,
        "calls_ok": _calls_ok(calls, ceiling),
        # against the ceiling told only the grouping that the calls' times can tell (outage.ceiling, timed)
        "ceiling_timed_precision": timed["precision"], "ceiling_timed_recall": timed["recall"],
        "calls_ok_timed": _calls_ok(calls, timed),
        "faults_reporting": {"ami": ami["faults_reporting"], "calls": calls["faults_reporting"]},
        # the storms are a sample: the recall's standard error over the faults that reported, to read the 0.03
        # of the calls goal against (about one standard error at 20 storms on these feeders)
        "calls_recall_se": round(math.sqrt(calls["recall"] * (1 - calls["recall"]) / max(1, calls["faults_reporting"])),
                                 3),
        "confusion": {"ami": ami["confusion"], "calls": calls["confusion"]},
    }


def _calls_ok(calls: dict, ceiling: dict) -> bool:
    return (calls["recall"] >= ceiling["recall"] - GOAL_RECALL_GAP
            and calls["precision"] >= GOAL_PRECISION_SHARE * ceiling["precision"])


def diagnose(net: Network, storms: int, seed: int, ami: bool, call_rate: float = 0.3) -> dict:
    """Where the score is lost, over the storms :func:`accuracy` runs: wrong events by the kind of their device
    (the rule it is judged by) and how they sit to the faults (above one: rolled up too far; below one: not far
    enough; a call from a customer who was not out; other), and missed faults (that sent a message) by kind,
    nesting, size (service points) and the event nearest them (above, below, none). Without AMI, also the faults
    the call-only ceiling finds and the engine misses, by why (``_short_of_ceiling``), and how many the engine finds
    that the ceiling misses; the same against the timed ceiling (``timed_ceiling``: what is left is the engine's)."""
    from collections import Counter

    from outage.ceiling import ceiling_finds
    from outage.engine import OutageEngine
    from outage.simulate import generate_storm, run_storm, storm_engine
    from outage.storm import STORM_START, StormConfig, key_span

    g = OutageEngine.from_network(net, clock=lambda: STORM_START).grid
    cfg = StormConfig(faults=max(3, min(40, len(g.sp_ids) // 80)), call_rate=call_rate, ami=ami)

    def span(key: str) -> tuple[int, int]:
        return key_span(g, key)

    def kind(key: str) -> str:
        return "service" if key.startswith("sp:") else g.rule_kind[g.device_index[key]]

    def inside(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return b[0] <= a[0] and a[1] <= b[1] and a != b

    wrong, missed = Counter(), Counter()
    all_storms = [generate_storm(g, cfg, seed * 10_007 + i) for i in range(storms)]  # outage.simulate.evaluate's
    # the faults each ceiling finds (told the grouping, and timed): where the engine falls short of it, and beyond
    ceilings = {} if ami else {name: ceiling_finds(g, all_storms, cfg, timed=timed)
                               for name, timed in (("ceiling", False), ("timed_ceiling", True))}
    short = {name: Counter() for name in ceilings}
    beyond = dict.fromkeys(ceilings, 0)
    for i, storm in enumerate(all_storms):
        engine = storm_engine(g, storm, None, ami)
        predicted = run_storm(engine, storm).predicted
        found = {storm.fault_of(k) for k in predicted}
        for name, finds in ceilings.items():
            for f in finds[i] - found:
                short[name][_short_of_ceiling(g, storm, engine, f, span)] += 1
            beyond[name] += len((found & storm.reporting) - finds[i])
        for k in predicted:
            if storm.fault_of(k) is not None:
                continue
            rel = "other"
            if k.startswith("sp:") and g.sp_index[k[3:]] not in storm.cause:
                rel = "customer not out"
            elif any(inside(span(f.key), span(k)) for f in storm.faults):
                rel = "above a fault"
            elif any(inside(span(k), span(f.key)) for f in storm.faults):
                rel = "below a fault"
            wrong[f"{kind(k)}: {rel}"] += 1
        for f in storm.faults:
            if f.key not in storm.reporting or f.key in found:
                continue
            a = span(f.key)
            near = ("event above" if any(inside(a, span(k)) for k in predicted)
                    else "event below" if any(inside(span(k), a) for k in predicted) else "no event")
            n = a[1] - a[0]
            missed[f"{kind(f.key)}{' nested' if f.nested_in else ''} ({'1' if n == 1 else '2-5' if n <= 5 else '6+'}"
                   f" SPs): {near}"] += 1
    out = {"ami": ami, "wrong_events": dict(wrong.most_common()), "missed_faults": dict(missed.most_common())}
    for name in ceilings:
        out[f"short_of_{name}"] = dict(short[name].most_common())
        out[f"beyond_{name}"] = beyond[name]
    return out


def _short_of_ceiling(g, storm, engine, fault: str, span: Callable[[str], tuple[int, int]]) -> str:
    """Why the engine missed ``fault``, which the call-only ceiling found: the ceiling is told which calls share a
    cause; the engine may have put the fault's calls in one event with calls of another fault (or of customers not
    out) -- told apart by whether every one of its calls came after a wider outage over it had begun, when no call's
    time can say it is a separate outage --, judged its one call customer-side, put its calls alone on another device,
    or had no call on an account."""
    from outage.events import EventClass

    calls = {r.report_id: r.time for r in storm.reports
             if r.sp_id and storm.cause.get(g.sp_index[r.sp_id]) == fault}
    events = [ev for ev in engine.events if calls.keys() & set(ev.reports)]
    if not events:
        return "no call on an account"
    if all(ev.event_class == EventClass.CUSTOMER_SIDE for ev in events):
        return "judged customer-side"
    sp_of = {r.report_id: r.sp_id for r in storm.reports if r.sp_id}
    others = {storm.cause.get(g.sp_index[sp_of[r]], "not out") for ev in events for r in ev.reports if r in sp_of}
    if not others - {fault}:
        return "on another device"
    lo, hi = span(fault)
    first_call = min(calls.values())
    if any(f.key != fault and f.start <= first_call and (a := span(f.key))[0] <= lo and hi <= a[1]
           for f in storm.faults):
        return "calls merged, all after a wider outage began"
    return "calls merged with another fault's"


def _master_in(folder: Path) -> Path | None:
    if folder.name in EPRI and (folder / EPRI[folder.name]).is_file():
        return folder / EPRI[folder.name]
    masters = sorted(p for p in folder.glob("*.dss") if p.name.lower().startswith("master"))
    return masters[0] if len(masters) == 1 else None


def parse_dss(spec: str) -> tuple[Path, tuple[float, float] | None, float | None]:
    """``PATH[:LAT,LON[:SCALE]]`` -> (path, anchor, scale)."""
    parts = spec.split(":")
    anchor = scale = None
    if len(parts) > 1 and parts[1]:
        lat, lon = (float(v) for v in parts[1].split(","))
        anchor = (lat, lon)
    if len(parts) > 2 and parts[2]:
        scale = float(parts[2])
    return Path(parts[0]), anchor, scale


def territories(feeders: Path = FEEDERS, dss: list[str] = ()) -> tuple[list[tuple[str, Callable[[], Network]]], list]:
    """(name, loader) of every territory, and the feeder folders skipped for want of one master."""
    from data.ieee123 import ieee123_territory
    from data.sample import sample_territory
    from gis.opendss import read_opendss

    out, skipped = [], []
    if feeders.is_dir():
        for folder in sorted(p for p in feeders.iterdir() if p.is_dir()):
            master = _master_in(folder)
            if master is None:
                skipped.append(str(folder))
            else:
                out.append((folder.name, lambda p=master: read_opendss(p, anchor=ANCHOR)))
    for spec in dss:
        path, anchor, scale = parse_dss(spec)
        out.append((path.parent.name + "/" + path.stem,
                    lambda p=path, a=anchor or ANCHOR, s=scale: read_opendss(p, anchor=a, scale=s)))
    out.append(("ieee123", ieee123_territory))
    out.append(("sample", sample_territory))
    return out, skipped


def run(storms: int = 20, seed: int = 1, only: list[str] | None = None, feeders: Path = FEEDERS,
        dss: list[str] = (), skip_accuracy: bool = False, log=None, diagnosis: bool = False) -> dict:
    from gis.opendss import read_opendss

    loaders, skipped = territories(feeders, dss)
    loaders.append(("generated 5k", None))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, load in loaders:
            if only and name not in only:
                continue
            start, cpu = time.perf_counter(), time.process_time()
            try:
                net = read_opendss(write_big_feeder(Path(tmp))) if load is None else load()
            except (ValueError, OSError) as exc:  # a model that does not import: say why, and go on with the rest
                rows.append({"territory": name, "import_ok": False, "error": str(exc)})
                if log:
                    log(f"{name}: {exc}")
                continue
            row = figures(net, time.perf_counter() - start, name != "sample")
            row["cpu_seconds"] = round(time.process_time() - cpu, 2)  # the machine may be shared: wall > CPU
            row["territory"] = name
            if not skip_accuracy:
                t = time.perf_counter()
                row.update(accuracy(net, storms, seed))
                row["accuracy_seconds"] = round(time.perf_counter() - t, 1)
            if diagnosis:
                row["diagnosis"] = [diagnose(net, storms, seed, ami) for ami in (True, False)]
            rows.append(row)
            if log:
                log(f"{name}: done")
    return {"storms": storms, "seed": seed, "call_rate": 0.3, "territories": rows,
            "goals": {"ami_min": GOAL_AMI, "calls_recall_gap": GOAL_RECALL_GAP,
                      "calls_precision_share": GOAL_PRECISION_SHARE, "seconds_per_5k_buses": GOAL_SECONDS_PER_5K},
            "all_ok": None if skip_accuracy else all(r["import_ok"] is not False and r["ami_ok"] and r["calls_ok"]
                                                     for r in rows),
            "missing_feeders": None if feeders.is_dir() else str(feeders), "skipped_folders": skipped}


def _cell(c) -> str:
    if c is None:
        return f"{'-':>6}"
    if isinstance(c, bool):
        return f"{'ok' if c else 'FAIL':>6}"
    if isinstance(c, float):
        return f"{c:>6.3f}"
    if isinstance(c, int):
        return f"{c:>6,}"
    return f"{c:>6}"


def _table(result: dict) -> str:
    head = ["territory", "s", "cpu s", "buses", "placed", "lines", "servce", "switch", "brkr", "reclsr", "fuse", "reg",
            "xfmr", "SPs", "synDev", "synXf", "amiP", "amiR", "amiCl", "callP", "callR", "callCl", "ceilP", "ceilR",
            "tceilP", "tceilR", "ami", "calls", "tcalls", "import"]
    out = [f"{head[0]:<14}" + " ".join(f"{h:>6}" for h in head[1:])]
    for r in result["territories"]:
        if "error" in r:
            out.append(f"{r['territory'][:14]:<14} import failed: {r['error']}")
            continue
        s = r["segments"]
        acc = [r.get(k, "-") for k in ("ami_precision", "ami_recall", "ami_classified", "calls_precision",
                                       "calls_recall", "calls_classified", "ceiling_precision", "ceiling_recall",
                                       "ceiling_timed_precision", "ceiling_timed_recall", "ami_ok", "calls_ok",
                                       "calls_ok_timed")]
        cells = [f"{r['seconds']:.2f}", f"{r['cpu_seconds']:.2f}", r["buses"], r["placed"], s.get("line", 0), s.get("service", 0),
                 s.get("switch", 0), s.get("breaker", 0), s.get("recloser", 0), s.get("fuse", 0),
                 s.get("regulator", 0), r["transformers"], r["service_points"],
                 sum(r["synthesized_devices"].values()), r["synthesized_transformers"], *acc, r["import_ok"]]
        out.append(f"{r['territory'][:14]:<14}" + " ".join(_cell(c) for c in cells))
    if result["missing_feeders"]:
        out.append(f"(feeders not found at {result['missing_feeders']})")
    for r in result["territories"]:
        for d in r.get("diagnosis", ()):
            out.append(f"{r['territory']}, {'with' if d['ami'] else 'without'} AMI: wrong events "
                       + ("; ".join(f"{k} {v}" for k, v in d["wrong_events"].items()) or "none"))
            out.append(f"{'':{len(r['territory']) + 2}}missed faults "
                       + ("; ".join(f"{k} {v}" for k, v in d["missed_faults"].items()) or "none"))
            for name, label in (("ceiling", "the ceiling"), ("timed_ceiling", "the timed ceiling")):
                if f"short_of_{name}" in d:
                    out.append(f"{'':{len(r['territory']) + 2}}against {label}: faults it finds and the engine misses: "
                               + ("; ".join(f"{k} {v}" for k, v in d[f"short_of_{name}"].items()) or "none")
                               + f"; faults the engine finds and it misses: {d[f'beyond_{name}']}")
    for folder in result["skipped_folders"]:
        out.append(f"(skipped {folder}: no single master*.dss; name it with --dss)")
    out.append(f"{result['storms']} storms, seed {result['seed']}, call-in {result['call_rate']:.0%}; goals: AMI P and "
               f"R >= {GOAL_AMI}; calls R >= ceiling R - {GOAL_RECALL_GAP}, P >= {GOAL_PRECISION_SHARE} x ceiling P "
               "(tcalls: against the timed ceiling); "
               f"import < {GOAL_SECONDS_PER_5K:g} s per 5,000 buses. All met: "
               f"{'-' if result['all_ok'] is None else 'yes' if result['all_ok'] else 'NO'}")
    se = [r["calls_recall_se"] for r in result["territories"] if "calls_recall_se" in r]
    if se:
        out.append(f"(calls recall standard error over the storms' faults: {min(se):.3f} to {max(se):.3f})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--storms", type=int, default=20, help="seeded storms per accuracy cell (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", action="append", default=None, metavar="NAME",
                    help="only this territory (folder name, ieee123, sample, 'generated 5k'; repeatable)")
    ap.add_argument("--feeders", type=Path, default=FEEDERS, help="folder of feeder folders (default: %(default)s)")
    ap.add_argument("--dss", action="append", default=[], metavar="PATH[:LAT,LON[:SCALE]]",
                    help="an extra OpenDSS master (repeatable); planar coordinates placed at LAT,LON, SCALE m/unit")
    ap.add_argument("--skip-accuracy", action="store_true", help="import columns only")
    ap.add_argument("--diagnose", action="store_true",
                    help="also: wrong events and missed faults by device kind, nesting and position (slower)")
    args = ap.parse_args(argv)
    for spec in args.dss:
        try:
            parse_dss(spec)
        except ValueError:
            ap.error(f"--dss {spec!r}: expected PATH, PATH:LAT,LON or PATH:LAT,LON:SCALE with numbers")

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    result = run(args.storms, args.seed, args.only, args.feeders, args.dss, args.skip_accuracy, log, args.diagnose)
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 1 if any("error" in r for r in result["territories"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
