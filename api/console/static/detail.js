// The event panel: facts, priority reason, critical customers, ETR and its basis, the evidence (calls with their
// answers, last gasps, pings, SCADA), the timeline (who did what), and every action on the event.
import { api, classWords, crewColour, el, etr, hhmm, lockIcon, now, stateWords, toast } from './util.js';

const CAUSES = ['tree', 'wind', 'lightning', 'equipment', 'animal', 'vehicle', 'ice', 'overload', 'unknown'];

export class Detail {
  constructor(store, panel, after) {
    this.store = store;
    this.panel = panel;
    this.after = after; // called after an action, with the event id
    this.id = null;
    this.data = null;
  }

  async open(id) {
    this.id = id;
    try {
      this.data = await api('GET', `/events/${encodeURIComponent(id)}/evidence`);
    } catch (e) {
      this.panel.replaceChildren(el('p', { class: 'bad', text: `Could not load ${id}: ${e.message}` }));
      return;
    }
    if (this.id === id) this.render();
  }

  refresh() { if (this.id) this.open(this.id); }

  async act(label, method, url, body) {
    try {
      await api(method, url, body);
      toast(`${label}: done`);
      this.after(this.id);
      return true;
    } catch (e) {
      toast(`${label}: ${e.message}`, true);
      return false;
    }
  }

  // A form is emptied once its action is done; until then a refresh keeps what was typed (see typed()). The panel
  // may have been redrawn while the action ran, so the form is looked up again by its id.
  form(id, legend, fields, submit, onsubmit) {
    const send = async (e) => {
      e.preventDefault();
      if (await onsubmit(new FormData(e.target))) this.panel.querySelector(`form#${id}`)?.reset();
    };
    return el('form', { id, class: 'act', onsubmit: send },
      el('fieldset', {}, el('legend', { text: legend }), ...fields, el('button', { type: 'submit', text: submit })));
  }

  render() {
    const d = this.data, ev = d.event, row = this.store.events.get(ev.id) || {};
    const w = (d.assignments || []).find((a) => ['assigned', 'en_route', 'on_site'].includes(a.status));
    const enc = encodeURIComponent(ev.id);
    const open = !['restored', 'cancelled'].includes(ev.state) && !ev.merged_into;
    const crit = Object.entries(d.critical || {}).map(([k, n]) => `${n} ${k.replace(/_/g, ' ')}`).join(', ');
    const crewOptions = [...this.store.crews.values()].map((c) =>
      el('option', { value: c.id, text: `${c.name} (${c.status.replace('_', ' ')}${c.jobs && c.jobs.length ? `, ${c.jobs.length} jobs` : ''})` }));
    const facts = el('dl', { class: 'facts' },
      el('dt', { text: 'State' }), el('dd', { text: stateWords(ev.state) }),
      el('dt', { text: 'Class' }), el('dd', { text: `${classWords(ev.event_class)} · ${ev.device_kind || ''} ${ev.device_id || ev.sp_id || ''}` }),
      el('dt', { text: 'Feeder' }), el('dd', { text: ev.feeder_id || '—' }),
      el('dt', { text: 'Customers out' }), el('dd', { text: String(ev.customers_out) }),
      el('dt', { text: 'Critical' }), el('dd', { id: 'critical', text: crit || (ev.critical_count ? String(ev.critical_count) : 'none') }),
      el('dt', { text: 'Cause' }), el('dd', { text: ev.cause ? `${ev.cause}${ev.cause_confirmed ? ' (confirmed)' : ' (predicted)'}` : 'unknown' }),
      el('dt', { text: 'Crew' }), el('dd', { id: 'detail-crew' }, w ? [el('span', { class: 'chip', style: `background:${crewColour(w.crew_id)}`, text: w.crew_name || w.crew_id }),
        ` ${w.status.replace('_', ' ')}`, w.status === 'on_site' ? '' : [', ETA ', el('b', { id: 'detail-eta', text: hhmm(w.eta) || '—' })],
        w.locked ? [' · ', lockIcon(), ' locked'] : ''] : 'none'),
      ...(ev.tier === 1 && open ? [el('dt', { text: 'Response target' }), el('dd', { id: 'detail-target' }, ...this.target(ev, w))] : []),
      el('dt', { text: 'ETR' }), el('dd', { id: 'detail-etr', text: etr({ etr_earliest: d.etr.earliest, etr_latest: d.etr.latest }) ?
        `${etr({ etr_earliest: d.etr.earliest, etr_latest: d.etr.latest, etr_probability: d.etr.probability })} — ${d.etr.basis || d.etr.source || ''}` : 'not yet' }));
    const actions = open ? el('div', { class: 'actions' },
      this.form('f-confirm', 'Confirm', [el('label', { for: 'cause', text: 'Cause' }),
        el('select', { id: 'cause', name: 'cause' }, el('option', { value: '', text: '(not known yet)' }), ...CAUSES.map((c) => el('option', { value: c, text: c })))],
      'Confirm (c)', (f) => this.act('Confirm', 'POST', `/events/${enc}/confirm`, { cause: f.get('cause') || null })),
      this.form('f-assign', w ? 'Reassign' : 'Assign a crew', [el('label', { for: 'crew', text: 'Crew' }),
        el('select', { id: 'crew', name: 'crew', required: true }, ...crewOptions),
        el('label', { class: 'check' }, el('input', { type: 'checkbox', name: 'lock', checked: true }), ' lock (the optimizer keeps it)')],
      w ? 'Reassign (a)' : 'Assign (a)', (f) => this.act('Assign', 'POST', '/assignments', { event_id: ev.id, crew_id: f.get('crew'), lock: f.get('lock') === 'on' })),
      w ? el('button', { type: 'button', id: 'b-lock', onclick: () => this.act(w.locked ? 'Unlock' : 'Lock', 'POST', `/assignments/${w.id}/lock`, { locked: !w.locked }),
        text: w.locked ? 'Unlock assignment (l)' : 'Lock assignment (l)' }) : null,
      this.form('f-restore', 'Mark restored', [el('label', { for: 'devices', text: 'Only below devices (partial; blank: all)' }),
        el('input', { id: 'devices', name: 'devices', placeholder: 'e.g. F12, T3' })],
      'Restore (r)', (f) => this.act('Restore', 'POST', `/events/${enc}/restore`, { devices: split(f.get('devices')) })),
      this.form('f-cancel', 'Cancel', [el('label', { for: 'reason', text: 'Why' }), el('input', { id: 'reason', name: 'reason', required: true, placeholder: 'customer side, false alarm' })],
        'Cancel event', (f) => this.act('Cancel', 'POST', `/events/${enc}/cancel`, { reason: f.get('reason') })),
      this.form('f-merge', 'Merge in', [el('label', { for: 'merge', text: 'Event ids' }), el('input', { id: 'merge', name: 'ids', required: true })],
        'Merge', (f) => this.act('Merge', 'POST', `/events/${enc}/merge`, { event_ids: split(f.get('ids')) })),
      this.form('f-split', 'Split', [el('label', { for: 'split', text: 'Device below that operated' }), el('input', { id: 'split', name: 'device', required: true })],
        'Split', (f) => this.act('Split', 'POST', `/events/${enc}/split`, { device_id: f.get('device') })),
      this.form('f-note', 'Note to the customers', [el('label', { for: 'note', text: 'Note (sent by text or e-mail to reporters and enrolled customers)' }),
        el('textarea', { id: 'note', name: 'note', required: true, maxlength: '300', rows: '2', placeholder: 'e.g. a tree is on the line; crews expect to finish by 6 PM' })],
        'Send to customers', (f) => this.act('Note', 'POST', `/events/${enc}/note`, { text: f.get('note') })),
    ) : el('p', { class: 'muted', text: 'This event is closed.' });
    const calls = el('table', { class: 'mini' }, el('caption', { text: `Calls (${d.calls_total})` }),
      el('thead', {}, el('tr', {}, ...['Time', 'Channel', 'Power', 'Hazards', 'Medical', 'Neighbours out', 'Where'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...d.calls.slice(0, 50).map((c) => el('tr', {}, el('td', { text: hhmm(c.at) }), el('td', { text: c.channel }),
        el('td', { text: c.power }), el('td', { text: (c.hazards || []).join(', ').replace(/_/g, ' ') }),
        el('td', { text: c.medical_equipment ? 'yes' : '' }), el('td', { text: c.neighbours_out == null ? '?' : (c.neighbours_out ? 'yes' : 'no') }),
        el('td', { text: c.address || c.sp_id || '' })))));
    const pings = Object.entries(d.pings || {}).map(([k, n]) => `${n} ${k}`).join(', ');
    const timeline = el('ol', { class: 'timeline' }, ...d.timeline.map((t) => el('li', {},
      el('time', { text: hhmm(t.at) }), ' ', el('b', { text: t.actor }), ` ${t.action.replace(/_/g, ' ')}`,
      t.to ? ` → ${stateWords(t.to)}` : '', t.detail && t.detail.crew ? ` (${t.detail.crew})` : '',
      t.detail && t.detail.note ? el('q', { class: 'note', text: t.detail.note }) : '',
      t.detail && t.detail.note ? ` to ${t.detail.recipients} ${t.detail.recipients === 1 ? 'person' : 'people'}` : '')));
    const typed = this.rendered === ev.id ? this.typed() : null;
    this.panel.replaceChildren(
      el('h3', {}, el('b', { class: `tb t${ev.tier}`, text: `P${ev.tier}` }), ` ${ev.id}`),
      el('p', { class: 'reason-full', id: 'detail-reason', text: ev.priority_reason || row.reason || '' }),
      facts, actions,
      el('h4', { text: 'Evidence' }),
      el('p', { id: 'evidence-summary', text: `${d.calls_total} calls · ${d.last_gasps} last gasps · pings: ${pings || 'none'} · SCADA: ${(d.scada || []).join(', ') || 'none'}${d.medical ? ` · ${d.medical} medical` : ''}` }),
      calls, el('h4', { text: 'Timeline' }), timeline);
    this.rendered = ev.id;
    if (typed) this.retype(typed);
  }

  // The stream refreshes the open event often in a storm. What the dispatcher has typed or chosen in its forms, and
  // where the cursor is, must survive that: a devices field emptied under the cursor turns a partial restore into
  // a whole one.
  typed() {
    const fields = [...this.panel.querySelectorAll('.actions [name]')].map((f) =>
      [f.closest('form').id, f.name, f.type === 'checkbox' ? f.checked : f.value]);
    const a = document.activeElement, focused = a && this.panel.contains(a) && a.name ? a : null;
    return { fields, focus: focused && [focused.closest('form')?.id, focused.name, focused.selectionStart, focused.selectionEnd] };
  }

  retype({ fields, focus }) {
    const field = (form, name) => this.panel.querySelector(`form#${form} [name="${name}"]`);
    for (const [form, name, value] of fields) {
      const f = field(form, name);
      if (!f) continue;
      if (f.type === 'checkbox') f.checked = value;
      else if (f.tagName !== 'SELECT' || [...f.options].some((o) => o.value === value)) f.value = value;
    }
    const f = focus && field(focus[0], focus[1]);
    if (!f) return;
    f.focus();
    if (focus[2] != null && f.setSelectionRange) try { f.setSelectionRange(focus[2], focus[3]); } catch (e) { /* a select */ }
  }

  // A P1's response target (OMS_P1_RESPONSE_MINUTES): a crew on site by start + target; met, due, or late.
  target(ev, w) {
    const mins = this.store.p1ResponseMinutes, due = Date.parse(ev.started_at) + mins * 60000;
    const dueText = `crew on site by ${hhmm(new Date(due).toISOString())} (${mins} min)`;
    if (w && w.status === 'on_site') return [`${dueText}: crew on site`];
    const late = Math.round((now() - due) / 60000);
    if (late > 0) return [`${dueText}: `, el('span', { class: 'late', text: `${late} min late` })];
    // a crew is coming, but its ETA is past the target: say so now, while there is time to send another
    const etaLate = w && w.eta ? Math.round((Date.parse(w.eta) - due) / 60000) : 0;
    return [`${dueText}: ${-late} min left`, etaLate > 0 ? el('span', { class: 'late', text: ` · the crew's ETA is ${etaLate} min past it` }) : ''];
  }

  focus(what) {
    const target = { confirm: '#cause', assign: '#crew', restore: '#devices' }[what];
    const e = target && this.panel.querySelector(target);
    if (e) e.focus();
    return !!e;
  }

  toggleLock() { const b = this.panel.querySelector('#b-lock'); if (b) b.click(); }
}

const split = (s) => String(s || '').split(/[\s,]+/).filter(Boolean);
