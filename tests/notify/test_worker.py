"""Delivery against real local providers: an aiosmtpd SMTP server and an HTTP SMS gateway."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import add_reports, drain_with_worker_process, settings_for
from sqlalchemy import func, select

from api.notify import channels
from api.notify import journal as journal_mod
from api.notify.models import NotifyDelivery, NotifyOptOut
from api.notify.worker import Worker
from api.store.models import OutboxMessage

ROOT = Path(__file__).resolve().parents[2]


def _worker(db, smtp=None, gateway=None, worker_id=None, **overrides) -> Worker:
    s = settings_for(smtp, gateway, **overrides)
    return Worker(db, s, channels.from_settings(s), seed=1, worker_id=worker_id)


def _drain(worker, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.run_once()
        if until():
            return
        time.sleep(0.02)
    raise AssertionError("outbox not drained in time")


def _statuses(db):
    with db.read() as s:
        return dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())


def test_acknowledgments_reach_sms_and_email_in_the_reporters_language(db, smtp, gateway):
    add_reports(db, [{"sms": "+1 555 010 2000", "prefer": "sms"}], language="es")
    add_reports(db, [{"email": "ana@example.org", "prefer": "email"}, None], language="en")
    w = _worker(db, smtp, gateway)
    try:
        _drain(w, lambda: _statuses(db) == {"sent": 3})
    finally:
        w.close()
    (sms,) = gateway.received.bodies.values()
    assert sms["To"] == "+1 555 010 2000" and "recibimos su aviso" in sms["Body"]
    (mail,) = smtp.received.bodies.values()
    assert mail["to"] == ["ana@example.org"] and mail["subject"].startswith("We received your outage report")
    with db.read() as s:  # the provider's message id is on record for every acceptance
        ids = s.scalars(select(NotifyDelivery.provider_id).where(NotifyDelivery.outcome == "accepted")).all()
    assert len(ids) == 3 and any(i.startswith("SM") for i in ids) and any("queued as" in i for i in ids)


def test_provider_outage_retries_with_backoff_and_delivers_once_after_recovery(db, smtp, gateway):
    add_reports(db, [{"sms": f"+1555010{i:04d}", "prefer": "sms"} for i in range(10)]
                + [{"email": f"m{i}@example.org", "prefer": "email"} for i in range(10)])
    gateway.faults.mode, smtp.faults.mode = "fail", "fail"
    w = _worker(db, smtp, gateway)
    try:
        for _ in range(3):
            w.run_once()
            time.sleep(0.25)
        assert gateway.received.total == 0 and smtp.received.total == 0
        assert gateway.received.refused >= 10 and smtp.received.refused >= 10
        with db.read() as s:
            assert s.scalar(select(func.max(OutboxMessage.attempts))) >= 2
            assert "503" in s.scalar(select(OutboxMessage.last_error).where(OutboxMessage.channel == "sms").limit(1))
        gateway.faults.mode, smtp.faults.mode = "ok", "ok"
        _drain(w, lambda: _statuses(db) == {"sent": 20})
    finally:
        w.close()
    assert len(gateway.received.deliveries) == 10 and gateway.received.duplicates == 0
    assert len(smtp.received.deliveries) == 10 and smtp.received.duplicates == 0


def test_timeouts_and_slow_providers_are_retried(db, gateway):
    add_reports(db, [{"sms": f"+1555020{i:04d}", "prefer": "sms"} for i in range(4)])
    gateway.faults.mode, gateway.faults.hold = "timeout", 1.5
    w = _worker(db, gateway=gateway, sms_timeout_s=0.3)
    try:
        w.run_once()
        with db.read() as s:
            assert "ReadTimeout" in s.scalar(select(OutboxMessage.last_error).limit(1))
        gateway.faults.mode, gateway.faults.delay = "slow", 0.1
        _drain(w, lambda: _statuses(db) == {"sent": 4})
    finally:
        w.close()
    assert len(gateway.received.deliveries) == 4 and gateway.received.duplicates == 0


def test_permanent_rejection_and_exhausted_retries_become_visible_dead_letters(db, smtp, gateway):
    add_reports(db, [{"sms": "+15550300001", "prefer": "sms"}, {"email": "x@example.org", "prefer": "email"}])
    gateway.faults.mode, smtp.faults.mode = "reject", "fail"
    w = _worker(db, smtp, gateway, max_attempts=3)
    try:
        _drain(w, lambda: _statuses(db) == {"dead": 2})
    finally:
        w.close()
    with db.read() as s:
        dead = {r.channel: r for r in s.scalars(select(OutboxMessage))}
    assert dead["sms"].attempts == 1 and "HTTP 400" in dead["sms"].last_error  # permanent: no retry
    assert dead["email"].attempts == 3 and "451" in dead["email"].last_error  # transient, 3 tries


def test_opted_out_numbers_get_nothing_and_fall_back_to_email(db, smtp, gateway):
    from api.store.models import utcnow

    with db.write() as s, s.begin():
        s.add(NotifyOptOut(channel="sms", address="5550400001", opted_out=True, source="keyword", at=utcnow()))
        s.add(NotifyOptOut(channel="sms", address="5550400002", opted_out=True, source="keyword", at=utcnow()))
    add_reports(db, [{"sms": "+1 555 040 0001", "prefer": "sms"},
                     {"sms": "+1 555 040 0002", "email": "fb@example.org", "prefer": "sms"}])
    w = _worker(db, smtp, gateway)
    try:
        _drain(w, lambda: sum(_statuses(db).get(k, 0) for k in ("sent", "suppressed")) == 2)
    finally:
        w.close()
    assert gateway.received.total == 0
    assert [b["to"] for b in smtp.received.bodies.values()] == [["fb@example.org"]]
    assert _statuses(db) == {"sent": 1, "suppressed": 1}


def test_throttle_holds_each_channel_to_its_rate(db, gateway):
    add_reports(db, [{"sms": f"+1555050{i:04d}", "prefer": "sms"} for i in range(40)])
    w = _worker(db, gateway=gateway, rate_sms=20.0)
    t = time.monotonic()
    try:
        _drain(w, lambda: _statuses(db) == {"sent": 40})
    finally:
        w.close()
    elapsed = time.monotonic() - t
    assert elapsed >= (40 - 2) / 20.0 * 0.9, elapsed  # burst of 2, then 20 per second


def test_two_workers_share_the_outbox_without_sending_anything_twice(db, gateway):
    add_reports(db, [{"sms": f"+1555060{i:04d}", "prefer": "sms"} for i in range(300)])
    workers = [_worker(db, gateway=gateway, batch_size=20) for _ in range(2)]
    for i, w in enumerate(workers):
        w.id = f"w{i}"
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 30
        while _statuses(db) != {"sent": 300} and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
        for w in workers:
            w.close()
    assert _statuses(db) == {"sent": 300}
    assert len(gateway.received.deliveries) == 300 and gateway.received.duplicates == 0
    assert gateway.received.resubmitted == 0  # no row was claimed twice
    assert all(w.stats["sent"] > 0 for w in workers)


def test_kill_9_mid_run_never_sends_twice_and_loses_nothing(db_url, db, gateway):
    n = 200
    add_reports(db, [{"sms": f"+1555070{i:04d}", "prefer": "sms"} for i in range(n)])
    gateway.faults.mode, gateway.faults.delay = "slow", 0.02
    env = {**os.environ, "OMS_NOTIFY_SMS_URL": gateway.url, "OMS_NOTIFY_LEASE_S": "1",
           "OMS_NOTIFY_BATCH_SIZE": "50", "OMS_NOTIFY_THREADS": "8", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "api.commands", "notify", "worker", "--database-url", db_url, "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while gateway.received.total < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-batch: some messages accepted by the gateway, not yet recorded
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    accepted_before = gateway.received.total
    assert 0 < accepted_before < n
    assert _statuses(db).get("claimed", 0) > 0  # the killed worker left claims behind
    gateway.faults.mode = "ok"
    drain_with_worker_process(db, cmd, env, ROOT, n)
    assert _statuses(db) == {"sent": n}
    assert len(gateway.received.deliveries) == n  # nothing lost
    assert gateway.received.duplicates == 0  # nothing sent twice to a handset


def test_cli_worker_log_channel_is_a_dry_run_for_sms_and_email(db_url, db):
    """``oms notify worker --log-channel`` with no provider configured: every acknowledgment goes to the log under
    its own channel's name (without the flag the SMS and email ones would have no channel and be suppressed)."""
    add_reports(db, [{"sms": "+15550900001", "prefer": "sms"}, {"email": "a@example.org", "prefer": "email"}, None])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMS_NOTIFY_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "api.commands", "notify", "worker", "--database-url", db_url,
                             "--log-channel", "--log-level", "warning"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while _statuses(db) != {"sent": 3} and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0  # a clean stop on SIGTERM
    assert _statuses(db) == {"sent": 3}
    with db.read() as s:
        rows = s.execute(select(NotifyDelivery.channel, NotifyDelivery.provider_id)).all()
    assert sorted(ch for ch, _ in rows) == ["email", "log", "sms"]
    assert all(pid.startswith("log:") for _, pid in rows)


@pytest.mark.parametrize("mode", ["fail"])
def test_reconcile_returns_expired_claims(db, gateway, mode):
    from datetime import timedelta

    from api.store.models import utcnow

    add_reports(db, [{"sms": "+15550800001", "prefer": "sms"}])
    w = _worker(db, gateway=gateway, lease_s=60)
    try:
        ids = w.claim(utcnow())
        assert len(ids) == 1 and w.reconcile(utcnow()) == 0  # lease still valid
        assert w.reconcile(utcnow() + timedelta(seconds=61)) == 1
        assert _statuses(db) == {"pending": 1}
    finally:
        w.close()


def test_each_result_is_recorded_before_the_next_send(db):
    """A crash can re-send only what is in flight: when a thread sends its next message, the previous one's
    acceptance is already committed (it used to be written once for the whole batch)."""
    add_reports(db, [{"sms": f"+1555090{i:04d}", "prefer": "sms"} for i in range(5)])
    seen = []

    class Probe(channels.LogChannel):
        def send(self, msg):
            seen.append(_statuses(db).get("sent", 0))
            return super().send(msg)

    s = settings_for(None, None, threads=1, batch_size=5)
    w = Worker(db, s, {"log": channels.LogChannel(), "sms": Probe(name="sms")}, seed=1)
    try:
        assert w.run_once() == 5
    finally:
        w.close()
    assert seen == [0, 1, 2, 3, 4] and _statuses(db) == {"sent": 5}


def test_a_live_worker_renews_its_short_lease_and_a_dead_ones_claims_come_back(db):
    from datetime import timedelta

    from api.store.models import utcnow

    add_reports(db, [{"sms": "+15550910001", "prefer": "sms"}, {"sms": "+15550910002", "prefer": "sms"}])
    live, dead, sweeper = (_worker(db, lease_s=5, worker_id=f"w{i}") for i in range(3))
    try:
        assert len(live.claim(utcnow(), 1)) == 1 and len(dead.claim(utcnow(), 1)) == 1
        later = utcnow() + timedelta(seconds=6)
        live.clock = lambda: later
        assert live.renew() == 1
        assert sweeper.reconcile(later) == 1  # only the dead worker's claim
        with db.read() as s:
            assert dict(s.execute(select(OutboxMessage.status, OutboxMessage.claimed_by)).all()) == {
                "claimed": "w0", "pending": None}
    finally:
        for w in (live, dead, sweeper):
            w.close()


def test_channels_without_provider_keys_send_one_message_at_a_time(db):
    """A re-send after a crash reaches a person twice only on a channel whose provider cannot fold it by its key, so
    those channels (e-mail always) have one message in flight per process; a keyed SMS gateway uses the threads."""
    add_reports(db, [{"email": f"lane{i}@example.org", "prefer": "email"} for i in range(12)]
                + [{"sms": f"+1555093{i:04d}", "prefer": "sms"} for i in range(12)])

    class Probe:
        def __init__(self, name):
            self.name, self.now, self.most, self.lock = name, 0, 0, threading.Lock()

        def send(self, msg):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(0.03)
            with self.lock:
                self.now -= 1
            return f"{self.name}:{msg.key}"

        def close(self):
            pass

    for keyed, sms_most in ((["sms"], lambda n: n > 1), ([], lambda n: n == 1)):
        probes = {"email": Probe("email"), "sms": Probe("sms")}
        s = settings_for(None, None, threads=6, batch_size=50, idempotent_channels=keyed)
        w = Worker(db, s, {"log": channels.LogChannel(), **probes}, seed=1)
        try:
            assert w.serial == ({"email"} if keyed else {"email", "sms"})
            assert w.run_once() == 24
        finally:
            w.close()
        assert probes["email"].most == 1 and sms_most(probes["sms"].most), (keyed, probes["sms"].most)
        assert _statuses(db) == {"sent": 24}
        with db.write() as session, session.begin():  # the same rows again, for the other configuration
            session.execute(OutboxMessage.__table__.update().values(status="pending", claimed_by=None))


def test_only_channels_that_can_honour_a_key_may_be_declared_idempotent():
    import pydantic

    from api.notify.config import NotifySettings

    assert NotifySettings(idempotent_channels=["sms", "webhook"]).idempotent_channels == ["sms", "webhook"]
    with pytest.raises(pydantic.ValidationError, match="SMTP has no keys"):
        NotifySettings(idempotent_channels=["email"])


def test_cli_runs_several_worker_processes_and_replaces_one_that_dies(db_url, db, smtp):
    """``--processes 2``: two workers deliver (each its own one-at-a-time e-mail lane); one killed is replaced; SIGTERM
    stops them all with status 0. Bad counts are a one-line CLI error."""
    add_reports(db, [{"email": f"p{i}@example.org", "prefer": "email"} for i in range(40)])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OMS_NOTIFY_")}, "PYTHONPATH": str(ROOT),
           "OMS_NOTIFY_SMTP_HOST": "127.0.0.1", "OMS_NOTIFY_SMTP_PORT": str(smtp.port)}
    cmd = [sys.executable, "-m", "api.commands", "notify", "worker", "--database-url", db_url, "--log-level",
           "warning"]
    bad = subprocess.run([*cmd, "--processes", "0"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "whole number from 1 to 64" in bad.stderr and "Traceback" not in bad.stderr
    proc = subprocess.Popen([*cmd, "--processes", "2", "--id", "pair"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while _statuses(db) != {"sent": 40} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _statuses(db) == {"sent": 40}
        with db.read() as s:
            workers = set(s.scalars(select(NotifyDelivery.worker)))
        assert workers <= {"pair/0", "pair/1"} and workers
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert len(children) == 2
        time.sleep(10)  # past the supervisor's "died at start" window
        os.kill(children[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
            if len(now) == 2 and children[0] not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and children[0] not in now  # replaced
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "no-journal"])
def test_smtp_stages_many_e_mails_at_once_but_has_one_accepted_and_unrecorded(db, smtp, journal):
    """E-mail travels on many threads (MAIL, RCPT, DATA, the text) while the final line, whose 250 is the server's
    acceptance, and the record of the result go one at a time: when a finish starts, every earlier acceptance is on
    record (in the database, or on SQLite in the worker's journal, whose lines are committed in groups)."""
    add_reports(db, [{"email": f"stage{i}@example.org", "prefer": "email"} for i in range(30)])
    smtp.faults.mode, smtp.faults.delay = "slow", 0.01
    s = settings_for(smtp, None, threads=6, batch_size=50, accept_journal=journal)
    chans = channels.from_settings(s)
    email, lock = chans["email"], threading.Lock()
    staging, most, finishes = [0], [0], []
    stage, finish = email.stage, email.finish
    w = Worker(db, s, chans, seed=1)

    def counted_stage(msg):
        with lock:
            staging[0] += 1
            most[0] = max(most[0], staging[0])
        try:
            time.sleep(0.01)
            return stage(msg)
        finally:
            with lock:
                staging[0] -= 1

    def on_record() -> int:
        with db.read() as session:
            keys = set(session.scalars(select(OutboxMessage.idempotency_key).where(OutboxMessage.status == "sent")))
        if w.journal is not None:
            keys |= {e[1] for e in journal_mod._read(w.journal.path)[1]}
        return len(keys)

    def checked_finish(conn):
        finishes.append(on_record())  # what was on record when this acceptance began
        return finish(conn)

    email.stage, email.finish = counted_stage, checked_finish
    assert (w.journal is not None) == (journal and db.is_sqlite)
    try:
        assert w.run_once() == 30
    finally:
        w.close()
    assert _statuses(db) == {"sent": 30} and len(smtp.received.deliveries) == 30 and smtp.received.duplicates == 0
    assert most[0] > 1  # staged concurrently
    assert finishes == list(range(30))  # one accepted-but-unrecorded at a time


def test_an_e_mail_staged_but_not_finished_is_not_delivered(smtp):
    """What a worker killed between the two phases leaves behind: the server drops the unfinished mail."""
    from api.notify.channels import Outgoing, SmtpChannel

    ch = SmtpChannel("127.0.0.1", smtp.port, "oms@example.org")
    conn = ch.stage(Outgoing("k-staged", "email", "a@example.org", "Subject", "text"))
    conn.sock.close()  # as a killed process's socket
    ch._local.conn = None
    ch.send(Outgoing("k-next", "email", "b@example.org", "Subject", "text"))
    time.sleep(0.2)
    assert set(smtp.received.deliveries) == {"k-next"}
    ch.close()
