"""Placing OpenDSS buses that have no coordinates (most secondary and service buses of real models).

Each connected group of buses without coordinates is placed from the placed buses it touches:

* touching two or more placed buses (a run of unplaced buses between placed ones): each bus goes on the straight
  line between the first two of them, at the share of hops it sits along the way;
* touching one placed bus (a secondary and its services below a transformer, a dead-end lateral): the group fans
  out from that bus, away from the bus's placed neighbours, ``STEP_M`` metres per hop, each first-level branch in
  its own direction;
* touching none: fanned out around the centre of the placed buses.

Buses that land on an already used position are nudged ``STEP_M / 3`` metres aside. Deterministic: no randomness.
"""

from __future__ import annotations

import math
from collections import deque

#: Metres per hop when fanning a group out around the placed bus it hangs on.
STEP_M = 12.0
_GOLDEN = math.pi * (3 - math.sqrt(5))


def offset(lonlat: tuple[float, float], metres: float, angle: float) -> tuple[float, float]:
    """The point ``metres`` away from ``lonlat`` (lon, lat) in direction ``angle`` (radians from east)."""
    lon, lat = lonlat
    return (lon + metres * math.cos(angle) / (111_320 * math.cos(math.radians(lat))),
            lat + metres * math.sin(angle) / 110_540)


def place_missing(pos: dict[str, tuple[float, float]], adj: dict[str, list[str]],
                  nodes: list[str]) -> set[str]:
    """Add a position to ``pos`` for every node of ``nodes`` without one; return the nodes placed this way.

    ``adj`` lists each node's neighbours (any segment, open or closed). ``pos`` holds (lon, lat).
    """
    missing = [n for n in nodes if n not in pos]
    if not missing:
        return set()
    if not pos:
        raise ValueError("no bus has coordinates")
    known = list(pos.values())
    centre = (sum(p[0] for p in known) / len(known), sum(p[1] for p in known) / len(known))
    todo = set(missing)
    used = {_key(p) for p in known}
    for start in missing:
        if start not in todo:
            continue
        group, boundary = _group(start, adj, pos, todo)
        if len(boundary) >= 2:
            _between(group, boundary[:2], adj, pos)
        else:
            _fan(group, boundary[0] if boundary else None, adj, pos, centre)
        for n in group:
            k = 1
            while _key(pos[n]) in used:
                pos[n] = offset(pos[n], STEP_M / 3, k * _GOLDEN)
                k += 1
            used.add(_key(pos[n]))
    return set(missing)


def _key(p: tuple[float, float]) -> tuple[float, float]:
    return (round(p[0], 7), round(p[1], 7))


def _group(start: str, adj: dict[str, list[str]], pos: dict, todo: set[str]) -> tuple[list[str], list[str]]:
    """The unplaced buses connected to ``start`` (removed from ``todo``) and the placed buses they touch."""
    group, boundary, seen_b = [start], [], set()
    todo.discard(start)
    queue = deque([start])
    while queue:
        n = queue.popleft()
        for m in adj.get(n, ()):
            if m in pos:
                if m not in seen_b:
                    seen_b.add(m)
                    boundary.append(m)
            elif m in todo:
                todo.discard(m)
                group.append(m)
                queue.append(m)
    return group, boundary


def _hops(sources: list[str], adj: dict[str, list[str]], members: set[str]) -> dict[str, int]:
    dist = {}
    queue = deque()
    for s in sources:
        for m in adj.get(s, ()):
            if m in members and m not in dist:
                dist[m] = 1
                queue.append(m)
    while queue:
        n = queue.popleft()
        for m in adj.get(n, ()):
            if m in members and m not in dist:
                dist[m] = dist[n] + 1
                queue.append(m)
    return dist


def _between(group: list[str], ends: list[str], adj: dict[str, list[str]], pos: dict) -> None:
    members = set(group)
    a, b = ends
    da, db = _hops([a], adj, members), _hops([b], adj, members)
    (ax, ay), (bx, by) = pos[a], pos[b]
    for n in group:
        ha, hb = da.get(n, 1), db.get(n, 1)
        t = ha / (ha + hb)
        pos[n] = (ax + (bx - ax) * t, ay + (by - ay) * t)


def _fan(group: list[str], anchor: str | None, adj: dict[str, list[str]], pos: dict,
         centre: tuple[float, float]) -> None:
    members = set(group)
    if anchor is None:  # nothing placed touches it: hang it on the first bus, placed at the centre
        root = group[0]
        pos[root] = centre
        origin, base = root, 0.0
        first = [m for m in adj.get(root, ()) if m in members and m != root]
        placed = {root}
    else:
        origin = anchor
        others = [pos[m] for m in adj.get(anchor, ()) if m in pos]
        ox, oy = pos[anchor]
        if others:  # away from where the placed neighbours are
            vx = sum(p[0] - ox for p in others)
            vy = sum(p[1] - oy for p in others)
            base = math.atan2(-vy, -vx) if (vx or vy) else 0.0
        else:
            base = 0.0
        first = [m for m in adj.get(anchor, ()) if m in members]
        placed = set()
    angle: dict[str, float] = {}
    depth: dict[str, int] = {}
    spread = 2 * math.pi / max(len(first), 1) if anchor is None else min(math.pi / 2, math.pi / max(len(first), 1))
    queue = deque()
    for i, m in enumerate(first):
        angle[m] = base + (i - (len(first) - 1) / 2) * spread
        depth[m] = 1
        pos[m] = offset(pos[origin], STEP_M, angle[m])
        placed.add(m)
        queue.append(m)
    while queue:
        n = queue.popleft()
        kids = [m for m in adj.get(n, ()) if m in members and m not in placed]
        for i, m in enumerate(kids):
            angle[m] = angle[n] + (i - (len(kids) - 1) / 2) * (0.6 / depth[n])
            depth[m] = depth[n] + 1
            pos[m] = offset(pos[n], STEP_M, angle[m])
            placed.add(m)
            queue.append(m)
    for n in group:  # members reached only through another group's buses (should not happen): at the origin
        if n not in pos:
            pos[n] = offset(pos[origin], STEP_M, base)
