// The loads page: the live dashboard of a run (served by `loads run --web`) and the offline
// html report are this one page. Its data is the page data the binary builds from the run's
// JSON summary (src/web/data.rs): embedded in the page (#loads-data) for a report, pushed once
// a second over Server-Sent Events (api/events) for a live run. Charts are uPlot (bundled).
'use strict';
(function () {
  var dataNode = document.getElementById('loads-data');
  var mode = document.body.dataset.mode;
  var token = new URLSearchParams(location.search).get('token');
  var charts = [];
  var sorts = {};
  var last = null;

  // ---------- formatting ----------
  function fmtMs(v) {
    if (v === null || v === undefined || isNaN(v)) return '-';
    var us = v * 1000;
    if (us < 1000) return us.toFixed(0) + ' µs';
    if (v < 10) return v.toFixed(2) + ' ms';
    if (v < 1000) return v.toFixed(1) + ' ms';
    return (v / 1000).toFixed(2) + ' s';
  }
  function fmtNum(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return '-';
    return digits === undefined ? String(v) : v.toFixed(digits);
  }
  function fmtBytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
    if (n < 1024 * 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + ' MiB';
    return (n / 1024 / 1024 / 1024).toFixed(2) + ' GiB';
  }
  function fmtPct(q) {
    var p = q * 100;
    if (p <= 0) return '0%';
    if (p < 99) return p.toFixed(0) + '%';
    if (p < 99.9) return p.toFixed(1) + '%';
    if (p < 99.99) return p.toFixed(2) + '%';
    return p.toFixed(3) + '%';
  }

  // ---------- DOM helpers (text only: nothing from the data is parsed as HTML) ----------
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === 'class') e.className = attrs[k];
        else if (k === 'text') e.textContent = attrs[k];
        else e.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) {
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }
  function td(text, cls, sortValue) {
    var a = { text: text };
    if (cls) a['class'] = cls;
    if (sortValue !== undefined && sortValue !== null) a['data-v'] = String(sortValue);
    return el('td', a);
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function show(id, yes) { document.getElementById(id).hidden = !yes; }
  function tbody(sectionId) { return document.querySelector('#' + sectionId + ' tbody'); }

  // ---------- sections ----------
  function verdictOf(s, live) {
    if (live && live.running) return ['RUNNING', 'ok'];
    if (s.interrupted) return ['INTERRUPTED', 'bad'];
    if (s.aborted) return ['ABORTED', 'bad'];
    if (s.success && s.thresholds.every(function (t) { return t.pass; })) return ['OK', 'ok'];
    return ['FAILED', 'bad'];
  }

  function renderHeader(d) {
    var s = d.summary;
    document.getElementById('title').textContent = s.test;
    document.title = 'loads: ' + s.test;
    var v = verdictOf(s, d.live);
    var verdict = document.getElementById('verdict');
    verdict.textContent = v[0];
    verdict.className = v[1];
    var meta = [];
    if (s.project_name) meta.push('project: ' + s.project_name);
    meta.push('plan: ' + s.plan, 'agents: ' + s.agents, 'started: ' + s.started,
      'duration: ' + s.duration.toFixed(2) + ' s', 'run: ' + s.run_id);
    if (s.server_url) meta.push('server: ' + s.server_url);
    document.getElementById('meta').textContent = meta.join(' · ');
    var status = document.getElementById('live-status');
    if (d.live) {
      var l = d.live;
      status.textContent = l.running ? (l.waiting ? 'waiting: ' + l.waiting : 'live, updated every second')
        : (l.finished ? 'the run has ended' : 'not started');
      document.getElementById('controls').hidden = !(l.running && l.control);
      document.getElementById('apply').hidden = !l.change;
      document.getElementById('target').hidden = !l.change;
      document.getElementById('scope').parentNode.hidden = !l.change;
      if (l.change) { fillScopes(l.scenarios || []); loads = l.loads || []; labelTarget(); }
    } else {
      status.textContent = '';
    }
  }

  // What a change of the chosen scope sets: users (closed models) or arrivals/s (open model).
  var loads = [];
  function kindOf(scope) {
    var kinds = loads.filter(function (p) { return scope === null || p.scenario === scope; })
      .map(function (p) { return p.kind; }).filter(function (k) { return k !== 'fixed'; });
    if (!kinds.length) return 'fixed';
    return kinds.every(function (k) { return k === kinds[0]; }) ? kinds[0] : 'mixed';
  }
  function labelTarget() {
    var input = document.getElementById('target');
    var kind = kindOf(document.getElementById('scope').value || null);
    var rate = kind === 'rate';
    input.placeholder = rate ? 'arrivals/s' : kind === 'mixed' ? 'pick a scenario' : 'users';
    input.step = rate ? 'any' : '1';
  }

  function fillScopes(names) {
    var sel = document.getElementById('scope');
    if (sel.options.length === names.length + 1) return;
    while (sel.options.length > 1) sel.remove(1);
    names.forEach(function (n) { sel.appendChild(el('option', { value: n, text: 'scenario ' + n })); });
  }

  function renderCards(d) {
    var s = d.summary;
    var cards = document.getElementById('cards');
    clear(cards);
    var list = [
      ['hits', s.hits], ['hits/s', fmtNum(s.hits_per_second, 1)], ['successes', s.successes],
      ['failures', s.failures], ['errors', s.errors], ['requests', s.requests],
      ['requests/s', fmtNum(s.rps, 1)], ['mean', fmtMs(s.latency.mean)], ['p50', fmtMs(s.latency.p50)],
      ['p95', fmtMs(s.latency.p95)], ['p99', fmtMs(s.latency.p99)], ['max', fmtMs(s.latency.max)]
    ];
    if (d.live) list.unshift(['active users', d.live.active_users]);
    if (s.open_model) list.push(['dropped starts', s.open_model.dropped]);
    list.forEach(function (c) {
      cards.appendChild(el('div', { 'class': 'card', 'data-k': c[0] }, [
        el('div', { 'class': 'v', text: String(c[1]) }), el('div', { 'class': 'k', text: c[0] })]));
    });
    var notes = document.getElementById('summary-notes');
    clear(notes);
    if (s.open_model) {
      var om = s.open_model, u = om.latency_uncorrected;
      notes.appendChild(el('p', { id: 'open-model', text:
        "Open model: the request times above count from each hit's intended start (coordinated omission corrected). " +
        'Uncorrected: mean ' + fmtMs(u.mean) + ' · p50 ' + fmtMs(u.p50) + ' · p95 ' + fmtMs(u.p95) +
        ' · p99 ' + fmtMs(u.p99) + ' · max ' + fmtMs(u.max) + '. Hit time p99 ' + fmtMs(om.hit_time.p99) +
        ' (uncorrected ' + fmtMs(om.hit_time_uncorrected.p99) + '). Dropped starts: ' + om.dropped + '.' }));
    }
    if (s.aborted) notes.appendChild(el('p', { 'class': 'bad', text: 'Aborted: ' + s.aborted }));
    (s.run_problems || []).forEach(function (p) { notes.appendChild(el('p', { 'class': 'bad', text: p })); });
    (s.changes || []).forEach(function (c) {
      notes.appendChild(el('p', { 'class': 'change', text: 'At ' + new Date(c.time * 1000).toISOString() + ': ' + c.what }));
    });
  }

  function renderThresholds(d) {
    var t = d.summary.thresholds || [];
    show('thresholds', t.length > 0);
    var b = tbody('thresholds');
    clear(b);
    t.forEach(function (v) {
      b.appendChild(el('tr', null, [td(v.pass ? 'pass' : 'FAIL', 'l ' + (v.pass ? 'ok' : 'bad')),
        td(v.expression, 'l'), td(v.actual_text)]));
    });
  }

  function renderBaseline(d) {
    show('baseline', !!d.baseline);
    if (!d.baseline) return;
    var bl = d.baseline;
    document.getElementById('baseline-about').textContent =
      'Baseline: run ' + bl.run_id + ' of ' + bl.test + ', started ' + bl.started + '.';
    var b = tbody('baseline');
    clear(b);
    bl.deltas.forEach(function (x) {
      var f = function (v) { return x.unit === 'ms' ? fmtMs(v) : x.unit === '/s' ? v.toFixed(1) + '/s' : v.toFixed(0); };
      var change = x.better === null ? '±0%' : x.change_percent !== null
        ? (x.change_percent >= 0 ? '+' : '') + x.change_percent.toFixed(1) + '%'
        : (x.current - x.baseline >= 0 ? '+' : '') + (x.current - x.baseline);
      b.appendChild(el('tr', null, [td(x.name, 'l'), td(f(x.current)), td(f(x.baseline)),
        td(change, x.better === true ? 'ok' : x.better === false ? 'bad' : '')]));
    });
  }

  function renderAgents(d) {
    var a = d.summary.per_agent || [];
    show('agents', a.length > 0);
    var b = tbody('agents');
    clear(b);
    var now = Date.now() / 1000;
    a.forEach(function (x) {
      var state = x.lost ? 'lost' : (d.live && d.live.running ? 'running' : 'done');
      var ago = x.last_event ? Math.max(0, now - x.last_event).toFixed(0) + ' s ago' : '-';
      b.appendChild(el('tr', { 'data-agent': x.id }, [td(x.id, 'l'), td(x.hostname, 'l'), td(state, 'l ' + (x.lost ? 'bad' : '')),
        td(String(x.hits), '', x.hits), td((x.share * 100).toFixed(1) + '%', '', x.share), td(ago)]));
    });
  }

  function renderUrls(d) {
    var b = tbody('urls');
    clear(b);
    d.summary.urls.forEach(function (u) {
      var st = Object.keys(u.statuses).map(function (k) { return (k === '0' ? 'none' : k) + '×' + u.statuses[k]; }).join(' ');
      var ok = u.requests ? (u.requests - u.http_errors) / u.requests : null;
      var l = u.latency;
      var row = el('tr', null, [td(u.method, 'l'), td(u.url, 'l url'), td(String(u.requests), '', u.requests),
        td(fmtNum(u.rps, 1), '', u.rps), td(String(u.http_errors), '', u.http_errors),
        td(ok === null ? '-' : (ok * 100).toFixed(1) + '%', '', ok), td(st, 'l')]);
      [l.mean, l.p50, l.p90, l.p95, l.p99, l.max].forEach(function (v) { row.appendChild(td(fmtMs(v), '', v)); });
      b.appendChild(row);
    });
  }

  function renderPerTest(id, what, runs, m) {
    var names = Object.keys(m || {});
    if (id !== 'tests') show(id, names.length > 0);
    var table = document.querySelector('#' + id + ' table');
    if (!table.tHead.rows.length) {
      var hr = el('tr');
      [[what, 'l'], ['started'], [runs], [runs + '/s'], ['successes'], ['failures'], ['errors'], ['mean'], ['p50'],
        ['p90'], ['p95'], ['p99'], ['max']].forEach(function (h) { hr.appendChild(el('th', { 'class': h[1] || '', text: h[0] })); });
      table.tHead.appendChild(hr);
    }
    var b = table.tBodies[0];
    clear(b);
    names.forEach(function (n) {
      var t = m[n], c = t, x = t.duration;
      var row = el('tr', null, [td(n, 'l'), td(String(c.started)), td(String(c.hits), '', c.hits),
        td(fmtNum(t.hits_per_second, 1), '', t.hits_per_second), td(String(c.successes)), td(String(c.failures)),
        td(String(c.errors))]);
      [x.mean, x.p50, x.p90, x.p95, x.p99, x.max].forEach(function (v) {
        row.appendChild(x.count ? td(fmtMs(v), '', v) : td('-', '', 0));
      });
      b.appendChild(row);
    });
  }

  function renderProblems(d) {
    var s = d.summary, body = document.getElementById('problems-body');
    clear(body);
    if (!s.problems.length) { body.appendChild(el('p', { text: 'None.' })); return; }
    var rows = s.problems.slice().sort(function (a, b) { return b.count - a.count; });
    var tb = el('tbody');
    rows.forEach(function (p) {
      var cell = el('td', { 'class': 'l' }, [el('pre', { text: p.message })]);
      if (p.traceback) cell.appendChild(el('details', null, [el('summary', { text: 'traceback' }), el('pre', { text: p.traceback })]));
      tb.appendChild(el('tr', null, [td(String(p.count)), td(p.outcome, 'l'), td(p.test, 'l'), td(p.kind, 'l'), cell]));
    });
    var head = el('thead', null, [el('tr', null, [el('th', { text: 'count' }), el('th', { 'class': 'l', text: 'outcome' }),
      el('th', { 'class': 'l', text: 'test' }), el('th', { 'class': 'l', text: 'kind' }),
      el('th', { 'class': 'l', text: 'message and traceback' })])]);
    body.appendChild(el('table', null, [head, tb]));
    if (s.problems_dropped > 0) {
      body.appendChild(el('p', { text: s.problems_dropped + ' more failures and errors with other messages were counted but not kept.' }));
    }
  }

  function renderCounters(d) {
    var c = d.summary.counters, body = document.getElementById('counters-body');
    clear(body);
    var names = Object.keys(c);
    if (!names.length) { body.appendChild(el('p', { text: 'None.' })); return; }
    var tb = el('tbody');
    names.forEach(function (n) { tb.appendChild(el('tr', null, [td(n, 'l'), td(String(c[n]))])); });
    body.appendChild(el('table', null, [el('thead', null, [el('tr', null, [el('th', { 'class': 'l', text: 'name' }),
      el('th', { text: 'value' })])]), tb]));
  }

  function renderSockets(d) {
    var k = d.summary.sockets;
    document.getElementById('websockets-body').textContent = k.opened + ' opened · ' + k.closed + ' closed · ' +
      k.messages_received + ' messages received (' + fmtBytes(k.bytes_received) + ') · ' + k.messages_sent +
      ' sent (' + fmtBytes(k.bytes_sent) + ')';
  }

  // ---------- charts ----------
  var COLORS = { blue: '#1a73e8', green: '#188038', orange: '#e37400', red: '#d93025', purple: '#9334e6', grey: '#5f6368' };
  var CHARTS = [
    { title: 'Throughput', unit: 'per second', note: 'HTTP requests and hits (test runs) that ended in each second.',
      series: [['requests/s', COLORS.blue, function (x) { return x.requests; }],
               ['hits/s', COLORS.green, function (x) { return x.hits; }]] },
    { title: 'Request time', unit: 'ms', note: 'Percentiles of the requests that ended in each second, from per-second HDR histograms.',
      series: [['p50', COLORS.green, function (x) { return x.p50; }], ['p95', COLORS.orange, function (x) { return x.p95; }],
               ['p99', COLORS.red, function (x) { return x.p99; }], ['max', COLORS.grey, function (x) { return x.max === undefined ? null : x.max; }]] },
    { title: 'Active users', unit: 'users', note: 'Virtual users running (all agents).',
      series: [['users', COLORS.blue, function (x) { return x.users; }]] },
    { title: 'Failures and errors', unit: 'per second', note: 'Hits that failed (an assertion) or errored in each second; with --rate, arrivals due in each second that never started (dropped).',
      series: [['failures/s', COLORS.orange, function (x) { return x.failures; }], ['errors/s', COLORS.red, function (x) { return x.errors; }],
               ['dropped starts/s', COLORS.grey, function (x) { return x.dropped || 0; }]] },
    { title: 'WebSocket messages', unit: 'per second', note: 'Messages sent and received in each second.',
      series: [['messages/s', COLORS.purple, function (x) { return x.socket_messages; }]] }
  ];

  function chartWidth(box) { return Math.max(320, box.clientWidth - 4); }

  function timeData(spec, timeline) {
    // While a run goes on, its last second is still filling: show complete seconds only.
    if (last && last.live && last.live.running && timeline.length > 1) timeline = timeline.slice(0, -1);
    var xs = timeline.map(function (x) { return x.time; });
    var cols = [xs];
    spec.series.forEach(function (s) {
      cols.push(timeline.map(function (x) { var v = s[2](x); return v === undefined ? null : v; }));
    });
    return cols;
  }

  function spectrumData(spectrum) {
    // x: 1 / (1 - quantile), so that 90%, 99%, 99.9%... are evenly spaced on a log axis.
    var xs = [], ys = [];
    (spectrum || []).forEach(function (p) { xs.push(1 / Math.max(1e-6, 1 - p[0])); ys.push(p[1]); });
    return [xs, ys];
  }

  function countPoints(data) {
    var n = 0;
    for (var i = 1; i < data.length; i++) data[i].forEach(function (v) { if (v !== null && v !== undefined) n++; });
    return n;
  }

  function makeCharts(d) {
    var grid = document.getElementById('chart-grid');
    CHARTS.forEach(function (spec, i) {
      var box = el('div', { 'class': 'chart', id: 'chart-' + i }, [el('h3', { text: spec.title }), el('p', { 'class': 'note', text: spec.note })]);
      grid.appendChild(box);
      var opts = {
        width: chartWidth(box), height: 230,
        cursor: { sync: { key: 'loads-time' }, drag: { x: true, y: false } },
        scales: { x: { time: true } },
        series: [{}].concat(spec.series.map(function (s) {
          return { label: s[0], stroke: s[1], width: 2, spanGaps: false,
                   value: spec.unit === 'ms' ? function (u, v) { return v === null ? '-' : fmtMs(v); } : undefined };
        })),
        axes: [{}, { label: spec.unit, size: 60, values: spec.unit === 'ms' ? function (u, vals) { return vals.map(fmtMs); } : undefined }]
      };
      var data = timeData(spec, d.summary.timeline);
      var c = { box: box, spec: spec, kind: 'time', zoomed: false };
      opts.hooks = {
        setSelect: [function (u) { if (u.select.width > 0) c.zoomed = true; }],
        // Load changes made during the run: a dashed vertical line at each.
        draw: [function (u) {
          var changes = (last && last.summary.changes) || [];
          if (!changes.length) return;
          var ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = '#9334e6';
          ctx.setLineDash([5, 4]);
          ctx.lineWidth = 1.5;
          changes.forEach(function (ch) {
            var x = Math.round(u.valToPos(ch.time, 'x', true));
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          });
          ctx.restore();
        }]
      };
      c.u = new uPlot(opts, data, box);
      box.addEventListener('dblclick', function () { c.zoomed = false; });
      box.dataset.points = countPoints(data);
      charts.push(c);
    });
    var i = CHARTS.length;
    var box = el('div', { 'class': 'chart', id: 'chart-' + i }, [el('h3', { text: 'Latency spectrum' }),
      el('p', { 'class': 'note', text: 'Request time at each percentile of the whole run (merged HDR histogram); log scale of percentiles.' })]);
    grid.appendChild(box);
    var sdata = spectrumData(d.spectrum);
    var u = new uPlot({
      width: chartWidth(box), height: 230,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false, distr: 3, log: 10 } },
      series: [{ label: 'percentile', value: function (u, v) { return v === null ? '-' : fmtPct(1 - 1 / v); } },
               { label: 'request time', stroke: COLORS.blue, width: 2, value: function (u, v) { return v === null ? '-' : fmtMs(v); } }],
      axes: [{ values: function (u, vals) {
                 return vals.map(function (v) { var l = Math.log10(v); return Math.abs(l - Math.round(l)) < 1e-9 ? fmtPct(1 - 1 / v) : ''; });
               } },
             { label: 'ms', size: 60, values: function (u, vals) { return vals.map(fmtMs); } }]
    }, sdata, box);
    box.dataset.points = countPoints(sdata);
    charts.push({ u: u, box: box, kind: 'spectrum' });
    var fit = function () { charts.forEach(function (c) { c.u.setSize({ width: chartWidth(c.box), height: 230 }); }); };
    fit();
    window.addEventListener('resize', fit);
  }

  function updateCharts(d) {
    charts.forEach(function (c) {
      var data = c.kind === 'time' ? timeData(c.spec, d.summary.timeline) : spectrumData(d.spectrum);
      // Keep a zoomed-in range while new seconds come in.
      var x = c.u.scales.x, zoomed = c.zoomed;
      c.u.setData(data, !zoomed);
      if (zoomed && x.min !== null) c.u.setScale('x', { min: x.min, max: x.max });
      c.box.dataset.points = countPoints(data);
    });
  }

  // ---------- sorting ----------
  function sortTable(table, col, asc) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function bindSorting() {
    document.querySelectorAll('table.sortable').forEach(function (table) {
      var id = table.closest('section').id;
      table.addEventListener('click', function (ev) {
        var th = ev.target.closest('th');
        if (!th) return;
        var col = Array.prototype.indexOf.call(th.parentNode.children, th);
        var asc = !(sorts[id] && sorts[id].col === col && sorts[id].asc);
        sorts[id] = { col: col, asc: asc };
        sortTable(table, col, asc);
      });
    });
  }
  function reapplySorts() {
    Object.keys(sorts).forEach(function (id) {
      var t = document.querySelector('#' + id + ' table');
      if (t) sortTable(t, sorts[id].col, sorts[id].asc);
    });
  }

  // ---------- the whole page ----------
  function render(d) {
    last = d;
    renderHeader(d);
    renderCards(d);
    renderThresholds(d);
    renderBaseline(d);
    renderAgents(d);
    renderUrls(d);
    renderPerTest('tests', 'test', 'hits', d.summary.tests);
    renderPerTest('scenarios', 'scenario', 'hits', d.summary.scenarios);
    renderPerTest('lifecycle', 'hook', 'runs', d.summary.lifecycle);
    renderProblems(d);
    renderCounters(d);
    renderSockets(d);
    if (!charts.length) makeCharts(d); else updateCharts(d);
    reapplySorts();
    document.body.dataset.updates = String((parseInt(document.body.dataset.updates || '0', 10)) + 1);
    document.body.dataset.hits = String(d.summary.hits);
  }

  // ---------- live ----------
  function api(path) { return path + (token ? (path.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(token) : ''); }
  function post(path, body) {
    var headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    return fetch(path, { method: 'POST', headers: headers, body: JSON.stringify(body || {}) }).then(function (r) {
      return r.text().then(function (t) { if (!r.ok) throw new Error(t || r.statusText); return t; });
    });
  }
  function controlStatus(text) { document.getElementById('control-status').textContent = text; }
  function bindControls() {
    document.getElementById('stop').addEventListener('click', function () {
      this.disabled = true;
      controlStatus('stopping…');
      post('api/stop').then(function () { controlStatus('stopping the virtual users…'); })
        .catch(function (e) { controlStatus('stop refused: ' + e.message); });
    });
    document.getElementById('scope').addEventListener('change', labelTarget);
    document.getElementById('apply').addEventListener('click', function () {
      var n = parseFloat(document.getElementById('target').value);
      if (isNaN(n) || n < 0) { controlStatus('give a number'); return; }
      var scope = document.getElementById('scope').value || null;
      post('api/load', { scenario: scope, value: n }).then(function (t) { controlStatus(t); })
        .catch(function (e) { controlStatus('refused: ' + e.message); });
    });
  }
  function connect() {
    var es = new EventSource(api('api/events'));
    es.onmessage = function (ev) {
      var d = JSON.parse(ev.data);
      render(d);
      if (d.live && d.live.finished) es.close();
    };
    es.onerror = function () {
      if (last && last.live && last.live.finished) { es.close(); return; }
      document.getElementById('live-status').textContent = 'connection lost; retrying…';
    };
  }

  bindSorting();
  var text = dataNode.textContent.trim();
  if (text) render(JSON.parse(text));
  if (mode === 'live') { bindControls(); connect(); }
  document.body.dataset.ready = '1';
})();
