// The broker's page (`loads broker --web`): agents, active runs, stored runs with links to
// their full reports (runs/ID, the same page as the html output), and a comparison of two
// stored runs (api/compare). Data: api/cluster, refreshed every 2 seconds.
'use strict';
(function () {
  var token = new URLSearchParams(location.search).get('token');
  function withToken(path) { return token ? path + (path.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(token) : path; }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'class') e.className = attrs[k]; else if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function td(text, cls) { return el('td', { text: text, 'class': cls || '' }); }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function ms(v) { if (v === null || v === undefined) return '-'; return v < 10 ? v.toFixed(2) + ' ms' : v < 1000 ? v.toFixed(1) + ' ms' : (v / 1000).toFixed(2) + ' s'; }
  function pct(a, b) { if (!a) return '-'; var p = (b - a) * 100 / a; return (p >= 0 ? '+' : '') + p.toFixed(1) + '%'; }
  var ticked = [];
  var lastRuns = '';

  function render(d) {
    var p = d.ping;
    document.getElementById('meta').textContent = 'broker pid ' + p.pid + ' · front ' + p.frontend + ' · ' + (p.curve ? 'CURVE keys' : 'no keys');
    var ab = document.querySelector('#agents tbody');
    clear(ab);
    p.agents.forEach(function (a) {
      ab.appendChild(el('tr', null, [td(a.id, 'l'), td(a.host, 'l'), td(String(a.pid)), td(a.busy ? 'busy (' + a.busy + ')' : 'idle', 'l'),
        td(a.last_heartbeat.toFixed(1) + ' s ago')]));
    });
    var act = document.getElementById('active-body');
    clear(act);
    var active = p.active_runs || [];
    if (!active.length) act.appendChild(el('p', { text: 'None.' }));
    active.forEach(function (id) {
      act.appendChild(el('p', null, [el('a', { href: withToken('runs/' + encodeURIComponent(id) + '/live'), text: id, 'class': 'live-link' }),
        ' (live) · ', el('a', { href: withToken('runs/' + encodeURIComponent(id)), text: 'its report so far' })]));
    });
    // Rebuilt only when the runs changed: a box being clicked is not replaced under the pointer.
    var rb = document.querySelector('#runs tbody');
    var runsKey = JSON.stringify(d.runs);
    var changed = runsKey !== lastRuns;
    if (changed) { lastRuns = runsKey; clear(rb); }
    (changed ? d.runs : []).forEach(function (r) {
      var box = el('input', { type: 'checkbox', 'data-run': r.run_id });
      if (ticked.indexOf(r.run_id) >= 0) box.checked = true;
      box.addEventListener('change', function () {
        if (box.checked) ticked.push(r.run_id); else ticked = ticked.filter(function (x) { return x !== r.run_id; });
        if (ticked.length > 2) ticked = ticked.slice(-2);
        document.querySelectorAll('#runs input[type=checkbox]').forEach(function (b) { b.checked = ticked.indexOf(b.dataset.run) >= 0; });
        document.getElementById('compare').disabled = ticked.length !== 2;
      });
      var link = el('a', { href: withToken('runs/' + encodeURIComponent(r.run_id)), text: r.run_id, 'class': 'run-link' });
      rb.appendChild(el('tr', { 'data-run': r.run_id }, [el('td', null, [box]), el('td', { 'class': 'l' }, [link]), td(r.test, 'l'), td(r.started, 'l'),
        td(r.duration === null ? '-' : r.duration.toFixed(1) + ' s'), td(String(r.hits)), td(String(r.agents)),
        td(r.status + (r.lost_agents.length ? ' (' + r.lost_agents.length + ' lost)' : ''), 'l')]));
    });
    document.getElementById('live-status').textContent = 'updated ' + new Date().toLocaleTimeString();
    document.body.dataset.updates = String(parseInt(document.body.dataset.updates || '0', 10) + 1);
  }

  function compareTable(id, rows, what) {
    var t = document.getElementById(id);
    clear(t.tHead); clear(t.tBodies[0]);
    var h = el('tr');
    [what, 'count 1st', 'count 2nd', 'rate 1st', 'rate 2nd', 'errors 1st', 'errors 2nd', 'p50 1st', 'p50 2nd', 'p95 1st', 'p95 2nd', 'p99 1st', 'p99 2nd', 'p99 change']
      .forEach(function (x, i) { h.appendChild(el('th', { text: x, 'class': i === 0 ? 'l' : '' })); });
    t.tHead.appendChild(h);
    rows.forEach(function (r) {
      var a = r.a || {}, b = r.b || {};
      var f = function (v, g) { return v === undefined ? '-' : g(v); };
      var n = function (v) { return String(v); }, rate = function (v) { return v.toFixed(1) + '/s'; }, e = function (v) { return (v * 100).toFixed(2) + '%'; };
      t.tBodies[0].appendChild(el('tr', null, [td(r.name, 'l url'), td(f(a.count, n)), td(f(b.count, n)), td(f(a.rate, rate)), td(f(b.rate, rate)),
        td(f(a.error_rate, e)), td(f(b.error_rate, e)), td(ms(a.p50)), td(ms(b.p50)), td(ms(a.p95)), td(ms(b.p95)), td(ms(a.p99)), td(ms(b.p99)),
        td(r.a && r.b ? pct(a.p99, b.p99) : '-')]));
    });
  }

  function showComparison(c) {
    document.getElementById('comparison').hidden = false;
    document.getElementById('comparison-about').textContent = 'First: run ' + c.a.run_id + ' (' + c.a.test + ', ' + c.a.plan + ', ' + c.a.started +
      '). Second: run ' + c.b.run_id + ' (' + c.b.test + ', ' + c.b.plan + ', ' + c.b.started + ').';
    var m = document.querySelector('#compare-main tbody');
    clear(m);
    c.deltas.forEach(function (x) {
      var f = function (v) { return x.unit === 'ms' ? ms(v) : x.unit === '/s' ? v.toFixed(1) + '/s' : v.toFixed(0); };
      var change = x.better === null ? '±0%' : x.change_percent !== null ? (x.change_percent >= 0 ? '+' : '') + x.change_percent.toFixed(1) + '%' : String(x.current - x.baseline);
      m.appendChild(el('tr', null, [td(x.name, 'l'), td(f(x.baseline)), td(f(x.current)), td(change, x.better === true ? 'ok' : x.better === false ? 'bad' : '')]));
    });
    compareTable('compare-urls', c.urls, 'URL');
    compareTable('compare-tests', c.tests, 'test');
    document.body.dataset.compared = '1';
  }

  function get(path) { return fetch(withToken(path)).then(function (r) { if (!r.ok) return r.text().then(function (t) { throw new Error(t); }); return r.json(); }); }
  function refresh() { get('api/cluster').then(render).catch(function (e) { document.getElementById('live-status').textContent = 'broker: ' + e.message; }); }
  document.getElementById('compare').addEventListener('click', function () {
    if (ticked.length !== 2) return;
    get('api/compare?a=' + encodeURIComponent(ticked[0]) + '&b=' + encodeURIComponent(ticked[1])).then(showComparison)
      .catch(function (e) { document.getElementById('comparison-about').textContent = 'comparison failed: ' + e.message; });
  });
  refresh();
  setInterval(refresh, 2000);
  document.body.dataset.ready = '1';
})();
