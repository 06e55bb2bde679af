"""Hot standby: which of several ``oms serve`` processes on one PostgreSQL runs the live engine and re-planning.

Every process serves the API and commits intake (the database is the system of record, so an acknowledged report
never depends on which process took it). Exactly one — the holder of a PostgreSQL advisory lock, taken on a
connection of its own — feeds the engine, ticks it and re-plans. The lock belongs to that connection's session:
when the leader dies (kill -9, a crash, a lost network) PostgreSQL ends the session and releases the lock, and a
standby polling ``pg_try_advisory_lock`` takes it within ``leader_poll_s`` and rebuilds the engine from the
journal. A leader that loses its lock connection steps down at once (another process may already lead).
"""

from __future__ import annotations

import contextlib
import logging
import threading

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

log = logging.getLogger("oms.standby")


class LeaderElection:
    """Holds (or waits for) the advisory lock ``key`` on its own connection; calls ``on_elected()`` when it gets
    the lock and ``on_lost()`` when it loses it, both from its own thread."""

    def __init__(self, url: str, key: int, poll_s: float, on_elected, on_lost) -> None:
        self.key, self.poll_s = key, poll_s
        self.on_elected, self.on_lost = on_elected, on_lost
        # NullPool: the session holding the lock is this one connection, never handed to anyone else
        self._engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._conn = None
        self.leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def try_once(self) -> bool:
        """Take the lock if it is free (on the caller's thread; used once at start). True: we lead."""
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            if self.leader:
                self._conn.execute(text("SELECT 1"))  # still our session, so still our lock
                return True
            got = bool(self._conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}))
        except Exception as exc:  # noqa: BLE001 - no database, no lock: follow, and try again
            log.warning("leader lock check failed: %s", type(exc).__name__)
            self._drop_connection()
            return False
        if got:
            self.leader = True
        return got

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="oms-leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._drop_connection()  # releases the lock at once: a clean stop hands over without waiting
        self._engine.dispose()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            was = self.leader
            now = self.try_once()
            if now and not was:
                log.warning("elected leader: this process now runs the live engine")
                self._call(self.on_elected)
            elif was and not now:
                log.error("lost the leader lock (its connection failed): stepping down")
                self.leader = False
                self._call(self.on_lost)

    def _call(self, fn) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the election must keep running whatever the engine does
            log.exception("leader hand-over callback failed")

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken
                self._conn.close()
            self._conn = None
        if self.leader:
            self.leader = False
