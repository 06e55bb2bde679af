"""Solomon / Gehring & Homberger VRPTW benchmark of the dispatch routing core, with PyVRP as the peer.

    python bench/solomon.py [INSTANCE ...] [--dir DIR] [--bks CSV] [--time-limit S] [--workers N]
                            [--no-pyvrp] [--json]

INSTANCE is a name (``C101``) looked up in ``--dir`` (default: ``../shared/benchmarks/solomon`` from the repo root)
or a path to a file in the standard text format; no INSTANCE runs every ``*.txt`` in ``--dir``. Objective: total
distance only, DIMACS convention (every edge truncated to 0.1: integers in tenths, times too), compared with the
distance-only best-known solutions (``bks_dimacs.csv``). Each solution is checked by :func:`check` here, not by the
solver: every customer once, capacity, time windows, depot window. PyVRP solves the same integer instance with the
same time limit in the same run. OR-Tools runs :func:`dispatch.routing.distance_params` (iterated local search,
a two-strategy portfolio with ``--workers 2``).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispatch.routing import RoutingData, distance_params, solve_routing  # noqa: E402

DEFAULT_DIR = REPO.parent / "shared" / "benchmarks" / "solomon"


@dataclass
class Instance:
    """A VRPTW instance in tenths (DIMACS): node 0 is the depot."""

    name: str
    vehicles: int
    capacity: int
    xy: np.ndarray
    demand: np.ndarray
    ready: np.ndarray
    due: np.ndarray
    service: np.ndarray
    dist: np.ndarray  # (n, n) int, tenths: floor(10 x euclidean)


def read_instance(path: Path) -> Instance:
    """Parse the Solomon text layout (also Gehring & Homberger): name, VEHICLE block, CUSTOMER table."""
    lines = [ln.split() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    name = lines[0][0]
    try:
        v_at = next(i for i, ln in enumerate(lines) if ln[0].upper() == "VEHICLE")
        vehicles, capacity = int(lines[v_at + 2][0]), int(lines[v_at + 2][1])
        rows = np.array([[float(x) for x in ln] for ln in lines if len(ln) == 7 and _numeric(ln)])
    except (StopIteration, IndexError, ValueError) as exc:
        raise ValueError(f"{path}: not a Solomon-format instance ({exc})") from None
    if rows[0, 0] != 0:
        raise ValueError(f"{path}: the first customer row must be the depot (number 0)")
    xy = rows[:, 1:3]
    euclid = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    dist = np.floor(np.round(10 * euclid, 6)).astype(np.int64)
    return Instance(
        name,
        vehicles,
        capacity,
        xy,
        rows[:, 3].astype(np.int64),
        (rows[:, 4] * 10).astype(np.int64),
        (rows[:, 5] * 10).astype(np.int64),
        (rows[:, 6] * 10).astype(np.int64),
        dist,
    )


def _numeric(tokens: list[str]) -> bool:
    try:
        [float(t) for t in tokens]
        return True
    except ValueError:
        return False


def check(inst: Instance, routes: list[list[int]]) -> tuple[int, list[str]]:
    """Independent feasibility check and cost (tenths). Returns ``(distance, problems)``."""
    problems: list[str] = []
    n = len(inst.xy)
    seen = np.zeros(n, dtype=int)
    total = 0
    used = [r for r in routes if r]
    if len(used) > inst.vehicles:
        problems.append(f"{len(used)} routes > fleet {inst.vehicles}")
    for k, route in enumerate(used):
        t, load, prev = inst.ready[0], 0, 0
        for c in route:
            seen[c] += 1
            total += inst.dist[prev, c]
            t = max(t + inst.dist[prev, c], inst.ready[c])
            if t > inst.due[c]:
                problems.append(f"route {k}: customer {c} starts at {t / 10} after due {inst.due[c] / 10}")
            t += inst.service[c]
            load += inst.demand[c]
            prev = c
        total += inst.dist[prev, 0]
        if t + inst.dist[prev, 0] > inst.due[0]:
            problems.append(
                f"route {k}: back at the depot at {(t + inst.dist[prev, 0]) / 10} after its window"
            )
        if load > inst.capacity:
            problems.append(f"route {k}: load {load} > capacity {inst.capacity}")
    missing = np.flatnonzero(seen[1:] == 0) + 1
    twice = np.flatnonzero(seen[1:] > 1) + 1
    if len(missing):
        problems.append(f"{len(missing)} customers not visited (e.g. {missing[:5].tolist()})")
    if len(twice):
        problems.append(f"customers visited more than once: {twice[:5].tolist()}")
    return int(total), problems


def solve_ortools(inst: Instance, time_limit: float, workers: int) -> tuple[list[list[int]], float]:
    n, v = len(inst.xy), inst.vehicles
    data = RoutingData(
        travel=inst.dist,
        service=inst.service,
        ready=inst.ready,
        due=inst.due,
        starts=[0] * v,
        ends=[0] * v,
        shift_open=np.full(v, inst.ready[0]),
        shift_close=np.full(v, inst.due[0]),
        demand=inst.demand,
        capacity=np.full(v, inst.capacity),
    )
    assert n == data.n_nodes
    t0 = time.perf_counter()
    # The distance preset (ILS portfolio): the objective here is distance only, unlike crew dispatch.
    result = solve_routing(data, distance_params(time_limit, workers))
    return result.routes, time.perf_counter() - t0


def solve_pyvrp(inst: Instance, time_limit: float) -> tuple[list[list[int]], float]:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    n = len(inst.xy)
    horizon = int(inst.due[0])
    locations = [pyvrp.Location(x=int(x), y=int(y)) for x, y in inst.xy]
    depot = pyvrp.Depot(location=0, tw_early=int(inst.ready[0]), tw_late=horizon)
    clients = [
        pyvrp.Client(
            location=i,
            delivery=[int(inst.demand[i])],
            service_duration=int(inst.service[i]),
            tw_early=int(inst.ready[i]),
            tw_late=int(inst.due[i]),
        )
        for i in range(1, n)
    ]
    vt = pyvrp.VehicleType(
        num_available=inst.vehicles, capacity=[inst.capacity], tw_early=int(inst.ready[0]), tw_late=horizon
    )
    data = pyvrp.ProblemData(locations, clients, [depot], [vt], [inst.dist], [inst.dist])
    t0 = time.perf_counter()
    result = pyvrp.solve(data, stop=MaxRuntime(time_limit), seed=1, collect_stats=False)
    seconds = time.perf_counter() - t0
    routes = (
        [[a.idx + 1 for a in r if a.is_client()] for r in result.best.routes()]
        if result.is_feasible()
        else []
    )
    return routes, seconds


def read_bks(path: Path | None) -> dict[str, float]:
    if path is None or not path.exists():
        return {}
    with path.open() as f:
        return {row["instance"].upper(): float(row["distance"]) for row in csv.DictReader(f)}


def family(name: str) -> str:
    """C1/C2/R1/R2/RC1/RC2 for Solomon (``C101``), also for Gehring & Homberger (``C1_2_1``)."""
    letters = "".join(ch for ch in name.upper() if ch.isalpha())
    digits = name.upper()[len(letters) :]
    return letters + (digits[0] if digits else "")


def run(paths: list[Path], bks: dict[str, float], time_limit: float, workers: int, peer: bool) -> dict:
    rows = []
    for path in paths:
        inst = read_instance(path)
        key = inst.name.upper()
        row = {"instance": inst.name, "family": family(inst.name), "bks": bks.get(key)}
        solvers = [("ortools", lambda i=inst: solve_ortools(i, time_limit, workers))]
        if peer:
            solvers.append(("pyvrp", lambda i=inst: solve_pyvrp(i, time_limit)))
        for label, fn in solvers:
            routes, seconds = fn()
            cost, problems = check(inst, routes)
            feasible = bool(routes) and not problems
            gap = (100.0 * (cost / 10 - row["bks"]) / row["bks"]) if feasible and row["bks"] else None
            row[label] = {
                "distance": cost / 10 if feasible else None,
                "gap_pct": gap,
                "vehicles": sum(1 for r in routes if r),
                "feasible": feasible,
                "problems": problems[:3],
                "seconds": round(seconds, 2),
            }
        rows.append(row)
        _print_row(row, peer)
    return {
        "time_limit_s": time_limit,
        "workers": workers,
        "instances": rows,
        "summary": summarize(rows, ["ortools"] + (["pyvrp"] if peer else [])),
    }


def summarize(rows: list[dict], labels: list[str]) -> dict:
    out: dict = {}
    for label in labels:
        by_family: dict[str, list[float]] = {}
        for r in rows:
            g = r[label]["gap_pct"]
            if g is not None:
                by_family.setdefault(r["family"], []).append(g)
        gaps = [g for v in by_family.values() for g in v]
        out[label] = {
            "mean_gap_pct": statistics.fmean(gaps) if gaps else None,
            "max_gap_pct": max(gaps) if gaps else None,
            "families": {f: statistics.fmean(v) for f, v in sorted(by_family.items())},
            "infeasible_or_empty": [r["instance"] for r in rows if not r[label]["feasible"]],
            "mean_vehicles": statistics.fmean(r[label]["vehicles"] for r in rows) if rows else None,
            "mean_seconds": statistics.fmean(r[label]["seconds"] for r in rows) if rows else None,
        }
    return out


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _print_row(row: dict, peer: bool) -> None:
    o = row["ortools"]
    line = (
        f"{row['instance']:<10} {_fmt(row['bks'], '9.1f')}  "
        f"{_fmt(o['distance'], '9.1f')} {_fmt(o['gap_pct'], '6.2f')}% {o['vehicles']:3d} "
        f"{'ok' if o['feasible'] else 'INFEASIBLE'} {o['seconds']:5.1f}s"
    )
    if peer:
        p = row["pyvrp"]
        line += (
            f"   {_fmt(p['distance'], '9.1f')} {_fmt(p['gap_pct'], '6.2f')}% {p['vehicles']:3d} "
            f"{'ok' if p['feasible'] else 'INFEASIBLE'} {p['seconds']:5.1f}s"
        )
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("instances", nargs="*", help="names (looked up in --dir) or paths; default: all in --dir")
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="instance directory")
    ap.add_argument("--bks", type=Path, default=None, help="best-known CSV (default: DIR/bks_dimacs.csv)")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds per instance and solver")
    ap.add_argument("--workers", type=int, default=2, help="OR-Tools processes (strategy portfolio)")
    ap.add_argument("--no-pyvrp", action="store_true", help="skip the PyVRP peer")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)

    paths = []
    for name in args.instances or sorted(p.stem for p in args.dir.glob("*.txt")):
        p = Path(name)
        paths.append(p if p.exists() else args.dir / f"{name.upper()}.txt")
    for p in paths:
        if not p.exists():
            ap.error(f"instance file not found: {p}")
    bks = read_bks(args.bks or args.dir / "bks_dimacs.csv")

    peer = not args.no_pyvrp
    if not args.json:
        print(
            f"time limit {args.time_limit:g} s per instance; OR-Tools workers {args.workers}; distance-only, "
            f"DIMACS truncation"
        )
        print(
            f"{'instance':<10} {'bks':>9}  {'or-tools':>9} {'gap':>7} {'veh':>3}"
            + (f"{'':17}{'pyvrp':>9} {'gap':>7} {'veh':>3}" if peer else "")
        )
    import contextlib
    import io

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if args.json else contextlib.nullcontext():
        result = run(paths, bks, args.time_limit, args.workers, peer)
    if args.json:
        print(json.dumps(result))
        return 0
    print()
    for label, s in result["summary"].items():
        fams = "  ".join(f"{f} {g:.2f}%" for f, g in s["families"].items())
        print(
            f"{label:<8} mean gap {_fmt(s['mean_gap_pct'], '.2f')}% (max {_fmt(s['max_gap_pct'], '.2f')}%), "
            f"mean vehicles {_fmt(s['mean_vehicles'], '.1f')}, mean time {_fmt(s['mean_seconds'], '.1f')} s, "
            f"infeasible/empty: {len(s['infeasible_or_empty'])}"
        )
        print(f"         {fams}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
