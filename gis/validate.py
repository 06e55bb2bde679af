"""Validation of a territory: every problem found in one run, grouped by kind, each naming the offending ids.

:func:`validate` lists the problems without raising; :func:`validation_report` groups them by kind with counts
and examples (what ``oms territory import`` and ``oms territory info`` print) and adds what is de-energized by
design. The checks themselves run inside :func:`gis.topology.build` (which raises
:class:`~gis.topology.TopologyError` with them): the table checks are in :mod:`gis.checks`, the one that needs the
built tree is :func:`gis.topology.check_service_points`.

Why not just call ``build``: it stops after the table checks when they fail, because a dangling reference leaves
no tree to trace. Here the tree is traced anyway on a copy without the broken rows (unknown nodes, duplicate ids,
unknown kinds), so loops, islands and service points without a transformer are reported in the same run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from gis.checks import Problem, check_references
from gis.network import Network
from gis.topology import NONE, TopologyError, build, check_service_points

#: How many examples of each kind of problem a report shows.
EXAMPLES = 3


@dataclass
class ValidationReport:
    """Every problem of a territory and what is de-energized by design (which is not a problem)."""

    problems: list[Problem] = field(default_factory=list)
    deenergized: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.problems

    def groups(self) -> list[dict]:
        """Problems grouped by kind, in order of first appearance: kind, count of offending elements, the number
        of messages, and the first :data:`EXAMPLES` messages. JSON-ready."""
        out: dict[str, dict] = {}
        for p in self.problems:
            kind = getattr(p, "kind", str(p).split(":", 1)[0])
            g = out.setdefault(kind, {"kind": kind, "count": 0, "messages": 0, "examples": []})
            g["count"] += getattr(p, "count", 1)
            g["messages"] += 1
            if len(g["examples"]) < EXAMPLES:
                g["examples"].append(str(p))
        return list(out.values())


def group_lines(groups: list[dict]) -> list[str]:
    """Grouped problems (:meth:`ValidationReport.groups`) as text: one heading per kind with its count of
    offending elements, then its first examples."""
    out = []
    for g in groups:
        out.append(f"{g['kind']}: {g['count']}")
        out += [f"  - {e}" for e in g["examples"]]
        if g["messages"] > len(g["examples"]):
            out.append(f"  ... and {g['messages'] - len(g['examples'])} more")
    return out


def validate(net: Network) -> list[str]:
    """All problems of ``net`` as messages (:class:`~gis.checks.Problem`, a ``str``); an empty list means valid."""
    return list(validation_report(net).problems)


def validation_report(net: Network) -> ValidationReport:
    """Every problem of ``net`` in one run, and the parts de-energized by design (see :func:`deenergized`)."""
    problems = check_references(net)
    traced = _without_broken_rows(net) if problems else net
    if len(traced.substations) == 0:
        return ValidationReport(problems)
    try:
        topo = build(traced, validate=True)
    except TopologyError as exc:
        seen = set(problems)
        problems += [p for p in exc.problems if p not in seen]
        topo = build(traced, validate=False)
        # build stops before the service point check when there are loops or islands; run it here
        problems += [p for p in check_service_points(topo) if p not in seen and p not in exc.problems]
    return ValidationReport(problems, deenergized(traced, topo))


def read_valid_territory(path: str | os.PathLike) -> Network:
    """Read the territory GeoPackage at ``path`` and refuse it unless valid: what ``oms serve`` and ``oms simulate``
    load. Raises :class:`~gis.io.TerritoryFileError` with one line naming the file, its first problem and how many
    more there are (``oms territory info`` lists them all)."""
    from gis.io import TerritoryFileError, read_territory

    net = read_territory(path)
    problems = validate(net)
    if problems:
        more = f" (and {len(problems) - 1} more; see oms territory info {path})" if len(problems) > 1 else ""
        raise TerritoryFileError(f"{os.fspath(path)}: {problems[0]}{more}")
    return net


def deenergized(net: Network, topo) -> dict:
    """What no source feeds although the data is whole: nodes behind a normally open or out-of-service element.

    Counts of nodes, segments and customers, the feeders they belong to (``feeder_id``) and the open or
    out-of-service elements at their edge. Nodes no source reaches even with every segment closed are not here:
    they are ``island`` problems (broken data).
    """
    from gis.checks import unreachable_nodes

    dead = ~topo.energized
    dead[unreachable_nodes(topo.n_nodes, topo.seg_from, topo.seg_to, topo.source_nodes)] = False
    seg = net.segments
    a, b = topo.seg_from, topo.seg_to
    seg_dead = dead[a] | dead[b]
    edge = topo.seg_open & (dead[a] != dead[b]) & (topo.energized[a] | topo.energized[b])
    customers = int(topo.node_customers[dead].sum())
    feeders = sorted({f for f in seg.loc[seg_dead, "feeder_id"] if f})
    return {
        "nodes": int(dead.sum()),
        "segments": int(seg_dead.sum()),
        "customers": customers,
        "service_points": int(dead[topo.sp_node[topo.sp_node != NONE]].sum()),
        "feeders": feeders,
        "behind": [str(s) for s in topo.segment_ids[np.flatnonzero(edge)]],
    }


def _without_broken_rows(net: Network) -> Network:
    """A copy of ``net`` the tree can be traced on and that passes the table checks: rows with an empty id or
    referring to unknown nodes dropped, duplicate ids kept once, unknown kinds and values read as their defaults,
    coordinates zeroed. Only for tracing: the table problems are already reported."""
    from shapely import points

    from gis.network import CRITICAL_KINDS, CUSTOMER_CLASSES, SEGMENT_KINDS

    def ids(df, col):
        df = df[df[col] != ""].drop_duplicates(col)
        return df.set_geometry(points(np.zeros((len(df), 2))), crs=df.crs) if col != "segment_id" else df

    nodes = ids(net.nodes, "node_id")
    known = set(nodes["node_id"])
    seg = ids(net.segments, "segment_id")
    seg = seg[seg["from_node"].isin(known) & seg["to_node"].isin(known) & (seg["from_node"] != seg["to_node"])]
    seg = seg.assign(kind=seg["kind"].where(seg["kind"].isin(SEGMENT_KINDS), "line")).set_geometry(
        [None] * len(seg), crs=seg.crs)
    sp = ids(net.service_points, "sp_id")
    sp = sp[sp["node_id"].isin(known)]
    sp = sp.assign(critical_kind=sp["critical_kind"].where(sp["critical_kind"].isin(CRITICAL_KINDS), "none"),
                   customer_class=sp["customer_class"].where(sp["customer_class"].isin(CUSTOMER_CLASSES),
                                                             "residential"),
                   customers=sp["customers"].clip(lower=0))
    subs = ids(net.substations, "substation_id")
    subs = subs[subs["source_node"].isin(known)]
    return Network.from_tables({"nodes": nodes, "segments": seg, "service_points": sp, "substations": subs},
                               name=net.name)
