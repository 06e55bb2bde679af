"""The dispatcher's console in a real browser (Debian's chromium through Playwright) against the running service:
sign in; a new event appears without a reload; open it and confirm it; assign a crew; lock the assignment; accept a
proposed plan and see the crew's ETA; restore the event; sign out. Then the pages' accessibility (axe-core) and a
member's refusal. Skipped when chromium or playwright is not installed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "maps"))
sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
import httpx  # noqa: E402
from browser import launch_browser, serve, wait_until, watch  # noqa: E402  (skips this module without chromium/playwright)
from maps_territory import territory  # noqa: E402
from service_helpers import make_users, set_passwords  # noqa: E402

from api.maps import PageConfig  # noqa: E402
from api.settings import Settings  # noqa: E402
from api.web.app import create_app  # noqa: E402

PASSWORD = "storm-night-2026"
ADDRESS, DEVICE = "1 Market Square", "TT1"



def grid_text(page) -> str:
    return page.inner_text("#grid-body")


@pytest.fixture
def service(db_url):
    tokens = make_users(db_url)
    set_passwords(db_url, PASSWORD)
    settings = Settings(database_url=db_url, replan_debounce_s=3600.0, replan_max_wait_s=3600.0,
                        replan_time_limit_s=1.0)
    net = territory()
    net.road_edges = net.road_edges.iloc[:0]  # drawing-only roads (no road nodes): crews go straight
    app = create_app(settings, network=net, page=PageConfig(utility_name="Test co-op"))
    with serve(app) as base:
        yield base, tokens, app


@pytest.fixture(scope="module")
def browser():
    with launch_browser() as b:
        yield b


def sign_in(page, base, name="dispatcher-user"):
    page.goto(f"{base}/console")
    assert page.url == f"{base}/session"  # no session: the sign-in form, not a JSON 401
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_a_dispatcher_runs_an_event_from_report_to_restoration(service, browser, tmp_path):
    base, tokens, app = service
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors, foreign = watch(page, base)
    sign_in(page, base)
    page.wait_for_url(f"{base}/console")
    wait_until(page, "document.body.dataset.ready === 'true'")
    wait_until(page, "document.querySelector('#conn').textContent === 'Live'")
    assert page.inner_text("#event-count") == "(0)"

    # a new event appears from the stream, without a reload
    t0 = time.monotonic()
    r = httpx.post(f"{base}/reports", json={"address": ADDRESS, "medical_equipment": True})
    assert r.status_code == 202, r.text
    wait_until(page, f"document.querySelector('#grid-body').innerText.includes('{DEVICE}')", 15_000)
    shown_s = time.monotonic() - t0
    wait_until(page, "document.querySelector('#grid-body .reason') && "
                     "document.querySelector('#grid-body .reason').textContent.length > 0")
    row = page.locator("#grid-body tr[data-id]").first
    event_id = row.get_attribute("data-id")
    assert "P1" in row.inner_text(), row.inner_text()  # medical equipment: life safety first
    # a new P1 cannot be missed: the banner, acknowledged with Shift+A
    assert page.is_visible("#alert") and "New P1" in page.inner_text("#alert-text")
    page.keyboard.press("Shift+A")
    assert not page.is_visible("#alert")

    # open it: detail with the priority reason and the evidence (the call and its answers)
    row.click()
    page.wait_for_selector("#detail-reason")
    assert page.inner_text("#detail-reason")
    assert "1 calls" in page.inner_text("#evidence-summary")
    assert page.locator("#panel-event table.mini tbody tr").count() == 1
    assert page.evaluate("document.querySelector('.leaflet-popup') !== null")  # highlighted on the map too

    # confirm it, with a cause (keyboard: c focuses the cause)
    page.keyboard.press("c")
    page.select_option("#cause", "tree")
    page.click("#f-confirm button[type=submit]")
    wait_until(page, "document.querySelector('#grid-body').innerText.includes('Confirmed')")
    wait_until(page, "document.querySelector('#panel-event').innerText.includes('tree (confirmed)')")

    # assign crew C1, unlocked; then lock it with the l key
    page.select_option("#crew", "C1")
    page.uncheck("#f-assign input[name=lock]")
    page.click("#f-assign button[type=submit]")
    wait_until(page, "document.querySelector('#grid-body').innerText.includes('Crew one')")
    wait_until(page, "document.querySelector('#b-lock') && "
                     "document.querySelector('#b-lock').textContent.startsWith('Lock')")
    t1 = time.monotonic()
    page.keyboard.press("l")
    wait_until(page, "document.querySelector('#grid-body .lock') !== null")
    action_s = time.monotonic() - t1
    assert httpx.get(f"{base}/events/{event_id}", headers={"Authorization": f"Bearer {tokens['dispatcher']}"}
                     ).json()["assignments"][-1]["locked"] is True

    # propose mode; the re-planner proposes; the plan tab shows the diff; accept it; the crew's ETA shows
    page.click("#mode-propose")
    wait_until(page, "document.querySelector('#mode-propose').getAttribute('aria-pressed') === 'true'")
    plan_id = app.state.oms.live.replan()
    assert plan_id is not None
    wait_until(page, "!document.querySelector('#plan-badge').hidden")
    page.keyboard.press("3")
    page.wait_for_selector("#plan-accept")
    assert "Weighted customer-minutes" in page.inner_text("#plan-summary")
    page.click("#plan-accept")
    wait_until(page, "document.querySelector('#panel-plan').innerText.includes('No plan is waiting')")
    wait_until(page, "[...document.querySelectorAll('#grid-body tr[data-id] td')][9].textContent.includes(':')")
    page.keyboard.press("1")
    page.wait_for_selector("#detail-eta")
    wait_until(page, "document.querySelector('#detail-eta').textContent.includes(':')")

    # the roster shows the crew on the job
    page.keyboard.press("2")
    wait_until(page, f"document.querySelector('#panel-crews').innerText.includes('{event_id}')")
    page.screenshot(path=str(tmp_path / "console.png"))

    # restore: the event leaves the open list
    page.keyboard.press("1")
    page.keyboard.press("r")
    page.click("#f-restore button[type=submit]")
    wait_until(page, f"!document.querySelector('#grid-body').innerText.includes('{DEVICE}')")
    assert page.inner_text("#event-count") == "(0)"

    # sign out: the session ends; the console sends you back to sign in
    page.click("#sign-out")
    page.wait_for_url(f"{base}/session")
    page.goto(f"{base}/console")
    assert page.url == f"{base}/session"
    assert errors == [], errors
    assert foreign == [], foreign
    assert shown_s < 5 and action_s < 2, (shown_s, action_s)  # generous here; bench/console.py measures


def test_console_pages_have_no_serious_accessibility_violations(service, browser):
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright", reason="axe-playwright-python")
    base, _, _ = service
    httpx.post(f"{base}/reports", json={"address": ADDRESS})
    axe = axe_module.Axe()
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(f"{base}/session")
    problems = _serious(axe.run(page))
    sign_in(page, base)
    page.wait_for_url(f"{base}/console")
    wait_until(page, "document.body.dataset.ready === 'true'")
    wait_until(page, "document.querySelectorAll('#grid-body tr[data-id]').length === 1", 15_000)
    page.click("#grid-body tr[data-id]")
    page.wait_for_selector("#detail-reason")
    problems += _serious(axe.run(page))
    for tab in ("2", "3"):
        page.keyboard.press(tab)
        problems += _serious(axe.run(page))
    assert problems == [], problems


def _serious(results) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_a_member_session_is_refused_the_console(service, browser):
    base, _, _ = service
    page = browser.new_page(viewport={"width": 800, "height": 1000})  # a tablet
    sign_in(page, base, "member-user")
    page.wait_for_url(f"{base}/console")
    assert "Not allowed" in page.inner_text("h1")
    r = page.request.get(f"{base}/console/board.json")
    assert r.status == 403
