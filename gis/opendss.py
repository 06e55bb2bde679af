"""OpenDSS feeder import through the OpenDSS engine: a master ``.dss`` file to a :class:`~gis.network.Network`.

The model is compiled by the OpenDSS engine itself (OpenDSSDirect.py, which ships DSS C-API as a wheel), in a fresh
engine context per import: ``Redirect`` of the master, then ``MakeBusList``. Whatever OpenDSS compiles imports, with
OpenDSS's own reading of every property (positional values, ``bus=``, arrays with commas, ``like=``, ``Edit``,
``Disable``, ``Open``/``Close``...). From the engine are read: buses and their coordinates (``Buscoords`` and
``LatLongCoords``), and per class (as the engine's JSON) lines (``switch``), series reactors, transformers (``sub``,
``bank``, winding kV), regulator controls, fuses, reclosers, relays and switch controls with the element they
watch, energy meters, loads, sources and the ``enabled`` flags; the open terminals of lines.

The engine keeps names in lower case; element ids keep the spelling of the ``New`` command that made them (found
by a scan of the master and the files it redirects, which also finds coordinate commands to run again once the bus
list exists, since OpenDSS drops coordinates given before it). Bus ids are lower case.

Model rules:

* **Disabled elements** are left out with a note, except a disabled switch line between two live buses: that is a
  normally-open tie. Also normally open: a line with an open terminal (``Open``), a ``SwtControl`` with
  ``Normal=open``/``State=open``, a line to a dead-end bus ``<bus>_open`` without coordinates (the IEEE 123
  convention; it is joined to ``<bus>``).
* **Substation**: from each source bus, everything reached through substation transformers (``sub=y``, or a
  transformer from 30 kV or more to a primary voltage), series reactors, lines and switches at 30 kV or more (a
  subtransmission line between substation transformers; the voltage carried from the transformers' windings) and,
  up to an energy meter's line, the lines to it, is substation equipment: those buses become one substation node
  (the ``source_node``), the equipment is listed in the substation's ``equipment`` column, and each line leaving it
  is a feeder head: a switch line there is the feeder breaker, any other gets a breaker ``BRK-<line>``
  (``synthesized=True``). A model whose
  source bus is the feeder head (no substation equipment) gets a source node beside that bus and one breaker
  ``BRK-<bus>`` (``synthesized=True``), unless a ``Relay`` already guards a line leaving it.
* **Kinds**: ``Line`` is a ``line`` (``switch`` if ``switch=y`` or a ``SwtControl`` works it), ``service`` below a
  distribution transformer (secondary under 1 kV); ``Transformer`` is a ``transformer``, a ``regulator`` when a
  ``RegControl`` works it; single-phase units of one bank between the same buses are one segment; ``Fuse``,
  ``Recloser`` and ``Relay`` (a ``breaker``) are inserted at the watched terminal of their line (a switch line
  carrying one is that device). An id that another element already uses is prefixed with the class
  (``Fuse.L3`` on line ``L3``).
* **Parallel elements** between the same two buses (phases split over lines, regulator units with jumpers on the
  other phases) merge into one segment: the device if one of them is a device, with the phases of all.
* **Loops** still closed after that are opened at the segment that closes them, with a note; buses no source
  reaches through closed segments are left out with a note.
* **Coordinates**: lat/lon coordinates (``LatLongCoords``, or ``Buscoords`` within lon/lat range) are used as they
  are; planar ones need ``anchor=(lat, lon)``, where the centre of the buses' bounding box is placed, and ``scale``
  in metres per unit: an azimuthal equidistant projection around the anchor. Without ``scale`` the unit is inferred
  from the model (:mod:`gis.opendss_units`: line lengths against coordinate distances, else the feeder's size) and
  the import notes say which and why. Buses without coordinates are placed from their neighbours
  (:mod:`gis.opendss_place`) and flagged ``placed=True`` in ``nodes``.

Completing a bare feeder (customers under transformers, lateral fuses, a mid-feeder recloser) follows the
documented rules of :mod:`gis.opendss_complete`.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from gis.network import Network
from gis.opendss_complete import complete_feeder, with_feeders
from gis.opendss_place import place_missing
from gis.opendss_units import check_scale, infer_scale


class OpenDSSError(ValueError):
    """The OpenDSS input cannot be read; the message names the file and the problem."""


_LENGTH_M = {"ft": 0.3048, "kft": 304.8, "mi": 1609.344, "km": 1000.0, "m": 1.0, "cm": 0.01, "in": 0.0254}
#: Element classes read from the engine.
CLASSES = ("Vsource", "Line", "Reactor", "Transformer", "RegControl", "Fuse", "Recloser", "Relay", "SwtControl",
           "EnergyMeter", "Load", "Capacitor")
_LOWERCASE_KEYS = 128  # dss.enums.DSSJSONFlags.LowercaseKeys
#: Winding-1 kV from which a transformer feeding a primary (>= 1 kV) is substation equipment.
SUB_KV = 30.0
#: A transformer whose low side is below this (kV) is a distribution transformer: what hangs below is secondary.
SECONDARY_KV = 1.0
_RANK = {"line": 0, "service": 0, "switch": 1, "sectionalizer": 2, "fuse": 2, "recloser": 2, "breaker": 2,
         "transformer": 3, "regulator": 3}


# -- the engine --------------------------------------------------------------------------------------------------


@dataclass
class DssModel:
    """What the engine compiled: per class (lower case) its elements as the engine's JSON (lower-case keys)."""

    circuit: str
    objects: dict[str, list[dict]]
    buses: list[str]
    coords: dict[str, tuple[float, float]]
    opened: set[str]  # lines with an open terminal
    latlon: bool
    spelling: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def of_class(self, cls: str) -> list[dict]:
        return self.objects.get(cls.lower(), [])

    def display(self, cls: str, name: str) -> str:
        """The element's name as its ``New`` command spelled it."""
        return self.spelling.get((cls.lower(), name.lower()), name)


@dataclass
class _Scan:
    spelling: dict[tuple[str, str], str] = field(default_factory=dict)
    coord_commands: list[tuple[str, Path]] = field(default_factory=list)
    loop: list[str] = field(default_factory=list)  # a redirect loop (file names), which would crash the engine


_REDIRECT = re.compile(r"^\s*(redirect|compile)\s+(?:file\s*=\s*)?(\"[^\"]*\"|'[^']*'|\S+)", re.I | re.M)
_COORDCMD = re.compile(r"^\s*(buscoords|buscoordinates|latlongcoords)\s+(?:file\s*=\s*)?(\"[^\"]*\"|'[^']*'|\S+)",
                       re.I | re.M)
_NEW = re.compile(r"\bnew\s+(?:object\s*=\s*)?([a-z]+)\.(\"[^\"]+\"|'[^']+'|[^\s=]+)", re.I)


def _scan(master: Path) -> _Scan:
    """Names as spelled and coordinate commands, in the master and what it redirects (best effort: the engine is the
    authority on what the model is; this only keeps the utility's spelling of names)."""
    out = _Scan()
    seen: set[Path] = set()

    def walk(path: Path, stack: tuple[Path, ...] = ()) -> None:
        path = path.resolve()
        if path in stack and not out.loop:
            out.loop = [p.name for p in (*stack[stack.index(path):], path)]
        if path in seen or not path.is_file():
            return
        seen.add(path)
        text = path.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        text = re.sub(r"(!|//).*", "", text)
        for m in _NEW.finditer(text):
            key = (m.group(1).lower(), m.group(2).strip("\"'").lower())
            out.spelling.setdefault(key, m.group(2).strip("\"'"))
        for m in _COORDCMD.finditer(text):
            out.coord_commands.append((m.group(1).lower(), path.parent / m.group(2).strip("\"'")))
        for m in _REDIRECT.finditer(text):
            walk(path.parent / m.group(2).strip("\"'"), (*stack, path))

    walk(master)
    return out


def compile_model(master: str | Path, coords: str | Path | None = None) -> DssModel:
    """Compile ``master`` with the OpenDSS engine and read what an OMS needs (see the module docstring).

    ``coords`` names a bus-coordinate file (``bus, x, y``) when the scripts do not load one themselves.
    """
    import json

    from opendssdirect import dss

    master = Path(master).resolve()
    if not master.is_file():
        raise OpenDSSError(f"{master}: no such file")
    scan = _scan(master)
    if scan.loop:
        raise OpenDSSError(f"{master.name}: redirect loop ({' -> '.join(scan.loop)})")
    ctx = dss.NewContext()  # a fresh engine: nothing of an earlier import leaks in
    for setting in ("AllowChangeDir", "AllowEditor", "AllowForms"):
        getattr(ctx.Basic, setting)(False)
    try:
        ctx.Text.Command(f'Redirect "{master}"')
        if ctx.Basic.NumCircuits() == 0:
            raise OpenDSSError(f"{master.name}: no source (New Circuit... or New Vsource...) is defined")
        ctx.Text.Command("MakeBusList")
        # OpenDSS drops coordinates given before the bus list exists: give them again now that it does
        for verb, path in scan.coord_commands:
            ctx.Text.Command(f'{verb} "{path}"')
        if coords is None and not scan.coord_commands:
            coords = _coords_beside(master)
        if coords is not None:
            if not Path(coords).is_file():
                raise OpenDSSError(f"{coords}: bus coordinate file not found")
            ctx.Text.Command(f'Buscoords "{Path(coords).resolve()}"')
        objects = {}
        for cls in CLASSES:
            ctx.Circuit.SetActiveClass(cls)
            objects[cls.lower()] = json.loads(ctx.ActiveClass.ToJSON(_LOWERCASE_KEYS)) if ctx.ActiveClass.Count() else []
        buses = [str(b) for b in ctx.Circuit.AllBusNames()]
        xy = {}
        for i, b in enumerate(buses):
            ctx.Circuit.SetActiveBusi(i)
            if ctx.Bus.Coorddefined():
                xy[b] = (float(ctx.Bus.X()), float(ctx.Bus.Y()))
        opened = set()
        for obj in objects["line"]:
            if obj.get("enabled", True):
                ctx.Circuit.SetActiveElement(f"Line.{obj['Name']}")
                if ctx.CktElement.IsOpen(1, 0) or ctx.CktElement.IsOpen(2, 0):
                    opened.add(obj["Name"].lower())
        circuit = str(ctx.Circuit.Name())
    except OpenDSSError:
        raise
    except Exception as exc:  # the engine's DSSException: its message names the file and the problem
        raise OpenDSSError(_engine_message(master, str(exc))) from None
    finally:
        with contextlib.suppress(Exception):  # freeing the engine's circuit must not hide the real error
            ctx.Text.Command("Clear")
    latlon = any(verb == "latlongcoords" for verb, _ in scan.coord_commands)
    return DssModel(circuit=scan.spelling.get(("circuit", circuit.lower()), circuit), objects=objects, buses=buses,
                    coords=xy, opened=opened, latlon=latlon, spelling=scan.spelling)


def _coords_beside(master: Path) -> Path | None:
    """A model that loads no coordinates: the one ``*coord*.dat/.csv/.txt`` file beside the master, if exactly one."""
    found = sorted(p for p in master.parent.iterdir() if p.is_file() and re.search(r"coord", p.name, re.I)
                   and p.suffix.lower() in (".dat", ".csv", ".txt"))
    return found[0] if len(found) == 1 else None


def _engine_message(master: Path, text: str) -> str:
    """The engine's error as ``file:line: problem`` (its messages end in ``[file: "...", line: N]``)."""
    if "create a circuit first" in text.lower():
        return f"{master.name}: no source (New Circuit... or New Vsource...) is defined"
    where = re.search(r'\[file:\s*"([^"]*)",\s*line:\s*(\d+)\]', text)
    body = re.sub(r"^\(#\d+\)\s*", "", text[: where.start()] if where else text).strip()
    body = " ".join(line.strip() for line in body.splitlines() if line.strip())
    if where:
        return f"{Path(where.group(1)).name}:{where.group(2)}: {body}"
    return f"{master.name}: {body}"


# -- from the engine's elements to segments ------------------------------------------------------------------


def _bus(spec: str) -> tuple[str, str | None]:
    """``'150.1.2.3'`` -> (``'150'``, ``'ABC'``); no phase suffix -> phases None."""
    parts = str(spec).strip().lower().split(".")
    phases = "".join("ABC"[int(p) - 1] for p in parts[1:] if p in ("1", "2", "3"))
    return parts[0], (phases or None) if len(parts) > 1 else None


def _phases(obj: dict, spec: str) -> str:
    ph = _bus(spec)[1]
    if ph:
        return ph
    n = int(float(obj.get("phases", 3)))
    return "ABC"[: max(1, min(n, 3))]


def _target(obj: dict, *keys: str) -> tuple[str, str]:
    """(class, name) of the element a control watches, lower case; ("", "") if none."""
    for key in keys:
        value = str(obj.get(key) or "")
        if "." in value:
            cls, name = value.split(".", 1)
            return cls.lower(), name.lower()
    return "", ""


@dataclass
class _Edge:
    seg_id: str
    a: str
    b: str
    kind: str
    phases: str
    normally_open: bool = False
    synthesized: bool = False
    name: str = ""
    length_m: float = math.nan
    sub: bool = False  # substation transformer
    reactor: bool = False  # series reactor
    lv: bool = False  # distribution transformer: its low side is secondary
    disabled: bool = False
    kv: tuple[float, float] | None = None  # a transformer's winding voltages at a and b

    def row(self) -> dict:
        return {k: getattr(self, k) for k in ("seg_id", "a", "b", "kind", "phases", "normally_open", "synthesized",
                                                "name", "length_m")}


@dataclass
class _Sub:
    sub_id: str
    name: str
    source_node: str
    buses: list[str]  # model buses it is made of, hub first
    equipment: list[str]
    beside: bool = False  # the source node is a new node beside the head bus


@dataclass
class _Feeder:
    """The segments, loads and substations of a model, before placement."""

    edges: list[_Edge]
    loads: list[dict]
    subs: list[_Sub]
    notes: list[str]


def _elements(model: DssModel) -> tuple[list[_Edge], list[dict], list[tuple[str, str]]]:
    edges: list[_Edge] = []
    for obj in model.of_class("line"):
        a, b = _bus(obj.get("bus1", ""))[0], _bus(obj.get("bus2", ""))[0]
        name = model.display("line", obj["Name"])
        if not a or not b or a == b:
            model.notes.append(f"Line.{name}: both ends on bus {a!r} (a jumper, or bus2 missing); left out")
            continue
        units = str(obj.get("units", "none")).lower()
        length = float(obj.get("length", math.nan)) * _LENGTH_M.get(units, math.nan)
        edges.append(_Edge(name, a, b, "switch" if obj.get("switch") else "line", _phases(obj, obj.get("bus1", "")),
                           normally_open=obj["Name"].lower() in model.opened, name=f"Line.{name}", length_m=length,
                           disabled=obj.get("enabled") is False))
    for obj in model.of_class("reactor"):
        a, b = _bus(obj.get("bus1", ""))[0], _bus(obj.get("bus2", ""))[0]
        if a and b and a != b:  # a series reactor (a shunt one has no second bus)
            name = model.display("reactor", obj["Name"])
            edges.append(_Edge(name, a, b, "line", _phases(obj, obj.get("bus1", "")), name=f"Reactor.{name}",
                               reactor=True, disabled=obj.get("enabled") is False))
    regulated = {str(o.get("transformer", "")).lower() for o in model.of_class("regcontrol")
                 if o.get("enabled", True) is not False}
    banks: dict[tuple[str, str, str], _Edge] = {}
    for obj in model.of_class("transformer"):
        specs = list(obj.get("bus") or [])
        names = list(dict.fromkeys(_bus(s)[0] for s in specs if s))
        display = model.display("transformer", obj["Name"])
        if len(names) < 2:
            model.notes.append(f"Transformer.{display} has fewer than two buses; left out")
            continue
        kv = [float(v) for v in obj.get("kv") or [12.47, 12.47]]
        kind = "regulator" if obj["Name"].lower() in regulated else "transformer"
        a, b = names[0], names[1]
        bank = str(obj.get("bank") or "")
        key = (min(a, b), max(a, b), kind)
        if key in banks and obj.get("enabled") is not False:  # one device: units of a bank, parallel units
            e = banks[key]
            e.phases = "".join(p for p in "ABC" if p in e.phases + _phases(obj, specs[0]))
            e.name += f"+{display}"
            if bank and e.seg_id != bank:
                e.seg_id = bank
            continue
        e = _Edge(bank or display, a, b, kind, _phases(obj, specs[0]), name=f"Transformer.{display}",
                  sub=bool(obj.get("sub")) or (kv[0] >= SUB_KV and min(kv[1:]) >= SECONDARY_KV),
                  lv=min(kv[1:]) < SECONDARY_KV, disabled=obj.get("enabled") is False,
                  kv=(kv[0], kv[1] if len(kv) > 1 else kv[0]))
        if not e.disabled:
            banks[key] = e
        edges.append(e)
    loads = []
    for obj in model.of_class("load"):
        spec = str(obj.get("bus1", ""))
        kw = float(obj["kw"]) if "kw" in obj else float(obj.get("kva", 10.0)) * float(obj.get("pf", 0.9))
        loads.append({"name": model.display("load", obj["Name"]), "bus": _bus(spec)[0], "kw": kw,
                      "phases": _phases(obj, spec), "customers": int(obj.get("numcust", 1) or 1),
                      "disabled": obj.get("enabled") is False})
    sources = []
    for obj in model.of_class("vsource"):
        if obj.get("enabled") is not False:
            label = model.circuit if obj["Name"].lower() == "source" else model.display("vsource", obj["Name"])
            sources.append((_bus(obj.get("bus1", "sourcebus"))[0], label))
    if not sources:
        raise OpenDSSError("no enabled source (New Circuit... or New Vsource...)")
    return edges, loads, sources


def _feeder(model: DssModel) -> _Feeder:
    """Segments, loads and substations by the module's rules (everything but placement)."""
    notes = model.notes
    edges, loads, sources = _elements(model)
    _open_dead_ends(model, edges, notes)
    edges = _drop_disabled(edges, sources, notes)
    _attach_controls(model, edges, notes)
    _merge_parallel(edges, notes)
    subs = _substations(model, edges, sources, loads, notes)
    edges, loads = _radial(edges, loads, subs, notes)
    off = [ld["name"] for ld in loads if ld["disabled"]]
    if off:
        notes.append(f"{len(off)} disabled load(s) left out: {_some(off)}")
    loads = [ld for ld in loads if not ld["disabled"]]
    _unique_ids(edges)
    return _Feeder(edges, loads, subs, notes)


def _some(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _adjacency(edges: list[_Edge], closed_only: bool = True) -> dict[str, list[_Edge]]:
    adj: dict[str, list[_Edge]] = {}
    for e in edges:
        if closed_only and (e.normally_open or e.disabled):
            continue
        adj.setdefault(e.a, []).append(e)
        adj.setdefault(e.b, []).append(e)
    return adj


def _reach(adj: dict[str, list[_Edge]], roots: list[str]) -> set[str]:
    seen = set(roots)
    queue = deque(roots)
    while queue:
        n = queue.popleft()
        for e in adj.get(n, ()):
            o = e.b if e.a == n else e.a
            if o not in seen:
                seen.add(o)
                queue.append(o)
    return seen


def _open_dead_ends(model: DssModel, edges: list[_Edge], notes: list[str]) -> None:
    """A line to a dead-end bus ``<bus>_open`` without coordinates is the open tie to ``<bus>``."""
    degree: dict[str, int] = {}
    for e in edges:
        degree[e.a] = degree.get(e.a, 0) + 1
        degree[e.b] = degree.get(e.b, 0) + 1
    for e in edges:
        for end in ("a", "b"):
            bus = getattr(e, end)
            base = re.sub(r"[_-]?open$", "", bus)
            if base != bus and degree.get(bus) == 1 and bus not in model.coords and base in degree:
                setattr(e, end, base)
                e.normally_open = True
                notes.append(f"{e.name}: ends at {bus!r}, taken as the normally-open tie to {base!r}")


def _drop_disabled(edges: list[_Edge], sources: list[tuple[str, str]], notes: list[str]) -> list[_Edge]:
    """Disabled elements are left out, but a disabled switch line between two live buses is an open tie."""
    live = _reach(_adjacency(edges), [s for s, _ in sources])
    kept, dropped = [], []
    for e in edges:
        if not e.disabled:
            kept.append(e)
        elif e.kind == "switch" and e.a in live and e.b in live:
            e.disabled, e.normally_open = False, True
            kept.append(e)
        else:
            dropped.append(e.name)
    ties = [e.name for e in kept if e.normally_open and e.kind == "switch"]
    if dropped:
        notes.append(f"{len(dropped)} disabled element(s) left out: {_some(dropped)}")
    if ties:
        notes.append(f"{len(ties)} normally-open point(s): {_some(ties)}")
    return kept


def _attach_controls(model: DssModel, edges: list[_Edge], notes: list[str]) -> None:
    """Switch controls make their line a switch; fuses, reclosers and relays sit on their line's terminal."""
    by_line = {e.name.split(".", 1)[1].lower(): e for e in edges if e.name.startswith("Line.")}
    for obj in model.of_class("swtcontrol"):
        cls, target = _target(obj, "switchedobj")
        line = by_line.get(target) if cls == "line" else None
        if line is None or obj.get("enabled") is False:
            notes.append(f"SwtControl.{model.display('swtcontrol', obj['Name'])}: no enabled line to work; left out")
            continue
        line.kind = "switch"
        state = str(obj.get("normal") or obj.get("state") or obj.get("action") or "c").lower()
        line.normally_open = line.normally_open or state.startswith("o")
    device_of = {"fuse": "fuse", "recloser": "recloser", "relay": "breaker"}
    for cls_name, kind in device_of.items():
        for obj in model.of_class(cls_name):
            display = f"{cls_name.title()}.{model.display(cls_name, obj['Name'])}"
            cls, target = _target(obj, "switchedobj", "monitoredobj")
            line = by_line.get(target) if cls == "line" else None
            if obj.get("enabled") is False:
                notes.append(f"{display} is disabled; left out")
                continue
            if line is None:
                notes.append(f"{display}: {cls}.{target} is not a line of the model; left out")
                continue
            if line.kind == "switch":  # a switch line carrying the device: it is the device
                line.kind = kind
                line.name += f" ({display})"
                continue
            term = int(obj.get("switchedterm") or obj.get("monitoredterm") or 1)
            _insert_device(edges, line, at=line.a if term == 1 else line.b, kind=kind,
                           seg_id=model.display(cls_name, obj["Name"]), synthesized=False, name=display)


def _merge_parallel(edges: list[_Edge], notes: list[str]) -> None:
    """Closed segments between the same two buses are one: the device among them, with the phases of all."""
    seen: dict[tuple[str, str], _Edge] = {}
    merged = []
    for e in list(edges):
        if e.normally_open:
            continue
        key = (min(e.a, e.b), max(e.a, e.b))
        keep = seen.get(key)
        if keep is None:
            seen[key] = e
            continue
        if _RANK.get(e.kind, 0) > _RANK.get(keep.kind, 0):
            keep, e = e, keep
            seen[key] = keep
        keep.phases = "".join(p for p in "ABC" if p in keep.phases + e.phases)
        keep.sub, keep.lv = keep.sub or e.sub, keep.lv or e.lv
        merged.append(f"{e.name} into {keep.name}")
        keep.name += f"+{e.name}"
        edges.remove(e)
    if merged:
        notes.append(f"{len(merged)} parallel element(s) merged: {_some(merged)}")


def _insert_device(edges: list[_Edge], line: _Edge, at: str, kind: str, seg_id: str, synthesized: bool,
                   name: str) -> None:
    """Put a device segment between bus ``at`` and ``line``, on a new node ``<at>~<seg_id>``."""
    mid = f"{at}~{seg_id.lower()}"
    if line.a == at:
        line.a = mid
    else:
        line.b = mid
    edges.append(_Edge(seg_id, at, mid, kind, line.phases, synthesized=synthesized, name=name, length_m=0.0))


def _path(start: set[str], goal: str, adj: dict[str, list[_Edge]], max_hops: int) -> list[str] | None:
    """Buses on the shortest path from ``start`` to ``goal`` over lines (not through transformers), or None."""
    prev: dict[str, str | None] = {n: None for n in start}
    frontier = list(start)
    for _ in range(max_hops + 1):
        if goal in prev:
            out, n = [], goal
            while n is not None and n not in start:
                out.append(n)
                n = prev[n]
            return out
        nxt = []
        for n in frontier:
            for e in adj.get(n, ()):
                o = e.b if e.a == n else e.a
                if o not in prev and e.kind not in ("transformer", "regulator"):
                    prev[o] = n
                    nxt.append(o)
        frontier = nxt
    return None


def _high_voltage(edges: list[_Edge]) -> set[str]:
    """Buses at subtransmission or transmission voltage (``SUB_KV`` or more): each transformer winding's voltage,
    carried along the lines, switches and devices joined to it. Buswork and lines at that voltage between the source
    and the substation transformers are substation equipment, not a feeder."""
    import networkx as nx

    steps = [e for e in edges if e.kv is not None and e.kind != "regulator"]  # a regulator keeps the voltage
    zones = nx.Graph((e.a, e.b) for e in edges if e.kv is None or e.kind == "regulator")
    zones.add_nodes_from(n for e in steps for n in (e.a, e.b))
    winding: dict[str, float] = {}
    for e in steps:
        for n, v in ((e.a, e.kv[0]), (e.b, e.kv[1])):
            winding[n] = max(winding.get(n, 0.0), v)
    return {n for zone in nx.connected_components(zones) if max(winding.get(m, 0.0) for m in zone) >= SUB_KV
            for n in zone}


def _substations(model: DssModel, edges: list[_Edge], sources: list[tuple[str, str]], loads: list[dict],
                 notes: list[str]) -> list[_Sub]:
    """Collapse each substation's equipment into one node and put a breaker on each feeder head."""
    subs: list[_Sub] = []
    inside: dict[str, str] = {}
    meters = []
    for obj in model.of_class("energymeter"):
        cls, name = _target(obj, "element")
        if cls == "line":
            meters.append((name, int(obj.get("terminal") or 1)))
    high = _high_voltage(edges)
    for bus, label in sources:
        if bus in inside:
            continue
        adj = _adjacency(edges)
        group, queue = {bus}, deque([bus])
        while queue:
            n = queue.popleft()
            for e in adj.get(n, ()):
                o = e.b if e.a == n else e.a
                if (e.sub or e.reactor or (n in high and o in high)) and o not in group:
                    group.add(o)
                    queue.append(o)
        if len(group) == 1:  # the source bus is the feeder head
            guarded = any(e.kind == "breaker" and bus in (e.a, e.b) for e in edges)
            src = bus if guarded else f"{bus}~sub"
            if not guarded:
                edges.append(_Edge(f"BRK-{bus}", src, bus, "breaker", "ABC", synthesized=True,
                                   name=f"feeder breaker of {label}", length_m=15.0))
            subs.append(_Sub(f"SUB-{bus}", label, src, [bus], [], beside=not guarded))
            inside[bus] = src
            continue
        by_line = {e.name.split(".", 1)[1].split(" ", 1)[0].lower(): e for e in edges if e.name.startswith("Line.")}
        for line_name, term in meters:  # the buswork up to a metered line is substation
            e = by_line.get(line_name)
            if e is not None:
                path = _path(group, e.a if term == 1 else e.b, adj, max_hops=4)
                group |= set(path or ())
        sub_names = [str(o.get("subname")) for o in model.of_class("transformer") if o.get("subname")
                     and any(_bus(s)[0] in group for s in o.get("bus") or [])]
        name = sub_names[0] if sub_names else label
        internal = [e for e in edges if e.a in group and e.b in group]
        heads = [e for e in edges if (e.a in group) != (e.b in group) and not e.normally_open]
        hub = max(sorted(group), key=lambda n: (sum(n in (e.a, e.b) for e in heads), n in model.coords))
        edges[:] = [e for e in edges if not (e.a in group and e.b in group)]
        for e in edges:
            e.a = hub if e.a in group else e.a
            e.b = hub if e.b in group else e.b
        for ld in loads:
            ld["bus"] = hub if ld["bus"] in group else ld["bus"]
        for e in heads:
            if e.kind == "switch":
                e.kind = "breaker"
                e.name += " (feeder head)"
            elif e.kind not in ("breaker", "recloser"):
                _insert_device(edges, e, at=hub, kind="breaker", seg_id=f"BRK-{e.seg_id}", synthesized=True,
                               name=f"feeder breaker of {e.name}")
        placed_first = [hub] + sorted((group - {hub}), key=lambda n: n not in model.coords)
        subs.append(_Sub(f"SUB-{name}", name, hub, placed_first, [e.name for e in internal]))
        for n in group:
            inside[n] = hub
        notes.append(f"substation {name}: {len(group)} bus(es) and {_some([e.name for e in internal])} are "
                     f"substation equipment; {len(heads)} feeder(s) leave it")
    return subs


def _radial(edges: list[_Edge], loads: list[dict], subs: list[_Sub],
            notes: list[str]) -> tuple[list[_Edge], list[dict]]:
    """Open loops, leave out what no source reaches, and make lines below distribution transformers services."""
    adj = _adjacency(edges)
    roots = [s.source_node for s in subs]
    seen = set(roots)
    secondary = {r: False for r in roots}
    tree: set[int] = set()
    queue = deque(roots)
    opened = []
    while queue:
        n = queue.popleft()
        for e in adj.get(n, ()):
            if id(e) in tree:
                continue
            o = e.b if e.a == n else e.a
            if o in seen:
                if not e.normally_open:
                    e.normally_open = True
                    opened.append(e.name)
                continue
            tree.add(id(e))
            seen.add(o)
            if e.kind == "transformer":
                secondary[o] = e.lv
            else:
                secondary[o] = secondary[n]
                if secondary[n] and e.kind in ("line", "switch"):
                    e.kind = "service"
            queue.append(o)
    if opened:
        notes.append(f"{len(opened)} loop(s) opened at the segment closing them: {_some(opened)}")
    kept = [e for e in edges if e.a in seen and e.b in seen]
    if len(kept) < len(edges):
        lost = {n for e in edges for n in (e.a, e.b)} - seen
        notes.append(f"{len(lost)} bus(es) no source reaches through closed segments left out: "
                     f"{_some(sorted(lost))}")
    cut = [ld["name"] for ld in loads if ld["bus"] not in seen]
    if cut:
        notes.append(f"{len(cut)} load(s) on buses no source reaches left out: {_some(cut)}")
    return kept, [ld for ld in loads if ld["bus"] in seen]


def _unique_ids(edges: list[_Edge]) -> None:
    """An id another segment already uses gets the element's class (``Fuse.L3`` on ``Line.L3``), then a number."""
    used: set[str] = set()
    for e in sorted(edges, key=lambda e: not e.name.startswith("Line.")):  # lines keep their names
        if e.seg_id in used:
            cls = e.name.split(".", 1)[0]
            base = f"{cls}.{e.seg_id}" if not e.synthesized else e.seg_id
            e.seg_id, k = base, 2
            while e.seg_id in used:
                e.seg_id, k = f"{base}-{k}", k + 1
        used.add(e.seg_id)


# -- placement and tables ----------------------------------------------------------------------------------------


def read_opendss(master: str | Path, anchor: tuple[float, float] | None = None, scale: float | None = None,
                 coords: str | Path | None = None, complete: bool = True, kw_per_customer: float = 5.0,
                 name: str | None = None, seed: int = 0) -> Network:
    """Import the model of ``master`` as a :class:`Network` (see the module docstring for every rule).

    ``anchor``/``scale`` place planar bus coordinates; ``coords`` names a bus-coordinate file; ``complete``
    applies :func:`complete_feeder`'s rules (service points, fuses, a recloser). ``seed`` only scatters service
    points around their transformer. ``net.notes`` lists what was left out, merged, opened or synthesized.
    """
    master = Path(master)
    model = compile_model(master, coords)
    try:
        feeder = _feeder(model)
    except OpenDSSError as exc:
        raise OpenDSSError(f"{master.name}: {exc}") from None
    xy, placed = _place(model, feeder, anchor, scale, master)
    net_name = name or model.circuit or master.stem
    tables = _tables(feeder, xy, placed)
    net = Network.from_tables(tables, name=net_name)
    if complete:
        kinds = {e.kind for e in feeder.edges}
        net = complete_feeder(net, feeder.loads, kw_per_customer=kw_per_customer, add_fuses="fuse" not in kinds,
                              add_recloser="recloser" not in kinds, seed=seed)
        synth = net.segments.loc[net.segments["synthesized"], "kind"].value_counts().to_dict()
        if synth:
            feeder.notes.append("synthesized: " + ", ".join(f"{v} {k}(s)" for k, v in sorted(synth.items())))
    else:
        net = with_feeders(net)
    net.notes = feeder.notes  # not a table: kept for the importer's report
    return net


def _place(model: DssModel, feeder: _Feeder, anchor: tuple[float, float] | None, scale: float | None,
           master: Path) -> tuple[dict[str, tuple[float, float]], set[str]]:
    """lon/lat per node, and the model buses placed from their neighbours (no coordinates in the model)."""
    nodes = {n for e in feeder.edges for n in (e.a, e.b)} | {ld["bus"] for ld in feeder.loads}
    nodes |= {s.source_node for s in feeder.subs}
    plain = sorted({n.split("~", 1)[0] for n in nodes})
    known = {b: model.coords[b] for b in plain if b in model.coords}
    for s in feeder.subs:  # a substation node takes the first coordinates among its buses
        hub = s.buses[0]
        if hub not in known:
            first = next((model.coords[b] for b in s.buses if b in model.coords), None)
            if first is not None:
                known[hub] = first
    if not known:
        raise OpenDSSError(f"{master.name}: no bus has coordinates (give a Buscoords or LatLongCoords file)")
    names = sorted(known)
    xy = np.array([known[b] for b in names], dtype=float)
    if model.latlon and anchor is not None:
        feeder.notes.append("coordinates from LatLongCoords are geographic: the anchor is not used")
    if anchor is None or model.latlon:
        if not model.latlon and not (np.all(np.abs(xy[:, 0]) <= 180) and np.all(np.abs(xy[:, 1]) <= 90)):
            raise OpenDSSError(f"{master.name}: bus coordinates look planar (x {xy[:, 0].min():g}..{xy[:, 0].max():g}, "
                               f"y {xy[:, 1].min():g}..{xy[:, 1].max():g}); give anchor LAT,LON (and scale, metres "
                               "per unit, else inferred) to place them")
        lonlat = xy
    else:
        pairs, sections = _drawn(feeder, known)
        if scale is None:
            scale, why = infer_scale(pairs, sections, xy)
            feeder.notes.append(why)
        else:
            why = check_scale(scale, pairs)
            feeder.notes.extend([why] if why else [])
        lonlat = planar_to_lonlat(xy, anchor, scale)
    pos = {b: (float(x), float(y)) for b, (x, y) in zip(names, lonlat, strict=True)}
    adj: dict[str, list[str]] = {}
    for e in feeder.edges:
        a, b = e.a.split("~", 1)[0], e.b.split("~", 1)[0]
        if a != b:
            adj.setdefault(a, []).append(b)
            adj.setdefault(b, []).append(a)
    placed = place_missing(pos, adj, plain)
    out = {}
    for n in nodes:
        if n.endswith("~sub") and n not in pos:
            lon, lat = pos[n.split("~", 1)[0]]
            out[n] = (lon - 0.0002, lat)  # the source node, ~15 m west of its bus
        else:
            out[n] = pos[n.split("~", 1)[0]]
    return out, placed


def _drawn(feeder: _Feeder, known: dict[str, tuple[float, float]]) -> tuple[list[tuple[float, float]], list[float]]:
    """Of the lines with coordinates at both ends: (length in metres, coordinate distance) where the length is
    declared in a unit, and every coordinate distance (for :mod:`gis.opendss_units`)."""
    pairs, sections = [], []
    for e in feeder.edges:
        a, b = known.get(e.a.split("~", 1)[0]), known.get(e.b.split("~", 1)[0])
        if a is None or b is None or e.reactor or e.synthesized:
            continue
        dist = math.dist(a, b)
        if dist > 0:
            sections.append(dist)
            pairs.append((e.length_m, dist))
    return pairs, sections


def planar_to_lonlat(xy: np.ndarray, anchor: tuple[float, float], scale: float) -> np.ndarray:
    """Planar (x, y) to (lon, lat): the bounding-box centre goes to ``anchor`` (lat, lon), ``scale`` m per unit."""
    from pyproj import Transformer

    lat0, lon0 = anchor
    if not (-90 <= lat0 <= 90 and -180 <= lon0 <= 180):
        raise OpenDSSError(f"anchor {anchor}: expected (lat, lon) within -90..90, -180..180")
    if not scale > 0:
        raise OpenDSSError(f"scale {scale}: expected metres per coordinate unit > 0")
    centre = (xy.min(axis=0) + xy.max(axis=0)) / 2
    metres = (xy - centre) * scale
    tr = Transformer.from_crs(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m", "EPSG:4326",
                              always_xy=True)
    lon, lat = tr.transform(metres[:, 0], metres[:, 1])
    return np.column_stack([lon, lat])


def _tables(feeder: _Feeder, xy: dict[str, tuple[float, float]], placed: set[str]) -> dict[str, pd.DataFrame]:
    node_ids = sorted(xy)
    nodes = pd.DataFrame({"node_id": node_ids,
                          "placed": [n.split("~", 1)[0] in placed for n in node_ids],
                          "geometry": shapely.points(np.array([xy[n] for n in node_ids]))})
    seg = pd.DataFrame([e.row() for e in feeder.edges]).rename(
        columns={"seg_id": "segment_id", "a": "from_node", "b": "to_node"})
    subs = pd.DataFrame([{"substation_id": s.sub_id, "name": s.name, "source_node": s.source_node,
                          "equipment": ", ".join(s.equipment), "model_buses": " ".join(s.buses),
                          "geometry": shapely.Point(*xy[s.buses[0]])}
                         for s in feeder.subs])
    return {"nodes": nodes, "segments": seg, "service_points": None, "substations": subs}
