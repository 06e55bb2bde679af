"""Intake survives its database: a commit that fails (a row the database refuses, a terminated connection, a
SQLite lock held past the busy timeout) fails only its own batch with a clean 422/503 + Retry-After, waiting
requests time out, the writer carries on, /health tells the truth and the engine resynchronises by itself.

Every test bounds its waits (``within``): before these changes the writer thread died and the next request
waited forever."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from service_helpers import count, make_client
from sqlalchemy import create_engine, event, select, text

from api.errors import ApiError
from api.service.intake import IntakeWriter
from api.store.db import Database
from api.store.models import Event, OutboxMessage, Report

GOOD = {"power": "out", "channel": "web", "client_id": "gateway", "idempotency_key": None, "sp_id": "sp1",
        "account": "A-sp1"}


def within(seconds: float, fn, *args, **kwargs):
    """``fn(*args)`` in a thread; fails the test (instead of hanging it) if it takes longer than ``seconds``."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(fn, *args, **kwargs).result(timeout=seconds)
    finally:
        pool.shutdown(wait=False)  # a hung call must not hang the test too


def unstorable_row(db_url: str) -> dict:
    """A report row that passes Python but fails in the database with something other than a constraint: a NUL
    byte in text on PostgreSQL; an integer SQLite cannot hold (the driver refuses it mid-transaction)."""
    if db_url.startswith("sqlite"):
        return {**GOOD, "comment": 2 ** 70}
    return {**GOOD, "comment": "a\u0000b"}


def test_writer_survives_a_row_the_database_refuses(db_url):
    """The bad row is refused alone (4xx/503, not stored); the good row in the same batch and every later one is
    stored. Before: a non-constraint error killed the writer thread and later requests waited forever."""

    async def run():
        writer = IntakeWriter(Database(db_url), batch_max=10, request_timeout=5.0)
        tasks = [asyncio.ensure_future(writer.submit_report(r)) for r in (unstorable_row(db_url), GOOD)]
        await asyncio.sleep(0)  # both queued before the writer starts: one batch
        writer.start()
        try:
            first = await asyncio.gather(*tasks, return_exceptions=True)
            later = await asyncio.wait_for(writer.submit_report(dict(GOOD)), 10)
            return first, later, writer.status
        finally:
            writer.stop()
            writer.db.dispose()

    (bad, good), later, status = within(30, asyncio.run, run())
    assert isinstance(bad, ApiError) and bad.status in (422, 503), bad
    assert isinstance(good, tuple) and isinstance(later, tuple)
    assert status == "ok"
    refs = {good[0], later[0]}
    db = Database(db_url)
    with db.read() as s:
        assert set(s.scalars(select(Report.reference))) == refs
        assert s.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == f"ack:{good[0]}"))
    db.dispose()


def test_nul_in_a_comment_is_refused_or_stored_and_intake_goes_on(client, db_url):
    r = within(20, client.post, "/reports", json={"account": "A-sp1", "comment": "a\u0000b"})
    assert r.status_code in (202, 422), r.text
    if r.status_code == 202:
        assert count(db_url, Report, Report.reference == r.json()["reference"]) == 1
    after = within(20, client.post, "/reports", json={"account": "A-sp2"})
    assert after.status_code == 202, after.text
    assert within(20, client.get, "/health").json()["writer"] == "ok"


# ------------------------------------------------------------------------------------------ SQLite lock held


def _slow_busy_timeout(app, ms: int) -> None:
    """Make the service's SQLite connections give up on a lock after ``ms`` (the default 30 s would make the test
    slow); listeners run in order, so this follows the engine's own pragmas."""
    for engine in {app.state.oms.db.engine, app.state.oms.db.read_engine}:
        event.listen(engine, "connect", lambda conn, _r: conn.execute(f"PRAGMA busy_timeout={ms}"))
        engine.dispose()


@pytest.fixture
def sqlite_only(db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("a SQLite lock")
    return db_url


def test_sqlite_lock_past_the_busy_timeout_gives_503_then_intake_resumes(sqlite_only, tokens):
    url = sqlite_only
    with make_client(url, tokens, intake_request_timeout_s=1.0) as client:
        _slow_busy_timeout(client.app, 2000)
        assert client.post("/reports", json={"account": "A-sp1"}).status_code == 202
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with ThreadPoolExecutor(4) as pool:
                started = time.monotonic()
                answers = list(pool.map(lambda i: client.post("/reports", json={"account": "A-sp2"},
                                                              headers={"Idempotency-Key": f"held-{i}"}), range(4)))
                waited = time.monotonic() - started
            # the one being written fails with the lock (2 s); the ones queued behind it are withdrawn at 1 s
            assert [a.status_code for a in answers] == [503] * 4, [a.text for a in answers]
            assert all(a.headers["retry-after"] == "2" for a in answers)
            assert waited < 8
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["writer"].startswith("degraded")
        finally:
            holder.rollback()
            holder.close()
        released = time.monotonic()
        after = within(10, client.post, "/reports", json={"account": "A-sp3"})
        assert after.status_code == 202 and time.monotonic() - released < 5
        assert count(url, Report, Report.idempotency_key.like("held-%")) == 0  # refused means not stored
        deadline = time.monotonic() + 15  # the engine resynchronises with backoff; intake was back above
        while client.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get("/health").status_code == 200


# ------------------------------------------------------------------------------ PostgreSQL backend terminated


@pytest.fixture
def pg_app_url(db_url):
    """The test's PostgreSQL URL with its own application_name, so only this test's connections are killed."""
    if db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL backends")
    name = f"oms-test-{secrets.token_hex(4)}"
    return f"{db_url}&application_name={name}", name


def terminate(admin, name: str) -> int:
    with admin.connect() as conn:
        return len(conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'test' "
            "AND pid <> pg_backend_pid() AND application_name = :name"), {"name": name}).all())


def test_terminated_connection_mid_commit_fails_one_batch_then_intake_resumes(pg_app_url, tokens):
    url, name = pg_app_url
    base = url.split("&application_name")[0]
    schema = base.split("search_path%3D")[1]
    admin = create_engine(base.split("?")[0], isolation_level="AUTOCOMMIT")
    with make_client(url, tokens) as client:
        assert client.post("/reports", json={"account": "A-sp1"}).status_code == 202
        client.wait_processed()
        locker = create_engine(base.split("?")[0]).connect()
        locker.execute(text(f"LOCK TABLE {schema}.reports IN EXCLUSIVE MODE"))  # the writer's INSERT now waits
        box: dict = {}
        poster = threading.Thread(target=lambda: box.update(r=client.post("/reports", json={"account": "A-sp2"})))
        poster.start()
        try:
            deadline = time.monotonic() + 10
            with admin.connect() as conn:
                while not conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n "
                                           "AND wait_event_type = 'Lock'"), {"n": name}):
                    assert time.monotonic() < deadline, "the writer never blocked on the lock"
                    time.sleep(0.05)
            assert terminate(admin, name) >= 1
        finally:
            locker.rollback()
            locker.close()
        poster.join(20)
        assert not poster.is_alive(), "the request hung"
        assert box["r"].status_code == 503 and box["r"].headers["retry-after"] == "2", box["r"].text
        resumed = time.monotonic()
        after = within(10, client.post, "/reports", json={"account": "A-sp3"})
        assert after.status_code == 202 and time.monotonic() - resumed < 5
        client.wait_processed()
        assert count(url, Report) == 2  # the refused report is not stored
        health = client.get("/health").json()
        assert (health["writer"], health["engine"]) == ("ok", "running"), health
    admin.dispose()


# ------------------------------------------------------------------------------------- engine resynchronises


def test_engine_resynchronises_by_itself_after_a_failed_write(client, db_url):
    live = client.app.state.oms.live
    real = live._persist_events
    calls = {"n": 0}

    def fail_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated: the database went away mid-write")
        return real(*args, **kwargs)

    live._persist_events = fail_once
    r = client.post("/reports", json={"account": "A-sp1", "hazards": ["wires_down"]})
    assert r.status_code == 202
    deadline = time.monotonic() + 15
    while (live.stats["resyncs"] < 1 or live.status != "running") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.status == "running" and live.stats["resyncs"] == 1
    client.wait_processed()
    db = Database(db_url)
    with db.read() as s:
        report = s.scalar(select(Report))
        assert report.event_id is not None and report.processed_at is not None
        assert s.scalar(select(Event.report_count).where(Event.id == report.event_id)) == 1  # taken once
    db.dispose()
    assert client.get("/health").json()["status"] == "ok"


# ------------------------------------------------------------------------------------------------- SIGTERM


def test_sigterm_drains_and_exits_within_10_s_even_with_the_database_locked(sqlite_only, tmp_path):
    """Requests are waiting on a writer that waits on a held lock: SIGTERM still ends the process in < 10 s.
    Before: the requests waited forever and uvicorn waited for them; only kill -9 ended it."""
    import signal
    import subprocess

    from api.simulation.loadgen import ServerProcess, hammer, http_request

    url = sqlite_only
    server = ServerProcess(url, log_path=tmp_path / "server.log").start()
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        storm = threading.Thread(target=hammer, args=(server.port, lambda i: http_request(
            "POST", "/reports", {"account": "A-1", "lat": 50.0, "lon": 11.5})), kwargs={"concurrency": 8,
                                                                                          "seconds": 5.0})
        storm.start()
        time.sleep(1.5)  # requests are queued and one batch is waiting on the lock
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            pytest.fail("SIGTERM did not end the process within 10 s")
        assert time.monotonic() - started < 10
        storm.join(20)
    finally:
        holder.rollback()
        holder.close()
        server.kill()
