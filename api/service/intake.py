"""Durable intake with group commit: a report is answered 202 only after the transaction holding it — and its
acknowledgment outbox row — has committed.

Requests hand their rows to one writer thread, which commits whatever has queued up (up to ``batch_max``) in a
single transaction and then wakes every waiting request. Under load this turns 1,000 commits per second into a few
dozen, which is how one process on two cores keeps p99 latency low on PostgreSQL and SQLite alike, without
weakening the guarantee: no request is answered before its own commit. Committed rows are then handed to
``on_committed`` (the live engine's queue).

Idempotency: ``(client_id, idempotency_key)`` is unique in the database; a repeat returns the first report's
reference with ``duplicate = True``, whether it repeats an old request or one in the same batch.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text, tuple_
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError

from api.errors import ApiError
from api.service.queue_thread import QueueThread
from api.store.db import Database
from api.store.models import MeterMessage, OutboxMessage, Report, ScadaMessage, utcnow

log = logging.getLogger("oms.intake")
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: references are read out over the phone

#: Clocks drift; a message stamped further in the future than this is refused.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def new_reference() -> str:
    """A public report reference like ``R-7KQ2-M9XD-P4``: 60 bits, unguessable, easy to read aloud."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"R-{chars[:4]}-{chars[4:8]}-{chars[8:12]}"


class IntakeUnavailable(ApiError):
    """503: the report was not stored (or its commit could not be confirmed); the client should retry, with the
    same Idempotency-Key, after ``Retry-After`` seconds."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "unavailable", message)


@dataclass(eq=False)
class _Item:
    kind: str  # "report", "meter", "scada"
    rows: list[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    result: Any = None
    #: queued -> writing (the writer took it) or queued -> withdrawn (the request timed out first; never written)
    state: str = "queued"


@dataclass(frozen=True, slots=True)
class Committed:
    """What the engine hears after commit: the kind and the database ids, in commit order."""

    kind: str
    ids: list[int] = field(default_factory=list)


class IntakeWriter(QueueThread):
    """The group-commit writer thread. ``submit_*`` are awaited by request handlers.

    A failed commit fails only its own batch, and the writer carries on (the pool reconnects). A request waits at
    most ``request_timeout`` seconds in the queue; once its batch is being written it waits for that commit's
    outcome (bounded by the database's own timeouts, and by ``outcome_timeout``), so every answer is true: 202
    means stored, 503 means not stored or, after ``outcome_timeout``, not confirmed."""

    thread_name = "oms-intake-writer"
    #: a commit waiting longer than this (a held SQLite lock, a hung connection) makes the writer "degraded"
    STALL_S = 5.0

    def __init__(self, db: Database, *, batch_max: int = 500,
                 on_committed: Callable[[list[Committed]], None] | None = None,
                 request_timeout: float = 10.0, outcome_timeout: float = 60.0, clock=utcnow) -> None:
        super().__init__()
        self.db = db
        self.clock = clock  # stamps received_at
        self.batch_max = batch_max
        self.on_committed = on_committed
        self.request_timeout, self.outcome_timeout = request_timeout, outcome_timeout
        self.commits = 0
        self.rows = 0
        self.failures = 0
        self._claim = threading.Lock()  # the hand-over between a timing-out request and the writer taking it
        self._failing: tuple[float, str] | None = None  # (since, what): the last commit failed, none has since
        self._busy_since: float | None = None
        self._stopping = False

    # -- request side ---------------------------------------------------------------------------------------------

    async def _submit(self, kind: str, rows: list[dict[str, Any]]) -> Any:
        if self._stopping or (self._thread is not None and not self._thread.is_alive()):
            raise IntakeUnavailable("intake is not running (the service is stopping); not stored")
        loop = asyncio.get_running_loop()
        item = _Item(kind, rows, loop, loop.create_future())
        self._queue.put(item)
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), self.request_timeout)
        except TimeoutError:
            with self._claim:
                if item.state == "queued":
                    item.state = "withdrawn"
                    raise IntakeUnavailable(f"intake is stalled ({self.status}); not stored") from None
        try:  # its commit is under way: the answer must say how it ended
            return await asyncio.wait_for(asyncio.shield(item.future), self.outcome_timeout)
        except TimeoutError:
            raise IntakeUnavailable("the database did not confirm the commit in time; it may be stored: retry "
                                    "with the same Idempotency-Key") from None

    async def submit_report(self, row: dict[str, Any]) -> tuple[str, Any, bool]:
        """Store one report and its acknowledgment row; returns (reference, received_at, duplicate)."""
        return await self._submit("report", [row])

    async def submit_meter(self, rows: list[dict[str, Any]]) -> int:
        return await self._submit("meter", rows)

    async def submit_scada(self, row: dict[str, Any]) -> int:
        return await self._submit("scada", [row])

    @property
    def status(self) -> str:
        """``ok``, ``stopped`` or ``degraded: why`` (for /health)."""
        if self._thread is None or not self._thread.is_alive():
            return "stopped"
        now = time.monotonic()
        if self._failing is not None:
            since, what = self._failing
            return f"degraded: commits failing for {now - since:.0f} s ({what})"
        busy = self._busy_since
        if busy is not None and now - busy > self.STALL_S:
            return f"degraded: a commit has waited {now - busy:.0f} s for the database"
        return "ok"

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        super().stop(timeout)

    # -- the writer thread --------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=1.0 if self._failing else None)
            except queue.Empty:
                self._probe()  # idle after a failure: find out whether the database is back
                continue
            if first is None:
                return
            raw = [first]
            count = len(first.rows)
            while count < self.batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                raw.append(nxt)
                count += len(nxt.rows)
            with self._claim:
                batch = [item for item in raw if item.state == "queued"]
                for item in batch:
                    item.state = "writing"
            if not batch:
                continue
            self._busy_since = time.monotonic()
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop intake: fail the batch, go on
                log.exception("intake writer step failed")
                for item in batch:
                    item.result = IntakeUnavailable(f"not stored: {type(exc).__name__}")
                    item.loop.call_soon_threadsafe(_resolve, item)
            finally:
                self._busy_since = None

    def _write(self, batch: list[_Item]) -> None:
        committed, exc = self._attempt(batch)
        if exc is not None and len(batch) > 1 and not _connection_problem(exc):
            # A row the database refuses (a NUL byte, a reference collision, a bad foreign key): isolate the items
            # so the others still succeed.
            committed = []
            for item in batch:
                done, _ = self._attempt([item])
                committed += done
        # The engine's queue first, the answers after: a driver that settles the engine after a 202 (a replay on
        # its own clock) must find the input already queued.
        if committed and self.on_committed is not None:
            try:
                self.on_committed(committed)
            except Exception:  # noqa: BLE001 - stored is what matters; the engine catches up on restart
                log.exception("handing committed intake to the engine failed")
        for item in batch:
            item.loop.call_soon_threadsafe(_resolve, item)

    def _attempt(self, batch: list[_Item]) -> tuple[list[Committed], BaseException | None]:
        """Commit ``batch``; on failure give each item its refusal. Returns what committed and the error."""
        out: list[Committed] = []
        phase = ["insert"]
        try:
            self._commit(batch, out, phase)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer; the writer lives on
            stored = self._verify(batch, out) if phase[0] == "commit" else False
            if stored:
                log.warning("intake commit reported %s but the rows are stored", type(exc).__name__)
                self._committed(batch)
                return out, None
            self._failed(exc)
            refusal = _refusal(exc, unknown=stored is None)
            for item in batch:
                item.result = refusal
            return [], exc
        self._committed(batch)
        return out, None

    def _committed(self, batch: list[_Item]) -> None:
        self.commits += 1
        self.rows += sum(len(item.rows) for item in batch)
        self._failing = None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        log.warning("intake commit failed: %s", _short(exc))
        if _connection_problem(exc) and self._failing is None:
            self._failing = (time.monotonic(), _short(exc))

    def _probe(self) -> None:
        try:
            with self.db.write() as session, session.begin():
                session.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - still down: stay degraded, try again in a second
            log.debug("intake database probe failed: %s", _short(exc))
            return
        log.warning("intake database reachable again")
        self._failing = None

    def _commit(self, batch: list[_Item], out: list[Committed], phase: list[str]) -> None:
        now = self.clock()
        with self.db.write() as session:
            session.begin()
            ids = self._store_reports(session, [item for item in batch if item.kind == "report"], now)
            if ids:
                out.append(Committed("report", ids))
            for item in batch:
                if item.kind == "meter":
                    ids = _insert_ids(session, MeterMessage, [{**r, "received_at": now} for r in item.rows])
                    item.result = len(ids)
                    out.append(Committed("meter", ids))
                elif item.kind == "scada":
                    ids = _insert_ids(session, ScadaMessage, [{**r, "received_at": now} for r in item.rows])
                    item.result = ids[0]
                    out.append(Committed("scada", ids))
            phase[0] = "commit"  # from here a failure is ambiguous: the commit may have reached the disk
            session.commit()

    def _verify(self, batch: list[_Item], out: list[Committed]) -> bool | None:
        """After a failed COMMIT: did it happen? Looks for the batch's new reports by id (a transaction commits
        whole). True or False, or None when the database cannot say (or the batch stored no new report)."""
        ids = [i for c in out if c.kind == "report" for i in c.ids]
        if not ids:
            return None
        for _ in range(3):  # the connection is gone; a new one usually comes up at once
            try:
                with self.db.read() as session:
                    return session.scalar(select(Report.id).where(Report.id == ids[0])) is not None
            except Exception:  # noqa: BLE001 - still unreachable
                time.sleep(0.5)
        return None

    def _store_reports(self, session, reports: list[_Item], now) -> list[int]:
        """Insert the reports and their acknowledgment rows; returns the new report ids. A repeated idempotency key
        (an earlier request, or one earlier in this batch) answers with the first report's reference.

        The insert skips rows whose key exists (``ON CONFLICT DO NOTHING``) and returns ``(id, reference)`` of
        those it stored, so the usual batch — no repeats — costs no lookup; only a skipped row is looked up."""
        rows: list[dict[str, Any]] = []
        by_key: dict[tuple[str, str], _Item] = {}  # the first item with each idempotency key
        repeats: list[tuple[_Item, tuple[str, str]]] = []
        for item in reports:
            row = item.rows[0]
            key = (row["client_id"], row.get("idempotency_key"))
            if key[1] is not None and key in by_key:
                repeats.append((item, key))
                continue
            row = {**row, "reference": new_reference(), "received_at": now}
            if key[1] is not None:
                by_key[key] = item
            rows.append(row)
            item.result = (row["reference"], now, False)
        stored = _insert_new_reports(session, rows)
        skipped = {(r["client_id"], r["idempotency_key"]) for r in rows if r["reference"] not in stored}
        if skipped:  # a key an earlier request already used: answer with that report
            found = {(c, k): (ref, at) for c, k, ref, at in session.execute(
                select(Report.client_id, Report.idempotency_key, Report.reference, Report.received_at)
                .where(tuple_(Report.client_id, Report.idempotency_key).in_(list(skipped))))}
            for key in skipped:
                by_key[key].result = (*found[key], True)
        for item, key in repeats:
            item.result = (*by_key[key].result[:2], True)
        new = [r for r in rows if r["reference"] in stored]
        ids = [stored[r["reference"]] for r in new]
        if new:
            session.execute(OutboxMessage.__table__.insert(),
                            [_acknowledgment(rid, row, now) for rid, row in zip(ids, new, strict=True)])
        return ids


def _insert_new_reports(session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """``INSERT ... ON CONFLICT (client_id, idempotency_key) DO NOTHING RETURNING id, reference`` (PostgreSQL and
    SQLite spell it the same); returns the stored rows' ids by reference. Rows naming different columns go in
    separate statements."""
    table = Report.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = (insert(table).on_conflict_do_nothing(index_elements=["client_id", "idempotency_key"])
            .returning(table.c.id, table.c.reference))
    stored: dict[str, int] = {}
    for positions in _by_columns(rows):
        stored.update((ref, rid) for rid, ref in session.execute(stmt, [rows[i] for i in positions]))
    return stored


def _insert_ids(session, model, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` and return their new ids in the order of ``rows``: Core statements (the ORM's bulk path
    cost a third of the writer's CPU), one executemany per set of keys (rows from different routes may name
    different columns; the others get their column defaults)."""
    table = model.__table__
    ids = [0] * len(rows)
    stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    for positions in _by_columns(rows):
        new = session.scalars(stmt, [rows[i] for i in positions])
        for i, rid in zip(positions, new, strict=True):
            ids[i] = rid
    return ids


def _by_columns(rows: list[dict[str, Any]]) -> list[list[int]]:
    """Positions of ``rows`` grouped by the columns they name: an executemany needs the same keys in every row."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(row), []).append(i)
    return list(groups.values())


def _acknowledgment(report_id: int, row: dict[str, Any], now) -> dict[str, Any]:
    contact = row.get("contact") or {}
    channel = contact.get("prefer") if contact.get("prefer") not in (None, "none") else None
    if channel is None:
        channel = "sms" if contact.get("sms") else "email" if contact.get("email") else "log"
    return {"kind": "acknowledgment", "report_id": report_id, "channel": channel,
            "payload": {"reference": row["reference"], "language": row.get("language", "en")},
            "status": "pending", "attempts": 0, "idempotency_key": f"ack:{row['reference']}",
            "created_at": now, "next_attempt_at": now}


def _resolve(item: _Item) -> None:
    if item.future.done():  # the client went away; the row is stored all the same
        return
    if isinstance(item.result, BaseException):
        item.future.set_exception(item.result)
    else:
        item.future.set_result(item.result)


def _connection_problem(exc: BaseException) -> bool:
    """The database (not a row) failed: a lost connection, a lock not granted, a server shutting down."""
    return (isinstance(exc, (OperationalError, InterfaceError))
            or (isinstance(exc, DBAPIError) and exc.connection_invalidated))


def _refusal(exc: BaseException, unknown: bool) -> ApiError:
    if unknown:
        return IntakeUnavailable("the commit failed and the database cannot yet say whether it happened; retry "
                                 "with the same Idempotency-Key")
    if isinstance(exc, DataError):  # the row itself is unstorable (a NUL byte on PostgreSQL): retrying is futile
        return ApiError(422, "invalid", f"the database refused a value in this request: {_short(exc)}")
    return IntakeUnavailable(f"not stored ({_short(exc)}); please retry")


def _short(exc: BaseException) -> str:
    """The driver's first line, without SQL or parameters (which may hold personal data)."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {str(orig).splitlines()[0][:160] if str(orig) else ''}".rstrip(": ")
