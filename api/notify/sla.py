"""The acknowledgment SLA, as dispatchers see it: latency from report to the provider accepting the
acknowledgment, and the reports at risk of (pending past ``at_risk_s``) or in breach of (past ``sla_s``) it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select

from api.store.models import OutboxMessage, Report


def ack_sla(session, now: datetime, *, sla_s: float = 900.0, at_risk_s: float = 300.0,
            window: timedelta = timedelta(hours=24), list_limit: int = 50) -> dict[str, Any]:
    """Acknowledgment latency (p50/p99/max, seconds) over reports received in ``window``, counts and the oldest
    reports at risk or in breach (reference, age, status, last error), most overdue first."""
    rows = session.execute(
        select(Report.reference, Report.received_at, OutboxMessage.status, OutboxMessage.sent_at,
               OutboxMessage.last_error, OutboxMessage.channel)
        .join(OutboxMessage, (OutboxMessage.report_id == Report.id) & (OutboxMessage.kind == "acknowledgment"))
        .where(Report.received_at >= now - window)).all()
    latencies, open_rows = [], []
    late = 0
    for ref, received, status, sent_at, error, channel in rows:
        if status == "sent" and sent_at is not None:
            lat = (sent_at - received).total_seconds()
            latencies.append(lat)
            late += lat > sla_s
        elif status in ("pending", "claimed", "dead"):
            open_rows.append((ref, (now - received).total_seconds(), status, error, channel))
    arr = np.asarray(latencies, dtype=float)
    open_rows.sort(key=lambda r: -r[1])
    breach = [r for r in open_rows if r[1] > sla_s or r[2] == "dead"]
    at_risk = [r for r in open_rows if at_risk_s < r[1] <= sla_s and r[2] != "dead"]

    def listing(items):
        return [{"reference": r, "age_s": round(a, 1), "status": s, "channel": c, "last_error": e}
                for r, a, s, e, c in items[:list_limit]]

    return {
        "sla_s": sla_s, "at_risk_s": at_risk_s, "reports": len(rows), "acknowledged": int(arr.size),
        "pending": len(open_rows), "latency_p50_s": float(np.percentile(arr, 50)) if arr.size else None,
        "latency_p99_s": float(np.percentile(arr, 99)) if arr.size else None,
        "latency_max_s": float(arr.max()) if arr.size else None, "acknowledged_late": int(late),
        "in_breach": len(breach), "at_risk": len(at_risk), "breach": listing(breach), "risk": listing(at_risk),
    }
