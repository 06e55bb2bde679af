"""Alembic migrations from an empty database, on SQLite and PostgreSQL; the schema matches the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from api.store.db import make_engine
from api.store.migrate import current, downgrade, head, metadata, upgrade

EXPECTED = {"users", "api_tokens", "reports", "meter_messages", "scada_messages", "events", "event_history",
            "crews", "crew_positions", "plans", "assignments", "outbox", "engine_journal", "audit_log", "settings"}


def test_upgrade_from_empty_matches_models(db_url):
    # the fixture already upgraded from empty; check where it landed and that nothing drifted
    assert current(db_url) == head()
    engine = make_engine(db_url, immediate=False)
    try:
        tables = set(inspect(engine).get_table_names())
        assert tables >= EXPECTED
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata())
        # SQLite cannot tell DateTime(timezone=True) apart; only structural differences count
        structural = [d for d in diff if not (isinstance(d, list) and d and d[0][0] == "modify_type")]
        assert structural == [], structural
    finally:
        engine.dispose()


def test_downgrade_to_empty_and_back(db_url):
    downgrade(db_url, "base")
    assert current(db_url) is None
    engine = make_engine(db_url, immediate=False)
    assert not (EXPECTED & set(inspect(engine).get_table_names()))
    engine.dispose()
    upgrade(db_url)
    assert current(db_url) == head()


def test_bad_database_url_is_a_clear_error():
    with pytest.raises(ValueError, match="in-memory"):
        make_engine("sqlite://")
    with pytest.raises(ValueError, match="not valid"):
        make_engine("no-scheme-here")
