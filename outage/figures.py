"""The storm's headline figures, defined once: customers out, peak, events, restored.

Every place a person reads these numbers (the console, both maps, the stream, the notices, the post-event
summary) takes them from here, so they agree at every moment:

* **customers out** (:func:`customers_out`): the customers of the distinct service points behind the open events.
  Nested events (a fuse under an open recloser) share service points; each customer counts once. An event whose
  service points are unknown adds its own count.
* **one event's customers** (:func:`event_customers`): what the engine counts as interrupted by that event now
  (parts already restored left out). The console's grid, the stream's event messages, the maps' events, the
  status page and the notices ("an outage affecting about 40 customers") state this number.
* **events** (:func:`event_counts`): events the storm created, less those merged into another or cancelled (false
  alarms); **open** / **restored**: of those, still out / restored.
* **peak** (:class:`FigureLog`): the largest customers-out sample, with its time; the samples are the restoration
  curve. The demo samples at every step of its storm clock, where all changes happen, so the curve is exact.

:meth:`Figures.message` is what the stream (``GET /stream``, type ``figures``) says when they change.

Pure: numpy arrays in, numbers out; the caller supplies the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np


def out_mask(sp_sets: Iterable[Sequence[int] | np.ndarray], n_sp: int) -> np.ndarray:
    """Boolean per service point: out under at least one of ``sp_sets`` (row positions)."""
    mask = np.zeros(n_sp, dtype=bool)
    for rows in sp_sets:
        if len(rows):
            mask[np.asarray(rows, dtype=np.int64)] = True
    return mask


def customers_out(events: Iterable[tuple[Sequence[int] | np.ndarray, int]], sp_customers: np.ndarray) -> int:
    """Customers out under ``events`` given as ``(service point rows, the event's own customer count)``."""
    events = list(events)
    mask = out_mask((rows for rows, _ in events), len(sp_customers))
    unplaced = sum(int(n) for rows, n in events if not len(rows))
    return int(sp_customers[mask].sum()) + unplaced


def event_customers(count: int | None) -> int:
    """One event's customers out, from the engine's count for it (``None`` while unknown: 0)."""
    return max(int(count or 0), 0)


#: Event states that are not an outage after all (a false alarm, a customer-side problem).
NOT_AN_OUTAGE = frozenset({"cancelled"})


def event_counts(states: Mapping[str, int]) -> tuple[int, int, int]:
    """(events, open, restored) from the number of events in each state, events merged into another left out."""
    events = sum(int(n) for state, n in states.items() if state not in NOT_AN_OUTAGE)
    restored = int(states.get("restored", 0))
    return events, events - restored, restored


@dataclass(frozen=True)
class Figures:
    """The headline figures at one moment."""

    at: datetime
    customers_out: int
    events: int
    open: int
    restored: int

    def same_as(self, other: Figures | None) -> bool:
        """The same figures (at any time)."""
        return other is not None and self.message()["figures"] == other.message()["figures"]

    def message(self) -> dict:
        """What the stream says: ``{"at": ISO time, "figures": {customers_out, events, open, restored}}``."""
        return {
            "at": self.at.isoformat(),
            "figures": {
                "customers_out": self.customers_out,
                "events": self.events,
                "open": self.open,
                "restored": self.restored,
            },
        }


@dataclass
class FigureLog:
    """Samples of :class:`Figures` over a storm: the peak and the restoration curve come from here."""

    samples: list[Figures] = field(default_factory=list)

    def record(self, figures: Figures) -> Figures:
        if self.samples and figures.at < self.samples[-1].at:
            raise ValueError(f"samples must come in time order: {figures.at} after {self.samples[-1].at}")
        self.samples.append(figures)
        return figures

    @property
    def last(self) -> Figures | None:
        return self.samples[-1] if self.samples else None

    @property
    def peak(self) -> Figures | None:
        """The first sample with the most customers out."""
        return max(self.samples, key=lambda f: f.customers_out, default=None)

    def curve(self) -> list[tuple[datetime, int]]:
        """(time, customers out) at every change, starting with the first sample."""
        out: list[tuple[datetime, int]] = []
        for f in self.samples:
            if not out or out[-1][1] != f.customers_out:
                out.append((f.at, f.customers_out))
        return out

    def customer_minutes(self, until: datetime | None = None) -> float:
        """Customer-minutes of interruption under the curve (each customer once, however events nest)."""
        curve = self.curve()
        if not curve:
            return 0.0
        end = until or self.samples[-1].at
        total = 0.0
        for (t0, n), (t1, _) in zip(curve, [*curve[1:], (end, 0)], strict=True):
            total += n * max((t1 - t0).total_seconds(), 0.0) / 60.0
        return total
