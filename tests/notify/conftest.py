"""Fixtures for the notification tests: a migrated database (SQLite always; PostgreSQL when OMS_TEST_POSTGRES_URL
is set), and real local providers — an aiosmtpd SMTP server and an HTTP SMS gateway — started per test."""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import create_engine, text

from api.db import Database, normalize_url
from api.migrate import upgrade
from api.notify.receivers import SmsGateway, SmtpReceiver

PG_URL = os.environ.get("OMS_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.skipif(
    not PG_URL, reason="OMS_TEST_POSTGRES_URL not set")])]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'oms.db'}"
        upgrade(url)
        yield url
        return
    schema = f"oms_notify_{secrets.token_hex(4)}"
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


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def smtp():
    server = SmtpReceiver().start()
    yield server
    server.faults.mode = "ok"
    server.stop()


@pytest.fixture
def gateway():
    server = SmsGateway().start()
    yield server
    server.faults.mode = "ok"
    server.stop()
