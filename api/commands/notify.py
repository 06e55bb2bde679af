"""``oms notify``: customer notifications (acknowledgments, proactive notices, ETA/ETR, restoration).

    oms notify worker [--database-url URL] [--territory GPKG] [--plan] [--log-channel] [--id ID] [--log-level L]

``worker`` delivers the transactional outbox until SIGTERM/SIGINT (see :mod:`api.notify.worker`). Run as many
worker processes as you like against one PostgreSQL database: rows are claimed with ``FOR UPDATE SKIP LOCKED``, and a
row a dead worker held goes back to pending after its lease. Add ``--plan`` to exactly one of them: it also turns
event changes into notifications (proactive notices downstream of an outage, crew ETA, ETR updates, restoration),
with ``--territory`` for who is downstream. ``--log-channel`` is a dry run for demos: SMS and email messages are
written to the log instead of sent.

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


def _worker(args: argparse.Namespace) -> int:
    from api.notify.worker import serve

    return serve(args)
