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

from gis.network import CRITICAL_KINDS, CUSTOMER_CLASSES, SEGMENT_KINDS, Network

#: Id columns of the optional tables checked for duplicates when the network has them.
EXTRA_ID_COLUMNS = {"feeders": "feeder_id", "transformers": "transformer_id"}


class Problem(str):
    """One problem found in a territory: its message (it *is* that string, so lists of problems read and join as
    before) plus ``kind`` (what the CLI groups by), ``count`` (offending elements) and ``examples`` (their ids).

    The kinds are short fixed phrases: ``duplicate id``, ``empty id``, ``unknown kind``, ``unknown node``,
    ``self loop``, ``unknown value``, ``negative customers``, ``no substation``, ``missing coordinates``,
    ``coordinates out of range``, ``loop``, ``island``, ``service point on no transformer``, ``reference``.
    """

    kind: str
    count: int
    examples: tuple

    def __new__(cls, kind: str, message: str, count: int = 1, examples=()) -> Problem:
        self = super().__new__(cls, message)
        self.kind, self.count, self.examples = kind, int(count), tuple(str(e) for e in list(examples)[:10])
        return self

    def __reduce__(self):
        return (Problem, (self.kind, str(self), self.count, self.examples))


def name_ids(values, limit: int = 10) -> str:
    """How a problem names the ids at fault: the first ``limit`` of ``values``, and how many more there are."""
    values = list(values)
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def check_references(net: Network) -> list[Problem]:
    """Table-level problems: duplicate ids, unknown kinds and values, dangling references, bad coordinates."""
    problems: list[Problem] = []
    for table, col in (
        ("nodes", "node_id"),
        ("segments", "segment_id"),
        ("service_points", "sp_id"),
        ("substations", "substation_id"),
        ("depots", "depot_id"),
        *((t, c) for t, c in EXTRA_ID_COLUMNS.items() if hasattr(net, t)),
    ):
        df = getattr(net, table)
        dup = sorted(set(df[col][df[col].duplicated()]))
        if dup:
            problems.append(Problem("duplicate id", f"{table}: duplicate {col}: {name_ids(dup)}", len(dup), dup))
        empty = df[col] == ""
        if empty.any():
            n = int(empty.sum())
            problems.append(Problem("empty id", f"{table}: {n} row(s) with an empty {col}", n))

    # one hash table over the node ids, reused by every membership test below (a set of a million pandas
    # strings costs seconds to build and to probe)
    known = pd.Index(net.nodes["node_id"].to_numpy(dtype=object)).unique()

    def unknown(ids: pd.Series) -> np.ndarray:
        return known.get_indexer(ids.to_numpy(dtype=object)) < 0

    seg = net.segments
    bad_kind = seg.loc[~seg["kind"].isin(SEGMENT_KINDS)]
    if len(bad_kind):
        pairs = [f"{r.segment_id} ({r.kind!r})" for r in bad_kind.head(10).itertuples()]
        problems.append(Problem(
            "unknown kind",
            f"segments: unknown kind for {name_ids(pairs)}; expected one of {', '.join(SEGMENT_KINDS)}",
            len(bad_kind), pairs,
        ))
    for end in ("from_node", "to_node"):
        dangling = seg.loc[unknown(seg[end])]
        if len(dangling):
            pairs = [f"{r.segment_id} -> {getattr(r, end)!r}" for r in dangling.head(10).itertuples()]
            problems.append(Problem("unknown node", f"segments: {end} refers to unknown node for {name_ids(pairs)}",
                                    len(dangling), pairs))
    self_loop = seg.loc[seg["from_node"] == seg["to_node"]]
    if len(self_loop):
        problems.append(Problem("self loop", f"segments: from_node equals to_node for "
                                f"{name_ids(self_loop['segment_id'])}", len(self_loop), self_loop["segment_id"]))

    spt = net.service_points
    dangling = spt.loc[unknown(spt["node_id"])]
    if len(dangling):
        pairs = [f"{r.sp_id} -> {r.node_id!r}" for r in dangling.head(10).itertuples()]
        problems.append(Problem("unknown node", f"service_points: node_id refers to unknown node for "
                                f"{name_ids(pairs)}", len(dangling), pairs))
    for col, allowed in (("critical_kind", CRITICAL_KINDS), ("customer_class", CUSTOMER_CLASSES)):
        bad = spt.loc[~spt[col].isin(allowed)]
        if len(bad):
            problems.append(Problem(
                "unknown value",
                f"service_points: unknown {col} for {name_ids(bad['sp_id'])}; expected one of {', '.join(allowed)}",
                len(bad), bad["sp_id"],
            ))
    neg = spt.loc[spt["customers"] < 0]
    if len(neg):
        problems.append(Problem("negative customers", f"service_points: negative customers for "
                                f"{name_ids(neg['sp_id'])}", len(neg), neg["sp_id"]))

    subs = net.substations
    if len(subs) == 0:
        problems.append(Problem("no substation", "substations: none; at least one substation with a source_node "
                                "is needed"))
    dangling = subs.loc[unknown(subs["source_node"])]
    if len(dangling):
        pairs = [f"{r.substation_id} -> {r.source_node!r}" for r in dangling.itertuples()]
        problems.append(Problem("unknown node", f"substations: source_node refers to unknown node for "
                                f"{name_ids(pairs)}", len(dangling), pairs))
    problems += _check_coordinates(net)
    return problems


def _check_coordinates(net: Network) -> list[Problem]:
    problems = []
    for table in ("nodes", "service_points", "substations", "depots"):
        df = getattr(net, table)
        if len(df) == 0:
            continue
        geom = df.geometry
        missing = geom.isna() | geom.is_empty
        idcol = df.columns[0]
        if missing.any():
            ids = df.loc[missing, idcol]
            problems.append(Problem("missing coordinates", f"{table}: missing coordinates for {name_ids(ids)}",
                                    len(ids), ids))
        ok = ~missing
        if ok.any():
            x, y = geom[ok].x.to_numpy(), geom[ok].y.to_numpy()
            bad = ~(np.isfinite(x) & np.isfinite(y) & (np.abs(x) <= 180) & (np.abs(y) <= 90))
            if bad.any():
                ids = df.loc[ok, idcol].to_numpy()[bad]
                problems.append(Problem(
                    "coordinates out of range",
                    f"{table}: coordinates out of range (lon -180..180, lat -90..90) for {name_ids(ids)}",
                    len(ids), ids,
                ))
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
            problems.append(Problem(
                "loop",
                f"loop: {seg_ids[s]} runs in parallel with another closed segment between "
                f"{node_ids[u]} and {node_ids[v]}",
                1, [seg_ids[s]],
            ))
            continue
        seen_pairs.add(pair)
        cycle = _cycle(parent_node, u, v)
        problems.append(Problem(
            "loop",
            f"loop: closed segment {seg_ids[s]} joins {node_ids[u]} and {node_ids[v]}, already "
            f"connected via {name_ids(node_ids[cycle], 8)}; open a switch on it or mark it normally_open",
            1, [seg_ids[s]],
        ))
    if len(closers) > 10:
        problems.append(Problem("loop", f"loop: {len(closers) - 10} more loop-closing segments",
                                len(closers) - 10, seg_ids[closers[10:20]]))
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


def unreachable_nodes(n_nodes: int, seg_from, seg_to, source_nodes) -> np.ndarray:
    """Indices of the nodes no source reaches even with every segment closed: broken data (a missing segment, a
    wrong node id), unlike nodes behind a normally open or out-of-service element, which are de-energized by design.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    ok = (seg_from >= 0) & (seg_to >= 0)
    g = sp.coo_matrix((np.ones(int(ok.sum()), dtype=np.int8), (seg_from[ok], seg_to[ok])),
                      shape=(n_nodes, n_nodes))
    _, label = connected_components(g, directed=False)
    fed = np.zeros(label.max(initial=-1) + 1, dtype=bool)
    src = np.asarray(source_nodes)
    fed[label[src[src >= 0]]] = True
    return np.flatnonzero(~fed[label])


def island_problem(node_ids, unreached) -> list[Problem]:
    """The ``island`` problem for ``unreached`` node indices (see :func:`unreachable_nodes`), if any."""
    if len(unreached) == 0:
        return []
    ids = node_ids[unreached]
    return [Problem("island", f"island: {len(unreached)} node(s) no substation source reaches through any segment "
                    f"(open or closed): {name_ids(ids, 20)}", len(ids), ids)]
