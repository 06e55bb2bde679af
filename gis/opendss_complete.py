"""Completing a bare OpenDSS feeder into what an OMS needs: customers under transformers, and the devices that
operate.

OpenDSS models describe loads on primary or secondary buses and rarely their protection. By these rules, every
added element marked ``synthesized=True`` (so that maps and reports can say it is not the utility's data):

1. **Service points from loads**: a load fed through a modelled transformer (its bus is that transformer's low side
   or below it through secondaries and services) hangs its service points on its own bus; any other gets a
   distribution transformer ``T-<load>`` to a new low-voltage node 15 m away. A single- or two-phase load is
   residential, one service point per ``kw_per_customer`` kW (default 5 kW, at least 1) unless the model gives
   ``NumCust`` above 1; a three-phase load is one commercial service point.
2. **Fuses at lateral taps** (only if the model has no fuse): where a line with fewer than three phases leaves a
   three-phase node, a fuse ``F-<line>`` is inserted at the tap.
3. **A recloser mid-feeder on long feeders** (only if the model has no recloser): on each feeder whose three-phase
   main line reaches at least ``recloser_min_km`` (default 1.5 km, about a mile) from its breaker, at the main-line
   segment whose downstream customer count is closest to half of its feeder's (and below all of them: a recloser
   that sees everything the breaker sees adds nothing), a recloser ``R-<line>`` is inserted. On a shorter feeder
   the breaker's own reclosing covers the line, and a fault anywhere on it is as near the substation as a
   mid-line recloser would be. Reach is measured along the line from the breaker: each segment counts its
   modelled length, and at least the straight distance between its buses' coordinates (a model's lengths can be
   missing, or in units it does not state).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import shapely

from gis.network import Network
from gis.opendss_place import offset as _offset

#: rule 3: a feeder whose main line reaches this far from its breaker gets a mid-line recloser
RECLOSER_MIN_KM = 1.5


def complete_feeder(net: Network, loads: list[dict], kw_per_customer: float = 5.0, add_fuses: bool = True,
                    add_recloser: bool = True, seed: int = 0, recloser_min_km: float = RECLOSER_MIN_KM) -> Network:
    """Add service points (from ``loads``), lateral fuses and a mid-feeder recloser on long feeders by the module's
    rules."""
    from gis.topology import KIND_CODE, build

    rng = np.random.default_rng(seed)
    nodes = net.nodes.copy()
    seg = net.segments.copy()
    xy = dict(zip(nodes["node_id"], zip(nodes.geometry.x, nodes.geometry.y, strict=True), strict=True))
    topo = build(net, validate=False)
    # a load whose nearest device at or above its bus is a transformer is fed by it (low side, secondaries,
    # services): its customers hang on its own bus, under that transformer
    index = pd.Index(topo.node_ids)
    at = index.get_indexer([ld["bus"] for ld in loads])
    dev = np.where(at >= 0, topo.upstream_device[np.maximum(at, 0)], -1)
    fed = (dev >= 0) & (topo.seg_kind[np.maximum(dev, 0)] == KIND_CODE["transformer"])
    new_nodes, new_segs, sps = [], [], []
    for ld, under_transformer in zip(loads, fed, strict=True):
        bus = ld["bus"]
        if under_transformer:
            hang = bus
        else:
            hang = f"{bus}~lv-{ld['name'].lower()}"
            angle = rng.uniform(0, 2 * math.pi)
            lon, lat = _offset(xy[bus], 15.0, angle)
            xy[hang] = (lon, lat)
            new_nodes.append({"node_id": hang, "geometry": shapely.Point(lon, lat)})
            new_segs.append({"segment_id": f"T-{ld['name']}", "from_node": bus, "to_node": hang,
                             "kind": "transformer", "phases": ld["phases"], "synthesized": True,
                             "name": f"distribution transformer for Load.{ld['name']}", "length_m": 15.0})
        three_phase = len(ld["phases"]) == 3
        given = int(ld.get("customers", 1))
        count = 1 if three_phase else given if given > 1 else max(1, round(ld["kw"] / kw_per_customer))
        for k in range(count):
            lon, lat = _offset(xy[hang], rng.uniform(10, 40), rng.uniform(0, 2 * math.pi))
            sps.append({"sp_id": f"SP-{ld['name']}-{k + 1}", "node_id": hang, "account": f"ACC-{ld['name']}-{k + 1}",
                        "meter": f"MTR-{ld['name']}-{k + 1}", "address": f"Bus {bus} service {k + 1}",
                        "customers": 1, "customer_class": "commercial" if three_phase else "residential",
                        "synthesized": True, "name": f"Load.{ld['name']} ({ld['kw']:g} kW)",
                        "geometry": shapely.Point(lon, lat)})
    nodes = pd.concat([nodes, pd.DataFrame(new_nodes)], ignore_index=True) if new_nodes else nodes
    seg = pd.concat([seg, pd.DataFrame(new_segs)], ignore_index=True) if new_segs else seg
    seg = seg.set_geometry([None] * len(seg), crs=net.segments.crs)  # redrawn straight by Network
    out = Network(nodes=nodes, segments=seg, service_points=pd.DataFrame(sps) if sps else None,
                  substations=net.substations, name=net.name)
    if not (add_fuses or add_recloser):
        return with_feeders(out)
    topo = build(out, validate=False)
    three = seg["phases"].str.len().to_numpy() >= 3
    # a node is on the main line if the segment feeding it is three-phase (or it is a source)
    fed_by = topo.parent_seg
    main_node = np.where(fed_by >= 0, three[np.maximum(fed_by, 0)], True) & topo.energized
    inserts: list[tuple[int, int, str]] = []  # (segment, tap node index, kind)
    if add_fuses:
        for s in np.flatnonzero(~three & np.isin(topo.seg_kind, [KIND_CODE["line"], KIND_CODE["switch"]])):
            below = topo.device_below(int(s))
            if below < 0:
                continue
            tap = int(topo.parent_node[below])
            if main_node[tap] and topo.downstream_customers_node[below] > 0:
                inserts.append((int(s), tap, "fuse"))
    if add_recloser:
        heads = topo.feeder_heads()
        reach = main_line_reach(topo, seg, xy, main_node, heads)
        cand = np.flatnonzero(three & (topo.seg_kind == KIND_CODE["line"]))
        best: dict[int, tuple[float, int, int]] = {}
        for s in cand:
            below = topo.device_below(int(s))
            if below < 0 or heads[below] < 0:
                continue
            head = int(heads[below])
            if reach.get(head, 0.0) < recloser_min_km * 1000.0:
                continue  # a short feeder: the breaker's reclosing covers it
            total = topo.downstream_customers(head)
            if topo.downstream_customers_node[below] >= total:
                continue  # it would see exactly what the breaker sees
            score = abs(topo.downstream_customers_node[below] - total / 2)
            if head not in best or score < best[head][0]:
                best[head] = (score, int(s), int(topo.parent_node[below]))
        inserts += [(s, tap, "recloser") for _, s, tap in best.values()]
    seg_rows = seg.to_dict("records")
    added_nodes = []
    for s, tap, kind in inserts:
        row = seg_rows[s]
        tap_id = str(topo.node_ids[tap])
        dev_id = f"{kind[0].upper()}-{row['segment_id']}"
        mid = f"{tap_id}~{dev_id.lower()}"
        other = row["to_node"] if row["from_node"] == tap_id else row["from_node"]
        if row["from_node"] == tap_id:
            row["from_node"] = mid
        else:
            row["to_node"] = mid
        # the device sits a few metres into the line from the tap
        ax, ay = xy[tap_id]
        bx, by = xy[other]
        frac = min(0.2, 10.0 / max(_metres((ax, ay), (bx, by)), 1e-9))
        added_nodes.append({"node_id": mid, "geometry": shapely.Point(ax + (bx - ax) * frac, ay + (by - ay) * frac)})
        seg_rows.append({**{k: row[k] for k in ("phases", "feeder_id")}, "segment_id": dev_id, "from_node": tap_id,
                         "to_node": mid, "kind": kind, "normally_open": False, "synthesized": True,
                         "name": f"{kind} at the tap of {row['segment_id']}", "length_m": 0.0, "geometry": None})
    nodes = pd.concat([out.nodes, pd.DataFrame(added_nodes)], ignore_index=True) if added_nodes else out.nodes
    seg = pd.DataFrame(seg_rows)
    seg["geometry"] = None
    out = Network(nodes=nodes, segments=seg, service_points=out.service_points, substations=out.substations,
                  name=out.name)
    return with_feeders(out)


def main_line_reach(topo, seg: pd.DataFrame, xy: dict, main_node: np.ndarray, heads: np.ndarray) -> dict[int, float]:
    """Per feeder breaker (segment index): how far, in metres along the line, its farthest main-line node is from
    it. A segment counts its modelled ``length_m`` and at least the straight distance between its two nodes."""
    modelled = seg["length_m"].to_numpy(dtype=float) if "length_m" in seg else np.full(len(seg), np.nan)
    node_ids = topo.node_ids
    dist = np.full(topo.n_nodes, np.nan)
    for src in topo.source_nodes.tolist():
        order = topo.downstream_nodes(int(src)).tolist()
        dist[order[0]] = 0.0
        for n in order[1:]:
            p, s = int(topo.parent_node[n]), int(topo.parent_seg[n])
            a, b = xy.get(node_ids[p]), xy.get(node_ids[n])
            straight = _metres(a, b) if a is not None and b is not None else 0.0
            given = modelled[s] if s < len(modelled) and np.isfinite(modelled[s]) else 0.0
            dist[n] = dist[p] + max(given, straight)
    out: dict[int, float] = {}
    for n in np.flatnonzero(main_node & (heads >= 0) & np.isfinite(dist)).tolist():
        h = int(heads[n])
        start = dist[topo.seg_from[h]] if np.isfinite(dist[topo.seg_from[h]]) else 0.0
        out[h] = max(out.get(h, 0.0), float(dist[n] - min(start, dist[n])))
    return out


def with_feeders(net: Network) -> Network:
    """Set ``feeder_id`` to the breaker heading each segment's feeder, and fill unknown lengths from geometry."""
    from gis.topology import KIND_CODE, build

    topo = build(net, validate=False)
    heads = topo.feeder_heads()
    seg = net.segments
    ends = np.where(topo.parent_node[topo.seg_to] == topo.seg_from, topo.seg_to, topo.seg_from)
    head = heads[ends]
    breaker = topo.seg_kind == KIND_CODE["breaker"]
    head = np.where(breaker, np.arange(len(seg)), head)
    seg["feeder_id"] = np.where(head >= 0, topo.segment_ids[np.maximum(head, 0)], "")
    lengths = seg["length_m"].to_numpy(dtype=float, copy=True)
    unknown = np.isnan(lengths)
    if unknown.any():
        g = seg.geometry[unknown]
        lengths[unknown] = [_metres(*ln.coords[:2]) if ln is not None and len(ln.coords) >= 2 else np.nan
                            for ln in g]
        seg["length_m"] = lengths
    return net


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(min(1.0, h)))
