"""Both maps in a real browser (Debian's chromium driven by Playwright) against a running uvicorn server.

The test app mounts the maps router and, because the service's routes are written separately, a minimal stand-in
for ``POST /reports`` and ``GET /reports/{reference}`` that validates with the service's own ``ReportIn`` schema
and turns a report into a new outage on the map. Skipped when chromium or playwright is not installed.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import PlaywrightTimeout, launch_browser, serve, watch  # noqa: E402  (skips without chromium)
from fastapi import FastAPI  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "maps"))
from maps_territory import sp_rows, storm_state, territory  # noqa: E402

from api.maps import MapEvent, MapOptions, PageConfig, StaticProvider, create_router  # noqa: E402
from api.web.schemas import ReportIn  # noqa: E402  (the service's own intake schema: the form must satisfy it)


def build_app():
    net = territory()
    provider = StaticProvider(net, storm_state(net, version=1))
    versions = itertools.count(2)
    reports: dict[str, dict] = {}
    app = FastAPI()
    app.include_router(create_router(provider, options=MapOptions(min_customers=10),
                                     page=PageConfig(public_interval_s=1, dispatcher_interval_s=1)))

    @app.post("/reports", status_code=202)
    def post_report(report: ReportIn):
        town = sp_rows(net, "sp-town")
        event = MapEvent("EV-200", "FT", 11.521, 49.970, tier=3, event_class="feeder", customers_out=30,
                         sp_indices=town, explanation=f"report via {report.channel}")
        state = provider.current
        provider.current = replace(state, events=(*state.events, event), version=next(versions))
        reference = f"R-{len(reports) + 1:04d}"
        reports[reference] = {"reference": reference, "received_at": state.updated_at.isoformat(),
                              "status": "linked", "event": {"state": "predicted", "customers_out": 30, "cause": None,
                                                            "etr_earliest": None, "etr_latest": None,
                                                            "crew_assigned": False},
                              "body": report.model_dump()}
        return {"reference": reference, "received_at": state.updated_at.isoformat(), "duplicate": False,
                "status_url": f"/reports/{reference}"}

    @app.get("/reports/{reference}")
    def get_report(reference: str):
        from fastapi import HTTPException

        if reference not in reports:
            raise HTTPException(status_code=404, detail="no such report")
        return {k: v for k, v in reports[reference].items() if k != "body"}

    return app, provider, versions, reports


@pytest.fixture(scope="module")
def server():
    app, provider, versions, reports = build_app()
    with serve(app) as base:
        yield base, provider, versions, reports


@pytest.fixture(scope="module")
def browser():
    with launch_browser() as b:
        yield b


def test_public_map_live_report_and_lookup(server, browser, tmp_path):
    base, provider, versions, reports = server
    context = browser.new_context(viewport={"width": 390, "height": 800}, is_mobile=True)  # a phone
    page = context.new_page()
    errors, foreign = watch(page, base)
    page.goto(f"{base}/maps/public")
    page.wait_for_function("document.querySelector('#oms-customers-out').textContent === '21'")
    areas = page.locator("path.leaflet-interactive")
    assert areas.count() >= 1
    assert page.locator("#oms-updated-at").inner_text().strip() not in ("", "…")
    before = areas.count()

    # the panel is a bottom sheet on a phone; hide it to reach the map, open an area's popup, show it again
    page.click("#oms-toggle")
    x, y = page.evaluate("""(() => {
        const layer = oms_layer_areas.getLayers()[0];
        map_oms.setView(layer.getCenter(), map_oms.getZoom(), {animate: false});
        const p = map_oms.latLngToContainerPoint(layer.getCenter());
        const r = document.getElementById('map_oms').getBoundingClientRect();
        return [r.left + p.x, r.top + p.y]; })()""")
    page.mouse.click(x, y)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Customers out" in popup.inner_text() and "Power back by" in popup.inner_text()
    page.screenshot(path=str(tmp_path / "public-phone-popup.png"))
    page.click("#oms-toggle")

    # report an outage through the form; the new outage appears after the live update
    page.click("text=Report an outage")
    page.fill("input[name=account]", "ACC-0023")
    page.select_option("select[name=power]", "out")
    page.check("input[name=hazard]")
    page.fill("input[name=contact]", "member@example.org")
    page.click("#oms-report-form button[type=submit]")
    page.wait_for_function("document.querySelector('#oms-report-result').textContent.length > 12")
    assert page.locator("#oms-report-reference").count() == 1, page.inner_text("#oms-report-result")
    reference = page.locator("#oms-report-reference").inner_text()
    assert reference in reports
    sent = reports[reference]["body"]
    assert sent["account"] == "ACC-0023" and sent["hazards"] == ["wires_down"] and sent["channel"] == "web"
    assert sent["contact"]["email"] == "member@example.org"
    page.wait_for_function("document.querySelector('#oms-customers-out').textContent === '51'")
    assert areas.count() > before

    # check my outage, by the reference the form just filled in
    page.click("text=Check my outage")
    assert page.input_value("#oms-lookup-reference") == reference
    page.click("#oms-lookup-form button[type=submit]")
    page.wait_for_function("document.querySelector('#oms-lookup-result').textContent.includes('Part of a known outage')")

    # a restoration on the server shows up by polling alone, without reloading
    state = provider.current
    provider.current = replace(state, events=state.events[1:], version=next(versions))
    page.wait_for_function("document.querySelector('#oms-customers-out').textContent === '31'")
    page.screenshot(path=str(tmp_path / "public-phone.png"), full_page=True)
    assert (tmp_path / "public-phone.png").stat().st_size > 10_000
    assert foreign == [], f"requests left the app: {foreign}"
    assert errors == []
    context.close()


def test_dispatcher_map_layers_popup_and_filters(server, browser, tmp_path):
    base, provider, versions, reports = server
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors, foreign = watch(page, base)
    page.goto(f"{base}/maps/dispatcher")
    page.wait_for_function("document.querySelector('#oms-events').textContent !== '–'")
    page.wait_for_function("Number(document.querySelector('#oms-deenergized').textContent) > 0")
    assert page.locator(".oms-crew").count() == 1
    n_events = len(provider.current.events)
    assert page.inner_text("#oms-shown") == str(n_events)
    # click the first event marker where Leaflet drew it (canvas renderer: no DOM node per marker)
    event = provider.current.events[0]
    popup = page.locator(".leaflet-popup-content")
    # a live update may redraw the canvas or move the view between our setView and the click: re-aim each try
    for _ in range(10):
        x, y = page.evaluate(f"(() => {{ map_oms.setView([{event.lat}, {event.lon}], 16, {{animate: false}});"
                             f" const p = map_oms.latLngToContainerPoint([{event.lat}, {event.lon}]);"
                             " const r = document.getElementById('map_oms').getBoundingClientRect();"
                             " return [r.left + p.x, r.top + p.y]; })()")
        page.wait_for_timeout(300)
        page.mouse.click(x, y)
        try:
            popup.wait_for(timeout=2000)
            break
        except PlaywrightTimeout:
            continue
    assert event.event_id in popup.inner_text() and event.explanation in popup.inner_text()
    # filters: hide the tier of that event
    page.uncheck(f".oms-filter-tier[value='{event.tier}']")
    expected = sum(1 for e in provider.current.events if e.tier != event.tier)
    page.wait_for_function(f"document.querySelector('#oms-shown').textContent === '{expected}'")
    page.check(f".oms-filter-tier[value='{event.tier}']")
    # layer control lists the overlays
    page.hover(".leaflet-control-layers")
    labels = page.locator(".leaflet-control-layers-overlays").inner_text()
    for name in ("Feeders", "Outage events", "Crews", "Planned routes", "Roads"):
        assert name in labels
    page.screenshot(path=str(tmp_path / "dispatcher.png"))
    assert foreign == [] and errors == []
    page.close()
