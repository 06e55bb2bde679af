// Small shared helpers: the API with the session's CSRF token, formatting, crew colours.
const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || '';

export class ApiError extends Error {}

export async function api(method, url, body) {
  const opts = { method, credentials: 'same-origin', headers: { 'Accept': 'application/json' } };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = CSRF;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(url, opts);
  if (res.status === 401) { location.assign('/session'); throw new ApiError('signed out'); }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new ApiError((data && data.error && data.error.message) || `${res.status} ${res.statusText}`);
  return data;
}

// Server time minus browser time: ages and "past target" follow the service's clock (the demo's storm clock too).
let skew = 0;
export const setServerNow = (iso) => { if (iso) skew = Date.parse(iso) - Date.now(); };
export const now = () => Date.now() + skew;

export function hhmm(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
}

export function age(iso) {
  if (!iso) return '';
  const m = Math.max(0, Math.round((now() - Date.parse(iso)) / 60000));
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')}`;
}

export function etr(row) {
  if (!row.etr_earliest) return '';
  const a = hhmm(row.etr_earliest), b = hhmm(row.etr_latest);
  const p = row.etr_probability != null ? ` (${Math.round(100 * row.etr_probability)}%)` : '';
  return (b && b !== a ? `${a}–${b}` : a) + p;
}

// Event states in plain words.
const STATES = { unconfirmed: 'Reported', probable: 'Probable', confirmed: 'Confirmed',
  dispatched: 'Crew assigned', en_route: 'Crew driving', on_site: 'Crew on site', restored: 'Restored',
  cancelled: 'Cancelled' };
export const stateWords = (s) => STATES[s] || s;
const CLASSES = { single_customer: 'Single', transformer: 'Transformer', lateral: 'Lateral', feeder: 'Feeder',
  substation: 'Substation' };
export const classWords = (c) => CLASSES[c] || (c || '').replace(/_/g, ' ');

// One colour per crew, dark enough for white label text (WCAG AA): first ten picked by hand to be told apart on
// the map and to stay clear of the map's own reds (P1, de-energized lines) and navy (feeders); then far apart in
// hue (golden angle) for bigger fleets.
const PALETTE = ['#1d4ed8', '#047857', '#7c3aed', '#b45309', '#0e7490', '#a21caf', '#4d7c0f', '#78350f', '#3730a3',
  '#be185d'];
const colours = new Map();
export function crewColour(id, index) {
  if (!colours.has(id) && index !== undefined) {
    const hue = (30 + index * 137.508) % 360;
    colours.set(id, index < PALETTE.length ? PALETTE[index] : `hsl(${hue.toFixed(0)}, 80%, 27%)`);
  }
  return colours.get(id) || '#374151';
}

// A padlock drawn in SVG: the emoji needs a colour-emoji font that dispatch PCs and Debian's chromium lack (it
// showed as an empty box). The label says it for screen readers.
const SVG = 'http://www.w3.org/2000/svg';
export function lockIcon() {
  const s = document.createElementNS(SVG, 'svg');
  s.setAttribute('viewBox', '0 0 12 14'); s.setAttribute('width', '10'); s.setAttribute('height', '12');
  s.setAttribute('class', 'lock'); s.setAttribute('role', 'img'); s.setAttribute('aria-label', 'locked');
  const t = document.createElementNS(SVG, 'title'); t.textContent = 'locked (the optimizer keeps it)';
  const body = document.createElementNS(SVG, 'rect');
  for (const [k, v] of Object.entries({ x: 1, y: 6, width: 10, height: 8, rx: 1.5, fill: 'currentColor' })) body.setAttribute(k, v);
  const shackle = document.createElementNS(SVG, 'path');
  for (const [k, v] of Object.entries({ d: 'M3.2 6V4a2.8 2.8 0 0 1 5.6 0v2', fill: 'none', stroke: 'currentColor', 'stroke-width': 1.6 })) shackle.setAttribute(k, v);
  s.append(t, body, shackle);
  return s;
}

// The ETA a dispatcher reads: the arrival time, or "on site" once the crew is there (its ETA is then history).
export function eta(w) {
  if (!w) return '';
  return w.status === 'on_site' ? 'on site' : hhmm(w.eta);
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function toast(text, bad = false) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = bad ? 'toast bad show' : 'toast show';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = 'toast'; }, bad ? 8000 : 3500);
}
