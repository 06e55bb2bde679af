"""Device messages by their own time, not their arrival: a meter's power restore stamped before its last gasp, a
SCADA close stamped before its lockout, and the other late arrivals never restore (or cancel) an outage that started
after them, and never make an event "restored before it started"."""

from __future__ import annotations

from outage_feeders import at, call, engine

from outage.events import EventState
from outage.reports import AmiEvent, ScadaEvent

XFMR = [f"sp1.1.1.{k}" for k in (1, 2, 3)]


def _gasps(eng, minutes):
    eng.ingest_ami([AmiEvent(f"M-{sp}", "last_gasp", at(minutes)) for sp in XFMR])
    eng.tick(at(minutes + 10))  # past the declaration delay


def test_a_restore_stamped_before_the_last_gasp_does_not_end_the_outage():
    eng = engine()
    _gasps(eng, 5)
    (ev,) = eng.events
    assert ev.key == "T1.1.1" and ev.start == at(5)
    eng.ingest_ami([AmiEvent(f"M-{sp}", "power_restore", at(2)) for sp in XFMR])  # arrives late, happened before
    (still,) = eng.events
    assert still.event_id == ev.event_id and still.state != EventState.CANCELLED and still.service_points_out == 3
    assert eng.stats["stale_device_messages"] == 3
    eng.ingest_ami([AmiEvent(f"M-{sp}", "power_restore", at(30)) for sp in XFMR])  # in time: power is back
    assert eng.events == [] and eng.event(ev.event_id).state == EventState.CANCELLED


def test_a_restore_stamped_before_a_pending_last_gasp_does_not_cancel_it_as_momentary():
    eng = engine()
    eng.ingest_ami([AmiEvent(f"M-{sp}", "last_gasp", at(5)) for sp in XFMR])
    eng.ingest_ami([AmiEvent(f"M-{sp}", "power_restore", at(1)) for sp in XFMR])  # before the gasp: stale
    eng.tick(at(15))
    assert [e.key for e in eng.events] == ["T1.1.1"] and eng.stats["gasps_cancelled"] == 0


def test_a_last_gasp_stamped_before_the_meters_restore_opens_nothing():
    eng = engine()
    eng.ingest_ami([AmiEvent(f"M-{sp}", "power_restore", at(20)) for sp in XFMR])
    eng.ingest_ami([AmiEvent(f"M-{sp}", "last_gasp", at(5)) for sp in XFMR])  # that outage is already over
    eng.tick(at(40))
    assert eng.events == [] and eng.stats["stale_device_messages"] == 3


def test_a_restore_stamped_before_the_calls_or_the_event_does_not_take_their_evidence():
    eng = engine()
    for i, sp in enumerate(XFMR):
        eng.ingest_report(call(f"r{i}", sp, 10))
    (ev,) = eng.events
    eng.ingest_ami([AmiEvent("M-sp1.1.1.1", "power_restore", at(4))])  # before the call from the same house
    (still,) = eng.events
    assert still.event_id == ev.event_id and still.service_points_out == 3
    assert eng.stats["stale_device_messages"] == 1
    eng.ingest_ami([AmiEvent("M-sp1.1.1.2", "power_restore", at(12))])  # after it: that house has power
    assert sum(e.service_points_out for e in eng.events) == 2 and eng.stats["stale_device_messages"] == 1


def test_a_scada_close_stamped_before_its_lockout_never_restores_the_event():
    eng = engine()
    eng.ingest_scada(ScadaEvent("R1", "lockout", at(10)))
    (ev,) = eng.events
    eng.ingest_scada(ScadaEvent("R1", "close", at(5)))  # late and out of order
    assert eng.event(ev.event_id).open and eng.event(ev.event_id).restored_at is None
    eng.ingest_scada(ScadaEvent("R1", "close", at(40)))
    done = eng.event(ev.event_id)
    assert done.state == EventState.RESTORED and done.restored_at == at(40) >= done.start
    assert all(r.end >= r.start for r in eng.interruptions(at(60)))


def test_scada_operations_older_than_the_devices_latest_change_nothing():
    eng = engine()
    eng.ingest_scada(ScadaEvent("R1", "lockout", at(0)))
    (ev,) = eng.events
    eng.ingest_scada(ScadaEvent("R1", "close", at(30)))
    eng.ingest_scada(ScadaEvent("R1", "lockout", at(20)))  # before the close: that outage is over
    assert eng.events == [] and eng.event(ev.event_id).restored_at == at(30)
    eng.ingest_scada(ScadaEvent("R1", "lockout", at(50)))  # a new one, in time
    (again,) = eng.events
    assert again.start == at(50) and again.event_id != ev.event_id
    eng.ingest_scada(ScadaEvent("R1", "close", at(45)))  # before that lockout: stale
    assert eng.event(again.event_id).open
    assert eng.stats["stale_device_messages"] == 2


def test_a_restore_inside_a_lockout_stamped_before_it_leaves_the_prediction_alone():
    eng = engine()
    eng.ingest_scada(ScadaEvent("F1.1", "lockout", at(10)))
    eng.ingest_ami([AmiEvent("M-sp1.1.2.1", "power_restore", at(3))])
    assert eng.stats["stale_device_messages"] == 1 and [e.key for e in eng.events] == ["F1.1"]
