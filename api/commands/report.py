"""``oms report``: IEEE 1366 reliability indices with Major Event Days, and the post-event summary.

    oms report reliability --from 2024-01-01 --to 2024-12-31 --interruptions outages.csv \\
        --daily-history daily.csv --customers-served 12000 [--json]
    oms report event --from 2024-06-10T00:00Z --to 2024-06-13T00:00Z --events events.csv \\
        [--interruptions outages.csv] [--etrs etrs.csv] [--acks acks.csv] --out storm/ [--json]

From the system's own records instead of CSV files: ``--database-url URL --territory GPKG`` (the service's
database and the territory it runs; the outage engine is replayed from the journal, read-only, see
:mod:`api.service.reliability_source`)::

    oms report reliability --from 2024-01-01 --to 2024-12-31 --database-url sqlite:///oms.db --territory t.gpkg
    oms report event --from 2024-06-10T00:00Z --to 2024-06-13T00:00Z --database-url ... --territory t.gpkg

CSV columns and conventions: docs/reliability.md and :mod:`outage.history`.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="reliability indices (IEEE 1366, MEDs) and post-event summaries")
    rsub = p.add_subparsers(dest="report_command", required=True, metavar="REPORT")

    rel = rsub.add_parser("reliability", help="SAIFI, SAIDI, CAIDI, ... with and without Major Event Days")
    rel.add_argument("--from", dest="date_from", required=True, type=_date, help="first day (YYYY-MM-DD)")
    rel.add_argument("--to", dest="date_to", required=True, type=_date, help="last day, inclusive (YYYY-MM-DD)")
    src = rel.add_mutually_exclusive_group()
    src.add_argument("--interruptions", help="per-customer interruptions CSV")
    src.add_argument("--steps", help="per-event restoration steps CSV (when per-customer rows are not available)")
    src.add_argument("--database-url", help="the service's database: report from its own records (needs --territory)")
    rel.add_argument("--daily-history", help="daily totals CSV (date, customer_minutes, customers_served, ...)")
    served = rel.add_mutually_exclusive_group()
    served.add_argument("--customers-served", type=int, help="customers served (N_T)")
    served.add_argument("--territory", help="territory GeoPackage: customers served per feeder and substation (and, "
                                            "with --database-url, the network its engine is replayed on)")
    rel.add_argument("--by", default="substation,feeder,cause",
                     help="groupings, comma-separated (default: substation,feeder,cause; '' for none)")
    rel.add_argument("--as-of", type=_time, help="close still-open interruptions at this time (ISO 8601)")
    rel.add_argument("--beta-std", choices=["sample", "population"], default="sample",
                     help="standard deviation for beta (default: sample, n-1)")
    rel.add_argument("--exactly-5", dest="exactly", choices=["momentary", "sustained"], default="momentary",
                     help="an interruption of exactly 5 minutes is ... (default: momentary, IEEE 1366)")
    rel.add_argument("--momentary-minutes", type=float, default=5.0, help="momentary/sustained boundary")
    rel.add_argument("--cemi-rule", choices=["more_than", "at_least"], default="more_than",
                     help="CEMIn counts customers with more than n (default) or at least n interruptions")
    rel.add_argument("--cemi-n", default="1,2,3,4,5", help="which CEMIn to report (default 1,2,3,4,5)")
    rel.add_argument("--celid-hours", default="8,12,24", help="CELID-t and CELID-s hours (default 8,12,24)")
    rel.add_argument("--midnight", choices=["start_day", "split"], default="start_day",
                     help="an interruption crossing midnight: all on the day it starts (default) or split")
    rel.add_argument("--maifie-window", type=float, default=5.0, help="MAIFIe event window, minutes (default 5)")
    _common(rel)
    rel.set_defaults(func=_reliability)

    ev = rsub.add_parser("event", help="post-event summary for a storm or period: HTML with plots, and CSV")
    ev.add_argument("--from", dest="time_from", required=True, type=_time, help="window start (date or time)")
    ev.add_argument("--to", dest="time_to", required=True, type=_time, help="window end, exclusive")
    evsrc = ev.add_mutually_exclusive_group(required=True)
    evsrc.add_argument("--events", help="event summaries CSV")
    evsrc.add_argument("--database-url", help="the service's database: report from its own records (needs "
                                              "--territory)")
    ev.add_argument("--territory", help="with --database-url: the territory GeoPackage the service runs")
    ev.add_argument("--interruptions", help="per-customer interruptions CSV (exact customers and curve)")
    ev.add_argument("--etrs", help="ETR history CSV (event_id, issued_at, etr)")
    ev.add_argument("--acks", help="acknowledgments CSV (reported_at, acknowledged_at)")
    ev.add_argument("--as-of", type=_time, help="'now' for open events (default: the window end)")
    ev.add_argument("--title", default="Post-event summary")
    ev.add_argument("--out", help="folder for report.html and the CSV files")
    _common(ev)
    ev.set_defaults(func=_event)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tz", default="UTC",
                   help="utility time zone: CSV times without an offset are local, days are local (default UTC)")
    p.add_argument("--column", action="append", default=[], metavar="KIND.FIELD=COLUMN",
                   help="map a field to a CSV column, e.g. interruptions.customer_id=ACCT_NO (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _time(text: str) -> datetime:
    import pandas as pd

    try:
        return pd.Timestamp(text).to_pydatetime()
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (ISO 8601)") from None


def _local(t: datetime | None, tz: str) -> datetime | None:
    """A time given without an offset is a local time in ``tz``."""
    from zoneinfo import ZoneInfo

    return None if t is None or t.tzinfo is not None else t.replace(tzinfo=ZoneInfo(tz))


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from None


def _reliability(args) -> int:
    from outage.history import parse_column_overrides, read_history, steps_as_interruptions
    from outage.reliability import Conventions, CustomersServed, format_report, reliability_report

    columns = parse_column_overrides(args.column)
    conventions = Conventions(
        momentary_minutes=args.momentary_minutes, exactly_at_boundary=args.exactly, cemi_rule=args.cemi_rule,
        midnight=args.midnight, maifie_window_minutes=args.maifie_window, beta_std=args.beta_std,
        timezone=args.tz, cemi_n=tuple(int(n) for n in _floats(args.cemi_n, "--cemi-n")),
        celid_t_hours=_floats(args.celid_hours, "--celid-hours"),
        celid_s_hours=_floats(args.celid_hours, "--celid-hours"))
    records, identity, network = None, True, None
    if args.database_url:
        own, network = _service_records(args)
        records = own.interruptions
    elif args.interruptions:
        records = read_history(args.interruptions, "interruptions", columns.get("interruptions"), args.tz)
    elif args.steps:
        steps = read_history(args.steps, "steps", columns.get("steps"), args.tz)
        records, identity = steps_as_interruptions(steps), False
    daily = read_history(args.daily_history, "daily", columns.get("daily"), args.tz) if args.daily_history else None
    if records is None and daily is None:
        raise ValueError("give --interruptions, --steps or --daily-history (the service reports from its own "
                         "records)")
    served = args.customers_served
    if args.territory:
        from gis.io import read_territory

        served = CustomersServed.from_network(network if network is not None else read_territory(args.territory))
    by = tuple(x.strip() for x in args.by.split(",") if x.strip())
    as_of = _local(args.as_of, args.tz) or args.as_of
    report = reliability_report(args.date_from, args.date_to, records, served, daily, conventions, as_of=as_of,
                                customer_identity=identity, by=by)
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        print(format_report(report))
    return 0


def _event(args) -> int:
    from outage.history import acks_from_table, events_from_tables, parse_column_overrides, read_history
    from outage.summary import post_event_summary, summary_rows, write_csv, write_html

    columns = parse_column_overrides(args.column)
    start = _local(args.time_from, args.tz) or args.time_from
    end = _local(args.time_to, args.tz) or args.time_to
    if end <= start:
        raise ValueError(f"--to {end.isoformat()} is not after --from {start.isoformat()}")
    as_of = (_local(args.as_of, args.tz) or args.as_of) if args.as_of else end
    if args.database_url:
        given = [f"--{n}" for n in ("interruptions", "etrs", "acks") if getattr(args, n)]
        if given:
            raise ValueError(f"{', '.join(given)}: not with --database-url (the database has these records)")
        own, _ = _service_records(args, start, end)
        events, records, acks = own.events, own.interruptions, own.acks
        as_of = min(as_of, own.as_of)
    else:
        events_df = read_history(args.events, "events", columns.get("events"), args.tz)
        etrs = read_history(args.etrs, "etrs", columns.get("etrs"), args.tz) if args.etrs else None
        events = events_from_tables(events_df, etrs)
        records = (read_history(args.interruptions, "interruptions", columns.get("interruptions"), args.tz)
                   if args.interruptions else None)
        acks = acks_from_table(read_history(args.acks, "acks", columns.get("acks"), args.tz)) if args.acks else ()
    summary = post_event_summary(start, end, events, records, acks, title=args.title, as_of=as_of)
    written: list[Path] = []
    if args.out:
        written = [write_html(summary, Path(args.out) / "report.html"), *write_csv(summary, args.out)]
    if args.json:
        print(json.dumps({**summary.to_dict(), "files": [str(p) for p in written]}, default=str))
        return 0
    width = max(len(k) for k, _ in summary_rows(summary))
    print(summary.title)
    for k, v in summary_rows(summary):
        print(f"  {k:<{width}}  {v:.3f}" if isinstance(v, float) else f"  {k:<{width}}  {v}")
    for note in summary.notes:
        print(f"note: {note}")
    for p in written:
        print(f"wrote {p}")
    return 0


def _service_records(args, start: datetime | None = None, end: datetime | None = None):
    """The service's own records (:func:`api.service.reliability_source.service_records`), read-only, at ``--as-of`` or
    now: the outage engine replayed from the database's journal on the ``--territory`` network; and that network."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from api.service.reliability_source import JournalReplica, service_records
    from api.store.db import Database
    from gis.io import read_territory

    if not args.territory:
        raise ValueError("--database-url needs --territory GPKG: the territory the service runs (the outage engine "
                         "is replayed on it)")

    try:
        url = make_url(args.database_url)
    except SQLAlchemyError as exc:
        raise ValueError(f"--database-url: {exc}") from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not Path(
            url.database).exists():
        raise FileNotFoundError(f"--database-url: no database file {url.database}")  # do not create an empty one
    network = read_territory(args.territory)
    as_of = (_local(args.as_of, args.tz) or args.as_of) if args.as_of else None
    try:
        db = Database(args.database_url)
    except SQLAlchemyError as exc:
        raise ValueError(f"--database-url: {exc}") from None
    try:
        return service_records(JournalReplica(db, network), start, end, as_of=as_of), network
    except SQLAlchemyError as exc:
        raise ValueError(f"--database-url: cannot read the service's records ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]}); is it an OMS database (`oms db upgrade`)?") from None
    finally:
        db.dispose()
