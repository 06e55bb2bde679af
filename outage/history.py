"""Import interruption history from another system's CSV files, with a documented, overridable column mapping.

A utility arrives with years of history from its old OMS or spreadsheet, and the Major Event Day threshold needs
five years of it. Each file kind below has canonical *fields*; by default a field is read from the column of the
same name, and any field can be mapped to another column (``{"customer_id": "ACCT_NO"}``, on the command line
``--column interruptions.customer_id=ACCT_NO``). Column names match case-insensitively and ignoring surrounding spaces.

``interruptions`` (per customer)   customer_id*, start*, end, event_id, kind (momentary/sustained, M/S; blank:
                                    decide by duration), customers (default 1), feeder_id, substation_id, cause,
                                    device_id, device_kind
``steps`` (per-event restoration)  event_id*, start*, end*, customers*, step, feeder_id, substation_id, cause
``daily`` (daily totals)           date*, customer_minutes*, customers_served*, customer_interruptions
``events`` (post-event summary)    event_id*, start*, restored, customers, tier, event_class, cause,
                                    first_report, crew_hours
``etrs`` (ETR history)             event_id*, issued_at*, etr*
``acks`` (acknowledgments)         reported_at*, acknowledged_at

(* required.) Times are ISO 8601 or anything pandas reads; a time without a UTC offset is taken in ``tz``
(default UTC) and converted to UTC. Errors name the file, the line and the column.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from outage.reliability import ReliabilityError
from outage.summary import EventSummary

#: kind -> {field: (type, required)}. Types: str, time, int, float, date, kind.
FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "interruptions": {
        "customer_id": ("str", True), "start": ("time", True), "end": ("time", False),
        "event_id": ("str", False), "kind": ("kind", False), "customers": ("int", False),
        "feeder_id": ("str", False), "substation_id": ("str", False), "cause": ("str", False),
        "device_id": ("str", False), "device_kind": ("str", False),
    },
    "steps": {
        "event_id": ("str", True), "start": ("time", True), "end": ("time", True), "customers": ("int", True),
        "step": ("str", False), "feeder_id": ("str", False), "substation_id": ("str", False),
        "cause": ("str", False),
    },
    "daily": {
        "date": ("date", True), "customer_minutes": ("float", True), "customers_served": ("int", True),
        "customer_interruptions": ("int", False),
    },
    "events": {
        "event_id": ("str", True), "start": ("time", True), "restored": ("time", False),
        "customers": ("int", False), "tier": ("str", False), "event_class": ("str", False),
        "cause": ("str", False), "first_report": ("time", False), "crew_hours": ("float", False),
    },
    "etrs": {"event_id": ("str", True), "issued_at": ("time", True), "etr": ("time", True)},
    "acks": {"reported_at": ("time", True), "acknowledged_at": ("time", False)},
}
_DEFAULTS = {"int": 0, "float": 0.0, "str": "", "kind": ""}
#: Blank or missing values of these fields mean 1, not 0 (a service point stands for one customer by default).
_ONE_BY_DEFAULT = {"customers"}
_KIND_WORDS = {"m": "momentary", "mom": "momentary", "momentary": "momentary", "s": "sustained",
               "sus": "sustained", "sustained": "sustained", "": ""}


def parse_column_overrides(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["interruptions.customer_id=ACCT"]`` -> ``{"interruptions": {"customer_id": "ACCT"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, column = item.partition("=")
        kind, dot, field = target.strip().partition(".")
        if not sep or not dot or not field or not column.strip():
            raise ReliabilityError(f"--column {item!r}: expected KIND.FIELD=COLUMN, e.g. "
                                   "interruptions.customer_id=ACCT_NO")
        if kind not in FIELDS:
            raise ReliabilityError(f"--column {item!r}: unknown file kind {kind!r}; kinds are {', '.join(FIELDS)}")
        if field not in FIELDS[kind]:
            raise ReliabilityError(f"--column {item!r}: {kind} has no field {field!r}; fields are "
                                   f"{', '.join(FIELDS[kind])}")
        out.setdefault(kind, {})[field] = column.strip()
    return out


def read_history(path: str | os.PathLike, kind: str, columns: Mapping[str, str] | None = None,
                 tz: str = "UTC") -> pd.DataFrame:
    """Read one CSV of ``kind`` (see the module docstring) into a table with the canonical field names."""
    if kind not in FIELDS:
        raise ReliabilityError(f"unknown history kind {kind!r}; expected one of {', '.join(FIELDS)}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    return conform_history(raw, kind, columns, tz, source=str(path))


def conform_history(raw: pd.DataFrame, kind: str, columns: Mapping[str, str] | None = None, tz: str = "UTC",
                    source: str = "table") -> pd.DataFrame:
    """Map and convert an already-loaded table of strings (what :func:`read_history` does after reading)."""
    spec = FIELDS[kind]
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(spec))
    if unknown:
        raise ReliabilityError(f"{source}: unknown {kind} field {unknown[0]!r} in the column mapping; fields are "
                               f"{', '.join(spec)}")
    by_lower = {str(c).strip().lower(): c for c in raw.columns}
    out = pd.DataFrame(index=raw.index)
    for name, (typ, required) in spec.items():
        wanted = columns.get(name, name)
        col = by_lower.get(wanted.strip().lower())
        if col is None:
            if required or name in columns:
                raise ReliabilityError(f"{source}: column {wanted!r} for field {name!r} not found; columns are "
                                       f"{', '.join(map(str, raw.columns))} (map it with --column "
                                       f"{name}=COLUMN)")
            out[name] = pd.NaT if typ == "time" else (1 if name in _ONE_BY_DEFAULT else _DEFAULTS.get(typ, ""))
            continue
        out[name] = _convert(raw[col].astype(str).str.strip(), typ, required, tz, f"{source}: column {col!r}",
                             1 if name in _ONE_BY_DEFAULT else 0)
    return out.reset_index(drop=True)


def _convert(s: pd.Series, typ: str, required: bool, tz: str, where: str, default: int = 0) -> pd.Series:
    blank = s == ""
    if required and blank.any():
        raise ReliabilityError(f"{where}, line {_line(blank)}: value is empty")
    if typ == "str":
        return s
    if typ == "kind":
        low = s.str.lower()
        bad = ~low.isin(list(_KIND_WORDS))
        if bad.any():
            raise ReliabilityError(f"{where}, line {_line(bad)}: {s[bad].iloc[0]!r} is not momentary/sustained "
                                   "(M/S)")
        return low.map(_KIND_WORDS)
    if typ in ("int", "float"):
        num = pd.to_numeric(s.where(~blank, None), errors="coerce")
        bad = num.isna() & ~blank
        if typ == "int":
            bad |= num.notna() & (num != np.floor(num.fillna(0)))
        if bad.any():
            raise ReliabilityError(f"{where}, line {_line(bad)}: {s[bad].iloc[0]!r} is not a number")
        num = num.fillna(default)
        return num.astype("int64" if typ == "int" else "float64")
    if typ == "date":
        parsed = pd.to_datetime(s, errors="coerce")
        if parsed.isna().any():
            raise ReliabilityError(f"{where}, line {_line(parsed.isna())}: {s[parsed.isna()].iloc[0]!r} is not "
                                   "a date")
        return pd.Series(parsed.dt.date, index=s.index)
    return _times(s, blank, tz, where)


def _times(s: pd.Series, blank: pd.Series, tz: str, where: str) -> pd.Series:
    out = []
    for i, text in enumerate(s.tolist()):
        if blank.iloc[i]:
            out.append(pd.NaT)
            continue
        try:
            t = pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ReliabilityError(f"{where}, line {i + 2}: {text!r} is not a time") from None
        if t is pd.NaT:
            raise ReliabilityError(f"{where}, line {i + 2}: {text!r} is not a time")
        out.append(t.tz_localize(tz) if t.tzinfo is None else t)
    return pd.Series(pd.to_datetime(out, utc=True), index=s.index).astype("datetime64[ns, UTC]")


def _line(mask: pd.Series) -> int:
    """The CSV line number (header is line 1) of the first True in ``mask``."""
    return int(np.flatnonzero(mask.to_numpy())[0]) + 2


def steps_as_interruptions(steps: pd.DataFrame) -> pd.DataFrame:
    """Restoration steps as interruption rows: each step is its own group of ``customers``, out start..end.

    The ``customer_id`` is ``"<event>#<step>"``: not a real customer, so give the result to
    :func:`outage.reliability.prepare` with ``customer_identity=False``.
    """
    step = steps["step"].where(steps["step"] != "", pd.Series(np.arange(1, len(steps) + 1), index=steps.index)
                               .astype(str))
    bad = steps["end"] < steps["start"]
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ReliabilityError(f"steps: event {steps['event_id'].iloc[i]!r} step {step.iloc[i]!r} ends before "
                               "it starts")
    return pd.DataFrame({
        "customer_id": steps["event_id"] + "#" + step.astype(str), "start": steps["start"], "end": steps["end"],
        "event_id": steps["event_id"], "customers": steps["customers"], "feeder_id": steps["feeder_id"],
        "substation_id": steps["substation_id"], "cause": steps["cause"], "kind": "",
    })


def events_from_tables(events: pd.DataFrame, etrs: pd.DataFrame | None = None) -> list[EventSummary]:
    """:class:`~outage.summary.EventSummary` records from an ``events`` table and an optional ``etrs`` table."""
    by_event: dict[str, list[tuple]] = {}
    if etrs is not None:
        for row in etrs.itertuples(index=False):
            by_event.setdefault(row.event_id, []).append((row.issued_at.to_pydatetime(), row.etr.to_pydatetime()))
    known = set(events["event_id"])
    orphans = sorted(set(by_event) - known)
    if orphans:
        raise ReliabilityError(f"etrs: event {orphans[0]!r} is not in the events file")
    out = []
    for row in events.itertuples(index=False):
        out.append(EventSummary(
            event_id=row.event_id, start=row.start.to_pydatetime(), restored=_py(row.restored),
            customers=int(row.customers), tier=row.tier, event_class=row.event_class, cause=row.cause,
            first_report=_py(row.first_report), etrs=tuple(by_event.get(row.event_id, ())),
            crew_hours=float(row.crew_hours)))
    return out


def acks_from_table(acks: pd.DataFrame) -> list[tuple]:
    """``(reported_at, acknowledged_at or None)`` pairs from an ``acks`` table."""
    return [(r.reported_at.to_pydatetime(), _py(r.acknowledged_at)) for r in acks.itertuples(index=False)]


def _py(t):
    return None if t is None or pd.isna(t) else t.to_pydatetime()
