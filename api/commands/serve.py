"""``oms serve``, ``oms db upgrade|current``, ``oms users add|passwd|disable|enable|list``, ``oms storm``: running the service."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the OMS service (FastAPI on uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--database-url", help="default: OMS_DATABASE_URL or sqlite:///oms.db")
    p.add_argument("--territory", help="territory GeoPackage (default: OMS_TERRITORY)")
    p.add_argument("--no-upgrade", action="store_true", help="do not migrate the database to the latest schema")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_serve)

    db = sub.add_parser("db", help="database schema (Alembic migrations)")
    dsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dsub.add_parser("upgrade", help="migrate the database to the latest schema (from empty if need be)")
    up.add_argument("--database-url")
    up.add_argument("--revision", default="head")
    up.set_defaults(func=_upgrade)
    cur = dsub.add_parser("current", help="print the database's schema revision")
    cur.add_argument("--database-url")
    cur.set_defaults(func=_current)

    users = sub.add_parser("users", help="users and API tokens")
    usub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = usub.add_parser("add", help="add a user and print its token (shown once; stored hashed)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["member", "crew", "integration", "dispatcher", "admin"])
    add.add_argument("--crew", help="crew id (role crew); the crew is created if it does not exist")
    add.add_argument("--password-stdin", action="store_true",
                     help="read a password for the console sign-in from standard input (first line)")
    add.add_argument("--database-url")
    add.set_defaults(func=_add_user)
    pw = usub.add_parser("passwd", help="set a user's console password (read from standard input, first line)")
    pw.add_argument("name")
    pw.add_argument("--database-url")
    pw.set_defaults(func=_passwd)
    for action, text in (("disable", "disable a user: its tokens stop working at once (within 30 s in a "
                                     "running service)"), ("enable", "enable a disabled user again")):
        p_ = usub.add_parser(action, help=text)
        p_.add_argument("name")
        p_.add_argument("--database-url")
        p_.set_defaults(func=_set_disabled, disabled=action == "disable")
    ls = usub.add_parser("list", help="users: role, crew, disabled, live tokens")
    ls.add_argument("--database-url")
    ls.set_defaults(func=_list_users)

    storm = sub.add_parser("storm", help="replay a simulated storm against a running service through its API")
    storm.add_argument("territory", help="the territory GeoPackage the service runs on")
    storm.add_argument("--url", default="http://127.0.0.1:8000")
    storm.add_argument("--token", default=os.environ.get("OMS_TOKEN"),
                       help="an integration token (default: OMS_TOKEN)")
    storm.add_argument("--faults", type=int, default=20)
    storm.add_argument("--call-rate", type=float, default=0.3)
    storm.add_argument("--ami", action="store_true", help="also send AMI last gasps")
    storm.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    storm.add_argument("--concurrency", type=int, default=16)
    storm.add_argument("--seed", type=int, default=1)
    storm.set_defaults(func=_storm)


def _url(args) -> str:
    from api.settings import Settings

    return args.database_url or Settings().database_url


def _serve(args) -> int:
    import logging

    import uvicorn

    from api.settings import Settings
    from api.store.migrate import upgrade
    from api.web.app import create_app
    from api.web.limits import guarded_protocol
    from gis.validate import read_valid_territory

    overrides = {k: v for k, v in (("database_url", args.database_url), ("territory", args.territory)) if v}
    settings = Settings(**overrides)
    # read and validated before anything starts: a bad territory stops here with one line, not a traceback from
    # inside the server's startup
    network = read_valid_territory(settings.territory) if settings.territory else None
    if not args.no_upgrade:
        upgrade(settings.database_url)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"OMS service on http://{args.host}:{args.port}  (docs: /docs, database: {settings.database_url})",
          flush=True)
    # Our own protocol class bounds header time and connections per client; X-Forwarded-For is read by the app
    # (api.web.limits.EdgeGuard) from the proxies named in settings only, so uvicorn's own reading is off.
    # SIGTERM: stop accepting, give open requests (and SSE streams) shutdown_grace_s, then stop the workers.
    # freeze_heap: no full garbage collection walks the territory again once it is loaded (see create_app)
    uvicorn.run(create_app(settings, network=network, freeze_heap=True), host=args.host, port=args.port,
                log_level=args.log_level,
                access_log=False, http=guarded_protocol(settings), proxy_headers=False,
                timeout_keep_alive=settings.keep_alive_s, timeout_graceful_shutdown=settings.shutdown_grace_s)
    return 0


def _upgrade(args) -> int:
    from api.store.migrate import current, upgrade

    url = _url(args)
    upgrade(url, args.revision)
    print(f"database at revision {current(url)}")
    return 0


def _current(args) -> int:
    from api.store.migrate import current, head

    rev = current(_url(args))
    print(f"{rev or '(empty)'}{'' if rev == head() else f'  (latest is {head()}; run oms db upgrade)'}")
    return 0


@contextmanager
def _database(args) -> Iterator:
    """The database the command names, disposed of afterwards."""
    from api.store.db import Database

    db = Database(_url(args))
    try:
        yield db
    finally:
        db.dispose()


def _add_user(args) -> int:
    from api.store.models import Crew
    from api.web.auth import create_user, set_password

    if args.role == "crew" and not args.crew:
        raise ValueError("--crew is required for role crew")
    with _database(args) as db, db.write() as session, session.begin():
        if args.crew and session.get(Crew, args.crew) is None:
            session.add(Crew(id=args.crew, name=args.crew, skills=["line"]))
            print(f"created crew {args.crew!r} (skills: line; set the rest with PUT /crews/{args.crew})")
        user, token = create_user(session, args.name, args.role, args.crew)
        if args.password_stdin:
            set_password(session, args.name, _read_password())
    print(f"user {user.name!r} ({user.role}) token: {token}")
    return 0


def _read_password() -> str:
    """The first line of standard input (never an argument: arguments show in ``ps`` and shell histories)."""
    import sys

    return sys.stdin.readline().rstrip("\r\n")


def _passwd(args) -> int:
    from api.web.auth import set_password

    password = _read_password()
    with _database(args) as db, db.write() as session, session.begin():
        set_password(session, args.name, password)
    print(f"password set for user {args.name!r}")
    return 0


def _set_disabled(args) -> int:
    from sqlalchemy import select

    from api.store.models import User

    with _database(args) as db, db.write() as session, session.begin():
        user = session.scalar(select(User).where(User.name == args.name))
        if user is None:
            raise ValueError(f"no user {args.name!r} (see: oms users list)")
        user.disabled = args.disabled
    print(f"user {args.name!r} {'disabled' if args.disabled else 'enabled'}")
    return 0


def _list_users(args) -> int:
    from sqlalchemy import func, or_, select

    from api.store.models import ApiToken, User, utcnow

    with _database(args) as db, db.read() as session:
        live = (select(ApiToken.user_id, func.count().label("n")).where(
            ApiToken.revoked_at.is_(None), or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > utcnow()))
            .group_by(ApiToken.user_id).subquery())
        rows = session.execute(select(User, func.coalesce(live.c.n, 0)).outerjoin(live, live.c.user_id == User.id)
                               .order_by(User.id)).all()
    print(f"{'id':>4}  {'name':<24} {'role':<12} {'crew':<10} {'state':<9} live tokens")
    for user, n in rows:
        print(f"{user.id:>4}  {user.name:<24} {user.role:<12} {user.crew_id or '-':<10} "
              f"{'disabled' if user.disabled else 'active':<9} {n}")
    return 0


def _storm(args) -> int:
    from api.simulation.storm import replay

    if not args.token:
        raise ValueError("--token (or OMS_TOKEN) is required: an integration token from `oms users add`")
    summary = replay(args.territory, url=args.url, token=args.token, faults=args.faults, call_rate=args.call_rate,
                     ami=args.ami, speed=args.speed, concurrency=args.concurrency, seed=args.seed)
    for k, v in summary.items():
        print(f"{k:>22}: {v}")
    return 0
