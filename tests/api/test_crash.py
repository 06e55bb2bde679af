"""Crash test: kill -9 the server in the middle of a report storm, restart it, and find every report that was
answered 202 in the database and in an event, with nothing duplicated. Runs ``oms serve`` as a real process."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
from service_helpers import small_feeder
from sqlalchemy import func, select

from api.simulation.loadgen import ServerProcess, hammer, http_request
from api.store.db import Database
from api.store.models import Report
from api.web.auth import create_user

pytestmark = pytest.mark.slow


def test_kill_9_mid_storm_loses_nothing(db_url, tmp_path):
    from gis.io import write_territory

    territory = tmp_path / "small.gpkg"
    write_territory(small_feeder(), territory)
    db = Database(db_url)
    with db.write() as s, s.begin():
        _, token = create_user(s, "gateway", "integration")
    accounts = ["A-sp1", "A-sp2", "A-sp3", "A-sp4", "A-sp5"]
    rng = random.Random(3)

    def make(i):
        return http_request("POST", "/reports", {"account": rng.choice(accounts)},
                            {"Authorization": f"Bearer {token}", "Idempotency-Key": f"k{i}"})

    server = ServerProcess(db_url, str(territory), log_path=tmp_path / "server.log").start()
    box = {}
    storm = threading.Thread(target=lambda: box.update(results=hammer(server.port, make, concurrency=16,
                                                                      seconds=4.0)[0]))
    storm.start()
    time.sleep(2.0)
    server.kill()
    storm.join()
    answered = [json.loads(r.body)["reference"] for r in box["results"] if r.status == 202]
    assert len(answered) > 50, "the storm did not get going before the kill"

    restarted = ServerProcess(db_url, str(territory), log_path=tmp_path / "server.log").start()
    try:
        restarted.wait_processed(timeout=60)
    finally:
        restarted.stop()
    with db.read() as s:
        stored = dict(s.execute(select(Report.reference, Report.event_id)).all())
        rows = s.scalar(select(func.count()).select_from(Report))
        keys = s.scalar(select(func.count(func.distinct(Report.idempotency_key))))
    db.dispose()
    assert [r for r in answered if r not in stored] == []
    assert [r for r in answered if stored[r] is None] == []
    assert rows == keys == len(stored)
