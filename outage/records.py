"""Interruption records: the exact, per-customer account of who was out, from when to when.

The outage engine writes these as events are restored (including partial restorations and nested outages, each
customer's time counted once); reliability reporting (:mod:`outage.reliability`) computes IEEE 1366 indices from
them. Imported history from another system arrives in the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Interruption:
    """One service point's interruption by one event.

    ``customers`` is how many customers stand behind the service point (IEEE 1366 counts customers). ``end`` is
    ``None`` while the customer is still out. Times are timezone-aware UTC.
    """

    customer_id: str
    start: datetime
    end: datetime | None
    event_id: str
    customers: int = 1
    feeder_id: str = ""
    substation_id: str = ""
    cause: str = ""
    device_id: str = ""
    device_kind: str = ""

    @property
    def minutes(self) -> float | None:
        return None if self.end is None else (self.end - self.start).total_seconds() / 60.0
