"""Rejecting a proposed plan goes through the live service, as accepting does: only the leader decides, the plan's
proposed assignments are cancelled, the stream says so, and an accept and a reject of one plan cannot both win."""

from __future__ import annotations

import threading

from service_helpers import count, make_client

from api.errors import ApiError
from api.store.models import Assignment, Plan

D = "dispatcher"


def _proposed_plan(c) -> int:
    r = c.post("/reports", json={"account": "A-sp3"})
    assert r.status_code == 202, r.text
    c.wait_processed()
    plan_id = c.app.state.oms.live.replan()
    assert plan_id is not None
    assert count(c.db_url, Assignment, Assignment.plan_id == plan_id, Assignment.status == "proposed") >= 1
    return plan_id


def test_reject_is_the_live_services_decision(db_url, tokens):
    with make_client(db_url, tokens, plan_mode="propose") as c:
        c.db_url = db_url
        live = c.app.state.oms.live
        plan_id = _proposed_plan(c)

        # a standby process refuses, as it refuses an accept: the leader alone decides on plans
        live.role = "standby"
        r = c.post(f"/plans/{plan_id}/reject", headers=c.as_(D))
        assert r.status_code == 503 and "standby" in r.json()["error"]["message"]
        assert count(db_url, Plan, Plan.id == plan_id, Plan.status == "proposed") == 1
        live.role = "single"

        seq = live.broker.seq
        r = c.post(f"/plans/{plan_id}/reject", headers=c.as_(D))
        assert r.status_code == 200 and r.json() == {"id": plan_id, "status": "rejected"}
        assert count(db_url, Plan, Plan.id == plan_id, Plan.status == "rejected") == 1
        assert count(db_url, Assignment, Assignment.plan_id == plan_id, Assignment.status == "proposed") == 0
        assert count(db_url, Assignment, Assignment.status.in_(("assigned", "en_route", "on_site"))) == 0
        sent = [(m.type, m.data) for m in live.broker.since(seq)]
        assert ("plan", {"id": plan_id, "status": "rejected", "by": "dispatcher-user"}) in sent

        # decided once: a second reject or a late accept is a conflict, an unknown plan is not found
        assert c.post(f"/plans/{plan_id}/reject", headers=c.as_(D)).status_code == 409
        assert c.post(f"/plans/{plan_id}/accept", headers=c.as_(D)).status_code == 409
        r = c.post("/plans/987654/reject", headers=c.as_(D))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_accept_and_reject_at_once_one_wins(db_url, tokens):
    with make_client(db_url, tokens, plan_mode="propose") as c:
        c.db_url = db_url
        live = c.app.state.oms.live
        for _ in range(3):
            plan_id = _proposed_plan(c)
            start, outcome = threading.Barrier(2), {}

            def decide(verb, plan_id=plan_id, start=start, outcome=outcome):
                start.wait()
                try:
                    getattr(live, f"{verb}_plan")(plan_id, "dispatcher-user")
                    outcome[verb] = "done"
                except ApiError as exc:
                    outcome[verb] = exc.status

            threads = [threading.Thread(target=decide, args=(v,)) for v in ("accept", "reject")]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert sorted(outcome.values(), key=str) == [409, "done"], outcome
            status = "applied" if outcome["accept"] == "done" else "rejected"
            assert count(db_url, Plan, Plan.id == plan_id, Plan.status == status) == 1
