"""Priority tiers P1-P4, a weight for the dispatcher's optimizer, response targets and aging.

P1 life-safety: wires down, fire or sparks, life-support customers out, hospitals and emergency services.
P2 critical infrastructure: water and wastewater, schools, telecom, or a large number of customers.
P3 device (feeder) outages. P4 single customers. Each tier has a response target (P1: a crew dispatched within
15 minutes). Aging lifts an event one tier each time it has waited twice its target, so nothing waits forever, and
the weight grows with age for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from outage.events import EventClass, OutageEvent

LIFE_SAFETY_KINDS = ("life_support", "hospital", "emergency_services")
CRITICAL_INFRA_KINDS = ("water", "school", "telecom")
#: time by which a crew should be dispatched, per tier
RESPONSE_TARGETS = {1: timedelta(minutes=15), 2: timedelta(hours=1), 3: timedelta(hours=4), 4: timedelta(hours=24)}
TIER_BASE_WEIGHT = {1: 1000.0, 2: 100.0, 3: 10.0, 4: 1.0}
LARGE_EVENT_CUSTOMERS = 500


@dataclass(frozen=True, slots=True)
class Priority:
    tier: int  # 1 (most urgent) .. 4
    weight: float  # what the optimizer minimises per minute out
    reason: str
    target: timedelta
    due: datetime  # start + target of the base tier
    overdue: bool

    @property
    def label(self) -> str:
        return f"P{self.tier}"


def base_tier(event: OutageEvent, large_customers: int = LARGE_EVENT_CUSTOMERS) -> tuple[int, str]:
    """Tier before aging, and the reason in words."""
    hazards = sorted(set(event.hazards) & {"wires_down", "fire_sparks"})
    if hazards:
        return 1, "life-safety: " + ", ".join(h.replace("_", " ") for h in hazards) + " reported"
    life = {k: n for k, n in event.critical_kinds.items() if k in LIFE_SAFETY_KINDS and n}
    if life:
        return 1, "life-safety: " + _count_words(life) + " out"
    if event.medical:
        return 1, f"life-safety: {event.medical} caller(s) with medical equipment at home"
    infra = {k: n for k, n in event.critical_kinds.items() if k in CRITICAL_INFRA_KINDS and n}
    if infra:
        return 2, "critical infrastructure out: " + _count_words(infra)
    if event.customers >= large_customers:
        return 2, f"{event.customers} customers out (>= {large_customers})"
    if event.event_class == EventClass.SINGLE_CUSTOMER:
        return 4, "single customer"
    if event.event_class == EventClass.CUSTOMER_SIDE:
        return 4, "single call, likely customer-side: verify with the customer"
    if event.event_class == EventClass.HAZARD:
        return 3, "hazard report without outage: " + (", ".join(event.hazards) or "damage")
    return 3, f"{event.device_kind} outage, {event.customers} customers"


def priority(event: OutageEvent, now: datetime, large_customers: int = LARGE_EVENT_CUSTOMERS) -> Priority:
    """Tier, weight and reason of ``event`` at ``now`` (aging included)."""
    tier, reason = base_tier(event, large_customers)
    target = RESPONSE_TARGETS[tier]
    age = max(now - event.start, timedelta(0))
    due = event.start + target
    steps = int(age / (2 * target))  # one tier up per two targets waited
    if steps and tier > 1:
        new = max(1, tier - steps)
        reason += f"; aged {_minutes(age)} (> 2x the P{tier} target): raised to P{new}"
        tier = new
    age_factor = 1.0 + age / target
    weight = (TIER_BASE_WEIGHT[tier] + event.customers + 50.0 * event.critical_customers) * age_factor
    return Priority(tier=tier, weight=round(weight, 3), reason=reason, target=target, due=due,
                    overdue=now > due and event.state.value in ("unconfirmed", "probable", "confirmed"))


def _count_words(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items()))


def _minutes(td: timedelta) -> str:
    m = int(td.total_seconds() // 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min"
