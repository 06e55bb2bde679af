"""Alembic environment: the URL comes from ``config.attributes['url']`` (``oms db upgrade``) or OMS_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from api.settings import Settings
from api.store.db import make_engine
from api.store.migrate import metadata

config = context.config
target_metadata = metadata()


def _url() -> str:
    return config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or Settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url(), immediate=False)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
