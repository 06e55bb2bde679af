"""The acceptance journal (SQLite): e-mail acceptances are written down one at a time and committed in groups; a worker
that dies between the two leaves its journal, and the next reconcile records those acceptances instead of re-sending."""

import os
import time

import pytest
from helpers import add_reports, settings_for
from sqlalchemy import func, select

from api.notify import channels
from api.notify import journal as journal_mod
from api.notify.models import NotifyDelivery
from api.notify.worker import Worker
from api.store.models import OutboxMessage, utcnow


def _statuses(db):
    with db.read() as s:
        return dict(
            s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
        )


def _worker(db, smtp, worker_id):
    s = settings_for(smtp, None, threads=4, batch_size=50, lease_s=1.0)
    return Worker(db, s, channels.from_settings(s), seed=1, worker_id=worker_id)


@pytest.fixture
def sqlite_db(db):
    if not db.is_sqlite:
        pytest.skip("the journal is SQLite's: PostgreSQL commits each acceptance")
    return db


def _die_before_commit(w: Worker) -> None:
    """The worker's commits of journaled acceptances fail, as if the process were killed before its group commit."""
    record = w.record

    def failing(jobs, now):
        if any(j.journaled for j in jobs):
            raise RuntimeError("killed before the commit")
        return record(jobs, now)

    w.record = failing


def test_a_dead_workers_journaled_acceptances_are_recorded_once_and_not_re_sent(sqlite_db, smtp):
    db = sqlite_db
    add_reports(db, [{"email": f"j{i}@example.org", "prefer": "email"} for i in range(12)])
    w1 = _worker(db, smtp, "w1")
    _die_before_commit(w1)
    assert w1.run_once() == 12
    assert len(smtp.received.deliveries) == 12 and _statuses(db) == {
        "claimed": 12
    }  # accepted, none committed
    os.close(w1.journal.fd)  # kill -9: the flock goes with the process, the file stays
    w1.journal.fd = -1
    w1.close()
    assert w1.journal.path.exists()

    time.sleep(1.2)  # the dead worker's lease (1 s) runs out
    w2 = _worker(db, smtp, "w2")
    try:
        assert w2.reconcile() == 0  # nothing went back to pending
        assert _statuses(db) == {"sent": 12} and not w1.journal.path.exists()
        assert w2.run_once() == 0
        assert journal_mod.recover(db, w2.journal_dir, utcnow()) == 0  # applied once
    finally:
        w2.close()
    assert smtp.received.duplicates == 0 and len(smtp.received.deliveries) == 12
    with db.read() as s:
        accepted = s.execute(
            select(NotifyDelivery.idempotency_key, func.count())
            .where(NotifyDelivery.outcome == "accepted")
            .group_by(NotifyDelivery.idempotency_key)
        ).all()
    assert len(accepted) == 12 and {n for _, n in accepted} == {1}


def test_without_the_journal_those_acceptances_would_be_re_sent(sqlite_db, smtp):
    """The same death with the journal switched off: every accepted but uncommitted e-mail goes out again."""
    db = sqlite_db
    add_reports(db, [{"email": f"n{i}@example.org", "prefer": "email"} for i in range(5)])
    s = settings_for(smtp, None, threads=4, batch_size=50, lease_s=1.0, accept_journal=False)
    w1 = Worker(db, s, channels.from_settings(s), seed=1, worker_id="w1")
    assert w1.journal is None
    record = w1.record
    w1.record = lambda jobs, now: (
        (_ for _ in ()).throw(RuntimeError("killed"))
        if any(j.outcome == "accepted" for j in jobs)
        else record(jobs, now)
    )
    assert w1.run_once() == 5
    w1.close()
    time.sleep(1.2)  # the dead worker's lease (1 s) runs out
    w2 = _worker(db, smtp, "w2")
    try:
        assert w2.reconcile() == 5
        assert w2.run_once() == 5
    finally:
        w2.close()
    assert smtp.received.duplicates == 5


def test_a_live_workers_journal_is_left_alone(sqlite_db, smtp):
    db = sqlite_db
    add_reports(db, [{"email": "live@example.org", "prefer": "email"}])
    w = _worker(db, smtp, "alive")
    try:
        (row_id,) = w.claim(utcnow())
        with db.read() as s:
            key = s.scalar(select(OutboxMessage.idempotency_key).where(OutboxMessage.id == row_id))
        w.journal.append(row_id, key, "250 ok", 1, "email")
        assert journal_mod.recover(db, w.journal_dir, utcnow()) == 0
        assert w.journal.path.exists() and _statuses(db) == {"claimed": 1}
    finally:
        w.close()


def test_a_long_journal_starts_over_once_everything_in_it_is_committed(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_mod, "ROTATE_LINES", 3)
    j = journal_mod.Journal(tmp_path, "w")
    for i in range(3):
        j.append(i, f"k{i}", None, 1, "email")
    j.committed(2)
    assert len(journal_mod._read(j.path)[1]) == 3  # one still uncommitted: kept
    j.committed(1)
    assert journal_mod._read(j.path) == ("w", [])
    j.append(9, "k9", None, 1, "email")
    assert journal_mod._read(j.path)[1] == [[9, "k9", None, 1, "email", None]]
    j.close()
    assert not j.path.exists()


def test_a_recovered_acknowledgment_keeps_the_etr_it_stated(sqlite_db, smtp):
    """An acknowledgment states the event's ETR; recorded from a dead worker's journal, the ledger must still say so,
    or the planner would send that person the same ETR again as an update."""
    from datetime import timedelta

    from sqlalchemy import update

    from api.notify.models import NotifyLedger
    from api.store.models import Event, Report

    db = sqlite_db
    now = utcnow()
    etr = (now + timedelta(hours=3)).replace(microsecond=0)
    with db.write() as s, s.begin():
        s.add(Event(id="E1", state="confirmed", device_id="F2", device_kind="fuse", event_class="feeder",
                    customers_out=4, started_at=now, updated_at=now, etr_earliest=etr - timedelta(hours=1),
                    etr_latest=etr))
    ids = add_reports(db, [{"email": f"a{i}@example.org", "prefer": "email"} for i in range(3)])
    with db.write() as s, s.begin():
        s.execute(update(Report).where(Report.id.in_(ids)).values(event_id="E1"))
    w1 = _worker(db, smtp, "w1")
    _die_before_commit(w1)
    assert w1.run_once() == 3
    os.close(w1.journal.fd)  # kill -9
    w1.journal.fd = -1
    w1.close()
    time.sleep(1.2)
    w2 = _worker(db, smtp, "w2")
    try:
        w2.reconcile()
    finally:
        w2.close()
    with db.read() as s:
        ledger = s.scalars(select(NotifyLedger).where(NotifyLedger.kind == "etr_update")).all()
    assert sorted(r.audience for r in ledger) == [f"email:a{i}@example.org" for i in range(3)]
    assert {r.event_id for r in ledger} == {"E1"} and all(r.digest for r in ledger)
    assert {r.etr.replace(tzinfo=None) for r in ledger} == {etr.replace(tzinfo=None)}
