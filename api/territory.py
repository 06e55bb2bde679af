"""The service's read-only view of the loaded territory: who is where, for checks at the API edge.

The intake must refuse what the engine cannot use — an unknown account or meter, a place outside the service area —
with a 422 before anything is stored, and it must do so in microseconds. This module builds those lookups once
per territory: account / meter / phone -> service point, the set of device ids, and coordinates of service points
and devices (events are drawn and crews routed to them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from gis.network import Network

EARTH_M_PER_DEG = 111_320.0
#: A report placed by coordinates farther than this from every service point is outside the service area.
DEFAULT_RADIUS_M = 2_000.0


def phone_digits(phone: str) -> str:
    """Digits only, without a leading country code ``1``/``00``: what two spellings of one number share."""
    digits = re.sub(r"\D", "", phone)
    return digits[-10:] if len(digits) > 10 else digits


@dataclass
class Directory:
    by_account: dict[str, str]
    by_meter: dict[str, str]
    by_phone: dict[str, str]
    devices: set[str]
    sp_xy: dict[str, tuple[float, float]]
    device_xy: dict[str, tuple[float, float]]
    sp_feeder: dict[str, str]
    _tree: cKDTree
    _tree_ids: list[str]
    _scale: float

    @classmethod
    def from_network(cls, net: Network) -> Directory:
        sps = net.service_points
        ids = sps["sp_id"].astype(str).tolist()
        xs = sps.geometry.x.to_numpy(dtype=float)
        ys = sps.geometry.y.to_numpy(dtype=float)
        scale = float(np.cos(np.radians(np.nanmean(ys)))) if len(ys) else 1.0

        def index(col: str, key=lambda v: v) -> dict[str, str]:
            return {key(v): s for v, s in zip(sps[col].astype(str).tolist(), ids, strict=True) if v}

        nodes = dict(zip(net.nodes["node_id"].astype(str), zip(net.nodes.geometry.x, net.nodes.geometry.y,
                                                               strict=True), strict=True))
        segs = net.segments
        device_xy = {s: nodes.get(t, nodes.get(f)) for s, f, t in
                     zip(segs["segment_id"].astype(str), segs["from_node"].astype(str), segs["to_node"].astype(str),
                         strict=True)}
        for sub, node in zip(net.substations["substation_id"].astype(str),
                             net.substations["source_node"].astype(str), strict=True):
            device_xy[f"substation:{sub}"] = nodes.get(node)
        sp_node_feeder = {}
        node_feeder = dict(zip(segs["to_node"].astype(str), segs["feeder_id"].astype(str), strict=True))
        for s, n in zip(ids, sps["node_id"].astype(str), strict=True):
            sp_node_feeder[s] = node_feeder.get(n, "")
        ok = ~(np.isnan(xs) | np.isnan(ys))
        tree_ids = [i for i, good in zip(ids, ok, strict=True) if good]
        return cls(by_account=index("account"), by_meter={(m or s): s for m, s in zip(sps["meter"].astype(str).tolist(), ids, strict=True)},
                   by_phone=index("phone", phone_digits), devices=set(device_xy),
                   sp_xy={i: (float(x), float(y)) for i, x, y in zip(ids, xs, ys, strict=True)},
                   device_xy={k: v for k, v in device_xy.items() if v is not None}, sp_feeder=sp_node_feeder,
                   _tree=cKDTree(np.column_stack([xs[ok] * scale, ys[ok]])) if ok.any() else None,
                   _tree_ids=tree_ids, _scale=scale)

    def nearest(self, lon: float, lat: float, radius_m: float = DEFAULT_RADIUS_M) -> str | None:
        """The service point nearest to (lon, lat) within ``radius_m``, else ``None``."""
        if self._tree is None:
            return None
        dist, i = self._tree.query([lon * self._scale, lat], distance_upper_bound=radius_m / EARTH_M_PER_DEG)
        return None if not np.isfinite(dist) else self._tree_ids[int(i)]

    def meter_of(self, meter: str) -> str | None:
        """Service point of a meter id (a service point without a meter answers to its own id, as in the engine)."""
        return self.by_meter.get(meter)
