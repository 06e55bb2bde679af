/* The public map's report form and status lookup (see oms-public.js for the map and the words).
 *
 * The report's answer never says whether an account, phone or address is on file (the service gives every member
 * the same answer). So the confirmation shows the address *as the reporter typed it*, normalised by the same public
 * address search anyone can run, with that area's outage; and the outage the report joined once the service has
 * matched it, through the report's own reference.
 */
(function () {
  'use strict';
  var U = window.OmsMap.util;
  var esc = U.esc, byId = U.byId, fmtInt = U.fmtInt, row = U.row;

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return 'k' + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  /** The body POST /reports takes (api/web/schemas.py ReportIn): unknown fields are refused. */
  function reportBody(form) {
    var f = form.elements;
    var body = {channel: 'web', power: f.power.value};
    ['account', 'phone', 'address', 'comment'].forEach(function (name) {
      var v = f[name] && f[name].value.trim();
      if (v) { body[name] = v; }
    });
    if (f.lat.value && f.lon.value) { body.lat = Number(f.lat.value); body.lon = Number(f.lon.value); }
    if (f.hazard.checked) { body.hazards = ['wires_down']; }
    var contact = f.contact.value.trim();
    if (contact) {
      body.contact = contact.indexOf('@') > 0 ? {email: contact, prefer: 'email'} : {sms: contact, prefer: 'sms'};
    }
    return body;
  }

  /** A readable message from an error body ({error: {message}} or FastAPI's detail). */
  function errorText(data, status) {
    var d = data && (data.error || data.detail || data.message);
    if (typeof d === 'string') { return d; }
    if (Array.isArray(d) && d.length) { return d.map(function (e) { return e.msg || JSON.stringify(e); }).join('; '); }
    if (d && typeof d === 'object' && d.message) { return d.message; }
    return 'the service answered ' + status;
  }

  /** The outage behind a report, in plain words (status lookup and confirmation). */
  function eventRows(e, w) {
    var stage = e.stage || (e.state === 'restored' ? 'restored' : e.crew_assigned ? 'crew_assigned' : 'assessing');
    var rows = row(w.t('status'), w.t('stage_' + stage));
    if (stage === 'restored') {
      return rows + (e.restored_at ? row(w.t('stage_restored'), w.fmtClock(e.restored_at, true)) : '');
    }
    if (stage === 'cancelled') { return rows; }
    rows += row(w.t('customers_out'), fmtInt(e.customers_out)) +
      row(w.t('cause'), e.cause || w.t('cause_unknown'));
    var etr = {customers_out: e.customers_out || 1, outages: 1, etr_by: e.etr_latest || e.etr_earliest,
               etr_confidence: e.etr_confidence};
    return rows + row(w.t('status'), w.statusText(etr));
  }

  function lookup(config, ref) {
    return fetch(config.lookup_url.replace('{token}', encodeURIComponent(ref)), {cache: 'no-store'})
      .then(function (r) {
        if (r.status === 404) { return {missing: true}; }
        if (!r.ok) { return {error: r.status}; }
        return r.json();
      });
  }

  function wireReportForm(config, poller, w) {
    var form = byId('oms-report-form');
    if (!form) { return; }
    var key = newKey();  // one key per report attempt: a double click or a retry is one report
    var locate = byId('oms-locate');
    if (locate) {
      locate.addEventListener('click', function () {
        var note = byId('oms-locate-note');
        if (!navigator.geolocation) { note.textContent = w.t('no_geo'); return; }
        note.textContent = w.t('locating');
        navigator.geolocation.getCurrentPosition(function (pos) {
          form.elements.lat.value = pos.coords.latitude.toFixed(6);
          form.elements.lon.value = pos.coords.longitude.toFixed(6);
          note.textContent = w.t('located');
        }, function () { note.textContent = w.t('geo_failed'); }, {timeout: 10000});
      });
    }
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var out = byId('oms-report-result');
      var body = reportBody(form);
      if (!body.account && !body.phone && !body.address && body.lat === undefined) {
        out.textContent = w.t('need_where');
        out.className = 'oms-bad';
        return;
      }
      var button = form.querySelector('button[type=submit]');
      button.disabled = true;
      out.textContent = w.t('sending');
      out.className = '';
      fetch(config.reports_url, {
        method: 'POST', headers: {'Content-Type': 'application/json', 'Idempotency-Key': key},
        body: JSON.stringify(body)
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) { return {r: r, data: data}; });
      }).then(function (res) {
        if (!res.r.ok) { throw new Error(errorText(res.data, res.r.status)); }
        var ref = res.data.reference || '';
        out.innerHTML = '<p>' + esc(w.t('thanks')) + (ref ? ' ' + esc(w.t('reference')) +
          ' <strong id="oms-report-reference">' + esc(ref) + '</strong>' : '') + '</p>' +
          '<div id="oms-report-address"></div><div id="oms-report-outage"></div>';
        out.className = 'oms-ok';
        var lookupField = byId('oms-lookup-reference');
        if (lookupField && ref) { lookupField.value = ref; }
        if (body.address && config.search) { showAddress(config, body.address, w); }
        if (ref) { followReport(config, ref, w, 0); }
        form.reset();
        key = newKey();
        poller.refresh();
      }).catch(function (err) {
        out.textContent = w.t('send_failed', {msg: err.message});
        out.className = 'oms-bad';
      }).then(function () { button.disabled = false; });
    });
  }

  /** What the reporter typed, as the public search reads it, and that area's outage. */
  function showAddress(config, typed, w) {
    w.search(config, typed).then(function (res) {
      var el = byId('oms-report-address');
      if (!el || res.status !== 200) { return; }
      el.innerHTML = '<p>' + esc(w.t('address_given')) + '</p>' + w.searchAnswer(res.data);
    }).catch(function () { /* the reference is what matters */ });
  }

  /** Ask for the report's outage a few times while the service matches it. */
  function followReport(config, ref, w, attempt) {
    lookup(config, ref).then(function (data) {
      var el = byId('oms-report-outage');
      if (!el) { return; }
      if (data && data.event) {
        el.innerHTML = '<p>' + esc(w.t('joined')) + '</p><table>' + eventRows(data.event, w) + '</table>';
      } else if (attempt < 5) {
        setTimeout(function () { followReport(config, ref, w, attempt + 1); }, 3000);
      } else {
        el.textContent = w.t('not_yet_joined');
      }
    }).catch(function () { /* the lookup form still works */ });
  }

  function wireLookupForm(config, w) {
    var form = byId('oms-lookup-form');
    if (!form) { return; }
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var out = byId('oms-lookup-result');
      var ref = byId('oms-lookup-reference').value.trim();
      if (!ref) { out.textContent = w.t('no_reference'); return; }
      out.textContent = w.t('looking_up');
      lookup(config, ref).then(function (data) {
        if (data.missing) { out.textContent = w.t('no_report'); return; }
        if (data.error) { out.textContent = w.t('service_error', {status: data.error}); return; }
        var rows = row(w.t('report'), w.t('st_' + (data.status || 'received')));
        if (data.received_at) { rows += row(w.t('received'), w.fmtClock(data.received_at, true)); }
        if (data.event) { rows += eventRows(data.event, w); }
        out.innerHTML = '<table>' + rows + '</table>';
        out.setAttribute('data-oms-stage', data.event ? (data.event.stage || '') : data.status);
      }).catch(function () { out.textContent = w.t('service_error', {status: '–'}); });
    });
  }

  window.OmsPublicForms = {
    wire: function (config, poller, words) {
      wireReportForm(config, poller, words);
      wireLookupForm(config, words);
    }
  };
}());
