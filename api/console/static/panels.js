// The crew roster and the proposed plan (a diff against the work crews hold now).
import { age, api, crewColour, el, hhmm, lockIcon, toast } from './util.js';

export function renderRoster(store, panel, onSelect) {
  const rows = [...store.crews.values()].map((c) => {
    const jobs = c.jobs || [];
    const current = jobs.find((j) => j.status === 'on_site') || jobs.find((j) => j.status === 'en_route') || jobs[0];
    const next = jobs.filter((j) => j !== current);
    const link = (j) => el('button', { type: 'button', class: 'link', onclick: () => onSelect(j.event_id, 'roster') },
      `${j.event_id}${j.eta && j.status !== 'on_site' ? ` ${hhmm(j.eta)}` : ''}`, j.locked ? [' ', lockIcon()] : null);
    return el('tr', { 'data-crew': c.id },
      el('th', { scope: 'row' }, el('span', { class: 'chip', style: `background:${crewColour(c.id)}`, text: c.name })),
      el('td', { text: c.status.replace('_', ' ') }),
      el('td', {}, current ? [link(current), ` ${current.status.replace('_', ' ')}`] : '—'),
      el('td', {}, ...next.slice(0, 4).map(link), next.length > 4 ? ` +${next.length - 4}` : ''),
      el('td', { text: c.shift_end ? hhmm(c.shift_end) : 'not set' }),
      el('td', { text: c.position_at ? age(c.position_at) : 'never' }));
  });
  panel.replaceChildren(el('table', { class: 'mini roster' }, el('caption', { text: `Crews (${rows.length})` }),
    el('thead', {}, el('tr', {}, ...['Crew', 'Status', 'Current job', 'Next jobs (ETA)', 'Shift ends', 'Position age']
      .map((h) => el('th', { scope: 'col', text: h })))), el('tbody', {}, ...rows)));
}

export async function renderPlan(store, panel, after) {
  const plan = store.plan;
  const mode = el('p', { text: `Re-planning is ${store.mode === 'propose' ? 'proposing plans for you to accept' : 'automatic: each plan is applied'}.` });
  if (!plan || plan.status !== 'proposed') {
    panel.replaceChildren(mode, el('p', { class: 'muted', text: 'No plan is waiting for a decision.' }));
    return;
  }
  let diff;
  try { diff = await api('GET', `/plans/${plan.id}/diff`); } catch (e) {
    panel.replaceChildren(mode, el('p', { class: 'bad', text: e.message }));
    return;
  }
  const delta = diff.delta;
  const decide = (verb) => async () => {
    try {
      await api('POST', `/plans/${plan.id}/${verb}`);
      toast(`Plan ${plan.id} ${verb === 'accept' ? 'accepted' : 'rejected'}`);
      store.plan = null;
      after();
    } catch (e) { toast(e.message, true); }
  };
  const n = (x) => Math.round(x).toLocaleString('en-US');
  const moves = diff.moves.length;
  panel.replaceChildren(mode,
    el('h3', { text: `Proposed plan ${plan.id}` }),
    el('p', { id: 'plan-summary' }, moves ? `${moves} ${moves === 1 ? 'job changes crew' : 'jobs change crews'}. `
      : 'No job changes crew; only the order of the work and the ETAs change. ',
    'Weighted customer-minutes until crews arrive: ',
    el('b', { text: `${n(diff.weighted_customer_minutes_before)} → ${n(diff.weighted_customer_minutes_after)}` }),
    ` (${delta <= 0 ? '' : '+'}${n(delta)}; ${delta < 0 ? 'better' : delta > 0 ? 'worse' : 'the same'}).`),
    !moves ? '' : el('table', { class: 'mini' }, el('caption', { text: 'Who moves' }),
      el('thead', {}, el('tr', {}, ...['Event', 'Tier', 'Out', 'From', 'To', 'ETA now', 'ETA then'].map((h) => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, ...diff.moves.map((m) => el('tr', {}, el('td', { class: 'mono', text: m.event_id }),
        el('td', { text: m.tier ? `P${m.tier}` : '' }), el('td', { text: String(m.customers_out ?? '') }),
        el('td', {}, m.from_crew ? el('span', { class: 'chip', style: `background:${crewColour(m.from_crew)}`, text: m.from_name }) : 'nobody'),
        el('td', {}, el('span', { class: 'chip', style: `background:${crewColour(m.to_crew)}`, text: m.to_name || m.to_crew })),
        el('td', { text: hhmm(m.eta_before) }), el('td', { text: hhmm(m.eta_after) }))))),
    el('div', { class: 'row' }, el('button', { type: 'button', id: 'plan-accept', class: 'primary', onclick: decide('accept'), text: 'Accept plan' }),
      el('button', { type: 'button', id: 'plan-reject', onclick: decide('reject'), text: 'Reject' })));
}
