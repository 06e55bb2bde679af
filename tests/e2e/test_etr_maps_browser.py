"""The maps show an ETR as the notifications do: its range with its stated probability (a real browser)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from browser import PlaywrightTimeout, launch_browser, serve, watch  # noqa: E402  (skips without chromium)
from fastapi import FastAPI  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "maps"))
from maps_territory import storm_state, territory  # noqa: E402

from api.maps import MapOptions, PageConfig, StaticProvider, create_router  # noqa: E402


def _click_popup(page, lat: float, lon: float, zoom: str = "map_oms.getZoom()"):
    popup = page.locator(".leaflet-popup-content")
    for _ in range(10):  # a live update may redraw or move the view between the aim and the click: re-aim
        x, y = page.evaluate(
            f"(() => {{ map_oms.setView([{lat}, {lon}], {zoom}, {{animate: false}});"
            f" const p = map_oms.latLngToContainerPoint([{lat}, {lon}]);"
            " const r = document.getElementById('map_oms').getBoundingClientRect();"
            " return [r.left + p.x, r.top + p.y]; })()"
        )
        page.wait_for_timeout(300)
        page.mouse.click(x, y)
        try:
            popup.wait_for(timeout=2000)
            return popup.inner_text()
        except PlaywrightTimeout:
            continue
    raise AssertionError("no popup opened")


def test_both_maps_state_the_etr_with_its_probability(tmp_path):
    net = territory()
    state = storm_state(net, version=1)
    village = replace(state.events[0], etr_probability=0.8)  # 20:00-21:30 UTC, 80%
    state = replace(state, events=(village, *state.events[1:]))
    app = FastAPI()
    app.include_router(
        create_router(
            StaticProvider(net, state),
            options=MapOptions(min_customers=10),
            page=PageConfig(public_interval_s=60, dispatcher_interval_s=60),
        )
    )
    with serve(app) as base, launch_browser() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800}, timezone_id="UTC")
        errors, _ = watch(page, base)
        page.goto(f"{base}/maps/dispatcher")
        page.wait_for_function("document.querySelector('#oms-events').textContent !== '–'")
        text = _click_popup(page, village.lat, village.lon, "16")
        assert village.event_id in text and "(80%)" in text, text
        page.goto(f"{base}/maps/public")
        page.wait_for_function("document.querySelector('#oms-customers-out').textContent === '21'")
        area = page.evaluate(
            "(() => { const c = oms_layer_areas.getLayers()[0].getCenter(); return [c.lat, c.lng]; })()"
        )
        text = _click_popup(page, area[0], area[1])
        assert "Power back between" in text and "(80% likely)" in text, text
        assert errors == []
