"""The demo on its storm clock: one seed, one storm, at any speed; and one set of figures everywhere.

Runs the demo in-process (real service, crews, notifications) on a small storm: the event list after the same
number of steps is identical at 60x and 600x, and the whole storm is identical at 600x and 6000x. At every step of
the full run, the console's customers out and events equal both maps' GeoJSON; at the end summary.json, the
console summary and summary.html state the same peak, events and restored.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
import pytest

from api.simulation.demo import Demo, DemoOptions
from api.simulation.results import print_summary, write_results

START = datetime(2026, 3, 14, 18, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def network():
    from data.sample import sample_territory

    return sample_territory()


def _events(demo: Demo) -> list[tuple]:
    from sqlalchemy import select

    from api.store.models import Event

    with demo.db.read() as session:
        rows = session.execute(select(Event.id, Event.device_id, Event.sp_id, Event.state, Event.started_at,
                                      Event.restored_at, Event.customers_out, Event.cause, Event.merged_into)
                               .order_by(Event.id)).all()
    return [tuple(r) for r in rows]


def _run(tmp_path, network, speed: float, steps: int | None = None, each_step=None):
    demo = Demo(DemoOptions(out=tmp_path, faults=3, seed=3, crews=4, speed=speed, headless=True, port=0),
                network, start=START)
    demo.setup()
    try:
        demo.start()
        n = 0
        while not demo.done and (steps is None or n < steps) and n < 3000:
            demo.step()
            n += 1
            if each_step is not None:
                each_step(demo, n)
        return demo, _events(demo), n
    finally:
        if each_step is None:
            demo.stop()


def test_one_seed_one_storm_at_any_speed(tmp_path, network):
    _, slow, _ = _run(tmp_path / "60x", network, 60.0, steps=25)
    _, fast, _ = _run(tmp_path / "600x", network, 600.0, steps=25)
    assert slow and slow == fast
    _, full_a, n_a = _run(tmp_path / "600x-full", network, 600.0)
    _, full_b, n_b = _run(tmp_path / "6000x-full", network, 6000.0)
    assert n_a == n_b and full_a == full_b
    assert all(e[3] in ("restored", "cancelled") or e[8] for e in full_a)  # the storm ran to the end


def test_every_screen_states_the_same_figures(tmp_path, network, capsys):
    checked = []

    def compare(demo: Demo, n: int) -> None:
        if n % 5:
            return
        f = demo.figures.last
        console = demo.status_line()
        token = {"Authorization": f"Bearer {demo.tokens['dispatcher']}"}
        public = httpx.get(demo.url + "/maps/public.geojson").json()["summary"]
        dispatcher = httpx.get(demo.url + "/maps/dispatcher.geojson", headers=token).json()["summary"]
        assert public["customers_out"] == dispatcher["customers_out"] == f.customers_out
        assert dispatcher["events"] == f.open
        assert f"customers out {f.customers_out:,}" in console and f"open {f.open}" in console
        checked.append(f.customers_out)

    demo, _, _ = _run(tmp_path, network, 6000.0, each_step=compare)
    try:
        data, snap = write_results(demo, True, 1.0)
        print_summary(data, snap, tmp_path)
    finally:
        demo.stop()
    assert max(checked) > 0
    peak = demo.figures.peak
    assert data["peak_customers_out"] == peak.customers_out >= max(checked)
    assert data["events"]["total"] == demo.figures.last.events and data["events"]["restored"] == data["events"]["total"]
    assert json.loads((tmp_path / "summary.json").read_text())["peak_customers_out"] == peak.customers_out
    out = capsys.readouterr().out
    assert re.search(rf"peak out {peak.customers_out}\b", out)
    page = (tmp_path / "summary.html").read_text()
    assert re.search(rf"<dt>Peak customers out</dt><dd>{peak.customers_out:,}\b", page)
    assert re.search(rf"<dt>Events</dt><dd>{data['events']['total']} <small>{data['events']['restored']} restored",
                     page)
