"""``oms demo``: the main job. For now: build the sample territory and print its summary.

Later issues grow this into the storm demo with the live map.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the demo on the bundled sample territory")
    p.add_argument("--out", default="out", help="folder for the demo's files (default: out)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from api.commands.territory import _print_summary
    from data.sample import sample_territory
    from gis.io import write_territory

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = sample_territory()
    path = out / "sample.gpkg"
    write_territory(net, path)
    print(f"sample territory written to {path}")
    _print_summary(net)
    return 0
