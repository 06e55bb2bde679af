"""Reliability reporting for dispatchers and administrators, from the system's own records.

- ``GET /reliability/indices?from=DATE&to=DATE``: IEEE 1366 indices (SAIFI, SAIDI, CAIDI, CAIFI, CTAIDI, ASAI,
  MAIFI, MAIFIe, CEMIn, CELID) with and without Major Event Days, by substation, feeder and cause.
- ``GET /reliability/restoration?from=TIME&to=TIME``: time-to-restoration percentiles overall, by tier and by
  class; P1/P2 customers restored within 4 hours; acknowledgment SLA compliance; crew-hours.
- ``GET /reliability/event-summary?from=TIME&to=TIME``: the post-event summary as JSON, ``format=html`` (one
  self-contained page with plots) or ``format=csv`` (``table=summary|events|curve|etr``).

The paths live under ``/reliability`` because ``GET /reports/{reference}`` is the public report-status route.
Records come from :mod:`api.service.reliability_source` (a replica of the outage engine kept in step with the journal);
customers served from the loaded territory.
"""

from __future__ import annotations

import tempfile
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.errors import ApiError
from api.service.reliability_source import JournalReplica, ServiceRecords, service_records
from api.web.auth import Principal, require

router = APIRouter(prefix="/reliability", tags=["reliability"])
REPORTING = require("dispatcher", "admin")
#: Dates outside this range are refused (the MED history reaches five years further back).
EARLIEST, LATEST = date(1950, 1, 1), date(2200, 12, 31)
#: Longest reporting period in days: a century of daily pieces is plenty and keeps one request bounded.
MAX_PERIOD_DAYS = 366 * 100
_replica_lock = threading.Lock()


def replica(request: Request) -> JournalReplica:
    """The app's journal replica, made on first use and remade when the territory changes."""
    app_state, oms = request.app.state, request.app.state.oms
    network = oms.live.network
    if network is None:
        raise ApiError(503, "unavailable", "no territory is loaded: there are no interruption records to report on")
    with _replica_lock:
        current = getattr(app_state, "reliability_replica", None)
        if current is None or current.network is not network:
            current = JournalReplica(oms.db, network, oms.settings)
            app_state.reliability_replica = current
    return current


def _records(request: Request, start: datetime | None = None, end: datetime | None = None) -> ServiceRecords:
    return service_records(replica(request), start, end)


def _utc(t: datetime, name: str) -> datetime:
    if t.tzinfo is None:
        raise ApiError(422, "invalid", f"{name}: give a time zone (e.g. 2024-06-10T00:00Z)",
                       [{"field": f"query.{name}", "message": "time without a zone"}])
    if not (EARLIEST <= t.astimezone(UTC).date() <= LATEST):
        raise ApiError(422, "invalid", f"{name}: {t.isoformat()} is outside {EARLIEST}..{LATEST}",
                       [{"field": f"query.{name}", "message": "out of range"}])
    return t.astimezone(UTC)


def _window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = _utc(start, "from"), _utc(end, "to")
    if end <= start:
        raise ApiError(422, "invalid", f"to ({end.isoformat()}) must be after from ({start.isoformat()})",
                       [{"field": "query.to", "message": "not after from"}])
    return start, end


def _invalid(exc: ValueError) -> ApiError:
    return ApiError(422, "invalid", str(exc))


FromTime = Annotated[datetime, Query(alias="from", description="window start, ISO 8601 with zone")]
ToTime = Annotated[datetime, Query(alias="to", description="window end (exclusive), ISO 8601 with zone")]


@router.get("/indices", response_model=dict[str, Any],
            summary="IEEE 1366 indices for local days from..to (inclusive), with and without Major Event Days")
def indices(
    request: Request,
    date_from: Annotated[date, Query(alias="from", description="first day (YYYY-MM-DD)")],
    date_to: Annotated[date, Query(alias="to", description="last day, inclusive (YYYY-MM-DD)")],
    _: Principal = Depends(REPORTING),
    by: Annotated[str, Query(max_length=40, description="groupings: substation,feeder,cause ('' for none)")] =
    "substation,feeder,cause",
    tz: Annotated[str, Query(max_length=64, description="utility time zone: what a day is")] = "UTC",
    beta_std: Literal["sample", "population"] = "sample",
    exactly_at_boundary: Annotated[Literal["momentary", "sustained"], Query(
        description="an interruption of exactly the boundary is ...")] = "momentary",
    momentary_minutes: Annotated[float, Query(ge=0, le=1440)] = 5.0,
    cemi_rule: Literal["more_than", "at_least"] = "more_than",
    midnight: Literal["start_day", "split"] = "start_day",
    maifie_window_minutes: Annotated[float, Query(ge=0, le=1440)] = 5.0,
) -> dict[str, Any]:
    from outage.reliability import Conventions, CustomersServed, reliability_report

    for name, d in (("from", date_from), ("to", date_to)):
        if not EARLIEST <= d <= LATEST:
            raise ApiError(422, "invalid", f"{name}: {d} is outside {EARLIEST}..{LATEST}")
    if (date_to - date_from).days > MAX_PERIOD_DAYS:
        raise ApiError(422, "invalid", f"period longer than {MAX_PERIOD_DAYS} days")
    try:
        conventions = Conventions(momentary_minutes=momentary_minutes, exactly_at_boundary=exactly_at_boundary,
                                  cemi_rule=cemi_rule, midnight=midnight, maifie_window_minutes=maifie_window_minutes,
                                  beta_std=beta_std, timezone=tz)
        groups = tuple(x.strip() for x in by.split(",") if x.strip())
        rep = replica(request)
        records = _records(request)
        report = reliability_report(date_from, date_to, records.interruptions,
                                    CustomersServed.from_network(rep.network), None, conventions,
                                    as_of=records.as_of, by=groups)
    except ValueError as exc:  # ReliabilityError and friends name the bad setting
        raise _invalid(exc) from None
    out = report.to_dict()
    out["as_of"] = records.as_of.isoformat()
    out["notes"].append("source: the outage engine's per-customer interruption records, replayed from the journal "
                        f"(entry {records.journal_seq}); customers served from the loaded territory")
    out["bad_rows"] = records.bad_rows
    return out


@router.get("/restoration", response_model=dict[str, Any],
            summary="Time-to-restoration percentiles by tier and class, P1/P2 within 4 h, ack SLA, crew-hours")
def restoration(
    request: Request, start: FromTime, end: ToTime, _: Principal = Depends(REPORTING),
    within_hours: Annotated[float, Query(gt=0, le=720, description="deadline for P1/P2 customers")] = 4.0,
    ack_sla_minutes: Annotated[float, Query(gt=0, le=1440, description="acknowledgment SLA")] = 15.0,
) -> dict[str, Any]:
    from dataclasses import asdict

    from outage.summary import restoration_metrics

    start, end = _window(start, end)
    records = _records(request, start, end)
    metrics = restoration_metrics(records.events, records.acks, within_hours=within_hours,
                                  ack_sla_minutes=ack_sla_minutes, as_of=records.as_of)
    return {"window": {"start": start.isoformat(), "end": end.isoformat()}, "as_of": records.as_of.isoformat(),
            **asdict(metrics), "bad_rows": records.bad_rows}


_render_lock = threading.Lock()


@router.get("/event-summary", summary="Post-event summary: JSON, HTML report with plots, or CSV",
            response_model=dict[str, Any],
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}},
                                         "text/csv": {"schema": {"type": "string"}}},
                             "description": "JSON (default), format=html or format=csv"}})
def event_summary(
    request: Request, start: FromTime, end: ToTime, _: Principal = Depends(REPORTING),
    format: Literal["json", "html", "csv"] = "json",
    table: Annotated[Literal["summary", "events", "curve", "etr"], Query(
        description="with format=csv: which table")] = "summary",
    title: Annotated[str, Query(max_length=200)] = "Post-event summary",
):
    from outage.summary import post_event_summary, write_csv, write_html

    start, end = _window(start, end)
    records = _records(request, start, end)
    try:
        summary = post_event_summary(start, end, records.events, records.interruptions, records.acks, title=title,
                                     as_of=min(records.as_of, end))
    except ValueError as exc:
        raise _invalid(exc) from None
    if format == "json":
        return {**summary.to_dict(), "bad_rows": records.bad_rows}
    with tempfile.TemporaryDirectory(prefix="oms-report-") as folder:
        if format == "html":
            with _render_lock:  # matplotlib figures are per call, but the font cache is shared
                path = write_html(summary, Path(folder) / "report.html")
            return HTMLResponse(path.read_text(encoding="utf-8"))
        path = next(p for p in write_csv(summary, folder) if p.stem == table)
        stamp = start.strftime("%Y%m%dT%H%MZ")
        return Response(path.read_text(encoding="utf-8"), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="event-{stamp}-{table}.csv"'})

