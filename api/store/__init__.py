"""Persistence: the database engine and sessions, the typed SQLAlchemy models, and Alembic migrations."""
