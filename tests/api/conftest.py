"""Fixtures for the service tests: users with tokens for every role and a running app on the small hand-made
feeder, on each database backend (``db_url`` comes from tests/conftest.py)."""

from __future__ import annotations

import pytest
from service_helpers import make_client, make_users


def pytest_ignore_collect(collection_path, config):
    """The schema fuzzer starts a server when imported: collect it only when slow tests are selected."""
    if collection_path.name == "test_schemathesis.py":
        return (config.getoption("markexpr") or "").strip() == "not slow"
    return None


@pytest.fixture
def tokens(db_url):
    return make_users(db_url)


@pytest.fixture
def client(db_url, tokens):
    with make_client(db_url, tokens) as c:
        yield c
