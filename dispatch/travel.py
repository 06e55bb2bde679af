"""Travel times, injected: the dispatch model never knows about roads.

A travel-time source is any callable ``travel(src, dst) -> seconds`` taking two ``(n, 2)`` / ``(m, 2)`` arrays of
``(lon, lat)`` and returning an ``(n, m)`` float array of seconds (``inf`` or ``nan`` where there is no way).
:meth:`gis.roads.RoadGraph.travel_time_matrix` has exactly that shape. Two small sources live here:
:class:`StraightLine` (great-circle distance x circuity at a speed: the no-road fallback and the synthetic-grid
benchmark) and :class:`MatrixTravel` (a fixed matrix between known points: tests and precomputed matrices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dispatch.model import DispatchInputError, Location

#: ``travel(src_points, dst_points) -> seconds``: the travel-time source every dispatcher takes.
TravelTime = Callable[[np.ndarray, np.ndarray], np.ndarray]

EARTH_RADIUS_M = 6_371_008.8


def great_circle_m(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Haversine distances in metres, ``(n, 2) x (m, 2) -> (n, m)``, points as ``(lon, lat)`` degrees."""
    lon1, lat1 = np.radians(src[:, 0])[:, None], np.radians(src[:, 1])[:, None]
    lon2, lat2 = np.radians(dst[:, 0])[None, :], np.radians(dst[:, 1])[None, :]
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass(frozen=True)
class StraightLine:
    """Great-circle distance x ``circuity`` at ``speed_kph``: a road-free travel-time estimate."""

    speed_kph: float = 40.0
    circuity: float = 1.3

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return great_circle_m(np.asarray(src, float), np.asarray(dst, float)) * self.circuity / (
            self.speed_kph / 3.6)


@dataclass
class MatrixTravel:
    """Travel times given as a matrix between a fixed list of points (exact coordinate match).

    ``seconds[i, j]`` is the time from ``points[i]`` to ``points[j]``; ``inf``/``nan`` means unreachable. Asking
    for a point not in the list raises an error naming it.
    """

    points: Sequence[Location]
    seconds: np.ndarray
    _index: dict[tuple[float, float], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.seconds = np.asarray(self.seconds, dtype=float)
        n = len(self.points)
        if self.seconds.shape != (n, n):
            raise DispatchInputError(f"travel matrix: shape {self.seconds.shape} does not match {n} points")
        self._index = {(float(p[0]), float(p[1])): i for i, p in enumerate(self.points)}

    def _rows(self, pts: np.ndarray) -> np.ndarray:
        out = np.empty(len(pts), dtype=np.int64)
        for k, (lon, lat) in enumerate(np.asarray(pts, float)):
            try:
                out[k] = self._index[(float(lon), float(lat))]
            except KeyError:
                raise DispatchInputError(f"travel matrix: no row for point ({lon}, {lat})") from None
        return out

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return self.seconds[np.ix_(self._rows(src), self._rows(dst))]
