"""The members' map as a member uses it, in a real browser at phone and desktop sizes: find an address and see its
area, send a report and see the address it read, follow the status to "restored", switch to Spanish; and an
axe-core accessibility check. The app: the maps router over the hand-made territory with places, and a small
stand-in for the service's report routes (the service's own are tested in tests/maps/test_public_status.py).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import launch_browser, serve, watch  # noqa: E402  (skips without chromium)
from fastapi import FastAPI, HTTPException  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "maps"))
from maps_territory import storm_state  # noqa: E402
from test_maps_places import placed_territory  # noqa: E402

from api.maps import MapOptions, PageConfig, StaticProvider, create_router  # noqa: E402
from api.web.schemas import ReportIn  # noqa: E402

SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


def build_app():
    net = placed_territory()
    app = FastAPI()
    app.include_router(create_router(StaticProvider(net, storm_state(net, version=1)),
                                     options=MapOptions(cell_m=500, min_customers=10),
                                     page=PageConfig(utility_name="Fichtel Co-op", utility_phone="+49 921 555 0100",
                                                     alerts_url="/alerts", public_interval_s=1)))
    reports: dict[str, int] = {}
    numbers = itertools.count(1)

    @app.post("/reports", status_code=202)
    def post_report(report: ReportIn):
        ref = f"R-{next(numbers):04d}"
        reports[ref] = 0
        return {"reference": ref, "received_at": "2024-07-01T18:00:00Z", "duplicate": False,
                "status_url": f"/reports/{ref}"}

    @app.get("/reports/{ref}")
    def status(ref: str):
        """Each look-up moves the outage one stage on, ending restored."""
        if ref not in reports:
            raise HTTPException(404, "no report with this reference")
        step = min(reports[ref], 2)
        reports[ref] += 1
        event = [{"stage": "crew_en_route", "state": "en_route", "customers_out": 20, "cause": None,
                  "etr_earliest": "2024-07-01T20:00:00Z", "etr_latest": "2024-07-01T21:00:00Z",
                  "etr_confidence": "high", "crew_assigned": True, "restored_at": None},
                 {"stage": "crew_on_site", "state": "on_site", "customers_out": 20, "cause": None,
                  "etr_earliest": "2024-07-01T20:00:00Z", "etr_latest": "2024-07-01T21:00:00Z",
                  "etr_confidence": "high", "crew_assigned": True, "restored_at": None},
                 {"stage": "restored", "state": "restored", "customers_out": 0, "cause": None, "etr_earliest": None,
                  "etr_latest": None, "etr_confidence": None, "crew_assigned": False,
                  "restored_at": "2024-07-01T20:40:00Z"}][step]
        return {"reference": ref, "received_at": "2024-07-01T18:00:00Z", "status": "linked", "event": event}

    return app


@pytest.fixture(scope="module")
def site():
    with serve(build_app()) as base, launch_browser() as browser:
        yield base, browser


@pytest.mark.parametrize("size", SIZES)
def test_member_finds_home_reports_and_follows_to_restored(site, size, tmp_path):
    base, browser = site
    page = browser.new_page(viewport=SIZES[size], locale="en-US")
    errors, foreign = watch(page, base)
    page.goto(f"{base}/maps/public")
    page.wait_for_selector("#oms-list-body tr")
    assert "Oberdorf" in page.inner_text("#oms-list-body")
    assert page.get_attribute("a.oms-call", "href") == "tel:+499215550100"

    page.fill("#oms-search-q", "lindenstr 4")
    page.click("#oms-search-form button[type=submit]")
    answer = page.wait_for_selector("#oms-search-result .oms-answer")
    text = page.inner_text("#oms-search-result")
    assert "Lindenstraße 4, 95512 Oberdorf" in text and "Your area" in text
    assert "21 of 23 customers out" in answer.inner_text() and "Power back by" in answer.inner_text()

    page.click("#oms-report-form >> xpath=..//summary")
    page.fill("#oms-report-form input[name=address]", "Lindenstrasse 4")
    page.click("#oms-report-form button[type=submit]")
    page.wait_for_selector("#oms-report-reference")
    page.wait_for_selector("#oms-report-address .oms-answer")
    assert "Lindenstraße 4, 95512 Oberdorf" in page.inner_text("#oms-report-address")
    page.wait_for_selector("#oms-report-outage table")
    assert "Crew on the way" in page.inner_text("#oms-report-outage")

    page.click("#oms-lookup summary")
    for _ in range(3):  # each look-up is one stage on: on site, then restored
        page.click("#oms-lookup-form button[type=submit]")
        page.wait_for_timeout(300)
    result = page.inner_text("#oms-lookup-result")
    assert "Power restored" in result and "Estimated" not in result

    toggle = page.locator("#oms-toggle")
    toggle.click()
    assert toggle.inner_text() == "Show" and toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert toggle.inner_text() == "Hide"

    page.click("#oms-lang")
    assert page.get_attribute("html", "lang") == "es"
    assert "Busque su calle o pueblo" in page.inner_text("#oms-search-form")
    assert page.inner_text("#oms-toggle") == "Ocultar"
    assert page.title().endswith("— cortes de luz") and "cortes de luz" in page.inner_text("#oms-title")
    page.click("#oms-search-form button[type=submit]")
    page.wait_for_function("document.querySelector('#oms-search-result').innerText.includes('Su zona')")
    page.screenshot(path=str(tmp_path / f"public-{size}.png"))
    assert errors == [] and foreign == []


@pytest.mark.parametrize("size", SIZES)
def test_nothing_overlaps_the_map_controls(site, size):
    base, browser = site
    page = browser.new_page(viewport=SIZES[size])
    page.goto(f"{base}/maps/public")
    page.wait_for_selector("#oms-list-body tr")
    page.wait_for_timeout(300)
    boxes = {name: page.locator(sel).bounding_box() for name, sel in (
        ("panel", "#oms-panel"), ("layers", ".leaflet-control-layers"), ("scale", ".leaflet-control-scale"),
        ("credits", ".leaflet-control-attribution"), ("zoom", ".leaflet-control-zoom"))}

    def overlap(a, b):
        return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"] or
                    a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])

    names = list(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not overlap(boxes[a], boxes[b]), f"{a} overlaps {b} on a {size}"


def test_no_serious_accessibility_violations(site):
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    base, browser = site
    page = browser.new_page(viewport=SIZES["phone"])
    page.goto(f"{base}/maps/public")
    page.wait_for_selector("#oms-list-body tr")
    page.fill("#oms-search-q", "Lindenstraße 4")
    page.click("#oms-search-form button[type=submit]")
    page.wait_for_selector("#oms-search-result .oms-answer")
    results = axe_module.Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert bad == [], [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3]) for v in bad]
