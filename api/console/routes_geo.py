"""Crews' routes drawn along the road network: each leg (crew -> first job -> next job ...) as the fastest road
path between the road nodes nearest its ends, from :class:`gis.roads.RoadGraph`.

The re-planner keeps only travel *times*; the map needs the *path*. One Dijkstra per distinct leg start (with
predecessors) gives every leg from that start; legs are cached by their snapped (start, end) nodes, so a crew
that has not moved costs nothing on the next refresh. Without roads (or too far from them) a leg is straight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
from scipy.sparse.csgraph import dijkstra

Point = tuple[float, float]  # (lon, lat)
#: Farther than this from a road (m), a leg end is joined to the path by a straight piece (as crews walk/drive in).
MAX_SNAP_M = 2000.0
#: Legs remembered; a storm's 200 crews with a few jobs each need far fewer.
CACHE_MAX = 20_000


class RoutePaths:
    def __init__(self, network) -> None:
        from gis.roads import road_graph

        try:
            self.graph = road_graph(network) if len(network.road_edges) and len(network.road_nodes) else None
        except Exception:  # noqa: BLE001 - a territory whose roads cannot route still draws straight legs
            self.graph = None
        self._cache: dict[tuple[int, int], list[Point]] = {}
        self._lock = threading.Lock()

    def legs(self, legs: Iterable[tuple[Point, Point]]) -> list[list[Point]]:
        """The drawn path of each (start, end) leg, start and end included."""
        legs = list(legs)
        g = self.graph
        if g is None or not legs:
            return [[a, b] for a, b in legs]
        ends = np.array([p for leg in legs for p in leg], dtype=float)
        nodes, offsets = g.snap(ends[:, 0], ends[:, 1])
        pairs = [(int(nodes[2 * i]), int(nodes[2 * i + 1])) for i in range(len(legs))]
        far = offsets > MAX_SNAP_M
        with self._lock:
            missing = sorted({s for (s, t) in pairs if (s, t) not in self._cache and s >= 0})
            if missing:
                self._solve(missing, {(s, t) for (s, t) in pairs if (s, t) not in self._cache and s >= 0})
            out = []
            for i, ((a, b), key) in enumerate(zip(legs, pairs, strict=True)):
                path = self._cache.get(key) if not (far[2 * i] or far[2 * i + 1]) else None
                out.append([a, *path, b] if path else [a, b])
        return out

    def _solve(self, sources: list[int], wanted: set[tuple[int, int]]) -> None:
        g = self.graph
        if len(self._cache) > CACHE_MAX:
            self._cache.clear()
        _, pred = dijkstra(g.csr, directed=True, indices=sources, return_predecessors=True)
        row = {s: i for i, s in enumerate(sources)}
        for s, t in wanted:
            p = pred[row[s]]
            chain, node = [], t
            while node >= 0 and node != s and len(chain) < 100_000:
                chain.append(node)
                node = int(p[node])
            if node != s and s != t:
                self._cache[(s, t)] = []  # unreachable by road (one-way trap, island): drawn straight
                continue
            chain.append(s)
            chain.reverse()
            self._cache[(s, t)] = [(round(float(g.lon[n]), 5), round(float(g.lat[n]), 5)) for n in chain]
