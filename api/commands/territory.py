"""``oms territory``: import, generate, sample, info."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("territory", help="build, import and inspect territories (GeoPackage)")
    tsub = p.add_subparsers(dest="territory_command", required=True, metavar="ACTION")

    imp = tsub.add_parser("import", help="import a territory from OpenDSS, GeoJSON, CSV or GeoPackage")
    imp.add_argument("path", help="input file (for OpenDSS: the master .dss file; for geojson/csv: a folder or file)")
    imp.add_argument("--format", required=True, choices=["opendss", "geojson", "csv", "gpkg", "shapefile"])
    imp.add_argument("--anchor", help="LAT,LON where the centre of planar bus coordinates is placed (OpenDSS)")
    imp.add_argument("--scale", type=float, help="metres per coordinate unit for planar coordinates (OpenDSS; default: "
                     "inferred from the model, and said in the report)")
    imp.add_argument("--column", action="append", default=[], metavar="TABLE.FIELD=SOURCE",
                     help="override one column mapping, e.g. service_points.account=ACCT_NO (repeatable)")
    imp.add_argument("--mapping", metavar="FILE",
                     help="mapping file (TOML or YAML): source columns and values per table (see gis.mapping)")
    imp.add_argument("--allow-invalid", action="store_true",
                     help="write the territory even when validation finds problems (they are still listed)")
    imp.add_argument("-o", "--out", required=True, help="output GeoPackage")
    imp.set_defaults(func=_import)

    gen = tsub.add_parser("generate", help="generate a synthetic territory of any size on a road grid")
    gen.add_argument("--customers", type=int, required=True)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("-o", "--out", required=True)
    gen.set_defaults(func=_generate)

    smp = tsub.add_parser("sample", help="build the bundled sample territory (real roads north of Bayreuth)")
    smp.add_argument("-o", "--out", required=True)
    smp.add_argument("--seed", type=int, default=1)
    smp.set_defaults(func=_sample)

    info = tsub.add_parser("info", help="counts and validation result of a territory GeoPackage")
    info.add_argument("file")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_info)


def _import(args) -> int:
    import sys

    from gis.io import SourceProblems, import_territory, parse_column_overrides, write_territory
    from gis.validate import ValidationReport, group_lines

    anchor = None
    if args.anchor:
        try:
            lat, lon = (float(x) for x in args.anchor.split(","))
        except ValueError:
            raise ValueError(f"--anchor: expected LAT,LON, got {args.anchor!r}") from None
        anchor = (lat, lon)
    try:
        net = import_territory(args.path, args.format, anchor=anchor, scale=args.scale,
                               columns=parse_column_overrides(args.column), mapping=args.mapping)
    except SourceProblems as exc:  # every unknown value of every table, grouped: one run fixes them all
        print(f"oms: error: {args.path}: {len(exc.problems)} problem(s) in the source data; nothing written",
              file=sys.stderr)
        for line in group_lines(ValidationReport(exc.problems).groups()):
            print(f"  {line}", file=sys.stderr)
        return 2
    summary = territory_report(net)
    if summary["valid"] or args.allow_invalid:
        write_territory(net, args.out)
        print(f"wrote {args.out}" + ("" if summary["valid"] else " (invalid: --allow-invalid)"))
    else:
        print(f"nothing written: {args.path} is not a valid territory (--allow-invalid writes it anyway)")
    for note in getattr(net, "notes", []):
        print(f"note: {note}")
    _print_summary(net, summary)
    return 0 if summary["valid"] else 1


def _generate(args) -> int:
    from data.synthetic import generate_territory
    from gis.io import write_territory

    net = generate_territory(customers=args.customers, seed=args.seed, progress=True)
    write_territory(net, args.out, progress=True)
    print(f"wrote {args.out}")
    _print_summary(net)
    return 0


def _sample(args) -> int:
    from data.sample import sample_territory
    from gis.io import write_territory

    net = sample_territory(seed=args.seed)
    write_territory(net, args.out)
    print(f"wrote {args.out}")
    _print_summary(net)
    return 0


def _info(args) -> int:
    from gis.io import read_territory

    net = read_territory(args.file)
    summary = territory_report(net)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(net, summary)
    return 0 if summary["valid"] else 1


def territory_report(net) -> dict:
    """The summary plus the validation result: every problem, the problems grouped by kind (count and first
    examples), and what is de-energized by design (behind normally open or out-of-service elements)."""
    from gis.validate import validation_report

    summary = net.summary()
    report = validation_report(net)
    summary["valid"] = report.valid
    summary["problems"] = [str(p) for p in report.problems]
    summary["problem_groups"] = report.groups()
    summary["deenergized_by_design"] = report.deenergized
    return summary


def _print_summary(net, summary: dict | None = None) -> None:
    s = summary or territory_report(net)
    width = 28
    print(f"territory {s['name']}")
    for key in ("substations", "feeders", "transformers", "service_points", "customers", "placed_nodes",
                "normally_open_points",
                "depots", "road_nodes", "road_edges", "synthesized_elements"):
        print(f"  {key.replace('_', ' '):<{width}}{s[key]:>12,}")
    print("  devices by kind")
    for k, v in s["devices_by_kind"].items():
        print(f"    {k:<{width - 2}}{v:>12,}")
    print("  critical sites")
    for k, v in s["critical_sites"].items():
        print(f"    {k.replace('_', ' '):<{width - 2}}{v:>12,}")
    for d in s.get("defaulted_columns", []):
        column, _, value = d.partition("=")
        print(f"  note: the source has no {column} column: every row got the default {value!r}")
    dead = s.get("deenergized_by_design") or {}
    if dead.get("nodes"):
        print(f"  de-energized by design: {dead['nodes']:,} node(s), {dead['segments']:,} segment(s), "
              f"{dead['customers']:,} customer(s) behind {', '.join(dead['behind'][:10]) or '-'}"
              + (f" (feeders {', '.join(dead['feeders'][:10])})" if dead["feeders"] else ""))
    if s["valid"]:
        print("  validation                          ok")
    else:
        groups = s.get("problem_groups", [])
        print(f"  validation                      FAILED ({len(s['problems'])} problem(s) of {len(groups)} kind(s))")
        from gis.validate import group_lines

        for line in group_lines(groups):
            print(f"    {line}")
