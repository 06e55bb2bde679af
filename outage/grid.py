"""The engine's view of a topology: flat per-device lists for the per-report hot path.

Built once from a :class:`gis.topology.Topology` (and again after switching), in numpy, then handed to the engine
as plain Python lists (indexing a list is several times faster than indexing a numpy array one element at a time).

Devices are segment indices; each substation gets a virtual device index ``n_segments + j`` so that a whole
substation can be predicted like any other device. Service points are laid out in depth-first order of the tree,
so every device's downstream service points are one contiguous slice ``sp_order[lo:hi]`` and its customer and
critical-customer counts are differences of prefix sums: O(1) per event, never O(network). Devices with exactly
the same slice (a fuse feeding one transformer) are listed per device in ``equiv``, for the engine to choose between.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import depth_first_order

from gis.network import CRITICAL_KINDS, SEGMENT_KINDS
from gis.topology import NONE, Topology
from outage.rules import PREDICTABLE_KINDS


class Grid:
    """Derived arrays over a topology. ``critical_kind``, ``meters`` and ``metered`` are per service point (topology
    order); ``metered`` defaults to "has a meter id"."""

    def __init__(self, topology: Topology, critical_kind: Sequence[str] | None = None,
                 meters: Sequence[str] | None = None, sp_xy: np.ndarray | None = None,
                 metered: Sequence[bool] | None = None):
        topo = self.topology = topology
        n_seg, n_sub, n_sp = topo.n_segments, len(topo.substation_ids), len(topo.sp_ids)
        self.n_segments, self.n_devices = n_seg, n_seg + n_sub
        self.sp_ids: list[str] = [str(s) for s in topo.sp_ids.tolist()]
        self.sp_index = topo.sp_index
        self.sp_customers: list[int] = topo.sp_customers.tolist()
        kinds = [SEGMENT_KINDS[k] for k in topo.seg_kind.tolist()] + ["substation"] * n_sub
        self.kind: list[str] = kinds
        self.device_ids: list[str] = [str(s) for s in topo.segment_ids.tolist()] + [
            f"substation:{s}" for s in topo.substation_ids.tolist()]
        self.device_index = {d: i for i, d in enumerate(self.device_ids)}
        predictable = np.array([k in PREDICTABLE_KINDS for k in kinds])
        self.is_transformer: list[bool] = [k == "transformer" for k in kinds]

        # load-side node of every segment in the current tree
        sf, st = topo.seg_from, topo.seg_to
        seg = np.arange(n_seg)
        below = np.where(topo.parent_seg[st] == seg, st, np.where(topo.parent_seg[sf] == seg, sf, NONE))
        below = np.concatenate([below, topo.source_nodes]).astype(np.int64)
        live = below >= 0

        # roll-up parent: nearest predictable device above (breakers report to their substation)
        raw_parent = np.full(self.n_devices, NONE, dtype=np.int64)
        raw_parent[:n_seg] = topo.device_parents()
        sub_of_node = topo.substation_of_node
        brk_sub = np.where(live[:n_seg], sub_of_node[np.maximum(below[:n_seg], 0)], NONE)
        # any device at the top of its tree reports to its substation (a feeder head breaker, or substation equipment
        # such as a transformer above the breakers), so the substation's children are what hangs on its bus
        top = predictable[:n_seg] & (raw_parent[:n_seg] == NONE) & (brk_sub >= 0)
        raw_parent[:n_seg][top] = n_seg + brk_sub[top]
        self.parent: list[int] = _skip_unpredictable(raw_parent, predictable).tolist()

        # first predictable device above each service point
        up = topo.upstream_device[topo.sp_node].astype(np.int64)
        first = np.where(up >= 0, up, NONE)
        unpred = (first >= 0) & ~predictable[np.maximum(first, 0)]
        first[unpred] = np.asarray(self.parent, dtype=np.int64)[first[unpred]]
        self.sp_first: list[int] = first.tolist()

        # depth-first layout of service points; per device its contiguous slice
        n = topo.n_nodes
        child = np.flatnonzero(topo.parent_node >= 0)
        roots = np.flatnonzero((topo.parent_node < 0) & topo.energized)
        rows = np.concatenate([topo.parent_node[child], np.full(len(roots), n)])
        cols = np.concatenate([child, roots])
        g = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n + 1, n + 1))
        order = depth_first_order(g, n, directed=True, return_predecessors=False)[1:]
        tin = np.full(n, np.iinfo(np.int64).max // 4, dtype=np.int64)
        tin[order] = np.arange(len(order))
        size = _subtree_sizes(topo.parent_node, order)
        sp_tin = tin[topo.sp_node]
        self.sp_order = np.argsort(sp_tin, kind="stable")
        sorted_tin = sp_tin[self.sp_order]
        pos = np.empty(n_sp, dtype=np.int64)
        pos[self.sp_order] = np.arange(n_sp)
        self.sp_pos: list[int] = pos.tolist()
        b = np.maximum(below, 0)
        lo = np.searchsorted(sorted_tin, tin[b], "left")
        hi = np.searchsorted(sorted_tin, tin[b] + size[b], "left")
        lo[~live], hi[~live] = 0, 0
        self.lo: list[int] = lo.tolist()
        self.hi: list[int] = hi.tolist()
        self.n_sp: list[int] = (hi - lo).tolist()  # service points below each device

        cust = topo.sp_customers[self.sp_order]
        self._cum_customers = np.concatenate([[0], np.cumsum(cust)]).tolist()
        cum = self._cum_customers
        self.device_customers: list[int] = [cum[hi] - cum[lo] for lo, hi in zip(self.lo, self.hi, strict=True)]
        crit = np.asarray(critical_kind if critical_kind is not None else ["none"] * n_sp, dtype=object)
        if len(crit) != n_sp:
            raise ValueError(f"Grid: critical_kind has {len(crit)} entries for {n_sp} service points")
        self.critical_kind: list[str] = [str(c) for c in crit.tolist()]
        self._cum_critical = {}
        for kind in CRITICAL_KINDS[1:]:
            is_k = (crit[self.sp_order] == kind) * cust
            if is_k.any():
                self._cum_critical[kind] = np.concatenate([[0], np.cumsum(is_k)]).tolist()
        n_children = np.bincount(np.asarray([p for p in self.parent if p >= 0], dtype=np.int64),
                                 minlength=self.n_devices)
        self.n_children: list[int] = n_children.tolist()
        self.equiv = _equivalent_devices(self.lo, self.hi, predictable, self.parent, n_sp)

        # districts: feeder (named by gis.topology.Topology.feeder_name) and substation id of each device
        heads = topo.feeder_heads()
        feeder_seg = np.where(live, heads[b], NONE)
        self.feeder: list[str] = [topo.feeder_name(f) if f >= 0 else "" for f in feeder_seg.tolist()]
        for j in range(n_sub):
            self.feeder[n_seg + j] = ""
        sub_idx = np.where(live, sub_of_node[b], NONE)
        self.substation: list[str] = [str(topo.substation_ids[s]) if s >= 0 else "" for s in sub_idx.tolist()]
        sp_feeder = np.where(heads[topo.sp_node] >= 0, heads[topo.sp_node], NONE)
        self.sp_feeder: list[str] = [topo.feeder_name(f) if f >= 0 else "" for f in sp_feeder.tolist()]
        self.community, self.rule_kind = _roles(kinds, self.lo, self.hi, self.sp_order, sp_feeder, self.feeder,
                                                self.n_children)
        sp_sub = sub_of_node[topo.sp_node]
        self.sp_substation: list[str] = [str(topo.substation_ids[s]) if s >= 0 else "" for s in sp_sub.tolist()]

        self.meters: list[str] = list(meters) if meters is not None else list(self.sp_ids)
        if len(self.meters) != n_sp:
            raise ValueError(f"Grid: meters has {len(self.meters)} entries for {n_sp} service points")
        self.meter_index = {m: i for i, m in enumerate(self.meters) if m}
        # which service points have a meter that answers pings (an unmetered one may still be known by an id)
        self.metered: list[bool] = [bool(m) for m in self.meters] if metered is None else [bool(m) for m in metered]
        if len(self.metered) != n_sp:
            raise ValueError(f"Grid: metered has {len(self.metered)} entries for {n_sp} service points")
        cum_m = np.concatenate([[0], np.cumsum(np.asarray(self.metered, dtype=np.int64)[self.sp_order])])
        self.n_metered: list[int] = (cum_m[hi] - cum_m[lo]).tolist()  # metered service points below each device
        self.sp_xy = sp_xy
        self._kdtree = None
        if sp_xy is not None and len(sp_xy):
            from scipy.spatial import cKDTree

            # built up front: the first unlocated report must not pay for it (per-report latency)
            self._xscale = float(np.cos(np.radians(np.nanmean(sp_xy[:, 1]))))
            self._kdtree = cKDTree(np.column_stack([sp_xy[:, 0] * self._xscale, sp_xy[:, 1]]))

    # -- per-device sums -------------------------------------------------------------------------------------
    def customers_in(self, lo: int, hi: int) -> int:
        return self._cum_customers[hi] - self._cum_customers[lo]

    def critical_in(self, lo: int, hi: int) -> dict[str, int]:
        out = {}
        for kind, cum in self._cum_critical.items():
            n = cum[hi] - cum[lo]
            if n:
                out[kind] = n
        return out

    def sps_of(self, dev: int) -> np.ndarray:
        """Service point indices downstream of device ``dev``."""
        return self.sp_order[self.lo[dev]:self.hi[dev]]

    def chain(self, sp: int) -> list[int]:
        """Predictable devices above service point ``sp``, nearest first (roll-up order)."""
        out, d, parent = [], self.sp_first[sp], self.parent
        while d >= 0:
            out.append(d)
            d = parent[d]
        return out

    def neighbourhood(self, sp: int) -> int:
        """The device whose other customers are ``sp``'s neighbours, whom a caller is asked about ("are your
        neighbours out too?"): the lowest device above it with more than one service point (the transformer it
        shares; for a customer alone on a transformer, the lateral around it), or -1 if none."""
        d, parent, n_sp = self.sp_first[sp], self.parent, self.n_sp
        while d >= 0 and n_sp[d] < 2:
            d = parent[d]
        return d

    def common_chain(self, sps: Iterable[int]) -> list[int]:
        """Predictable devices above every one of service points ``sps``, nearest first (a device's customers are
        one contiguous run of positions, so it holds them all when it holds the lowest and the highest)."""
        pos = [self.sp_pos[k] for k in sps]
        if not pos:
            return []
        lo, hi, first = min(pos), max(pos), self.sp_order[min(pos)]
        return [d for d in self.chain(int(first)) if self.lo[d] <= lo and hi < self.hi[d]]

    def nearest_sp(self, lon: float, lat: float) -> int:
        """Index of the service point nearest to a coordinate (needs ``sp_xy``)."""
        if self._kdtree is None:
            raise ValueError("cannot locate a report by coordinates: the engine was built without service point "
                             "coordinates (use OutageEngine.from_network)")
        return int(self._kdtree.query([lon * self._xscale, lat])[1])

def _roles(kinds: list[str], lo: list[int], hi: list[int], sp_order: np.ndarray, sp_feeder: np.ndarray,
           feeder: list[str], n_children: list[int]) -> tuple[list[bool], list[str]]:
    """Per device: whether its outage is a community one (its customers span several feeders, or it sits above
    the feeder heads: substation equipment), and the rule it is judged by — its kind, except for transformers,
    judged by what they serve. A transformer with devices below it (a large or substation transformer, as
    imported feeders have) is judged like a backbone device (``large_transformer``), substation-class ones like a
    substation: neither may be predicted from a couple of calls the way a distribution transformer is. One that
    serves customers only is a distribution transformer wherever it sits (a load at the substation bus): with no
    device below it there are no predicted children for the substation rule to count, and its customers are what
    tell."""
    lo_a, hi_a = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    f = np.asarray(sp_feeder)[sp_order]
    # feeders are subtrees, so each is one run of the depth-first order: distinct feeders = 1 + changes of run
    change = np.concatenate([[0], np.cumsum(f[1:] != f[:-1])]) if len(f) else np.zeros(1, dtype=np.int64)
    spans = np.where(hi_a > lo_a, change[np.maximum(hi_a - 1, 0)] - change[np.minimum(lo_a, len(change) - 1)], 0)
    served = hi_a > lo_a
    community = [bool(k == "substation" or s > 0 or (srv and fd == ""))
                 for k, s, srv, fd in zip(kinds, spans.tolist(), served.tolist(), feeder, strict=True)]
    rule_kind = list(kinds)
    for d, k in enumerate(kinds):
        if k == "transformer" and community[d] and n_children[d] > 0:
            rule_kind[d] = "substation"
        elif k == "transformer" and n_children[d] > 0:
            rule_kind[d] = "large_transformer"
    return community, rule_kind


def _equivalent_devices(lo: list[int], hi: list[int], predictable: np.ndarray, parent: list[int],
                        n_sp: int) -> list[tuple[int, ...] | None]:
    """Per device, the predictable devices with exactly its downstream service points (itself included, top of
    the chain first), or ``None`` when it has no such twin.

    A fuse that feeds a single transformer interrupts exactly the transformer's customers: no report, last gasp or
    ping can tell the two apart, so the engine decides between them by the prior (see ``OutageEngine._passes``).
    Equal slices are nested subtrees, so each class is one run of a device chain.
    """
    lo_a, hi_a = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    cand = np.flatnonzero(predictable & (hi_a > lo_a))
    key = lo_a[cand] * (n_sp + 1) + hi_a[cand]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    out: list[tuple[int, ...] | None] = [None] * len(lo)
    groups: dict[int, list[int]] = {}
    for d, grp in zip(cand[counts[inverse] > 1].tolist(), inverse[counts[inverse] > 1].tolist(), strict=True):
        groups.setdefault(grp, []).append(d)

    def depth(d: int) -> int:
        n = 0
        while d >= 0:
            d, n = parent[d], n + 1
        return n

    for members in groups.values():
        ordered = tuple(sorted(members, key=depth))
        for d in ordered:
            out[d] = ordered
    return out


def _skip_unpredictable(parent: np.ndarray, predictable: np.ndarray) -> np.ndarray:
    """Re-point every device's parent past devices the roll-up never predicts (switches, regulators)."""
    out = parent.copy()
    for _ in range(64):
        bad = (out >= 0) & ~predictable[np.maximum(out, 0)]
        if not bad.any():
            return out
        out[bad] = parent[out[bad]]
    raise ValueError("device chain has more than 64 consecutive switches/regulators")


def _subtree_sizes(parent_node: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Number of nodes in each node's subtree (itself included), accumulating children in reverse DFS order."""
    size = np.ones(len(parent_node), dtype=np.int64)
    par = parent_node[order]
    # reverse preorder visits every child before its parent; group by depth to vectorise
    depth = np.zeros(len(parent_node), dtype=np.int64)
    for node, p in zip(order.tolist(), par.tolist(), strict=True):
        if p >= 0:
            depth[node] = depth[p] + 1
    ordered = order[np.argsort(-depth[order], kind="stable")]
    d_sorted = depth[ordered]
    bounds = np.flatnonzero(np.diff(d_sorted)) + 1
    for grp in np.split(ordered, bounds):
        if len(grp) == 0 or depth[grp[0]] == 0:
            continue
        np.add.at(size, parent_node[grp], size[grp])
    return size
