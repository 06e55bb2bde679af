"""The public map's panel: summary, address search, list of places, report and status forms, contact, legend.

Plain HTML in English; every text node a member reads carries ``data-i18n`` so ``static/oms-map.js`` can switch it
to Spanish (and back) without a reload. On a phone the panel is a bottom sheet; the legend lives inside it, so
nothing floats over the map's own controls.
"""

from __future__ import annotations

import html

#: Percent-out classes of the area colours (static/oms-map.js uses the same bins).
PERCENT_LEGEND = (("under 1%", "#fee08b"), ("1–5%", "#fdae61"), ("5–20%", "#f46d43"), ("20–50%", "#d73027"),
                  ("50% or more", "#a50026"))
RESTORED_COLOUR = "#16a34a"


def _contact(page) -> str:
    parts = []
    if page.utility_phone:
        tel = "".join(c for c in page.utility_phone if c.isdigit() or c == "+")
        parts.append(f'<a class="oms-call" href="tel:{html.escape(tel)}"><span data-i18n="call">Call us</span> '
                     f'{html.escape(page.utility_phone)}</a>')
    else:
        parts.append('<span data-i18n="call_bill">To report by phone, call the number on your bill.</span>')
    if page.alerts_url:
        parts.append(f'<a href="{html.escape(page.alerts_url)}" data-i18n="alerts">Sign up for outage alerts</a>')
    return f'<p class="oms-contact">{" · ".join(parts)}</p>'


TITLE_SUFFIX = " — power outages"


def _title_html(title: str) -> str:
    """The page title with its translatable part marked (static/oms-public.js also sets ``document.title``)."""
    if title.endswith(TITLE_SUFFIX):
        name = title[: -len(TITLE_SUFFIX)]
        return f'{html.escape(name)} — <span data-i18n="title_outages">power outages</span>'
    return html.escape(title)


def public_panel(page, title: str, example: str = "") -> str:
    """The panel's HTML; ``example`` (the largest place) is the search box's placeholder."""
    legend = "".join(f'<li><span class="oms-swatch" style="background:{c}"></span>{t}</li>'
                     for t, c in PERCENT_LEGEND)
    legend += (f'<li><span class="oms-swatch" style="background:{RESTORED_COLOUR}"></span>'
               f'<span data-i18n="legend_restored">restored</span></li>')
    name = html.escape(page.utility_name)
    return f"""
<noscript><p style="position:absolute;z-index:2000;background:#fff;padding:1em">This map needs JavaScript.
To report an outage without it, please call us.</p></noscript>
<aside id="oms-panel" class="oms-panel" aria-label="Outage summary and forms">
  <header><h1 id="oms-title">{_title_html(title)}</h1>
    <button id="oms-lang" type="button" lang="es">Español</button>
    <button id="oms-toggle" type="button" aria-expanded="true" aria-controls="oms-panel-body"
      data-i18n="hide">Hide</button></header>
  <div id="oms-panel-body">
  <section class="oms-summary" aria-live="polite">
    <div><b id="oms-customers-out">–</b><span data-i18n="customers_out">customers out</span></div>
    <div><b id="oms-percent">–</b><span data-i18n="of_members">of members</span></div>
    <div><b id="oms-outages">–</b><span data-i18n="outages">outages</span></div>
  </section>
  <p class="oms-updated"><span id="oms-updated-label" data-i18n="updated">Updated</span> <time id="oms-updated-at">…</time><span id="oms-clock-note"></span><span id="oms-live-status"></span></p>
  {_contact(page)}
  <form id="oms-search-form" role="search">
    <label for="oms-search-q" data-i18n="search_label">Find your street or village</label>
    <div class="oms-row"><input id="oms-search-q" name="q" type="search" autocomplete="street-address"
      maxlength="200" placeholder="{html.escape(example)}">
      <button type="submit" data-i18n="search">Search</button></div>
  </form>
  <div id="oms-search-result" role="status"></div>
  <details id="oms-list" open>
    <summary><span data-i18n="list">Places with outages</span> (<span id="oms-list-count">0</span>)</summary>
    <table class="oms-list-table">
      <caption class="oms-sr" data-i18n="list_caption">Outages by place; choose a column heading to sort.</caption>
      <thead><tr>
        <th scope="col" aria-sort="none"><button type="button" data-sort="name" data-i18n="col_place">Place</button></th>
        <th scope="col" aria-sort="descending"><button type="button" data-sort="customers_out" data-i18n="col_out">Out</button></th>
        <th scope="col" aria-sort="none"><button type="button" data-sort="customers_served" data-i18n="col_served">Served</button></th>
        <th scope="col" aria-sort="none"><button type="button" data-sort="outages" data-i18n="col_outages">Outages</button></th>
        <th scope="col" aria-sort="none"><button type="button" data-sort="etr_by" data-i18n="col_etr">Power back</button></th>
      </tr></thead>
      <tbody id="oms-list-body"></tbody>
    </table>
    <p id="oms-list-empty" class="oms-note" data-i18n="list_empty">No outages we know of right now.</p>
  </details>
  <details>
    <summary data-i18n="report">Report an outage</summary>
    <form id="oms-report-form" autocomplete="on">
      <label><span data-i18n="f_address">Street address</span> <input name="address" autocomplete="street-address" maxlength="200"></label>
      <label><span data-i18n="f_account">or account number</span> <input name="account" autocomplete="off" maxlength="64"></label>
      <label><span data-i18n="f_phone">or phone number on the account</span> <input name="phone" type="tel" autocomplete="tel" maxlength="32"></label>
      <div><button type="button" id="oms-locate" data-i18n="f_locate">Use my location</button> <span id="oms-locate-note"></span></div>
      <input type="hidden" name="lat"><input type="hidden" name="lon">
      <label><span data-i18n="f_power">What do you see?</span> <select name="power">
        <option value="out" data-i18n="p_out">No power</option><option value="partial" data-i18n="p_partial">Partial power / dim lights</option>
        <option value="flicker" data-i18n="p_flicker">Lights flickering</option></select></label>
      <label class="oms-check"><input type="checkbox" name="hazard" value="wires_down"> <span data-i18n="f_hazard">Wires down, sparks or fire
        (keep well away and call emergency services)</span></label>
      <label><span data-i18n="f_comment">Anything else?</span> <input name="comment" maxlength="1000"></label>
      <label><span data-i18n="f_contact">Text or e-mail me updates (optional)</span> <input name="contact" autocomplete="email" maxlength="200"></label>
      <button type="submit" data-i18n="f_send">Send report</button>
    </form>
    <div id="oms-report-result" role="status"></div>
  </details>
  <details id="oms-lookup">
    <summary data-i18n="lookup">Check my outage</summary>
    <form id="oms-lookup-form">
      <label><span data-i18n="f_reference">Reference from your report</span> <input id="oms-lookup-reference" name="reference" autocomplete="off"></label>
      <button type="submit" data-i18n="f_check">Check</button>
    </form>
    <div id="oms-lookup-result" role="status"></div>
  </details>
  <h2 data-i18n="legend">Customers out in an area</h2>
  <ul class="oms-legend">{legend}</ul>
  <p class="oms-note" data-i18n="privacy">Outages are shown by area, never by address; each area serves many homes.
  The map shows outages we know of: if your power is out, please report it.</p>
  <p class="oms-note">{name}</p>
  </div>
</aside>
"""
