// The console map: roads (faint), feeders and protective devices (strong), de-energized sections, events by tier,
// crews as labelled markers in their colour, and each crew's route along the roads in the same colour.
/* global L */
import { api, classWords, crewColour, el, eta, etr, stateWords } from './util.js';

const TIER_COLOUR = { 1: '#b91c1c', 2: '#c2410c', 3: '#a16207', 4: '#1d4ed8' };
const DEVICE_KINDS = new Set(['breaker', 'recloser', 'fuse', 'switch', 'sectionalizer', 'sectionaliser']);

export class ConsoleMap {
  constructor(store, onSelect) {
    this.store = store;
    this.onSelect = onSelect;
    this.map = L.map('map', { preferCanvas: true, zoomControl: true, attributionControl: true });
    this.map.attributionControl.setPrefix(false);
    this.renderer = L.canvas({ padding: 0.3 });
    this.roads = L.geoJSON(null, { renderer: this.renderer, interactive: false,
      style: () => ({ color: '#b8bec8', weight: 1, opacity: 0.8 }) }).addTo(this.map);
    this.network = L.geoJSON(null, { renderer: this.renderer, interactive: false,
      style: (f) => ({ color: f.properties.open ? '#6b7280' : '#0f3d7a', weight: f.properties.kind === 'line' ? 2 : 3,
        dashArray: f.properties.open ? '4 4' : null, opacity: 0.9 }) }).addTo(this.map);
    this.dead = L.layerGroup().addTo(this.map);
    this.devices = L.layerGroup();
    this.routes = L.layerGroup().addTo(this.map);
    this.events = L.layerGroup().addTo(this.map);
    this.crews = L.layerGroup().addTo(this.map);
    this.markers = new Map();
    this.ring = null;
    L.control.layers(null, { 'Roads': this.roads, 'Feeders': this.network, 'Protective devices': this.devices,
      'De-energized': this.dead, 'Routes': this.routes, 'Events': this.events, 'Crews': this.crews },
    { collapsed: true }).addTo(this.map);
    this.map.on('zoomend', () => { this.deviceVisibility(); this.drawCrews(); });
    legend().addTo(this.map);
    this.map.setView([50, 11.5], 12);
  }

  async load() {
    const [net, roads, dead] = await Promise.all([api('GET', '/console/network.geojson'),
      api('GET', '/console/roads.geojson'), api('GET', '/console/deenergized.json')]);
    // In slices, yielding between them: thousands of road and line features must not hold the main thread
    // (and with it the stream's next row) for a second.
    await addInSlices(this.network, net.features);
    this.lines = net.features;
    this.roads.getAttribution = () => roads.attribution || '';
    if (roads.attribution) this.map.attributionControl.addAttribution(roads.attribution);
    for (const f of net.features) {
      if (!DEVICE_KINDS.has(f.properties.kind)) continue;
      const c = f.geometry.coordinates[Math.floor(f.geometry.coordinates.length / 2)];
      // a synthesized device (added by rule, not in the utility's data) is drawn hollow and says so
      const synth = Boolean(f.properties.synth);
      L.circleMarker([c[1], c[0]], { renderer: this.renderer, radius: 4, color: '#111827', weight: 1.5,
        dashArray: synth ? '2 2' : null, fillColor: synth ? '#ffffff' : '#fde047', fillOpacity: 1 })
        .bindTooltip(`${f.properties.kind} ${f.properties.id}${synth ? ' (synthesized: not in the utility\'s data)' : ''}`)
        .addTo(this.devices);
    }
    const [w, s, e, n] = dead.bounds;
    this.map.fitBounds([[s, w], [n, e]], { padding: [10, 10] });
    this.drawDead(dead.lines);
    this.deviceVisibility();
    await addInSlices(this.roads, roads.features); // the faint background last
  }

  // Devices from street zoom on: at territory zoom they would hide the feeders.
  deviceVisibility() {
    if (this.map.getZoom() >= 14) this.devices.addTo(this.map); else this.devices.remove();
  }

  drawDead(lines) {
    this.dead.clearLayers();
    if (!this.lines) return;
    for (const i of lines) {
      const f = this.lines[i];
      if (!f) continue;
      L.polyline(f.geometry.coordinates.map((c) => [c[1], c[0]]), { renderer: this.renderer, color: '#dc2626',
        weight: 4, opacity: 0.75, interactive: false }).addTo(this.dead);
    }
  }

  async refreshLive() {
    const [dead] = await Promise.all([api('GET', '/console/deenergized.json'), this.refreshRoutes()]);
    this.drawDead(dead.lines);
  }

  async refreshRoutes() {
    const routes = await api('GET', '/console/routes.geojson');
    this.routes.clearLayers();
    for (const f of routes.features) {
      const pts = f.geometry.coordinates.map((c) => [c[1], c[0]]);
      L.polyline(pts, { renderer: this.renderer, color: '#ffffff', weight: 7, opacity: 0.9, interactive: false }).addTo(this.routes);
      L.polyline(pts, { renderer: this.renderer, color: crewColour(f.properties.crew), weight: 4, opacity: 0.95,
        dashArray: f.properties.leg > 0 ? '8 6' : null }).bindTooltip(`${this.crewName(f.properties.crew)} → ${f.properties.event}`)
        .addTo(this.routes);
    }
  }

  crewName(id) { const c = this.store.crews.get(id); return c ? c.name : id; }

  popup(r) {
    const w = r.assignment;
    return el('div', { class: 'pop' },
      el('b', { text: `P${r.tier} ${classWords(r.class)} · ${r.device_id || r.id}` }),
      el('div', { text: r.reason || '' }),
      el('div', { text: `${r.customers_out} out · ${stateWords(r.state)}` }),
      el('div', { text: w ? `Crew: ${w.crew_name}${w.status === 'on_site' ? ', on site' : `, ETA ${eta(w) || '—'}`}` : 'No crew yet' }),
      el('div', { text: `ETR: ${etr(r) || 'not yet'}` }),
      el('button', { type: 'button', class: 'link', text: 'Open', onclick: () => this.onSelect(r.id, 'map') }));
  }

  drawEvents() {
    const seen = new Set();
    for (const r of this.store.events.values()) {
      if (r.lat == null || r.lon == null) continue;
      seen.add(r.id);
      let m = this.markers.get(r.id);
      const style = { radius: 5 + (4 - r.tier) * 2, color: '#111827', weight: 1, fillColor: TIER_COLOUR[r.tier] || '#555',
        fillOpacity: 0.9 };
      if (!m) {
        m = L.circleMarker([r.lat, r.lon], { renderer: this.renderer, ...style });
        m.on('click', () => this.onSelect(m.eventId, 'map'));
        m.eventId = r.id;
        m.addTo(this.events);
        this.markers.set(r.id, m);
      } else {
        m.setLatLng([r.lat, r.lon]);
        m.setStyle(style);
      }
    }
    for (const [id, m] of this.markers) if (!seen.has(id)) { m.remove(); this.markers.delete(id); }
    this.refreshPopup();
  }

  // The open popup follows its event (a new ETA, a crew assigned); rebuilt only when its text would change, so a
  // click on its button is not lost to a redraw.
  refreshPopup() {
    const r = this.pop && this.map.hasLayer(this.pop) ? this.store.events.get(this.popupFor) : null;
    if (!r) return;
    const content = this.popup(r);
    if (content.textContent !== this.pop.getContent().textContent) this.pop.setContent(content);
  }

  // Crews as labels in their colour. Labels that would cover one another (crews at one depot, or one job) are
  // stacked downwards, so every crew's name stays readable.
  drawCrews() {
    this.crews.clearLayers();
    const placed = [];
    for (const c of this.store.crews.values()) {
      if (c.lat == null || c.lon == null) continue;
      const p = this.map.latLngToLayerPoint([c.lat, c.lon]);
      let dy = 0;
      while (placed.some((q) => Math.abs(q.x - p.x) < 70 && Math.abs(q.y - (p.y + dy)) < 19)) dy += 19;
      placed.push({ x: p.x, y: p.y + dy });
      const icon = L.divIcon({ className: 'crew-icon', iconSize: null,
        html: `<span class="chip" style="background:${crewColour(c.id)};position:relative;top:${dy}px">${escapeHtml(c.name)}</span>` });
      L.marker([c.lat, c.lon], { icon, keyboard: false, title: `${c.name}: ${c.status.replace('_', ' ')}` }).addTo(this.crews);
    }
  }

  select(id, pan) {
    const r = this.store.events.get(id);
    if (this.ring) { this.ring.remove(); this.ring = null; }
    if (!r || r.lat == null) return;
    this.ring = L.circleMarker([r.lat, r.lon], { radius: 16, color: '#0ea5e9', weight: 4, fill: false,
      interactive: false }).addTo(this.map);
    if (pan) this.map.panTo([r.lat, r.lon]);
    this.popupFor = id;
    this.pop = L.popup({ autoPanPadding: [30, 30], maxWidth: 260 }).setLatLng([r.lat, r.lon]).setContent(this.popup(r))
      .openOn(this.map);
  }
}

// What the colours mean, in the map's corner (a dispatcher new to the console should not have to ask).
function legend() {
  const c = L.control({ position: 'bottomleft' });
  c.onAdd = () => el('div', { class: 'legend', 'aria-label': 'Map legend' },
    ...[1, 2, 3, 4].map((t) => [el('i', { class: 'dot', style: `background:${TIER_COLOUR[t]}` }), `P${t} `]), el('br'),
    el('i', { style: 'border-color:#0f3d7a' }), 'feeder ', el('i', { style: 'border-color:#dc2626' }), 'de-energized ',
    el('i', { style: 'border-top-style:dashed;border-color:#374151' }), 'crew route (crew colour)');
  return c;
}

const SLICE = 400;
async function addInSlices(layer, features) {
  for (let i = 0; i < features.length; i += SLICE) {
    layer.addData({ type: 'FeatureCollection', features: features.slice(i, i + SLICE) });
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
