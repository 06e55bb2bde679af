"""The live maps re-read the database only when something was committed, and never serve a stale state.

The public map's refresh (every second while members poll) used to read every open event, crew and assignment
even when nothing had changed; :meth:`api.store.db.Database.change_stamp` lets it skip that read.
"""

from __future__ import annotations

from service_helpers import make_client
from sqlalchemy import update

from api.store.db import Database
from api.store.models import Crew


def _crew_lat(state, crew_id: str) -> float:
    return next(c.lat for c in state.crews if c.crew_id == crew_id)


def test_change_stamp_moves_with_every_commit_from_any_connection(db_url):
    db, other = Database(db_url), Database(db_url)  # ``other``: another process's connections
    try:
        before = db.change_stamp()
        assert before is not None
        with other.write() as session, session.begin():
            session.execute(update(Crew).where(Crew.id == "nobody").values(lat=1.0))  # a write transaction
            session.add(Crew(id="CX", name="Crew x", lat=50.0, lon=11.5))
        after_other = db.change_stamp()
        assert after_other != before
        with db.write() as session, session.begin():  # this handle's own writers count too
            session.execute(update(Crew).where(Crew.id == "CX").values(lat=50.1))
        assert db.change_stamp() != after_other
        if db.is_sqlite:  # (PostgreSQL's moves with the whole server's writes: other tests may be writing)
            assert db.change_stamp() == db.change_stamp()
    finally:
        db.dispose()
        other.dispose()
    assert db.change_stamp() is None  # a disposed handle cannot say: its reader reads (and fails) as before


def test_map_state_is_read_again_only_after_a_commit(db_url, tokens):
    with make_client(db_url, tokens) as client:
        provider = client.app.state.maps.provider
        reads = []
        build = provider._build
        provider._build = lambda previous: reads.append(1) or build(previous)
        first = provider.fresh()
        reads.clear()
        for _ in range(5):  # nothing committed: the same state, without reading the tables again
            assert provider.fresh() is first
        if Database(db_url).is_sqlite:  # (PostgreSQL's stamp also moves with other tests' writes)
            assert reads == []

        other = Database(db_url)
        try:
            with other.write() as session, session.begin():
                session.execute(update(Crew).where(Crew.id == "C1").values(lat=50.02))
        finally:
            other.dispose()
        moved = provider.fresh()  # right after the commit: never the stale state
        assert _crew_lat(moved, "C1") == 50.02 and _crew_lat(first, "C1") == 50.0
        assert moved.version != first.version
        assert provider.fresh() is moved
