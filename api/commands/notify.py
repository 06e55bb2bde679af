"""``oms notify``: customer notifications (acknowledgments, proactive notices, ETA/ETR, restoration).

    oms notify worker [--database-url URL] [--territory GPKG] [--plan] [--log-channel] [--id ID] [--log-level L]
                      [--processes N]

``worker`` delivers the transactional outbox until SIGTERM/SIGINT (see :mod:`api.notify.worker`). Run as many
worker processes as you like against one PostgreSQL database: rows are claimed with ``FOR UPDATE SKIP LOCKED``, and a
row a dead worker held goes back to pending after its lease. Add ``--plan`` to exactly one of them: it also turns
event changes into notifications (proactive notices downstream of an outage, crew ETA, ETR updates, restoration),
with ``--territory`` for who is downstream. ``--log-channel`` is a dry run for demos: SMS and email messages are
written to the log instead of sent.

Each process sends e-mail (and any channel not in ``OMS_NOTIFY_IDEMPOTENT_CHANNELS``) one message at a time, so that
a killed process re-sends at most one message a person could receive twice; ``--processes N`` runs N such processes
under one command (the first of them plans, with ``--plan``), stops them together on SIGTERM, and starts a
replacement for one that dies.

Providers and limits come from the environment (``OMS_NOTIFY_*``, :mod:`api.notify.config`), for example::

    OMS_NOTIFY_SMTP_HOST=mail.example.org OMS_NOTIFY_SMS_URL=https://sms.example.com/send \\
        oms notify worker --database-url postgresql://oms@db/oms --plan --territory territory.gpkg
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notify", help="customer notifications: run the delivery worker")
    nsub = p.add_subparsers(dest="notify_command", required=True, metavar="NOTIFY")
    worker = nsub.add_parser("worker", help="deliver notifications from the outbox (SMTP, SMS gateway, webhook)",
                             description="Deliver notifications from the outbox until SIGTERM or SIGINT.")
    add_worker_arguments(worker)
    worker.set_defaults(func=_worker)


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    """The worker's options; kept here, free of heavy imports, so that ``oms --help`` stays quick."""
    p.add_argument("--database-url", default=None, help="default: OMS_DATABASE_URL")
    p.add_argument("--territory", help="territory GeoPackage, for proactive notices downstream of an outage "
                                       "(with --plan)")
    p.add_argument("--plan", action="store_true",
                   help="also turn event changes into notifications (run it in one process only)")
    p.add_argument("--log-channel", action="store_true",
                   help="dry run: write SMS and email messages to the log instead of sending them (demos)")
    p.add_argument("--id", help="worker id (default host:pid)")
    p.add_argument("--log-level", default="info", help="debug, info, warning, error (default: info)")
    p.add_argument("--processes", type=_positive, default=1,
                   help="worker processes to run (default 1); e-mail throughput grows with them")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 64, got {text!r}")
    return n


def _worker(args: argparse.Namespace) -> int:
    if args.processes > 1:
        return _supervise(args)
    from api.notify.worker import serve

    return serve(args)


def _supervise(args: argparse.Namespace) -> int:
    """Run ``args.processes`` single worker processes until SIGTERM/SIGINT; replace one that dies."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    base = args.id or f"{socket.gethostname()}:{os.getpid()}"

    def command(i: int) -> list[str]:
        cmd = [sys.executable, "-m", "api.commands", "notify", "worker", "--id", f"{base}/{i}",
               "--log-level", args.log_level]
        for flag, value in (("--database-url", args.database_url), ("--territory", args.territory)):
            if value:
                cmd += [flag, value]
        if args.log_channel:
            cmd.append("--log-channel")
        if args.plan and i == 0:
            cmd.append("--plan")
        return cmd

    def start(i: int) -> subprocess.Popen:
        # the children end with this process, even when it is killed (PR_SET_PDEATHSIG on Linux)
        return subprocess.Popen(command(i), preexec_fn=_die_with_parent)  # noqa: PLW1509

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    procs = [start(i) for i in range(args.processes)]
    started = [time.monotonic()] * len(procs)
    failed = 0
    while not stopping:
        for i, proc in enumerate(procs):
            if proc.poll() is not None and not stopping:
                if time.monotonic() - started[i] < 10:  # dies at once (bad settings, no database): no restart loop
                    print(f"oms notify worker: process {i} exited with status {proc.returncode} right after "
                          "starting; stopping the others", file=sys.stderr)
                    stopping.append(True)
                    failed = 1
                    break
                print(f"oms notify worker: process {i} exited with status {proc.returncode}; starting another",
                      file=sys.stderr)
                procs[i], started[i] = start(i), time.monotonic()
        time.sleep(0.5)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            failed |= proc.wait(timeout=30) not in (0, -signal.SIGTERM)  # one still starting ends by the signal
        except subprocess.TimeoutExpired:
            proc.kill()
            failed = 1
    return 1 if failed else 0


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the children outlive a killed supervisor, and still deliver
        pass
