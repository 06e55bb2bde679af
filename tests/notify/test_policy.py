import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.notify.policy import (
    Route,
    Sent,
    affected_service_points,
    backoff_s,
    choose_route,
    decide,
    etr_digest,
    parse_keyword,
    quiet_until,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gis"))
from small import small_feeder  # noqa: E402

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_route_prefers_then_falls_back_past_opt_outs_and_missing_channels():
    addrs = {"sms": "5550102000", "email": "a@b.org"}
    assert choose_route("sms", addrs, set(), {"sms", "email"}) == Route("sms", "5550102000")
    assert choose_route("sms", addrs, {("sms", "5550102000")}, {"sms", "email"}) == Route("email", "a@b.org")
    assert choose_route("sms", addrs, set(), {"email"}) == Route("email", "a@b.org")
    assert choose_route("sms", addrs, {("sms", "5550102000"), ("email", "a@b.org")}, {"sms", "email"}) is None


def test_quiet_hours_wrap_midnight_in_local_time():
    # 22:00-07:00 in Chicago; 04:00 UTC = 23:00 CDT (inside), ends 07:00 CDT = 12:00 UTC
    end = quiet_until(datetime(2026, 5, 1, 4, 0, tzinfo=UTC), 22 * 60, 7 * 60, "America/Chicago")
    assert end == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert quiet_until(datetime(2026, 5, 1, 10, 0, tzinfo=UTC), 22 * 60, 7 * 60, "America/Chicago") is not None
    assert quiet_until(datetime(2026, 5, 1, 18, 0, tzinfo=UTC), 22 * 60, 7 * 60, "America/Chicago") is None
    assert quiet_until(NOW, None, None, None) is None


def test_same_content_is_not_sent_twice_but_changed_content_is():
    last = Sent("abc", None, NOW - timedelta(hours=1))
    assert not decide("crew_dispatched", last, "abc", NOW, quiet_end=None).send
    assert decide("outage_notice", None, "abc", NOW, quiet_end=None).send


def test_an_etr_update_is_news_exactly_when_the_published_range_changes():
    """Notifications add no threshold of their own: the engine's no-churn rule (outage.etr_policy) decided what
    is published; any change of the published range or its stated probability is sent, the same one never."""
    lo, hi = NOW + timedelta(hours=1), NOW + timedelta(hours=2)
    told = etr_digest(lo, hi, 0.9)
    last = Sent(told, hi, NOW - timedelta(minutes=1))
    assert not decide("etr_update", last, etr_digest(lo, hi, 0.9), NOW, quiet_end=None).send
    for new in (etr_digest(lo, hi - timedelta(minutes=15), 0.9),  # 15 min earlier: the old rule held it back
                etr_digest(lo + timedelta(minutes=15), hi, 0.9),  # only the start moved
                etr_digest(lo, hi, 0.8)):  # the same times, another stated probability
        d = decide("etr_update", last, new, NOW, quiet_end=None)
        assert d.send and d.at == NOW  # at once: no interval of its own either
    assert etr_digest(None, None) == "none"


def test_quiet_hours_hold_updates_but_never_urgent_messages():
    end = NOW + timedelta(hours=5)
    assert decide("outage_notice", None, "a", NOW, quiet_end=end).at == end
    assert decide("restoration", None, "a", NOW, quiet_end=end).at == NOW
    assert decide("acknowledgment", None, "a", NOW, quiet_end=end).at == NOW


def test_sms_keywords():
    assert parse_keyword(" stop ") == "stop" and parse_keyword("Unsubscribe") == "stop"
    assert parse_keyword("START") == "start" and parse_keyword("help") == "help"
    assert parse_keyword("out") == "out" and parse_keyword("Still out!") == "out"
    assert parse_keyword("please stop texting me about billing") == "other"


def test_backoff_grows_and_is_capped():
    import random

    rng = random.Random(1)
    values = [backoff_s(n, base=2.0, cap=60.0, rng=rng) for n in range(1, 10)]
    assert 1.0 <= values[0] <= 2.0 and all(v <= 60.0 for v in values) and values[5] >= 30.0


def test_affected_service_points_follow_the_feeder_tree():
    from gis.topology import build

    net = small_feeder()
    topo = build(net)
    subs = dict(zip(net.substations["substation_id"], net.substations["source_node"], strict=True))
    assert sorted(affected_service_points(topo, ["F2"], None, subs)) == ["sp3", "sp4"]
    assert sorted(affected_service_points(topo, ["R1"], None, subs)) == ["sp1", "sp2", "sp3", "sp4"]
    assert affected_service_points(topo, [], "sp5", subs) == ["sp5"]
    sub = net.substations["substation_id"].iloc[0]
    assert len(affected_service_points(topo, [f"substation:{sub}"], None, subs)) == 5
