"""``oms demo``: the main job — the storm demo on the bundled sample territory (see :mod:`api.simulation.demo`).

``oms demo`` builds the sample territory, prints its summary, starts the service with SQLite in ``--out``, replays
a simulated storm in accelerated time with crews and notifications, prints the map URLs and a live status line,
and keeps serving until Ctrl-C. ``oms demo --headless --out DIR`` runs the same storm to the end, writes the map
snapshots and the post-event summary into DIR and exits (0 when every event was restored in time).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the storm demo on the bundled sample territory (service, maps, crews)")
    p.add_argument("--out", default="out/demo", help="folder for the database, logs, snapshots and summary "
                                                     "(default: out/demo)")
    p.add_argument("--headless", action="store_true",
                   help="run the storm to the end, write snapshots + summary into --out and exit (CI)")
    p.add_argument("--faults", type=int, default=12, help="independent faults in the storm (default 12)")
    p.add_argument("--call-rate", type=float, default=0.3, help="share of customers out who call (default 0.3)")
    p.add_argument("--no-ami", action="store_true", help="no smart-meter last gasps")
    p.add_argument("--speed", type=float, default=None,
                   help="storm seconds per real second (default 120; headless 3600). The storm is the same at "
                        "any speed: the demo runs on a storm clock")
    p.add_argument("--crews", type=int, default=6, help="line crews (default 6)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default 8000; headless: any free port")
    p.add_argument("--time-cap", type=float, default=600.0,
                   help="headless: stop waiting for restorations after this many seconds (default 600)")
    p.set_defaults(func=run)


def run(args) -> int:
    import os
    import sys
    from pathlib import Path

    from api.simulation.demo import DemoOptions, PortBusy, open_socket

    out = Path(args.out)
    options = DemoOptions(out=out, faults=args.faults, call_rate=args.call_rate, ami=not args.no_ami,
                          speed=args.speed or (3600.0 if args.headless else 120.0), seed=args.seed,
                          crews=args.crews, host=args.host,
                          port=args.port if args.port is not None else (0 if args.headless else 8000),
                          headless=args.headless, time_cap_s=args.time_cap)
    try:  # the port first: a busy one is said in one line, before the territory takes its seconds
        sock = open_socket(options.host, options.port)
    except PortBusy as exc:
        print(f"oms demo: {exc}", file=sys.stderr)
        return 2
    try:
        code = _run(options, out, sock)
    except KeyboardInterrupt:  # before the storm started: nothing to keep
        print("\nstopped", flush=True)
        code = 130
    if code == 130:
        # Ctrl-C: leave now rather than wait for the service's threads to wind down; nothing is lost (every
        # input was committed before its 202, and the journal makes a restart exact)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return code


def _run(options, out, sock) -> int:
    from api.commands.territory import _print_summary
    from api.simulation.demo import run_demo
    from data.sample import sample_territory
    from gis.io import write_territory

    out.mkdir(parents=True, exist_ok=True)
    net = sample_territory()
    path = out / "sample.gpkg"
    write_territory(net, path)
    print(f"sample territory written to {path}")
    _print_summary(net)
    return run_demo(options, net, sock=sock)
