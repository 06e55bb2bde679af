/* The members' outage map: places and areas, the offline basemap, address search, the list of places, the report
 * form and the status lookup, in English and Spanish.
 *
 * Loaded after oms-map.js (which owns polling and the shared helpers); OmsMap.start calls OmsMap.startPublic.
 * Every text a member reads is plain words: "Power back by 3:30 PM (rough estimate)", "Crew on the way",
 * "Power restored at 4:10 PM". No external requests.
 */
(function () {
  'use strict';
  var U = window.OmsMap.util;
  var esc = U.esc, byId = U.byId, setText = U.setText, fmtInt = U.fmtInt;

  // Dynamic strings; the page's static English is read from the DOM (data-i18n) and only Spanish is listed here.
  var TEXT = {
    en: {
      out_of: '{out} of {served} customers out ({pct}%)', all_on: 'Power is on for all {served} customers',
      etr_by: 'Power back by {time}', etr_by_conf: 'Power back by {time} ({conf})',
      etr_by_p: 'Power back by {time} ({pct}% likely)',
      etr_between_p: 'Power back between {from} and {time} ({pct}% likely)',
      conf_high: 'likely', conf_medium: 'estimate', conf_low: 'rough estimate',
      assessing: 'Assessing damage – no estimate yet', some_assessing: 'some outages still being assessed',
      restored_at: 'Power restored at {time}', short_restored: 'restored {time}', short_by: 'by {time}',
      short_assessing: 'assessing',
      crew_: 'Waiting for a crew', 'crew_assigned': 'Crew assigned', 'crew_en route': 'Crew on the way',
      'crew_on site': 'Crew working on site', cause: 'Cause', cause_unknown: 'being investigated',
      outages_n: 'Outages', crew: 'Crew', status: 'Status',
      your_area: 'Your area', your_place: 'Your place', in_place: 'in {place}',
      not_found: 'We could not find that. Try the street name alone, or your village.',
      did_you_mean: 'Did you mean:', searching: 'Searching…', search_starting: 'Search is starting up, one moment…',
      thanks: 'Thank you, we have your report.', reference: 'Your reference:', sending: 'Sending…',
      address_given: 'Address you gave:', joined: 'Your report is part of an outage:',
      not_yet_joined: 'We are matching your report to an outage; check again with your reference.',
      need_where: 'Please give your street address, account number or phone number, or share your location.',
      send_failed: 'Sorry, your report could not be sent: {msg}. Please try again or call us.',
      no_reference: 'Please enter the reference you got when you reported.', looking_up: 'Looking up…',
      no_report: 'We found no report with that reference.', service_error: 'The service answered {status}; please try again.',
      st_received: 'We have your report', st_analysed: 'Matching your report to an outage',
      st_linked: 'Part of a known outage',
      stage_assessing: 'Assessing damage', stage_crew_assigned: 'Crew assigned',
      stage_crew_en_route: 'Crew on the way', stage_crew_on_site: 'Crew working on site',
      stage_restored: 'Power restored', stage_cancelled: 'No outage found: your power should be on',
      report: 'Report', received: 'Received', customers_out: 'Customers out',
      updated: 'Updated', storm_time: 'Storm time', replay: 'replay', live: 'live · checked {time}',
      conn_lost: 'connection lost, retrying', hide: 'Hide', show: 'Show', lang_other: 'Español',
      locating: 'Finding you…', located: 'Location added (only sent with your report).',
      no_geo: 'Your browser cannot share a location.', geo_failed: 'No location: please give your address.'
    },
    es: {
      out_of: '{out} de {served} clientes sin luz ({pct}%)', all_on: 'Hay luz para los {served} clientes',
      etr_by: 'Luz de vuelta antes de las {time}', etr_by_conf: 'Luz de vuelta antes de las {time} ({conf})',
      etr_by_p: 'Luz de vuelta hacia las {time} (probabilidad {pct}%)',
      etr_between_p: 'Luz de vuelta entre las {from} y las {time} (probabilidad {pct}%)',
      conf_high: 'probable', conf_medium: 'estimación', conf_low: 'estimación aproximada',
      assessing: 'Evaluando daños – aún sin estimación', some_assessing: 'algunos cortes aún en evaluación',
      restored_at: 'Luz restablecida a las {time}', short_restored: 'restablecida {time}',
      short_by: 'antes de {time}', short_assessing: 'en evaluación',
      crew_: 'Esperando una cuadrilla', 'crew_assigned': 'Cuadrilla asignada', 'crew_en route': 'Cuadrilla en camino',
      'crew_on site': 'Cuadrilla trabajando en el lugar', cause: 'Causa', cause_unknown: 'en investigación',
      outages_n: 'Cortes', crew: 'Cuadrilla', status: 'Estado',
      your_area: 'Su zona', your_place: 'Su localidad', in_place: 'en {place}',
      not_found: 'No lo encontramos. Pruebe solo con el nombre de la calle o de su pueblo.',
      did_you_mean: '¿Quiso decir?', searching: 'Buscando…', search_starting: 'La búsqueda se está iniciando, un momento…',
      thanks: 'Gracias, hemos recibido su aviso.', reference: 'Su referencia:', sending: 'Enviando…',
      address_given: 'Dirección indicada:', joined: 'Su aviso forma parte de un corte:',
      not_yet_joined: 'Estamos asociando su aviso a un corte; vuelva a consultar con su referencia.',
      need_where: 'Indique su dirección, número de cuenta o teléfono, o comparta su ubicación.',
      send_failed: 'No se pudo enviar su aviso: {msg}. Inténtelo de nuevo o llámenos.',
      no_reference: 'Escriba la referencia que recibió al avisar.', looking_up: 'Consultando…',
      no_report: 'No hay ningún aviso con esa referencia.', service_error: 'El servicio respondió {status}; inténtelo de nuevo.',
      st_received: 'Hemos recibido su aviso', st_analysed: 'Asociando su aviso a un corte',
      st_linked: 'Forma parte de un corte conocido',
      stage_assessing: 'Evaluando daños', stage_crew_assigned: 'Cuadrilla asignada',
      stage_crew_en_route: 'Cuadrilla en camino', stage_crew_on_site: 'Cuadrilla trabajando en el lugar',
      stage_restored: 'Luz restablecida', stage_cancelled: 'No encontramos un corte: debería tener luz',
      report: 'Aviso', received: 'Recibido', customers_out: 'Clientes sin luz',
      updated: 'Actualizado', storm_time: 'Hora de la tormenta', replay: 'simulación',
      live: 'en directo · comprobado {time}', conn_lost: 'sin conexión, reintentando', hide: 'Ocultar',
      show: 'Mostrar', lang_other: 'English',
      locating: 'Buscando su ubicación…', located: 'Ubicación añadida (solo se envía con su aviso).',
      no_geo: 'Su navegador no puede compartir la ubicación.', geo_failed: 'Sin ubicación: indique su dirección.',
      // the page's static text
      title_outages: 'cortes de luz', customers_out_s: 'clientes sin luz', of_members: 'de los socios', outages: 'cortes', call: 'Llámenos',
      call_bill: 'Para avisar por teléfono, llame al número de su factura.',
      alerts: 'Suscríbase a las alertas de cortes', search_label: 'Busque su calle o pueblo', search: 'Buscar',
      list: 'Lugares con cortes', list_caption: 'Cortes por lugar; elija un encabezado para ordenar.',
      col_place: 'Lugar', col_out: 'Sin luz', col_served: 'Clientes', col_outages: 'Cortes',
      col_etr: 'Vuelve la luz', list_empty: 'No conocemos ningún corte en este momento.',
      f_address: 'Dirección', f_account: 'o número de cuenta', f_phone: 'o teléfono de la cuenta',
      f_locate: 'Usar mi ubicación', f_power: '¿Qué ve?', p_out: 'Sin luz', p_partial: 'Luz parcial / débil',
      p_flicker: 'Parpadeo de luces',
      f_hazard: 'Cables caídos, chispas o fuego (manténgase lejos y llame a emergencias)',
      f_comment: '¿Algo más?', f_contact: 'Envíenme novedades por SMS o correo (opcional)', f_send: 'Enviar aviso',
      lookup: 'Consultar mi corte', f_reference: 'Referencia de su aviso', f_check: 'Consultar',
      legend: 'Clientes sin luz en una zona', legend_restored: 'restablecida',
      privacy: 'Los cortes se muestran por zona, nunca por dirección; cada zona abastece a muchos hogares. ' +
        'El mapa muestra los cortes que conocemos: si no tiene luz, avísenos.'
    }
  };
  var STATIC_ES_KEY = {customers_out: 'customers_out_s'};  // static keys that clash with dynamic ones
  var lang = 'en';
  var english = {};  // data-i18n key -> the page's English text

  function t(key, vars) {
    var text = TEXT[lang][key] || TEXT.en[key] || key;
    return text.replace(/\{(\w+)\}/g, function (_, k) { return vars && vars[k] !== undefined ? vars[k] : ''; });
  }

  function locale() { return lang === 'es' ? 'es-ES' : 'en-US'; }

  function fmtClock(iso, withDate) {
    if (!iso) { return ''; }
    var d = new Date(iso);
    var time = d.toLocaleTimeString(locale(), {hour: 'numeric', minute: '2-digit'});
    if (withDate || d.toDateString() !== new Date().toDateString()) {
      return d.toLocaleDateString(locale(), {weekday: 'short', day: 'numeric', month: 'short'}) + ' ' + time;
    }
    return time;
  }

  /** One line a member understands: restored, power back by, or assessing. */
  function statusText(p) {
    if (p.restored_at && !p.customers_out) { return t('restored_at', {time: fmtClock(p.restored_at)}); }
    if (!p.customers_out && !p.outages) { return t('all_on', {served: fmtInt(p.customers_served)}); }
    if (!p.etr_by) { return t('assessing'); }
    // the range and stated probability the notifications and the console show (one record: the event's ETR)
    var pct = p.etr_probability != null ? Math.round(100 * p.etr_probability) : null;
    var from = p.etr_from && p.etr_from !== p.etr_by ? fmtClock(p.etr_from) : null;
    var text = pct != null ? (from ? t('etr_between_p', {from: from, time: fmtClock(p.etr_by), pct: pct})
      : t('etr_by_p', {time: fmtClock(p.etr_by), pct: pct}))
      : p.etr_confidence ? t('etr_by_conf', {time: fmtClock(p.etr_by), conf: t('conf_' + p.etr_confidence)})
      : t('etr_by', {time: fmtClock(p.etr_by)});
    return p.etr_pending ? text + '; ' + t('some_assessing') : text;
  }

  /** The list's short form: "by 3:30 PM", "restored 4:10 PM", "assessing". */
  function shortStatus(p) {
    if (p.restored_at && !p.customers_out) { return t('short_restored', {time: fmtClock(p.restored_at)}); }
    return p.etr_by ? t('short_by', {time: fmtClock(p.etr_by)}) : t('short_assessing');
  }

  function crewText(p) { return t('crew_' + (p.crew || '')); }

  function areaDetails(p) {
    var rows = U.row(t('status'), statusText(p));
    if (p.customers_out) {
      rows += U.row(t('customers_out'), t('out_of', {out: fmtInt(p.customers_out), served: fmtInt(p.customers_served),
                                                    pct: p.percent_out}));
      rows += U.row(t('outages_n'), fmtInt(p.outages)) + U.row(t('crew'), crewText(p)) +
        U.row(t('cause'), p.cause || t('cause_unknown'));
    }
    return '<table>' + rows + '</table>';
  }

  function areaPopup(p) {
    var where = p.level === 'area' && p.place !== p.name ? ' <small>' + esc(t('in_place', {place: p.place})) + '</small>' : '';
    return '<div class="oms-popup"><h3>' + esc(p.name) + where + '</h3>' + areaDetails(p) + '</div>';
  }

  // -- language ---------------------------------------------------------------------------------------------------
  function applyLanguage(next) {
    lang = next === 'es' ? 'es' : 'en';
    document.documentElement.lang = lang;
    document.querySelectorAll('[data-i18n]').forEach(function (el) {
      var key = el.getAttribute('data-i18n');
      if (!(key in english)) { english[key] = el.textContent; }
      var es = TEXT.es[STATIC_ES_KEY[key] || key];
      el.textContent = lang === 'es' && es ? es : english[key];
    });
    var heading = byId('oms-title');
    if (heading) { document.title = heading.textContent; }
    var button = byId('oms-lang');
    if (button) { button.textContent = t('lang_other'); button.lang = lang === 'es' ? 'en' : 'es'; }
    var toggle = byId('oms-toggle');
    if (toggle) { toggle.textContent = byId('oms-panel').classList.contains('oms-collapsed') ? t('show') : t('hide'); }
    try { window.localStorage.setItem('oms-lang', lang); } catch (e) { /* private mode: not remembered */ }
    document.dispatchEvent(new CustomEvent('oms-language'));
  }

  function initialLanguage() {
    var saved = null;
    try { saved = window.localStorage.getItem('oms-lang'); } catch (e) { /* ignore */ }
    return saved || ((navigator.language || 'en').slice(0, 2) === 'es' ? 'es' : 'en');
  }

  // -- basemap: buildings and names from the territory's own OSM data, shown from a zoom level on --------------------
  var LABEL_ZOOM = {city: 9, town: 10, suburb: 12, village: 11, hamlet: 14, isolated_dwelling: 15};

  function loadBasemap(map, config, group) {
    fetch(config.basemap, {cache: 'no-cache'}).then(function (r) {
      if (!r.ok) { throw new Error('HTTP ' + r.status); }
      return r.json();
    }).then(function (data) {
      var buildings = L.geoJSON(null, {
        renderer: L.canvas({padding: 0.2}), interactive: false,
        style: function () { return {color: '#9ca3af', weight: 0.6, fillColor: '#d1d5db', fillOpacity: 0.9}; }
      });
      var labels = [];
      data.features.forEach(function (f) {
        var p = f.properties;
        if (p.k === 'b') { buildings.addData(f); return; }
        var c = f.geometry.coordinates;
        var html = p.k === 's' ? '<span style="transform:translate(-50%,-50%) rotate(' + Number(p.a || 0) + 'deg)">' +
          esc(p.n) + '</span>' : '<span>' + esc(p.n) + '</span>';
        var marker = L.marker([c[1], c[0]], {
          interactive: false, keyboard: false,
          icon: L.divIcon({className: 'oms-label oms-label-' + (p.k === 's' ? 'street' : esc(p.c)), html: html,
                           iconSize: null})
        });
        labels.push({marker: marker, zoom: p.k === 's' ? 15 : (LABEL_ZOOM[p.c] || 13)});
      });
      function byZoom() {
        var z = map.getZoom();
        if (z >= 14) { group.addLayer(buildings); } else { group.removeLayer(buildings); }
        labels.forEach(function (l) { if (z >= l.zoom) { group.addLayer(l.marker); } else { group.removeLayer(l.marker); } });
      }
      map.on('zoomend', byZoom);
      byZoom();
    }).catch(function () { /* the map stays usable without its basemap */ });
  }

  // -- list of places -----------------------------------------------------------------------------------------------
  var sortKey = 'customers_out';
  var sortDir = -1;

  function renderList(map, data, onPick) {
    var body = byId('oms-list-body');
    if (!body) { return; }
    var places = data.features.filter(function (f) { return f.properties.level === 'place'; });
    places.sort(function (a, b) {
      var x = a.properties[sortKey], y = b.properties[sortKey];
      if (sortKey === 'etr_by') { x = a.properties.restored_at ? '' : (x || '~'); y = b.properties.restored_at ? '' : (y || '~'); }
      if (x === y) { return a.properties.name < b.properties.name ? -1 : 1; }
      return (x < y ? -1 : 1) * sortDir;
    });
    body.innerHTML = places.map(function (f, i) {
      var p = f.properties;
      return '<tr' + (p.restored_at && !p.customers_out ? ' class="oms-restored"' : '') + '><th scope="row">' +
        '<button type="button" class="oms-link" data-i="' + i + '">' + esc(p.name) + '</button>' +
        (p.postcode ? ' <small>' + esc(p.postcode) + '</small>' : '') + '</th><td>' + fmtInt(p.customers_out) +
        '</td><td>' + fmtInt(p.customers_served) + '</td><td>' + fmtInt(p.outages) + '</td><td>' +
        esc(shortStatus(p)) + '</td></tr>';
    }).join('');
    body.querySelectorAll('button[data-i]').forEach(function (b) {
      b.addEventListener('click', function () { onPick(places[Number(b.getAttribute('data-i'))]); });
    });
    setText('oms-list-count', fmtInt(places.length));
    var empty = byId('oms-list-empty');
    if (empty) { empty.hidden = places.length > 0; }
  }

  function wireSort(redraw) {
    document.querySelectorAll('.oms-list-table button[data-sort]').forEach(function (b) {
      b.addEventListener('click', function () {
        var key = b.getAttribute('data-sort');
        sortDir = key === sortKey ? -sortDir : (key === 'name' || key === 'etr_by' ? 1 : -1);
        sortKey = key;
        document.querySelectorAll('.oms-list-table th').forEach(function (th) { th.setAttribute('aria-sort', 'none'); });
        b.parentNode.setAttribute('aria-sort', sortDir > 0 ? 'ascending' : 'descending');
        redraw();
      });
    });
  }

  // -- search -------------------------------------------------------------------------------------------------------
  function searchAnswer(res) {
    var a = res.area || res.place;
    var head = '<p><strong>' + esc(res.label) + '</strong></p><p>' +
      esc(res.area ? t('your_area') : t('your_place')) + ': <strong>' + esc(a.name) + '</strong>' +
      (res.area && a.place !== a.name ? ' (' + esc(a.place) + ')' : '') + '</p>';
    var line = a.customers_out ? t('out_of', {out: fmtInt(a.customers_out), served: fmtInt(a.customers_served),
                                              pct: a.percent_out}) : '';
    return head + '<p class="oms-answer" data-oms-out="' + Number(a.customers_out || 0) + '">' +
      (line ? esc(line) + '. ' : '') + esc(statusText(a)) + (a.customers_out ? '. ' + esc(crewText(a)) + '.' : '') + '</p>';
  }

  function search(config, q) {
    return fetch(config.search + '?q=' + encodeURIComponent(q)).then(function (r) {
      var retry = Math.min(Math.max(Number(r.headers.get('Retry-After')) || 3, 1), 10);
      return r.json().catch(function () { return {}; }).then(function (data) {
        return {status: r.status, data: data, retry_s: retry};
      });
    });
  }

  function wireSearch(map, config, focusArea) {
    var form = byId('oms-search-form');
    if (!form) { return; }
    if (!config.search) { form.hidden = true; return; }
    var out = byId('oms-search-result');
    var last = null;
    function show() {
      if (!last) { return; }
      if (last.status !== 200) { out.textContent = t('not_found'); return; }
      var res = last.data;
      var html = searchAnswer(res);
      if (res.others && res.others.length) {
        html += '<p>' + esc(t('did_you_mean')) + ' ' + res.others.map(function (o) {
          return '<button type="button" class="oms-link" data-q="' + esc(o) + '">' + esc(o) + '</button>';
        }).join(' · ') + '</p>';
      }
      out.innerHTML = html;
      out.querySelectorAll('button[data-q]').forEach(function (b) {
        b.addEventListener('click', function () { byId('oms-search-q').value = b.getAttribute('data-q'); run(); });
      });
    }
    var starting = 0;  // retries while the service is still building its search index (503)
    function run(again) {
      var q = byId('oms-search-q').value.trim();
      if (q.length < 2) { return; }
      if (!again) { starting = 0; }
      out.textContent = t('searching');
      search(config, q).then(function (res) {
        if (res.status === 503 && starting < 20) {
          starting += 1;
          out.textContent = t('search_starting');
          window.setTimeout(function () { run(true); }, res.retry_s * 1000);
          return;
        }
        last = res;
        show();
        if (res.status === 200) {
          map.fitBounds(res.data.bounds, fitOptions(15));
          focusArea(res.data.area ? res.data.area.id : res.data.place.id);
        }
      }).catch(function () { out.textContent = t('not_found'); });
    }
    form.addEventListener('submit', function (ev) { ev.preventDefault(); run(); });
    document.addEventListener('oms-language', show);
  }

  // -- start --------------------------------------------------------------------------------------------------------
  window.OmsMap.startPublic = function (map, config, layers) {
    applyLanguage(initialLanguage());
    var open = U.trackOpenPopup(map);
    var latest = null;
    var AREA_ZOOM = 14;  // below: places; from here on: the finer areas inside them
    var areas = layers.areas;
    areas.options.filter = function (f) {
      return (f.properties.level === 'area') === (map.getZoom() >= AREA_ZOOM);
    };
    areas.options.style = function (f) {
      var p = f.properties;
      if (p.restored_at && !p.customers_out) {
        return {color: '#166534', weight: 1, fillColor: '#16a34a', fillOpacity: 0.35};
      }
      return {color: '#7f1d1d', weight: 1, fillColor: U.percentColour(p.percent_out), fillOpacity: 0.55};
    };
    areas.options.onEachFeature = function (f, layer) {
      layer.omsKey = f.properties.id;
      layer.bindPopup(function () { return areaPopup(f.properties); }, {maxWidth: 320});
      layer.bindTooltip(function () { return esc(f.properties.name) + ': ' + esc(statusText(f.properties)); },
                        {sticky: true});
    };
    function draw() {
      if (!latest) { return; }
      U.replaceData(map, areas, latest, open.key);
      areas.bringToFront();
      renderList(map, latest, pick);
    }
    function pick(feature) {
      map.fitBounds(L.geoJSON(feature).getBounds(), fitOptions(13));
      focus(feature.properties.id);
    }
    function focus(id) {
      areas.eachLayer(function (l) { if (l.omsKey === id) { l.openPopup(); } });
    }
    if (layers.roads && config.roads) {
      U.loadOnce(config.roads, layers.roads).then(function () { areas.bringToFront(); });
    }
    if (layers.basemap && config.basemap) { loadBasemap(map, config, layers.basemap); }
    map.on('zoomend', draw);
    var poller = window.OmsMap.poll(config.data, config.interval_ms, function (data) {
      latest = data;
      draw();
      showSummary(data);
    }, liveStatus);
    wireSort(draw);
    wireSearch(map, config, focus);
    window.OmsPublicForms.wire(config, poller, {t: t, fmtClock: fmtClock, statusText: statusText, search: search,
                                                searchAnswer: searchAnswer});
    U.wirePanelToggle(function (collapsed) { return collapsed ? t('show') : t('hide'); });
    var lb = byId('oms-lang');
    if (lb) { lb.addEventListener('click', function () { applyLanguage(lang === 'es' ? 'en' : 'es'); }); }
    document.addEventListener('oms-language', function () { draw(); if (latest) { showSummary(latest); } });
    watchSheet();
  };

  /** Fit the map beside the panel (desktop) or above the sheet (phone), never behind it. */
  function fitOptions(maxZoom) {
    var panel = byId('oms-panel');
    var r = panel ? panel.getBoundingClientRect() : {right: 0, height: 0};
    var phone = window.matchMedia('(max-width: 640px)').matches;
    return phone ? {maxZoom: maxZoom, paddingBottomRight: [0, r.height]}
      : {maxZoom: maxZoom, paddingTopLeft: [r.right, 0]};
  }

  function showSummary(data) {
    var s = data.summary || {};
    setText('oms-customers-out', fmtInt(s.customers_out));
    setText('oms-percent', (s.percent_out || 0).toLocaleString(locale(), {maximumFractionDigits: 2}) + '%');
    setText('oms-outages', fmtInt(s.outages));
    var el = byId('oms-updated-at');
    if (el) { el.textContent = fmtClock(data.updated_at, true); el.setAttribute('datetime', data.updated_at || ''); }
    setText('oms-updated-label', data.clock ? t('storm_time') : t('updated'));
    setText('oms-clock-note', data.clock ? ' (' + data.clock.replace(/^storm time, /, '') + ' ' + t('replay') + ')' : '');
    document.body.setAttribute('data-oms-updated', data.updated_at || '');
  }

  function liveStatus(ok, info) {
    var el = byId('oms-live-status');
    if (!el) { return; }
    el.textContent = ok ? t('live', {time: new Date().toLocaleTimeString(locale())}) : t('conn_lost');
    el.className = ok ? 'oms-ok' : 'oms-bad';
    el.title = info || '';
  }

  /** On a phone the panel is a bottom sheet: keep the map's bottom controls (scale, credits) above it. */
  function watchSheet() {
    var panel = byId('oms-panel');
    if (!panel || !window.ResizeObserver) { return; }
    new ResizeObserver(function () {
      document.body.style.setProperty('--oms-sheet', panel.getBoundingClientRect().height + 'px');
    }).observe(panel);
  }

  window.OmsPublic = {t: function (k, v) { return t(k, v); }, statusText: statusText, setLanguage: applyLanguage};
}());
