"""The two map pages as folium (Leaflet) HTML.

Each page is a folium :class:`~folium.Map` with empty live GeoJSON layers (:class:`LiveLayer`), a layer control,
and one :class:`LiveApp` element that hands the layers and URLs to ``static/oms-map.js``, which fills them from the
GeoJSON endpoints and keeps them current by polling with ``If-None-Match``. The data is therefore not in the HTML:
the page is small, cacheable, and the same file serves a live app and a static snapshot.

Every URL in the page is relative (``assets/...``, ``public.geojson``) unless configured otherwise (the report API,
an optional tile server), so the page works under any mount prefix and from any web server. Element ids are fixed,
so the same inputs render the same bytes.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

import folium
from folium.map import Layer
from folium.template import Template

from api.maps.assets import css_links, js_links
from api.maps.geojson import ATTRIBUTION_OSM, MapData
from api.maps.panel import TITLE_SUFFIX, public_panel
from api.settings import Settings


def _setting(name: str):
    """A default read from the ``OMS_*`` settings when the page is configured (the operator's one source)."""
    return field(default_factory=lambda: getattr(Settings(), name) or None)


@dataclass
class PageConfig:
    """What a deployment sets: names, contact, the report API, polling intervals, an optional tile server."""

    utility_name: str = field(default_factory=lambda: Settings().utility_name)
    utility_phone: str | None = _setting("utility_phone")  # members call it; shown as a tel: link
    alerts_url: str | None = _setting("alerts_url")  # where to sign up for outage alerts
    reports_url: str = "/reports"  # POST a report here
    lookup_url: str = "/reports/{token}"  # GET a report's status; {token} is replaced by the reference
    public_interval_s: float = 30.0
    dispatcher_interval_s: float = 5.0
    # Street level is fine: areas never serve fewer than k customers whatever the zoom, and members need
    # streets and buildings to find home.
    public_max_zoom: int = 17
    tile_url: str | None = _setting("basemap_tile_url")  # a tile server; None: the territory's own OSM layers
    tile_attribution: str = field(default_factory=lambda: Settings().basemap_tile_attribution)

    def __post_init__(self) -> None:
        if "{token}" not in self.lookup_url:
            raise ValueError(f"lookup_url must contain '{{token}}', got {self.lookup_url!r}")
        for name in ("public_interval_s", "dispatcher_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.tile_url and not self.tile_attribution:
            raise ValueError("tile_attribution is required with tile_url (tile providers require credit)")


class LiveLayer(Layer):
    """An empty Leaflet GeoJSON layer of one kind (areas, roads, network, events, crews, routes) filled by JS."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = OmsMap.layer({{ this.kind|tojson }}, {{ this.attribution|tojson }});
        {% endmacro %}
    """)

    def __init__(self, kind: str, name: str, show: bool = True, attribution: str | None = None,
                 control: bool = True):
        super().__init__(name=name, overlay=True, control=control, show=show)
        self._name = "OmsLayer"
        self._id = kind
        self.kind = kind
        self.attribution = attribution


class LiveApp(folium.MacroElement):
    """Starts ``OmsMap`` on the map once every layer exists (add it last)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            OmsMap.start({{ this._parent.get_name() }}, {{ this.config|tojson }}, {
            {%- for key, layer in this.layers.items() %}
                {{ key|tojson }}: {{ layer.get_name() }},
            {%- endfor %}
            });
        {% endmacro %}
    """)

    def __init__(self, config: dict, layers: dict[str, LiveLayer]):
        super().__init__()
        self._name = "OmsApp"
        self._id = "start"
        self.config = config
        self.layers = layers


def _base_map(data: MapData, page: PageConfig, title: str, asset_base: str, max_zoom: int,
              prefer_canvas: bool) -> folium.Map:
    west, south, east, north = data.bounds()
    m = folium.Map(location=[(south + north) / 2, (west + east) / 2], zoom_start=12, tiles=None, min_zoom=9,
                   max_zoom=max_zoom, control_scale=True, prefer_canvas=prefer_canvas)
    m._id = "oms"
    m.options["max_zoom"] = max_zoom  # folium passes max_zoom only to tile layers; the map itself must cap it
    m.default_js = js_links(asset_base)
    m.default_css = css_links(asset_base)
    m.fit_bounds([[south, west], [north, east]])
    if page.tile_url:
        tiles = folium.TileLayer(tiles=page.tile_url, attr=page.tile_attribution, name="Base map",
                                 max_zoom=max_zoom, overlay=False, control=True)
        tiles._id = "tiles"
        tiles.add_to(m)
    root = m.get_root()
    root.header.add_child(folium.Element(f"<title>{html.escape(title)}</title>"), name="oms_title")
    return m


def _finish(m: folium.Map, config: dict, layers: dict[str, LiveLayer]) -> str:
    control = folium.LayerControl(collapsed=True)
    control._id = "layers"
    control.add_to(m)
    LiveApp(config, layers).add_to(m)
    _fix_ids(m.get_root())
    return m.get_root().render()


def _fix_ids(root) -> None:
    """Replace folium's random element ids by a walk-order counter, so the same inputs render the same bytes."""
    counter = 0
    stack = [root]
    while stack:
        element = stack.pop(0)
        if re.fullmatch(r"[0-9a-f]{32}", str(getattr(element, "_id", ""))):
            counter += 1
            element._id = f"e{counter}"
        stack.extend(getattr(element, "_children", {}).values())


def _basemap_layer(data: MapData, m: folium.Map, layers: dict) -> str:
    layers["basemap"] = LiveLayer("basemap", "Buildings and names", attribution=ATTRIBUTION_OSM).add_to(m)
    return "basemap.geojson"


def _roads_layer(data: MapData, m: folium.Map, layers: dict) -> str | None:
    if not data.has_roads:
        return None
    layers["roads"] = LiveLayer("roads", "Roads", attribution=ATTRIBUTION_OSM).add_to(m)
    return "roads.geojson"


def public_html(data: MapData, page: PageConfig | None = None, asset_base: str = "assets",
                data_url: str = "public.geojson", search_url: str | None = "search") -> str:
    """The members' outage map: areas with customers out, summary, legend, report form and status lookup."""
    page = page or PageConfig()
    title = f"{page.utility_name}{TITLE_SUFFIX}"
    m = _base_map(data, page, title, asset_base, page.public_max_zoom, prefer_canvas=False)
    layers: dict[str, LiveLayer] = {}
    roads_url = _roads_layer(data, m, layers)
    basemap_url = None if page.tile_url else _basemap_layer(data, m, layers)
    layers["areas"] = LiveLayer("areas", "Outage areas").add_to(m)
    m.get_root().html.add_child(folium.Element(public_panel(page, title, data.example_place())), name="oms_panel")
    config = {
        "kind": "public", "data": data_url, "roads": roads_url, "basemap": basemap_url, "search": search_url,
        "interval_ms": int(page.public_interval_s * 1000),
        "reports_url": page.reports_url, "lookup_url": page.lookup_url,
    }
    return _finish(m, config, layers)


def dispatcher_html(data: MapData, page: PageConfig | None = None, asset_base: str = "assets",
                    data_url: str = "dispatcher.geojson", network_url: str = "network.geojson") -> str:
    """The dispatchers' map: feeders (de-energized in red), events by tier, crews and routes, filters."""
    page = page or PageConfig()
    title = f"{page.utility_name} — dispatch"
    m = _base_map(data, page, title, asset_base, max_zoom=19, prefer_canvas=True)
    layers: dict[str, LiveLayer] = {}
    roads_url = _roads_layer(data, m, layers)
    layers["network"] = LiveLayer("network", "Feeders").add_to(m)
    layers["routes"] = LiveLayer("routes", "Planned routes").add_to(m)
    layers["events"] = LiveLayer("events", "Outage events").add_to(m)
    layers["crews"] = LiveLayer("crews", "Crews").add_to(m)
    m.get_root().html.add_child(folium.Element(_dispatcher_panel(title)), name="oms_panel")
    config = {
        "kind": "dispatcher", "data": data_url, "network": network_url, "roads": roads_url,
        "interval_ms": int(page.dispatcher_interval_s * 1000),
    }
    return _finish(m, config, layers)


TIER_LEGEND = (("P1 life-safety", "#c1121f"), ("P2 critical", "#f77f00"), ("P3 feeder", "#1d4ed8"),
               ("P4 single customer", "#6b7280"))


def _dispatcher_panel(title: str) -> str:
    tiers = "".join(
        f'<label class="oms-check"><input type="checkbox" class="oms-filter oms-filter-tier" value="{i}" checked>'
        f'<span class="oms-swatch oms-dot" style="background:{c}"></span>{t} '
        f'(<span id="oms-tier-count-{i}">0</span>)</label>'
        for i, (t, c) in enumerate(TIER_LEGEND, start=1))
    return f"""
<aside id="oms-panel" class="oms-panel" aria-label="Dispatch summary and filters">
  <header><h1>{html.escape(title)}</h1>
    <button id="oms-toggle" type="button" aria-expanded="true" aria-controls="oms-panel">Hide</button></header>
  <section class="oms-summary" aria-live="polite">
    <div><b id="oms-events">–</b><span>events</span></div>
    <div><b id="oms-customers-out">–</b><span>customers out</span></div>
    <div><b id="oms-crews">–</b><span>crews</span></div>
  </section>
  <p class="oms-updated"><span id="oms-updated-label">Updated</span> <time id="oms-updated-at">…</time><span id="oms-clock-note"></span><span id="oms-live-status"></span></p>
  <h2>Filters</h2>
  <div class="oms-filters">
    {tiers}
    <label>Class <select id="oms-filter-class" class="oms-filter">
      <option value="">all</option><option value="single_customer">single customer</option>
      <option value="feeder">feeder</option><option value="community">community</option></select></label>
    <label class="oms-check"><input type="checkbox" id="oms-filter-unassigned" class="oms-filter">
      only events without a crew</label>
  </div>
  <p class="oms-note"><span id="oms-shown">0</span> events shown ·
    <span class="oms-swatch oms-line" style="background:#dc2626"></span><span id="oms-deenergized">0</span>
    de-energized line sections ·
    <span class="oms-swatch oms-line" style="background:#16a34a"></span>normally open</p>
</aside>
"""
