"""Fixtures for the notification tests (``db_url`` comes from tests/conftest.py): real local providers —
an aiosmtpd SMTP server and an HTTP SMS gateway — started per test."""

from __future__ import annotations

import pytest

from api.notify.receivers import SmsGateway, SmtpReceiver
from api.store.db import Database


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
