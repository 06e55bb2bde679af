"""The console's "Reports to match" tab in a real browser (Debian's chromium through Playwright) against the running
service: a member's report that matched no one waits there; the dispatcher finds the service point and matches it
(the outage then appears in the events grid), dismisses another with a reason; the tab has no serious
accessibility violations (axe-core). Skipped when chromium or playwright is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "maps"))
sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
import httpx  # noqa: E402
from browser import CONSOLE_PASSWORD, wait_until, watch  # noqa: E402

PASSWORD = CONSOLE_PASSWORD


def _member_report(base, **body) -> str:
    r = httpx.post(f"{base}/reports", json=body)  # the public form: no token
    assert r.status_code == 202, r.text
    return r.json()["reference"]


def _console(browser, base):
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors, foreign = watch(page, base)
    page.goto(f"{base}/console")
    page.fill("#username", "dispatcher-user")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console")
    wait_until(page, "document.body.dataset.ready === 'true'")
    wait_until(page, "document.querySelector('#conn').textContent === 'Live'")
    return page, errors, foreign


def test_a_dispatcher_matches_a_report_to_a_service_point_and_dismisses_another(service, browser):
    base, _, _ = service
    page, errors, foreign = _console(browser, base)
    assert page.is_hidden("#review-badge")
    ref = _member_report(base, address="10 Elm Stret", comment="Tree on the line behind the house")
    wait_until(
        page,
        "!document.querySelector('#review-badge').hidden && "
        "document.querySelector('#review-badge').textContent === '1'",
        15_000,
    )

    page.keyboard.press("4")
    page.wait_for_selector("#review-table")
    row = page.locator("#review-table tr[data-report]")
    assert row.count() == 1
    text = row.inner_text()
    assert ref in text and "10 Elm Stret" in text and "Tree on the line behind the house" in text

    # find the service point: the typo finds nothing, part of the street does
    row.locator("button[data-action=match]").click()
    page.wait_for_selector("#review-q")
    assert page.input_value("#review-q") == "10 Elm Stret"
    wait_until(page, "document.querySelector('#review-hits').innerText.includes('No service point fits')")
    page.fill("#review-q", "10 elm")
    page.keyboard.press("Enter")
    wait_until(page, "document.querySelector('#review-hits button[data-sp]') !== null")
    hit = page.locator("#review-hits button[data-sp]").first
    assert hit.inner_text() == "Match to 10 Elm Street"
    sp = hit.get_attribute("data-sp")
    assert page.evaluate("window.omsConsole.events.size") == 0
    hit.click()
    wait_until(page, "document.getElementById('toast').textContent.includes('matched to 10 Elm Street')")
    page.wait_for_selector("#review-empty")
    assert page.is_hidden("#review-badge")
    # the report went to the engine as a located one: its outage is in the grid
    wait_until(page, "window.omsConsole.events.size === 1", 15_000)
    status = httpx.get(f"{base}/reports/{ref}").json()
    assert status["status"] == "linked", status

    # another, from a phone not on file: dismissed, with a reason
    ref2 = _member_report(base, phone="+1 555 0100 999", comment="lights flickering")
    wait_until(page, "document.querySelectorAll('#review-table tr[data-report]').length === 1", 15_000)
    page.locator("#review-table tr[data-report] button[data-action=dismiss]").click()
    page.fill("#review-note", "not our service area")
    page.click("#review-dismiss")
    wait_until(page, f"document.getElementById('toast').textContent === 'Report {ref2} dismissed'")
    page.wait_for_selector("#review-empty")
    assert sp and errors == [], errors
    assert foreign == [], foreign


def test_the_reports_tab_has_no_serious_accessibility_violations(service, browser):
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright", reason="axe-playwright-python")
    base, _, _ = service
    page, errors, _ = _console(browser, base)
    axe = axe_module.Axe()
    page.keyboard.press("4")
    page.wait_for_selector("#review-empty")
    problems = _serious(axe.run(page))
    _member_report(
        base, account="ACC-9999", comment="no power since 6", hazards=["wires_down"], medical_equipment=True
    )
    page.wait_for_selector("#review-table tr[data-report]", timeout=15_000)
    problems += _serious(axe.run(page))
    page.locator("#review-table tr[data-report] button[data-action=match]").click()
    page.wait_for_selector("#review-hits li")
    problems += _serious(axe.run(page))
    page.locator("#review-table tr[data-report] button[data-action=dismiss]").click()
    page.wait_for_selector("#review-note")
    problems += _serious(axe.run(page))
    assert problems == [], problems
    assert errors == [], errors


def _serious(results) -> list[str]:
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
