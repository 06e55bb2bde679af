"""Fixtures shared by every test package: a fresh, migrated database on each backend.

SQLite always; PostgreSQL too when OMS_TEST_POSTGRES_URL is set (.ci/run sets it when a server is reachable).
Each PostgreSQL test gets its own schema, dropped afterwards, so runs are independent.
"""

from __future__ import annotations

import os

import pytest

PG_URL = os.environ.get("OMS_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.skipif(
    not PG_URL, reason="OMS_TEST_POSTGRES_URL not set")])]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, migrated database: a SQLite file, or a new PostgreSQL schema dropped afterwards."""
    from api.simulation.loadgen import fresh_database
    from api.store.migrate import upgrade

    with fresh_database(PG_URL if request.param == "postgres" else None, tmp_path) as url:
        upgrade(url)
        yield url
