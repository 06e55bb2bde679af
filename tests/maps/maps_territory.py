"""A small hand-made territory for the map tests: a village, scattered farms and a town, with personal data
(names, addresses, accounts, phones) on every service point so the tests can prove none of it reaches the public.

Substation S (11.49, 50.00)
  feeder 1: BRK1 - line - recloser R1 - fuse FV -> village transformers TV1..TV4 (5 homes each, one customer each)
                                     \\- fuse FF -> farms: TF1, TF2, TF3 (one farm each, kilometres apart)
  feeder 2: BRK2 - line - fuse FT -> town transformers TT1..TT3 (10 customers each on one service point)
  normally open tie between the village and the town.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from shapely.geometry import Point

from api.maps.state import MapCrew, MapEvent, MapState
from gis.network import Network

NOW = datetime(2024, 7, 1, 18, 0, tzinfo=UTC)


def territory() -> Network:
    nodes: dict[str, tuple[float, float]] = {
        "S": (11.490, 50.000), "a1": (11.495, 50.000), "a2": (11.500, 50.000), "a3": (11.5005, 50.0005),
        "fv": (11.501, 50.001), "ff": (11.502, 49.999),
        "b1": (11.495, 49.990), "b2": (11.505, 49.975), "ft": (11.520, 49.970),
    }
    segs = [("BRK1", "S", "a1", "breaker", False, "F1"), ("L1", "a1", "a2", "line", False, "F1"),
            ("R1", "a2", "a3", "recloser", False, "F1"), ("FV", "a3", "fv", "fuse", False, "F1"),
            ("FF", "a3", "ff", "fuse", False, "F1"),
            ("BRK2", "S", "b1", "breaker", False, "F2"), ("L2", "b1", "b2", "line", False, "F2"),
            ("FT", "b2", "ft", "fuse", False, "F2")]
    sps = []
    # village: 4 transformers x 5 homes, within a few hundred metres
    for t in range(4):
        xn = f"tv{t}"
        nodes[xn] = (11.502 + 0.001 * t, 50.002 + 0.0005 * t)
        segs.append((f"TV{t + 1}", "fv", xn, "transformer", False, "F1"))
        for h in range(5):
            sps.append((f"sp-v{t}{h}", xn, 1, (11.502 + 0.001 * t + 0.0001 * h, 50.002 + 0.0005 * t + 0.0001 * h),
                        f"{10 + h} Elm Street", f"Villager {t}{h}"))
    # farms: one home each, kilometres apart (each alone in its grid cell)
    farm_at = [(11.530, 50.010), (11.545, 50.030), (11.470, 50.040)]
    for f, (x, y) in enumerate(farm_at):
        xn = f"tf{f}"
        nodes[xn] = (x, y)
        segs.append((f"TF{f + 1}", "ff", xn, "transformer", False, "F1"))
        sps.append((f"sp-farm{f}", xn, 1, (x + 0.0001, y + 0.0001), f"{f + 1} Lonely Farm Road", f"Farmer {f}"))
    # town: 3 transformers with 10 customers each (apartment blocks)
    for t in range(3):
        xn = f"tt{t}"
        nodes[xn] = (11.521 + 0.001 * t, 49.971)
        segs.append((f"TT{t + 1}", "ft", xn, "transformer", False, "F2"))
        sps.append((f"sp-town{t}", xn, 10, (11.521 + 0.001 * t, 49.9712), f"{t + 1} Market Square", f"Block {t}"))
    segs.append(("TIE", "fv", "b2", "switch", True, "F1"))
    node_df = pd.DataFrame({"node_id": list(nodes), "geometry": [Point(*c) for c in nodes.values()]})
    seg_df = pd.DataFrame(segs, columns=["segment_id", "from_node", "to_node", "kind", "normally_open", "feeder_id"])
    sp_df = pd.DataFrame({
        "sp_id": [s[0] for s in sps], "node_id": [s[1] for s in sps], "customers": [s[2] for s in sps],
        "geometry": [Point(*s[3]) for s in sps], "address": [s[4] for s in sps], "name": [s[5] for s in sps],
        "account": [f"ACC-{i:04d}" for i in range(len(sps))], "phone": [f"+49921555{i:04d}" for i in range(len(sps))],
        "meter": [f"MTR-{i:05d}" for i in range(len(sps))],
    })
    substations = pd.DataFrame({"substation_id": ["SUB"], "name": ["Main"], "source_node": ["S"],
                                "geometry": [Point(*nodes["S"])]})
    roads = pd.DataFrame({
        "u": ["r1", "r2"], "v": ["r2", "r3"], "highway": ["primary", "residential"], "length_m": [800.0, 400.0],
        "name": ["Hauptstrasse", "Elm Street"],
        "geometry": [shapely_line([(11.49, 50.0), (11.50, 50.0)]), shapely_line([(11.50, 50.0), (11.505, 50.003)])],
    })
    return Network.from_tables({"nodes": node_df, "segments": seg_df, "service_points": sp_df,
                                "substations": substations, "road_edges": roads}, name="maps-test")


def shapely_line(coords):
    from shapely.geometry import LineString

    return LineString(coords)


def sp_rows(network: Network, prefix: str) -> tuple[int, ...]:
    """Row positions of the service points whose id starts with ``prefix``."""
    ids = network.service_points["sp_id"].tolist()
    return tuple(i for i, s in enumerate(ids) if s.startswith(prefix))


def storm_state(network: Network, version: object = 1) -> MapState:
    """The village fuse out (tree, crew en route), one farm out (no ETR yet), a crew with a route."""
    village = MapEvent("EV-100", "FV", 11.501, 50.001, tier=3, event_class="feeder", customers_out=20,
                       sp_indices=sp_rows(network, "sp-v"), cause="tree on line", crew_status="en route",
                       etr_low=datetime(2024, 7, 1, 20, 0, tzinfo=UTC), etr_high=datetime(2024, 7, 1, 21, 30, tzinfo=UTC),
                       explanation="9 calls under 4 of 4 transformers below fuse FV", status="dispatched",
                       started=datetime(2024, 7, 1, 17, 12, tzinfo=UTC))
    farm = MapEvent("EV-101", "TF1", 11.530, 50.010, tier=4, event_class="single_customer", customers_out=1,
                    sp_indices=sp_rows(network, "sp-farm0"), explanation="1 call at transformer TF1")
    crew = MapCrew("C-7", "Line crew 7", 11.495, 49.995, status="en route",
                   route=((11.501, 50.001), (11.530, 50.010)), job_ids=("EV-100", "EV-101"))
    return MapState(events=(village, farm), crews=(crew,), updated_at=NOW, version=version)
