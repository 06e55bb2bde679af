"""Network-model benchmark: GeoPackage load, topology trace, memory, switching, locating, travel-time matrix.

For each size a synthetic territory (:func:`data.synthetic.generate_territory`) is generated and written to a
GeoPackage by one child process, then measured by a fresh child process so that the peak memory (``ru_maxrss``)
is that of loading and using the territory alone:

* load: :func:`gis.io.read_territory` of the GeoPackage;
* trace: :func:`gis.topology.build` with validation;
* peak memory after load + trace, and at the end of the child (after everything below);
* switching: open then close one closed device (fuses, reclosers, switches, breakers drawn at random), median
  and 95th percentile; breakers (whole feeders, the worst case) reported apart;
* locate: :meth:`gis.locate.Locator.nearest_many` throughput on points scattered ~20 m around service points;
* matrix: a ``--matrix`` x ``--matrix`` travel-time matrix between service points on the territory's road graph
  (:class:`gis.roads.RoadGraph`), first call (includes the one-off dead-end peeling) and a second call.

Goals (issue 2): 1M customers loaded and traced in < 20 s and < 3 GB; switching one device < 10 ms; the 500 x 500
matrix on a road graph of >= 50,000 nodes < 5 s.

    .venv/bin/python bench/network.py [--customers 100000 1000000] [--seed 7] [--json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {
    "load_trace_s": 20.0,
    "peak_mb": 3072.0,
    "switch_ms": 10.0,
    "matrix_s": 5.0,
    "matrix_min_nodes": 50_000,
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def make(customers: int, seed: int, path: Path) -> dict:
    """Child: generate and write one territory."""
    from data.synthetic import generate_territory
    from gis.io import write_territory

    t0 = time.perf_counter()
    net = generate_territory(customers, seed=seed)
    t1 = time.perf_counter()
    write_territory(net, path)
    t2 = time.perf_counter()
    return {
        "generate_s": t1 - t0,
        "write_s": t2 - t1,
        "gpkg_mb": path.stat().st_size / 2**20,
        "make_peak_mb": _peak_mb(),
    }


def measure(path: Path, switches: int, locates: int, matrix: int, seed: int) -> dict:
    """Child: load, trace and exercise one territory."""
    from gis.io import read_territory
    from gis.locate import Locator
    from gis.roads import RoadGraph
    from gis.topology import KIND_CODE, NONE, build

    rng = np.random.default_rng(seed)
    out: dict = {}
    t0 = time.perf_counter()
    net = read_territory(path)
    t1 = time.perf_counter()
    topo = build(net)
    t2 = time.perf_counter()
    out.update(
        load_s=t1 - t0,
        trace_s=t2 - t1,
        load_trace_s=t2 - t0,
        peak_after_trace_mb=_peak_mb(),
        customers=int(net.service_points["customers"].sum()),
        service_points=len(net.service_points),
        nodes=topo.n_nodes,
        segments=topo.n_segments,
    )

    # switching: open then close a closed, energized device; the tree must come back exactly
    kinds = [KIND_CODE[k] for k in ("fuse", "recloser", "switch", "breaker")]
    closed = np.flatnonzero(np.isin(topo.seg_kind, kinds) & ~topo.seg_open)
    picks = rng.choice(closed, size=min(switches, len(closed)), replace=False)
    breakers = np.flatnonzero(topo.seg_kind == KIND_CODE["breaker"])
    breakers = rng.choice(breakers, size=min(20, len(breakers)), replace=False)
    energized_before = int(topo.energized.sum())
    times = {"any": ([], []), "breaker": ([], [])}
    for label, segs in (("any", picks), ("breaker", breakers)):
        for s in segs:
            if topo.device_below(int(s)) == NONE:
                continue
            a = time.perf_counter()
            topo.set_open(int(s), True)
            b = time.perf_counter()
            topo.set_open(int(s), False)
            c = time.perf_counter()
            times[label][0].append((b - a) * 1e3)
            times[label][1].append((c - b) * 1e3)
    if int(topo.energized.sum()) != energized_before:
        raise AssertionError("switching did not restore the energized set")
    for label, (opens, closes) in times.items():
        both = np.r_[opens, closes]
        out[f"switch_{label}_n"] = len(opens)
        out[f"switch_{label}_open_median_ms"] = float(np.median(opens))
        out[f"switch_{label}_close_median_ms"] = float(np.median(closes))
        out[f"switch_{label}_p95_ms"] = float(np.percentile(both, 95))
        out[f"switch_{label}_max_ms"] = float(np.max(both))

    # locate by coordinates
    a = time.perf_counter()
    loc = Locator(net)
    b = time.perf_counter()
    xy = np.c_[net.service_points.geometry.x, net.service_points.geometry.y]
    q = xy[rng.integers(0, len(xy), locates)] + rng.normal(0, 0.0002, size=(locates, 2))
    c = time.perf_counter()
    rows, _ = loc.nearest_many(q[:, 0], q[:, 1], radius_m=100.0)
    d = time.perf_counter()
    out.update(locator_build_s=b - a, locate_per_s=locates / (d - c), locate_found=float((rows >= 0).mean()))

    # travel-time matrix between service points on the road graph
    a = time.perf_counter()
    rg = RoadGraph.from_tables(net.road_nodes, net.road_edges)
    b = time.perf_counter()
    src = xy[rng.choice(len(xy), matrix, replace=False)]
    dst = xy[rng.choice(len(xy), matrix, replace=False)]
    c = time.perf_counter()
    m = rg.travel_time_matrix(src, dst)
    d = time.perf_counter()
    rg.travel_time_matrix(dst, src)
    e = time.perf_counter()
    fallback = rg.fallback_matrix(src, dst)
    out.update(
        road_nodes=rg.n_nodes,
        road_edges=int(rg.csr.nnz),
        road_graph_build_s=b - a,
        matrix_first_s=d - c,
        matrix_second_s=e - d,
        matrix_size=matrix,
        matrix_fallback_share=float((m == fallback).mean()),
        matrix_median_min=float(np.median(m) / 60),
        peak_end_mb=_peak_mb(),
    )
    return out


def _child(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {' '.join(args)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(sizes: list[int], seed: int, switches: int, locates: int, matrix: int, keep: Path | None) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="oms-bench-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            path = folder / f"synthetic-{n}-seed{seed}.gpkg"
            made = _child(["--_make", str(n), str(seed), str(path)]) if not path.exists() else {}
            got = _child(["--_measure", str(path), str(switches), str(locates), str(matrix), str(seed)])
            results[str(n)] = {**made, **got}
    return results


def _goals(results: dict) -> dict:
    checks = {}
    for n, r in results.items():
        if int(n) >= 1_000_000:
            checks[f"{n}: load+trace < {GOALS['load_trace_s']:.0f} s"] = (
                r["load_trace_s"] < GOALS["load_trace_s"]
            )
            checks[f"{n}: peak < 3 GB"] = r["peak_after_trace_mb"] < GOALS["peak_mb"]
        checks[f"{n}: switching median < 10 ms"] = (
            max(r["switch_any_open_median_ms"], r["switch_any_close_median_ms"]) < GOALS["switch_ms"]
        )
        if r["road_nodes"] >= GOALS["matrix_min_nodes"] and r["matrix_size"] >= 500:
            checks[
                f"{n}: {r['matrix_size']}x{r['matrix_size']} matrix on {r['road_nodes']:,} road nodes < 5 s"
            ] = r["matrix_first_s"] < GOALS["matrix_s"]
    return checks


def _table(results: dict) -> str:
    rows = [
        ("customers", "customers", "{:,}"),
        ("service points", "service_points", "{:,}"),
        ("network nodes", "nodes", "{:,}"),
        ("segments", "segments", "{:,}"),
        ("generate (s)", "generate_s", "{:.1f}"),
        ("write GeoPackage (s)", "write_s", "{:.1f}"),
        ("GeoPackage (MB)", "gpkg_mb", "{:.0f}"),
        ("load GeoPackage (s)", "load_s", "{:.2f}"),
        ("trace topology (s)", "trace_s", "{:.2f}"),
        ("load + trace (s)", "load_trace_s", "{:.2f}"),
        ("peak memory after trace (MB)", "peak_after_trace_mb", "{:.0f}"),
        ("peak memory at end (MB)", "peak_end_mb", "{:.0f}"),
        ("switch open, median (ms)", "switch_any_open_median_ms", "{:.2f}"),
        ("switch close, median (ms)", "switch_any_close_median_ms", "{:.2f}"),
        ("switch p95 / max (ms)", ("switch_any_p95_ms", "switch_any_max_ms"), "{:.2f} / {:.2f}"),
        ("breaker open, median (ms)", "switch_breaker_open_median_ms", "{:.2f}"),
        ("breaker close, median (ms)", "switch_breaker_close_median_ms", "{:.2f}"),
        ("locate by coords (/s)", "locate_per_s", "{:,.0f}"),
        ("road nodes", "road_nodes", "{:,}"),
        ("road graph build (s)", "road_graph_build_s", "{:.2f}"),
        ("matrix first call (s)", "matrix_first_s", "{:.2f}"),
        ("matrix second call (s)", "matrix_second_s", "{:.2f}"),
        ("matrix size", "matrix_size", "{0}x{0}"),
    ]
    sizes = list(results)
    width = 30
    lines = [f"{'':{width}}" + "".join(f"{int(n):>16,}" for n in sizes)]
    for label, key, fmt in rows:
        cells = []
        for n in sizes:
            r = results[n]
            keys = key if isinstance(key, tuple) else (key,)
            cells.append(fmt.format(*(r[k] for k in keys)) if all(k in r for k in keys) else "-")
        lines.append(f"{label:{width}}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_make":
        n, seed, path = int(argv[1]), int(argv[2]), Path(argv[3])
        print(json.dumps(make(n, seed, path)))
        return 0
    if argv and argv[0] == "--_measure":
        path, switches, locates, matrix, seed = Path(argv[1]), *map(int, argv[2:6])
        print(json.dumps(measure(path, switches, locates, matrix, seed)))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--switches", type=int, default=300, help="devices switched (open + close each)")
    p.add_argument("--locates", type=int, default=200_000, help="coordinate look-ups")
    p.add_argument("--matrix", type=int, default=500, help="matrix side (sources = destinations count)")
    p.add_argument("--keep", type=Path, help="keep (and reuse) the generated GeoPackages in this folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    results = run(args.customers, args.seed, args.switches, args.locates, args.matrix, args.keep)
    goals = _goals(results)
    if args.json:
        print(json.dumps({"sizes": results, "goals": goals}, indent=None))
        return 0
    print(_table(results))
    print()
    for name, ok in goals.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
