"""The whole service in a real browser: ``api.app.create_app`` on a small territory, served by uvicorn on a
loopback port, driven by Debian's chromium through Playwright.

A member opens the public map and reports an outage with the form, by street address only; the real
``POST /reports`` locates it (:mod:`api.territory`), stores it, the live engine rolls it up to the transformer,
and the public map shows those customers out after its next poll — no reload. A dispatcher opening the
dispatcher map with ``?token=`` sees the same event. Skipped when chromium or playwright is not installed.
"""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

import httpx  # noqa: E402
import uvicorn  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "maps"))
sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
from maps_territory import territory  # noqa: E402
from service_helpers import make_users  # noqa: E402

from api.app import create_app  # noqa: E402
from api.maps import PageConfig  # noqa: E402
from api.settings import Settings  # noqa: E402

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
#: "1 Market Square" is one service point of the test territory: 10 customers on transformer TT1.
ADDRESS, SP, DEVICE, CUSTOMERS = "1 Market Square", "sp-town0", "TT1", 10


@pytest.fixture
def service(db_url):
    """The real app on the maps' test territory, polling every second; yields (base URL, role -> token)."""
    tokens = make_users(db_url)
    settings = Settings(database_url=db_url, replan_debounce_s=3600.0, replan_max_wait_s=3600.0,
                        replan_time_limit_s=1.0)
    net = territory()
    net.road_edges = net.road_edges.iloc[:0]  # its roads are drawing-only (no road nodes); crews go straight
    app = create_app(settings, network=net, page=PageConfig(public_interval_s=1, dispatcher_interval_s=1))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", tokens
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()


def watch(page, base):
    """Page errors and requests that leave the app (none are allowed: no CDN, no tiles)."""
    errors, foreign = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith((base, "data:")) else None)
    return errors, foreign


def test_report_by_address_appears_on_the_public_and_dispatcher_maps(service, browser, tmp_path):
    base, tokens = service
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    page = context.new_page()
    errors, foreign = watch(page, base)
    page.goto(f"{base}/maps/public")
    page.wait_for_function("document.querySelector('#oms-customers-out').textContent === '0'")
    assert page.locator("#oms-updated-at").inner_text().strip() not in ("", "…")

    # report through the form: a street address is all the member gives
    page.click("text=Report an outage")
    page.fill("input[name=address]", ADDRESS)
    page.select_option("select[name=power]", "out")
    page.click("#oms-report-form button[type=submit]")
    page.wait_for_function("document.querySelector('#oms-report-result').textContent.length > 12")
    assert page.locator("#oms-report-reference").count() == 1, page.inner_text("#oms-report-result")
    reference = page.locator("#oms-report-reference").inner_text()

    # the live engine rolls it up; the map's own poll shows the customers out, without a reload
    page.wait_for_function(f"document.querySelector('#oms-customers-out').textContent === '{CUSTOMERS}'",
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

    # an ambiguous address is refused in the form, with the reason, and nothing new appears
    page.fill("input[name=address]", "Market Square")
    page.click("#oms-report-form button[type=submit]")
    page.wait_for_function("document.querySelector('#oms-report-result').textContent.includes('ambiguous')")
    assert "oms-bad" in page.get_attribute("#oms-report-result", "class")
    context.close()

    # the dispatcher map, opened with the token once in the URL, shows the event
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    d_errors, d_foreign = watch(page, base)
    page.goto(f"{base}/maps/dispatcher?token={tokens['dispatcher']}")
    page.wait_for_function("document.querySelector('#oms-events').textContent === '1'", timeout=20_000)
    page.wait_for_function("document.querySelector('#oms-shown').textContent === '1'")
    drawn = page.evaluate("oms_layer_events.getLayers().map(l => [l.feature.properties.id, "
                          "l.feature.properties.device, l.feature.properties.customers_out])")
    assert drawn == [[event_id, DEVICE, CUSTOMERS]]
    page.screenshot(path=str(tmp_path / "service-dispatcher.png"))
    page.close()
    assert errors == [] and d_errors == [], errors + d_errors
    assert foreign == [] and d_foreign == [], foreign + d_foreign
