"""The per-test PostgreSQL schema is dropped even when a session of the test outlives it, holding a lock there: the
drop ends that session instead of waiting on it (a hang) or losing a lock cycle to it (deadlock detected)."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
from sqlalchemy import create_engine, text

from api.simulation.loadgen import fresh_database

PG_URL = os.environ.get("OMS_TEST_POSTGRES_URL")


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="OMS_TEST_POSTGRES_URL not set")
def test_the_schema_is_dropped_with_a_reader_still_in_it(tmp_path):
    def hung(*_):
        raise TimeoutError("the schema drop waited on the reader")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    with fresh_database(PG_URL, tmp_path) as url:
        engine = create_engine(url)
        reader = engine.connect()
        reader.execute(text("CREATE TABLE t (x int)"))
        reader.commit()
        reader.execute(text("SELECT * FROM t"))  # a transaction left open: it holds a lock on t
        schema = reader.execute(text("SELECT current_schema()")).scalar()
    admin = create_engine(PG_URL)
    with admin.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": schema}).scalar() == 0
    admin.dispose()
    with contextlib.suppress(Exception):  # the drop ended the reader's session
        reader.close()
    engine.dispose()
    signal.alarm(0)
