"""The unit of planar OpenDSS bus coordinates, inferred from the model when the user does not give it.

OpenDSS coordinates carry no unit: ``Buscoords`` are whatever the modeller drew in (feet in most US models, metres
in most others). Read in the wrong unit a feeder is a thousand times too small or too large, and every rule that
measures distance (a mid-line recloser by main-line length, placement of buses without coordinates, maps) goes
wrong without a word. So the unit is inferred, and the import report says which unit and why:

1. **From line lengths.** Lines that declare a length unit (``units=ft``, ``km``...) and have coordinates at both
   ends give metres per coordinate unit as the ratio of their length to the coordinate distance between their ends.
   When at least ``MIN_LINES`` lines agree (the middle half of the ratios within ``AGREE`` of their median: lines
   drawn to scale), the median is used, read as the nearest OpenDSS length unit when within ``SNAP`` of it.
2. **From the feeder's extent**, when no line length is usable (no declared units, or lines not drawn to scale):
   each OpenDSS length unit is tried, and the one is taken that puts the model's sections between buses with
   coordinates (their median) and its extent (the bounding-box diagonal) within what distribution feeders measure
   (``SECTION_M``, ``EXTENT_M``), nearest the middle of those ranges (in log) when several do. The report names
   the runner-up, as this is a judgement, not a measurement.
"""

from __future__ import annotations

import math

import numpy as np

#: OpenDSS's length units (metres each) that a planar model is drawn in
UNITS_M = {"m": 1.0, "ft": 0.3048, "kft": 304.8, "km": 1000.0, "mi": 1609.344}
MIN_LINES = 10
AGREE = 1.25  # the middle half of the ratios within this factor of the median: drawn to scale
SNAP = 1.05  # a ratio within this factor of an OpenDSS unit is that unit
#: a section between two buses of a distribution model: a service drop or pole span (~10 m) to a long rural
#: section (~2 km); the median of a model's sections lies well within
SECTION_M = (10.0, 2000.0)
#: a distribution feeder's extent (bounding-box diagonal): a downtown network feeder of a few blocks (~300 m) to a
#: long rural feeder (~40 km; longer ones are sub-transmission)
EXTENT_M = (300.0, 40000.0)


def _unit_name(scale: float) -> str | None:
    for name, m in UNITS_M.items():
        if max(scale / m, m / scale) <= SNAP:
            return name
    return None


def from_lengths(pairs: list[tuple[float, float]]) -> tuple[float, str] | None:
    """(metres per unit, reason) from (length in metres, coordinate distance) of lines, or None if they disagree
    or are too few."""
    r = np.array(
        [length / dist for length, dist in pairs if length > 0 and dist > 0 and math.isfinite(length)]
    )
    if len(r) < MIN_LINES:
        return None
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    if q3 / med > AGREE or med / q1 > AGREE:
        return None
    name = _unit_name(float(med))
    scale = UNITS_M[name] if name else float(med)
    what = f"{name} ({scale:g} m per unit)" if name else f"{scale:.4g} m per unit (no OpenDSS unit)"
    return scale, (
        f"coordinates read in {what}: lines' lengths in their declared units against the distance "
        f"between their ends, median {med:.4g} m per unit over {len(r)} lines "
        f"(middle half {q1:.4g}..{q3:.4g})"
    )


def _outside(value: float, lo_hi: tuple[float, float]) -> float:
    """How far ``value`` lies outside the range, in decades (0 inside)."""
    lo, hi = lo_hi
    return max(0.0, math.log10(lo / value), math.log10(value / hi))


def _off_centre(value: float, lo_hi: tuple[float, float]) -> float:
    return abs(math.log10(value) - (math.log10(lo_hi[0]) + math.log10(lo_hi[1])) / 2)


def from_extent(sections: list[float], xy: np.ndarray) -> tuple[float, str]:
    """(metres per unit, reason) from the coordinate distances of sections between buses with coordinates and the
    coordinates themselves (see the module docstring)."""
    d = [s for s in sections if s > 0]
    section = float(np.median(d)) if d else 0.0
    diag = float(np.hypot(*(xy.max(axis=0) - xy.min(axis=0)))) if len(xy) else 0.0
    if section <= 0 or diag <= 0:
        return 1.0, "coordinates read in m: no sections or extent to infer their unit from (the default)"
    ranked = sorted(
        UNITS_M.items(),
        key=lambda u: (
            _outside(section * u[1], SECTION_M) + _outside(diag * u[1], EXTENT_M),
            _off_centre(section * u[1], SECTION_M) + _off_centre(diag * u[1], EXTENT_M),
        ),
    )
    (name, scale), (other, oscale) = ranked[0], ranked[1]

    def km(v: float) -> str:
        return f"{v / 1000:.3g} km" if v >= 1000 else f"{v:.3g} m"

    return scale, (
        f"coordinates read in {name} ({scale:g} m per unit), inferred from the feeder's size as no line length "
        f"gives it: median section {km(section * scale)}, extent {km(diag * scale)} (a distribution feeder: "
        f"sections {km(SECTION_M[0])}..{km(SECTION_M[1])}, extent {km(EXTENT_M[0])}..{km(EXTENT_M[1])}); "
        f"next likeliest {other}: {km(section * oscale)}, {km(diag * oscale)}. Give the scale to override"
    )


def infer_scale(pairs: list[tuple[float, float]], sections: list[float], xy: np.ndarray) -> tuple[float, str]:
    """Metres per coordinate unit and the import report's note on how it was found: from line lengths when they
    agree, else from the feeder's extent."""
    return from_lengths(pairs) or from_extent(sections, xy)


def check_scale(scale: float, pairs: list[tuple[float, float]]) -> str | None:
    """A note when a scale the user gave disagrees with the lines' declared lengths by more than a factor of 2."""
    found = from_lengths(pairs)
    if found is None or max(found[0] / scale, scale / found[0]) <= 2.0:
        return None
    return f"scale {scale:g} m per unit given, but the lines' declared lengths say {found[0]:g} ({found[1]})"
