"""Radial topology: who feeds whom, in integer arrays.

:func:`build` traces from every substation source through closed segments (scipy's C breadth-first search, not a
Python loop) and returns a :class:`Topology` with numpy parent arrays over integer node and segment indices, each
node's nearest upstream device, the device tree, and downstream customer counts. networkx is used only to explain a
problem (the cycle behind a loop), never on the hot path.

Switching (:meth:`Topology.set_open`) recomputes only the affected subtree plus the chain of ancestors above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

from gis.checks import Problem, check_references, explain_loops, island_problem, name_ids, unreachable_nodes
from gis.network import DEVICE_KINDS, PROTECTIVE_KINDS, SEGMENT_KINDS, Network

KIND_CODE = {k: i for i, k in enumerate(SEGMENT_KINDS)}
_DEVICE_CODES = np.array([KIND_CODE[k] for k in DEVICE_KINDS])
_PROTECTIVE_CODES = np.array([KIND_CODE[k] for k in PROTECTIVE_KINDS])
NONE = -1


class TopologyError(ValueError):
    """The network is not a valid radial network; the message names the offending ids."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(shown + more)


@dataclass
class Topology:
    """The energized radial tree of a :class:`~gis.network.Network` in numpy arrays.

    Indices: node ``i`` is ``node_ids[i]``, segment ``s`` is ``segment_ids[s]``, service point ``k`` is
    ``sp_ids[k]``, substation ``j`` is ``substation_ids[j]``. ``NONE`` (-1) marks "no such thing".
    """

    node_ids: np.ndarray
    segment_ids: np.ndarray
    sp_ids: np.ndarray
    substation_ids: np.ndarray
    seg_from: np.ndarray  # int32 node index
    seg_to: np.ndarray
    seg_kind: np.ndarray  # int8 code into SEGMENT_KINDS
    seg_open: np.ndarray  # bool, current state
    seg_feeder_id: np.ndarray  # object: the segments table's feeder_id ('' when not given)
    sp_node: np.ndarray  # int32 node index of each service point
    sp_customers: np.ndarray  # int64
    source_nodes: np.ndarray  # int32 node index of each substation source
    # tree state (recomputed by build, patched by set_open)
    parent_node: np.ndarray = field(repr=False, default=None)
    parent_seg: np.ndarray = field(repr=False, default=None)
    energized: np.ndarray = field(repr=False, default=None)
    substation_of_node: np.ndarray = field(repr=False, default=None)
    upstream_device: np.ndarray = field(repr=False, default=None)  # per node: nearest device seg at/above
    node_customers: np.ndarray = field(repr=False, default=None)  # customers hung directly on each node
    downstream_customers_node: np.ndarray = field(repr=False, default=None)  # subtree totals
    # adjacency (CSR over all segments, both directions)
    _adj_ptr: np.ndarray = field(repr=False, default=None)
    _adj_nbr: np.ndarray = field(repr=False, default=None)
    _adj_seg: np.ndarray = field(repr=False, default=None)

    def __post_init__(self) -> None:
        self.is_device = np.isin(self.seg_kind, _DEVICE_CODES)
        self.is_protective = np.isin(self.seg_kind, _PROTECTIVE_CODES)

    # id -> index dicts, built on first use: a million-entry dict costs ~0.5 s that a bulk user may never need
    @cached_property
    def node_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.node_ids.tolist())}

    @cached_property
    def segment_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.segment_ids.tolist())}

    @cached_property
    def sp_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.sp_ids.tolist())}

    # -- sizes -------------------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_segments(self) -> int:
        return len(self.segment_ids)

    # -- queries -----------------------------------------------------------------------------------------
    def kind(self, seg: int) -> str:
        return SEGMENT_KINDS[int(self.seg_kind[seg])]

    def device_below(self, seg: int) -> int:
        """Node index on the load side of segment ``seg`` in the current tree (NONE if it carries no flow)."""
        a, b = self.seg_from[seg], self.seg_to[seg]
        if self.parent_seg[b] == seg:
            return int(b)
        if self.parent_seg[a] == seg:
            return int(a)
        return NONE

    def device_parent(self, seg: int) -> int:
        """The nearest device segment above device ``seg`` (NONE at a feeder head or when de-energized)."""
        below = self.device_below(seg)
        if below == NONE:
            return NONE
        above = self.parent_node[below]
        return int(self.upstream_device[above]) if above != NONE else NONE

    def device_parents(self) -> np.ndarray:
        """Vectorised :meth:`device_parent` for every segment (NONE for non-devices and dead segments)."""
        out = np.full(self.n_segments, NONE, dtype=np.int32)
        fed = self.parent_seg >= 0
        child_nodes = np.flatnonzero(fed)
        segs = self.parent_seg[child_nodes]
        dev = self.is_device[segs]
        child_nodes, segs = child_nodes[dev], segs[dev]
        above = self.parent_node[child_nodes]
        out[segs] = np.where(above >= 0, self.upstream_device[np.maximum(above, 0)], NONE)
        return out

    def chain(self, node: int, kinds: tuple[str, ...] | None = None) -> list[int]:
        """Device segments from ``node`` up to the substation, nearest first, optionally only ``kinds``."""
        codes = None if kinds is None else {KIND_CODE[k] for k in kinds}
        out: list[int] = []
        dev = int(self.upstream_device[node])
        while dev != NONE:
            if codes is None or int(self.seg_kind[dev]) in codes:
                out.append(dev)
            dev = self.device_parent(dev)
        return out

    def device_chain(self, sp_id: str, kinds: tuple[str, ...] | None = None) -> list[str]:
        """Device ids above a service point, nearest first: transformer, fuse(s), recloser(s), breaker."""
        node = int(self.sp_node[self._sp(sp_id)])
        return [str(self.segment_ids[s]) for s in self.chain(node, kinds)]

    def feeder_of(self, node: int) -> int:
        """The breaker segment heading the feeder that feeds ``node`` (NONE if none)."""
        for dev in self.chain(node):
            if self.seg_kind[dev] == KIND_CODE["breaker"]:
                return dev
        return NONE

    def feeder_name(self, breaker: int) -> str:
        """A feeder's name: its head breaker's ``feeder_id``, else the breaker's segment id. Every report that
        groups by feeder (events, reliability indices, maps) names feeders this way."""
        return str(self.seg_feeder_id[breaker] or self.segment_ids[breaker])

    def feeder_heads(self) -> np.ndarray:
        """Per node: the feeder breaker segment above it (NONE when unfed or above every breaker). Vectorised."""
        is_breaker = self.seg_kind == KIND_CODE["breaker"]
        return _nearest_upstream(self.parent_node, self.parent_seg, is_breaker)

    def downstream_nodes(self, node: int) -> np.ndarray:
        """Every node fed through ``node`` (itself included), by a frontier BFS over the current parent array."""
        out = [np.array([node], dtype=np.int64)]
        frontier = out[0]
        ptr, nbr = self._adj_ptr, self._adj_nbr
        while len(frontier):
            starts, ends = ptr[frontier], ptr[frontier + 1]
            counts = ends - starts
            if counts.sum() == 0:
                break
            idx = np.repeat(starts - np.cumsum(np.r_[0, counts[:-1]]), counts) + np.arange(counts.sum())
            cand = nbr[idx]
            src = np.repeat(frontier, counts)
            frontier = cand[self.parent_node[cand] == src]
            out.append(frontier)
        return np.concatenate(out)

    def downstream_of_segment(self, seg: int) -> np.ndarray:
        below = self.device_below(seg)
        return np.empty(0, dtype=np.int64) if below == NONE else self.downstream_nodes(below)

    def downstream_service_points(self, seg: int) -> np.ndarray:
        """Service point indices fed through segment ``seg``."""
        nodes = self.downstream_of_segment(seg)
        if len(nodes) == 0:
            return np.empty(0, dtype=np.int64)
        mask = np.zeros(self.n_nodes, dtype=bool)
        mask[nodes] = True
        return np.flatnonzero(mask[self.sp_node])

    def downstream_customers(self, seg: int) -> int:
        below = self.device_below(seg)
        return 0 if below == NONE else int(self.downstream_customers_node[below])

    def sp_device(self, sp_index: int | np.ndarray) -> np.ndarray:
        """Nearest device (normally the transformer) above service point(s)."""
        return self.upstream_device[self.sp_node[sp_index]]

    def _sp(self, sp_id: str) -> int:
        try:
            return self.sp_index[sp_id]
        except KeyError:
            raise KeyError(f"service point {sp_id!r} not found") from None

    def seg(self, segment_id: str) -> int:
        try:
            return self.segment_index[segment_id]
        except KeyError:
            raise KeyError(f"segment {segment_id!r} not found") from None

    # -- switching ---------------------------------------------------------------------------------------
    def set_open(self, segment_id: str | int, open_: bool) -> np.ndarray:
        """Open or close a segment; returns the node indices whose supply changed.

        Opening de-energizes the subtree below it. Closing energizes the dead area it connects to (and raises
        :class:`TopologyError` if both sides are already live: that would parallel two sources or make a loop).
        Only the affected subtree and its ancestors are touched.
        """
        s = self.seg(segment_id) if isinstance(segment_id, str) else int(segment_id)
        if bool(self.seg_open[s]) == open_:
            return np.empty(0, dtype=np.int64)
        if open_:
            below = self.device_below(s)
            self.seg_open[s] = True
            if below == NONE:
                return np.empty(0, dtype=np.int64)
            nodes = self.downstream_nodes(below)
            lost = int(self.downstream_customers_node[below])
            self._add_to_ancestors(int(self.parent_node[below]), -lost)
            # dead nodes carry no tree, exactly as a fresh build() of the same switch state leaves them
            self.parent_node[nodes] = NONE
            self.parent_seg[nodes] = NONE
            self.upstream_device[nodes] = NONE
            self.downstream_customers_node[nodes] = self.node_customers[nodes]
            self.energized[nodes] = False
            self.substation_of_node[nodes] = NONE
            return nodes
        a, b = int(self.seg_from[s]), int(self.seg_to[s])
        live_a, live_b = bool(self.energized[a]), bool(self.energized[b])
        if live_a and live_b:
            raise TopologyError(
                [
                    f"closing {self.segment_ids[s]} would connect two energized nodes "
                    f"({self.node_ids[a]}, {self.node_ids[b]}) and make a loop"
                ]
            )
        self.seg_open[s] = False
        if not (live_a or live_b):
            return np.empty(0, dtype=np.int64)
        root, entry = (a, b) if live_a else (b, a)
        nodes, parents, psegs = self._bfs_dead(entry, via=s)
        self.parent_node[entry] = root
        self.parent_seg[entry] = s
        self.parent_node[nodes[1:]] = parents[1:]
        self.parent_seg[nodes[1:]] = psegs[1:]
        self.energized[nodes] = True
        self.substation_of_node[nodes] = self.substation_of_node[root]
        # subtree totals in reverse BFS order
        sub = self.node_customers[nodes].astype(np.int64)
        pos = {int(n): i for i, n in enumerate(nodes)}
        for i in range(len(nodes) - 1, 0, -1):
            sub[pos[int(parents[i])]] += sub[i]
        self.downstream_customers_node[nodes] = sub
        self._add_to_ancestors(root, int(sub[0]))
        self._refresh_upstream(nodes)
        return nodes

    def _bfs_dead(self, entry: int, via: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BFS from ``entry`` through closed segments over de-energized nodes; (nodes, parent, parent_seg)."""
        seen = {entry}
        order, par, pseg = [entry], [NONE], [NONE]
        i = 0
        ptr, nbr, segs = self._adj_ptr, self._adj_nbr, self._adj_seg
        while i < len(order):
            u = order[i]
            i += 1
            for k in range(ptr[u], ptr[u + 1]):
                v, s = int(nbr[k]), int(segs[k])
                if s == via or self.seg_open[s] or v in seen:
                    continue
                if self.energized[v]:
                    raise TopologyError(
                        [
                            f"closing would connect {self.node_ids[entry]} to energized node {self.node_ids[v]} "
                            f"through {self.segment_ids[s]}: a loop"
                        ]
                    )
                seen.add(v)
                order.append(v)
                par.append(u)
                pseg.append(s)
        return np.array(order), np.array(par), np.array(pseg)

    def _add_to_ancestors(self, node: int, delta: int) -> None:
        while node != NONE:
            self.downstream_customers_node[node] += delta
            node = int(self.parent_node[node])

    def _refresh_upstream(self, nodes: np.ndarray) -> None:
        """Recompute ``upstream_device`` for ``nodes`` (given in BFS order from their top)."""
        for n in nodes.tolist():
            ps = int(self.parent_seg[n])
            if ps == NONE:
                self.upstream_device[n] = NONE
            elif self.is_device[ps]:
                self.upstream_device[n] = ps
            else:
                self.upstream_device[n] = self.upstream_device[self.parent_node[n]]


def _nearest_upstream(parent_node: np.ndarray, parent_seg: np.ndarray, seg_mask: np.ndarray) -> np.ndarray:
    """Per node, the nearest segment at or above it with ``seg_mask`` true (NONE if none), by pointer jumping."""
    n = len(parent_node)
    has_seg = parent_seg >= 0
    hit = np.zeros(n, dtype=bool)
    hit[has_seg] = seg_mask[parent_seg[has_seg]]
    # terminal nodes (a hit, or a root) point to themselves; everyone else jumps until terminal
    ptr = np.where(hit | (parent_node < 0), np.arange(n), parent_node).astype(np.int32)
    ptr = _jump(ptr)
    return np.where(hit[ptr], parent_seg[ptr], NONE).astype(np.int32)


def _jump(ptr: np.ndarray) -> np.ndarray:
    """Follow pointers until every node points at a terminal (self-pointing) node: O(n log depth)."""
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            return ptr
        ptr = nxt


def build(network: Network, validate: bool = True) -> Topology:
    """Trace the energized radial tree of ``network`` from its substation sources.

    With ``validate`` (the default) a :class:`TopologyError` lists every problem: duplicate ids, segments or
    service points referring to unknown nodes, substations without a source node, loops, islands no source
    reaches, and service points with no transformer above them.
    """
    problems = check_references(network) if validate else []
    if problems:
        raise TopologyError(problems)

    nodes = network.nodes["node_id"].to_numpy(dtype=object)
    node_index = pd.Index(nodes)
    seg = network.segments
    spt = network.service_points
    n = len(nodes)
    seg_from = _lookup(node_index, seg["from_node"])
    seg_to = _lookup(node_index, seg["to_node"])
    seg_kind = pd.Categorical(seg["kind"], categories=SEGMENT_KINDS).codes.astype(np.int8)  # == KIND_CODE
    seg_open = seg["normally_open"].to_numpy(dtype=bool) | (seg["status"] == "out_of_service").to_numpy()
    sp_node = _lookup(node_index, spt["node_id"])
    sp_customers = spt["customers"].to_numpy(dtype=np.int64)
    source_nodes = _lookup(node_index, network.substations["source_node"])

    # adjacency over all segments (both directions), sorted by node
    m = len(seg)
    a = np.concatenate([seg_from, seg_to])
    b = np.concatenate([seg_to, seg_from])
    sid = np.concatenate([np.arange(m), np.arange(m)]).astype(np.int32)
    order = np.argsort(a, kind="stable")
    adj_nbr, adj_seg = b[order].astype(np.int32), sid[order]
    adj_ptr = np.zeros(n + 2, dtype=np.int64)
    np.add.at(adj_ptr, a + 1, 1)
    adj_ptr = np.cumsum(adj_ptr)[: n + 1]
    adj_ptr = np.append(adj_ptr, adj_ptr[-1])

    # BFS from a virtual super-source (index n) linked to every substation source
    closed = ~seg_open
    ca, cb = seg_from[closed], seg_to[closed]
    src = np.full(len(source_nodes), n, dtype=np.int32)
    rows = np.concatenate([ca, src])
    cols = np.concatenate([cb, source_nodes])
    g = sp.coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n + 1, n + 1)).tocsr()
    bfs, pred = breadth_first_order(g, n, directed=False, return_predecessors=True)
    bfs = bfs[1:]  # drop the super-source
    parent_node = np.full(n, NONE, dtype=np.int32)
    reached = bfs
    p = pred[reached]
    parent_node[reached] = np.where(p == n, NONE, p)
    energized = np.zeros(n, dtype=bool)
    energized[reached] = True

    # parent segment: look up the closed segment joining (node, parent) by a sorted pair key
    child = reached[parent_node[reached] >= 0]
    par = parent_node[child]
    key_seg = np.minimum(ca, cb).astype(np.int64) * (n + 1) + np.maximum(ca, cb)
    closed_ids = np.flatnonzero(closed)
    korder = np.argsort(key_seg, kind="stable")
    key_sorted = key_seg[korder]
    want = np.minimum(child, par).astype(np.int64) * (n + 1) + np.maximum(child, par)
    pos = np.searchsorted(key_sorted, want)
    parent_seg = np.full(n, NONE, dtype=np.int32)
    parent_seg[child] = closed_ids[korder[pos]]

    if validate:
        problems = explain_loops(
            network,
            seg_from,
            seg_to,
            closed,
            energized,
            parent_node,
            n_reached=len(reached),
            n_sources=len(np.unique(source_nodes)),
            key_sorted=key_sorted,
        )
        # nodes behind a normally open or out-of-service element are de-energized by design, not a problem
        problems += island_problem(nodes, unreachable_nodes(n, seg_from, seg_to, source_nodes))
        if problems:
            raise TopologyError(problems)

    # substation per node: propagate in BFS order via pointer jumping on parent array
    sub_of_source = np.full(n, NONE, dtype=np.int32)
    sub_of_source[source_nodes] = np.arange(len(source_nodes), dtype=np.int32)
    substation_of_node = _root_label(parent_node, sub_of_source, energized)

    is_device = np.isin(seg_kind, _DEVICE_CODES)
    upstream_device = _nearest_upstream(parent_node, parent_seg, is_device)

    node_customers = np.bincount(sp_node, weights=sp_customers, minlength=n).astype(np.int64)
    downstream = node_customers.copy()
    # accumulate children into parents in reverse BFS order, level by level (vectorised)
    depth = _depths(parent_node)
    for d in range(int(depth.max(initial=0)), 0, -1):
        lvl = reached[depth[reached] == d]
        np.add.at(downstream, parent_node[lvl], downstream[lvl])

    topo = Topology(
        node_ids=nodes,
        segment_ids=seg["segment_id"].to_numpy(dtype=object),
        sp_ids=spt["sp_id"].to_numpy(dtype=object),
        substation_ids=network.substations["substation_id"].to_numpy(dtype=object),
        seg_from=seg_from,
        seg_to=seg_to,
        seg_kind=seg_kind,
        seg_open=seg_open,
        seg_feeder_id=seg["feeder_id"].to_numpy(dtype=object),
        sp_node=sp_node,
        sp_customers=sp_customers,
        source_nodes=source_nodes,
        parent_node=parent_node,
        parent_seg=parent_seg,
        energized=energized,
        substation_of_node=substation_of_node,
        upstream_device=upstream_device,
        node_customers=node_customers,
        downstream_customers_node=downstream,
        _adj_ptr=adj_ptr,
        _adj_nbr=adj_nbr,
        _adj_seg=adj_seg,
    )
    if validate:
        problems = check_service_points(topo)
        if problems:
            raise TopologyError(problems)
    return topo


def check_service_points(topo: Topology) -> list[str]:
    """Every energized service point must have a transformer as the nearest device above it (those behind a
    normally open or out-of-service element are de-energized by design; unreached ones are islands)."""
    dev = topo.upstream_device[topo.sp_node]
    kind = np.where(dev >= 0, topo.seg_kind[np.maximum(dev, 0)], -1)
    live = topo.energized[topo.sp_node]
    bad = np.flatnonzero(live & ((dev == NONE) | (kind != KIND_CODE["transformer"])))
    if len(bad) == 0:
        return []
    return [
        Problem("service point on no transformer",
                f"service point on no transformer: {name_ids(topo.sp_ids[bad])} (the nearest device above must be a "
                "transformer)", len(bad), topo.sp_ids[bad])
    ]


def _lookup(index: pd.Index, ids) -> np.ndarray:
    """Positions of ``ids`` in ``index`` (NONE where absent), by pandas' C hash table; the last of duplicates wins."""
    if not index.is_unique:
        index = index[::-1]
        pos = index[~index.duplicated()]
        found = pos.get_indexer(ids)
        last = np.flatnonzero(~index.duplicated())
        return np.where(found >= 0, len(index) - 1 - last[np.maximum(found, 0)], NONE).astype(np.int32)
    return index.get_indexer(ids).astype(np.int32)


def _depths(parent_node: np.ndarray) -> np.ndarray:
    """Number of ancestors of each node, by pointer doubling."""
    n = len(parent_node)
    root = parent_node < 0
    anc = np.where(root, np.arange(n), parent_node).astype(np.int32)
    dist = np.where(root, 0, 1).astype(np.int32)
    while True:
        nxt = anc[anc]
        if np.array_equal(nxt, anc):
            return dist
        dist = dist + dist[anc] * (nxt != anc)
        anc = nxt


def _root_label(parent_node: np.ndarray, label: np.ndarray, energized: np.ndarray) -> np.ndarray:
    """Propagate the label of each tree root to all its descendants."""
    n = len(parent_node)
    root = _jump(np.where(parent_node < 0, np.arange(n), parent_node).astype(np.int32))
    out = label[root]
    out[~energized] = NONE
    return out
