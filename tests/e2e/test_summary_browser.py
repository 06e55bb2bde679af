"""The post-event summary in a real browser: a 100-event storm reads on a phone and on a desktop without
sideways scrolling, loads nothing from outside the file, and prints on two pages, A4 or Letter, at its own size
(Chromium shrinks a page that is too wide to fit the paper; the test checks that it did not have to)."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from outage.summary import EventSummary, post_event_summary, write_html
from tests.e2e.browser import launch_browser, watch

T0 = datetime(2026, 3, 14, 18, tzinfo=UTC)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    rng = random.Random(7)
    events = []
    for i in range(100):
        start = T0 + timedelta(minutes=rng.uniform(0, 240))
        out = timedelta(minutes=rng.uniform(30, 900))
        issued = start + timedelta(minutes=10)
        events.append(EventSummary(
            f"E{i + 1}", start, start + out, rng.choice([1, 1, 3, 40, 250]), rng.choice(["P1", "P2", "P3", "P4"]),
            rng.choice(["feeder", "single_customer"]), rng.choice(["tree", "storm", "equipment", ""]),
            start + timedelta(minutes=2), etrs=((issued, issued + out * rng.uniform(0.7, 1.3)),),
            crew_hours=rng.uniform(0.5, 6), device=_device(rng, i),
            feeder=f"UW{rng.randint(1, 2)}-F{rng.randint(1, 3)}", area=f"Area {rng.randint(1, 30)}",
            crews=(f"crew-{rng.randint(1, 6)}",), reports=rng.randint(0, 12),
            lon=11.55 + rng.uniform(0, 0.1), lat=49.95 + rng.uniform(0, 0.06)))
    s = post_event_summary(T0, T0 + timedelta(days=1), events, title="Storm of 14 March: post-event summary",
                           customers_served=5080, clock_note="storm time (UTC)")
    return write_html(s, tmp_path_factory.mktemp("report") / "summary.html"), s


def _device(rng: random.Random, i: int) -> str:
    """Device ids as the sample territory names them (``SI0027``, ``TR0184``, a customer's ``SP00878``), and every
    tenth one far longer, as another utility's GIS might name it (it must wrap, not widen the page)."""
    if i % 10 == 0:
        return f"fuse-{rng.randrange(10**6):06d}-a-rather-long-device-name"
    return rng.choice(["SI", "TR", "RC", "SP0"]) + f"{rng.randrange(10**4):04d}"


@pytest.mark.parametrize("width,height", [(375, 740), (1280, 900)])
def test_summary_reads_without_sideways_scrolling(report, width, height):
    path, s = report
    with launch_browser() as browser:
        page = browser.new_page(viewport={"width": width, "height": height})
        errors, foreign = watch(page, path.as_uri())
        page.goto(path.as_uri())
        scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert scroll <= client, f"{scroll - client} px of sideways scrolling at {width} px"
        assert errors == [] and foreign == []
        text = page.inner_text("main")
        assert f"{s.peak_customers_out:,}" in text and "SAIDI" in text and "Customer-minutes" in text
        assert not re.search(r"\d\.\d{3,}", text)  # rounded numbers, no 0.855 or 299.123
        assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d", text)  # no ISO times with microseconds
        assert page.locator("table.cardlist tbody tr").count() >= 100  # every event has its row


#: Paper sizes in CSS pixels (96 per inch) less the report's 8 mm print margins on each side.
PAPER = {"A4": (794 - 60, 1123 - 60), "Letter": (816 - 60, 1056 - 60)}


@pytest.mark.parametrize("paper", sorted(PAPER))
def test_summary_prints_on_two_pages(report, paper):
    path, _ = report
    with launch_browser() as browser:
        page = browser.new_page()
        page.goto(path.as_uri())
        pdf = page.pdf(format=paper)
        # the same layout on the screen, at the paper's text width: nothing wider than the paper (else Chromium
        # would have shrunk the whole page to fit, type and all), every event has its row, the type stays legible
        page.emulate_media(media="print")
        page.set_viewport_size({"width": PAPER[paper][0], "height": PAPER[paper][1]})
        scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        rows = page.locator("section.events tbody tr").count()
        smallest = page.evaluate("""Math.min(...[...document.querySelectorAll(
            'main :is(td, th, p, dt, dd, small, figcaption, h3, li)')].map(e => parseFloat(getComputedStyle(e).fontSize)))""")
        # the charts and the map are on paper, at least 25 mm tall; the three breakdowns too
        figures = page.evaluate("[...document.querySelectorAll('main figure :is(img, svg)')].map("
                                "e => e.getBoundingClientRect().height)")
        breakdowns = page.locator("section .breakdowns table").count()
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages <= 2, f"{pages} pages on {paper}"
    assert scroll <= client, f"{scroll - client} px wider than {paper} paper: the browser would shrink the print"
    assert rows == 100 and breakdowns == 3
    assert len(figures) == 4 and min(figures) >= 25 / 25.4 * 96, figures
    assert smallest >= 8.6, f"{smallest:.1f} px type (6.5 pt is the smallest that prints legibly)"
