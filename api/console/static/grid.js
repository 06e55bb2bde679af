// The events grid: sorted and filtered rows, drawn in a window (only the rows in view exist in the DOM), so
// 2,000 events scroll and filter without stutter.
import { age, classWords, crewColour, el, eta, etr, lockIcon, stateWords } from './util.js';

const ROW_H = 44;   // px; matches .grid tbody tr in console.css
// Rows drawn beyond the view on each side. A scroll that stays inside them repaints nothing; one that leaves them
// redraws the window around the new view (a repaint's cost is mostly the layout of the new rows: fewer is faster).
const OVERSCAN = 6;

export class Grid {
  constructor(store, onSelect) {
    this.store = store;
    this.onSelect = onSelect;
    this.scroll = document.getElementById('grid-scroll');
    this.body = document.getElementById('grid-body');
    this.count = document.getElementById('event-count');
    this.sort = { key: 'tier', dir: 1 };
    this.filter = { text: '', tier: '', crew: '' };
    this.rows = [];
    this.selected = null;
    this.scroll.addEventListener('scroll', () => this.paint(), { passive: true });
    for (const th of document.querySelectorAll('#grid th[data-sort]')) {
      th.querySelector('button').addEventListener('click', () => this.sortBy(th.dataset.sort));
    }
    const f = document.getElementById('filter');
    f.addEventListener('input', () => { this.filter.text = f.value.trim().toLowerCase(); this.refresh(); });
    document.getElementById('f-tier').addEventListener('change', (e) => { this.filter.tier = e.target.value; this.refresh(); });
    document.getElementById('f-crew').addEventListener('change', (e) => { this.filter.crew = e.target.value; this.refresh(); });
    this.body.addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-id]');
      if (tr) this.onSelect(tr.dataset.id, 'grid');
    });
  }

  sortBy(key) {
    this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : 1 };
    for (const th of document.querySelectorAll('#grid th[data-sort]')) {
      th.setAttribute('aria-sort', th.dataset.sort === key ? (this.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
    this.refresh();
  }

  // Most urgent first: tier, then weight (customers x priority), then the oldest.
  static urgency(a, b) {
    return a.tier - b.tier || (b.weight || 0) - (a.weight || 0) || String(a.started_at).localeCompare(String(b.started_at));
  }

  value(r, key) {
    const w = r.assignment;
    switch (key) {
      case 'crew': return w ? w.crew_name : '';
      case 'eta': return w && w.eta && w.status !== 'on_site' ? w.eta : '~';
      case 'device_id': return `${r.device_id || '~'} ${r.class || ''}`;
      case 'etr': return r.etr_earliest || '~';
      default: return r[key] ?? '';
    }
  }

  matches(r) {
    const f = this.filter;
    if (f.tier && String(r.tier) !== f.tier) return false;
    if (f.crew === 'none' && r.assignment) return false;
    if (f.crew === 'some' && !r.assignment) return false;
    if (f.text) {
      const hay = r._hay || (r._hay = [r.id, r.device_id, r.feeder_id, r.reason, r.cause, stateWords(r.state),
        classWords(r.class), r.assignment && r.assignment.crew_name, `p${r.tier}`].join(' ').toLowerCase());
      if (!hay.includes(f.text)) return false;
    }
    return true;
  }

  refresh() {
    const rows = [...this.store.events.values()].filter((r) => this.matches(r));
    const { key, dir } = this.sort;
    if (key === 'tier') rows.sort((a, b) => dir * Grid.urgency(a, b));
    else rows.sort((a, b) => {
      const x = this.value(a, key), y = this.value(b, key);
      return dir * (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))) ||
        Grid.urgency(a, b);
    });
    this.rows = rows;
    this.count.textContent = rows.length === this.store.events.size ? `(${rows.length})`
      : `(${rows.length} of ${this.store.events.size})`;
    document.getElementById('grid').setAttribute('aria-rowcount', String(rows.length + 1));
    this.paint(true);
  }

  paint(force = false) {
    const top = this.scroll.scrollTop, h = this.scroll.clientHeight || 600;
    const viewFirst = Math.floor(top / ROW_H), viewLast = Math.min(this.rows.length, Math.ceil((top + h) / ROW_H));
    if (!force && viewFirst >= this._first && viewLast <= this._last) return; // still inside the drawn rows
    const first = Math.max(0, viewFirst - OVERSCAN);
    const last = Math.min(this.rows.length, viewLast + OVERSCAN);
    this._first = first; this._last = last;
    const frag = document.createDocumentFragment();
    frag.append(el('tr', { class: 'spacer', 'aria-hidden': 'true', style: `height:${first * ROW_H}px` }));
    for (let i = first; i < last; i++) frag.append(this.rowEl(this.rows[i], i));
    frag.append(el('tr', { class: 'spacer', 'aria-hidden': 'true', style: `height:${(this.rows.length - last) * ROW_H}px` }));
    this.body.replaceChildren(frag);
  }

  rowEl(r, i) {
    const w = r.assignment;
    const crew = w ? el('span', { class: 'chip', style: `background:${crewColour(w.crew_id)}` },
      w.crew_name, w.locked ? [' ', lockIcon()] : null) : '';
    return el('tr', { 'data-id': r.id, 'aria-rowindex': String(i + 2), 'aria-selected': String(r.id === this.selected),
      class: `t${r.tier}${r.id === this.selected ? ' sel' : ''}${r._fresh ? ' fresh' : ''}` },
      el('td', { class: 'tier' }, el('b', { class: `tb t${r.tier}`, text: `P${r.tier}` }),
        el('span', { class: 'reason', title: r.reason || '', text: r.reason || '' })),
      el('td', { class: 'dev', title: r.device_id || '' }, el('span', { class: 'mono', text: r.device_id || '' }),
        el('span', { class: 'reason', text: classWords(r.class) })),
      el('td', { class: 'mono', text: r.feeder_id || '' }),
      el('td', { class: 'num', text: String(r.customers_out) }),
      el('td', { class: r.critical_count ? 'num crit' : 'num', text: String(r.critical_count || 0) }),
      el('td', { text: age(r.started_at) }),
      el('td', { text: stateWords(r.state), title: stateWords(r.state) }),
      el('td', { title: w ? w.crew_name : '' }, crew),
      el('td', { class: w && w.status === 'on_site' ? 'muted' : '', text: eta(w) }),
      el('td', { text: etr(r) }),
      el('td', { class: 'num', text: String(r.calls ?? '') }));
  }

  select(id, reveal = true) {
    this.selected = id;
    const i = this.rows.findIndex((r) => r.id === id);
    if (reveal && i >= 0) {
      const y = i * ROW_H, top = this.scroll.scrollTop, h = this.scroll.clientHeight - ROW_H * 2;
      if (y < top || y > top + h) this.scroll.scrollTop = Math.max(0, y - h / 2);
    }
    this.paint(true);
  }

  step(delta) {
    if (!this.rows.length) return null;
    const i = this.rows.findIndex((r) => r.id === this.selected);
    const j = Math.min(this.rows.length - 1, Math.max(0, i < 0 ? 0 : i + delta));
    return this.rows[j].id;
  }
}
