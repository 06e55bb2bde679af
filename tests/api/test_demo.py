"""``oms demo --headless``: the storm demo end to end (real service, real storm, crews, notifications), on small,
fast settings. Checks the files it writes and that its figures agree with each other and with the database."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest

from api.maps.geojson import etag_of

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "api.commands", "demo", "--headless", "--out", str(out), "--faults", "3",
                           "--speed", "900", "--crews", "4", "--seed", "3", "--time-cap", "120"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_writes_snapshots_and_summary(demo):
    out, stdout = demo
    for name in ("summary.html", "summary.csv", "summary.json", "events.csv", "notifications.log", "demo.log",
                 "maps/public.html", "maps/public.geojson", "maps/dispatcher.html", "maps/dispatcher.geojson",
                 "maps/network.geojson", "maps/etags.json", "maps/_headers"):
        assert (out / name).is_file(), name
    assert "storm demo summary" in stdout and "public outage map" in stdout
    etags = json.loads((out / "maps/etags.json").read_text())
    for name in ("public.geojson", "dispatcher.geojson", "public.html"):  # the manifest describes the files
        assert etags[name]["etag"] == etag_of((out / "maps" / name).read_bytes())
    assert "ETag:" in (out / "maps/_headers").read_text()
    assert "<table" in (out / "summary.html").read_text()


def test_demo_figures_are_consistent(demo):
    out, _ = demo
    s = json.loads((out / "summary.json").read_text())
    assert s["finished"] is True
    storm = s["storm"]
    assert storm["reports_sent"] > 0 and storm["reports_accepted"] == storm["reports_sent"] and storm["errors"] == 0
    # every accepted report is stored, in an event, and acknowledged
    assert s["reports"] == storm["reports_accepted"]
    assert s["reports_without_event"] == 0
    assert s["acknowledgments"]["sent"] == s["reports"] and s["acknowledgments"]["not_sent"] == 0
    ev = s["events"]
    assert ev["total"] > 0 and ev["open"] == 0 and ev["restored"] == ev["total"]
    assert sum(ev["by_class"].values()) == ev["total"] == sum(ev["by_tier"].values())
    assert s["customers_restored"] >= ev["total"]  # every event had at least one customer out
    assert s["crew_jobs_done"] >= 1 and s["crew_hours"] > 0
    assert s["outbox"].get("dead", 0) == 0  # (an ETR update held back by its rate limit may still wait)
    assert s["notifications_sent"]["acknowledgment"] == s["reports"]

    # the same figures from the database the service wrote
    db = sqlite3.connect(out / "oms.db")
    try:
        assert db.execute("select count(*) from reports").fetchone()[0] == s["reports"]
        assert db.execute("select count(*) from events where state not in ('restored', 'cancelled')").fetchone()[0] == 0
        assert db.execute("select count(*) from outbox where kind = 'acknowledgment' and status = 'sent'"
                          ).fetchone()[0] == s["reports"]
        positions = db.execute("select count(*) from crew_positions").fetchone()[0]
        assert positions >= s["crew_jobs_done"]  # crews pinged their way to every job
        # lines in the notification log = notices the worker sent
        assert db.execute("select count(*) from outbox where status = 'sent'").fetchone()[0] == sum(
            s["notifications_sent"].values())
    finally:
        db.close()
    logged = [line for line in (out / "notifications.log").read_text().splitlines() if " notify " in line]
    assert len(logged) == sum(s["notifications_sent"].values())

    events = (out / "events.csv").read_text().splitlines()
    assert len(events) == ev["total"] + 1


def test_demo_snapshots_hold_no_personal_data(demo):
    out, _ = demo
    sps = gpd.read_file(out / "sample.gpkg", layer="service_points")
    secrets = {str(v) for col in ("account", "phone", "name", "address", "meter") for v in sps[col] if v and
               str(v) != "nan"}
    for name in ("public.geojson", "public.html", "dispatcher.geojson"):
        text = (out / "maps" / name).read_text(encoding="utf-8")
        leaked = [v for v in secrets if v in text]
        assert leaked == [], f"{name} shows personal data: {leaked[:5]}"
    public = json.loads((out / "maps/public.geojson").read_text())
    assert "features" in public
