"""Devices kept as point features on nodes, turned into the device segments our network model uses.

Many GIS exports and synthetic utility models draw a fuse, recloser, switch, breaker, sectionalizer or transformer
as a point where lines meet, not as a segment. In our tables a device *is* a segment (what it protects is what lies
below it), so an import moves each device point onto a segment. A node row carries a device when its ``device``
column (mapped like any other, :mod:`gis.mapping`; default source names ``device``, ``device_kind``,
``device_type``) holds one of :data:`gis.mapping.DEVICE_POINT_KINDS`; ``device_id`` names it and ``device_open``
says whether it is normally open. The rule, for a device point at node N:

1. **On a node**: the one segment *entering* N (``to_node == N``, as drawn: lines must be drawn away from the
   source) becomes the device: its ``kind`` is the device's, ``normally_open`` the device's, and its
   ``segment_id`` the ``device_id`` when one is given (the line's own id moves to ``line_id``). At a substation
   source, where nothing enters, the one segment *leaving* N is used instead (a feeder breaker at the bus).
2. **Between two line ends**: when no segment touches N but N lies on a ``line`` (within
   :data:`SNAP_DEGREES`, about 2 m) between its two ends, that line is split at N: the upstream part (from its
   ``from_node`` to N) becomes the device as in 1 (id: ``device_id``, else N), the downstream part keeps the line's
   id and runs from N. Both parts are redrawn straight.
3. Anything else (two segments entering N, the entering segment already a device, a point on no line) is a
   ``device point`` problem naming the file, the node and why; all of them are listed in one run.

The device columns are dropped from the nodes afterwards: they now live in the segments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from gis.checks import Problem

#: How far (degrees, about 2 m) a free device point may lie from the line it splits.
SNAP_DEGREES = 2e-5
DEVICE_COLUMNS = ("device", "device_id", "device_open")


def place_device_points(tables: dict[str, pd.DataFrame], label: str,
                        sources: set[str]) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """``tables`` with every device point of ``tables['nodes']`` moved onto a segment (see the module docstring),
    and the problems of the points that could not be placed. ``label`` names the nodes file in messages;
    ``sources`` are the substation source node ids."""
    nodes = tables["nodes"]
    if "device" not in nodes.columns:
        return tables, []
    kind = nodes["device"].fillna("none").astype(str)
    points = nodes.loc[~kind.isin(("none", ""))]
    seg = tables["segments"].copy().reset_index(drop=True)
    if "normally_open" in seg.columns:  # device states are text ("open") until the network reads them as bools
        seg["normally_open"] = seg["normally_open"].astype(object)
    problems: list[Problem] = []
    entering = _positions(seg["to_node"])
    leaving = _positions(seg["from_node"])
    splits = []
    for row in points.itertuples():
        node = str(row.node_id)
        device = {"kind": str(row.device), "id": _text(getattr(row, "device_id", "")),
                  "open": getattr(row, "device_open", False)}
        into = entering.get(node, [])
        if not into and node in sources and len(leaving.get(node, [])) == 1:
            into = leaving[node]
        if len(into) == 1:
            why = _take_over(seg, into[0], device)
        elif into:
            why = f"{len(into)} segments enter it ({', '.join(seg.loc[into, 'segment_id'])}); which one is the device?"
        elif leaving.get(node):
            why = "no segment enters it (lines must be drawn away from the source)"
        else:
            splits.append((node, row.geometry, device))
            continue
        if why:
            problems.append(_problem(label, node, device, why))
    seg, split_problems = _split_lines(seg, nodes, splits, label)
    tables = {**tables, "segments": seg, "nodes": nodes.drop(columns=[c for c in DEVICE_COLUMNS if c in nodes])}
    return tables, problems + split_problems


def _positions(ids: pd.Series) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, n in enumerate(ids.astype(str).tolist()):
        out.setdefault(n, []).append(i)
    return out


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()


def _take_over(seg: pd.DataFrame, i: int, device: dict) -> str | None:
    """Make segment ``i`` the device; the reason it cannot be, else None."""
    if str(seg.at[i, "kind"]) != "line":
        return f"the segment entering it, {seg.at[i, 'segment_id']}, is already a {seg.at[i, 'kind']}"
    seg.at[i, "kind"] = device["kind"]
    if "normally_open" not in seg.columns:
        seg["normally_open"] = pd.Series(False, index=seg.index, dtype=object)
    seg.at[i, "normally_open"] = device["open"]
    if device["id"]:
        if "line_id" not in seg.columns:
            seg["line_id"] = ""
        seg.at[i, "line_id"] = seg.at[i, "segment_id"]
        seg.at[i, "segment_id"] = device["id"]
    return None


def _split_lines(seg: pd.DataFrame, nodes: pd.DataFrame, splits: list, label: str):
    """Split the line each free device point lies on (rule 2); returns the segments and the problems."""
    if not splits:
        return seg, []
    xy = dict(zip(nodes["node_id"].astype(str), nodes.geometry, strict=False))
    lines = np.array([_line(r, xy) for r in seg.itertuples()], dtype=object)
    is_line = (seg["kind"] == "line").to_numpy()
    tree = shapely.STRtree(lines)
    problems, new_rows = [], []
    for node, point, device in splits:
        hits = [int(i) for i in tree.query(point, predicate="dwithin", distance=SNAP_DEGREES) if is_line[int(i)]]
        hits = [i for i in hits if not _at_end(seg, i, point, xy)]
        if len(hits) != 1:
            why = "it lies on no line and no segment touches it" if not hits else (
                f"it lies on {len(hits)} lines ({', '.join(seg.loc[hits, 'segment_id'])})")
            problems.append(_problem(label, node, device, why))
            continue
        i = hits[0]
        up = seg.loc[i].copy()
        up["segment_id"], up["to_node"] = device["id"] or node, node
        up["kind"], up["normally_open"], up["geometry"] = device["kind"], device["open"], None
        seg.at[i, "from_node"] = node
        seg.at[i, "geometry"] = None
        new_rows.append(up)
    if new_rows:
        seg = pd.concat([seg, pd.DataFrame(new_rows)], ignore_index=True)
    return seg, problems


def _line(r, xy):
    g = getattr(r, "geometry", None)
    if g is not None and not shapely.is_empty(g):
        return g
    a, b = xy.get(str(r.from_node)), xy.get(str(r.to_node))
    return shapely.linestrings([[a.x, a.y], [b.x, b.y]]) if a is not None and b is not None else None


def _at_end(seg, i, point, xy) -> bool:
    return any(xy.get(str(seg.at[i, end])) is not None and xy[str(seg.at[i, end])].distance(point) <= SNAP_DEGREES
               for end in ("from_node", "to_node"))


def _problem(label: str, node: str, device: dict, why: str) -> Problem:
    return Problem("device point", f"{label}: node {node!r}: {device['kind']} {device['id'] or ''}".rstrip()
                   + f": cannot be placed: {why}", 1, [node])
