"""Checks of a territory's tables that :func:`gis.topology.build` runs while it builds: every problem found, each
naming the offending ids.

:func:`check_references` looks at the tables alone (duplicate ids, unknown kinds, dangling references, bad
coordinates); :func:`explain_loops` names the segments that close a loop, from the arrays ``build`` traced. The
last check, service points with no transformer above them, needs the built tree and sits beside it
(:func:`gis.topology.check_service_points`). This module depends on the network tables only, so the topology can
import it; :func:`gis.validate.validate` lists all problems without raising.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gis.network import CRITICAL_KINDS, SEGMENT_KINDS, Network


def name_ids(values, limit: int = 10) -> str:
    """How a problem names the ids at fault: the first ``limit`` of ``values``, and how many more there are."""
    values = list(values)
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def check_references(net: Network) -> list[str]:
    """Table-level problems: duplicate ids, unknown kinds, dangling references, bad coordinates."""
    problems: list[str] = []
    for table, col in (
        ("nodes", "node_id"),
        ("segments", "segment_id"),
        ("service_points", "sp_id"),
        ("substations", "substation_id"),
        ("depots", "depot_id"),
    ):
        df = getattr(net, table)
        dup = df[col][df[col].duplicated()]
        if len(dup):
            problems.append(f"{table}: duplicate {col}: {name_ids(sorted(set(dup)))}")
        empty = df[col] == ""
        if empty.any():
            problems.append(f"{table}: {int(empty.sum())} row(s) with an empty {col}")

    # one hash table over the node ids, reused by every membership test below (a set of a million pandas
    # strings costs seconds to build and to probe)
    known = pd.Index(net.nodes["node_id"].to_numpy(dtype=object)).unique()

    def unknown(ids: pd.Series) -> np.ndarray:
        return known.get_indexer(ids.to_numpy(dtype=object)) < 0

    seg = net.segments
    bad_kind = seg.loc[~seg["kind"].isin(SEGMENT_KINDS)]
    if len(bad_kind):
        pairs = [f"{r.segment_id} ({r.kind!r})" for r in bad_kind.head(10).itertuples()]
        problems.append(
            f"segments: unknown kind for {name_ids(pairs)}; expected one of {', '.join(SEGMENT_KINDS)}"
        )
    for end in ("from_node", "to_node"):
        dangling = seg.loc[unknown(seg[end])]
        if len(dangling):
            pairs = [f"{r.segment_id} -> {getattr(r, end)!r}" for r in dangling.head(10).itertuples()]
            problems.append(f"segments: {end} refers to unknown node for {name_ids(pairs)}")
    self_loop = seg.loc[seg["from_node"] == seg["to_node"]]
    if len(self_loop):
        problems.append(f"segments: from_node equals to_node for {name_ids(self_loop['segment_id'])}")

    spt = net.service_points
    dangling = spt.loc[unknown(spt["node_id"])]
    if len(dangling):
        pairs = [f"{r.sp_id} -> {r.node_id!r}" for r in dangling.head(10).itertuples()]
        problems.append(f"service_points: node_id refers to unknown node for {name_ids(pairs)}")
    bad_crit = spt.loc[~spt["critical_kind"].isin(CRITICAL_KINDS)]
    if len(bad_crit):
        problems.append(
            f"service_points: unknown critical_kind for {name_ids(bad_crit['sp_id'])}; expected one of "
            f"{', '.join(CRITICAL_KINDS)}"
        )
    neg = spt.loc[spt["customers"] < 0]
    if len(neg):
        problems.append(f"service_points: negative customers for {name_ids(neg['sp_id'])}")

    subs = net.substations
    if len(subs) == 0:
        problems.append("substations: none; at least one substation with a source_node is needed")
    dangling = subs.loc[unknown(subs["source_node"])]
    if len(dangling):
        pairs = [f"{r.substation_id} -> {r.source_node!r}" for r in dangling.itertuples()]
        problems.append(f"substations: source_node refers to unknown node for {name_ids(pairs)}")

    for table in ("nodes", "service_points", "substations", "depots"):
        df = getattr(net, table)
        if len(df) == 0:
            continue
        geom = df.geometry
        missing = geom.isna() | geom.is_empty
        idcol = df.columns[0]
        if missing.any():
            problems.append(f"{table}: missing coordinates for {name_ids(df.loc[missing, idcol])}")
        ok = ~missing
        if ok.any():
            x, y = geom[ok].x.to_numpy(), geom[ok].y.to_numpy()
            bad = ~(np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180) & (np.abs(y) <= 90))
            if bad.any():
                problems.append(
                    f"{table}: coordinates out of range (lon -180..180, lat -90..90) for "
                    f"{name_ids(df.loc[ok, idcol].to_numpy()[bad])}"
                )
    return problems


def explain_loops(
    net: Network,
    seg_from,
    seg_to,
    closed,
    energized,
    parent_node,
    *,
    n_reached: int,
    n_sources: int,
    key_sorted,
) -> list[str]:
    """Name the segments that close a loop among energized nodes, with the cycle each one closes."""
    # a radial tree over r reached nodes from s sources has r - s closed edges among them
    live = closed & energized[seg_from] & energized[seg_to]
    extra = int(live.sum()) - (n_reached - n_sources)
    dup = int(np.sum(key_sorted[1:] == key_sorted[:-1])) if len(key_sorted) > 1 else 0
    if extra <= 0 and dup == 0:
        return []
    seg_ids = net.segments["segment_id"].to_numpy()
    node_ids = net.nodes["node_id"].to_numpy()
    # a closed live segment is a tree edge iff one end is the parent of the other
    a, b = seg_from, seg_to
    tree = live & ((parent_node[b] == a) | (parent_node[a] == b))
    # parallel segments between the same pair: only one of them can be the tree edge
    n = len(node_ids)
    pair_key = np.minimum(a, b).astype(np.int64) * (n + 1) + np.maximum(a, b)
    tree_ids = np.flatnonzero(tree)
    _, first = np.unique(pair_key[tree_ids], return_index=True)
    tree = np.zeros(len(seg_ids), dtype=bool)
    tree[tree_ids[first]] = True
    problems = []
    closers = np.flatnonzero(live & ~tree)
    seen_pairs: set[tuple[int, int]] = set()
    for s in closers[:10]:
        u, v = int(a[s]), int(b[s])
        pair = (min(u, v), max(u, v))
        if pair in seen_pairs or parent_node[v] == u or parent_node[u] == v:
            problems.append(
                f"loop: {seg_ids[s]} runs in parallel with another closed segment between "
                f"{node_ids[u]} and {node_ids[v]}"
            )
            continue
        seen_pairs.add(pair)
        cycle = _cycle(parent_node, u, v)
        problems.append(
            f"loop: closed segment {seg_ids[s]} joins {node_ids[u]} and {node_ids[v]}, already "
            f"connected via {name_ids(node_ids[cycle], 8)}; open a switch on it or mark it normally_open"
        )
    if len(closers) > 10:
        problems.append(f"loop: {len(closers) - 10} more loop-closing segments")
    return problems


def _cycle(parent_node, u: int, v: int) -> list[int]:
    up_u = [u]
    while parent_node[up_u[-1]] >= 0:
        up_u.append(int(parent_node[up_u[-1]]))
    pos = {n: i for i, n in enumerate(up_u)}
    path_v = [v]
    while path_v[-1] not in pos and parent_node[path_v[-1]] >= 0:
        path_v.append(int(parent_node[path_v[-1]]))
    lca = path_v[-1]
    return up_u[: pos.get(lca, len(up_u) - 1) + 1] + list(reversed(path_v[:-1]))
