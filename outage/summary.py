"""Restoration metrics and the post-event summary for a storm or a period.

The service maps its engine events to :class:`EventSummary` (a small, stable record: when the event started, when
it was restored, its tier and class, the ETRs it promised, the crew-hours it took) and calls:

- :func:`restoration_metrics`: time-to-restoration percentiles (50/90/95) overall, by tier and by class; customers
  restored within 4 hours for P1/P2 events; acknowledgment SLA compliance; crew-hours.
- :func:`etr_accuracy`: the first and last ETR each event promised against when it was actually restored.
- :func:`restoration_curve`: customers out over time, exact from per-customer interruption records (each customer
  counted once even where records overlap) or, without them, from the events.
- :func:`post_event_summary`: all of the above for a window, with events by class and cause and the peak;
  :func:`write_html` (matplotlib plots embedded as base64 PNG: one self-contained file) and :func:`write_csv`.

Times to restoration are measured from the event's ``start`` (when customers lost power), not from the first
report. Percentiles use numpy's linear interpolation. Missing data gives ``None``, never a made-up number.
"""

from __future__ import annotations

import base64
import csv
import io
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from outage.records import Interruption
from outage.reliability import ReliabilityError, interruption_frame, prepare

PERCENTILES = (50, 90, 95)


@dataclass(frozen=True)
class EventSummary:
    """What reporting needs to know about one outage event (times tz-aware UTC).

    ``etrs``: the ETRs the event published, as ``(issued_at, etr)`` pairs in any order. ``restored`` is ``None``
    while the event is open. ``tier`` is ``"P1"`` .. ``"P4"``; ``event_class`` e.g. single/feeder/community.
    """

    event_id: str
    start: datetime
    restored: datetime | None = None
    customers: int = 0
    tier: str = ""
    event_class: str = ""
    cause: str = ""
    first_report: datetime | None = None
    etrs: tuple[tuple[datetime, datetime], ...] = ()
    crew_hours: float = 0.0
    #: For the per-event table and the map of the report: what operated, where, who worked it, who called.
    device: str = ""
    feeder: str = ""
    area: str = ""
    crews: tuple[str, ...] = ()
    reports: int = 0
    lon: float | None = None
    lat: float | None = None

    def __post_init__(self) -> None:
        for name in ("start", "restored", "first_report"):
            v = getattr(self, name)
            if v is not None and v.tzinfo is None:
                raise ReliabilityError(f"event {self.event_id!r}: {name} must be timezone-aware (UTC)")
        if self.restored is not None and self.restored < self.start:
            raise ReliabilityError(f"event {self.event_id!r}: restored {self.restored.isoformat()} is before its "
                                   f"start {self.start.isoformat()}")
        if self.customers < 0 or self.crew_hours < 0:
            raise ReliabilityError(f"event {self.event_id!r}: customers and crew_hours must be >= 0")

    @property
    def minutes_to_restore(self) -> float | None:
        return None if self.restored is None else (self.restored - self.start).total_seconds() / 60.0

    def customer_minutes(self, as_of: datetime | None = None) -> float:
        """This event's customers times its duration (to ``as_of`` while open)."""
        end = self.restored or as_of
        return 0.0 if end is None else self.customers * max((end - self.start).total_seconds(), 0.0) / 60.0


def percentiles(values: Sequence[float], qs: Sequence[int] = PERCENTILES) -> dict[str, float | None]:
    """``{"p50": ..., "p90": ..., "p95": ...}``; every value ``None`` when there are no values."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return {f"p{q}": (float(np.percentile(arr, q)) if len(arr) else None) for q in qs}


# -- restoration metrics -----------------------------------------------------------------------------------

@dataclass
class RestorationMetrics:
    events: int
    events_restored: int
    events_open: int
    minutes_to_restore: dict[str, float | None]
    by_tier: dict[str, dict[str, float | None]]
    by_class: dict[str, dict[str, float | None]]
    priority_within: dict[str, float | int | None]  # P1/P2 customers restored within the deadline
    acknowledgments: dict[str, float | int | None]
    crew_hours: float
    crew_hours_by_tier: dict[str, float]
    crew_hours_by_class: dict[str, float]


def restoration_metrics(events: Iterable[EventSummary],
                        acks: Iterable[tuple[datetime, datetime | None]] = (),
                        *, within_hours: float = 4.0, priority_tiers: Sequence[str] = ("P1", "P2"),
                        ack_sla_minutes: float = 15.0, as_of: datetime | None = None) -> RestorationMetrics:
    """Percentiles of minutes to restoration, the P1/P2 within-deadline share, ack SLA and crew-hours.

    P1/P2 share: customers of priority events restored within ``within_hours`` of the event start, over the
    customers of priority events whose outcome is known (restored, or still out past the deadline at ``as_of``).
    Acknowledgments: ``(reported_at, acknowledged_at)``; one never acknowledged misses the SLA.
    """
    events = list(events)
    restored = [e for e in events if e.restored is not None]
    ttr = [e.minutes_to_restore for e in restored]

    def grouped(key) -> dict[str, dict[str, float | None]]:
        keys = sorted({key(e) for e in restored})
        return {k: {**percentiles([e.minutes_to_restore for e in restored if key(e) == k]),
                    "events": sum(1 for e in restored if key(e) == k)} for k in keys}

    deadline = timedelta(hours=within_hours)
    prio = [e for e in events if e.tier in priority_tiers]
    within = late = pending = 0
    for e in prio:
        if e.restored is not None:
            if e.restored - e.start <= deadline:
                within += e.customers
            else:
                late += e.customers
        elif as_of is not None and as_of - e.start > deadline:
            late += e.customers
        else:
            pending += e.customers
    decided = within + late
    priority_within = {"tiers": ",".join(priority_tiers), "hours": within_hours, "customers": decided,
                       "within": within, "pending": pending, "share": within / decided if decided else None}
    acks = list(acks)
    latency = [(a - r).total_seconds() / 60.0 for r, a in acks if a is not None]
    in_sla = sum(1 for m in latency if m <= ack_sla_minutes)
    ack = {"reports": len(acks), "sla_minutes": ack_sla_minutes, "within_sla": in_sla,
           "unacknowledged": sum(1 for _, a in acks if a is None),
           "share": in_sla / len(acks) if acks else None, **{f"latency_{k}": v for k, v in
                                                               percentiles(latency).items()}}
    by_tier: Counter = Counter()
    by_class: Counter = Counter()
    for e in events:
        by_tier[e.tier] += e.crew_hours
        by_class[e.event_class] += e.crew_hours
    return RestorationMetrics(
        events=len(events), events_restored=len(restored), events_open=len(events) - len(restored),
        minutes_to_restore=percentiles(ttr), by_tier=grouped(lambda e: e.tier),
        by_class=grouped(lambda e: e.event_class), priority_within=priority_within, acknowledgments=ack,
        crew_hours=float(sum(e.crew_hours for e in events)), crew_hours_by_tier=dict(sorted(by_tier.items())),
        crew_hours_by_class=dict(sorted(by_class.items())))


# -- ETR accuracy ------------------------------------------------------------------------------------------

def etr_table(events: Iterable[EventSummary]) -> pd.DataFrame:
    """Per restored event with ETRs: the first and the last ETR issued before restoration and their errors.

    Error = actual - predicted in minutes: positive means restored later than promised.
    """
    rows = []
    for e in events:
        if e.restored is None or not e.etrs:
            continue
        issued = sorted((i, t) for i, t in e.etrs if i <= e.restored)
        if not issued:
            continue
        first, last = issued[0][1], issued[-1][1]
        rows.append({"event_id": e.event_id, "restored": e.restored, "first_etr": first, "last_etr": last,
                     "first_error_min": (e.restored - first).total_seconds() / 60.0,
                     "last_error_min": (e.restored - last).total_seconds() / 60.0, "etr_count": len(issued)})
    cols = ["event_id", "restored", "first_etr", "last_etr", "first_error_min", "last_error_min", "etr_count"]
    return pd.DataFrame(rows, columns=cols)


def etr_accuracy(events: Iterable[EventSummary], tolerance_minutes: float = 60.0) -> dict[str, float | int | None]:
    """Mean absolute and median error of the first and last ETR, share met (restored by the ETR), share within
    +/- ``tolerance_minutes``."""
    t = etr_table(events)
    out: dict[str, float | int | None] = {"events": len(t), "tolerance_minutes": tolerance_minutes}
    for which in ("first", "last"):
        err = t[f"{which}_error_min"].to_numpy(dtype=float)
        n = len(err)
        out[f"{which}_mean_abs_error_min"] = float(np.abs(err).mean()) if n else None
        out[f"{which}_median_error_min"] = float(np.median(err)) if n else None
        out[f"{which}_met_share"] = float((err <= 0).mean()) if n else None
        out[f"{which}_within_tolerance_share"] = float((np.abs(err) <= tolerance_minutes).mean()) if n else None
    return out


# -- restoration curve -------------------------------------------------------------------------------------

def restoration_curve(window_start: datetime, window_end: datetime,
                      interruptions: Iterable[Interruption] | pd.DataFrame | None = None,
                      events: Iterable[EventSummary] = ()) -> pd.DataFrame:
    """Customers out (``customers_out``) after each change (``time``) within the window, as a step function.

    From interruption records when given (overlapping records of one customer merged, so nobody counts twice;
    open records stay out), else from the events (``customers`` out from ``start`` to ``restored``). The first
    row is the count at ``window_start``.
    """
    if window_end <= window_start:
        raise ReliabilityError(f"window ends ({window_end}) before it starts ({window_start})")
    lo, hi = pd.Timestamp(window_start).tz_convert("UTC"), pd.Timestamp(window_end).tz_convert("UTC")
    if interruptions is not None:
        merged = prepare(interruption_frame(interruptions)).interruptions
        merged = merged[merged["sustained"]]
        starts, ends, n = merged["start"], merged["end"], merged["customers"].to_numpy()
    else:
        ev = list(events)
        starts = pd.Series(pd.to_datetime([e.start for e in ev], utc=True), dtype="datetime64[ns, UTC]")
        ends = pd.Series(pd.to_datetime([e.restored for e in ev], utc=True), dtype="datetime64[ns, UTC]")
        n = np.asarray([e.customers for e in ev], dtype=np.int64)
    starts = starts.reset_index(drop=True)
    ends = ends.reset_index(drop=True)
    keep = (starts < hi) & (ends.isna() | (ends > lo))
    starts, ends, n = starts[keep], ends[keep], n[keep.to_numpy()]
    at_start = int(n[(starts <= lo).to_numpy()].sum())
    changes = pd.concat([
        pd.DataFrame({"time": starts[starts > lo], "delta": n[(starts > lo).to_numpy()]}),
        pd.DataFrame({"time": ends[ends.notna() & (ends < hi)], "delta": -n[(ends.notna() & (ends < hi)).to_numpy()]}),
    ])
    steps = changes.groupby("time", sort=True)["delta"].sum()
    steps = steps[steps != 0]
    curve = pd.DataFrame({"time": [lo, *steps.index], "customers_out": np.cumsum([at_start, *steps.to_numpy()])})
    return curve.reset_index(drop=True)


# -- the post-event summary --------------------------------------------------------------------------------

@dataclass
class PostEventSummary:
    title: str
    window_start: datetime
    window_end: datetime
    customers_affected: int
    customer_interruptions: int
    peak_customers_out: int
    peak_time: datetime | None
    events_by_class: dict[str, int]
    events_by_cause: dict[str, int]
    events_by_tier: dict[str, int]
    metrics: RestorationMetrics
    etr: dict[str, float | int | None]
    curve: pd.DataFrame = field(repr=False)
    events: pd.DataFrame = field(repr=False)
    etr_events: pd.DataFrame = field(repr=False)
    notes: list[str] = field(default_factory=list)
    #: IEEE 1366 contribution of this event window: customer-minutes of interruption (CMI) and the system's
    #: customers served (SAIFI = CI / served, SAIDI = CMI / served, CAIDI = CMI / CI); 0 served: unknown.
    customer_minutes: float = 0.0
    customers_served: int = 0
    tz: object = None  # local zone for what a person reads (None: UTC)
    clock_note: str = ""
    event_rows: list[EventSummary] = field(default_factory=list, repr=False)

    @property
    def indices(self) -> dict[str, float | None]:
        served, ci, cmi = self.customers_served, self.customer_interruptions, self.customer_minutes
        return {"saifi": ci / served if served else None, "saidi_min": cmi / served if served else None,
                "caidi_min": cmi / ci if ci else None}

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {
            "title": self.title, "window": {"start": self.window_start.isoformat(),
                                            "end": self.window_end.isoformat()},
            "customers_affected": self.customers_affected, "customer_interruptions": self.customer_interruptions,
            "peak_customers_out": self.peak_customers_out,
            "peak_time": self.peak_time.isoformat() if self.peak_time else None,
            "events_by_class": self.events_by_class, "events_by_cause": self.events_by_cause,
            "events_by_tier": self.events_by_tier, "restoration": asdict(self.metrics), "etr_accuracy": self.etr,
            "notes": self.notes,
        }


def post_event_summary(window_start: datetime, window_end: datetime, events: Iterable[EventSummary],
                       interruptions: Iterable[Interruption] | pd.DataFrame | None = None,
                       acks: Iterable[tuple[datetime, datetime | None]] = (), *, title: str = "Post-event summary",
                       as_of: datetime | None = None, curve: Sequence[tuple[datetime, int]] | None = None,
                       customers_served: int = 0, tz=None, clock_note: str = "") -> PostEventSummary:
    """Everything a board or regulator asks after a storm, for events starting in ``[window_start, window_end)``.

    Customers affected: distinct customers with a sustained interruption starting in the window (from the
    records; without records, the sum of the events' customers, which counts a customer hit twice twice: noted).
    Acknowledgments are those whose report falls in the window. ``curve``: customers out over time as measured
    (each customer once, e.g. :class:`outage.figures.FigureLog`); it then gives the peak and the customer-minutes.
    """
    for name, t in (("window_start", window_start), ("window_end", window_end)):
        if t.tzinfo is None:
            raise ReliabilityError(f"{name} must be timezone-aware (UTC)")
    inside = [e for e in events if window_start <= e.start < window_end]
    acks = [(r, a) for r, a in acks if window_start <= r < window_end]
    notes: list[str] = []
    frame = None
    if interruptions is not None:
        frame = interruption_frame(interruptions)
        in_window = (frame["start"] >= pd.Timestamp(window_start)) & (frame["start"] < pd.Timestamp(window_end))
        merged = prepare(frame[in_window]).interruptions
        sustained = merged[merged["sustained"]]
        affected = int(sustained.groupby("customer_id")["customers"].max().sum())
        ci = int(sustained["customers"].sum())
        nested = sum(1 for e in inside if e.customers == 0)
        if nested:
            notes.append(f"{nested} event{'s' if nested > 1 else ''} interrupted no customer first (nested under "
                         "another outage): shown with 0 customers, their customers count under the earlier event")
    else:
        affected = ci = int(sum(e.customers for e in inside))
        notes.append("no per-customer records: customers affected is the sum over events (a customer out in two "
                     "events counts twice)")
    if curve is not None:
        curve = pd.DataFrame({"time": pd.to_datetime([t for t, _ in curve], utc=True),
                              "customers_out": np.asarray([n for _, n in curve], dtype=np.int64)})
    else:
        curve = restoration_curve(window_start, window_end, frame, inside)
    peak_row = int(curve["customers_out"].to_numpy().argmax()) if len(curve) else 0
    peak = int(curve["customers_out"].iloc[peak_row]) if len(curve) else 0
    peak_time = curve["time"].iloc[peak_row].to_pydatetime() if peak else None
    metrics = restoration_metrics(inside, acks, as_of=as_of)
    table = pd.DataFrame([{
        "event_id": e.event_id, "tier": e.tier, "event_class": e.event_class, "cause": e.cause,
        "start": e.start.isoformat(), "restored": e.restored.isoformat() if e.restored else "",
        "minutes_to_restore": e.minutes_to_restore, "customers": e.customers, "crew_hours": e.crew_hours,
    } for e in inside], columns=["event_id", "tier", "event_class", "cause", "start", "restored",
                                 "minutes_to_restore", "customers", "crew_hours"])
    return PostEventSummary(
        title=title, window_start=window_start, window_end=window_end, customers_affected=affected,
        customer_interruptions=ci, peak_customers_out=peak, peak_time=peak_time,
        events_by_class=dict(sorted(Counter(e.event_class or "(none)" for e in inside).items())),
        events_by_cause=dict(sorted(Counter(e.cause or "(unknown)" for e in inside).items())),
        events_by_tier=dict(sorted(Counter(e.tier or "(none)" for e in inside).items())),
        metrics=metrics, etr=etr_accuracy(inside), curve=curve, events=table, etr_events=etr_table(inside),
        notes=notes, customer_minutes=_curve_minutes(curve, as_of or window_end), customers_served=customers_served,
        tz=tz, clock_note=clock_note, event_rows=inside)


def _curve_minutes(curve: pd.DataFrame, end: datetime) -> float:
    """Customer-minutes under a step curve up to ``end``."""
    if not len(curve):
        return 0.0
    times = [t.to_pydatetime() for t in curve["time"]] + [end]
    values = curve["customers_out"].to_numpy()
    return float(sum(n * max((t1 - t0).total_seconds(), 0.0) / 60.0
                     for n, t0, t1 in zip(values, times[:-1], times[1:], strict=True)))


# -- output ------------------------------------------------------------------------------------------------

def summary_rows(s: PostEventSummary) -> list[tuple[str, object]]:
    """The headline figures as (metric, value) rows: what the CSV export and the HTML table show."""
    m = s.metrics
    rows: list[tuple[str, object]] = [
        ("window_start", s.window_start.isoformat()), ("window_end", s.window_end.isoformat()),
        ("customers_affected", s.customers_affected), ("customer_interruptions", s.customer_interruptions),
        ("peak_customers_out", s.peak_customers_out),
        ("peak_time", s.peak_time.isoformat() if s.peak_time else ""),
        ("events", m.events), ("events_restored", m.events_restored), ("events_open", m.events_open),
        ("crew_hours", round(m.crew_hours, 2)),
    ]
    rows += [(f"minutes_to_restore_{k}", v) for k, v in m.minutes_to_restore.items()]
    rows += [(f"priority_within_{k}", v) for k, v in m.priority_within.items()]
    rows += [(f"ack_{k}", v) for k, v in m.acknowledgments.items()]
    rows += [(f"etr_{k}", v) for k, v in s.etr.items()]
    rows += [(f"events_class_{k}", v) for k, v in s.events_by_class.items()]
    rows += [(f"events_cause_{k}", v) for k, v in s.events_by_cause.items()]
    rows += [(f"events_tier_{k}", v) for k, v in s.events_by_tier.items()]
    return [(k, "" if v is None else v) for k, v in rows]


def write_csv(s: PostEventSummary, folder: str | os.PathLike) -> list[Path]:
    """``summary.csv`` (metric,value), ``events.csv``, ``curve.csv`` and ``etr.csv`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / n for n in ("summary.csv", "events.csv", "curve.csv", "etr.csv")]
    with paths[0].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "value"])
        w.writerows(summary_rows(s))
    s.events.to_csv(paths[1], index=False)
    s.curve.assign(time=s.curve["time"].map(lambda t: t.isoformat())).to_csv(paths[2], index=False)
    s.etr_events.to_csv(paths[3], index=False)
    return paths


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")  # 150 dpi: sharp on paper, small on screen
    return base64.b64encode(buf.getvalue()).decode("ascii")


#: Small figures with 8 pt text: the report shows them a column wide on screen and about 6 cm wide on paper, where
#: a larger figure scaled down would leave its labels unreadable. The titles are the report's headings.
PLOT_STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
              "legend.fontsize": 7}


def plots(s: PostEventSummary) -> dict[str, str]:
    """Base64 PNGs: the restoration curve, ETR predicted vs actual, and minutes to restore by tier."""
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in a server thread

    with matplotlib.rc_context(PLOT_STYLE):
        return _plots(s, Figure)


def _plots(s: PostEventSummary, Figure) -> dict[str, str]:
    out = {}
    fig = Figure(figsize=(6, 2.2))
    ax = fig.add_subplot()
    times = list(s.curve["time"].map(lambda t: t.to_pydatetime())) + [s.window_end]
    values = list(s.curve["customers_out"]) + [s.curve["customers_out"].iloc[-1]]
    ax.step(times, values, where="post", color="#b22222")
    ax.set_ylabel("customers out")
    ax.grid(alpha=0.3)
    _time_axis(ax, s.tz)
    out["curve"] = _png(fig)
    if len(s.etr_events):
        fig = Figure(figsize=(3.4, 2.6))
        ax = fig.add_subplot()
        t = s.etr_events
        actual = t["restored"].map(lambda x: x.to_pydatetime() if hasattr(x, "to_pydatetime") else x)
        ax.scatter(t["first_etr"].tolist(), actual.tolist(), label="first ETR", alpha=0.7, s=12)
        ax.scatter(t["last_etr"].tolist(), actual.tolist(), label="last ETR", alpha=0.7, marker="x", s=12)
        lo, hi = min(min(t["first_etr"]), min(actual)), max(max(t["first_etr"]), max(actual))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="on time")
        ax.set_xlabel("promised (ETR)")
        ax.set_ylabel("restored")
        ax.legend()
        _time_axis(ax, s.tz, both=True)
        out["etr"] = _png(fig)
    restored = s.events.dropna(subset=["minutes_to_restore"])
    if len(restored):
        fig = Figure(figsize=(3.4, 2.6))
        ax = fig.add_subplot()
        tiers = sorted(restored["tier"].unique())
        ax.boxplot([restored.loc[restored["tier"] == k, "minutes_to_restore"].to_numpy() / 60.0 for k in tiers],
                   tick_labels=[k or "(none)" for k in tiers])
        ax.set_ylabel("hours to restore")
        ax.grid(alpha=0.3, axis="y")
        out["ttr"] = _png(fig)
    return out


def _time_axis(ax, tz, both: bool = False) -> None:
    """Local clock times (the summary's ``tz``) on the time axes: HH:MM, with the day where it changes."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    for axis in (ax.xaxis, ax.yaxis) if both else (ax.xaxis,):
        locator = AutoDateLocator(minticks=3, tz=tz)
        axis.set_major_locator(locator)
        axis.set_major_formatter(ConciseDateFormatter(locator, tz=tz, show_offset=False))


def write_html(s: PostEventSummary, path: str | os.PathLike, network=None) -> Path:
    """The storm manager's report (:mod:`outage.summary_report`): one self-contained HTML file. ``network``
    draws the feeders under the map of the events."""
    from outage.summary_report import render

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(s, s.event_rows, network, plots(s)), encoding="utf-8")
    return path



