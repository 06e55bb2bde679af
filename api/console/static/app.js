// The console: loads the board, keeps it current from the SSE stream (resuming after a drop), wires the grid,
// map, panels, alerts and keyboard shortcuts together.
import { Detail } from './detail.js';
import { Grid } from './grid.js';
import { ConsoleMap } from './map.js';
import { renderPlan, renderRoster } from './panels.js';
import { Review } from './review.js';
import { api, crewColour, hhmm, now, setServerNow, toast } from './util.js';

const config = JSON.parse(document.getElementById('console-config').textContent);
const store = { events: new Map(), crews: new Map(), plan: null, mode: 'auto', seq: 0, ready: false,
  p1ResponseMinutes: config.p1ResponseMinutes };
window.omsConsole = store; // for tests and the curious: read-only use
const $ = (id) => document.getElementById(id);
let grid, map, detail, review, tab = 'event';
// Set while a replay runs on a storm clock ("storm time, 120x"): the clock says so, and is read from the service
// every 2 s (storm time runs faster than the browser's, and stops when the replay does).
let clockNote = '';

// ------------------------------------------------------------------------------------------------ selection
function select(id, from) {
  if (!store.events.has(id) && from !== 'roster') return;
  grid.select(id, from !== 'grid');
  map.select(id, from !== 'map');
  showTab('event');
  detail.open(id);
  // one column (a tablet): the details are below the grid and the map; bring them into view
  if (from === 'grid' && matchMedia('(max-width: 1000px)').matches) $('panel-event').scrollIntoView({ block: 'start' });
}

function showTab(name) {
  tab = name;
  for (const t of TABS) {
    $(`tab-${t}`).setAttribute('aria-selected', String(t === name));
    $(`tab-${t}`).tabIndex = t === name ? 0 : -1;
    $(`panel-${t}`).hidden = t !== name;
  }
  if (name === 'crews') renderRoster(store, $('panel-crews'), select);
  if (name === 'plan') { $('plan-badge').hidden = true; renderPlan(store, $('panel-plan'), afterAction); }
  if (name === 'review') review.render();
}
const TABS = ['event', 'crews', 'plan', 'review'];

// ------------------------------------------------------------------------------------------------ loading
function crewsFrom(list) {
  store.crews.clear();
  list.forEach((c, i) => { crewColour(c.id, i); store.crews.set(c.id, c); });
}

// The first board comes inside the page (no second round trip); a board reload (a gap the stream cannot replay) fetches it.
function inlineBoard() {
  const tag = $('console-board');
  const b = tag ? JSON.parse(tag.textContent) : null;
  if (tag) tag.remove(); // ~1 MB of text the page no longer needs
  return b;
}

async function loadBoard(given) {
  const b = given || await api('GET', '/console/board.json');
  setServerNow(b.now);
  clockNote = b.clock || '';
  store.events = new Map(b.events.map((r) => [r.id, r]));
  crewsFrom(b.crews);
  store.plan = b.plan;
  store.mode = b.mode;
  store.seq = b.seq;
  showMode();
  if (b.plan) $('plan-badge').hidden = false;
  if (b.unmatched != null) review.setTotal(b.unmatched);
  if (b.figures) showFigures(b.figures);
  return b;
}

let pending = new Set(), pendingTimer = null;
function refetch(id) {
  pending.add(id);
  if (!pendingTimer) pendingTimer = setTimeout(flushRefetch, 150);
}
async function flushRefetch() {
  const ids = [...pending].slice(0, 400);
  ids.forEach((i) => pending.delete(i));
  pendingTimer = pending.size ? setTimeout(flushRefetch, 150) : null;
  try {
    const b = await api('GET', `/console/board.json?ids=${ids.map(encodeURIComponent).join(',')}`);
    setServerNow(b.now); // keeps ages and the clock on the service's time (a replay's storm clock runs fast)
    for (const r of b.events) {
      if (r.closed) store.events.delete(r.id); else store.events.set(r.id, { ...r, _fresh: store.events.get(r.id)?._fresh });
    }
    for (const id of ids) if (!b.events.some((r) => r.id === id)) store.events.delete(id);
    schedule();
    if (detail.id && ids.includes(detail.id)) detail.refresh();
  } catch (e) { /* the next message about it catches up */ }
}

// ------------------------------------------------------------------------------------------------ painting
// The grid repaints on the next frame; the map (2,000 markers, 200 crews) at most every 300 ms and after the grid,
// so a storm's stream never holds a new row back behind map drawing.
let frame = null, liveTimer = null, mapTimer = null, mapReady = false;
function schedule(mapLive = false) {
  if (mapLive && mapReady && !liveTimer) liveTimer = setTimeout(() => { liveTimer = null; map.refreshLive().catch(() => {}); }, 700);
  if (!mapTimer) mapTimer = setTimeout(drawMap, 300);
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = null;
    grid.refresh();
    if (tab === 'crews') renderRoster(store, $('panel-crews'), select);
  });
}
function drawMap() {
  mapTimer = null;
  map.drawEvents();
  map.drawCrews();
}

// ------------------------------------------------------------------------------------------------ the stream
const EVENT_FIELDS = ['state', 'tier', 'weight', 'device_id', 'device_kind', 'feeder_id', 'customers_out', 'critical_count',
  'hazards', 'cause', 'lat', 'lon', 'etr_earliest', 'etr_latest',
  'etr_probability'];

function onEvent(m) {
  const old = store.events.get(m.id);
  if (m.closed || m.merged_into) {
    store.events.delete(m.id);
  } else {
    const row = old ? { ...old } : { id: m.id, started_at: new Date(now()).toISOString(), calls: 0, reason: '',
      assignment: null, _fresh: true };
    for (const k of EVENT_FIELDS) row[k] = m[k];
    row.class = m.class;
    row._hay = null;
    store.events.set(m.id, row);
    if (row.tier === 1 && (!old || old.tier !== 1)) alarm(`New P1: ${row.device_id || row.id}, ${row.customers_out} out`, row.id);
  }
  refetch(m.id);
}

function onAssignment(a) {
  const row = store.events.get(a.event_id);
  const crew = store.crews.get(a.crew_id);
  const active = ['assigned', 'en_route', 'on_site'].includes(a.status);
  if (row) {
    if (active) row.assignment = { id: a.id, crew_id: a.crew_id, crew_name: crew ? crew.name : a.crew_id,
      status: a.status, eta: a.eta, locked: a.locked, manual: a.manual };
    else if (row.assignment && row.assignment.id === a.id) row.assignment = null;
    row._hay = null;
  }
  for (const c of store.crews.values()) c.jobs = (c.jobs || []).filter((j) => j.assignment_id !== a.id);
  if (crew && active) crew.jobs.push({ assignment_id: a.id, event_id: a.event_id, status: a.status, eta: a.eta, locked: a.locked });
  if (a.status !== 'proposed' && detail.id === a.event_id) detail.refresh();
}

function onMessage(type, data, seq) {
  if (type === 'reset') { onReset(); return; } // its id is no message of ours: the cursor stays where it is
  if (seq && seq <= store.seq) return; // already in the board we loaded (or replayed twice)
  if (seq) store.seq = seq;
  if (type.startsWith('event_') || type === 'etr') onEvent(data);
  else if (type === 'assignment') onAssignment(data);
  else if (type === 'crew') {
    const c = store.crews.get(data.id);
    if (c) Object.assign(c, data); else { crewColour(data.id, store.crews.size); store.crews.set(data.id, { ...data, jobs: [] }); }
  } else if (type === 'plan') {
    if (data.mode) { store.mode = data.mode; showMode(); }
    if (data.status === 'proposed') {
      // said once: a newer proposal replacing a waiting one (every re-plan) only refreshes the Plan tab
      if (!store.plan && tab !== 'plan') toast(`Plan ${data.id} proposed: see the Plan tab (3)`);
      store.plan = { id: data.id, status: 'proposed' };
      $('plan-badge').hidden = false;
    } else if (data.id && store.plan && data.id >= store.plan.id) store.plan = null;
    if (tab === 'plan') renderPlan(store, $('panel-plan'), afterAction);
  } else if (type === 'figures') {
    showFigures(data.figures);
    return;
  } else if (type === 'report') {
    review.onMessage(data, tab === 'review');
    return;
  }
  schedule(type === 'assignment' || type.startsWith('event_') || type === 'crew');
}

const TYPES = ['event_created', 'event_updated', 'event_reclassified', 'event_merged', 'event_restored',
  'event_cancelled', 'assignment', 'etr', 'plan', 'crew', 'report', 'figures', 'reset'];
// Resuming. The console keeps a cursor, store.seq: the last stream message it applied (the board's seq at first).
// Every connection asks for what came after it (?after=; a browser retrying by itself sends Last-Event-ID, the
// same number), and the service replays the rest from its buffer of recent messages, so a dropped connection
// costs nothing but the wait: no page reload, no board reload. Only when the gap is older than that buffer does
// the service answer with a reset as its first message, and then the board is fetched again.
let source = null, buffered = null, heard = 0, retry = null, retries = 0;
const live = { connects: 0, resumes: 0, boardReloads: 0 };
store.live = live; // for tests: how the console got back on the stream

function connect() {
  clearTimeout(retry); retry = null;
  if (source) source.close();
  const es = source = new EventSource(`/console/stream?after=${store.seq}`);
  live.connects += 1;
  heard = 0;
  for (const t of TYPES) {
    es.addEventListener(t, (e) => {
      if (es !== source) return; // a message from a connection we have replaced
      heard += 1;
      const data = JSON.parse(e.data), seq = Number(e.lastEventId) || 0;
      if (buffered && t !== 'reset') buffered.push([t, data, seq]); else onMessage(t, data, seq);
    });
  }
  es.onopen = () => { heard = 0; retries = 0; $('conn').textContent = 'Live'; $('conn').className = 'conn ok'; };
  es.onerror = () => {
    if (es !== source) return;
    $('conn').textContent = 'Reconnecting…'; $('conn').className = 'conn bad';
    // The browser retries by itself unless the answer was an error or it gave up (network down); then we do,
    // from our cursor, waiting a little longer each time (3 s to 30 s).
    if (es.readyState === EventSource.CLOSED && !retry) {
      retry = setTimeout(() => { retry = null; live.resumes += 1; connect(); }, Math.min(30000, 3000 * 2 ** retries++));
    }
  };
}

// A reset as the first message of a connection: the service cannot replay from our cursor (too old), so fetch the
// board. Later in a connection (the service dropped us for falling behind): reconnect from the cursor and replay.
function onReset() {
  if (heard <= 1) { reloadBoard(); return; }
  live.resumes += 1;
  connect();
}

async function reloadBoard(given) {
  if (!given) live.boardReloads += 1;
  buffered = [];
  try { await loadBoard(given); } catch (e) { toast(`Could not load: ${e.message}`, true); }
  const queue = buffered; buffered = null;
  for (const [t, d, s] of queue) onMessage(t, d, s);
  schedule(true);
}

function afterAction(id) {
  if (id) refetch(id);
  schedule(true);
  if (tab === 'plan') renderPlan(store, $('panel-plan'), afterAction);
}

// ------------------------------------------------------------------------------------------------ alerts
const acked = new Set();
let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    const o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = 880; g.gain.value = 0.15;
    o.connect(g).connect(audio.destination);
    o.start(); o.stop(audio.currentTime + 0.35);
  } catch (e) { /* no sound device: the banner stays */ }
}
function alarm(text, id) {
  if (acked.has(text)) return;
  $('alert-text').textContent = text;
  $('alert').hidden = false;
  $('alert').dataset.key = text;
  $('alert').dataset.event = id || '';
  beep();
}
function acknowledge() {
  const a = $('alert');
  if (a.hidden) return;
  acked.add(a.dataset.key);
  a.hidden = true;
}
// A P1 with no crew on site past its response target.
function checkTargets() {
  const limit = config.p1ResponseMinutes * 60000, t = now();
  for (const r of store.events.values()) {
    if (r.tier !== 1 || (r.assignment && r.assignment.status === 'on_site')) continue;
    if (t - Date.parse(r.started_at) > limit) alarm(`P1 past its ${config.p1ResponseMinutes}-minute response target: ${r.device_id || r.id}`, r.id);
  }
}

// ------------------------------------------------------------------------------------------------ controls
function showMode() {
  $('mode-auto').setAttribute('aria-pressed', String(store.mode === 'auto'));
  $('mode-propose').setAttribute('aria-pressed', String(store.mode === 'propose'));
}
async function setMode(mode) {
  try { const s = await api('PUT', '/plans/mode', { mode }); store.mode = s.plan_mode; showMode(); toast(`Re-planning: ${mode}`); }
  catch (e) { toast(e.message, true); }
}

function shortcuts(e) {
  const typing = e.target.closest('input, select, textarea') || e.ctrlKey || e.metaKey || e.altKey;
  if (e.key === 'Escape' && typing) { e.target.blur(); return; }
  if (typing) return;
  const k = e.key;
  const go = (id) => { if (id) select(id, 'key'); };
  if (k === 'j' || k === 'ArrowDown') go(grid.step(1));
  else if (k === 'k' || k === 'ArrowUp') go(grid.step(-1));
  else if (k === '/') $('filter').focus();
  else if (k === 'c') { showTab('event'); detail.focus('confirm'); }
  else if (k === 'a') { showTab('event'); detail.focus('assign'); }
  else if (k === 'r') { showTab('event'); detail.focus('restore'); }
  else if (k === 'l') detail.toggleLock();
  else if (k === '1') showTab('event');
  else if (k === '2') showTab('crews');
  else if (k === '3') showTab('plan');
  else if (k === '4') showTab('review');
  else if (k === 'A') acknowledge();
  else if (k === '?') $('help').showModal();
  else return;
  e.preventDefault();
}

async function main() {
  grid = new Grid(store, select);
  map = new ConsoleMap(store, select);
  detail = new Detail(store, $('panel-event'), afterAction);
  review = new Review($('panel-review'), $('review-badge'));
  for (const t of TABS) $(`tab-${t}`).addEventListener('click', () => showTab(t));
  $('mode-auto').addEventListener('click', () => setMode('auto'));
  $('mode-propose').addEventListener('click', () => setMode('propose'));
  $('alert-ack').addEventListener('click', acknowledge);
  $('help-open').addEventListener('click', () => $('help').showModal());
  document.addEventListener('keydown', shortcuts);
  const board = inlineBoard();
  if (board) {
    await reloadBoard(board);
    grid.refresh(); // paint the rows now, not a frame later
    connect();
  } else {
    buffered = [];
    connect();
    await reloadBoard();
  }
  document.body.dataset.ready = 'true';
  // The map's layers (feeders, roads: megabytes of GeoJSON) load once the grid is on screen.
  requestAnimationFrame(() => setTimeout(() => {
    map.load().then(() => { mapReady = true; drawMap(); return map.refreshRoutes(); })
      .catch((e) => toast(`Map: ${e.message}`, true));
  }, 0));
  showClock();
  setInterval(tick, clockNote ? 2000 : 15000);
  checkTargets();
}

// The storm's headline figures (outage/figures.py), as both maps and the stream state them.
function showFigures(f) {
  const n = (x) => Number(x).toLocaleString();
  $('figures').textContent = `${n(f.customers_out)} customers out · ${n(f.open)} open`;
  $('figures').title = `${n(f.customers_out)} customers out; ${n(f.open)} events open of ${n(f.events)} in this storm, `
    + `${n(f.restored)} restored (the same figures as the maps)`;
}

function showClock() {
  const t = hhmm(new Date(now()).toISOString());
  if (!clockNote) $('clock').textContent = t;
  else $('clock').textContent = clockNote.startsWith('storm time') ? clockNote.replace('storm time', `storm time ${t}`)
    : `${t} (${clockNote})`;
}

async function tick() {
  if (clockNote) {
    try { setServerNow((await api('GET', '/console/board.json?ids=')).now); } catch (e) { /* the next tick */ }
  }
  showClock();
  checkTargets();
  grid.paint(true);
}

main();
