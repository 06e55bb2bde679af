"""The demo on its storm clock: one seed, one storm, at any speed; and one set of figures everywhere.

Runs the demo in-process (real service, crews, notifications) on a small storm, each step lasting its wall-clock
time as in ``oms demo``: the event list after the same number of steps is identical interactive at 60x and
headless at 600x, and the whole storm is identical interactive at 600x and headless at 6000x. At every step of
the full run, the console's customers out and events equal both maps' GeoJSON and the stream's ``figures``, and
every notice states the customers the stream said of its event; at the end summary.json, the console summary and
summary.html state the same peak, events and restored, and the stream carried every change of the figures.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import httpx
import pytest

from api.simulation.demo import STEP_S, Demo, DemoOptions
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


def _notices(demo: Demo) -> list[tuple]:
    """Every notice the storm planned: kind, event, channel, when it was planned and due, and what it states (but
    the report's reference, a random code)."""
    from sqlalchemy import select

    from api.store.models import OutboxMessage

    with demo.db.read() as session:
        rows = session.execute(select(OutboxMessage.kind, OutboxMessage.event_id, OutboxMessage.channel,
                                      OutboxMessage.created_at, OutboxMessage.next_attempt_at, OutboxMessage.status,
                                      OutboxMessage.payload)).all()
    return sorted((*r[:-1], repr(sorted((k, v) for k, v in ((r[-1] or {}).get("context") or {}).items()
                                        if k != "reference"))) for r in rows)


def _run(tmp_path, network, speed: float, steps: int | None = None, each_step=None, started=None,
         headless: bool = True, paced: bool = False):
    """The demo, step by step; ``paced``: each step lasts ``STEP_S / speed`` wall-clock seconds, as in
    :meth:`Demo.run_storm` (the service's threads run meanwhile, as they do for a person watching)."""
    demo = Demo(DemoOptions(out=tmp_path, faults=3, seed=3, crews=4, speed=speed, headless=headless, port=0),
                network, start=START)
    demo.setup()
    try:
        demo.start()
        if started is not None:
            started(demo)
        n = 0
        while not demo.done and (steps is None or n < steps) and n < 3000:
            t0 = time.monotonic()
            demo.step()
            n += 1
            if each_step is not None:
                each_step(demo, n)
            if paced:
                time.sleep(max(0.0, STEP_S / speed - (time.monotonic() - t0)))
        demo.notices = _notices(demo)  # (read while the service runs)
        return demo, _events(demo), n
    finally:
        if each_step is None:
            demo.stop()


def test_a_storm_started_any_minute_of_an_hour_starts_at_its_top():
    from api.simulation.clock import storm_start

    for minute in (0, 5, 25, 59):
        assert storm_start(START.replace(hour=7, minute=minute, second=13)) == START.replace(hour=7)


def test_one_seed_one_storm_at_any_speed(tmp_path, network):
    # a person watching at 60x (a step a second) and a headless run at 600x: the same events after 25 steps
    _, slow, _ = _run(tmp_path / "60x", network, 60.0, steps=25, headless=False, paced=True)
    _, fast, _ = _run(tmp_path / "600x", network, 600.0, steps=25, paced=True)
    assert slow and slow == fast
    # the whole storm, interactive at 600x and headless at 6000x: the same events, restored at the same times
    demo_a, full_a, n_a = _run(tmp_path / "600x-full", network, 600.0, headless=False, paced=True)
    demo_b, full_b, n_b = _run(tmp_path / "6000x-full", network, 6000.0, paced=True)
    assert n_a == n_b and full_a == full_b
    assert demo_a.notices == demo_b.notices  # and every notice, to the minute and the number it states
    assert all(e[3] in ("restored", "cancelled") or e[8] for e in full_a)  # the storm ran to the end


def test_every_screen_states_the_same_figures(tmp_path, network, capsys):
    """One storm; at every step the console's status line, both maps, the stream's ``figures`` message and the
    notices agree; at the end summary.json, the console summary and summary.html state the same peak and events,
    and the stream, read over HTTP from its start, carried every change of the figures."""
    from sqlalchemy import select

    from api.store.models import OutboxMessage, Report

    checked: list[int] = []
    said: dict[str, int] = {}  # event -> customers out, as the stream last said it
    seen = {"seq": 0, "outbox": 0, "sent": 0}
    planned: dict[str, tuple] = {}  # outbox key -> (event, the customers its context holds, report)
    sent: list = []
    notices: list[tuple[str, int, int]] = []  # (kind, customers in the text, customers the stream said)

    def capture(demo: Demo) -> None:
        for channel in demo.notify_worker.channels.values():
            send = channel.send
            channel.send = lambda msg, send=send: (sent.append(msg), send(msg))[1]

    def compare(demo: Demo, n: int) -> None:
        broker = demo.app.state.oms.broker
        news = broker.since(seen["seq"])
        assert news is not None, "the stream's replay buffer overflowed in a 3-fault storm"
        seen["seq"] = broker.seq
        figures_said = [m.data["figures"] for m in news if m.type == "figures"]
        for m in news:
            if m.type.startswith("event_"):
                said[m.data["id"]] = m.data["customers_out"]
        f = demo.figures.last
        # the stream: a figures message whenever they changed, and it is what the console and the maps say
        last = broker.since(0)
        last = [m.data["figures"] for m in (last or []) if m.type == "figures"][-1]
        assert last == f.message()["figures"]
        if not f.same_as(demo.figures.samples[-2]):
            assert figures_said and figures_said[-1] == f.message()["figures"]
        # the notices: what each one planned this step states is what the stream says of its event
        with demo.db.read() as session:
            rows = session.execute(select(OutboxMessage.id, OutboxMessage.idempotency_key, OutboxMessage.event_id,
                                          OutboxMessage.payload, OutboxMessage.report_id)
                                   .where(OutboxMessage.id > seen["outbox"])).all()
            for oid, key, event_id, payload, report_id in rows:
                seen["outbox"] = max(seen["outbox"], oid)
                context = (payload or {}).get("context") or {}
                if event_id is not None and context.get("customers") is not None:  # planned now, from the event
                    assert context["customers"] == said[event_id], (key, context, said[event_id])
                planned[key] = (event_id, context.get("customers"), report_id)
            for msg in sent[seen["sent"]:]:
                number = re.search(r"affecting about ([\d,]+) customers|afecta a unos ([\d,]+) clientes", msg.body)
                if not number:
                    continue
                event_id, customers, report_id = planned[msg.key]
                if event_id is None:  # an acknowledgment states its report's event as it is when it is sent
                    customers = said[session.get(Report, report_id).event_id]
                notices.append((msg.kind, int((number.group(1) or number.group(2)).replace(",", "")), customers))
        seen["sent"] = len(sent)
        if n % 5:
            return
        console = demo.status_line()
        token = {"Authorization": f"Bearer {demo.tokens['dispatcher']}"}
        public = httpx.get(demo.url + "/maps/public.geojson").json()["summary"]
        dispatcher = httpx.get(demo.url + "/maps/dispatcher.geojson", headers=token).json()["summary"]
        assert public["customers_out"] == dispatcher["customers_out"] == f.customers_out
        assert dispatcher["events"] == f.open
        assert f"customers out {f.customers_out:,}" in console and f"open {f.open}" in console
        checked.append(f.customers_out)

    demo, _, _ = _run(tmp_path, network, 6000.0, each_step=compare, started=capture)
    try:
        data, snap = write_results(demo, True, 1.0)
        print_summary(data, snap, tmp_path)
        streamed = _streamed_figures(demo)
    finally:
        demo.stop()
    assert max(checked) > 0
    assert notices and all(text == stream for _, text, stream in notices), notices
    changes = [f.message()["figures"] for i, f in enumerate(demo.figures.samples)
               if i == 0 or not f.same_as(demo.figures.samples[i - 1])]
    assert streamed == changes
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


def _streamed_figures(demo: Demo) -> list[dict]:
    """Every ``figures`` message of the storm, read over HTTP from the stream's start (``Last-Event-ID: 0``)."""
    last = demo.app.state.oms.broker.seq
    got, seq = [], 0
    headers = {"Authorization": f"Bearer {demo.tokens['dispatcher']}", "Last-Event-ID": "0"}
    with httpx.stream("GET", demo.url + "/stream", headers=headers, timeout=30) as resp:
        kind = None
        for line in resp.iter_lines():
            if line.startswith("id:"):
                seq = int(line[3:])
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "figures":
                got.append(json.loads(line[5:])["figures"])
            if seq >= last and line == "":
                break
    return got
