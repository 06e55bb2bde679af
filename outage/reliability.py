"""IEEE Std 1366 reliability indices and Major Event Days, computed exactly from per-customer interruption records.

The pipeline is plain and vectorised (pandas/numpy), so five years of a co-op's history take seconds:

1. :func:`interruption_frame` puts records (:class:`~outage.records.Interruption` objects or an imported table)
   into one canonical table and checks them, naming the row and customer of any bad value.
2. :func:`prepare` merges overlapping records of one customer (a nested outage inside its parent, a partial
   restoration recorded twice) so every customer-minute is counted exactly once, classifies each merged
   interruption as momentary or sustained by the 5-minute rule, groups momentaries into MAIFIe events, and
   assigns interruptions to local days (the day they start, or split at midnight).
3. :func:`compute_indices` turns those day pieces into SAIFI, SAIDI, CAIDI, CAIFI, CTAIDI, ASAI, MAIFI, MAIFIe,
   CEMIn, CELID-s and CELID-t for one set of customers served.
4. :func:`med_threshold` is the 2.5 beta method on daily SAIDI; :func:`reliability_report` puts it all together
   for a period: indices with and without Major Event Days, by system, substation, feeder and cause.

The conventions IEEE 1366 leaves open live in :class:`Conventions` (documented in docs/reliability.md). Where an
index cannot be computed (no customers served, no sustained interruptions, no per-customer identity) its value is
``None`` and the report's ``notes`` say why: never a division by zero, never a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from outage.records import Interruption

#: Canonical columns of an interruption table (see :func:`interruption_frame`).
COLUMNS = ("customer_id", "start", "end", "event_id", "customers", "feeder_id", "substation_id", "cause",
           "device_id", "device_kind", "kind")
#: Grouping dimensions a report can break indices down by.
DIMENSIONS = ("substation", "feeder", "cause")
_DIMENSION_COLUMN = {"substation": "substation_id", "feeder": "feeder_id", "cause": "cause"}


class ReliabilityError(ValueError):
    """Input records or settings are unusable; the message names the row, customer or setting."""


@dataclass(frozen=True)
class Conventions:
    """The choices IEEE 1366 leaves open (or that utilities and regulators make differently).

    ``momentary_minutes``: the momentary/sustained boundary (IEEE 1366: 5 minutes).
    ``exactly_at_boundary``: an interruption of exactly ``momentary_minutes`` is ``"momentary"`` (IEEE 1366:
    "five minutes or less" is momentary) or ``"sustained"`` (CPUC: "5 minutes or longer" is sustained).
    ``cemi_rule``: CEMIn counts customers with ``"more_than"`` n sustained interruptions (IEEE 1366) or
    ``"at_least"`` n (some dashboards: "3 or more").
    ``midnight``: an interruption crossing midnight is assigned wholly to the ``"start_day"`` (IEEE 1366) or its
    minutes are ``"split"`` across the days (its count always goes to the day it starts).
    ``maifie_window_minutes``: momentary operations within this many minutes of the first form one MAIFIe event.
    ``maifie_exclude_before_lockout``: a momentary event followed within the window by a sustained interruption
    of the same customer (the reclosing sequence that ended in lockout) is not counted in MAIFIe.
    ``beta_std``: ``"sample"`` (n-1, pandas' default; our default) or ``"population"`` (n) standard deviation.
    ``med_multiplier``: the 2.5 in T_MED = exp(alpha + 2.5 beta). ``med_history_years``: history length (5).
    ``timezone``: the utility's local time zone, which decides what a "day" is (records are UTC inside).
    ``cemi_n`` / ``celid_t_hours`` / ``celid_s_hours``: which CEMIn, CELID-t and CELID-s to report; CELID counts
    customers whose total (t) or longest single (s) sustained interruption lasted at least that many hours.
    """

    momentary_minutes: float = 5.0
    exactly_at_boundary: Literal["momentary", "sustained"] = "momentary"
    cemi_rule: Literal["more_than", "at_least"] = "more_than"
    midnight: Literal["start_day", "split"] = "start_day"
    maifie_window_minutes: float = 5.0
    maifie_exclude_before_lockout: bool = True
    beta_std: Literal["sample", "population"] = "sample"
    med_multiplier: float = 2.5
    med_history_years: int = 5
    timezone: str = "UTC"
    cemi_n: tuple[int, ...] = (1, 2, 3, 4, 5)
    celid_t_hours: tuple[float, ...] = (8.0, 12.0, 24.0)
    celid_s_hours: tuple[float, ...] = (8.0, 12.0, 24.0)

    def __post_init__(self) -> None:
        choices = {"exactly_at_boundary": ("momentary", "sustained"), "cemi_rule": ("more_than", "at_least"),
                   "midnight": ("start_day", "split"), "beta_std": ("sample", "population")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ReliabilityError(f"conventions.{name}: {getattr(self, name)!r} is not one of {allowed}")
        for name in ("momentary_minutes", "maifie_window_minutes", "med_multiplier"):
            if not getattr(self, name) >= 0:
                raise ReliabilityError(f"conventions.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.med_history_years < 1:
            raise ReliabilityError(f"conventions.med_history_years must be >= 1, got {self.med_history_years}")
        try:
            ZoneInfo(self.timezone)
        except Exception:
            raise ReliabilityError(f"conventions.timezone: unknown time zone {self.timezone!r}") from None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class CustomersServed:
    """Customers served (N_T): the system total and, where known, per feeder and per substation.

    Build it from a number, or from a network with :meth:`from_network` (the customers on each service point,
    attributed to the feeder breaker and substation that feed it at the time).
    """

    total: int
    by_feeder: Mapping[str, int] = field(default_factory=dict)
    by_substation: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.total < 0:
            raise ReliabilityError(f"customers served must be >= 0, got {self.total}")

    @classmethod
    def from_network(cls, network) -> CustomersServed:
        """Count customers per feeder (the breaker segment's ``feeder_id``, else its id) and per substation.

        Customers no source reaches count in the total (they are still customers served) but in no feeder.
        """
        from gis.topology import NONE, build

        topo = build(network, validate=False)
        customers = np.asarray(topo.sp_customers, dtype=np.int64)
        nodes = topo.sp_node
        heads = topo.feeder_heads()[nodes]
        by_feeder: dict[str, int] = {}
        for head, n in zip(heads.tolist(), customers.tolist(), strict=True):
            if head == NONE:
                continue
            key = topo.feeder_name(head)
            by_feeder[key] = by_feeder.get(key, 0) + n
        subs = topo.substation_of_node[nodes]
        by_sub: dict[str, int] = {}
        for sub, n in zip(subs.tolist(), customers.tolist(), strict=True):
            if sub != NONE:
                key = str(topo.substation_ids[sub])
                by_sub[key] = by_sub.get(key, 0) + n
        return cls(int(customers.sum()), by_feeder, by_sub)

    def for_group(self, dimension: str, key: str) -> int | None:
        """N_T for one group: per feeder/substation when known; causes share the system total."""
        if dimension == "feeder":
            return self.by_feeder.get(key)
        if dimension == "substation":
            return self.by_substation.get(key)
        return self.total


# -- 1. records -> canonical table -------------------------------------------------------------------------

def interruption_frame(records: Iterable[Interruption] | pd.DataFrame) -> pd.DataFrame:
    """Interruption records as one table with :data:`COLUMNS` (times tz-aware UTC, ``end`` NaT while open).

    ``kind`` is ``"momentary"``, ``"sustained"`` or ``""`` (decide by duration). Raises
    :class:`ReliabilityError` naming the row and customer for a missing start, an end before its start, or a
    negative customer count.
    """
    if isinstance(records, pd.DataFrame):
        df = records.copy()
    else:
        records = list(records)
        for i, r in enumerate(records):
            for name in ("start", "end"):
                v = getattr(r, name)
                if v is not None and v.tzinfo is None:
                    raise ReliabilityError(f"interruptions: row {i} (customer {r.customer_id!r}): {name} is a "
                                           "naive datetime; times must be timezone-aware UTC")
        rows = [(r.customer_id, r.start, r.end, r.event_id, r.customers, r.feeder_id, r.substation_id, r.cause,
                 r.device_id, r.device_kind, "") for r in records]
        df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in COLUMNS:
        if col not in df.columns:
            if col in ("customer_id", "start"):
                raise ReliabilityError(f"interruptions: required column {col!r} is missing")
            df[col] = {"end": pd.NaT, "customers": 1}.get(col, "")
    df = df[list(COLUMNS)].reset_index(drop=True)
    for col in ("start", "end"):
        df[col] = _utc(df[col], col)
    for col in ("customer_id", "event_id", "feeder_id", "substation_id", "cause", "device_id", "device_kind",
                "kind"):
        df[col] = df[col].where(df[col].notna(), "").astype(str)
    df["kind"] = df["kind"].str.strip().str.lower()
    try:
        df["customers"] = pd.to_numeric(df["customers"]).fillna(1).astype("int64")
    except (ValueError, TypeError) as exc:
        raise ReliabilityError(f"interruptions: column 'customers' has a bad value ({exc})") from None
    _check_rows(df)
    return df


def _utc(s: pd.Series, name: str) -> pd.Series:
    if isinstance(s.dtype, np.dtype) and s.dtype.kind == "M" and len(s.dropna()):
        raise ReliabilityError(f"interruptions: column {name!r} holds naive times; times must be "
                               "timezone-aware UTC")
    if len(s) and not pd.api.types.is_datetime64_any_dtype(s):
        naive = [i for i, v in enumerate(s.tolist()) if isinstance(v, datetime) and v.tzinfo is None]
        if naive:
            raise ReliabilityError(f"interruptions: row {naive[0]}: {name} is a naive datetime; times must be "
                                   "timezone-aware UTC")
    try:
        out = pd.to_datetime(s, utc=True)
    except (ValueError, TypeError) as exc:
        raise ReliabilityError(f"interruptions: column {name!r} has a bad time ({exc})") from None
    return out.astype("datetime64[ns, UTC]")


def _check_rows(df: pd.DataFrame) -> None:
    bad_kind = ~df["kind"].isin(["", "momentary", "sustained"])
    problems = [
        (df["start"].isna(), "has no start time"),
        (df["end"].notna() & (df["end"] < df["start"]), "ends before it starts"),
        (df["customers"] < 0, "has a negative customer count"),
        (df["customer_id"] == "", "has no customer id"),
        (bad_kind, "has a kind other than momentary/sustained"),
    ]
    for mask, what in problems:
        if mask.any():
            i = int(np.flatnonzero(mask.to_numpy())[0])
            row = df.iloc[i]
            raise ReliabilityError(f"interruptions: row {i} (customer {row['customer_id']!r}, event "
                                   f"{row['event_id']!r}) {what}")


# -- 2. merge, classify, assign to days -------------------------------------------------------------------

@dataclass
class Prepared:
    """Merged interruptions and their per-day pieces, ready for :func:`compute_indices`.

    ``interruptions``: one row per merged interruption (customer_id, start, end, customers, event/feeder/
    substation/cause of its earliest record, ``minutes`` (NaN while open), ``sustained``, ``maifie``: 1 when the
    momentary opens a counted MAIFIe event).
    ``pieces``: per interruption and local day: ``day``, ``first`` (the day it starts: counts frequency),
    ``minutes`` (the minutes on that day, or all of them under the start-day convention).
    """

    interruptions: pd.DataFrame
    pieces: pd.DataFrame
    customer_identity: bool = True
    open_count: int = 0

    def __post_init__(self) -> None:
        # numpy views taken once: the report slices them per group (string columns may be Arrow-backed, and
        # converting those on every call would dominate the run time)
        intr, p = self.interruptions, self.pieces
        row = p["row"].to_numpy()
        customer_code = pd.factorize(intr["customer_id"])[0] if len(intr) else np.empty(0, dtype=np.int64)
        self.arrays = {
            "row": row, "first": p["first"].to_numpy().astype(bool), "minutes": p["minutes"].to_numpy(float),
            "customers": intr["customers"].to_numpy()[row], "sustained": intr["sustained"].to_numpy(bool)[row],
            "maifie": intr["maifie"].to_numpy()[row], "customer": customer_code[row],
            "longest": intr["minutes"].to_numpy(float)[row],
        }


def prepare(records: Iterable[Interruption] | pd.DataFrame, conventions: Conventions = Conventions(),
            as_of: datetime | None = None, customer_identity: bool = True) -> Prepared:
    """Merge each customer's overlapping records, classify, group momentaries and assign days.

    ``as_of`` closes still-open interruptions at that time (e.g. "now" for a report during a storm); without it
    they count in frequency indices but not in duration indices (their minutes are unknown).
    ``customer_identity=False`` marks records whose ``customer_id`` is not a real customer (restoration steps):
    the indices that need distinct customers (CAIFI, CTAIDI, CEMIn, CELID) are then not computed.
    """
    df = interruption_frame(records)
    if as_of is not None:
        as_of_ts = _aware(as_of, "as_of")
        df = df[df["start"] < as_of_ts].copy()
        df["end"] = df["end"].where(df["end"].notna(), as_of_ts)
    # A momentary record without an end lasted "no time": close it so merging does not treat it as open.
    df.loc[(df["kind"] == "momentary") & df["end"].isna(), "end"] = df["start"]
    merged = _merge_overlaps(df)
    merged["sustained"] = _is_sustained(merged, conventions)
    merged["maifie"] = _maifie_events(merged, conventions)
    pieces = _day_pieces(merged, conventions)
    return Prepared(merged, pieces, customer_identity, int(merged["end"].isna().sum()))


def _aware(t: datetime, name: str) -> pd.Timestamp:
    if t.tzinfo is None:
        raise ReliabilityError(f"{name} must be timezone-aware (UTC), got naive {t.isoformat()}")
    return pd.Timestamp(t).tz_convert("UTC")


def _merge_overlaps(df: pd.DataFrame) -> pd.DataFrame:
    """One row per maximal overlapping (or touching) set of one customer's records; attributes of the earliest."""
    if len(df) == 0:
        return df.assign(records=pd.Series(dtype="int64"), minutes=pd.Series(dtype="float64"))
    never = pd.Timestamp.max.tz_localize("UTC")
    df = df.assign(_end=df["end"].fillna(never)).sort_values(["customer_id", "start", "_end"], kind="stable")
    df = df.reset_index(drop=True)
    cust = df["customer_id"].to_numpy()
    end_ns, start_ns = _ns(df["_end"]), _ns(df["start"])
    new_customer = np.r_[True, cust[1:] != cust[:-1]]
    # running max of end within each customer: cummax over (customer block offset + end) keeps blocks apart
    block = np.cumsum(new_customer)
    running = pd.Series(end_ns).groupby(block).cummax().to_numpy()
    prev_running = np.r_[np.iinfo(np.int64).min, running[:-1]]
    new_interruption = new_customer | (start_ns > prev_running)
    group = np.cumsum(new_interruption) - 1
    first = df[new_interruption].reset_index(drop=True)
    ends = pd.Series(end_ns).groupby(group).max().to_numpy()
    kinds = _merged_kinds(df["kind"].to_numpy(), np.flatnonzero(new_interruption))
    out = first.drop(columns=["_end"])
    out["end"] = pd.to_datetime(np.where(ends == never.value, np.datetime64("NaT", "ns"),
                                         ends.astype("datetime64[ns]")), utc=True)
    out["kind"] = kinds
    out["customers"] = df.groupby(group)["customers"].max().to_numpy()
    out["records"] = np.bincount(group)
    out["minutes"] = (out["end"] - out["start"]).dt.total_seconds() / 60.0
    return out


def _ns(times: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch as int64 (NaT becomes the minimum int64)."""
    return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]").view("int64")


def _merged_kinds(kind: np.ndarray, group_starts: np.ndarray) -> np.ndarray:
    """Per merged group: sustained if any record says so, momentary if all do, else "" (decide by duration)."""
    any_sustained = np.maximum.reduceat((kind == "sustained").astype(np.int8), group_starts).astype(bool)
    all_momentary = np.minimum.reduceat((kind == "momentary").astype(np.int8), group_starts).astype(bool)
    return np.where(any_sustained, "sustained", np.where(all_momentary, "momentary", "")).astype(object)


def _is_sustained(df: pd.DataFrame, c: Conventions) -> np.ndarray:
    minutes = df["minutes"].to_numpy()
    by_duration = minutes >= c.momentary_minutes if c.exactly_at_boundary == "sustained" else (
        minutes > c.momentary_minutes)
    by_duration |= np.isnan(minutes)  # still open with no as_of: out for an unknown, so far unbounded, time
    kind = df["kind"].to_numpy()
    return np.where(kind == "sustained", True, np.where(kind == "momentary", False, by_duration))


def _maifie_events(df: pd.DataFrame, c: Conventions) -> np.ndarray:
    """1 on the momentary that opens a MAIFIe event (operations within the window of the first), else 0."""
    out = np.zeros(len(df), dtype=np.int64)
    window = np.int64(round(c.maifie_window_minutes * 60e9))
    start = _ns(df["start"])
    cust = df["customer_id"].to_numpy()
    sustained = df["sustained"].to_numpy()
    order = np.lexsort((start, cust))  # already sorted by customer, start; kept explicit for safety
    event_start = None
    event_row = -1
    current = None
    next_sustained: dict[int, int] = {}
    # the next sustained start per row (same customer), scanning backwards once
    nxt = None
    for i in order[::-1]:
        if cust[i] != current:
            current, nxt = cust[i], None
        next_sustained[i] = nxt
        if sustained[i]:
            nxt = start[i]
    current = None
    for i in order:
        if cust[i] != current:
            current, event_start = cust[i], None
        if sustained[i]:
            continue
        if event_start is None or start[i] - event_start > window:
            event_start, event_row = start[i], i
            lockout = next_sustained[i]
            ended_in_lockout = lockout is not None and lockout - start[i] <= window
            out[event_row] = 0 if (ended_in_lockout and c.maifie_exclude_before_lockout) else 1
    return out


def _day_pieces(df: pd.DataFrame, c: Conventions) -> pd.DataFrame:
    """Per interruption and local day: ``day``, ``first`` and ``minutes`` (see :class:`Prepared`)."""
    tz = c.tz
    local_start = df["start"].dt.tz_convert(tz)
    start_day = local_start.dt.normalize()
    day64 = start_day.dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    base = pd.DataFrame({"row": np.arange(len(df)), "day": day64.astype(object), "day64": day64, "first": 1,
                         "minutes": df["minutes"].to_numpy()})
    if c.midnight == "start_day" or len(df) == 0:
        return base
    end_local = df["end"].dt.tz_convert(tz)
    n_days = ((end_local.dt.normalize() - start_day).dt.days.fillna(0).astype("int64") + 1).to_numpy()
    n_days = np.maximum(n_days, 1)
    rows = np.repeat(np.arange(len(df)), n_days)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    day0 = start_day.to_numpy()[rows]
    days = pd.DatetimeIndex(day0).tz_localize(None) + pd.to_timedelta(offset, unit="D")
    day_start = days.tz_localize(tz, ambiguous=False, nonexistent="shift_forward").tz_convert("UTC")
    next_start = (days + pd.Timedelta(days=1)).tz_localize(tz, ambiguous=False,
                                                           nonexistent="shift_forward").tz_convert("UTC")
    open_ = df["end"].isna().to_numpy()[rows]
    s = np.maximum(_ns(df["start"])[rows], day_start.asi8)
    e = np.minimum(_ns(df["end"])[rows], next_start.asi8)
    minutes = np.where(open_, np.nan, (e - s) / 60e9)
    day64 = days.to_numpy().astype("datetime64[D]")
    return pd.DataFrame({"row": rows, "day": day64.astype(object), "day64": day64,
                         "first": (offset == 0).astype(np.int64), "minutes": minutes})


# -- 3. indices --------------------------------------------------------------------------------------------

@dataclass
class Indices:
    """IEEE 1366 indices for one set of customers over one period (minutes; ``None`` = cannot be computed)."""

    customers_served: int | None
    period_minutes: float
    customer_interruptions: int  # CI: sum of N_i over sustained interruptions
    customer_minutes: float  # CMI: sum of r_i N_i
    customers_interrupted: int | None  # CN: distinct customers with >= 1 sustained interruption
    interruptions: int  # sustained interruptions (merged records)
    momentary_interruptions: int  # customer momentary interruptions (sum of N_mi over operations)
    momentary_events: int  # customer momentary events (MAIFIe numerator)
    open_interruptions: int  # sustained, still open, minutes unknown
    saifi: float | None
    saidi: float | None
    caidi: float | None
    caifi: float | None
    ctaidi: float | None
    asai: float | None
    maifi: float | None
    maifie: float | None
    cemi: dict[str, float | None]
    celid_t: dict[str, float | None]
    celid_s: dict[str, float | None]

    def to_dict(self) -> dict:
        return asdict(self)


def _ratio(num: float, den: float | None) -> float | None:
    return None if den is None or den == 0 else float(num) / float(den)


def compute_indices(prepared: Prepared, rows: np.ndarray | None, customers_served: int | None,
                    period_minutes: float, conventions: Conventions = Conventions()) -> Indices:
    """Indices over the day pieces selected by ``rows`` (a boolean mask or positions; all pieces when ``None``).

    Frequency counts come from the pieces marked ``first``; minutes from every selected piece. Distinct-customer
    indices need ``prepared.customer_identity``.
    """
    a = prepared.arrays if rows is None else {k: v[rows] for k, v in prepared.arrays.items()}
    customers, sustained, first, minutes = a["customers"], a["sustained"], a["first"], a["minutes"]
    open_ = np.isnan(minutes) & sustained & first

    s_first = sustained & first
    ci = int(customers[s_first].sum())
    cmi = float(np.nansum(customers[sustained] * minutes[sustained]))
    n_sust = int(s_first.sum())
    mom_first = ~sustained & first
    mi = int(customers[mom_first].sum())
    me = int((customers * a["maifie"])[mom_first].sum())

    nt = customers_served
    saifi, saidi = _ratio(ci, nt), _ratio(cmi, nt)
    asai = None if saidi is None or period_minutes <= 0 else 1.0 - saidi / period_minutes
    cn: int | None = None
    caifi = ctaidi = None
    cemi = {str(n): None for n in conventions.cemi_n}
    celid_t = {_hours_key(h): None for h in conventions.celid_t_hours}
    celid_s = {_hours_key(h): None for h in conventions.celid_s_hours}
    if prepared.customer_identity:
        per = pd.DataFrame({"customer_id": a["customer"][sustained],
                            "customers": customers[sustained], "count": first[sustained].astype(np.int64),
                            "minutes": np.nan_to_num(minutes[sustained]),
                            "longest": np.nan_to_num(a["longest"][sustained], nan=np.inf)})
        per = per.groupby("customer_id").agg(customers=("customers", "max"), count=("count", "sum"),
                                             minutes=("minutes", "sum"), longest=("longest", "max"))
        per = per[per["count"] > 0]
        cn = int(per["customers"].sum())
        caifi, ctaidi = _ratio(ci, cn), _ratio(cmi, cn)
        counts, w = per["count"].to_numpy(), per["customers"].to_numpy()
        for n in conventions.cemi_n:
            hit = counts > n if conventions.cemi_rule == "more_than" else counts >= n
            cemi[str(n)] = _ratio(w[hit].sum(), nt)
        for h in conventions.celid_t_hours:
            celid_t[_hours_key(h)] = _ratio(w[per["minutes"].to_numpy() >= h * 60].sum(), nt)
        for h in conventions.celid_s_hours:
            celid_s[_hours_key(h)] = _ratio(w[per["longest"].to_numpy() >= h * 60].sum(), nt)
    return Indices(
        customers_served=nt, period_minutes=period_minutes, customer_interruptions=ci, customer_minutes=cmi,
        customers_interrupted=cn, interruptions=n_sust, momentary_interruptions=mi, momentary_events=me,
        open_interruptions=int(open_.sum()), saifi=saifi, saidi=saidi, caidi=_ratio(cmi, ci), caifi=caifi,
        ctaidi=ctaidi, asai=asai, maifi=_ratio(mi, nt), maifie=_ratio(me, nt), cemi=cemi, celid_t=celid_t,
        celid_s=celid_s)


def _hours_key(h: float) -> str:
    return f"{h:g}h"


# -- 4. Major Event Days ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MedThreshold:
    """The 2.5 beta threshold and what it was computed from (daily SAIDI in minutes)."""

    t_med: float
    alpha: float
    beta: float
    std: str
    days_used: int  # days with SAIDI > 0 (the logarithm's sample)
    zero_days: int  # days in the history with SAIDI == 0, excluded as IEEE 1366-2012 says
    history_from: date | None
    history_to: date | None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["history_from"] = self.history_from.isoformat() if self.history_from else None
        d["history_to"] = self.history_to.isoformat() if self.history_to else None
        return d


def med_threshold(daily_saidi: pd.Series, conventions: Conventions = Conventions()) -> MedThreshold | None:
    """T_MED = exp(alpha + k beta) over the natural log of the positive daily SAIDI values (IEEE 1366 Annex B).

    ``daily_saidi`` is indexed by date (days absent from it count as zero days). Zero days are discarded before
    the logarithm. Returns ``None`` when fewer than two positive days exist (beta is then undefined).
    """
    values = pd.to_numeric(daily_saidi, errors="coerce").dropna()
    if (values < 0).any():
        bad = values[values < 0].index[0]
        raise ReliabilityError(f"daily SAIDI for {bad} is negative ({values[bad]})")
    positive = values[values > 0].to_numpy(dtype=float)
    if len(positive) < 2:
        return None
    logs = np.log(positive)
    ddof = 1 if conventions.beta_std == "sample" else 0
    alpha, beta = float(logs.mean()), float(logs.std(ddof=ddof))
    days = sorted(values.index)
    return MedThreshold(t_med=math.exp(alpha + conventions.med_multiplier * beta), alpha=alpha, beta=beta,
                        std=conventions.beta_std, days_used=len(positive), zero_days=int((values == 0).sum()),
                        history_from=days[0] if days else None, history_to=days[-1] if days else None)


def history_window(period_from: date, conventions: Conventions = Conventions()) -> tuple[date, date]:
    """The days whose SAIDI sets the threshold for a period starting ``period_from``: the N years before it."""
    years = conventions.med_history_years
    try:
        start = period_from.replace(year=period_from.year - years)
    except ValueError:  # 29 February
        start = period_from.replace(year=period_from.year - years, day=28)
    return start, period_from - timedelta(days=1)


def daily_saidi_from_records(prepared: Prepared, customers_served: int) -> pd.Series:
    """System SAIDI per local day (minutes), from sustained interruptions; only days with interruptions appear."""
    if not customers_served:
        raise ReliabilityError("daily SAIDI needs customers served > 0")
    p = prepared.pieces
    intr = prepared.interruptions
    sustained = intr["sustained"].to_numpy()[p["row"].to_numpy()].astype(bool)
    cmi = intr["customers"].to_numpy()[p["row"].to_numpy()] * np.nan_to_num(p["minutes"].to_numpy())
    s = pd.Series(cmi[sustained]).groupby(p["day64"].to_numpy()[sustained]).sum() / customers_served
    s.index = s.index.to_numpy().astype("datetime64[D]").astype(object)
    return s.sort_index()


def daily_saidi_from_totals(daily: pd.DataFrame) -> pd.Series:
    """SAIDI per day from a daily-totals table (date, customer_minutes, customers_served)."""
    served = daily["customers_served"].to_numpy(dtype=float)
    if (served <= 0).any():
        i = int(np.flatnonzero(served <= 0)[0])
        raise ReliabilityError(f"daily history: {daily['date'].iloc[i]}: customers served must be > 0")
    return pd.Series(daily["customer_minutes"].to_numpy(dtype=float) / served,
                     index=list(daily["date"])).sort_index()


# -- 5. the report -----------------------------------------------------------------------------------------

@dataclass
class ReliabilityReport:
    """Indices for a period with and without Major Event Days, by system and by group."""

    period_from: date
    period_to: date
    conventions: Conventions
    source: str
    threshold: MedThreshold | None
    med_days: list[tuple[date, float]]
    system: Indices
    system_excluding_meds: Indices
    groups: dict[str, dict[str, dict[str, Indices]]]  # dimension -> key -> {"all": ..., "excluding_meds": ...}
    notes: list[str]

    def to_dict(self) -> dict:
        return {
            "period": {"from": self.period_from.isoformat(), "to": self.period_to.isoformat(),
                       "minutes": self.system.period_minutes},
            "source": self.source,
            "conventions": asdict(self.conventions),
            "med": {"threshold": self.threshold.to_dict() if self.threshold else None,
                    "days": [{"date": d.isoformat(), "saidi": s} for d, s in self.med_days]},
            "system": self.system.to_dict(),
            "system_excluding_meds": self.system_excluding_meds.to_dict(),
            "groups": {dim: {k: {w: ix.to_dict() for w, ix in v.items()} for k, v in by.items()}
                       for dim, by in self.groups.items()},
            "notes": self.notes,
        }


def period_minutes(period_from: date, period_to: date, tz: str = "UTC") -> float:
    """Minutes from local midnight starting ``period_from`` to local midnight after ``period_to`` (inclusive)."""
    zone = ZoneInfo(tz)
    a = datetime.combine(period_from, datetime.min.time(), zone).astimezone(UTC)
    b = datetime.combine(period_to + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    return (b - a).total_seconds() / 60.0


def reliability_report(
    period_from: date,
    period_to: date,
    interruptions: Iterable[Interruption] | pd.DataFrame | Prepared | None = None,
    customers_served: CustomersServed | int | None = None,
    daily_history: pd.DataFrame | None = None,
    conventions: Conventions = Conventions(),
    as_of: datetime | None = None,
    customer_identity: bool = True,
    by: Iterable[str] = DIMENSIONS,
) -> ReliabilityReport:
    """Every IEEE 1366 index for the local days ``period_from`` .. ``period_to`` (inclusive), with MEDs.

    Sources: per-customer ``interruptions`` (the exact source; restoration steps with ``customer_identity=False``)
    and/or ``daily_history`` (date, customer_minutes, customer_interruptions, customers_served: see
    :mod:`outage.history`). The MED threshold uses the daily SAIDI of the ``med_history_years`` before the
    period: from ``daily_history`` where it covers a day, else from the records. Without records, the period's
    SAIFI/SAIDI/CAIDI/ASAI come from the daily totals and the rest is ``None`` (noted).
    """
    if period_to < period_from:
        raise ReliabilityError(f"period: --to {period_to} is before --from {period_from}")
    for dim in by:
        if dim not in DIMENSIONS:
            raise ReliabilityError(f"unknown grouping {dim!r}; expected one of {', '.join(DIMENSIONS)}")
    if interruptions is None and daily_history is None:
        raise ReliabilityError("no input: give interruption records, restoration steps or a daily history")
    notes: list[str] = []
    t_minutes = period_minutes(period_from, period_to, conventions.timezone)
    served = _served(customers_served, daily_history, period_to, notes)
    prepared = None
    if interruptions is not None:
        prepared = (interruptions if isinstance(interruptions, Prepared)
                    else prepare(interruptions, conventions, as_of, customer_identity))
        if not prepared.customer_identity:
            notes.append("records are restoration steps, not customers: CAIFI, CTAIDI, CEMIn and CELID need "
                         "distinct customers and are not computed")
        if prepared.open_count:
            notes.append(f"{prepared.open_count} interruption(s) still open: counted in SAIFI, not in SAIDI")

    # Daily SAIDI. History (the threshold): the daily totals where they have a day, else the records. The
    # period (which days are MEDs): the records when given, since the indices are computed from them.
    from_records = (daily_saidi_from_records(prepared, served.total)
                    if prepared is not None and served is not None and served.total > 0 else pd.Series(dtype=float))
    from_totals = (daily_saidi_from_totals(daily_history) if daily_history is not None and len(daily_history)
                   else pd.Series(dtype=float))
    history_daily = _combine(from_totals, from_records)
    period_source = from_records if prepared is not None else from_totals
    h_from, h_to = history_window(period_from, conventions)
    history = _between(history_daily, h_from, h_to)
    threshold = med_threshold(history, conventions)
    if threshold is None:
        notes.append(f"no MED threshold: fewer than two days with SAIDI > 0 between {h_from} and {h_to}")
    elif threshold.history_from and (threshold.history_from - h_from).days > 31:
        notes.append(f"MED threshold uses history from {threshold.history_from} only "
                     f"(less than {conventions.med_history_years} years)")
    period_daily = _between(period_source, period_from, period_to)
    med_days = ([(d, float(v)) for d, v in period_daily.items() if v > threshold.t_med] if threshold else [])
    med_set = {d for d, _ in med_days}

    nt = served.total if served is not None else None
    if nt is None:
        notes.append("customers served unknown: indices per customer served (SAIFI, SAIDI, ...) are None")
    groups: dict[str, dict[str, dict[str, Indices]]] = {}
    if prepared is not None:
        days = prepared.pieces["day64"].to_numpy()
        in_period = (days >= np.datetime64(period_from)) & (days <= np.datetime64(period_to))
        not_med = ~np.isin(days, np.array(sorted(med_set), dtype="datetime64[D]"))
        system = compute_indices(prepared, in_period, nt, t_minutes, conventions)
        system_x = compute_indices(prepared, in_period & not_med, nt, t_minutes, conventions)
        period_rows = np.flatnonzero(in_period)
        period_not_med = not_med[period_rows]
        for dim in by:
            col = prepared.interruptions[_DIMENSION_COLUMN[dim]].to_numpy()[
                prepared.pieces["row"].to_numpy()[period_rows]]
            positions = pd.Series(col).groupby(col).indices if len(col) else {}
            keys = set(positions)
            if served is not None and dim != "cause":
                keys |= set((served.by_feeder if dim == "feeder" else served.by_substation).keys())
            groups[dim] = {}
            for key in sorted(keys):
                n = served.for_group(dim, key) if served is not None else None
                at = positions.get(key, np.empty(0, dtype=np.int64))
                groups[dim][key] = {
                    "all": compute_indices(prepared, period_rows[at], n, t_minutes, conventions),
                    "excluding_meds": compute_indices(prepared, period_rows[at[period_not_med[at]]], n, t_minutes,
                                                      conventions)}
        if "cause" in by:
            notes.append("indices by cause divide by all customers served: they add up to the system index")
        source = "interruptions" if prepared.customer_identity else "restoration steps"
    else:
        system = _indices_from_totals(daily_history, period_from, period_to, nt, t_minutes, set(), conventions)
        system_x = _indices_from_totals(daily_history, period_from, period_to, nt, t_minutes, med_set,
                                        conventions)
        notes.append("indices from daily totals: CAIFI, CTAIDI, MAIFI, CEMIn and CELID need per-customer "
                     "records and are not computed")
        source = "daily totals"
    return ReliabilityReport(period_from, period_to, conventions, source, threshold, med_days, system, system_x,
                             groups, notes)


def _combine(first: pd.Series, second: pd.Series) -> pd.Series:
    """``first`` where it has a day, else ``second``."""
    if not len(first):
        return second
    if not len(second):
        return first
    return first.combine_first(second).sort_index()


def _between(s: pd.Series, lo: date, hi: date) -> pd.Series:
    if not len(s):
        return s
    return s[np.array([lo <= d <= hi for d in s.index], dtype=bool)]


def _served(customers_served, daily_history, period_to: date, notes: list[str]) -> CustomersServed | None:
    if isinstance(customers_served, CustomersServed):
        return customers_served
    if customers_served is not None:
        return CustomersServed(int(customers_served))
    if daily_history is not None and len(daily_history):
        upto = daily_history[[d <= period_to for d in daily_history["date"]]]
        if len(upto):
            last = upto.sort_values("date").iloc[-1]
            notes.append(f"customers served taken from the daily history on {last['date']}: "
                         f"{int(last['customers_served'])}")
            return CustomersServed(int(last["customers_served"]))
    return None


def _indices_from_totals(daily: pd.DataFrame, period_from: date, period_to: date, nt: int | None,
                         t_minutes: float, exclude: set[date], conventions: Conventions) -> Indices:
    mask = [(period_from <= d <= period_to) and d not in exclude for d in daily["date"]]
    sel = daily[mask]
    ci = int(sel["customer_interruptions"].sum())
    cmi = float(sel["customer_minutes"].sum())
    saidi = _ratio(cmi, nt)
    return Indices(
        customers_served=nt, period_minutes=t_minutes, customer_interruptions=ci, customer_minutes=cmi,
        customers_interrupted=None, interruptions=0, momentary_interruptions=0, momentary_events=0,
        open_interruptions=0, saifi=_ratio(ci, nt), saidi=saidi, caidi=_ratio(cmi, ci), caifi=None, ctaidi=None,
        asai=None if saidi is None else 1.0 - saidi / t_minutes, maifi=None, maifie=None,
        cemi={str(n): None for n in conventions.cemi_n},
        celid_t={_hours_key(h): None for h in conventions.celid_t_hours},
        celid_s={_hours_key(h): None for h in conventions.celid_s_hours})


# -- text output -------------------------------------------------------------------------------------------

_MAIN = ("saifi", "saidi", "caidi", "caifi", "ctaidi", "asai", "maifi", "maifie")


def format_report(report: ReliabilityReport) -> str:
    """A readable plain-text rendering (what ``oms report reliability`` prints)."""
    c = report.conventions
    lines = [f"Reliability {report.period_from} .. {report.period_to} ({c.timezone} days) from {report.source}",
             f"customers served: {_fmt(report.system.customers_served)}"]
    t = report.threshold
    if t:
        lines.append(f"MED threshold T_MED = {t.t_med:.3f} min/day (alpha {t.alpha:.4f}, beta {t.beta:.4f} "
                     f"{t.std}, {t.days_used} days > 0, {t.zero_days} zero days, {t.history_from}..{t.history_to})")
    else:
        lines.append("MED threshold: none")
    lines.append("MED days: " + (", ".join(f"{d} ({s:.2f})" for d, s in report.med_days) or "none"))
    lines.append("")
    lines.append(f"{'index':<10}{'all days':>14}{'excl. MEDs':>14}")
    a, x = report.system, report.system_excluding_meds
    for name in _MAIN:
        lines.append(f"{name.upper():<10}{_fmt(getattr(a, name)):>14}{_fmt(getattr(x, name)):>14}")
    for attr, label in (("cemi", "CEMI"), ("celid_t", "CELID-t"), ("celid_s", "CELID-s")):
        for k in getattr(a, attr):
            lines.append(f"{label + k:<10}{_fmt(getattr(a, attr)[k]):>14}{_fmt(getattr(x, attr)[k]):>14}")
    lines.append(f"{'CI':<10}{_fmt(a.customer_interruptions):>14}{_fmt(x.customer_interruptions):>14}")
    lines.append(f"{'CMI':<10}{_fmt(a.customer_minutes):>14}{_fmt(x.customer_minutes):>14}")
    lines.append(f"{'CN':<10}{_fmt(a.customers_interrupted):>14}{_fmt(x.customers_interrupted):>14}")
    for dim, by in report.groups.items():
        if not by:
            continue
        lines.append("")
        lines.append(f"by {dim} (all days / excluding MEDs)")
        lines.append(f"{dim:<16}{'N_T':>8}{'SAIFI':>10}{'SAIDI':>10}{'CAIDI':>10}{'SAIFI-x':>10}{'SAIDI-x':>10}")
        for key, pair in by.items():
            ia, ix = pair["all"], pair["excluding_meds"]
            lines.append(f"{(key or '(none)')[:15]:<16}{_fmt(ia.customers_served):>8}{_fmt(ia.saifi):>10}"
                         f"{_fmt(ia.saidi):>10}{_fmt(ia.caidi):>10}{_fmt(ix.saifi):>10}{_fmt(ix.saidi):>10}")
    if report.notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    if abs(v) >= 1000:
        return f"{v:,.1f}"
    return f"{v:.7f}" if 0.99 < v < 1 else f"{v:.4f}"


__all__ = [
    "COLUMNS", "Conventions", "CustomersServed", "Indices", "MedThreshold", "Prepared", "ReliabilityError",
    "ReliabilityReport", "compute_indices", "daily_saidi_from_records", "daily_saidi_from_totals",
    "format_report", "history_window", "interruption_frame", "med_threshold", "period_minutes", "prepare",
    "reliability_report",
]
