"""The acceptance journal: a provider's acceptance written down at once, its commit to the database batched.

A channel without idempotency keys (e-mail) may have only one message per worker process accepted by its provider
but not yet recorded: that is what a killed worker can make a person receive twice. Recording each acceptance in
its own database transaction keeps that promise, but on SQLite (one writer for every process of the service) those
transactions queue behind each other and bound e-mail throughput. So, on SQLite, an acceptance is first appended to
this process's journal file (one ``write`` of one line, under the same lock as the acceptance) and committed later
with many others in one transaction by the worker's recorder.

A line written survives a killed process (it is in the kernel's page cache; like SQLite's ``synchronous=NORMAL``,
only a power cut can lose the last few). Each live worker holds an exclusive ``flock`` on its journal, so a journal
nobody holds belongs to a dead worker: :func:`recover` (run by every worker before it returns expired claims to
pending) marks that worker's still-claimed rows whose acceptance the journal holds as sent, records each acceptance
once, and deletes the journal. A clean shutdown deletes its own journal once every result is committed.

The journal lives beside the SQLite file (``<database>.notify-journal/``): every worker of a SQLite database is on
its machine. PostgreSQL workers may run on several machines and commit each acceptance as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert, update

from api.notify.models import NotifyDelivery, ledger_upsert
from api.store.models import OutboxMessage

log = logging.getLogger("oms.notify.journal")
SUFFIX = ".journal"
#: A journal with this many lines is emptied (but its header) when every acceptance in it is committed.
ROTATE_LINES = 10_000


def default_dir(db_url: str) -> Path | None:
    """The journal directory of a SQLite database URL (``sqlite:///path``), else None."""
    if not db_url.startswith("sqlite:///"):
        return None
    return Path(db_url[len("sqlite:///") :].split("?", 1)[0] + ".notify-journal")


class Journal:
    """This process's journal: ``append`` an acceptance, ``close`` (deleting it when nothing is left unrecorded)."""

    def __init__(self, directory: Path, worker_id: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', worker_id)}-{os.getpid()}-{time.time_ns()}"
        tmp = directory / f"{stem}.new"
        self.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(
            self.fd, fcntl.LOCK_EX
        )  # held for life; taken before the name says "journal" (see recover)
        self.header = (json.dumps({"worker": worker_id}) + "\n").encode()
        os.write(self.fd, self.header)
        self.path = directory / f"{stem}{SUFFIX}"
        os.replace(tmp, self.path)
        self.unrecorded = 0  # acceptances whose commit failed: the journal must outlive this process
        self.pending = self.lines = 0  # appended and not yet committed; appended since the last truncation
        self._lock = threading.Lock()

    def append(self, row_id: int, key: str, provider_id: str | None, attempt: int, channel: str,
               ack: tuple[str, str, datetime | None, str] | None = None) -> None:
        """One acceptance, in one ``write`` (a killed process leaves whole lines only). ``ack``: an acknowledgment's
        (audience, event, ETR, digest), the ETR it stated, which is then not news to that person (the ledger)."""
        if ack is not None:
            ack = (ack[0], ack[1], ack[2].isoformat() if ack[2] is not None else None, ack[3])
        line = (json.dumps([row_id, key, provider_id, attempt, channel, ack]) + "\n").encode()
        with self._lock:
            os.write(self.fd, line)
            self.pending += 1
            self.lines += 1

    def committed(self, n: int) -> None:
        """``n`` appended acceptances are in the database now; once none is left, a long journal starts over."""
        with self._lock:
            self.pending -= n
            if self.pending == 0 and not self.unrecorded and self.lines >= ROTATE_LINES:
                os.ftruncate(self.fd, len(self.header))
                self.lines = 0

    def close(self) -> None:
        """Release the journal; delete it unless a result in it may be uncommitted (then :func:`recover` takes it)."""
        if self.fd < 0:
            return
        if not self.unrecorded:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)
        self.fd = -1


def _read(path: Path) -> tuple[str | None, list[list]]:
    worker, entries = None, []
    for n, line in enumerate(path.read_bytes().split(b"\n")):
        try:
            value = json.loads(line)
        except ValueError:
            continue  # an empty last line
        if n == 0 and isinstance(value, dict):
            worker = value.get("worker")
        elif isinstance(value, list) and len(value) in (5, 6):
            entries.append(value[:5] + [value[5] if len(value) == 6 else None])
    return worker, entries


def recover(db, directory: Path | None, now: datetime) -> int:
    """Apply the journals of dead workers: each acceptance of a row still claimed by that worker becomes ``sent``
    with one delivery record. Returns how many rows were marked sent."""
    if directory is None or not directory.is_dir():
        return 0
    marked = 0
    for path in directory.glob("*.new"):  # a worker that died while creating its journal: nothing in it yet
        _unlink_if_free(path)
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # another worker recovered it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its worker is alive
            if not path.exists():
                continue  # recovered meanwhile
            worker, entries = _read(path)
            if entries:
                marked += _apply(db, worker, entries, now)
            path.unlink()
            log.info("recovered %s: %d acceptances, %d rows marked sent", path.name, len(entries), marked)
        finally:
            os.close(fd)
    return marked


def _unlink_if_free(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink(missing_ok=True)
    except BlockingIOError:
        pass  # being created
    finally:
        os.close(fd)


def _apply(db, worker: str | None, entries: list[list], now: datetime) -> int:
    marked = 0
    with db.write() as session, session.begin():
        conn = session.connection()
        ledger = []
        for row_id, key, provider_id, attempt, channel, ack in entries:
            rows = conn.execute(
                update(OutboxMessage.__table__)
                .where(
                    OutboxMessage.__table__.c.id == row_id,
                    OutboxMessage.__table__.c.idempotency_key == key,
                    OutboxMessage.__table__.c.status == "claimed",
                    OutboxMessage.__table__.c.claimed_by == worker,
                )
                .values(status="sent", sent_at=now, last_error=None, channel=channel)
            ).rowcount
            if rows:  # still claimed: its result was never committed, so this is its only record
                conn.execute(
                    insert(NotifyDelivery.__table__).values(
                        outbox_id=row_id,
                        idempotency_key=key,
                        attempt=attempt,
                        channel=channel,
                        worker=worker or "?",
                        outcome="accepted",
                        provider_id=provider_id,
                        error="recorded from the journal of a dead worker",
                        latency_ms=0.0,
                        at=now,
                    )
                )
                marked += 1
                if ack:  # the ETR the acknowledgment stated, as the recorder would have noted it
                    audience, event_id, etr, digest = ack
                    ledger.append({"audience": audience, "event_id": event_id, "kind": "etr_update", "digest": digest,
                                   "etr": datetime.fromisoformat(etr) if etr else None, "outbox_id": None, "at": now})
        if ledger:
            conn.execute(ledger_upsert(conn.dialect.name), ledger)
    return marked
