/* OMS outage maps: live layers, popups, panels, the report form and the status lookup.
 *
 * The page (rendered by api/maps/render.py with folium) creates empty GeoJSON layers with OmsMap.layer(kind) and
 * then calls OmsMap.start(map, config, layers). Data comes from GeoJSON URLs polled with If-None-Match, so an
 * unchanged map costs one 304; a static snapshot on any web server or CDN works the same way.
 * No framework, no external requests: everything this file needs is served next to it.
 */
(function () {
  'use strict';

  var PERCENT_BINS = [1, 5, 20, 50];
  var PERCENT_COLOURS = ['#fee08b', '#fdae61', '#f46d43', '#d73027', '#a50026'];
  var TIER_COLOURS = {1: '#c1121f', 2: '#f77f00', 3: '#1d4ed8', 4: '#6b7280'};
  var TIER_NAMES = {1: 'P1 life-safety', 2: 'P2 critical', 3: 'P3 feeder', 4: 'P4 single customer'};
  var CREW_TEXT = {
    '': 'Not yet assigned', 'assigned': 'Crew assigned', 'en route': 'Crew on the way', 'on site': 'Crew on site'
  };
  var ROUTE_COLOURS = ['#7c3aed', '#0891b2', '#65a30d', '#db2777', '#ca8a04', '#4f46e5', '#059669', '#dc2626'];

  function esc(value) {
    return String(value === null || value === undefined ? '' : value).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }

  // A replay runs on a storm clock: say so wherever the time is shown ("Storm time 14:20 (120x)").
  function showClock(data) {
    var label = byId('oms-updated-label'), note = byId('oms-clock-note');
    if (label) { label.textContent = data.clock ? 'Storm time' : 'Updated'; }
    if (note) { note.textContent = data.clock ? ' (' + data.clock.replace(/^storm time, /, '') + ' replay)' : ''; }
  }

  function fmtTime(iso, withDate) {
    if (!iso) { return ''; }
    var d = new Date(iso);
    var now = new Date();
    var time = d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
    if (withDate || d.toDateString() !== now.toDateString()) {
      return d.toLocaleDateString([], {weekday: 'short', day: 'numeric', month: 'short'}) + ' ' + time;
    }
    return time;
  }

  function fmtEtr(p) {
    if (!p.etr_low && !p.etr_high) { return 'Assessing'; }
    var text = p.etr_low === p.etr_high ? fmtTime(p.etr_low) : fmtTime(p.etr_low) + ' – ' + fmtTime(p.etr_high);
    if (p.etr_probability != null) { text += ' (' + Math.round(100 * p.etr_probability) + '%)'; }
    return p.etr_pending ? text + ' (some still being assessed)' : text;
  }

  function fmtInt(n) { return Number(n || 0).toLocaleString(); }

  function percentColour(pct) {
    for (var i = 0; i < PERCENT_BINS.length; i++) { if (pct < PERCENT_BINS[i]) { return PERCENT_COLOURS[i]; } }
    return PERCENT_COLOURS[PERCENT_COLOURS.length - 1];
  }

  function row(label, value) {
    return '<tr><th scope="row">' + esc(label) + '</th><td>' + esc(value) + '</td></tr>';
  }

  // -- popups (dispatcher; the public map's are in oms-public.js) ------------------------------------------------
  function eventPopup(p) {
    return '<div class="oms-popup"><h3><span class="oms-tier oms-tier-' + esc(p.tier) + '">P' + esc(p.tier) +
      '</span> ' + esc(p.id) + '</h3><table>' +
      row('Device', p.device) + row('Class', p['class']) + row('State', p.status) +
      row('Customers out', fmtInt(p.customers_out)) + row('Cause', p.cause || 'unknown') +
      row('Crew', CREW_TEXT[p.crew_status || '']) + row('ETR', fmtEtr(p)) +
      row('Started', p.started ? fmtTime(p.started, true) : '') +
      '</table><p class="oms-explanation">' + esc(p.explanation) + '</p></div>';
  }

  function crewPopup(p) {
    return '<div class="oms-popup"><h3>' + esc(p.name || p.id) + '</h3><table>' +
      row('Status', p.status) + row('Jobs planned', (p.jobs || []).join(', ') || 'none') + '</table></div>';
  }

  // -- layers ----------------------------------------------------------------------------------------------------
  var layerKinds = {
    areas: {},  // styled and filled by oms-public.js
    basemap: {interactive: false},  // a group of buildings and labels, filled by oms-public.js
    roads: {
      interactive: false,
      style: function (f) {
        var major = /motorway|trunk|primary|secondary/.test(f.properties.h || '');
        return {color: major ? '#9ca3af' : '#d1d5db', weight: major ? 2.5 : 1.2, opacity: 1};
      }
    },
    network: {
      style: function (f) {
        return f.properties.open ? {color: '#16a34a', weight: 2, dashArray: '4 4'} : {color: '#374151', weight: 1.6};
      },
      onEachFeature: function (f, layer) {
        layer.omsKey = 'line:' + f.properties.id;
        layer.bindTooltip(esc(f.properties.id) + ' (' + esc(f.properties.kind) + ', feeder ' +
                          esc(f.properties.feeder) + ')' + (f.properties.open ? ' normally open' : '') +
                          (f.properties.synth ? ' - synthesized: added by rule, not in the utility\'s data' : ''),
                          {sticky: true});
      }
    },
    events: {
      filter: function (f) { return f.properties.layer === 'event'; },
      pointToLayer: function (f, latlng) {
        var p = f.properties;
        return L.circleMarker(latlng, {
          radius: Math.min(22, 5 + 2 * Math.sqrt(p.customers_out || 0)), color: '#111827', weight: 1,
          fillColor: TIER_COLOURS[p.tier], fillOpacity: 0.85
        });
      },
      onEachFeature: function (f, layer) {
        layer.omsKey = 'event:' + f.properties.id;
        layer.bindPopup(eventPopup(f.properties), {maxWidth: 360});
      }
    },
    crews: {
      filter: function (f) { return f.properties.layer === 'crew'; },
      pointToLayer: function (f, latlng) {
        return L.marker(latlng, {
          icon: L.divIcon({className: 'oms-crew oms-crew-' + String(f.properties.status).replace(/\W+/g, '-'),
                           html: '<span>' + esc(f.properties.name || f.properties.id).slice(0, 12) + '</span>',
                           iconSize: null}),
          keyboard: true, title: f.properties.name || f.properties.id
        });
      },
      onEachFeature: function (f, layer) {
        layer.omsKey = 'crew:' + f.properties.id;
        layer.bindPopup(crewPopup(f.properties));
      }
    },
    routes: {
      filter: function (f) { return f.properties.layer === 'route'; },
      style: function (f) {
        var h = 0;
        for (var i = 0; i < f.properties.id.length; i++) { h = (h * 31 + f.properties.id.charCodeAt(i)) >>> 0; }
        return {color: ROUTE_COLOURS[h % ROUTE_COLOURS.length], weight: 3, dashArray: '8 6', opacity: 0.9};
      },
      onEachFeature: function (f, layer) {
        layer.bindTooltip('Route of ' + esc(f.properties.name || f.properties.id), {sticky: true});
      }
    }
  };

  var OmsMap = {};

  /** An empty GeoJSON layer of one kind; folium adds it to the map and the layer control. */
  OmsMap.layer = function (kind, attribution) {
    var options = L.extend({}, layerKinds[kind]);
    if (attribution) { options.attribution = attribution; }
    var layer = L.geoJSON(null, options);
    layer.omsKind = kind;
    return layer;
  };

  /** Poll a URL with If-None-Match; calls onData(json) on change and onStatus(ok, info) after each poll. */
  OmsMap.poll = function (url, intervalMs, onData, onStatus) {
    var etag = null;
    var timer = null;
    function schedule() { clearTimeout(timer); timer = setTimeout(tick, intervalMs); }
    function tick() {
      if (document.hidden) { schedule(); return; }
      var headers = etag ? {'If-None-Match': etag} : {};
      fetch(url, {headers: headers, cache: 'no-store'}).then(function (r) {
        if (r.status === 304) { onStatus(true, 'unchanged'); return null; }
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        etag = r.headers.get('ETag');
        return r.json().then(function (data) { onData(data); onStatus(true, 'changed'); });
      }).catch(function (err) { onStatus(false, String(err)); }).then(schedule);
    }
    tick();
    document.addEventListener('visibilitychange', function () { if (!document.hidden) { tick(); } });
    return {refresh: function () { clearTimeout(timer); tick(); }};
  };

  function loadOnce(url, layer) {
    return fetch(url, {cache: 'no-cache'}).then(function (r) {
      if (!r.ok) { throw new Error('HTTP ' + r.status + ' for ' + url); }
      return r.json();
    }).then(function (data) { layer.addData(data); return data; });
  }

  /** Replace a layer's features, keeping the popup the user has open (matched by omsKey). */
  function replaceData(map, layer, data, openKey) {
    layer.clearLayers();
    layer.addData(data);
    if (openKey) {
      layer.eachLayer(function (l) { if (l.omsKey === openKey && l.getPopup()) { l.openPopup(); } });
    }
  }

  function byId(id) { return document.getElementById(id); }

  function setText(id, text) { var el = byId(id); if (el) { el.textContent = text; } }

  function liveStatus(ok, info) {
    var el = byId('oms-live-status');
    if (!el) { return; }
    el.textContent = ok ? 'live · checked ' + new Date().toLocaleTimeString() : 'connection lost, retrying';
    el.className = ok ? 'oms-ok' : 'oms-bad';
    el.title = info || '';
  }

  function trackOpenPopup(map) {
    var state = {key: null};
    map.on('popupopen', function (e) { state.key = e.popup._source && e.popup._source.omsKey; });
    map.on('popupclose', function () { state.key = null; });
    return state;
  }

  // -- dispatcher map --------------------------------------------------------------------------------------------
  function startDispatcher(map, config, layers) {
    var open = trackOpenPopup(map);
    var lines = [];
    var dead = [];
    var latest = null;
    // All vector layers share one canvas, where the last drawn is the one clicked: whichever of roads, network
    // and events arrives last would otherwise cover the events. Keep routes and events on top after every load.
    function eventsOnTop() {
      ['routes', 'events'].forEach(function (k) { if (layers[k]) { layers[k].bringToFront(); } });
    }
    if (layers.roads && config.roads) { loadOnce(config.roads, layers.roads).then(eventsOnTop); }
    var networkReady = loadOnce(config.network, layers.network).then(function () {
      layers.network.eachLayer(function (l) { lines[l.feature.properties.i] = l; });
      eventsOnTop();
    });

    function paintDeenergized(indices) {
      dead.forEach(function (i) { if (lines[i]) { layers.network.resetStyle(lines[i]); } });
      dead = indices || [];
      dead.forEach(function (i) {
        if (lines[i]) { lines[i].setStyle({color: '#dc2626', weight: 4, dashArray: null}); }
      });
      setText('oms-deenergized', fmtInt(dead.length));
    }

    function filtered(data) {
      var tiers = {};
      document.querySelectorAll('.oms-filter-tier').forEach(function (el) { tiers[el.value] = el.checked; });
      var cls = (byId('oms-filter-class') || {}).value || '';
      var unassigned = (byId('oms-filter-unassigned') || {}).checked;
      return {
        type: 'FeatureCollection',
        features: data.features.filter(function (f) {
          var p = f.properties;
          if (p.layer !== 'event') { return true; }
          if (tiers[String(p.tier)] === false) { return false; }
          if (cls && p['class'] !== cls) { return false; }
          return !(unassigned && p.crew_status);
        })
      };
    }

    function draw() {
      if (!latest) { return; }
      var view = filtered(latest);
      var key = open.key;
      // routes first: events and crews are drawn, and so clicked, on top of the routes through them
      ['routes', 'events', 'crews'].forEach(function (k) { if (layers[k]) { replaceData(map, layers[k], view, key); } });
      eventsOnTop();
      setText('oms-shown', fmtInt(layers.events.getLayers().length));
    }

    OmsMap.poll(config.data, config.interval_ms, function (data) {
      latest = data;
      var s = data.summary || {};
      setText('oms-events', fmtInt(s.events));
      setText('oms-customers-out', fmtInt(s.customers_out));
      setText('oms-crews', fmtInt(s.crews));
      var byTier = s.events_by_tier || {};
      [1, 2, 3, 4].forEach(function (t) { setText('oms-tier-count-' + t, fmtInt(byTier['P' + t])); });
      var t = byId('oms-updated-at');
      if (t) { t.textContent = fmtTime(data.updated_at, true); t.setAttribute('datetime', data.updated_at || ''); }
      showClock(data);
      document.body.setAttribute('data-oms-updated', data.updated_at || '');
      draw();
      networkReady.then(function () { paintDeenergized(data.deenergized); });
    }, liveStatus);

    document.querySelectorAll('.oms-filter').forEach(function (el) { el.addEventListener('change', draw); });
    wirePanelToggle();
  }

  /** The panel's Hide/Show button (a bottom sheet on phones): the label says what it will do. */
  function wirePanelToggle(labels) {
    var button = byId('oms-toggle');
    var panel = byId('oms-panel');
    if (!button || !panel) { return; }
    button.addEventListener('click', function () {
      var collapsed = panel.classList.toggle('oms-collapsed');
      button.setAttribute('aria-expanded', String(!collapsed));
      button.textContent = labels ? labels(collapsed) : (collapsed ? 'Show' : 'Hide');
      document.body.classList.toggle('oms-panel-collapsed', collapsed);
    });
  }

  /** Wire a folium map to its live data. ``config.kind`` is "public" or "dispatcher". */
  OmsMap.start = function (map, config, layers) {
    if (config.kind === 'public') { OmsMap.startPublic(map, config, layers); } else { startDispatcher(map, config, layers); }
  };

  // shared with oms-public.js
  OmsMap.util = {
    esc: esc, fmtInt: fmtInt, percentColour: percentColour, row: row, byId: byId, setText: setText,
    loadOnce: loadOnce, replaceData: replaceData, trackOpenPopup: trackOpenPopup, wirePanelToggle: wirePanelToggle
  };

  OmsMap.TIER_NAMES = TIER_NAMES;
  window.OmsMap = OmsMap;
}());
