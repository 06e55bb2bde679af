"""Fixtures for the service tests: a migrated database (SQLite always; PostgreSQL when OMS_TEST_POSTGRES_URL is
set), users with tokens for every role, and a running app on the small hand-made feeder."""

from __future__ import annotations

import os
import secrets

import pytest
from service_helpers import make_client, make_users
from sqlalchemy import create_engine, text

from api.db import normalize_url
from api.migrate import upgrade

PG_URL = os.environ.get("OMS_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.skipif(
    not PG_URL, reason="OMS_TEST_POSTGRES_URL not set")])]


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{normalize_url(base)}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, migrated database: a SQLite file, or a new PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'oms.db'}"
        upgrade(url)
        yield url
        return
    schema = f"oms_test_{secrets.token_hex(4)}"
    admin = create_engine(normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = _pg_schema_url(PG_URL, schema)
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def tokens(db_url):
    return make_users(db_url)


@pytest.fixture
def client(db_url, tokens):
    with make_client(db_url, tokens) as c:
        yield c
