"""The dispatcher's console during a replay on a storm clock: its clock says "storm time 14:20, 120x" and follows
the storm clock (read from the service), not the browser's own clock."""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "maps"))
sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from browser import launch_browser, running_service  # noqa: E402  (skips this module without chromium/playwright)

from api.maps import PageConfig  # noqa: E402
from api.simulation.clock import StormClock  # noqa: E402

PASSWORD = "storm-night-2026"
START = datetime(2031, 1, 2, 3, 4, tzinfo=UTC)  # years from the wall clock


@pytest.fixture
def replay(db_url):
    clock = StormClock(START, 120.0)
    with running_service(db_url, PASSWORD, PageConfig(utility_name="Test co-op"), clock=clock,
                         clock_note=clock.note()) as running:
        yield running, clock


def _clock_text(page, want: str, timeout_s: float = 8.0) -> str:
    deadline = time.monotonic() + timeout_s
    text = page.inner_text("#clock")
    while text != want and time.monotonic() < deadline:
        time.sleep(0.1)
        text = page.inner_text("#clock")
    return text


def test_the_console_clock_is_the_storm_clock(replay):
    (base, _, _), clock = replay
    with launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
        page.goto(f"{base}/console")
        page.fill("#username", "dispatcher-user")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-ready=true]")
        assert _clock_text(page, "storm time 03:04, 120x") == "storm time 03:04, 120x"
        clock.advance(95 * 60)  # the replay moves on: 95 storm minutes in what the browser sees as a moment
        assert _clock_text(page, "storm time 04:39, 120x") == "storm time 04:39, 120x"
        assert re.fullmatch(r"storm time \d\d:\d\d, 120x", page.inner_text("#clock"))
