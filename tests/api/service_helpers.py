"""Helpers shared by the service tests (imported by conftest and the test modules)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gis"))

from small import small_feeder  # noqa: E402

from api.settings import Settings  # noqa: E402
from api.simulation.loadgen import count_rows  # noqa: E402
from api.store.db import Database  # noqa: E402
from api.store.models import Crew  # noqa: E402
from api.web.app import create_app  # noqa: E402
from api.web.auth import create_user  # noqa: E402

ROLES = ("member", "crew", "integration", "dispatcher", "admin")


def make_users(url: str) -> dict[str, str]:
    """One user per role (the crew user on crew C1, plus a second crew C2); returns role -> token."""
    db = Database(url)
    tokens = {}
    with db.write() as session, session.begin():
        session.add(Crew(id="C1", name="Crew one", skills=["line", "service", "tree"], lat=50.0, lon=11.52))
        session.add(Crew(id="C2", name="Crew two", skills=["line", "service"], lat=50.0, lon=11.51))
        session.flush()
        for role in ROLES:
            _, tokens[role] = create_user(session, f"{role}-user", role, "C1" if role == "crew" else None)
        _, tokens["crew2"] = create_user(session, "crew2-user", "crew", "C2")
    db.dispose()
    return tokens


def set_passwords(url: str, password: str) -> None:
    """Every user of :func:`make_users` gets ``password`` for the console sign-in."""
    from api.web.auth import set_password

    db = Database(url)
    with db.write() as session, session.begin():
        for name in (*(f"{r}-user" for r in ROLES), "crew2-user"):
            set_password(session, name, password)
    db.dispose()


class Client(TestClient):
    """A TestClient with helpers: ``as_(role)`` headers, ``wait_processed()`` for the live engine."""

    tokens: dict[str, str]

    def as_(self, role: str | None) -> dict[str, str]:
        return {} if role in (None, "anonymous") else {"Authorization": f"Bearer {self.tokens[role]}"}

    def wait_processed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/health").json()["pending_reports"] == 0:
                live = self.app.state.oms.live
                if live._queue.empty():
                    time.sleep(0.05)
                    return
            time.sleep(0.02)
        raise AssertionError("reports were not processed in time")


def make_client(url: str, tokens: dict[str, str], network=None, **settings) -> Client:
    opts = {"database_url": url, "replan_debounce_s": 3600.0, "replan_max_wait_s": 3600.0,
            "replan_time_limit_s": 1.0, **settings}
    app = create_app(Settings(**opts), network=network if network is not None else small_feeder())
    client = Client(app)
    client.tokens = tokens
    return client



def storm_client(url: str, tokens: dict[str, str], clock: list, network=None, **settings) -> Client:
    """A service on a storm clock the test moves (``clock[0]``) that re-plans only when told, deterministically
    (the ETR tests' set-up: every estimate comes from an explicit ``live.replan()``)."""
    opts = {"database_url": url, "engine_tick_s": 0.0, "replan_debounce_s": 3600.0, "replan_max_wait_s": 3600.0,
            "replan_time_limit_s": 1.0, "replan_deterministic": True, "replan_solution_limit": 20, **settings}
    app = create_app(Settings(**opts), network=network if network is not None else small_feeder(),
                     clock=lambda: clock[0], map_refresh_s=0)
    client = Client(app)
    client.tokens = tokens
    return client


def report_storm(client: Client, accounts, **report) -> None:
    """Outages reported from ``accounts`` (``report``: more of each report's body, or ``headers``), processed by the
    engine and planned once."""
    headers = report.pop("headers", None)
    for account in accounts:
        r = client.post("/reports", json={"account": account, **report}, headers=headers)
        assert r.status_code == 202, r.text
    client.wait_processed()
    live = client.app.state.oms.live
    live.settle()
    live.replan()


def set_crews(url: str, status: str, crew: str | None = None) -> None:
    """Every crew's status (or only ``crew``'s): ``off_shift`` before a storm, ``available`` when it starts."""
    from sqlalchemy import update

    db = Database(url)
    with db.write() as session, session.begin():
        q = update(Crew).values(status=status)
        session.execute(q if crew is None else q.where(Crew.id == crew))
    db.dispose()


count = count_rows  # rows of ``model`` matching ``where`` in the database at ``url``
