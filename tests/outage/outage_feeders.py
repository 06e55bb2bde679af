"""Hand-made and generated radial feeders for outage tests.

``tree_feeder`` is a fully regular feeder (breaker -> recloser -> fuses -> transformers -> service points) whose
numbers are easy to reason about in roll-up tests; ``random_territory`` is a seeded, irregular multi-feeder territory
for simulator and property tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from shapely.geometry import Point

from gis.network import Network
from outage.engine import OutageEngine
from outage.reports import Report
from outage.rules import RuleSet, RuleSets


def _build(nodes: dict[str, tuple[float, float]], segs: list[tuple], sps: list[tuple], subs: list[tuple],
           name: str) -> Network:
    nodes_df = pd.DataFrame({"node_id": list(nodes), "geometry": [Point(*c) for c in nodes.values()]})
    seg_df = pd.DataFrame(segs, columns=["segment_id", "from_node", "to_node", "kind", "normally_open", "feeder_id"])
    sp_df = pd.DataFrame(sps, columns=["sp_id", "node_id", "customers", "critical_kind"])
    sp_df["meter"] = ["M-" + s for s in sp_df["sp_id"]]
    sp_df["geometry"] = [Point(*nodes[n]) for n in sp_df["node_id"]]
    sub_df = pd.DataFrame(subs, columns=["substation_id", "source_node"])
    sub_df["geometry"] = [Point(*nodes[n]) for n in sub_df["source_node"]]
    return Network.from_tables({"nodes": nodes_df, "segments": seg_df, "service_points": sp_df,
                                "substations": sub_df}, name=name)


def tree_feeder(fuses: int = 3, xfmrs: int = 3, sps: int = 3, feeders: int = 1,
                critical: dict[str, str] | None = None, customers: dict[str, int] | None = None,
                sps_at: dict[str, int] | None = None) -> Network:
    """``feeders`` feeders on one substation; each: BRK{f} -> R{f} -> F{f}.{i} -> T{f}.{i}.{j} -> sp{f}.{i}.{j}.{k}.

    Every service point has meter ``M-<sp_id>`` and one customer (``customers`` maps sp ids to more);
    ``critical`` maps sp ids to a critical kind; ``sps_at`` gives transformers other than ``sps`` service points.
    """
    critical, customers, sps_at = critical or {}, customers or {}, sps_at or {}
    nodes = {"S": (11.5, 50.0)}
    segs, sp_rows = [], []
    for f in range(1, feeders + 1):
        y0 = 50.0 + 0.02 * (f - 1)
        nodes[f"b{f}"] = (11.51, y0)
        nodes[f"r{f}"] = (11.52, y0)
        segs += [(f"BRK{f}", "S", f"b{f}", "breaker", False, f"FD{f}"),
                 (f"R{f}", f"b{f}", f"r{f}", "recloser", False, f"FD{f}")]
        for i in range(1, fuses + 1):
            fn = f"f{f}.{i}"
            nodes[fn] = (11.52 + 0.01 * i, y0)
            segs.append((f"L{f}.{i}", f"r{f}", f"l{f}.{i}", "line", False, f"FD{f}"))
            nodes[f"l{f}.{i}"] = (11.52 + 0.01 * i, y0 + 0.001)
            segs.append((f"F{f}.{i}", f"l{f}.{i}", fn, "fuse", False, f"FD{f}"))
            for j in range(1, xfmrs + 1):
                tn = f"t{f}.{i}.{j}"
                nodes[tn] = (11.52 + 0.01 * i, y0 + 0.002 * j)
                segs.append((f"T{f}.{i}.{j}", fn, tn, "transformer", False, f"FD{f}"))
                for k in range(1, sps_at.get(f"T{f}.{i}.{j}", sps) + 1):
                    sid = f"sp{f}.{i}.{j}.{k}"
                    sp_rows.append((sid, tn, customers.get(sid, 1), critical.get(sid, "none")))
    return _build(nodes, segs, sp_rows, [("SUB1", "S")], "tree")


def random_territory(seed: int = 0, substations: int = 2, feeders_per_sub: int = 3, fuses: tuple = (3, 8),
                     xfmrs: tuple = (2, 6), sps: tuple = (1, 8)) -> Network:
    """An irregular territory: per feeder a breaker, one or two reclosers in series, fuses on laterals (some
    transformers straight on the backbone), transformers with 1-8 service points. Seeded."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, tuple[float, float]] = {}
    segs, sp_rows, subs = [], [], []
    n = 0

    def node(x, y):
        nonlocal n
        n += 1
        nodes[f"n{n}"] = (x, y)
        return f"n{n}"

    for s in range(substations):
        src = node(11.5 + 0.2 * s, 50.0)
        subs.append((f"SUB{s + 1}", src))
        for f in range(feeders_per_sub):
            fid = f"S{s + 1}F{f + 1}"
            x, y = nodes[src]
            y += 0.01 * (f + 1)
            head = node(x, y)
            segs.append((f"BRK-{fid}", src, head, "breaker", False, fid))
            up = head
            for r in range(int(rng.integers(1, 3))):
                rn = node(x + 0.01 * (r + 1), y)
                segs.append((f"R-{fid}-{r + 1}", up, rn, "recloser", False, fid))
                up = rn
                for i in range(int(rng.integers(*fuses))):
                    ln = node(x + 0.01 * (r + 1) + 0.002 * i, y + 0.001)
                    segs.append((f"L-{fid}-{r + 1}-{i}", up, ln, "line", False, fid))
                    lateral = rng.random() < 0.8
                    if lateral:
                        fn = node(x + 0.01 * (r + 1) + 0.002 * i, y + 0.002)
                        segs.append((f"F-{fid}-{r + 1}-{i}", ln, fn, "fuse", False, fid))
                    else:
                        fn = ln
                    for j in range(int(rng.integers(*xfmrs)) if lateral else 1):
                        tn = node(nodes[fn][0] + 0.0003 * j, nodes[fn][1] + 0.0005 * (j + 1))
                        tid = f"T-{fid}-{r + 1}-{i}-{j}"
                        segs.append((tid, fn, tn, "transformer", False, fid))
                        for k in range(int(rng.integers(*sps))):
                            crit = "life_support" if rng.random() < 0.01 else "none"
                            sp_rows.append((f"{tid}-{k}", tn, int(rng.integers(1, 3)), crit))
    return _build(nodes, segs, sp_rows, subs, f"random-{seed}")


# -- engine helpers shared by the roll-up tests ---------------------------------------------------------------------
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def engine(feeder: dict | None = None, **kw) -> OutageEngine:
    """An engine over :func:`tree_feeder` (``feeder``: its arguments) on a clock fixed at ``T0``."""
    return OutageEngine.from_network(tree_feeder(**(feeder or {})), clock=lambda: T0, **kw)


def call(rid: str, sp: str, minutes: float = 0, **kw) -> Report:
    return Report(rid, at(minutes), sp_id=sp, **kw)


def keys(eng: OutageEngine) -> set[str]:
    return {e.key for e in eng.events}


def one_rule_set(**kw) -> RuleSets:
    return RuleSets({"normal": RuleSet(**kw)})
