"""The whole service in a real browser: ``api.web.app.create_app`` on a small territory, served by uvicorn on a
loopback port, driven by Debian's chromium through Playwright.

A member opens the public map and reports an outage with the form, by street address only; the real
``POST /reports`` locates it (:mod:`api.service.territory`), stores it, the live engine rolls it up to the transformer,
and the public map shows those customers out after its next poll — no reload. A dispatcher signing in
(``/session``) sees the same event on the dispatcher map. Skipped when chromium or playwright is not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "maps"))
sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
import httpx  # noqa: E402
from browser import launch_browser, running_service, wait_until, watch  # noqa: E402  (skips this module without chromium/playwright)

from api.maps import PageConfig  # noqa: E402

#: "1 Market Square" is one service point of the test territory: 10 customers on transformer TT1.
ADDRESS, SP, DEVICE, CUSTOMERS = "1 Market Square", "sp-town0", "TT1", 10
PASSWORD = "storm-night-2026"



@pytest.fixture
def service(db_url):
    """The real app on the maps' test territory, polling every second; yields (base URL, role -> token)."""
    with running_service(db_url, PASSWORD, PageConfig(public_interval_s=1, dispatcher_interval_s=1)) as (base, tokens, _):
        yield base, tokens


@pytest.fixture(scope="module")
def browser():
    with launch_browser() as b:
        yield b


def test_report_by_address_appears_on_the_public_and_dispatcher_maps(service, browser, tmp_path):
    base, tokens = service
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    page = context.new_page()
    errors, foreign = watch(page, base)
    page.goto(f"{base}/maps/public")
    wait_until(page, "document.querySelector('#oms-customers-out').textContent === '0'")
    assert page.locator("#oms-updated-at").inner_text().strip() not in ("", "…")

    # report through the form: a street address is all the member gives
    page.click("text=Report an outage")
    page.fill("input[name=address]", ADDRESS)
    page.select_option("select[name=power]", "out")
    page.click("#oms-report-form button[type=submit]")
    wait_until(page, "document.querySelector('#oms-report-result').textContent.length > 12")
    assert page.locator("#oms-report-reference").count() == 1, page.inner_text("#oms-report-result")
    reference = page.locator("#oms-report-reference").inner_text()

    # the live engine rolls it up; the map's own poll shows the customers out, without a reload
    wait_until(page, f"document.querySelector('#oms-customers-out').textContent === '{CUSTOMERS}'",
                           timeout=20_000)
    assert page.inner_text("#oms-outages") == "1"
    assert page.locator("path.leaflet-interactive").count() >= 1  # the area with customers out is drawn
    page.screenshot(path=str(tmp_path / "service-public.png"), full_page=True)
    assert (tmp_path / "service-public.png").stat().st_size > 10_000

    # what the service stored and decided, through its own API
    dispatcher = {"Authorization": f"Bearer {tokens['dispatcher']}"}
    status = httpx.get(f"{base}/reports/{reference}").json()
    assert status["status"] == "linked" and status["event"]["customers_out"] == CUSTOMERS
    events = httpx.get(f"{base}/events", headers=dispatcher).json()
    assert len(events) == 1 and events[0]["device_id"] == DEVICE, events
    event_id = events[0]["id"]

    # an ambiguous address gets the same answer as any report (the public never learns who is on file): it is
    # kept for a person to match, and no new event appears
    page.fill("input[name=address]", "Market Square")
    page.click("#oms-report-form button[type=submit]")
    wait_until(page, "document.querySelector('#oms-report-result').className !== ''"
                           f" && !document.querySelector('#oms-report-result').textContent.includes('{reference}')")
    assert "oms-ok" in page.get_attribute("#oms-report-result", "class"), page.inner_text("#oms-report-result")
    assert len(httpx.get(f"{base}/events", headers=dispatcher).json()) == 1
    context.close()

    # the dispatcher signs in (name and password: a form, never the URL) and the map shows the event
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    d_errors, d_foreign = watch(page, base)
    page.goto(f"{base}/session")
    page.fill("input[name=username]", "dispatcher-user")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console")
    page.goto(f"{base}/maps/dispatcher")
    wait_until(page, "document.querySelector('#oms-events').textContent === '1'", timeout=20_000)
    wait_until(page, "document.querySelector('#oms-shown').textContent === '1'")
    drawn = page.evaluate("oms_layer_events.getLayers().map(l => [l.feature.properties.id, "
                          "l.feature.properties.device, l.feature.properties.customers_out])")
    assert drawn == [[event_id, DEVICE, CUSTOMERS]]
    page.screenshot(path=str(tmp_path / "service-dispatcher.png"))
    page.close()
    assert errors == [] and d_errors == [], errors + d_errors
    assert foreign == [] and d_foreign == [], foreign + d_foreign
