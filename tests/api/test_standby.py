"""Hot standby: two real ``oms serve`` processes on one PostgreSQL. Both take reports; only the advisory-lock
holder runs the engine and plans; kill -9 the leader and the standby takes over within 15 s, losing nothing."""

from __future__ import annotations

import secrets
import time

import httpx
import pytest
from service_helpers import small_feeder
from sqlalchemy import func, select

from api.simulation.loadgen import ServerProcess
from api.store.db import Database
from api.store.models import Crew, Plan, Report
from api.web.auth import create_user

pytestmark = [pytest.mark.slow]


def wait_for(predicate, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def standby_pair(db_url: str, tmp_path):
    """Territory, an integration token, a crew, and the environment of a standby process (its own lock key)."""
    from gis.io import write_territory

    territory = tmp_path / "small.gpkg"
    write_territory(small_feeder(), territory)
    db = Database(db_url)
    with db.write() as s, s.begin():
        _, token = create_user(s, "gateway", "integration")
        s.add(Crew(id="C1", name="Crew one", skills=["line", "service", "tree"], lat=50.0, lon=11.52))
    db.dispose()
    env = {"OMS_STANDBY": "1", "OMS_LEADER_POLL_S": "0.5", "OMS_LEADER_LOCK_KEY": str(secrets.randbelow(2**40)),
           "OMS_REPLAN_DEBOUNCE_S": "0.5", "OMS_REPLAN_MAX_WAIT_S": "2"}
    return str(territory), token, env


def post(server: ServerProcess, token: str, key: str, account: str) -> str:
    r = httpx.post(server.url + "/reports", json={"account": account, "hazards": ["wires_down"]}, timeout=15,
                   headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key})
    assert r.status_code == 202, r.text
    return r.json()["reference"]


def test_leader_killed_standby_takes_over_and_nothing_is_lost(db_url, tmp_path):
    if db_url.startswith("sqlite"):
        pytest.skip("hot standby needs PostgreSQL")
    territory, token, env = standby_pair(db_url, tmp_path)
    a = ServerProcess(db_url, territory, env=env, log_path=tmp_path / "a.log").start()
    b = ServerProcess(db_url, territory, env=env, log_path=tmp_path / "b.log").start()
    try:
        assert (a.health()["role"], b.health()["role"]) == ("leader", "standby")
        assert httpx.get(b.url + "/health?leader=1").status_code == 503
        assert httpx.get(a.url + "/health?leader=1").status_code == 200
        # both take intake; the leader analyses what the standby stored too
        refs = [post(a if i % 2 else b, token, f"before-{i}", f"A-sp{1 + i % 5}") for i in range(10)]
        wait_for(lambda: a.health()["pending_reports"] == 0, 30, "the leader processing both processes' intake")
        # the standby refuses dispatcher work rather than racing the leader's engine
        db = Database(db_url)
        with db.read() as s:
            assert s.scalar(select(func.count()).select_from(Report).where(Report.event_id.is_(None))) == 0
        wait_for(lambda: _count(db, Plan) > 0, 30, "a plan from the leader")

        a.kill()
        took = wait_for(lambda: b.health()["role"] == "leader" and b.health()["engine"] == "running", 15,
                        "the standby taking over")
        plans = _count(db, Plan)
        refs += [post(b, token, f"after-{i}", f"A-sp{1 + i % 5}") for i in range(10)]
        wait_for(lambda: b.health()["pending_reports"] == 0, 30, "the new leader processing intake")
        wait_for(lambda: _count(db, Plan) > plans, 30, "a plan from the new leader")
        with db.read() as s:
            stored = dict(s.execute(select(Report.reference, Report.event_id)).all())
        db.dispose()
        assert [r for r in refs if r not in stored] == [] and len(stored) == len(refs) == 20
        assert [r for r in refs if stored[r] is None] == []
        assert took < 15
    finally:
        a.kill()
        b.kill()


def _count(db: Database, model) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model))
