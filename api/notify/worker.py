"""Delivery from the transactional outbox: claim, render, send, record — by one or several worker processes.

Claiming is atomic: on PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` inside an ``UPDATE ... RETURNING`` (workers
never wait on each other's rows); on SQLite the same ``UPDATE ... RETURNING`` under ``BEGIN IMMEDIATE``. A claim is a
lease: a row claimed longer than ``lease_s`` ago belongs to a worker that died and goes back to pending.

Exactly-once towards the customer, as far as the provider allows: each message carries the outbox row's
idempotency key to the provider (HTTP ``Idempotency-Key``; email ``Message-ID``). Each result is committed by the
sending thread right after the provider answers, before that thread sends anything else: the acceptance and its
message id go to ``notify_deliveries`` in the same transaction that marks the row sent. So a worker killed mid-batch
leaves at most one accepted-but-unrecorded message per sending thread; the rest of its claim was never sent. Those
are re-sent *with the same key* once the lease expires. Two lanes keep that to one message a person can receive
twice per worker process:

- channels whose provider honours the key (``idempotent_channels``, e.g. an SMS gateway that answers a repeated
  ``Idempotency-Key`` with the first message's id) send on ``threads`` threads: their re-sends reach nobody twice;
- every other channel (e-mail always: SMTP has no keys) is accepted and recorded one message at a time per
  process (a lock around the provider's acceptance and the commit of its result), so at most one of them is
  accepted-but-unrecorded when the process dies. SMTP sends in two phases: MAIL, RCPT, DATA and the text travel on
  many threads at once, and only the text's final line (whose 250 is the acceptance) and the commit are one at a
  time; a connection lost before that line aborts the mail (RFC 5321). Other channels without keys are sent whole
  one at a time; their throughput comes from more processes (``oms notify worker --processes N``). On SQLite the
  record under the lock is a line in the process's journal, committed with others (:mod:`api.notify.journal`).

Live workers renew their leases every ``lease_s / 3``, so the lease is short (15 s) and a dead worker's claims come
back quickly. ``reconcile`` also marks sent any expired claim whose acceptance was recorded (only a restore from an
inconsistent backup makes one).

Failures: transient ones (timeouts, 4xx SMTP, HTTP 429/5xx) retry with exponential backoff and jitter; permanent
ones, or ``max_attempts`` transient ones, move the row to ``dead`` with the last error, visible to dispatchers
(``GET /notify/dead``) and re-queueable. A recipient the provider reports as unsubscribed is opted out.

Run: ``oms notify worker --database-url URL [--territory T.gpkg] [--plan] [--log-channel]`` (settings from
``OMS_NOTIFY_*``, see :mod:`api.notify.config`).
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from api.notify import channels as channels_mod
from api.notify import confirm as confirm_mod
from api.notify import journal as journal_mod
from api.notify.channels import Channel, DeliveryError, Outgoing
from api.notify.config import NotifySettings
from api.notify.models import (
    SUPPRESSED,
    NotifyDelivery,
    NotifyOptOut,
    ledger_upsert,
    normalize_address,
)
from api.notify.planner import published_etr
from api.notify.policy import backoff_s, choose_route, etr_probability
from api.notify.templates import Context, render
from api.store.db import Database
from api.store.models import Event, OutboxMessage, Report, utcnow
from outage.figures import event_customers

log = logging.getLogger("oms.notify.worker")


class TokenBucket:
    """A thread-safe rate limiter: at most ``rate`` per second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate, self.capacity = rate, burst if burst is not None else max(1.0, rate / 10)
        self.tokens, self.t = self.capacity, time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
                self.t = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                wait = (1.0 - self.tokens) / self.rate
            time.sleep(wait)


@dataclass
class Job:
    """One claimed row, ready to send (``msg``) or already decided (``outcome`` suppressed)."""

    row_id: int
    key: str
    attempts: int
    msg: Outgoing | None
    audience: str | None = None
    ack_event: str | None = None
    ack_etr: tuple[datetime | None, str] | None = None  # the acknowledged event's ETR (latest, digest)
    outcome: str = ""
    provider_id: str | None = None
    error: str | None = None
    transient: bool = True
    opted_out: bool = False
    latency_ms: float = 0.0
    journaled: bool = False  # its acceptance is in this process's journal, not yet in the database
    #: Held until the address is confirmed: (channel to confirm on, address, language, reference, payload).
    hold: tuple | None = None


def _claim_query(db: Database, worker: str, now: datetime, limit: int, serial: tuple[bool, set[str]] | None = None):
    """Claim up to ``limit`` due rows; ``serial`` (``(True, names)`` or ``(False, names)``): only rows whose channel is
    (or is not) one of the one-at-a-time channels, so each lane is topped up on its own."""
    due = select(OutboxMessage.id).where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
    if serial is not None:
        only, names = serial
        on_lane = OutboxMessage.channel.in_(sorted(names)) if names else OutboxMessage.id.is_(None)
        due = due.where(on_lane if only else ~on_lane | OutboxMessage.channel.is_(None))
    due = due.order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(limit)
    if not db.is_sqlite:
        due = due.with_for_update(skip_locked=True)
    return (update(OutboxMessage).where(OutboxMessage.id.in_(due.scalar_subquery()))
            .values(status="claimed", claimed_by=worker, claimed_at=now, attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.id).execution_options(synchronize_session=False))


class Worker:
    """Claims due outbox rows and delivers them through ``channels`` (name -> :class:`Channel`)."""

    def __init__(self, db: Database, settings: NotifySettings, channels: dict[str, Channel], *,
                 worker_id: str | None = None, clock=utcnow, seed: int | None = None) -> None:
        self.db, self.s, self.channels, self.clock = db, settings, channels, clock
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.rng = random.Random(seed)
        rates = {"sms": settings.rate_sms, "email": settings.rate_email, "voice": settings.rate_voice,
                 "webhook": settings.rate_webhook, "log": settings.rate_log}
        self.buckets = {name: TokenBucket(rates.get(name, 100.0)) for name in channels}
        self.pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="oms-notify-send")
        #: Channels a re-send could reach a person twice on: one message at a time accepted-but-unrecorded, under
        #: ``_accepting``, on a pool of their own (so they never hold up the keyed channels' threads).
        self.serial = {name for name, ch in channels.items() if name not in settings.idempotent_channels
                       and not isinstance(ch, channels_mod.LogChannel)}  # a log line reaches no one
        self.serial_pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="oms-notify-one")
        self._accepting = threading.Lock()
        #: SQLite: acceptances on the one-at-a-time lane go to this journal at once and to the database in groups.
        jdir = journal_mod.default_dir(db.url) if settings.accept_journal and db.is_sqlite else None
        self.journal_dir = jdir
        self.journal = journal_mod.Journal(jdir, self.id) if jdir is not None and self.serial else None
        self._results: queue.Queue = queue.Queue()
        self._recording = threading.Thread(target=self._recorder, name="oms-notify-record", daemon=True)
        self._recording.start()
        self.stats = {"sent": 0, "retried": 0, "dead": 0, "suppressed": 0, "reclaimed": 0}
        self._last_claimed = 0
        self._lane_short = (False, False)
        self._held: set[int] = set()  # claimed and not yet recorded: the rows whose leases renew() extends
        self._confirmed: set[tuple[str, str]] = set()
        self._stats_lock = threading.Lock()
        self._sending = 0  # sending threads between picking a message and its result's commit

    # ---------------------------------------------------------------------------------------------- claiming
    def claim(self, now: datetime, limit: int | None = None, serial: bool | None = None) -> list[int]:
        """Claim due rows; ``serial`` True/False: only rows for the one-at-a-time lane / the others."""
        lane = None if serial is None else (serial, self.serial)
        with self.db.write() as session, session.begin():
            ids = list(session.scalars(_claim_query(self.db, self.id, now, limit or self.s.batch_size, lane)))
        self._last_claimed = len(ids)
        with self._stats_lock:
            self._held.update(ids)
        return ids

    def reconcile(self, now: datetime | None = None) -> int:
        """Expired leases back to pending (or to sent, if their acceptance is on record). Returns rows touched."""
        now = now or self.clock()
        stale = now - timedelta(seconds=self.s.lease_s)
        journal_mod.recover(self.db, self.journal_dir, now)  # a dead worker's acceptances first: not re-sent
        with self.db.write() as session, session.begin():
            rows = session.execute(select(OutboxMessage.id, OutboxMessage.idempotency_key).where(
                OutboxMessage.status == "claimed", OutboxMessage.claimed_at < stale)).all()
            if not rows:
                return 0
            keys = [k for _, k in rows]
            accepted = set(session.scalars(select(NotifyDelivery.idempotency_key).where(
                NotifyDelivery.idempotency_key.in_(keys), NotifyDelivery.outcome == "accepted")))
            for rid, key in rows:
                values = ({"status": "sent", "sent_at": now} if key in accepted
                          else {"status": "pending", "next_attempt_at": now, "claimed_by": None})
                session.execute(update(OutboxMessage).where(OutboxMessage.id == rid,
                                                            OutboxMessage.status == "claimed").values(**values))
        self.stats["reclaimed"] += len(rows)
        log.info("reconciled %d expired claims (%d already accepted by the provider)", len(rows), len(accepted))
        return len(rows)

    # ---------------------------------------------------------------------------------------------- preparing
    def prepare(self, ids: list[int], now: datetime) -> list[Job]:
        """Load claimed rows with what their messages need and render them (or decide not to send)."""
        with self.db.read() as session:
            # plain rows, not ORM objects: only these columns, and no identity map to fill for a read-only look
            rows = session.execute(select(*_OUTBOX_COLUMNS).where(OutboxMessage.id.in_(ids))).all()
            report_ids = [r.report_id for r in rows if r.report_id is not None]
            reports = {r.id: r for r in session.execute(select(*_REPORT_COLUMNS).where(Report.id.in_(report_ids)))} \
                if report_ids else {}
            event_ids = {r.event_id for r in reports.values() if r.event_id}
            events = _resolve_events(session, event_ids)
            addresses = set()
            for r in rows:
                for ch, addr in _addresses(r, reports.get(r.report_id)).items():
                    if addr:
                        addresses.add((ch, addr))
            opted_out = _opted_out(session, addresses)
            anonymous = any(confirm_mod.needs_confirmation(rep.client_id, "sms") for rep in reports.values())
            self._confirmed = confirm_mod.confirmed(session, {
                (ch, normalize_address(ch, a)) for ch, a in addresses}) if anonymous else set()
        available = set(self.channels)
        jobs = []
        for r in rows:
            jobs.append(self._job(r, reports.get(r.report_id), events, opted_out, available, now))
        return jobs

    def _job(self, row: OutboxMessage, report: Report | None, events: dict[str, Event],
             opted_out: set[tuple[str, str]], available: set[str], now: datetime) -> Job:
        s = self.s
        payload = row.payload or {}
        lang = payload.get("language") or (report.language if report else "en")
        job = Job(row.id, row.idempotency_key, row.attempts, None)
        if row.kind == "acknowledgment" and report is not None:
            contact = report.contact or {}
            prefer = contact.get("prefer") if contact.get("prefer") not in (None, "none", "app") else None
            route = choose_route(prefer or row.channel, _addresses(row, report), opted_out, available)
            if route is None and not contact.get("sms") and not contact.get("email"):
                route_channel, to = "log", ""  # no contact given: the 202 answer was the acknowledgment
            elif route is None:
                job.outcome, job.error = SUPPRESSED, "every channel of this reporter is opted out or unavailable"
                return job
            else:
                route_channel, to = route.channel, route.address
            confirm_on = confirm_mod.needs_confirmation(report.client_id, route_channel)
            if confirm_on and (confirm_on, normalize_address(confirm_on, to)) not in self._confirmed:
                job.outcome, job.error = confirm_mod.HELD, f"held until {confirm_on} {to} is confirmed"
                job.hold = (confirm_on, to, lang, report.reference, {**payload,
                                                                     "held_for": confirm_mod.hold_key(confirm_on, to)})
                return job
            ev = events.get(report.event_id or "")
            ctx = Context(s.utility_name, s.help_phone, reference=report.reference,
                          status_url=s.status_url.format(reference=report.reference),
                          customers=event_customers(ev.customers_out) if ev is not None else None,
                          etr_earliest=ev.etr_earliest if ev is not None else None,
                          etr_latest=ev.etr_latest if ev is not None else None,
                          etr_probability=etr_probability(ev.etr_detail) if ev is not None else None)
            if ev is not None and route_channel != "log":
                job.audience = f"{route_channel}:{normalize_address(route_channel, to)}"
                job.ack_event, job.ack_etr = ev.id, (ev.etr_latest, published_etr(ev))
            kind = "acknowledgment"
        else:
            route_channel, to = row.channel or "log", payload.get("to") or ""
            if route_channel not in available:
                job.outcome, job.error = SUPPRESSED, f"channel {route_channel!r} is not configured"
                return job
            keyword_answer = row.kind in ("stop_confirm", "start_confirm", "help", "still_out_ack")
            if not keyword_answer and (route_channel, normalize_address(route_channel, to)) in opted_out:
                job.outcome, job.error = SUPPRESSED, f"{route_channel} {to} opted out"
                return job
            c = payload.get("context") or {}
            ctx = Context(s.utility_name, s.help_phone, reference=c.get("reference"),
                          status_url=s.status_url.format(reference=c["reference"]) if c.get("reference") else None,
                          customers=c.get("customers"), area=c.get("area"), cause=c.get("cause"),
                          etr_earliest=_dt(c.get("etr_earliest")), etr_latest=_dt(c.get("etr_latest")),
                          etr_probability=c.get("etr_probability"),
                          crew_eta=_dt(c.get("crew_eta")),
                          confirm_url=s.confirm_url.format(code=c["confirm_code"]) if c.get("confirm_code") else None,
                          note=c.get("note"))
            kind = row.kind
        text = render(kind, lang, route_channel, ctx, now=now, tz=s.timezone)
        job.msg = Outgoing(row.idempotency_key, route_channel, to, text.subject, text.body, lang, kind)
        return job

    # ---------------------------------------------------------------------------------------------- sending
    def _send(self, job: Job, send=None, throttle: bool = True) -> Job:
        """Hand ``job``'s message to its channel (or to ``send``) and note the outcome on the job."""
        msg = job.msg
        channel = self.channels[msg.channel]
        if throttle:
            self.buckets[msg.channel].take()
        t = time.perf_counter()
        try:
            job.provider_id = (send or channel.send)(msg)
            job.outcome = "accepted"
        except DeliveryError as exc:
            job.error, job.transient, job.opted_out = str(exc), exc.transient, exc.opted_out
            job.outcome = "retry" if exc.transient and job.attempts < self.s.max_attempts else "dead"
        except Exception as exc:  # noqa: BLE001 - a bug in one message must not stop the others
            job.error, job.transient = f"{type(exc).__name__}: {exc}", False
            job.outcome = "dead"
            log.exception("sending outbox row %s failed", job.row_id)
        job.latency_ms = (time.perf_counter() - t) * 1000.0
        return job

    def record(self, jobs: list[Job], now: datetime) -> None:
        """One transaction: the delivery log (acceptances first), the rows' new states, opt-outs, ack ledger.

        Written with Core ``executemany`` (one statement per shape of update), not the ORM's bulk paths: the
        recorder runs once per group of results, and the ORM's per-row bookkeeping was most of its CPU."""
        if not jobs:
            return
        deliveries, updates, optouts, ledger, holds = [], {}, set(), {}, []
        worker, s, stats = self.id, self.s, {}
        for j in jobs:
            msg, outcome = j.msg, j.outcome
            channel = msg.channel if msg is not None else "-"
            deliveries.append({"outbox_id": j.row_id, "idempotency_key": j.key, "attempt": j.attempts,
                               "channel": channel, "worker": worker, "outcome": outcome,
                               "provider_id": j.provider_id, "error": j.error, "latency_ms": j.latency_ms, "at": now})
            if outcome == "accepted":
                updates.setdefault("sent", []).append({"b_id": j.row_id, "status": "sent", "sent_at": now,
                                                       "last_error": None, "channel": channel})
                if j.ack_event is not None:  # one row per (audience, event): the last acknowledgment's ETR
                    ledger[(j.audience, j.ack_event)] = j.ack_etr
            elif outcome == "retry":
                delay = backoff_s(j.attempts, base=s.backoff_base_s, cap=s.backoff_max_s, rng=self.rng)
                updates.setdefault("retry", []).append({"b_id": j.row_id, "status": "pending", "last_error": j.error,
                                                        "claimed_by": None,
                                                        "next_attempt_at": now + timedelta(seconds=delay)})
            elif j.hold is not None:
                holds.append(j)
                updates.setdefault("hold", []).append({"b_id": j.row_id, "status": outcome, "last_error": j.error,
                                                       "claimed_by": None, "payload": j.hold[4]})
            else:  # dead or suppressed
                updates.setdefault("other", []).append({"b_id": j.row_id, "status": outcome, "last_error": j.error})
            if j.opted_out and msg is not None:
                optouts.add((msg.channel, normalize_address(msg.channel, msg.to)))
            key = _STAT_KEYS.get(outcome, outcome)
            stats[key] = stats.get(key, 0) + 1
        with self.db.write() as session, session.begin():
            conn = session.connection()
            conn.execute(_DELIVERY_INSERT, deliveries)
            for shape in ("sent", "retry", "hold", "other"):  # the same order for every writer
                rows = updates.get(shape)
                if rows:
                    rows.sort(key=_by_b_id)  # one lock order for every writer
                    conn.execute(_OUTBOX_UPDATE, rows)
            for channel, address in sorted(optouts):
                set_opt_out(session, channel, address, True, "provider", now)
            if ledger:  # the ETR an acknowledgment stated is not news again
                conn.execute(ledger_upsert(conn.dialect.name), [
                    {"audience": audience, "event_id": event_id, "kind": "etr_update", "digest": dig,
                     "etr": etr, "outbox_id": None, "at": now} for (audience, event_id), (etr, dig) in sorted(
                        ledger.items(), key=lambda kv: kv[0])])
            for j in holds:
                channel, to, lang, reference, _ = j.hold
                if confirm_mod.request(session, channel, to, lang, reference, now, s.confirm_interval_s):
                    confirm_mod.release(session, channel, to, now)  # confirmed meanwhile
        with self._stats_lock:  # recorded from every sending thread
            for key, n in stats.items():
                self.stats[key] = self.stats.get(key, 0) + n

    def _deliver(self, job: Job) -> Job:
        """Send one message and record its result at once, before this thread sends another: a crash can then
        re-send only the messages in flight (one per sending thread), never a whole claimed batch."""
        if job.msg is not None and job.msg.channel in self.serial:
            return self._deliver_alone(job)
        return self._in_group(job, lambda: self._send(job))

    def _in_group(self, job: Job, send: Callable[[], None]) -> Job:
        """``send`` (which notes its outcome on ``job``), then the result committed in the recorder's next group;
        returns once it is committed (or failed: then the lease expires and the row is re-sent with its key). The
        recorder waits for every thread counted in ``_sending`` before it commits a group."""
        with self._stats_lock:
            self._sending += 1
        try:
            send()
            done = threading.Event()
            self._results.put((job, done))
            done.wait()
        finally:
            with self._stats_lock:
                self._sending -= 1
        return job

    def _deliver_alone(self, job: Job) -> Job:
        """A channel without idempotency keys: one message at a time per process is accepted and recorded (its own
        transaction, no waiting for the threads' group) under ``_accepting``. A channel that can send in two phases
        (SMTP: everything but the text's final line, then that line) does the first phase outside the lock, so many
        e-mails travel at once and only the last round trip and the commit are one at a time."""
        channel = self.channels[job.msg.channel]
        finish = None
        if hasattr(channel, "stage"):
            handle = None

            def first(msg: Outgoing) -> str:
                nonlocal handle
                handle = channel.stage(msg)
                return ""

            self._send(job, first)  # a failure here leaves nothing accepted: recorded below as any other
            if job.outcome == "accepted":
                job.outcome = ""
                finish = lambda _msg: channel.finish(handle)  # noqa: E731
        if job.outcome:
            self._record_retrying([job])
            return job
        if self.journal is None:
            with self._accepting:
                self._send(job, finish, throttle=finish is None)  # a staged message took its token already
                self._record_retrying([job])
            return job

        def accept_and_journal() -> None:  # one at a time; once journaled, a crash re-sends nothing (recover)
            with self._accepting:
                self._send(job, finish, throttle=finish is None)
                if job.outcome == "accepted":
                    ack = None if job.ack_event is None else (job.audience, job.ack_event, *job.ack_etr)
                    self.journal.append(job.row_id, job.key, job.provider_id, job.attempts, job.msg.channel, ack)
                    job.journaled = True

        return self._in_group(job, accept_and_journal)

    def _record_retrying(self, jobs: list[Job]) -> None:
        for attempt in range(3):  # a deadlock or a restarting database is usually gone on the next try
            try:
                self.record(jobs, self.clock())
                break
            except Exception:  # noqa: BLE001 - given up: the leases lapse, the rows are re-sent with their keys
                log.exception("recording %d results failed (attempt %d)", len(jobs), attempt + 1)
                time.sleep(0.05 * (attempt + 1))
        else:
            if self.journal is not None:  # keep the journal past this process: recover() records them
                self.journal.unrecorded += 1
        if self.journal is not None and any(j.journaled for j in jobs):
            self.journal.committed(sum(j.journaled for j in jobs))
        with self._stats_lock:
            self._held.difference_update(j.row_id for j in jobs)

    def _gather(self, first) -> list:
        """``first`` and the results that follow it within ``record_gather_s`` (at most 500); no waiting once every
        busy sending thread has handed in its result, since no more can come before this commit."""
        batch = [first]
        get, deadline = self._results.get, time.monotonic() + self.s.record_gather_s
        while len(batch) < 500:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                if len(batch) >= self._sending:  # every busy thread is waiting for this commit
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = get(timeout=left)
                except queue.Empty:
                    break
            if item is None:
                self._results.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def _recorder(self) -> None:
        """Group commit: the results that arrive within a few ms go in one transaction, so sixteen sending threads
        cost about one transaction per round instead of sixteen, and each still waits for its own result's commit."""
        while True:
            first = self._results.get()
            if first is None:
                return
            batch = self._gather(first)
            self._record_retrying([j for j, _ in batch])
            for _, done in batch:
                done.set()

    def _start(self, limit: int, serial_limit: int | None = None) -> tuple[list[Future], list[Future]]:
        """Claim up to ``limit`` due rows (with ``serial_limit``: ``limit`` for the threads' lane and ``serial_limit``
        for the one-at-a-time lane), record the ones decided without sending, hand the rest to their lane.
        Returns the futures of the threads' lane and of the one-at-a-time lane."""
        now = self.clock()
        if serial_limit is None:
            ids = self.claim(now, limit)
        else:
            ids = self.claim(now, limit, serial=False) if limit > 0 else []
            one = self.claim(now, serial_limit, serial=True) if serial_limit > 0 else []
            self._lane_short = (len(ids) < limit, len(one) < serial_limit)  # a lane that found fewer rows than room
            ids += one
            self._last_claimed = len(ids)
        if not ids:
            return [], []
        jobs = self.prepare(ids, now)
        decided = [j for j in jobs if j.outcome]  # suppressed or held before sending
        try:
            self.record(decided, now)
        finally:
            with self._stats_lock:
                self._held.difference_update(j.row_id for j in decided)
        threads, one = [], []
        for j in jobs:
            if not j.outcome:
                serial = j.msg.channel in self.serial
                (one if serial else threads).append((self.serial_pool if serial else self.pool).submit(self._deliver, j))
        return threads, one

    def run_once(self) -> int:
        """Claim one batch, send it (each result recorded as it comes). Returns how many rows were handled."""
        threads, one = self._start(self.s.batch_size)
        for f in threads + one:
            f.result()
        return self._last_claimed

    def renew(self) -> int:
        """Extend the leases of the rows this worker still holds: a live worker keeps its claims however long a batch
        takes, so the lease can be short and a dead worker's claims come back within ``lease_s``. A row whose result
        could not be recorded is no longer held, so its lease lapses and another round sends it (same key)."""
        with self._stats_lock:
            held = sorted(self._held)
        if not held:
            return 0
        mine = select(OutboxMessage.id).where(OutboxMessage.id.in_(held), OutboxMessage.status == "claimed",
                                              OutboxMessage.claimed_by == self.id).order_by(OutboxMessage.id)
        if not self.db.is_sqlite:  # rows being recorded right now are skipped, not waited for (no deadlock)
            mine = mine.with_for_update(skip_locked=True)
        with self.db.write() as session, session.begin():
            return session.execute(update(OutboxMessage).where(OutboxMessage.id.in_(mine.scalar_subquery()))
                                   .values(claimed_at=self.clock())
                                   .execution_options(synchronize_session=False)).rowcount

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.s.lease_s / 3):
            try:
                self.renew()
            except Exception:  # noqa: BLE001 - the next beat tries again; the lease covers two misses
                log.exception("lease renewal failed")

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set, keeping both lanes busy (claims as threads free up, not batch by batch, so one
        slow message does not hold the next batch; each lane topped up on its own, so a slow one-at-a-time lane does
        not starve the threads); renew leases every ``lease_s / 3``; reconcile expired ones every ``lease_s / 4``."""
        beat_stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(beat_stop,), name="oms-notify-lease", daemon=True)
        beat.start()
        inflight: set[Future] = set()
        serial_inflight: set[Future] = set()  # queued for or on the one-at-a-time lane
        next_reconcile = 0.0
        next_claim = [0.0, 0.0]  # per lane: a lane that found nothing due is asked again after a poll interval
        try:
            while not stop.is_set():
                if time.monotonic() >= next_reconcile:
                    try:
                        self.reconcile()
                    except Exception:  # noqa: BLE001 - e.g. database restarting: try again later
                        log.exception("reconcile failed")
                    next_reconcile = time.monotonic() + max(0.5, self.s.lease_s / 4)
                serial_inflight = {f for f in serial_inflight if not f.done()}
                # refill a lane once half of it is free: claimed-but-unsent rows are safe to lose with the process
                t = time.monotonic()
                room = self.s.batch_size - len(inflight) \
                    if len(inflight) <= self.s.threads // 2 and t >= next_claim[0] else 0
                queue_len = self.s.serial_queue
                serial_room = queue_len - len(serial_inflight) \
                    if len(serial_inflight) <= queue_len // 2 and t >= next_claim[1] else 0
                claimed = 0
                if room > 0 or serial_room > 0:
                    try:
                        started, started_one = self._start(room, serial_room)
                        inflight.update(started)
                        serial_inflight.update(started_one)
                        claimed = self._last_claimed
                        for lane, short in enumerate(self._lane_short):
                            if short:
                                next_claim[lane] = t + self.s.poll_interval_s
                    except Exception:  # noqa: BLE001 - the worker lives on; the claim's lease makes the rows retry
                        log.exception("claiming a batch failed")
                busy = inflight | serial_inflight
                if busy:
                    wait(busy, timeout=self.s.poll_interval_s, return_when=FIRST_COMPLETED)
                    inflight = {f for f in inflight if not f.done()}
                elif not claimed:
                    stop.wait(self.s.poll_interval_s)
            wait(inflight | serial_inflight)  # finish the messages in hand
        finally:
            beat_stop.set()
            beat.join(timeout=5)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.serial_pool.shutdown(wait=True)
        self._results.put(None)
        self._recording.join(timeout=10)
        if self.journal is not None:
            self.journal.close()
        for ch in self.channels.values():
            ch.close()


# -------------------------------------------------------------------------------------------------- helpers
def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _addresses(row: OutboxMessage, report: Report | None) -> dict[str, str | None]:
    if report is None:
        return {row.channel or "log": (row.payload or {}).get("to")}
    contact = report.contact or {}
    return {"sms": contact.get("sms"), "email": contact.get("email"), "voice": contact.get("sms") or report.phone}


def _opted_out(session, addresses: set[tuple[str, str]]) -> set[tuple[str, str]]:
    if not addresses:
        return set()
    normal = {(ch, normalize_address(ch, a)): (ch, a) for ch, a in addresses}
    found = session.execute(select(NotifyOptOut.channel, NotifyOptOut.address).where(
        NotifyOptOut.opted_out.is_(True), NotifyOptOut.address.in_([a for _, a in normal]))).all()
    out = set()
    for ch, addr in found:
        if (ch, addr) in normal:
            out.add(normal[(ch, addr)])
            out.add((ch, addr))
    return out


def _resolve_events(session, ids: set[str]) -> dict[str, Event]:
    """Events by id, each mapped to the event it was merged into (followed to the end)."""
    if not ids:
        return {}
    rows = {e.id: e for e in session.scalars(select(Event).where(Event.id.in_(list(ids))))}
    out = {}
    for eid in ids:
        ev, seen = rows.get(eid), 0
        while ev is not None and ev.merged_into and seen < 20:
            ev, seen = session.get(Event, ev.merged_into), seen + 1
        if ev is not None:
            out[eid] = ev
    return out


def set_opt_out(session, channel: str, address: str, opted_out: bool, source: str, now: datetime) -> None:
    row = session.scalar(select(NotifyOptOut).where(NotifyOptOut.channel == channel,
                                                    NotifyOptOut.address == address))
    if row is None:
        session.add(NotifyOptOut(channel=channel, address=address, opted_out=opted_out, source=source, at=now))
    else:
        row.opted_out, row.source, row.at = opted_out, source, now


_STAT_KEYS = {"accepted": "sent", "retry": "retried"}
#: What preparing a message reads of its outbox row and its report.
_OUTBOX_COLUMNS = (OutboxMessage.id, OutboxMessage.kind, OutboxMessage.report_id, OutboxMessage.channel,
                   OutboxMessage.payload, OutboxMessage.attempts, OutboxMessage.idempotency_key)
_REPORT_COLUMNS = (Report.id, Report.contact, Report.language, Report.client_id, Report.reference, Report.event_id,
                   Report.phone)
_DELIVERY_INSERT = insert(NotifyDelivery.__table__)
#: One row's new state by id; the SET clause is the parameters' other keys (one statement per shape).
_OUTBOX_UPDATE = update(OutboxMessage.__table__).where(OutboxMessage.__table__.c.id == bindparam("b_id"))


def _by_b_id(row: dict) -> int:
    return row["b_id"]


def serve(args: argparse.Namespace) -> int:
    """Deliver (and with ``--plan``, plan) until SIGTERM or SIGINT; then finish the batch in hand and exit 0."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore"):  # one INFO line per provider request: CPU and disk, no news
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    from api.settings import Settings

    # The one-at-a-time lane waits on its provider several times per message (SMTP: MAIL, RCPT, DATA, the text); a
    # shorter GIL switch interval (default 5 ms) lets it take each answer at once instead of after a sending thread's
    # slice. Measured: 120 -> 186 e-mails/s for one lane on a loaded 2-core machine.
    sys.setswitchinterval(0.0005)
    settings = NotifySettings()
    channels = channels_mod.from_settings(settings)
    if args.log_channel:  # like the demo: the log stands in for the SMS gateway and the mail relay
        for name in ("sms", "email"):
            if name in channels:
                channels[name].close()
            channels[name] = channels_mod.LogChannel(name=name)
    db = Database(args.database_url or Settings().database_url)
    worker = Worker(db, settings, channels, worker_id=args.id)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    planner_thread = None
    if args.plan:
        from api.notify.planner import Planner

        network = None
        if args.territory:
            from gis.io import read_territory

            network = read_territory(args.territory)
        planner = Planner(db, settings, network=network, channels=set(worker.channels))
        planner_thread = threading.Thread(target=planner.run, args=(stop,), name="oms-notify-planner", daemon=True)
        planner_thread.start()
    log.info("notification worker %s: channels %s", worker.id, ", ".join(sorted(worker.channels)))
    try:
        worker.run(stop)
    finally:
        if planner_thread is not None:
            planner_thread.join(timeout=10)
        worker.close()
        db.dispose()
    return 0
