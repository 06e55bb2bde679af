"""Fixtures shared by every test package: a fresh, migrated database on each backend.

SQLite always; PostgreSQL too when OMS_TEST_POSTGRES_URL is set (.ci/run sets it when a server is reachable).
Each PostgreSQL test gets its own schema, dropped afterwards, so runs are independent.
"""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import create_engine, text

PG_URL = os.environ.get("OMS_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.skipif(
    not PG_URL, reason="OMS_TEST_POSTGRES_URL not set")])]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, migrated database: a SQLite file, or a new PostgreSQL schema dropped afterwards."""
    from api.db import normalize_url
    from api.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'oms.db'}"
        upgrade(url)
        yield url
        return
    schema = f"oms_test_{secrets.token_hex(4)}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{normalize_url(PG_URL)}{sep}options=-csearch_path%3D{schema}"
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
