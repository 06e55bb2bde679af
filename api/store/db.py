"""Database engines and sessions: SQLite (WAL) by default, PostgreSQL by URL.

SQLite is opened in WAL mode with ``synchronous=NORMAL`` (a committed transaction survives a killed process; only a
power cut can lose the last few), foreign keys on and a busy timeout. Write transactions start with
``BEGIN IMMEDIATE`` so that two writers queue on the lock instead of failing when a read lock would have to be
upgraded; reads use a separate engine with plain ``BEGIN`` so they never wait for the writer (WAL snapshots).
PostgreSQL goes through psycopg 3 and uses one engine for both.

:meth:`Database.change_stamp` tells a reader whether anything was committed since it last looked, by any thread or
process, for the price of one tiny query: a cache of what it read (the maps' state) is reused while it is unchanged.
"""

from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, immediate: bool = True, echo: bool = False) -> Engine:
    """An engine for ``url``. For SQLite, ``immediate`` selects ``BEGIN IMMEDIATE`` (writers) over ``BEGIN``."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy's ArgumentError: say which setting is wrong
        raise ValueError(f"database URL {url!r} is not valid: {exc}") from None
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True)
    if parsed.database in (None, "", ":memory:"):
        raise ValueError(
            "database URL: use a SQLite file (sqlite:///oms.db), not an in-memory database; "
            "the service's threads and restarts must share it"
        )
    engine = create_engine(
        url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8, max_overflow=16
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
    event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # pysqlite would defer BEGIN; the engine's "begin" hook issues it
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Database:
    """The service's handle on its database: ``write()`` and ``read()`` session factories."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, immediate=True, echo=echo)
        self.dialect = self.engine.dialect.name
        self.read_engine = (
            make_engine(self.url, immediate=False, echo=echo) if self.dialect == "sqlite" else self.engine
        )
        self.write: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self.read: sessionmaker[Session] = sessionmaker(self.read_engine, expire_on_commit=False)
        self._stamp_lock = threading.Lock()
        self._stamp_conn: sqlite3.Connection | None = None
        self._disposed = False

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def change_stamp(self) -> object | None:
        """A value that changes whenever a transaction that wrote anything commits (or, on PostgreSQL, starts
        writing), from any connection or process: equal stamps mean nothing was committed in between, so a cache
        of what was read after the first stamp is still current. Read it *before* reading what it guards. None
        when the database cannot say (then assume a change).

        SQLite: ``PRAGMA data_version`` on a connection of its own, which never writes (the pragma counts the
        commits of every other connection). PostgreSQL: the current snapshot (``xmin:xmax:in-progress``), which
        moves when a transaction is given an id (its first write) and again when it ends; other databases of the
        same server move it too, which costs an unneeded re-read, never a missed one."""
        try:
            if self.is_sqlite:
                with self._stamp_lock:
                    if self._disposed:
                        return None
                    if self._stamp_conn is None:
                        self._stamp_conn = sqlite3.connect(
                            make_url(self.url).database, check_same_thread=False
                        )
                    return self._stamp_conn.execute("PRAGMA data_version").fetchone()[0]
            if self.dialect == "postgresql":
                with self.engine.connect() as conn:
                    return conn.execute(text("SELECT pg_current_snapshot()::text")).scalar()
        except Exception:  # noqa: BLE001 - a stamp is an optimisation: without one the reader just reads again
            return None
        return None

    def dispose(self) -> None:
        """Close every pooled connection, for good. A thread that outlives the service (a map warm-up, a worker
        that missed its stop) then gets an error instead of opening a connection nobody will ever close: on
        PostgreSQL those piled up until the server refused new clients."""
        with self._stamp_lock:
            self._disposed = True
            if self._stamp_conn is not None:
                self._stamp_conn.close()
                self._stamp_conn = None
        for engine in {self.engine, self.read_engine}:
            engine.dispose()
            if not event.contains(engine, "do_connect", _refuse_after_dispose):
                event.listen(engine, "do_connect", _refuse_after_dispose)


def _refuse_after_dispose(dialect, conn_rec, cargs, cparams):
    raise RuntimeError("this database handle was disposed (the service has stopped)")
