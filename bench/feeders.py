"""OpenDSS import benchmark: per territory, import time and what was imported.

Territories: each EPRI feeder in ``../shared/data/feeders`` (beside the repository; skipped when absent), the
bundled IEEE 123 feeder, the sample territory (built, not imported), and a generated 5,000-bus feeder
(:func:`write_big_feeder`: a 3-phase trunk with single-phase laterals, a distribution transformer at each lateral
bus and two service drops to a load each; only primary buses carry coordinates, as in real models) for the
"5,000 buses under 10 s" goal.

Columns: import seconds, model buses (nodes that are buses of the model), buses placed from neighbours, segments
by kind, service points, transformers, synthesized devices, and the accuracy columns of :data:`ACCURACY`.

    .venv/bin/python bench/feeders.py           # a table
    .venv/bin/python bench/feeders.py --json    # one JSON object

Adding per-territory accuracy (e.g. simulate precision/recall) is one function ``f(net) -> dict`` appended to
:data:`ACCURACY`; its keys become columns (blank until then).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gis.network import SEGMENT_KINDS, Network  # noqa: E402

FEEDERS = ROOT / ".." / "shared" / "data" / "feeders"
EPRI = {"epri_ckt5": "Master_ckt5.dss", "epri_ckt7": "Master_ckt7.dss", "epri_k1": "Master_NoPV.dss",
        "epri_m1": "Master_NoPV.dss"}
#: Planar EPRI coordinates are in feet; placed here.
ANCHOR, FEET = (40.0, -80.0), 0.3048
#: Per-territory accuracy: functions of the imported network returning {column: value}. Empty for now.
ACCURACY: list[Callable[[Network], dict]] = []
ACCURACY_COLUMNS = ("precision", "recall")


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


def figures(net: Network, seconds: float) -> dict:
    """The row of one territory."""
    seg, nodes = net.segments, net.nodes
    model = ~nodes["node_id"].str.contains("~", regex=False)
    kinds = seg["kind"].value_counts()
    synth = seg.loc[seg["synthesized"] & ~seg["kind"].isin(["line", "service", "transformer"]), "kind"]
    row = {"territory": net.name, "seconds": round(seconds, 2), "buses": int(model.sum()),
           "placed": int((nodes["placed"] & model).sum()),
           "segments": {k: int(kinds.get(k, 0)) for k in SEGMENT_KINDS if kinds.get(k, 0)},
           "service_points": int(len(net.service_points)), "transformers": int(kinds.get("transformer", 0)),
           "synthesized_devices": {k: int(v) for k, v in synth.value_counts().items()},
           "synthesized_transformers": int((seg["synthesized"] & (seg["kind"] == "transformer")).sum())}
    for f in ACCURACY:
        row.update(f(net))
    return row


def territories() -> list[tuple[str, Callable[[], Network]]]:
    from data.ieee123 import ieee123_territory
    from data.sample import sample_territory
    from gis.opendss import read_opendss

    out = []
    for folder, master in EPRI.items():
        path = FEEDERS / folder / master
        if path.is_file():
            out.append((folder, lambda p=path: read_opendss(p, anchor=ANCHOR, scale=FEET)))
    out.append(("ieee123", ieee123_territory))
    out.append(("sample", sample_territory))
    return out


def run() -> dict:
    from gis.opendss import read_opendss

    read_opendss.__module__  # noqa: B018 - imports warm before timing
    rows = []
    for name, load in territories():
        start = time.perf_counter()
        net = load()
        row = figures(net, time.perf_counter() - start)
        row["territory"] = name
        rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        master = write_big_feeder(Path(tmp))
        start = time.perf_counter()
        net = read_opendss(master)
        row = figures(net, time.perf_counter() - start)
    row["territory"] = "generated 5k"
    rows.append(row)
    return {"territories": rows, "goal_5k_seconds": 10.0, "big_ok": row["seconds"] < 10.0,
            "missing_feeders": None if FEEDERS.is_dir() else str(FEEDERS)}


def _table(result: dict) -> str:
    head = ["territory", "s", "buses", "placed", "lines", "service", "switch", "breaker", "recloser", "fuse",
            "regulator", "xfmr", "SPs", "synth dev", "synth xfmr", *ACCURACY_COLUMNS]
    out = ["  ".join(f"{h:>10}" for h in head)]
    for r in result["territories"]:
        s = r["segments"]
        cells = [r["territory"], f"{r['seconds']:.2f}", r["buses"], r["placed"], s.get("line", 0),
                 s.get("service", 0), s.get("switch", 0), s.get("breaker", 0), s.get("recloser", 0), s.get("fuse", 0),
                 s.get("regulator", 0), r["transformers"], r["service_points"],
                 sum(r["synthesized_devices"].values()), r["synthesized_transformers"],
                 *(r.get(c, "-") for c in ACCURACY_COLUMNS)]
        out.append("  ".join(f"{c:>10}" if not isinstance(c, int) else f"{c:>10,}" for c in cells))
    if result["missing_feeders"]:
        out.append(f"(EPRI feeders not found at {result['missing_feeders']})")
    out.append(f"generated 5k-bus feeder under {result['goal_5k_seconds']:g} s: {'yes' if result['big_ok'] else 'NO'}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)
    result = run()
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
