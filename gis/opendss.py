"""OpenDSS feeder import: a ``.dss`` master file (and what it redirects) to a :class:`~gis.network.Network`.

Works on any feeder, not just the IEEE test cases. Understood:

* commands ``New``, ``Edit``, ``Redirect``/``Compile`` (paths relative to the file that names them, any depth),
  ``Open``/``Close`` (a terminal of a line), ``Disable``/``Enable``, ``Buscoords``/``BusCoordinates`` (x y) and
  ``LatLongCoords`` (lat lon), ``Clear``; everything else (``Set``, ``Solve``, ``CalcVoltageBases``...) is skipped;
* ``~`` and ``more`` continuation lines, ``!`` and ``//`` comments and ``/* */`` blocks, case-insensitivity,
  quoted and bracketed values (``buses=[150 150r]``), positional properties, ``like=``;
* elements ``Line`` (``switch=y`` makes a switch), ``Transformer`` (``buses=[..]`` or ``wdg=/bus=``; one with a
  ``RegControl`` is a ``regulator``; single-phase units of one ``bank`` between the same buses merge into one
  segment), ``Load``, ``Fuse``, ``Recloser``, ``Relay`` (a ``breaker``) and ``SwtControl`` attached to a line by
  ``MonitoredObj``/``SwitchedObj``, ``Capacitor`` (noted, not a segment), ``Vsource`` and ``Circuit`` (the source);
* normally-open points: ``enabled=false``, an ``Open`` command, a ``SwtControl`` with ``Normal=open``/``State=open``,
  or a line to a dead-end bus that has no coordinates. Such a dead end named ``<bus>_open`` is the open tie to
  ``<bus>`` (the IEEE 123 convention); any other is dropped with a note, since nothing can be placed there;
* bus names with phase suffixes (``150.1.2.3`` is bus ``150`` on phases ABC); bus ids are lower case.

Coordinates: lat/lon coordinates (``LatLongCoords``, or ``Buscoords`` whose values are all within lon/lat range)
are used as they are. Planar ones need ``anchor=(lat, lon)``, where the centre of the buses' bounding box is
placed, and ``scale`` in metres per coordinate unit (default 1); they are laid out with an azimuthal equidistant
projection around the anchor.

Substation: each source bus gets a substation whose source node sits beside it, and a ``breaker`` feeder head
between the two (``synthesized=True``) unless a ``Relay`` already guards a line leaving that bus.

Completing a bare feeder (:func:`complete_feeder`, on by default): OpenDSS feeders model loads on primary buses
and rarely their fuses. An OMS needs customers under transformers and the devices that operate, so by these rules,
every added element marked ``synthesized=True``:

1. **Service points from loads**: a load on the low side of a modelled transformer hangs its service points there;
   any other gets a distribution transformer ``T-<load>`` to a new low-voltage node 15 m away. A single- or
   two-phase load is residential, one service point per ``kw_per_customer`` kW (default 5 kW, at least 1); a
   three-phase load is one commercial service point.
2. **Fuses at lateral taps** (only if the feeder has no fuse): where a line with fewer than three phases leaves a
   three-phase node, a fuse ``F-<line>`` is inserted at the tap.
3. **A recloser mid-feeder** (only if the feeder has no recloser): on the three-phase main line, at the segment whose
   downstream customer count is closest to half of its feeder's (and below all of them: a recloser that sees
   everything the breaker sees adds nothing), a recloser ``R-<line>`` is inserted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from gis.network import Network


class OpenDSSError(ValueError):
    """The OpenDSS input cannot be read; the message names the file (and line) and the problem."""


# -- parsing -----------------------------------------------------------------------------------------------

#: Property order for positional (unnamed) values, per class.
POSITIONAL = {
    "line": ("bus1", "bus2", "linecode", "length"),
    "load": ("bus1", "phases", "kv", "kw", "pf"),
    "transformer": ("phases", "windings"),
    "capacitor": ("bus1", "bus2", "phases", "kvar", "kv"),
    "vsource": ("bus1", "basekv", "pu"),
    "circuit": ("bus1", "basekv", "pu"),
    "fuse": ("monitoredobj", "monitoredterm", "switchedobj", "switchedterm"),
    "recloser": ("monitoredobj", "monitoredterm", "switchedobj", "switchedterm"),
    "relay": ("monitoredobj", "monitoredterm", "switchedobj", "switchedterm"),
    "swtcontrol": ("switchedobj", "switchedterm", "action", "lock", "delay", "normal", "state"),
    "regcontrol": ("transformer", "winding"),
}
_OPENERS = {'"': '"', "'": "'", "(": ")", "[": "]", "{": "}"}
_TRUE = {"y", "yes", "true", "t", "1"}
_LENGTH_M = {"ft": 0.3048, "kft": 304.8, "mi": 1609.344, "km": 1000.0, "m": 1.0, "cm": 0.01, "in": 0.0254}


@dataclass
class DssObject:
    """One element: class and name in lower case, properties by lower-case key (values as written)."""

    cls: str
    name: str
    display: str  # the name as first written
    props: dict[str, str] = field(default_factory=dict)
    buses: list[str] = field(default_factory=list)  # transformer windings
    where: str = ""  # "file:line" for messages


@dataclass
class DssModel:
    """What a master file and its redirects define."""

    objects: dict[tuple[str, str], DssObject] = field(default_factory=dict)
    opened: set[tuple[str, str]] = field(default_factory=set)
    coords: dict[str, tuple[float, float]] = field(default_factory=dict)
    latlon: bool = False  # coordinates came from LatLongCoords
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of_class(self, *classes: str) -> list[DssObject]:
        return [o for o in self.objects.values() if o.cls in classes]


def parse(master: str | Path, coords: str | Path | None = None) -> DssModel:
    """Read ``master`` and everything it redirects into a :class:`DssModel`.

    ``coords`` names a bus-coordinate file (``bus x y``) when the scripts do not load one themselves; without it,
    a ``BusCoords.dat``/``buscoords.csv``-like file next to the master is used if there is exactly one.
    """
    master = Path(master)
    if not master.is_file():
        raise OpenDSSError(f"{master}: no such file")
    model = DssModel()
    _run_file(model, master, stack=())
    if coords is not None:
        _read_coords(model, Path(coords), latlon=False, where=str(coords))
    elif not model.coords:
        found = sorted(p for p in master.parent.iterdir()
                       if p.is_file() and re.search(r"coord", p.name, re.I) and p.suffix.lower() in (".dat", ".csv",
                                                                                                    ".txt"))
        if len(found) == 1:
            _read_coords(model, found[0], latlon="latlong" in found[0].name.lower(), where=found[0].name)
    return model


def _run_file(model: DssModel, path: Path, stack: tuple[Path, ...]) -> None:
    path = path.resolve()
    if path in stack:
        raise OpenDSSError(f"{path.name}: redirect loop ({' -> '.join(p.name for p in (*stack, path))})")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise OpenDSSError(f"{path}: cannot read ({exc.strerror})") from None
    model.files.append(path)
    for lineno, command in _commands(text):
        _execute(model, command, path, lineno, (*stack, path))


def _commands(text: str) -> list[tuple[int, str]]:
    """Logical commands as (first line number, text): comments stripped, continuations joined."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    out: list[tuple[int, str]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        m = re.match(r"(~|more\b)\s*", line, re.I)
        if m:
            if not out:
                raise OpenDSSError(f"line {lineno}: continuation {line[:20]!r} with no command before it")
            out[-1] = (out[-1][0], out[-1][1] + " " + line[m.end():])
        else:
            out.append((lineno, line))
    return out


def _strip_comment(line: str) -> str:
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "!" or line.startswith("//", i):
            return line[:i]
    return line


def _tokens(text: str) -> list[str]:
    """Split a command: whitespace/commas separate, ``=`` is its own token, quotes/brackets group."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace() or c == ",":
            i += 1
        elif c == "=":
            out.append("=")
            i += 1
        elif c in _OPENERS:
            j = text.find(_OPENERS[c], i + 1)
            j = n if j < 0 else j
            out.append(text[i + 1:j].strip())
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in ",=":
                j += 1
            out.append(text[i:j])
            i = j
    return out


def _pairs(tokens: list[str]) -> list[tuple[str | None, str]]:
    """(key or None for positional, value) in order."""
    out: list[tuple[str | None, str]] = []
    i = 0
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i + 1] == "=":
            out.append((tokens[i].lower(), tokens[i + 2] if i + 2 < len(tokens) else ""))
            i += 3
        else:
            out.append((None, tokens[i]))
            i += 1
    return out


def _execute(model: DssModel, command: str, path: Path, lineno: int, stack: tuple[Path, ...]) -> None:
    where = f"{path.name}:{lineno}"
    tokens = _tokens(command)
    verb = tokens[0].lower()
    args = tokens[1:]
    if verb in ("redirect", "compile"):
        if not args:
            raise OpenDSSError(f"{where}: {verb} without a file name")
        target = (path.parent / args[0]).resolve()
        if not target.is_file():
            raise OpenDSSError(f"{where}: {verb} {args[0]!r}: no such file ({target})")
        _run_file(model, target, stack)
    elif verb == "clear":
        model.objects.clear()
        model.opened.clear()
    elif verb == "new":
        _new(model, args, where)
    elif verb == "edit":
        obj = _existing(model, args, where)
        _apply(obj, _pairs(args[1:]), model, where)
    elif verb in ("open", "close"):
        pairs = _pairs(args)
        target = next((v for k, v in pairs if k in (None, "object", "element")), None)
        if target is None:
            raise OpenDSSError(f"{where}: {verb} needs an element, e.g. '{verb} Line.Sw7 term=1'")
        key = _class_name(target, where)
        (model.opened.add if verb == "open" else model.opened.discard)(key)
    elif verb in ("disable", "enable"):
        obj = _existing(model, args, where)
        obj.props["enabled"] = "false" if verb == "disable" else "true"
    elif verb in ("buscoords", "buscoordinates", "latlongcoords"):
        name = next((v for k, v in _pairs(args) if k in (None, "file")), None)
        if not name:
            raise OpenDSSError(f"{where}: {verb} without a file name")
        _read_coords(model, path.parent / name, latlon=verb == "latlongcoords", where=where)
    # everything else (set, solve, calcvoltagebases, show, plot, ...) changes no network data


def _class_name(spec: str, where: str) -> tuple[str, str]:
    if "." not in spec:
        raise OpenDSSError(f"{where}: expected Class.Name, got {spec!r}")
    cls, name = spec.split(".", 1)
    cls = cls.lower()
    return ("vsource", "source") if cls == "circuit" else (cls, name.lower())


def _new(model: DssModel, args: list[str], where: str) -> None:
    pairs = _pairs(args)
    if not pairs:
        raise OpenDSSError(f"{where}: 'New' without an element")
    key, spec = pairs[0]
    if key not in (None, "object"):
        raise OpenDSSError(f"{where}: 'New' must start with Class.Name or object=Class.Name, got {key}={spec}")
    cls, name = spec.split(".", 1) if "." in spec else ("", "")
    if not cls or not name:
        raise OpenDSSError(f"{where}: expected Class.Name after 'New', got {spec!r}")
    cls = cls.lower()
    circuit_name = None
    if cls == "circuit":  # a circuit is its source: Vsource.source
        circuit_name, cls, name = name, "vsource", "source"
    obj = DssObject(cls=cls, name=name.lower(), display=circuit_name or name, where=where)
    if circuit_name:
        obj.props["circuit"] = circuit_name
    model.objects[(cls, obj.name)] = obj
    _apply(obj, pairs[1:], model, where)


def _existing(model: DssModel, args: list[str], where: str) -> DssObject:
    if not args:
        raise OpenDSSError(f"{where}: expected Class.Name")
    spec = args[0] if args[0].lower() != "object" else args[2]
    key = _class_name(spec, where)
    if key not in model.objects:
        raise OpenDSSError(f"{where}: {spec} is not defined")
    return model.objects[key]


def _apply(obj: DssObject, pairs: list[tuple[str | None, str]], model: DssModel, where: str) -> None:
    positional = POSITIONAL.get(obj.cls, ())
    pos = 0
    winding = 1
    for key, value in pairs:
        if key is None:
            if pos >= len(positional):
                model.notes.append(f"{where}: {obj.cls}.{obj.display}: ignored extra value {value!r}")
                continue
            key = positional[pos]
            pos += 1
        if key == "like":
            other = model.objects.get((obj.cls, value.lower()))
            if other is None:
                raise OpenDSSError(f"{where}: {obj.cls}.{obj.display}: like={value} is not defined before it")
            obj.props = {**other.props, **obj.props}
            obj.buses = list(other.buses)
        elif obj.cls == "transformer" and key == "wdg":
            winding = int(float(value))
        elif obj.cls == "transformer" and key == "bus":
            while len(obj.buses) < winding:
                obj.buses.append("")
            obj.buses[winding - 1] = value
        elif obj.cls == "transformer" and key == "buses":
            obj.buses = value.split()
        else:
            obj.props[key] = value


def _read_coords(model: DssModel, path: Path, latlon: bool, where: str) -> None:
    if not path.is_file():
        raise OpenDSSError(f"{where}: bus coordinate file {path.name!r} not found ({path})")
    for lineno, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        parts = [p for p in re.split(r"[\s,]+", line) if p]
        if len(parts) < 3:
            raise OpenDSSError(f"{path.name}:{lineno}: expected 'bus x y', got {line!r}")
        try:
            a, b = float(parts[1]), float(parts[2])
        except ValueError:
            if lineno == 1:
                continue  # a header row
            raise OpenDSSError(f"{path.name}:{lineno}: coordinates {parts[1]!r}, {parts[2]!r} are not numbers") from None
        model.coords[parts[0].lower()] = (b, a) if latlon else (a, b)  # always (x=lon-like, y=lat-like)
    model.latlon = model.latlon or latlon


# -- from parsed objects to tables ---------------------------------------------------------------------------


def _bus(spec: str) -> tuple[str, str | None]:
    """``'150.1.2.3'`` -> (``'150'``, ``'ABC'``); no suffix -> phases None."""
    parts = spec.strip().lower().split(".")
    phases = "".join("ABC"[int(p) - 1] for p in parts[1:] if p in ("1", "2", "3"))
    return parts[0], (phases or None) if len(parts) > 1 else None


def _phases(obj: DssObject, bus_spec: str) -> str:
    _, ph = _bus(bus_spec)
    if ph:
        return ph
    n = int(float(obj.props.get("phases", 3)))
    return "ABC"[: max(1, min(n, 3))]


def _truthy(value: str | None, default: bool = False) -> bool:
    return default if value is None else value.strip().lower() in _TRUE


def _float(obj: DssObject, key: str, default: float = math.nan) -> float:
    value = obj.props.get(key)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise OpenDSSError(f"{obj.where}: {obj.cls}.{obj.display}: {key}={value!r} is not a number") from None


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


def read_opendss(master: str | Path, anchor: tuple[float, float] | None = None, scale: float | None = None,
                 coords: str | Path | None = None, complete: bool = True, kw_per_customer: float = 5.0,
                 name: str | None = None, seed: int = 0) -> Network:
    """Import the feeder of ``master`` as a :class:`Network` (see the module docstring for every rule).

    ``anchor``/``scale`` place planar bus coordinates; ``coords`` names a bus-coordinate file; ``complete``
    applies :func:`complete_feeder`'s rules (service points, fuses, a recloser). ``seed`` only scatters service
    points around their transformer.
    """
    master = Path(master)
    model = parse(master, coords)
    edges, loads, sources = _edges(model, master)
    xy = _place(model, edges, loads, sources, anchor, scale, master)
    net_name = name or next((o.props.get("circuit") for o in model.of_class("vsource") if o.props.get("circuit")),
                            master.stem)
    has = {e.kind for e in edges}
    tables = _tables(edges, xy, sources, loads, net_name)
    net = Network.from_tables(tables, name=net_name)
    if complete:
        net = complete_feeder(net, loads, kw_per_customer=kw_per_customer, add_fuses="fuse" not in has,
                              add_recloser="recloser" not in has, seed=seed)
    net.notes = model.notes  # not a table: kept for the importer's report
    return net


def _edges(model: DssModel, master: Path) -> tuple[list[_Edge], list[dict], list[tuple[str, str]]]:
    edges: list[_Edge] = []
    regulated = {o.props.get("transformer", "").lower() for o in model.of_class("regcontrol")}
    for obj in model.of_class("line", "reactor"):
        if "bus2" not in obj.props or "bus1" not in obj.props:
            if obj.cls == "line":
                missing = "bus1" if "bus1" not in obj.props else "bus2"
                raise OpenDSSError(f"{obj.where}: Line.{obj.display}: {missing} is missing")
            continue  # a shunt reactor
        a, b = _bus(obj.props.get("bus1", ""))[0], _bus(obj.props["bus2"])[0]
        kind = "switch" if _truthy(obj.props.get("switch")) else "line"
        length = _float(obj, "length", math.nan) * _LENGTH_M.get(obj.props.get("units", "").lower(), math.nan)
        edges.append(_Edge(obj.display, a, b, kind, _phases(obj, obj.props.get("bus1", "")),
                           normally_open=not _truthy(obj.props.get("enabled"), True) or ("line", obj.name)
                           in model.opened, name=f"{obj.cls.title()}.{obj.display}", length_m=length))
    by_line = {e.name.split(".", 1)[1].lower(): e for e in edges}
    banks: dict[tuple[str, str, str], _Edge] = {}
    for obj in model.of_class("transformer"):
        buses = [b for b in obj.buses if b]
        names = list(dict.fromkeys(_bus(b)[0] for b in buses))
        if len(names) < 2:
            model.notes.append(f"{obj.where}: Transformer.{obj.display} has fewer than two buses; skipped")
            continue
        kind = "regulator" if obj.name in regulated else "transformer"
        a, b = names[0], names[1]
        bank = obj.props.get("bank", "")
        key = (min(a, b), max(a, b), kind)
        if key in banks:  # single-phase units of one bank (or parallel units) are one device here
            e = banks[key]
            e.phases = "".join(p for p in "ABC" if p in e.phases + _phases(obj, buses[0]))
            e.name += f"+{obj.display}"
            if bank and e.seg_id != bank:
                e.seg_id = bank
            continue
        e = _Edge(bank or obj.display, a, b, kind, _phases(obj, buses[0]),
                  normally_open=not _truthy(obj.props.get("enabled"), True), name=f"Transformer.{obj.display}")
        banks[key] = e
        edges.append(e)
    for obj in model.of_class("swtcontrol"):
        target = obj.props.get("switchedobj", "")
        line = by_line.get(target.split(".", 1)[-1].lower())
        if line is None:
            raise OpenDSSError(f"{obj.where}: SwtControl.{obj.display}: SwitchedObj={target!r} is not a line")
        line.kind = "switch"
        state = (obj.props.get("normal") or obj.props.get("state") or obj.props.get("action") or "c").lower()
        line.normally_open = line.normally_open or state.startswith("o")
    device_of = {"fuse": "fuse", "recloser": "recloser", "relay": "breaker"}
    for obj in model.of_class(*device_of):
        target = obj.props.get("monitoredobj") or obj.props.get("switchedobj") or ""
        line = by_line.get(target.split(".", 1)[-1].lower()) if target.lower().startswith("line.") else None
        if line is None:
            model.notes.append(f"{obj.where}: {obj.cls.title()}.{obj.display}: {target or 'no MonitoredObj'} is not "
                               "a line; skipped")
            continue
        kind = device_of[obj.cls]
        if line.kind == "switch":  # a switch line carrying the device: it is the device
            line.kind = kind
            line.name += f" ({obj.cls.title()}.{obj.display})"
            continue
        term = int(_float(obj, "monitoredterm", 1))
        _insert_device(edges, line, at=line.a if term == 1 else line.b, kind=kind, seg_id=obj.display,
                       synthesized=False, name=f"{obj.cls.title()}.{obj.display}")
    loads = []
    for obj in model.of_class("load"):
        bus_spec = obj.props.get("bus1", "")
        kw = _float(obj, "kw", math.nan)
        if math.isnan(kw):
            kw = _float(obj, "kva", 10.0) * _float(obj, "pf", 0.9)
        loads.append({"name": obj.display, "bus": _bus(bus_spec)[0], "kw": kw,
                      "phases": _phases(obj, bus_spec) if "." in bus_spec else "ABC"[: int(_float(obj, "phases", 3))]})
    sources = [(_bus(o.props.get("bus1", "sourcebus"))[0], o.props.get("circuit") or o.display)
               for o in model.of_class("vsource")]
    if not sources:
        raise OpenDSSError(f"{master.name}: no source (New Circuit... or New Vsource...) is defined")
    _resolve_dead_ends(model, edges, master)
    _merge_parallel(edges)
    return edges, loads, sources


def _resolve_dead_ends(model: DssModel, edges: list[_Edge], master: Path) -> None:
    """Lines to a dead-end bus without coordinates are normally-open ties (see the module docstring)."""
    degree: dict[str, int] = {}
    for e in edges:
        degree[e.a] = degree.get(e.a, 0) + 1
        degree[e.b] = degree.get(e.b, 0) + 1
    for e in list(edges):
        for end in ("a", "b"):
            bus = getattr(e, end)
            if bus in model.coords or degree.get(bus, 0) != 1:
                continue
            base = re.sub(r"[_-]?open$", "", bus)
            e.normally_open = True
            if base != bus and base in model.coords:
                setattr(e, end, base)
            else:
                edges.remove(e)
                model.notes.append(f"{master.name}: {e.name} ends at dead-end bus {bus!r} with no coordinates: "
                                   "treated as an open point and left out")
            break


def _merge_parallel(edges: list[_Edge]) -> None:
    """Parallel closed segments of one kind between the same buses (phases split over lines) become one."""
    seen: dict[tuple[str, str, str], _Edge] = {}
    for e in list(edges):
        key = (min(e.a, e.b), max(e.a, e.b), e.kind)
        if key in seen and not e.normally_open and not seen[key].normally_open:
            keep = seen[key]
            keep.phases = "".join(p for p in "ABC" if p in keep.phases + e.phases)
            keep.name += f"+{e.name}"
            edges.remove(e)
        else:
            seen.setdefault(key, e)


def _insert_device(edges: list[_Edge], line: _Edge, at: str, kind: str, seg_id: str, synthesized: bool,
                   name: str) -> None:
    """Put a device segment between bus ``at`` and ``line``, on a new node ``<at>~<seg_id>``."""
    mid = f"{at}~{seg_id.lower()}"
    if line.a == at:
        line.a = mid
    else:
        line.b = mid
    edges.append(_Edge(seg_id, at, mid, kind, line.phases, synthesized=synthesized, name=name, length_m=0.0))


def _place(model: DssModel, edges: list[_Edge], loads: list[dict], sources: list[tuple[str, str]],
           anchor: tuple[float, float] | None, scale: float | None, master: Path) -> dict[str, tuple[float, float]]:
    """lon/lat per bus (device nodes ``bus~dev`` sit on their bus)."""
    buses = {e.a for e in edges} | {e.b for e in edges} | {ld["bus"] for ld in loads} | {s for s, _ in sources}
    plain = {b.split("~", 1)[0] for b in buses}
    missing = sorted(plain - set(model.coords))
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise OpenDSSError(f"{master.name}: bus(es) without coordinates: {shown} (give a Buscoords file)")
    names = sorted(plain)
    xy = np.array([model.coords[b] for b in names], dtype=float)
    if anchor is None:
        if not model.latlon and not (np.all(np.abs(xy[:, 0]) <= 180) and np.all(np.abs(xy[:, 1]) <= 90)):
            raise OpenDSSError(f"{master.name}: bus coordinates look planar (x {xy[:, 0].min():g}..{xy[:, 0].max():g}, "
                               f"y {xy[:, 1].min():g}..{xy[:, 1].max():g}); give anchor LAT,LON and scale "
                               "(metres per unit) to place them")
        lonlat = xy
    else:
        lonlat = planar_to_lonlat(xy, anchor, 1.0 if scale is None else scale)
    pos = dict(zip(names, map(tuple, lonlat), strict=True))
    return {b: pos[b.split("~", 1)[0]] for b in buses}


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


def _tables(edges: list[_Edge], xy: dict[str, tuple[float, float]], sources: list[tuple[str, str]],
            loads: list[dict], net_name: str) -> dict[str, pd.DataFrame]:
    node_ids = sorted(xy)
    nodes = pd.DataFrame({"node_id": node_ids,
                          "geometry": shapely.points(np.array([xy[n] for n in node_ids]))})
    rows = [e.__dict__.copy() for e in edges]
    substations = []
    has_breaker_at = {e.a for e in edges if e.kind == "breaker"} | {e.b for e in edges if e.kind == "breaker"}
    extra_nodes = []
    for bus, circuit in dict(sources).items():  # one substation per source bus
        sub_id = f"SUB-{bus}"
        if bus in has_breaker_at:
            src = bus
        else:
            src = f"{bus}~sub"
            lon, lat = xy[bus]
            extra_nodes.append({"node_id": src, "geometry": shapely.Point(lon - 0.0002, lat)})  # ~15 m west
            rows.append(_Edge(f"BRK-{bus}", src, bus, "breaker", "ABC", synthesized=True,
                              name=f"feeder breaker of {circuit}", length_m=15.0).__dict__)
        substations.append({"substation_id": sub_id, "name": circuit, "source_node": src,
                            "geometry": shapely.Point(*xy[bus])})
    if extra_nodes:
        nodes = pd.concat([nodes, pd.DataFrame(extra_nodes)], ignore_index=True)
    seg = pd.DataFrame(rows).rename(columns={"seg_id": "segment_id", "a": "from_node", "b": "to_node"})
    return {"nodes": nodes, "segments": seg, "service_points": None, "substations": pd.DataFrame(substations)}


# -- completing a bare feeder -----------------------------------------------------------------------------------


def complete_feeder(net: Network, loads: list[dict], kw_per_customer: float = 5.0, add_fuses: bool = True,
                    add_recloser: bool = True, seed: int = 0) -> Network:
    """Add service points (from ``loads``), lateral fuses and a mid-feeder recloser by the module's rules."""
    from gis.topology import KIND_CODE, build

    rng = np.random.default_rng(seed)
    nodes = net.nodes.copy()
    seg = net.segments.copy()
    xy = dict(zip(nodes["node_id"], zip(nodes.geometry.x, nodes.geometry.y, strict=True), strict=True))
    low_side = _low_sides(seg)
    new_nodes, new_segs, sps = [], [], []
    for ld in loads:
        bus = ld["bus"]
        if bus in low_side:
            hang = bus
        else:
            hang = f"{bus}~lv-{ld['name'].lower()}"
            angle = rng.uniform(0, 2 * math.pi)
            lon, lat = _offset(xy[bus], 15.0, angle)
            xy[hang] = (lon, lat)
            new_nodes.append({"node_id": hang, "geometry": shapely.Point(lon, lat)})
            new_segs.append({"segment_id": f"T-{ld['name']}", "from_node": bus, "to_node": hang,
                             "kind": "transformer", "phases": ld["phases"], "synthesized": True,
                             "name": f"distribution transformer for Load.{ld['name']}", "length_m": 15.0})
        three_phase = len(ld["phases"]) == 3
        count = 1 if three_phase else max(1, round(ld["kw"] / kw_per_customer))
        for k in range(count):
            lon, lat = _offset(xy[hang], rng.uniform(10, 40), rng.uniform(0, 2 * math.pi))
            sps.append({"sp_id": f"SP-{ld['name']}-{k + 1}", "node_id": hang, "account": f"ACC-{ld['name']}-{k + 1}",
                        "meter": f"MTR-{ld['name']}-{k + 1}", "address": f"Bus {bus} service {k + 1}",
                        "customers": 1, "customer_class": "commercial" if three_phase else "residential",
                        "synthesized": True, "name": f"Load.{ld['name']} ({ld['kw']:g} kW)",
                        "geometry": shapely.Point(lon, lat)})
    nodes = pd.concat([nodes, pd.DataFrame(new_nodes)], ignore_index=True) if new_nodes else nodes
    seg = pd.concat([seg, pd.DataFrame(new_segs)], ignore_index=True) if new_segs else seg
    seg = seg.set_geometry([None] * len(seg), crs=net.segments.crs)  # redrawn straight by Network
    out = Network(nodes=nodes, segments=seg, service_points=pd.DataFrame(sps) if sps else None,
                  substations=net.substations, name=net.name)
    if not (add_fuses or add_recloser):
        return _with_feeders(out)
    topo = build(out, validate=False)
    three = seg["phases"].str.len().to_numpy() >= 3
    # a node is on the main line if the segment feeding it is three-phase (or it is a source)
    fed_by = topo.parent_seg
    main_node = np.where(fed_by >= 0, three[np.maximum(fed_by, 0)], True) & topo.energized
    inserts: list[tuple[int, int, str]] = []  # (segment, tap node index, kind)
    if add_fuses:
        for s in np.flatnonzero(~three & np.isin(topo.seg_kind, [KIND_CODE["line"], KIND_CODE["switch"]])):
            below = topo.device_below(int(s))
            if below < 0:
                continue
            tap = int(topo.parent_node[below])
            if main_node[tap] and topo.downstream_customers_node[below] > 0:
                inserts.append((int(s), tap, "fuse"))
    if add_recloser:
        heads = topo.feeder_heads()
        cand = np.flatnonzero(three & (topo.seg_kind == KIND_CODE["line"]))
        best: dict[int, tuple[float, int, int]] = {}
        for s in cand:
            below = topo.device_below(int(s))
            if below < 0 or heads[below] < 0:
                continue
            head = int(heads[below])
            total = topo.downstream_customers(head)
            if topo.downstream_customers_node[below] >= total:
                continue  # it would see exactly what the breaker sees
            score = abs(topo.downstream_customers_node[below] - total / 2)
            if head not in best or score < best[head][0]:
                best[head] = (score, int(s), int(topo.parent_node[below]))
        inserts += [(s, tap, "recloser") for _, s, tap in best.values()]
    seg_rows = seg.to_dict("records")
    added_nodes = []
    for s, tap, kind in inserts:
        row = seg_rows[s]
        tap_id = str(topo.node_ids[tap])
        dev_id = f"{kind[0].upper()}-{row['segment_id']}"
        mid = f"{tap_id}~{dev_id.lower()}"
        other = row["to_node"] if row["from_node"] == tap_id else row["from_node"]
        if row["from_node"] == tap_id:
            row["from_node"] = mid
        else:
            row["to_node"] = mid
        # the device sits a few metres into the line from the tap
        ax, ay = xy[tap_id]
        bx, by = xy[other]
        frac = min(0.2, 10.0 / max(_metres((ax, ay), (bx, by)), 1e-9))
        added_nodes.append({"node_id": mid, "geometry": shapely.Point(ax + (bx - ax) * frac, ay + (by - ay) * frac)})
        seg_rows.append({**{k: row[k] for k in ("phases", "feeder_id")}, "segment_id": dev_id, "from_node": tap_id,
                         "to_node": mid, "kind": kind, "normally_open": False, "synthesized": True,
                         "name": f"{kind} at the tap of {row['segment_id']}", "length_m": 0.0, "geometry": None})
    nodes = pd.concat([out.nodes, pd.DataFrame(added_nodes)], ignore_index=True) if added_nodes else out.nodes
    seg = pd.DataFrame(seg_rows)
    seg["geometry"] = None
    out = Network(nodes=nodes, segments=seg, service_points=out.service_points, substations=out.substations,
                  name=out.name)
    return _with_feeders(out)


def _low_sides(seg: pd.DataFrame) -> set[str]:
    """Buses on the load side of a modelled distribution transformer (the second bus, by OpenDSS convention)."""
    return set(seg.loc[seg["kind"] == "transformer", "to_node"])


def _with_feeders(net: Network) -> Network:
    """Set ``feeder_id`` to the breaker heading each segment's feeder, and fill unknown lengths from geometry."""
    from gis.topology import KIND_CODE, build

    topo = build(net, validate=False)
    heads = topo.feeder_heads()
    seg = net.segments
    ends = np.where(topo.parent_node[topo.seg_to] == topo.seg_from, topo.seg_to, topo.seg_from)
    head = heads[ends]
    breaker = topo.seg_kind == KIND_CODE["breaker"]
    head = np.where(breaker, np.arange(len(seg)), head)
    seg["feeder_id"] = np.where(head >= 0, topo.segment_ids[np.maximum(head, 0)], "")
    lengths = seg["length_m"].to_numpy(dtype=float, copy=True)
    unknown = np.isnan(lengths)
    if unknown.any():
        g = seg.geometry[unknown]
        lengths[unknown] = [_metres(*ln.coords[:2]) if ln is not None and len(ln.coords) >= 2 else np.nan
                            for ln in g]
        seg["length_m"] = lengths
    return net


def _offset(lonlat: tuple[float, float], metres: float, angle: float) -> tuple[float, float]:
    lon, lat = lonlat
    return (lon + metres * math.cos(angle) / (111_320 * math.cos(math.radians(lat))),
            lat + metres * math.sin(angle) / 110_540)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(min(1.0, h)))
