"""Chaos (slow): bench/chaos.py's scenarios against real ``oms serve`` processes, with the goals as assertions:
no acknowledged report lost or duplicated, intake back within 5 s of the database, takeover within 15 s."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import chaos  # noqa: E402

pytestmark = pytest.mark.slow
PG_URL = os.environ.get("OMS_TEST_POSTGRES_URL")


def check(figures: dict) -> None:
    assert figures["acknowledged"] > 50, figures
    assert (figures["lost"], figures["duplicated"], figures["unlinked"]) == (0, 0, 0), figures
    assert figures["recovery_s"] is not None and figures["recovery_s"] < 5, figures


def test_kill_9_and_a_sqlite_lock_past_the_busy_timeout(tmp_path):
    kill = chaos.kill9(f"sqlite:///{tmp_path / 'kill.db'}", tmp_path, seconds=6)
    check(kill)
    lock = chaos.sqlite_lock(tmp_path, seconds=6, lock_seconds=35)  # longer than the 30 s busy timeout
    check(lock)
    assert lock["health_during"]["status"] == "degraded"


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="OMS_TEST_POSTGRES_URL not set")
def test_terminated_connections_and_a_killed_leader(tmp_path):
    url = PG_URL
    terminate = chaos._fresh(url, tmp_path, chaos.terminate, 8)
    check(terminate)
    assert terminate["connections_terminated"] >= 3 and terminate["health_after"] == "ok"
    leader = chaos._fresh(url, tmp_path, chaos.leader_kill, 8)
    check(leader)
    assert leader["takeover_s"] is not None and leader["takeover_s"] < 15
