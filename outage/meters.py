"""The AMI ping interface, and a simulated head-end for tests and the storm simulator.

The engine asks a :class:`MeterInterface` whether meters have voltage: to verify a prediction (a sample of meters
per transformer) and to verify restoration before an event closes. A real head-end answers asynchronously; this
interface is synchronous and returns what the head-end knows now, which keeps the engine deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol

import numpy as np

PING_ON, PING_OFF, PING_UNKNOWN = "on", "off", "unknown"


class MeterInterface(Protocol):
    def ping(self, meters: list[str], now: datetime) -> dict[str, str]:
        """Power status per meter: ``"on"``, ``"off"`` or ``"unknown"`` (no answer / communication failure)."""
        ...


class SimulatedHeadEnd:
    """A head-end that knows the truth: per meter, intervals ``(off_from, on_at)`` (``on_at`` None = still off).

    ``failure_rate`` of answers come back ``unknown`` (seeded). Counts every meter pinged in ``pinged``.
    """

    def __init__(self, outages: Mapping[str, Iterable[tuple[datetime, datetime | None]]] | None = None,
                 failure_rate: float = 0.0, seed: int = 0):
        if not 0.0 <= failure_rate < 1.0:
            raise ValueError(f"SimulatedHeadEnd: failure_rate must be in [0, 1), got {failure_rate}")
        self.outages: dict[str, list[tuple[datetime, datetime | None]]] = {
            m: list(iv) for m, iv in (outages or {}).items()}
        self.failure_rate = failure_rate
        self._rng = np.random.default_rng(seed)
        self.pinged = 0
        self.requests = 0

    def set_off(self, meter: str, since: datetime, until: datetime | None = None) -> None:
        self.outages.setdefault(meter, []).append((since, until))

    def set_on(self, meter: str, at: datetime) -> None:
        """Close every open interval of ``meter`` at ``at``."""
        self.outages[meter] = [(a, b if b is not None else at) for a, b in self.outages.get(meter, [])]

    def is_off(self, meter: str, now: datetime) -> bool:
        return any(a <= now and (b is None or now < b) for a, b in self.outages.get(meter, ()))

    def ping(self, meters: list[str], now: datetime) -> dict[str, str]:
        self.requests += 1
        self.pinged += len(meters)
        fail = ((self._rng.random(len(meters)) < self.failure_rate).tolist() if self.failure_rate
                else [False] * len(meters))
        return {m: PING_UNKNOWN if f else (PING_OFF if self.is_off(m, now) else PING_ON)
                for m, f in zip(meters, fail, strict=True)}
