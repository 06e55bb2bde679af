"""Mapping files: which source column feeds each table column, and what a utility's values mean in ours.

A utility's export rarely uses our names: its customer class is ``R-TOU``, its line kind ``primary_overhead``.
A mapping file (``oms territory import ... --mapping FILE``, TOML or YAML) says so, per table::

    [service_points.columns]          # our column = the source column
    sp_id = "PREMISE_NO"
    customer_class = "RATE_CODE"

    [service_points.values.customer_class]   # the source value = ours
    "R-TOU" = "residential"
    "C-GEN" = "commercial"

    [segments.values.kind]
    primary_overhead = "line"
    primary_underground = "line"
    "OH FUSE" = "fuse"

The same in YAML: ``service_points: {columns: {sp_id: PREMISE_NO}, values: {customer_class: {R-TOU: residential}}}``.

Columns with a fixed vocabulary (:data:`VOCABULARIES`: segment ``kind`` and ``status``, service point
``customer_class`` and ``critical_kind``, feeder and transformer ``status``, node ``device``) accept a source value
when the mapping maps it, or when it already is one of ours (ignoring case and surrounding blanks). Anything else is
an error naming the table, the column, the value and the first row (CSV: its line number) or feature where it
occurs; every such value of every table is listed in one run, never replaced by a default. An empty cell takes
the column's default except in ``kind`` and ``customer_class`` (:data:`STRICT`), where it is an unknown value too.
When the source has no such column at all, the documented default applies (``kind`` ``line``, ``customer_class``
``residential``, ...) and ``oms territory info`` says so (:attr:`gis.network.Network.defaulted`).

Values of other columns may be mapped too (``[segments.values.phases]``, say); unmapped ones pass unchanged.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gis.checks import Problem
from gis.network import CRITICAL_KINDS, CUSTOMER_CLASSES, SCHEMAS, SEGMENT_KINDS, STATUSES

#: Kinds a device point on a node may carry (see :mod:`gis.devices`); ``none`` or empty: the node has no device.
DEVICE_POINT_KINDS = ("fuse", "recloser", "switch", "breaker", "sectionalizer", "transformer", "regulator")
#: (table, column) -> the values we accept there.
VOCABULARIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("segments", "kind"): SEGMENT_KINDS,
    ("segments", "status"): STATUSES,
    ("service_points", "customer_class"): CUSTOMER_CLASSES,
    ("service_points", "critical_kind"): CRITICAL_KINDS,
    ("feeders", "status"): STATUSES,
    ("transformers", "status"): STATUSES,
    ("nodes", "device"): ("none", *DEVICE_POINT_KINDS),
}
#: Columns where an empty cell is an unknown value rather than the default.
STRICT = {("segments", "kind"), ("service_points", "customer_class")}
#: Columns a table may map besides its schema's: coordinates, and the device point columns of nodes.
EXTRA_TARGETS = {"nodes": ("device", "device_id", "device_open")}
#: Columns whose default, when the source lacks the column entirely, ``oms territory info`` mentions.
NOTED_DEFAULTS = (("segments", "kind"), ("service_points", "customer_class"))


class MappingError(ValueError):
    """A mapping file cannot be read or says something impossible; the message starts with the file name."""


@dataclass
class Mapping:
    """Per table: ``columns`` (our column -> source column) and ``values`` (our column -> source value -> ours)."""

    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)


def targets(table: str) -> list[str]:
    """The columns of ``table`` a mapping may name."""
    return [*SCHEMAS[table], "longitude", "latitude", *EXTRA_TARGETS.get(table, ())]


def load_mapping(path: str | os.PathLike) -> Mapping:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) mapping file; see the module docstring.

    Raises :class:`MappingError` naming the file and the key at fault (and, for a syntax error, the line).
    """
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"{path}: no such mapping file")
    data = _parse(path)
    if not isinstance(data, dict):
        raise MappingError(f"{path.name}: expected tables at the top level (service_points, segments, ...)")
    mapping = Mapping()
    for table, spec in data.items():
        if table not in SCHEMAS:
            raise MappingError(f"{path.name}: unknown table {table!r}; expected one of {', '.join(SCHEMAS)}")
        if not isinstance(spec, dict) or set(spec) - {"columns", "values"}:
            extra = sorted(set(spec) - {"columns", "values"}) if isinstance(spec, dict) else [table]
            raise MappingError(f"{path.name}: {table}: unknown key {extra[0]!r}; a table has 'columns' and 'values'")
        mapping.columns[table] = _columns(path, table, spec.get("columns", {}))
        mapping.values[table] = _values(path, table, spec.get("values", {}))
    return mapping


def _parse(path: Path):
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            with path.open("rb") as f:
                return tomllib.load(f)
        if suffix in (".yaml", ".yml"):
            import yaml

            with path.open(encoding="utf-8") as f:
                return yaml.safe_load(f) or {}
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path.name}: not valid TOML ({exc})") from None
    except Exception as exc:  # yaml.YAMLError and decoding errors: the message carries the line
        raise MappingError(f"{path.name}: not valid YAML ({' '.join(str(exc).split())})") from None
    raise MappingError(f"{path.name}: a mapping file is .toml, .yaml or .yml")


def _columns(path: Path, table: str, spec) -> dict[str, str]:
    if not isinstance(spec, dict):
        raise MappingError(f"{path.name}: {table}.columns: expected 'our_column = \"SOURCE_COLUMN\"' entries")
    out = {}
    for target, source in spec.items():
        if target not in targets(table):
            raise MappingError(f"{path.name}: {table}.columns: table {table!r} has no column {target!r}; expected "
                               f"one of {', '.join(targets(table))}")
        if not isinstance(source, str) or not source.strip():
            raise MappingError(f"{path.name}: {table}.columns.{target}: expected a source column name")
        out[target] = source.strip()
    return out


def _values(path: Path, table: str, spec) -> dict[str, dict[str, str]]:
    if not isinstance(spec, dict):
        raise MappingError(f"{path.name}: {table}.values: expected one table of 'source = ours' per column")
    out: dict[str, dict[str, str]] = {}
    for target, pairs in spec.items():
        where = f"{path.name}: {table}.values.{target}"
        if target not in targets(table):
            raise MappingError(f"{where}: table {table!r} has no column {target!r}")
        if not isinstance(pairs, dict):
            raise MappingError(f"{where}: expected 'source value = our value' entries")
        vocab = VOCABULARIES.get((table, target))
        out[target] = {}
        for source, ours in pairs.items():
            ours = str(ours).strip()
            if vocab is not None and ours not in vocab:
                raise MappingError(f"{where}: {source!r} maps to {ours!r}, which is not one of "
                                   f"{', '.join(vocab)}")
            out[target][_key(source)] = ours
    return out


def _key(value) -> str:
    """A source value as the text it is matched by (YAML reads ``yes`` as True and ``1`` as 1)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).strip()


def apply_values(df: pd.DataFrame, table: str, mapping: Mapping | None, source_of: dict[str, str], where: str,
                 row_label) -> tuple[pd.DataFrame, list[Problem]]:
    """``df`` with its values mapped, and an ``unknown value`` problem per (column, value) no mapping explains.

    ``source_of`` names the source column of each of ours (for the message), ``where`` the file or layer and
    ``row_label(i)`` how to name the row at position ``i`` (``row 7`` for CSV, ``feature 6`` otherwise).
    """
    values = (mapping.values if mapping else {}).get(table, {})
    problems: list[Problem] = []
    for col in sorted(set(values) | {c for t, c in VOCABULARIES if t == table}):
        if col not in df.columns:
            continue
        text = df[col].map(_cell)
        mapped = text.map(values.get(col, {})).astype(object)
        vocab = VOCABULARIES.get((table, col))
        if vocab is not None:
            lower = text.str.lower().astype(object)
            mapped = mapped.fillna(lower.where(lower.isin(vocab)))
            empty = text == ""
            if (table, col) not in STRICT:
                mapped = mapped.mask(empty & mapped.isna(), SCHEMAS.get(table, {}).get(col, ("str", "none"))[1])
            problems += _unknown(text[mapped.isna()], table, col, source_of.get(col, col), where, row_label, vocab)
        df[col] = mapped.where(mapped.notna(), df[col])
    return df, problems


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _unknown(bad: pd.Series, table: str, col: str, source: str, where: str, row_label,
             vocab: tuple[str, ...]) -> list[Problem]:
    problems = []
    for value, idx in bad.groupby(bad, sort=False).groups.items():
        first, n = int(idx[0]), len(idx)  # the raw tables keep their 0-based row positions as index
        problems.append(Problem(
            "unknown value",
            f"{where}: {row_label(first)}: column {source!r} ({table}.{col}): unknown value {value!r}"
            + (f" (in {n} rows)" if n > 1 else "")
            + f"; map it in the mapping file under [{table}.values.{col}] or use one of {', '.join(vocab)}",
            n, [value],
        ))
    return problems
