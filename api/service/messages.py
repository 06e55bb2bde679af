"""What the event stream (SSE) says about events, assignments and crews: one shape for every publisher. An event's
customers out is :func:`outage.figures.event_customers`, as everywhere else."""

from __future__ import annotations

from typing import Any

from api.store.models import CLOSED_STATES, Assignment, Crew
from outage.figures import event_customers


def event_message(row: dict[str, Any]) -> dict[str, Any]:
    """What the stream says about an event: no personal data (no reports, names, addresses)."""
    msg = {k: row[k] for k in ("id", "state", "tier", "weight", "device_id", "device_kind", "feeder_id",
                               "customers_out", "critical_count", "hazards", "cause", "lat", "lon",
                               "etr_earliest", "etr_latest", "merged_into", "explanation")}
    msg["customers_out"] = event_customers(row["customers_out"])
    msg["etr_probability"] = (row.get("etr_detail") or {}).get("probability") if row.get("etr_latest") else None
    msg["class"] = row["event_class"]
    msg["closed"] = row["state"] in CLOSED_STATES
    return msg


def assignment_message(a: Assignment) -> dict[str, Any]:
    return {"id": a.id, "event_id": a.event_id, "crew_id": a.crew_id, "status": a.status, "eta": a.eta,
            "sequence": a.sequence, "locked": a.locked, "manual": a.manual, "plan_id": a.plan_id}


def crew_message(c: Crew) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "status": c.status, "lat": c.lat, "lon": c.lon,
            "position_at": c.position_at, "skills": c.skills}
