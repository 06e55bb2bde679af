"""What a demo run leaves behind: the map snapshots, the post-event summary (HTML, CSVs, ``summary.json``) and
the console's closing lines. Every figure comes from the demo's :class:`outage.figures.FigureLog` or from the
database the service wrote; every time is storm time (:mod:`api.simulation.clock`)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select


def write_snapshots(demo) -> dict:
    """Public + dispatcher maps (HTML, GeoJSON, ETag manifests) of the current state into ``out/maps``."""
    from api.maps import write_snapshot

    service = demo.app.state.maps
    out = demo.out / "maps"
    result = write_snapshot(out, service.data(), service.provider.state(), page=service.page,
                            include_dispatcher=True)
    size = sum(p.stat().st_size for p in out.glob("*.*json")) + sum(p.stat().st_size for p in out.glob("*.html"))
    return {"etag": result.etag, "files": len(result.files), "bytes": size}


def event_rows(demo) -> list:
    """The storm's events (neither merged nor cancelled) as :class:`outage.summary.EventSummary` rows."""
    from api.store.models import Event, Report
    from outage.summary import EventSummary

    with demo.db.read() as session:
        events = session.scalars(select(Event).where(Event.merged_into.is_(None), Event.state != "cancelled")
                                 .order_by(Event.started_at, Event.id)).all()
        first_report = dict(session.execute(select(Report.event_id, func.min(Report.received_at))
                                            .group_by(Report.event_id)).all())
        reports = dict(session.execute(select(Report.event_id, func.count()).group_by(Report.event_id)).all())
    places = _places(demo)
    rows = []
    for ev in events:
        start, restored = _utc(ev.started_at), _utc(ev.restored_at)
        feeder, area = places(ev)
        rows.append(EventSummary(
            event_id=ev.id, start=start, restored=max(restored, start) if restored else None,
            customers=max(demo.customers.get(ev.id, 0), int(ev.customers_out or 0)), tier=f"P{ev.tier}",
            event_class=ev.event_class or "", cause=ev.cause or "", first_report=_utc(first_report.get(ev.id)),
            etrs=tuple(demo.etrs.get(ev.id, ())), crew_hours=round(demo.crews.crew_hours.get(ev.id, 0.0), 3),
            device=ev.device_id or ev.sp_id or "", feeder=feeder, area=area,
            crews=tuple(demo.crews.crews_on.get(ev.id, ())), reports=int(reports.get(ev.id, 0)),
            lon=ev.lon, lat=ev.lat))
    return rows


def _places(demo):
    """event -> (feeder, area): the feeder of its device (or customer), the public map's area of its location."""
    net = demo.network
    feeder_of_segment = dict(zip(net.segments["segment_id"].astype(str), net.segments["feeder_id"].astype(str),
                                 strict=True))
    feeder_of_node = dict(zip(net.segments["to_node"].astype(str), net.segments["feeder_id"].astype(str),
                              strict=True))
    node_of_sp = dict(zip(net.service_points["sp_id"].astype(str), net.service_points["node_id"].astype(str),
                          strict=True))
    partition = demo.app.state.maps.data().partition

    def places(ev) -> tuple[str, str]:
        feeder = feeder_of_segment.get(str(ev.device_id)) or feeder_of_node.get(node_of_sp.get(str(ev.sp_id), ""))
        area = f"Area {partition.area_at(ev.lon, ev.lat) + 1}" if ev.lon is not None else ""
        return feeder or "", area

    return places


def write_results(demo, finished: bool, seconds: float) -> tuple[dict, dict]:
    """Snapshots, ``summary.html``, the CSVs and ``summary.json``; returns (the JSON's content, snapshot info)."""
    from api.store.models import Assignment, Event, OutboxMessage, Report
    from outage.summary import post_event_summary, write_csv, write_html

    snap = write_snapshots(demo)
    with demo.db.read() as session:
        acks = session.execute(select(Report.received_at, OutboxMessage.sent_at, OutboxMessage.status).join(
            OutboxMessage, OutboxMessage.report_id == Report.id).where(
            OutboxMessage.kind == "acknowledgment")).all()
        reports = session.scalar(select(func.count()).select_from(Report)) or 0
        unlinked = session.scalar(select(func.count()).select_from(Report).where(Report.event_id.is_(None))) or 0
        by_kind = Counter(dict(session.execute(select(OutboxMessage.kind, func.count()).where(
            OutboxMessage.status == "sent").group_by(OutboxMessage.kind)).all()))
        statuses = Counter(dict(session.execute(select(OutboxMessage.status, func.count())
                                                .group_by(OutboxMessage.status)).all()))
        cancelled = session.scalar(select(func.count()).select_from(Event).where(Event.state == "cancelled")) or 0
        merged = session.scalar(select(func.count()).select_from(Event).where(Event.merged_into.is_not(None))) or 0
        jobs = session.scalar(select(func.count()).select_from(Assignment).where(Assignment.status == "done")) or 0
    rows = event_rows(demo)
    end = demo.clock()
    window_start = min([demo.started] + [r.start for r in rows])
    peak = demo.figures.peak
    s = post_event_summary(window_start, end + timedelta(seconds=1), rows,
                           acks=[(_utc(r), _utc(a)) for r, a, _ in acks],
                           title="Storm demo: post-event summary", as_of=end, curve=demo.figures.curve(),
                           customers_served=int(demo.sp_customers.sum()), tz=demo.tz,
                           clock_note=f"storm time ({demo.zone}), replayed at {demo.o.speed:g}x")
    write_html(s, demo.out / "summary.html", network=demo.network)
    csv_files = write_csv(s, demo.out)
    restored_rows = [r for r in rows if r.restored is not None]
    data = {
        "finished": finished, "seed": demo.o.seed, "speed": demo.o.speed, "faults": demo.o.faults,
        "wall_seconds": round(seconds, 1),
        "time_note": "every time is storm time: the demo runs on a simulated clock (api.simulation.clock)",
        "storm": demo.feed.counts | {"faults": demo.o.faults},
        "reports": reports, "reports_without_event": unlinked,
        "acknowledgments": {"queued": len(acks), "sent": sum(1 for *_, st in acks if st == "sent"),
                            "not_sent": sum(1 for *_, st in acks if st != "sent")},
        "events": {"total": len(rows), "open": len(rows) - len(restored_rows), "restored": len(restored_rows),
                   "cancelled": cancelled, "merged": merged,
                   "by_class": dict(sorted(Counter(r.event_class for r in rows).items())),
                   "by_tier": dict(sorted(Counter(r.tier for r in rows).items())),
                   "by_cause": dict(sorted(Counter(r.cause or "(unknown)" for r in rows).items()))},
        "customers_restored": sum(r.customers for r in restored_rows),
        "peak_customers_out": peak.customers_out if peak else 0,
        "peak_time": peak.at.isoformat() if peak else None,
        "customer_minutes": round(s.customer_minutes),
        "crew_hours": round(sum(demo.crews.crew_hours.values()), 2),
        "crew_jobs_done": jobs,
        "contacts_enrolled": getattr(demo, "enrolled", 0),
        "notifications_sent": dict(sorted(by_kind.items())),
        "outbox": dict(sorted(statuses.items())),
        "restoration": asdict(s.metrics),
        "etr_accuracy": s.etr,
        "files": {"summary_html": "summary.html", "csv": [p.name for p in csv_files], "maps": "maps/"},
    }
    (demo.out / "summary.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return data, snap


def print_summary(d: dict, snap: dict, out: Path) -> None:
    ev = d["events"]
    r = d.get("restoration") or {}
    print("\nstorm demo summary" + ("" if d["finished"] else " (NOT finished)"))
    print(f"  reports received        {d['reports']:>8}   acknowledged {d['acknowledgments']['sent']}")
    print(f"  events                  {ev['total']:>8}   by class {ev['by_class']}")
    print(f"  events restored         {ev['restored']:>8}   still open {ev['open']}")
    print(f"  customers restored      {d['customers_restored']:>8}   peak out {d['peak_customers_out']}")
    print(f"  customer-minutes        {d['customer_minutes']:>8}")
    print(f"  crew-hours (storm time) {d['crew_hours']:>8}   jobs done {d['crew_jobs_done']}")
    print(f"  notices sent            {sum(d['notifications_sent'].values()):>8}   {d['notifications_sent']}")
    ttr = r.get("minutes_to_restore") or {}
    if any(v is not None for v in ttr.values()):
        print("  minutes to restore      " + "   ".join(f"{k} {v:.0f}" for k, v in ttr.items() if v is not None))
    print(f"  map snapshot            {snap['bytes'] / 1e6:.2f} MB (HTML + GeoJSON) in {out / 'maps'}")
    print(f"  summary                 {out / 'summary.html'}, {out / 'summary.json'}")
    print(f"  wall time               {d['wall_seconds']} s")


def _utc(t):
    from datetime import UTC

    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
