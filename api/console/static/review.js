// Reports to match: public reports no service point fitted (an account, phone or address not on file). For each,
// what the member typed and when; find the service point they meant and match it (the engine then takes the report
// as if intake had located it), or dismiss it with a reason.
import { age, api, el, hhmm, toast } from './util.js';

const GAVE = [['address', 'Address'], ['account', 'Account'], ['meter', 'Meter'], ['phone', 'Phone']];

export class Review {
  constructor(panel, badge) {
    this.panel = panel;
    this.badge = badge;
    this.total = 0;
    this.openId = null; // the report whose match or dismiss form is open
    this.openKind = null; // 'match' or 'dismiss'
    this.timer = null;
  }

  setTotal(n) {
    this.total = Math.max(0, n || 0);
    this.badge.textContent = String(this.total);
    this.badge.hidden = this.total === 0;
  }

  // A stream message about a report: a new one waits, or one was decided (by anyone). Count again (or list again,
  // when the tab is open), once for a burst: the service's count is the truth, the messages only say it changed.
  onMessage(data, visible) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => (visible ? this.render() : this.recount()), 400);
  }

  async recount() {
    try { this.setTotal((await api('GET', '/review/reports?limit=1')).total); } catch (e) { /* next message */ }
  }

  async render() {
    let data;
    try { data = await api('GET', '/review/reports?limit=100'); } catch (e) {
      this.panel.replaceChildren(el('p', { class: 'bad', text: `Could not load the reports: ${e.message}` }));
      return;
    }
    this.setTotal(data.total);
    const intro = el('p', { class: 'muted', text: 'Public reports whose details matched no service point on file. '
      + 'Find the one the member meant and match it (the report then counts like any other), or dismiss it.' });
    if (!data.reports.length) {
      this.panel.replaceChildren(intro, el('p', { id: 'review-empty', text: 'No reports wait for a match.' }));
      return;
    }
    const rows = [];
    for (const r of data.reports) {
      rows.push(this.row(r));
      if (r.id === this.openId) rows.push(this.openKind === 'match' ? this.matchRow(r) : this.dismissRow(r));
    }
    this.panel.replaceChildren(intro, el('table', { class: 'mini review', id: 'review-table' },
      el('caption', { text: `Reports to match (${data.total}${data.total > data.reports.length ? `, newest ${data.reports.length} shown` : ''})` }),
      el('thead', {}, el('tr', {}, ...['Received', 'Reference', 'What they gave', 'Comment', 'Action']
        .map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...rows)));
    const q = this.panel.querySelector('#review-q, #review-note');
    if (q) q.focus();
  }

  row(r) {
    const gave = GAVE.filter(([k]) => r[k]).map(([k, label]) => el('div', {}, el('span', { class: 'muted', text: `${label}: ` }), r[k]));
    const flags = [r.power !== 'out' ? `power ${r.power}` : '', ...(r.hazards || []).map((h) => h.replace(/_/g, ' ')),
      r.medical_equipment ? 'medical equipment' : ''].filter(Boolean);
    return el('tr', { 'data-report': String(r.id) },
      el('td', {}, el('time', { datetime: r.received_at, text: hhmm(r.received_at) }), el('div', { class: 'muted', text: `${age(r.received_at)} ago · ${r.channel}` })),
      el('td', { class: 'mono', text: r.reference }),
      el('td', {}, ...gave),
      el('td', {}, r.comment || '', flags.length ? el('div', { class: 'flags', text: flags.join(', ') }) : ''),
      el('td', { class: 'review-actions' },
        this.toggle(r, 'match', 'Find a match', `Find a match for ${r.reference}`, 'primary'),
        this.toggle(r, 'dismiss', 'Dismiss…', `Dismiss ${r.reference}`)));
  }

  toggle(r, kind, text, label, cls) {
    const open = this.openId === r.id && this.openKind === kind;
    return el('button', { type: 'button', class: cls, 'aria-expanded': String(open), 'aria-label': label, text,
      'data-action': kind, onclick: () => { [this.openId, this.openKind] = open ? [null, null] : [r.id, kind]; this.render(); } });
  }

  matchRow(r) {
    const results = el('ul', { class: 'hits', id: 'review-hits', 'aria-live': 'polite' });
    const search = async (q) => {
      if (q.trim().length < 2) { results.replaceChildren(el('li', { class: 'muted', text: 'Type at least two characters.' })); return; }
      let hits;
      try { hits = await api('GET', `/review/service-points?q=${encodeURIComponent(q.trim())}`); } catch (e) {
        results.replaceChildren(el('li', { class: 'bad', text: e.message })); return;
      }
      results.replaceChildren(...(hits.length ? hits.map((h) => el('li', {},
        el('button', { type: 'button', class: 'link', 'data-sp': h.sp_id, onclick: () => this.match(r, h),
          text: `Match to ${h.address || h.sp_id}` }),
        el('span', { class: 'muted', text: ` ${h.sp_id} · account ${h.account || '—'} · meter ${h.meter || '—'}${h.feeder ? ` · ${h.feeder}` : ''}` })))
        : [el('li', { class: 'muted', text: 'No service point fits; try part of the street name or the account.' })]));
    };
    const first = r.address || r.account || r.meter || r.phone || '';
    const form = el('form', { class: 'review-search', role: 'search', onsubmit: (e) => { e.preventDefault(); search(e.target.q.value); } },
      el('label', { for: 'review-q', text: `Service point for ${r.reference}: address, account, meter or phone` }),
      el('div', { class: 'row' }, el('input', { id: 'review-q', name: 'q', type: 'search', value: first, maxlength: '100' }),
        el('button', { type: 'submit', text: 'Search' })));
    if (first.trim().length >= 2) search(first);
    return el('tr', { class: 'review-match' }, el('td', { colspan: '5' }, form, results));
  }

  async match(r, hit) {
    try {
      await api('POST', `/review/reports/${r.id}/match`, { sp_id: hit.sp_id });
      toast(`Report ${r.reference} matched to ${hit.address || hit.sp_id}`);
      this.openId = null;
    } catch (e) { toast(`Match: ${e.message}`, true); }
    this.render();
  }

  dismissRow(r) {
    const form = el('form', { class: 'review-search', onsubmit: (e) => { e.preventDefault(); this.dismiss(r, e.target.note.value); } },
      el('label', { for: 'review-note', text: `Why dismiss ${r.reference}? (a prank, a duplicate, outside our area)` }),
      el('div', { class: 'row' }, el('input', { id: 'review-note', name: 'note', maxlength: '200' }),
        el('button', { type: 'submit', id: 'review-dismiss', text: 'Dismiss report' })));
    return el('tr', { class: 'review-match' }, el('td', { colspan: '5' }, form));
  }

  async dismiss(r, note) {
    try {
      await api('POST', `/review/reports/${r.id}/dismiss`, { note: (note || '').trim() || null });
      toast(`Report ${r.reference} dismissed`);
      this.openId = this.openKind = null;
    } catch (e) { toast(`Dismiss: ${e.message}`, true); }
    this.render();
  }
}
