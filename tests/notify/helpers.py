"""Shared helpers: add reports with their acknowledgment rows the way the service's intake does."""

from __future__ import annotations

from datetime import datetime

from api.notify.config import NotifySettings
from api.service.intake import IntakeWriter, new_reference
from api.store.models import utcnow


def settings_for(smtp=None, gateway=None, **overrides) -> NotifySettings:
    opts = {"smtp_host": "127.0.0.1" if smtp else None, "smtp_port": smtp.port if smtp else 25,
            "sms_url": gateway.url if gateway else None, "backoff_base_s": 0.05, "backoff_max_s": 0.2,
            "poll_interval_s": 0.02, "threads": 8, "smtp_timeout_s": 2.0, "sms_timeout_s": 2.0,
            "utility_name": "Test Co-op", "timezone": "America/Chicago"}
    opts.update(overrides)
    return NotifySettings(**opts)


def add_reports(db, contacts: list[dict | None], *, language: str = "en", at: datetime | None = None,
                sp_id: str | None = "sp1") -> list[int]:
    """Store reports (and, in the same transaction, their acknowledgment rows) through the intake writer."""
    writer = IntakeWriter(db)
    rows = []
    for i, contact in enumerate(contacts):
        rows.append({"power": "out", "channel": "web", "client_id": "test", "idempotency_key": f"k{i}-{new_reference()}",
                     "sp_id": sp_id, "language": language, "contact": contact, "hazards": []})
    import asyncio

    async def go():
        writer.start()
        try:
            return [await writer.submit_report(r) for r in rows]
        finally:
            writer.stop()

    asyncio.run(go())
    from sqlalchemy import select

    from api.store.models import Report

    with db.read() as s:
        return list(s.scalars(select(Report.id).order_by(Report.id)))[-len(rows):]


def now() -> datetime:
    return utcnow()


def statuses(db) -> dict[str, int]:
    """Outbox rows by status."""
    from sqlalchemy import func, select

    from api.store.models import OutboxMessage

    with db.read() as s:
        return dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())


def drain_with_worker_process(db, cmd: list[str], env: dict, cwd, n: int, timeout: float = 40.0) -> None:
    """Run ``oms notify worker`` (``cmd``) until all ``n`` outbox rows are sent, then stop it with SIGTERM."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout
        while statuses(db) != {"sent": n} and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
