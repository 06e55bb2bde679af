"""Reliability reporting from the service's own records: roles, a small storm through the real app whose indices
match a hand count, restoration metrics (crew-hours, acknowledgment SLA), the post-event summary formats, and the
CLI reading the same database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from service_helpers import make_client, small_feeder
from sqlalchemy import update

from api.commands.main import main as oms
from api.store.db import Database
from api.store.models import OutboxMessage

D = "dispatcher"
#: Customers on the small feeder: sp1 2, sp2 1, sp3 3, sp4 1 (feeder F1: 7), sp5 4 (feeder F2: 4).
SERVED, SERVED_F1, SERVED_F2 = 11, 7, 4
ROUTES = ("/reliability/indices", "/reliability/restoration", "/reliability/event-summary")


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _params(path: str, start: datetime, end: datetime) -> dict[str, str]:
    if path.endswith("indices"):
        return {"from": start.date().isoformat(), "to": end.date().isoformat()}
    return {"from": start.isoformat(), "to": end.isoformat()}


def _wait_events(c, n: int) -> list[dict]:
    import time

    for _ in range(200):
        evs = c.get("/events", headers=c.as_(D)).json()
        if len(evs) >= n:
            return evs
        time.sleep(0.05)
    raise AssertionError(f"expected {n} open events, got {evs}")


@pytest.mark.parametrize("role,status", [("anonymous", 401), ("member", 403), ("crew", 403), ("integration", 403),
                                         ("dispatcher", 200), ("admin", 200)])
def test_reports_are_for_dispatchers_and_admins_only(client, role, status):
    now = datetime.now(UTC)
    for path in ROUTES:
        r = client.get(path, params=_params(path, now - timedelta(days=1), now), headers=client.as_(role))
        assert r.status_code == status, (path, r.text)


def test_bad_windows_are_refused_with_the_field_named(client):
    h = client.as_(D)
    now = datetime.now(UTC)
    r = client.get("/reliability/restoration", params={"from": now.isoformat(), "to": (now - timedelta(hours=1))
                                                       .isoformat()}, headers=h)
    assert r.status_code == 422 and "to" in r.json()["error"]["message"]
    r = client.get("/reliability/event-summary", params={"from": "2024-06-10T00:00", "to": "2024-06-11T00:00"},
                   headers=h)
    assert r.status_code == 422 and "zone" in r.json()["error"]["message"]
    r = client.get("/reliability/indices", params={"from": "2024-02-01", "to": "2024-01-01"}, headers=h)
    assert r.status_code == 422
    r = client.get("/reliability/indices", params={"from": "2024-01-01", "to": "2024-01-31", "tz": "Mars/Base"},
                   headers=h)
    assert r.status_code == 422 and "Mars/Base" in r.json()["error"]["message"]


def test_empty_period_reports_zero_interruptions(client):
    r = client.get("/reliability/indices", params={"from": "2024-01-01", "to": "2024-01-31"}, headers=client.as_(D))
    assert r.status_code == 200, r.text
    system = r.json()["system"]
    assert system["customers_served"] == SERVED and system["customer_interruptions"] == 0 and system["saifi"] == 0


def storm(c) -> dict:
    """Two outages from last gasps (F2: sp3+sp4 = 4 customers, 2 h ago, life support: P1; T4: sp5 = 4 customers,
    1 h ago) and one phoned-in outage at sp1 restored within seconds: a momentary interruption.
    T4 is worked by crew C1 (en route, on site, restored by the crew); the others are restored by the dispatcher."""
    now = datetime.now(UTC).replace(microsecond=0)
    t0, t1 = now - timedelta(minutes=120), now - timedelta(minutes=60)
    msgs = [{"meter": m, "kind": "last_gasp", "at": t0.isoformat()} for m in ("sp3", "sp4")]
    msgs.append({"meter": "sp5", "kind": "last_gasp", "at": t1.isoformat()})
    assert c.post("/ami", json={"messages": msgs}, headers=c.as_("integration")).status_code == 202
    evs = {e["device_id"]: e["id"] for e in _wait_events(c, 2)}
    e_f2, e_t4 = evs["F2"], evs["T4"]
    r = c.post("/reports", json={"account": "A-sp1"})
    assert r.status_code == 202
    c.wait_processed()
    e_sp1 = next(e["id"] for e in _wait_events(c, 3) if e["id"] not in (e_f2, e_t4))
    a = c.post("/assignments", json={"event_id": e_t4, "crew_id": "C1"}, headers=c.as_(D)).json()
    for status in ("en_route", "on_site"):
        r = c.post(f"/crew/assignments/{a['id']}/status", json={"status": status}, headers=c.as_("crew"))
        assert r.status_code == 200, r.text
    r = c.post(f"/crew/assignments/{a['id']}/status", json={"status": "restored", "cause": "tree"},
               headers=c.as_("crew"))
    assert r.status_code == 200, r.text
    restored = {}
    for eid in (e_sp1, e_f2):
        r = c.post(f"/events/{eid}/restore", json={"cause": "equipment"}, headers=c.as_(D))
        assert r.status_code == 200, r.text
        restored[eid] = _t(r.json()["restored_at"])
    detail = c.get(f"/events/{e_t4}", headers=c.as_(D)).json()
    restored[e_t4] = _t(detail["restored_at"])
    rolled = min(_t(h["at"]) for h in detail["history"] if h["to_state"] == "en_route")
    sp1 = c.get(f"/events/{e_sp1}", headers=c.as_(D)).json()
    return {"now": now, "t0": t0, "t1": t1, "f2": e_f2, "t4": e_t4, "sp1": e_sp1, "restored": restored,
            "rolled": rolled, "sp1_start": _t(sp1["started_at"]), "sp1_device": sp1["device_id"]}


def test_storm_indices_restoration_summary_and_cli_match_a_hand_count(db_url, tokens, tmp_path, capsys):
    with make_client(db_url, tokens) as c:
        s = storm(c)
        h = c.as_(D)
        minutes_f2 = (s["restored"][s["f2"]] - s["t0"]).total_seconds() / 60
        minutes_t4 = (s["restored"][s["t4"]] - s["t1"]).total_seconds() / 60
        assert minutes_f2 > 119 and minutes_t4 > 59
        cmi = 4 * minutes_f2 + 4 * minutes_t4  # sp3 (3) + sp4 (1) out with F2; sp5 (4) out with T4
        day_from, day_to = s["t0"].date().isoformat(), s["now"].date().isoformat()

        r = c.get("/reliability/indices", params={"from": day_from, "to": day_to}, headers=h)
        assert r.status_code == 200, r.text
        api_report = r.json()
        system = api_report["system"]
        assert system["customers_served"] == SERVED
        assert system["customer_interruptions"] == 8 and system["customers_interrupted"] == 8
        assert system["customer_minutes"] == pytest.approx(cmi, abs=1e-6)
        assert system["saifi"] == pytest.approx(8 / SERVED)
        assert system["saidi"] == pytest.approx(cmi / SERVED)
        assert system["caidi"] == pytest.approx(cmi / 8)
        # one call from sp1 shows its transformer T1 out (sp1 2 + sp2 1 customers): the fuse F1 that feeds only T1
        # interrupts the same customers and operates far more often, so the event is F1's; out for seconds: momentary
        assert s["sp1_device"] == "F1"
        assert system["momentary_interruptions"] == 3 and system["maifi"] == pytest.approx(3 / SERVED)
        f1, f2 = (api_report["groups"]["feeder"][k]["all"] for k in ("F1", "F2"))
        assert (f1["customers_served"], f1["customer_interruptions"]) == (SERVED_F1, 4)
        assert (f2["customers_served"], f2["customer_interruptions"]) == (SERVED_F2, 4)
        assert f1["customer_minutes"] == pytest.approx(4 * minutes_f2, abs=1e-6)
        by_cause = api_report["groups"]["cause"]
        assert by_cause["tree"]["all"]["customer_interruptions"] == 4  # the crew's cause on T4
        assert by_cause["equipment"]["all"]["customer_interruptions"] == 4

        # the acknowledgment of the phoned-in report: a worker accepted it 3 minutes after the report
        db = Database(db_url)
        with db.write() as session, session.begin():
            session.execute(update(OutboxMessage).where(OutboxMessage.kind == "acknowledgment").values(
                status="sent", sent_at=s["sp1_start"] + timedelta(minutes=3)))
        db.dispose()
        window = {"from": (s["t0"] - timedelta(minutes=1)).isoformat(),
                  "to": (s["now"] + timedelta(hours=1)).isoformat()}
        r = c.get("/reliability/restoration", params=window, headers=h)
        assert r.status_code == 200, r.text
        m = r.json()
        assert m["events"] == 3 and m["events_restored"] == 3 and m["events_open"] == 0
        assert m["by_tier"]["P1"]["p50"] == pytest.approx(minutes_f2)
        assert m["priority_within"]["customers"] == 4 and m["priority_within"]["share"] == 1.0
        assert m["acknowledgments"]["reports"] == 1 and m["acknowledgments"]["within_sla"] == 1
        crew_hours = (s["restored"][s["t4"]] - s["rolled"]).total_seconds() / 3600
        assert crew_hours > 0 and m["crew_hours"] == pytest.approx(crew_hours)

        r = c.get("/reliability/event-summary", params=window, headers=h)
        assert r.status_code == 200, r.text
        summary = r.json()
        assert summary["customers_affected"] == 8 and summary["peak_customers_out"] == 8
        assert summary["events_by_tier"] == {"P1": 1, "P3": 2}  # F2 with life support; T4 and T1 transformers
        r = c.get("/reliability/event-summary", params={**window, "format": "html"}, headers=h)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "data:image/png;base64," in r.text and "<h1>Post-event summary</h1>" in r.text
        r = c.get("/reliability/event-summary", params={**window, "format": "csv", "table": "events"}, headers=h)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = r.text.strip().splitlines()
        assert rows[0].startswith("event_id,") and len(rows) == 4
        assert {line.split(",")[0] for line in rows[1:]} == {s["f2"], s["t4"], s["sp1"]}

    # the CLI, from the same database (the service is stopped): the same records, the same indices
    from gis.io import write_territory

    gpkg = tmp_path / "small.gpkg"
    write_territory(small_feeder(), gpkg)
    assert oms(["report", "reliability", "--from", day_from, "--to", day_to, "--database-url", db_url,
                "--territory", str(gpkg), "--json"]) == 0
    cli_report = json.loads(capsys.readouterr().out)
    assert cli_report["system"] == api_report["system"]
    assert cli_report["groups"]["feeder"] == api_report["groups"]["feeder"]
    out = tmp_path / "storm"
    assert oms(["report", "event", "--from", window["from"], "--to", window["to"], "--database-url", db_url,
                "--territory", str(gpkg), "--out", str(out), "--json"]) == 0
    cli_summary = json.loads(capsys.readouterr().out)
    assert cli_summary["customers_affected"] == 8 and cli_summary["restoration"]["crew_hours"] == pytest.approx(
        crew_hours)
    assert (out / "report.html").exists() and (out / "events.csv").exists()


def test_cli_from_the_database_needs_the_territory_and_an_existing_database(db_url, tmp_path, capsys):
    assert oms(["report", "reliability", "--from", "2024-01-01", "--to", "2024-01-31", "--database-url",
                db_url]) == 2
    assert "--territory" in capsys.readouterr().err
    missing = tmp_path / "missing.db"
    assert oms(["report", "event", "--from", "2024-01-01T00:00Z", "--to", "2024-01-02T00:00Z", "--database-url",
                f"sqlite:///{missing}", "--territory", "unused.gpkg"]) == 2
    assert "no database file" in capsys.readouterr().err and not missing.exists()


def test_etr_accuracy_uses_the_etrs_the_service_issued(client):
    """The optimizer assigns a crew and publishes an ETR; the summary compares it with the actual restoration."""
    assert client.post("/reports", json={"account": "A-sp5"}).status_code == 202
    client.wait_processed()
    eid = _wait_events(client, 1)[0]["id"]
    assert client.app.state.oms.live.replan() is not None
    promised = _t(client.get(f"/events/{eid}", headers=client.as_(D)).json()["etr_latest"])
    restored = _t(client.post(f"/events/{eid}/restore", json={}, headers=client.as_(D)).json()["restored_at"])
    now = datetime.now(UTC)
    r = client.get("/reliability/event-summary", params={"from": (now - timedelta(hours=1)).isoformat(),
                                                         "to": (now + timedelta(hours=1)).isoformat()},
                   headers=client.as_(D))
    etr = r.json()["etr_accuracy"]
    assert etr["events"] == 1
    assert etr["last_median_error_min"] == pytest.approx((restored - promised).total_seconds() / 60)
    assert etr["last_met_share"] == 1.0  # restored at once: well before the promise


def test_a_nested_event_stays_in_the_report_with_its_customers_counted_once(db_url, tokens):
    """A fuse that blew under a recloser already open interrupts no one first: the customer records give its
    customers to the recloser's event. The report still lists it (a crew fixed it; the storm's event count is the
    console's), with 0 customers of its own, and says why."""
    from api.service.reliability_source import event_summaries
    from api.store.models import Event
    from outage.records import Interruption
    from outage.summary import post_event_summary

    t0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
    with make_client(db_url, tokens):
        pass  # the schema
    db = Database(db_url)
    try:
        with db.write() as session, session.begin():
            for eid, device, start, n in (("E1", "R1", t0, 7), ("E2", "F1", t0 + timedelta(minutes=5), 3)):
                session.add(Event(id=eid, state="restored", device_id=device, device_kind="recloser",
                                  event_class="feeder", customers_out=n, started_at=start, updated_at=start,
                                  restored_at=t0 + timedelta(hours=2)))
        records = [Interruption(f"c{i}", t0, t0 + timedelta(hours=2), "E1") for i in range(7)]
        with db.read() as session:
            events = event_summaries(session, records, {}, t0 + timedelta(hours=3))
    finally:
        db.dispose()
    assert [(e.event_id, e.customers) for e in events] == [("E1", 7), ("E2", 0)]
    s = post_event_summary(t0, t0 + timedelta(days=1), events, records)
    assert len(s.events) == 2 and s.customers_affected == 7
    assert any("nested" in n for n in s.notes)
