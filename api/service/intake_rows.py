"""The live loop's reads and writes of intake rows (reports, meter and SCADA messages): loading a committed batch,
marking it processed, pointing reports at their events, and a report row as the engine's domain report. Core
statements, not the ORM: these run for every intake batch."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, select

from api.service.intake import Committed
from api.store.db import Database
from api.store.models import MeterMessage, Report, ScadaMessage

MODELS = {"report": Report, "meter": MeterMessage, "scada": ScadaMessage}


def read_rows(session, model, ids: list[int]) -> list:
    """Plain rows (attribute access by column name) for ``ids``, in id order; cheaper than ORM objects."""
    out = []
    table = model.__table__
    for chunk in chunks(ids):
        out += session.execute(select(table).where(table.c.id.in_(chunk))).all()
    out.sort(key=lambda r: r.id)
    return out


def chunks(ids: list, size: int = 900) -> Iterable[list]:
    """``ids`` in slices small enough for an ``IN (...)`` list (SQLite allows 999 bound parameters)."""
    return (ids[i:i + size] for i in range(0, len(ids), size))


def load_rows(db: Database, batch: list[Committed]):
    ids: dict[str, list[int]] = {"report": [], "meter": [], "scada": []}
    for c in batch:
        ids[c.kind].extend(c.ids)
    with db.read() as session:
        reports, meters, scada = (read_rows(session, MODELS[k], ids[k]) for k in ("report", "meter", "scada"))
    # a row already processed (the restart path got to it first) is not fed twice
    return ([r for r in reports if r.processed_at is None], [m for m in meters if m.processed_at is None],
            [s for s in scada if s.processed_at is None])


def mark_processed(session, model, ids: list[int], now: datetime) -> None:
    table = model.__table__  # Core, not ORM-enabled UPDATE: this runs for every intake batch
    for chunk in chunks(ids):
        session.execute(table.update().where(table.c.id.in_(chunk)).values(processed_at=now))


def mark_reports(session, report_event: dict[int, str | None], now: datetime) -> None:
    """Mark reports processed and point each at its event (None: not analysed)."""
    link_reports(session, report_event, processed_at=now)


def link_reports(session, report_event: dict[int, str | None], **values) -> None:
    """Point each report at its event (and set ``values``) in one executemany: one new row version per report, and
    no UPDATE per event (in a storm most events are one caller's)."""
    table = Report.__table__
    if report_event:
        session.execute(table.update().where(table.c.id == bindparam("_id"))
                        .values(event_id=bindparam("_event"), **values),
                        [{"_id": rid, "_event": eid} for rid, eid in report_event.items()])


def domain_report(row: Report):
    from outage.reports import Report as DomainReport

    hazards = set(row.hazards or ())
    contact = row.contact or {}
    return DomainReport(report_id=str(row.id), time=row.received_at, sp_id=row.sp_id,
                        lon=row.lon if row.sp_id is None else None, lat=row.lat if row.sp_id is None else None,
                        channel=row.channel, power=row.power, wires_down="wires_down" in hazards,
                        fire_sparks="fire_sparks" in hazards, tree_on_line="tree_on_line" in hazards,
                        visible_damage="visible_damage" in hazards, medical_equipment=row.medical_equipment,
                        neighbours_out=row.neighbours_out, text=row.comment or "",
                        notify=contact.get("prefer", "none") if contact.get("prefer") != "voice" else "voice")
