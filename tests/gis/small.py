"""Hand-made small networks for tests (shared by several test modules)."""

from __future__ import annotations

import pandas as pd
from shapely.geometry import Point

from gis.network import Network


def small_feeder(extra_segments=(), extra_sps=(), drop_segments=()) -> Network:
    """One substation S, breaker BRK, recloser R1, two fuses F1/F2 with transformers, a tie to feeder 2.

    S --BRK-- n1 --L1-- n2 --R1-- n3 --L2-- n4 --F1-- n5 --T1-- s1 (sp1 2 cust, sp2 1 cust)
                                            n4 --F2-- n6 --T2-- s2 (sp3 3 cust)
                                                       n6 --T3-- s3 (sp4 1 cust, life support)
    S --BRK2-- m1 --T4-- s4 (sp5 4 cust)          n3 --TIE (normally open)-- m1
    """
    coords = {
        "S": (11.50, 50.00), "n1": (11.51, 50.00), "n2": (11.52, 50.00), "n3": (11.53, 50.00),
        "n4": (11.54, 50.00), "n5": (11.55, 50.01), "s1": (11.56, 50.01), "n6": (11.55, 49.99),
        "s2": (11.56, 49.99), "s3": (11.56, 49.98), "m1": (11.51, 49.98), "s4": (11.52, 49.97),
    }
    nodes = pd.DataFrame({"node_id": list(coords), "geometry": [Point(*c) for c in coords.values()]})
    segs = [
        ("BRK", "S", "n1", "breaker", False), ("L1", "n1", "n2", "line", False),
        ("R1", "n2", "n3", "recloser", False), ("L2", "n3", "n4", "line", False),
        ("F1", "n4", "n5", "fuse", False), ("T1", "n5", "s1", "transformer", False),
        ("F2", "n4", "n6", "fuse", False), ("T2", "n6", "s2", "transformer", False),
        ("T3", "n6", "s3", "transformer", False),
        ("BRK2", "S", "m1", "breaker", False), ("T4", "m1", "s4", "transformer", False),
        ("TIE", "n3", "m1", "switch", True),
        *extra_segments,
    ]
    segs = [s for s in segs if s[0] not in drop_segments]
    segments = pd.DataFrame(segs, columns=["segment_id", "from_node", "to_node", "kind", "normally_open"])
    segments["feeder_id"] = ["F1" if s[0] not in ("BRK2", "T4") else "F2" for s in segs]
    sps = [
        ("sp1", "s1", 2, "none"), ("sp2", "s1", 1, "none"), ("sp3", "s2", 3, "none"),
        ("sp4", "s3", 1, "life_support"), ("sp5", "s4", 4, "none"), *extra_sps,
    ]
    service_points = pd.DataFrame(sps, columns=["sp_id", "node_id", "customers", "critical_kind"])
    service_points["account"] = [f"A-{s[0]}" for s in sps]
    service_points["geometry"] = [Point(*coords.get(s[1], (11.5, 50.0))) for s in sps]
    substations = pd.DataFrame({"substation_id": ["SUB1"], "name": ["Sub One"], "source_node": ["S"],
                                "geometry": [Point(*coords["S"])]})
    return Network.from_tables({"nodes": nodes, "segments": segments, "service_points": service_points,
                                "substations": substations}, name="small")
