"""The post-event summary as a storm manager reads it: one self-contained HTML page (no external asset).

Human labels with units, local times (the summary's ``tz``), rounded numbers; the event's IEEE 1366 contribution
(CMI, SAIFI, SAIDI, CAIDI); breakdowns by feeder, area and cause in customers and customer-minutes; one row per
event (device, feeder, crews, reports, ETR accuracy); the restoration curve; a map of the events drawn as SVG over
the feeders. It reads on a phone (tables become cards below 40em) and prints a 100-event storm on two pages,
A4 or Letter (``@media print``: 6.5 pt tables, one line per event, the charts beside the map, breakdowns side by side).
The CSVs and ``summary.json`` keep the raw figures for scripts.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

ALT = {"curve": "Restoration curve: customers out over the storm",
       "etr": "ETR accuracy: each event's first and last ETR against its actual restoration",
       "ttr": "Time to restore by priority tier"}
TIER_COLOURS = {"P1": "#b2182b", "P2": "#ef8a62", "P3": "#67a9cf", "P4": "#2166ac"}

CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:62em;color:#1a1a1a}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:2px solid #ddd}
h3{font-size:1em;margin:.8em 0 .3em}
.when{color:#444;margin:0 0 1em}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5em,1fr));gap:.5em;margin:0;padding:0}
.cards div{border:1px solid #ccc;border-radius:6px;padding:.4em .6em}
.cards dt{font-size:.8em;color:#444}.cards dd{margin:0;font-size:1.3em;font-weight:600}
.cards dd small{display:block;font-size:.6em;font-weight:400;color:#444;line-height:1.3}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{padding:3px 6px;text-align:left;border-bottom:1px solid #ddd;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:0 0 1em}figure img,figure svg{max-width:100%;height:auto;display:block}
figcaption,.legend{font-size:.85em;color:#444}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(17em,1fr));gap:0 1em}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(24em,100%),1fr));gap:0 1em}
.tier{display:inline-block;min-width:2em;text-align:center;border-radius:3px;color:#fff;font-size:.85em}
@media (max-width:40em){
 table.cardlist thead{position:absolute;left:-9999px}
 table.cardlist tr{display:block;border:1px solid #ccc;border-radius:6px;margin:0 0 .6em;padding:.3em .5em}
 table.cardlist td{display:flex;justify-content:space-between;gap:1em;border:0;padding:1px 0;text-align:right}
 table.cardlist td::before{content:attr(data-label);color:#444;text-align:left}
}
@media print{
 @page{margin:8mm}
 body{font-size:7.5pt;line-height:1.25;max-width:none;padding:0}
 h1{font-size:12pt;margin:0}h2{font-size:8.5pt;margin:1.2mm 0 .6mm;border-bottom-width:1px;break-after:avoid}
 h3{font-size:7.5pt;margin:.5mm 0}.when{margin:0 0 1mm}
 .cards{grid-template-columns:repeat(6,1fr);gap:1mm}.cards div{padding:.3mm 1.2mm;border-radius:2px}
 .cards dt{font-size:6.5pt;line-height:1.15}.cards dd{font-size:9.5pt;line-height:1.2}.cards dd small{font-size:6.5pt}
 .figs{grid-template-columns:1fr 1fr 1.15fr;grid-template-areas:"curve curve map" "etr ttr map";gap:0 3mm}
 .f-curve{grid-area:curve}.f-map{grid-area:map}.f-etr{grid-area:etr}.f-ttr{grid-area:ttr}
 figure{margin:0}figure img{max-height:32mm;max-width:100%;width:auto}
 .f-map svg{max-height:62mm;width:100%}
 figcaption,.legend{font-size:6.5pt;line-height:1.2}
 .breakdowns{grid-template-columns:1fr 2fr;grid-template-areas:"feeder area" "cause area";gap:0 3mm;
  align-items:start}
 .b-feeder{grid-area:feeder}.b-cause{grid-area:cause}.b-area{grid-area:area;columns:2;column-gap:3mm}
 .b-area h3{column-span:all}
 table{font-size:6.5pt;line-height:1.1}th,td{padding:0 .9mm 0 0;border-bottom:.2mm solid #ddd}
 td{white-space:nowrap}th{vertical-align:bottom;line-height:1.05}
 th[data-short] span{display:none}th[data-short]::after{content:attr(data-short)}
 td.dev{white-space:normal;overflow-wrap:anywhere;max-width:30mm}td.rest{white-space:normal}
 .events .w{display:none}.tier{min-width:1.6em;border-radius:1px;font-size:inherit;line-height:inherit}
 tr,figure,.cards div{break-inside:avoid}thead{display:table-header-group}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def render(s, events: Sequence, network=None, images: dict[str, str] | None = None) -> str:
    """The report for :class:`outage.summary.PostEventSummary` ``s`` and its events (``EventSummary`` rows)."""
    esc = html.escape
    tz = s.tz or UTC
    m = s.metrics
    inside = [e for e in events if s.window_start <= e.start < s.window_end]
    ix = s.indices
    ttr = m.minutes_to_restore
    prio, ack = m.priority_within, m.acknowledgments
    cards = [
        ("Events", f"{m.events}", f"{m.events_restored} restored, {m.events_open} open"),
        ("Peak customers out", f"{s.peak_customers_out:,}", f"at {_time(s.peak_time, tz)}" if s.peak_time else ""),
        ("Customer interruptions", f"{s.customer_interruptions:,}", ""),
        ("Customer-minutes (CMI)", f"{s.customer_minutes:,.0f}", ""),
        ("SAIFI contribution", _num(ix["saifi"], 2), "interruptions per customer"),
        ("SAIDI contribution", _num(ix["saidi_min"], 1), "minutes per customer"),
        ("CAIDI", _num(ix["caidi_min"], 0), "minutes per interruption"),
        ("Median time to restore", _duration(ttr.get("p50")), f"90% within {_duration(ttr.get('p90'))}"),
        (f"{prio['tiers'].replace(',', '/')} customers back within {prio['hours']:g} h", _pct(prio["share"]),
         f"of {prio['customers']:,}"),
        ("Reports acknowledged in time", _pct(ack["share"]), f"within {ack['sla_minutes']:g} min, of {ack['reports']}"),
        ("Last ETR met", _pct(s.etr.get("last_met_share")), f"{s.etr.get('events', 0)} events with an ETR"),
        ("Crew-hours", f"{m.crew_hours:,.1f}", ""),
    ]
    card_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}{f' <small>{esc(u)}</small>' if u else ''}</dd></div>"
                        for k, v, u in cards)
    served = (f"; {s.customers_served:,} customers served" if s.customers_served else "")
    when = (f"{_time(s.window_start, tz, date=True)} to {_time(s.window_end, tz, date=True)}"
            f"{' — ' + s.clock_note if s.clock_note else ''}{served}")
    images = images or {}

    def img(key: str) -> str:
        return (f'<figure><img alt="{esc(ALT[key])}" src="data:image/png;base64,{images[key]}"></figure>'
                if key in images else "")

    storm_map = event_map(inside, network, tz) if inside else ""
    breakdowns = "".join(f'<div class="b-{key}"><h3>By {label}</h3>{_breakdown(inside, key, s.window_end, label)}</div>'
                         for label, key in (("feeder", "feeder"), ("area", "area"), ("cause", "cause")))
    notes = "".join(f"<li>{esc(n)}</li>" for n in s.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{esc(s.title)}</title><style>{CSS}</style></head><body>
<header><h1>{esc(s.title)}</h1><p class="when">{esc(when)}</p></header>
<main>
<section aria-labelledby="h-head"><h2 id="h-head">At a glance</h2><dl class="cards">{card_html}</dl></section>
<section aria-label="Charts and map" class="figs">
<div class="f-curve"><h2>Customers out over time</h2>{img("curve")}</div>
<div class="f-map"><h2>Map of the events</h2>{storm_map}</div>
<div class="f-etr"><h2>ETR promised and kept</h2>{img("etr") or "<p>No ETR was issued.</p>"}</div>
<div class="f-ttr"><h2>Time to restore by priority</h2>{img("ttr")}</div></section>
<section aria-labelledby="h-break"><h2 id="h-break">Where and why (customers, customer-minutes)</h2>
<div class="grid breakdowns">{breakdowns}</div></section>
<section aria-labelledby="h-events" class="events"><h2 id="h-events">Events</h2>{_event_table(inside, s.window_end, tz)}</section>
{f'<section><h2>Notes</h2><ul>{notes}</ul></section>' if notes else ''}
</main></body></html>
"""


#: Rows of a breakdown before the rest are summed in one (``events.csv`` has every event's feeder, area and cause).
BREAKDOWN_ROWS = 12


def _breakdown(events: Sequence, key: str, as_of: datetime, label: str) -> str:
    """Events, customers and customer-minutes by ``key``, largest first; past ``BREAKDOWN_ROWS`` one row for the
    rest, so that the report stays two pages for a territory of any number of feeders or areas."""
    groups: dict[str, list] = defaultdict(list)
    for e in events:
        groups[getattr(e, key) or "(unknown)"].append(e)
    cmi = {k: sum(e.customer_minutes(as_of) for e in v) for k, v in groups.items()}
    total = sum(cmi.values()) or 1.0
    rows = [(k, groups[k], cmi[k]) for k in sorted(groups, key=lambda k: -cmi[k])]
    if len(rows) > BREAKDOWN_ROWS + 1:  # the long tail in one row: a utility may have hundreds of areas
        rest = rows[BREAKDOWN_ROWS:]
        rows = rows[:BREAKDOWN_ROWS] + [(f"{len(rest)} other {label}s", [e for _, v, _ in rest for e in v],
                                         sum(m for _, _, m in rest))]
    body = "".join(
        f'<tr><td data-label="{label.title()}"{" class=rest" if i >= BREAKDOWN_ROWS else ""}>{html.escape(k)}</td>'
        f'<td class="n" data-label="Events">{len(v)}</td>'
        f'<td class="n" data-label="Customers">{sum(e.customers for e in v):,}</td>'
        f'<td class="n" data-label="Customer-min">{m:,.0f}</td>'
        f'<td class="n" data-label="Share">{m / total:.0%}</td></tr>'
        for i, (k, v, m) in enumerate(rows))
    return (f'<table class="cardlist"><thead><tr><th>{label.title()}</th><th class="n">Events</th>'
            f'<th class="n">Customers</th><th class="n">Customer-min</th><th class="n">Share</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _event_table(events: Sequence, as_of: datetime, tz) -> str:
    rows = []
    for i, e in enumerate(sorted(events, key=lambda e: (e.start, e.event_id)), 1):
        first, last = _etr_errors(e)
        cells = [("#", str(i)), ("Event", e.event_id), ("Priority", _tier(e.tier)),
                 ("Started", _time(e.start, tz)), ("Restored", _time(e.restored, tz) if e.restored else "open"),
                 ("Out for", _duration(e.minutes_to_restore)), ("Customers", f"{e.customers:,}"),
                 ("Customer-min", f"{e.customer_minutes(as_of):,.0f}"), ("Device", e.device), ("Feeder", e.feeder),
                 ("Area", e.area), ("Cause", e.cause or "unknown"), ("Crews", ", ".join(e.crews) or "–"),
                 ("Reports", str(e.reports)), ("First ETR", first), ("Last ETR", last)]
        rows.append("<tr>" + "".join(
            f'<td{" class=n" if k in _NUMERIC else " class=dev" if k == "Device" else ""} data-label="{k}">'
            f'{v if k in _MARKUP else html.escape(v)}</td>' for k, v in cells) + "</tr>")
    head = "".join(f'<th{" class=n" if k in _NUMERIC else ""} scope="col"{_short(k)}><span>{k}</span></th>'
                   for k in _COLUMNS)
    return (f'<p class="legend">ETR columns: how far the restoration was from the first and the last ETR '
            f'promised (+25 min: 25 min late; \u221210 min: 10 min early).</p><table class="cardlist"><thead><tr>'
            f'{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


_COLUMNS = ("#", "Event", "Priority", "Started", "Restored", "Out for", "Customers", "Customer-min", "Device",
            "Feeder", "Area", "Cause", "Crews", "Reports", "First ETR", "Last ETR")
_NUMERIC = {"#", "Out for", "Customers", "Customer-min", "Reports"}
#: Print: narrower column heads (the page is 16 columns wide), the full words on screen and in the cards of a phone
_SHORT = {"Priority": "Pri.", "Started": "Start", "Restored": "Back", "Customers": "Cust.", "Customer-min": "Cust-min",
          "Reports": "Rep."}
_MARKUP = {"Priority", "First ETR", "Last ETR"}  # built here from numbers and fixed words (escaped already)
_W = '<span class="w">'  # words print leaves out (the legend says what the sign means)


def _short(column: str) -> str:
    return f' data-short="{_SHORT[column]}"' if column in _SHORT else ""


def _etr_errors(e) -> tuple[str, str]:
    if e.restored is None:
        return "–", "–"
    issued = sorted((i, t) for i, t in e.etrs if i <= e.restored)
    if not issued:
        return "none", "none"

    def word(etr: datetime) -> str:
        m = round((e.restored - etr).total_seconds() / 60.0)
        return "on time" if m == 0 else (f"+{m} min{_W} late</span>" if m > 0 else f"\u2212{-m} min{_W} early</span>")

    return word(issued[0][1]), word(issued[-1][1])


def event_map(events: Sequence, network=None, tz=UTC, width: int = 480) -> str:
    """An SVG of the events (circles by priority, area by customers, numbered as in the table) over the feeders."""
    located = [e for e in sorted(events, key=lambda e: (e.start, e.event_id)) if e.lon is not None]
    xs = [e.lon for e in located]
    ys = [e.lat for e in located]
    lines = []
    if network is not None and len(network.segments):
        b = network.segments.total_bounds
        xs, ys = [*xs, b[0], b[2]], [*ys, b[1], b[3]]
        segs = network.segments[network.segments["kind"] != "transformer"]
        lines = [list(g.coords) for g in segs.geometry if g is not None and g.geom_type == "LineString"]
    if not xs:
        return "<p>No located events.</p>"
    import math

    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    kx = math.cos(math.radians((y0 + y1) / 2))  # metres per degree of longitude shrink with latitude
    w_deg, h_deg = max((x1 - x0) * kx, 1e-6), max(y1 - y0, 1e-6)
    height = max(120, int(width * h_deg / w_deg))
    pad = 12

    def pt(lon: float, lat: float) -> str:
        px = pad + (lon - x0) * kx / w_deg * (width - 2 * pad)
        py = pad + (y1 - lat) / h_deg * (height - 2 * pad)
        return f"{px:.1f},{py:.1f}"

    path = " ".join("M" + " L".join(pt(x, y) for x, y in line) for line in lines)
    dots = []
    for i, e in enumerate(sorted(events, key=lambda e: (e.start, e.event_id)), 1):
        if e.lon is None:
            continue
        r = 3 + 2.2 * math.sqrt(max(e.customers, 1))
        cx, cy = pt(e.lon, e.lat).split(",")
        dots.append(f'<g><title>#{i} {html.escape(e.event_id)}: {e.customers} customers, '
                    f'{html.escape(e.cause or "cause unknown")}, {_time(e.start, tz)}</title>'
                    f'<circle cx="{cx}" cy="{cy}" r="{min(r, 30):.1f}" fill="{TIER_COLOURS.get(e.tier, "#555")}" '
                    f'fill-opacity=".6" stroke="#222"/><text x="{cx}" y="{cy}" dy=".35em" text-anchor="middle" '
                    f'font-size="10">{i}</text></g>')
    legend = " ".join(f'<span class="tier" style="background:{c}">{t}</span>' for t, c in TIER_COLOURS.items())
    return (f'<figure><svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="Map of {len(located)} events over the feeders"><path d="{path}" fill="none" '
            f'stroke="#999" stroke-width=".6"/>{"".join(dots)}</svg>'
            f"<figcaption>Numbers as in the events table; circle area grows with customers out; colour is the "
            f"priority: {legend}</figcaption></figure>")


def _tier(t: str) -> str:
    return f'<span class="tier" style="background:{TIER_COLOURS.get(t, "#555")}">{html.escape(t or "–")}</span>'


def _time(t: datetime | None, tz, date: bool = False) -> str:
    if t is None:
        return "–"
    t = t.astimezone(tz)
    return f"{t:%a %d %b %H:%M}" if date else f"{t:%H:%M}"


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "–"
    m = round(minutes)
    return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min"


def _num(v: float | None, digits: int) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"
