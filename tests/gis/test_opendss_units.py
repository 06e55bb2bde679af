"""The unit of planar OpenDSS coordinates, inferred when no scale is given (gis.opendss_units), and said in the
import notes: from line lengths in their declared units, else from the feeder's size."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pyproj import Geod

from gis.opendss import read_opendss
from gis.opendss_units import from_extent, from_lengths, infer_scale


def _chain(tmp_path: Path, n: int, step: float, length: str) -> Path:
    """A chain of ``n`` lines ``step`` coordinate units apart, each ``length`` (OpenDSS text: "60 units=m")."""
    lines = ["Clear", "New Circuit.c bus1=b0 basekv=12.47"]
    coords = []
    for i in range(n + 1):
        coords.append(f"b{i}, {i * step:g}, {(i % 2) * step * 0.1:g}")
        if i:
            lines.append(f"New Line.L{i} bus1=b{i - 1} bus2=b{i} length={length}")
    lines.append(f"New Transformer.X bus=b{n} buses=(b{n}, s) kvs=(12.47, 0.24) kvas=(25, 25)")
    lines.append("New Load.H bus1=s kv=0.24 kw=5")
    lines.append("Buscoords coords.csv")
    (tmp_path / "coords.csv").write_text("\n".join(coords) + "\n")
    (tmp_path / "m.dss").write_text("\n".join(lines) + "\n")
    return tmp_path / "m.dss"


def _metres(net, a: str, b: str) -> float:
    pts = net.nodes.set_index("node_id")["geometry"]
    return Geod(ellps="WGS84").inv(pts[a].x, pts[a].y, pts[b].x, pts[b].y)[2]


def test_feet_inferred_from_lengths_in_metres(tmp_path):
    # lines of 60 m drawn 196.85 units apart: the coordinates are in feet
    master = _chain(tmp_path, 12, 60 / 0.3048, "60 units=m")
    net = read_opendss(master, anchor=(40.0, -80.0))
    note = next(n for n in net.notes if n.startswith("coordinates read in"))
    assert "coordinates read in ft" in note and "12 lines" in note
    assert abs(_metres(net, "b0", "b12") / (12 * 60 * math.hypot(1, 0.1)) - 1) < 0.02
    # a scale given is used as given, with a note when the lengths disagree
    net = read_opendss(master, anchor=(40.0, -80.0), scale=1.0)
    assert any("scale 1 m per unit given" in n for n in net.notes)
    assert abs(_metres(net, "b0", "b1") / (60 / 0.3048 * math.hypot(1, 0.1)) - 1) < 0.02


def test_without_length_units_the_feeders_size_decides(tmp_path):
    # 0.5 units between buses, 30 units end to end: feet (a 9 m feeder) and metres are no feeder; kft is
    master = _chain(tmp_path, 60, 0.5, "0.04")
    net = read_opendss(master, anchor=(40.0, -80.0))
    note = next(n for n in net.notes if n.startswith("coordinates read in"))
    assert "coordinates read in kft" in note and "feeder's size" in note and "next likeliest km" in note
    assert abs(_metres(net, "b0", "b60") / (30 * 304.8) - 1) < 0.02


def test_lengths_not_drawn_to_scale_give_no_unit():
    rng = np.random.default_rng(1)
    scattered = [(float(x), 1.0) for x in rng.uniform(10, 300, 50)]  # lengths unrelated to the drawing
    assert from_lengths(scattered) is None
    assert from_lengths([(0.3048, 1.0)] * 9) is None  # too few lines to say
    scale, why = from_lengths([(1000.0, 1.0)] * 20)
    assert scale == 1000.0 and "in km" in why
    # an unusual but consistent ratio is used as it is, and said to be no OpenDSS unit
    scale, why = infer_scale([(2.0, 1.0)] * 20, [1.0] * 20, np.array([[0.0, 0.0], [100.0, 0.0]]))
    assert scale == 2.0 and "no OpenDSS unit" in why
    assert from_extent([], np.zeros((0, 2)))[0] == 1.0
