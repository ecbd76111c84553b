// lockstep live dashboard: one WebSocket to the coordinator, uPlot charts, a worker
// table and the latest images. Reconnects with exponential backoff, so the page
// survives a coordinator restart; each (re)connect starts from the server's snapshot.
(function () {
  'use strict';

  var MAX_POINTS = 8000; // the page thins older points past this, like the server does
  var WATCHDOG_MS = 45000; // the server pings every 15 s; silence this long means a dead link
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 10000;

  var $ = function (id) { return document.getElementById(id); };

  // ---- data ---------------------------------------------------------------
  var data = { step: [], total: [], reconstruction: [], kl: [], sps: [], sec: [], t: [] };
  var state = {};
  var workers = [];
  var hasKl = false;
  var stats = { messages: 0, connects: 0, reconnects: 0, lastMessageAt: 0 };

  function resetData() {
    data = { step: [], total: [], reconstruction: [], kl: [], sps: [], sec: [], t: [] };
    hasKl = false;
  }

  function num(x) { return typeof x === 'number' && isFinite(x) ? x : null; }

  function pushPoint(p) {
    var n = data.step.length;
    if (n > 0 && p.step <= data.step[n - 1]) return; // already have it (snapshot overlap)
    data.step.push(p.step);
    data.total.push(num(p.loss && p.loss.total));
    data.reconstruction.push(num(p.loss && p.loss.reconstruction));
    var kl = p.loss ? num(p.loss.kl) : null;
    if (kl !== null) hasKl = true;
    data.kl.push(kl);
    data.sps.push(num(p.samplesPerSecond));
    data.sec.push(num(p.stepSeconds));
    data.t.push(typeof p.t === 'number' ? p.t : Date.now());
    if (data.step.length > MAX_POINTS) thin();
  }

  function thin() {
    var half = Math.floor(data.step.length / 2);
    Object.keys(data).forEach(function (k) {
      var arr = data[k];
      var older = arr.slice(0, half).filter(function (_, i) { return i === 0 || i % 2 === 1; });
      data[k] = older.concat(arr.slice(half));
    });
  }

  // ---- charts -------------------------------------------------------------
  var lossChart = null;
  var spsChart = null;
  var logScale = false;

  function chartWidth(el) { return Math.max(260, el.clientWidth); }

  // Steps are whole numbers: no 25.5 ticks.
  var STEP_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 25000, 50000, 100000, 200000, 500000, 1000000];

  function fmtLoss(v) {
    if (v == null) return '-';
    var a = Math.abs(v);
    return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(2) : a >= 1 ? v.toFixed(3) : v.toPrecision(3);
  }

  function makeLossChart() {
    var el = $('loss-chart');
    el.textContent = '';
    var opts = {
      width: chartWidth(el),
      height: 300,
      scales: { x: { time: false }, y: logScale ? { distr: 3 } : { auto: true } },
      axes: [
        { label: 'step', stroke: '#6b7280', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#e5e7eb' }, incrs: STEP_INCRS },
        { stroke: '#6b7280', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#e5e7eb' }, size: 60 },
      ],
      series: [
        { label: 'step' },
        { label: 'total', stroke: '#2563eb', width: 2, value: function (u, v) { return fmtLoss(v); } },
        { label: 'reconstruction', stroke: '#16a34a', width: 1.5, value: function (u, v) { return fmtLoss(v); } },
        { label: 'kl', stroke: '#ea580c', width: 1.5, show: hasKl, value: function (u, v) { return fmtLoss(v); } },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      hooks: { ready: [showLatestInLegend] },
    };
    lossChart = new uPlot(opts, lossData(), el);
    hookLegend(lossChart);
  }

  function lossData() {
    if (!logScale) return [data.step, data.total, data.reconstruction, data.kl];
    // A log axis cannot show zero or negative values (kl starts at ~0).
    var pos = function (arr) { return arr.map(function (v) { return v != null && v > 0 ? v : null; }); };
    return [data.step, pos(data.total), pos(data.reconstruction), pos(data.kl)];
  }

  function makeSpsChart() {
    var el = $('sps-chart');
    el.textContent = '';
    spsChart = new uPlot({
      width: chartWidth(el),
      height: 300,
      scales: { x: { time: false }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.15 : 1]; } } },
      axes: [
        { label: 'step', stroke: '#6b7280', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#e5e7eb' }, incrs: STEP_INCRS },
        { stroke: '#6b7280', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#e5e7eb' }, size: 55 },
      ],
      series: [
        { label: 'step' },
        { label: 'samples/s', stroke: '#7c3aed', width: 1.5, fill: 'rgba(124, 58, 237, 0.08)', value: function (u, v) { return v == null ? '-' : v.toFixed(0); } },
      ],
      legend: { live: true },
      hooks: { ready: [showLatestInLegend] },
    }, [data.step, data.sps], el);
    hookLegend(spsChart);
  }

  var drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    var run = function () { drawPending = false; draw(); };
    // rAF stops in background tabs; a timer keeps the data attributes current there too.
    if (document.hidden) setTimeout(run, 250); else requestAnimationFrame(run);
  }

  function draw() {
    if (typeof uPlot === 'undefined') return;
    if (lossChart === null) makeLossChart();
    if (spsChart === null) makeSpsChart();
    if (lossChart.series[3] && lossChart.series[3].show !== hasKl) lossChart.setSeries(3, { show: hasKl });
    lossChart.setData(lossData());
    spsChart.setData([data.step, data.sps]);
    showLatestInLegend(lossChart);
    showLatestInLegend(spsChart);
    $('loss-chart').dataset.points = String(data.step.length);
    $('sps-chart').dataset.points = String(data.sps.filter(function (v) { return v != null; }).length);
    renderStats();
  }

  // Without a hover, the legend shows the newest point instead of dashes.
  function showLatestInLegend(u) {
    if (u.cursor.idx != null && u.cursor.left != null && u.cursor.left >= 0) return;
    var n = u.data[0].length;
    if (n > 0) u.setLegend({ idx: n - 1 });
  }

  function hookLegend(u) {
    u.over.addEventListener('mouseleave', function () { setTimeout(function () { showLatestInLegend(u); }, 0); });
  }

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      if (lossChart) lossChart.setSize({ width: chartWidth($('loss-chart')), height: 300 });
      if (spsChart) spsChart.setSize({ width: chartWidth($('sps-chart')), height: 300 });
    }, 100);
  });

  $('log-scale').addEventListener('change', function (e) {
    logScale = e.target.checked;
    if (lossChart) { lossChart.destroy(); lossChart = null; }
    scheduleDraw();
  });

  // ---- header, tiles ------------------------------------------------------
  function fmtDuration(sec) {
    if (sec == null || !isFinite(sec) || sec < 0) return '-';
    sec = Math.round(sec);
    var h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    if (h > 0) return h + 'h ' + (m < 10 ? '0' : '') + m + 'm';
    if (m > 0) return m + 'm ' + (s < 10 ? '0' : '') + s + 's';
    return s + 's';
  }

  function setText(id, text) {
    var el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  function etaSeconds() {
    if (typeof state.etaSeconds === 'number') return state.etaSeconds;
    var n = data.step.length;
    if (!state.totalSteps || n < 1) return null;
    var remaining = Math.max(0, state.totalSteps - data.step[n - 1]);
    var k = Math.max(0, n - 20); // recent rate, not the whole run's
    var recent = data.sec.slice(k).filter(function (v) { return v != null; });
    if (recent.length > 0) {
      return (remaining * recent.reduce(function (a, b) { return a + b; }, 0)) / recent.length;
    }
    if (n < 2) return null;
    var steps = data.step[n - 1] - data.step[k];
    var ms = data.t[n - 1] - data.t[k];
    if (steps <= 0 || ms <= 0) return null;
    return (remaining * ms) / steps / 1000;
  }

  function renderStats() {
    var n = data.step.length;
    var step = typeof state.step === 'number' ? state.step : n > 0 ? data.step[n - 1] : null;
    setText('stat-step', step == null ? '-' : String(step));
    setText('stat-total', state.totalSteps ? '/ ' + state.totalSteps : '');
    $('stat-progress').style.width = step != null && state.totalSteps ? Math.min(100, (100 * step) / state.totalSteps).toFixed(1) + '%' : '0';
    // Epochs are 0-based on the wire (like lockstep_epoch); people count from 1.
    var epoch = typeof state.epoch === 'number' ? state.epoch + 1 : null;
    setText('stat-epoch', epoch == null ? '-' : state.totalEpochs ? epoch + ' / ' + state.totalEpochs : String(epoch));
    setText('stat-loss', n > 0 ? fmtLoss(data.total[n - 1]) : '-');
    var sps = typeof state.samplesPerSecond === 'number' ? state.samplesPerSecond : n > 0 ? data.sps[n - 1] : null;
    setText('stat-sps', sps == null ? '-' : sps.toFixed(0));
    var live = typeof state.workersLive === 'number' ? state.workersLive : workers.filter(function (w) { return w.status !== 'lost'; }).length;
    setText('stat-workers', state.workersWanted ? live + ' / ' + state.workersWanted : String(live));
    var elapsed = state.startedAt ? (Date.now() - state.startedAt) / 1000 : null;
    setText('stat-time', fmtDuration(elapsed) + ' / ' + fmtDuration(etaSeconds()));
  }

  function renderHeader() {
    setText('chip-job', 'job ' + (state.job || '-'));
    setText('chip-model', (state.model || '-') + (state.arch ? ' / ' + state.arch : ''));
    setText('chip-backend', (state.backend || 'backend -') + (state.device ? ' on ' + state.device : ''));
    setText('chip-term', 'term ' + (state.term == null ? '-' : state.term));
    var st = $('run-status');
    var status = state.status || 'starting';
    st.dataset.status = status;
    setText('run-status', status);
    var msg = $('run-message');
    msg.hidden = !state.message;
    if (state.message) setText('run-message', state.message);
    document.title = 'lockstep ' + (state.job || '') + (typeof state.step === 'number' ? ' - step ' + state.step : '');
  }

  // Elapsed time and "last seen" tick between messages.
  setInterval(function () { renderStats(); renderLastSeen(); }, 1000);

  // ---- workers ------------------------------------------------------------
  function pillClass(status) {
    switch (status) {
      case 'idle': case 'busy': case 'live': case 'ready': return 'ok';
      case 'joining': case 'paused': case 'stopping': case 'straggler': return 'warn';
      case 'lost': case 'dead': case 'failed': return 'bad';
      default: return '';
    }
  }

  function fmtSeconds(s) {
    if (typeof s !== 'number' || !isFinite(s)) return '-';
    return s < 1 ? (s * 1000).toFixed(0) + ' ms' : s.toFixed(2) + ' s';
  }

  function fmtAgo(t) {
    if (typeof t !== 'number') return '-';
    var s = (Date.now() - t) / 1000;
    return s < 2 ? 'just now' : fmtDuration(s) + ' ago';
  }

  function renderLastSeen() {
    var cells = document.querySelectorAll('#workers-body td.last-seen');
    for (var i = 0; i < cells.length; i++) {
      var t = cells[i].dataset.t;
      var text = t ? fmtAgo(Number(t)) : '-';
      if (cells[i].textContent !== text) cells[i].textContent = text;
    }
  }

  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function renderWorkers() {
    var body = $('workers-body');
    body.textContent = '';
    if (workers.length === 0) {
      var tr0 = document.createElement('tr');
      tr0.className = 'empty';
      var td0 = cell(tr0, 'no workers yet');
      td0.colSpan = 9;
      body.appendChild(tr0);
    }
    var sorted = workers.slice().sort(function (a, b) { return String(a.id).localeCompare(String(b.id), undefined, { numeric: true }); });
    sorted.forEach(function (w) {
      var tr = document.createElement('tr');
      tr.dataset.workerId = w.id;
      cell(tr, w.id, 'id');
      cell(tr, w.host || '-');
      cell(tr, w.backend || '-');
      cell(tr, w.device || '-');
      var td = document.createElement('td');
      var pill = document.createElement('span');
      pill.className = 'pill ' + pillClass(w.status);
      pill.textContent = w.status || '-';
      td.appendChild(pill);
      tr.appendChild(td);
      cell(tr, fmtSeconds(w.lastPartSeconds), 'num');
      cell(tr, typeof w.partsDone === 'number' ? String(w.partsDone) : '-', 'num');
      cell(tr, typeof w.failures === 'number' ? String(w.failures) : '-', 'num');
      var seen = cell(tr, fmtAgo(w.lastSeen), 'num last-seen');
      seen.dataset.t = typeof w.lastSeen === 'number' ? String(w.lastSeen) : '';
      body.appendChild(tr);
    });
    setText('workers-hint', workers.length === 1 ? '1 worker' : workers.length + ' workers');
  }

  // ---- images -------------------------------------------------------------
  var IMAGE_IDS = { inputs: 'img-inputs', reconstructions: 'img-reconstructions', samples: 'img-samples', manifold: 'img-manifold' };
  Object.keys(IMAGE_IDS).forEach(function (k) {
    var img = $(IMAGE_IDS[k]);
    img.addEventListener('load', function () {
      // Integer upscaling keeps pixels crisp; small grids are blown up to ~360 px.
      var f = Math.max(1, Math.floor(360 / Math.max(1, img.naturalWidth)));
      img.style.width = img.naturalWidth * f + 'px';
      img.dataset.loaded = String(Number(img.dataset.loaded || '0') + 1);
      img.hidden = false;
    });
  });

  function clearImages() {
    Object.keys(IMAGE_IDS).forEach(function (k) {
      var img = $(IMAGE_IDS[k]);
      img.hidden = true;
      img.removeAttribute('src');
    });
    $('manifold-figure').hidden = true;
    setText('images-hint', '');
  }

  function renderImages(images) {
    if (!images) return;
    Object.keys(IMAGE_IDS).forEach(function (k) {
      var src = images[k];
      if (typeof src !== 'string' || src.indexOf('data:image/') !== 0) return;
      var img = $(IMAGE_IDS[k]);
      if (img.getAttribute('src') !== src) img.src = src;
    });
    $('manifold-figure').hidden = typeof images.manifold !== 'string';
    // Without separate inputs, the reconstructions image is itself a comparison grid
    // (shared/images/png.ts comparisonPng: each input row above its reconstructions).
    var separate = typeof images.inputs === 'string';
    $('inputs-figure').hidden = !separate;
    $('inputs-arrow').hidden = !separate;
    setText('reconstructions-caption', separate ? 'Reconstructions' : 'Inputs (rows 1, 3, ...) above their reconstructions');
    setText('samples-caption', images.caption || 'Fresh samples from the decoder');
    setText('images-hint', typeof images.step === 'number' ? 'at step ' + images.step : '');
  }

  // ---- connection ---------------------------------------------------------
  var ws = null;
  var attempt = 0;
  var retryTimer = null;
  var watchdog = null;
  var token = new URLSearchParams(location.search).get('token');

  function setConnection(kind, text) {
    document.body.dataset.connection = kind;
    setText('conn-text', text);
  }

  function wsUrl() {
    var u = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + location.pathname.replace(/[^/]*$/, '') + 'ws';
    return token ? u + '?token=' + encodeURIComponent(token) : u;
  }

  function armWatchdog() {
    clearTimeout(watchdog);
    watchdog = setTimeout(function () { if (ws) ws.close(); }, WATCHDOG_MS);
  }

  function connect() {
    clearTimeout(retryTimer);
    setConnection('connecting', attempt === 0 ? 'connecting' : 'reconnecting');
    var sock;
    try {
      sock = new WebSocket(wsUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = function () {
      if (stats.connects > 0) stats.reconnects++;
      stats.connects++;
      attempt = 0;
      setConnection('open', 'live');
      armWatchdog();
    };
    sock.onmessage = function (ev) {
      stats.messages++;
      stats.lastMessageAt = Date.now();
      armWatchdog();
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      handle(msg);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      clearTimeout(watchdog);
      scheduleReconnect();
    };
    sock.onerror = function () { /* onclose follows */ };
  }

  function scheduleReconnect() {
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempt));
    var delay = Math.round(base * (0.75 + Math.random() * 0.5));
    attempt++;
    setConnection('closed', 'reconnecting in ' + Math.max(1, Math.round(delay / 1000)) + ' s');
    retryTimer = setTimeout(connect, delay);
  }

  function handle(msg) {
    switch (msg && msg.type) {
      case 'hello':
        // A new coordinator (or this one after a network blip): its snapshot is the truth.
        resetData();
        state = msg.state || {};
        (msg.steps || []).forEach(pushPoint);
        workers = msg.workers || [];
        renderHeader();
        renderWorkers();
        // Images of a previous coordinator would be stale: show what this one has (maybe nothing yet).
        clearImages();
        renderImages(msg.images);
        scheduleDraw();
        break;
      case 'steps':
        (msg.points || []).forEach(pushPoint);
        scheduleDraw();
        break;
      case 'state':
        state = Object.assign({}, state, msg.state || {});
        renderHeader();
        renderStats();
        break;
      case 'workers':
        workers = msg.workers || [];
        renderWorkers();
        renderStats();
        break;
      case 'images':
        renderImages(msg.images);
        break;
      default:
        break; // ping and anything newer than this page
    }
  }

  // For tests and curious users: window.lockstepDashboard.points() etc.
  window.lockstepDashboard = {
    points: function () { return data.step.length; },
    connected: function () { return ws !== null && ws.readyState === WebSocket.OPEN; },
    stats: function () { return Object.assign({}, stats); },
    workers: function () { return workers.slice(); },
  };

  if (typeof uPlot === 'undefined') setText('run-message', 'chart library failed to load');
  renderHeader();
  connect();
})();
