"""The live engine in the service: reports become events, dispatcher actions, re-planning that respects manual
decisions, restart rebuild from the database, and the SSE stream."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from service_helpers import count, make_client
from sqlalchemy import select

from api.store.db import Database
from api.store.models import Assignment, Crew, Event, EventHistory, JournalEntry, Report

D = "dispatcher"


def report(c, account, **kw):
    r = c.post("/reports", json={"account": account, **kw})
    assert r.status_code == 202, r.text
    return r.json()["reference"]


def events(c, **params):
    return c.get("/events", params=params, headers=c.as_(D)).json()


def test_reports_roll_up_into_one_event_with_explanation(client):
    for sp in ("sp1", "sp2", "sp3", "sp4"):
        report(client, f"A-{sp}")
    client.wait_processed()
    evs = events(client)
    assert len(evs) == 1
    ev = evs[0]
    assert ev["customers_out"] >= 7 and ev["report_count"] == 4 and ev["explanation"]
    assert ev["tier"] == 1  # sp4 is on life support
    detail = client.get(f"/events/{ev['id']}", headers=client.as_(D)).json()
    assert len(detail["report_ids"]) == 4 and detail["history"][0]["actor"] == "engine"


def test_dispatcher_actions_and_restored_event_refuses_dispatch(client):
    report(client, "A-sp5", hazards=["wires_down"])
    client.wait_processed()
    eid = events(client)[0]["id"]
    r = client.post(f"/events/{eid}/confirm", json={"cause": "tree"}, headers=client.as_(D))
    assert r.status_code == 200 and r.json()["state"] == "confirmed" and r.json()["cause"] == "tree"
    r = client.post(f"/events/{eid}/restore", json={}, headers=client.as_(D))
    assert r.status_code == 200 and r.json()["state"] == "restored"
    r = client.post("/assignments", json={"event_id": eid, "crew_id": "C1"}, headers=client.as_(D))
    assert r.status_code == 409 and "restored" in r.json()["error"]["message"]
    for action, body in (("confirm", {}), ("cancel", {"reason": "x"}), ("restore", {})):
        r = client.post(f"/events/{eid}/{action}", json=body, headers=client.as_(D))
        assert r.status_code == 409, (action, r.text)
    assert client.post("/events/E404/confirm", json={}, headers=client.as_(D)).status_code == 404
    assert client.post("/assignments", json={"event_id": "E404", "crew_id": "C1"},
                       headers=client.as_(D)).status_code == 404
    assert events(client) == [] and len(events(client, include_closed=True)) == 1


def test_partial_restoration_by_switching_keeps_the_event_and_its_crew(client):
    for sp in ("sp1", "sp2", "sp3", "sp4"):
        report(client, f"A-{sp}")
    client.wait_processed()
    (ev,) = events(client)
    before = ev["customers_out"]
    assigned = client.post("/assignments", json={"event_id": ev["id"], "crew_id": "C1"}, headers=client.as_(D))
    assert assigned.status_code == 201, assigned.text
    url = f"/events/{ev['id']}/restore"
    bad = client.post(url, json={"devices": ["NOPE"]}, headers=client.as_(D))
    assert bad.status_code == 404 and "NOPE" in bad.json()["error"]["message"]  # well-formed, names nothing
    outside = client.post(url, json={"devices": ["T4"]}, headers=client.as_(D))  # T4 is on the other feeder
    assert outside.status_code == 409 and "not inside" in outside.json()["error"]["message"]
    r = client.post(url, json={"devices": ["F1"], "note": "fed from the tie"}, headers=client.as_(D))
    assert r.status_code == 200, r.text
    part = r.json()
    assert part["state"] not in ("restored", "cancelled") and part["customers_out"] == before - 3  # F1: sp1 + sp2
    # the maps count the event's customers as the event does: the restored part is no longer out there either
    deadline = time.monotonic() + 5  # their layers are rebuilt at most once a second
    while (shown := client.get("/maps/dispatcher.geojson", headers=client.as_(D)).json()["summary"])[
            "customers_out"] != part["customers_out"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert shown["customers_out"] == part["customers_out"], (shown, part)
    url_db = client.app.state.oms.settings.database_url
    assert count(url_db, Assignment, Assignment.event_id == ev["id"], Assignment.status == "assigned") == 1
    r = client.post(url, json={"cause": "tree"}, headers=client.as_(D))
    assert r.status_code == 200 and r.json()["state"] == "restored"
    assert count(url_db, Assignment, Assignment.event_id == ev["id"], Assignment.status == "assigned") == 0


def test_merge_and_split(client):
    report(client, "A-sp1")
    report(client, "A-sp5")
    client.wait_processed()
    a, b = sorted(e["id"] for e in events(client))
    r = client.post(f"/events/{a}/merge", json={"event_ids": [b]}, headers=client.as_(D))
    assert r.status_code == 200, r.text
    assert [e["id"] for e in events(client)] == [a]
    assert r.json()["report_count"] == 2
    r = client.post(f"/events/{a}/split", json={"device_id": "NOPE"}, headers=client.as_(D))
    assert r.status_code == 404
    r = client.post(f"/events/{b}/confirm", json={}, headers=client.as_(D))
    assert r.status_code == 409 and "merged into" in r.json()["error"]["message"]


def test_replan_assigns_crews_sets_etr_and_keeps_manual_decisions(client):
    live = client.app.state.oms.live
    report(client, "A-sp5")
    report(client, "A-sp3")
    client.wait_processed()
    # each call is its own event: sp5's on its transformer, sp3's on its transformer or the small fuse above it
    e5, e3 = (next(e["id"] for e in events(client) if e["sp_id"] == sp or e["device_id"] in devs)
              for sp, devs in (("sp5", ("T4",)), ("sp3", ("T2", "F2"))))
    # the dispatcher pins C2 on e5; the optimizer must keep that whatever it prefers
    manual = client.post("/assignments", json={"event_id": e5, "crew_id": "C2"}, headers=client.as_(D)).json()
    assert live.replan() is not None
    plan = client.get("/plans/current", headers=client.as_(D)).json()
    assert plan["status"] == "applied" and plan["detail"]["jobs"] >= 1
    db = Database(client.app.state.oms.settings.database_url)
    with db.read() as s:
        active = s.scalars(select(Assignment).where(Assignment.status.in_(("assigned", "en_route")))).all()
        by_event = {a.event_id: a for a in active}
        assert by_event[e5].id == manual["id"] and by_event[e5].crew_id == "C2"
        assert e3 in by_event and by_event[e3].eta is not None
        ev3 = s.get(Event, e3)
        assert ev3.state == "dispatched" and ev3.etr_earliest is not None and ev3.etr_earliest >= by_event[e3].eta
    assert live.replan() is not None  # again: still the dispatcher's crew
    with db.read() as s:
        a5 = s.scalars(select(Assignment).where(Assignment.event_id == e5,
                                                Assignment.status == "assigned")).all()
        assert [a.crew_id for a in a5] == ["C2"] and a5[0].manual
    db.dispose()


def test_applied_plan_is_journaled_per_action_and_replays_exactly(db_url, tokens):
    """A plan's dispatch and ETR updates go through the engine in one pass (act_many); each is its own journal
    entry, so a restart rebuilds the same states and ETRs."""
    with make_client(db_url, tokens) as c:
        for account in ("A-sp1", "A-sp3", "A-sp5"):
            report(c, account)
        c.wait_processed()
        live = c.app.state.oms.live
        assert live.replan() is not None
        before = {e.event_id: (e.state.value, e.etr) for e in live.engine.all_events()}
        dispatched = [eid for eid, (state, _) in before.items() if state == "dispatched"]
        assert len(dispatched) >= 2 and all(before[eid][1] is not None for eid in dispatched)
    with make_client(db_url, tokens) as c:
        after = {e.event_id: (e.state.value, e.etr) for e in c.app.state.oms.live.engine.all_events()}
        assert after == before
    db = Database(db_url)
    with db.read() as s:
        actions = [j.payload for j in s.scalars(select(JournalEntry).where(JournalEntry.kind == "action"))]
        history = s.scalars(select(EventHistory).where(EventHistory.action == "etr")).all()
    db.dispose()
    assert sorted(a["event_id"] for a in actions if a["action"] == "state") == sorted(dispatched)
    assert len([a for a in actions if a["action"] == "etr"]) == len(history) >= len(dispatched)


def test_propose_mode_waits_for_the_dispatcher(db_url, tokens):
    with make_client(db_url, tokens, plan_mode="propose") as c:
        report(c, "A-sp3")
        c.wait_processed()
        plan_id = c.app.state.oms.live.replan()
        plan = c.get("/plans/current", headers=c.as_(D)).json()
        assert plan["id"] == plan_id and plan["status"] == "proposed" and plan["assignments"]
        assert count(db_url, Assignment, Assignment.status == "assigned") == 0
        r = c.post(f"/plans/{plan_id}/accept", headers=c.as_(D))
        assert r.status_code == 200 and len(r.json()) == 1
        assert count(db_url, Assignment, Assignment.status == "assigned") == 1
        assert c.post(f"/plans/{plan_id}/accept", headers=c.as_(D)).status_code == 409


def test_restart_rebuilds_engine_state_from_the_database(db_url, tokens):
    with make_client(db_url, tokens) as c:
        report(c, "A-sp1")
        report(c, "A-sp2")
        report(c, "A-sp5")
        c.wait_processed()
        before = {e["id"]: e for e in events(c)}
        eid = next(e["id"] for e in before.values() if e["customers_out"] == 4)
        c.post(f"/events/{eid}/confirm", json={"cause": "vehicle"}, headers=c.as_(D))
    # a report stored just before a crash: committed, never analysed
    db = Database(db_url)
    with db.write() as s, s.begin():
        s.add(Report(reference="R-CRSH-CRSH-CRSH", client_id="ip:test", power="out", channel="web",
                     account="A-sp3", sp_id="sp3"))
    with make_client(db_url, tokens) as c:
        live = c.app.state.oms.live
        assert live.rebuild_stats["replayed"] >= 4 and live.rebuild_stats["pending"] == 1
        engine_events = {e.event_id: e for e in live.engine.all_events()}
        assert set(before) <= set(engine_events)
        assert engine_events[eid].state.value == "confirmed"
        status = c.get("/reports/R-CRSH-CRSH-CRSH").json()
        assert status["status"] == "linked"
        # the next report continues the same numbering: no event id is reused
        report(c, "A-sp4")
        c.wait_processed()
        ids = [e["id"] for e in events(c, include_closed=True)]
        assert len(ids) == len(set(ids))
    with db.read() as s:
        assert s.scalar(select(Report).where(Report.processed_at.is_(None))) is None
        journal = s.scalars(select(JournalEntry).order_by(JournalEntry.seq)).all()
    report_ids = [i for j in journal if j.kind == "report" for i in j.payload["ids"]]
    assert len(report_ids) == len(set(report_ids)) == 5 and any(j.kind == "action" for j in journal)
    db.dispose()


# ---------------------------------------------------------------------------------------------------- SSE


class _Server(uvicorn.Server):
    def install_signal_handlers(self):  # running in a thread
        pass


@pytest.fixture
def server(db_url, tokens):
    from service_helpers import small_feeder

    from api.settings import Settings
    from api.web.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    app = create_app(Settings(database_url=db_url, replan_debounce_s=3600, replan_max_wait_s=3600,
                              sse_keepalive_s=0.5), network=small_feeder())
    srv = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", tokens
    srv.should_exit = True
    thread.join(timeout=10)


def _read_events(response, want: int, timeout: float = 10.0, types: tuple[str, ...] | None = None, until=None):
    """The next ``want`` messages (of ``types``; default: all but the headline ``figures``), or up to the first
    for which ``until(message)`` holds."""
    got, current = [], {}
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if line.startswith("id:"):
            current["id"] = int(line[3:])
        elif line.startswith("event:"):
            current["event"] = line[6:].strip()
        elif line.startswith("data:"):
            current["data"] = json.loads(line[5:])
        elif line == "" and "event" in current:
            if current["event"] in types if types else current["event"] != "figures":
                got.append(current)
            current = {}
            if len(got) >= want or (until is not None and got and until(got[-1])):
                break
        if time.monotonic() > deadline:
            break
    return got


def test_sse_stream_publishes_changes_and_resumes(server):
    url, tokens = server
    auth = {"Authorization": f"Bearer {tokens['dispatcher']}"}
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/stream").status_code == 401
        with http.stream("GET", "/stream", headers=auth) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            assert http.post("/reports", json={"account": "A-sp5"}).status_code == 202
            got = _read_events(resp, 1)
        assert got and got[0]["event"] == "event_created"
        data = got[0]["data"]
        assert data["customers_out"] == 4 and "account" not in json.dumps(data)
        first_id = got[0]["id"]
        # while disconnected, something happens; resuming with Last-Event-ID delivers it
        eid = data["id"]
        assert http.post(f"/events/{eid}/confirm", json={}, headers=auth).status_code == 200
        with http.stream("GET", "/stream", headers={**auth, "Last-Event-ID": str(first_id)}) as resp:
            missed = _read_events(resp, 1)
        assert missed and missed[0]["id"] > first_id and missed[0]["data"]["state"] == "confirmed"


def test_the_stream_states_the_headline_figures_the_maps_state(server):
    url, tokens = server
    auth = {"Authorization": f"Bearer {tokens['dispatcher']}"}
    with httpx.Client(base_url=url, timeout=10) as http:
        with http.stream("GET", "/stream", headers=auth) as resp:
            assert http.post("/reports", json={"account": "A-sp3"}).status_code == 202
            # the figures follow the event's change within figures_interval_s (2 s by default); the first ones
            # (counted at start-up, before the report) may come first
            got = _read_events(resp, 3, types=("event_created", "figures"), until=lambda m: m["event"] == "figures"
                               and m["data"]["figures"]["events"] == 1)
        created = [m for m in got if m["event"] == "event_created"]
        figures = got[-1]["data"]["figures"]
        # the maps' layers are rebuilt at most once a second: the same count within a refresh or two
        deadline = time.monotonic() + 5
        while True:
            public = http.get("/maps/public.geojson").json()["summary"]
            dispatcher = http.get("/maps/dispatcher.geojson", headers=auth).json()["summary"]
            if public["customers_out"] == dispatcher["customers_out"] == figures["customers_out"]:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert len(created) == 1 and created[0]["data"]["customers_out"] > 0
    assert figures == {"customers_out": public["customers_out"], "events": 1, "open": 1, "restored": 0}
    assert dispatcher["customers_out"] == figures["customers_out"] and dispatcher["events"] == figures["open"]


def test_a_burst_of_1000_reports_is_one_replan(db_url, tokens):
    db = Database(db_url)
    with db.write() as s, s.begin():  # the burst takes out the substation: a substation crew must go
        s.get(Crew, "C1").skills = ["line", "service", "tree", "substation"]
    db.dispose()
    with make_client(db_url, tokens, replan_debounce_s=1.0, replan_max_wait_s=120.0) as c:
        live = c.app.state.oms.live
        accounts = ["A-sp1", "A-sp2", "A-sp3", "A-sp4", "A-sp5"]
        for i in range(1000):
            assert c.post("/reports", json={"account": accounts[i % 5]},
                          headers=c.as_("integration")).status_code == 202
        c.wait_processed()
        deadline = time.monotonic() + 60  # the first plan also starts the optimizer's worker process
        while c.get("/plans/current", headers=c.as_(D)).json() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.5)  # the plan's own follow-ups (dispatched, ETR) must not trigger another
        assert live.stats["replans"] == 1
        plan = c.get("/plans/current", headers=c.as_(D)).json()
        assert plan is not None, (live.replanner.last, live.status)
        assert count(db_url, Assignment, Assignment.status == "assigned") >= 1, plan


def test_an_injected_clock_drives_intake_checks_plans_and_maps(db_url, tokens):
    """``create_app(clock=...)``: a replay's clock, not the wall clock, stamps and checks intake, and the driver
    settles, re-plans and reads the maps through public calls."""
    from datetime import UTC, datetime, timedelta

    from service_helpers import Client, small_feeder

    from api.settings import Settings
    from api.web.app import create_app

    now = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)  # years ahead of the wall clock
    settings = Settings(database_url=db_url, engine_tick_s=0.0, replan_debounce_s=3600.0, replan_max_wait_s=3600.0,
                        replan_time_limit_s=1.0, replan_deterministic=True, replan_solution_limit=20)
    app = create_app(settings, network=small_feeder(), clock=lambda: now, clock_note="test time", map_refresh_s=0)
    with Client(app) as c:
        c.tokens = tokens
        r = c.post("/reports", json={"account": "A-sp1"})
        assert r.status_code == 202 and r.json()["received_at"].startswith("2031-01-02T03:04")
        live = app.state.oms.live
        live.settle()
        scada = {"device_id": "F1", "kind": "lockout"}
        late = c.post("/scada", json={**scada, "at": (now + timedelta(hours=1)).isoformat()}, headers=c.as_("integration"))
        assert late.status_code == 422 and "future" in late.text
        ok = c.post("/scada", json={**scada, "at": (now - timedelta(minutes=1)).isoformat()}, headers=c.as_("integration"))
        assert ok.status_code == 202, ok.text
        live.settle()
        live.tick()
        replans = live.stats["replans"]
        live.replan_if_dirty()
        assert live.stats["replans"] == replans + 1
        assert live.replan_if_dirty() is None and live.stats["replans"] == replans + 1  # nothing changed since
        state = app.state.maps.provider.state()
        assert state.updated_at == now and state.clock_note == "test time" and state.events
        # the console's clock: the service's time and what it is (its board, and the light board it re-reads)
        for path in ("/console/board.json", "/console/board.json?ids="):
            board = c.get(path, headers=c.as_(D)).json()
            assert board["now"].startswith("2031-01-02T03:04") and board["clock"] == "test time"


def test_a_caller_follows_their_report_when_the_engine_places_it_again(client):
    """One call under fuse F1 is the fuse's event; a neighbour under it then says their power is on: the engine
    cancels that event and places the call again, on the caller's own service. The report's row (what the status
    page, notes and notices follow) leads to the new open event, not to the cancelled one."""
    ref = report(client, "A-sp1")
    client.wait_processed()
    (first,) = events(client)
    report(client, "A-sp2", power="on")
    client.wait_processed()
    (now,) = events(client)
    assert now["id"] != first["id"] and now["sp_id"] == "sp1"
    with Database(client.app.state.oms.settings.database_url).read() as session:
        linked = session.scalars(select(Report.event_id).where(Report.reference == ref)).one()
    assert linked == now["id"]
    assert client.get(f"/reports/{ref}").json()["status"] == "linked"
