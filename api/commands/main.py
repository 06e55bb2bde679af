"""The ``oms`` command line. Each command group lives in ``api/commands/<group>.py`` with a ``register``.

Errors a user can fix (a bad file, a missing column, an unknown id) print one line naming the file, element and
problem, and exit with status 2. The command names and options are a contract: scripts depend on them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from api.commands import demo, notify, report, serve, simulate, territory

COMMAND_GROUPS = [territory, demo, report, serve, simulate, notify]


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oms", description="Outage management and crew dispatch")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (CLIError, ValueError, KeyError, FileNotFoundError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"oms: error: {msg}", file=sys.stderr)
        return 2


