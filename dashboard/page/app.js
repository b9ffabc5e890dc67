// The Loopline dashboard page: polls the server's JSON endpoints and draws them with Chart.js.
// window.looplineCharts holds every chart (tests read their data arrays).
/* global Chart */
'use strict';

const matrix = window['chartjs-chart-matrix'];
if (matrix && matrix.MatrixController) Chart.register(matrix.MatrixController, matrix.MatrixElement);

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const color = (i) => PALETTE[i % PALETTE.length];
const eventTime = (ms) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
const wallTime = (ms) => new Date(ms).toLocaleTimeString();
const esc = (s) => String(s ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const fmt = (v, d = 3) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '—');

const common = { animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true };
const timeAxis = (format, title) => ({ type: 'linear', title: { display: true, text: title }, ticks: { maxTicksLimit: 6, callback: (v) => format(v) } });

function chart(id, config) {
  return new Chart(document.getElementById(id), config);
}

const charts = {
  quality: chart('quality', {
    type: 'line',
    data: { datasets: [] },
    options: {
      ...common,
      scales: { x: timeAxis(eventTime, 'event time (window end)'), y: { title: { display: true, text: 'metric' } } },
      plugins: { tooltip: { callbacks: { title: (items) => eventTime(items[0].parsed.x), label: (item) => item.raw.label || `${item.dataset.label}: ${fmt(item.parsed.y, 4)}` } } },
    },
  }),
  drift: chart('drift', {
    type: 'matrix',
    data: { datasets: [{ label: 'PSI', data: [], borderWidth: 1, borderColor: '#fff', backgroundColor: () => '#ccc' }] },
    options: {
      ...common,
      plugins: { legend: { display: false }, tooltip: { callbacks: { title: () => '', label: (item) => `${item.raw.y} window ${item.raw.x}: ${item.raw.test} ${fmt(item.raw.v)}${item.raw.drifted ? ' (drifted)' : ''}` } } },
      scales: {
        x: { type: 'linear', offset: false, title: { display: true, text: 'window (oldest → newest)' }, ticks: { stepSize: 1, callback: (v) => (Number.isInteger(v) ? v : '') }, grid: { display: false } },
        y: { type: 'category', labels: [], offset: true, grid: { display: false } },
      },
    },
  }),
  labels: chart('labels', {
    type: 'line',
    data: { datasets: [
      { label: 'label coverage (joined / served)', data: [], yAxisID: 'y', borderColor: color(0), pointRadius: 0 },
      { label: 'label delay p50 (h, event time)', data: [], yAxisID: 'y1', borderColor: color(1), pointRadius: 0 },
      { label: 'label delay mean (h)', data: [], yAxisID: 'y1', borderColor: color(3), borderDash: [4, 3], pointRadius: 0 },
    ] },
    options: { ...common, scales: { x: timeAxis(wallTime, 'wall-clock time'), y: { min: 0, max: 1, title: { display: true, text: 'coverage' } }, y1: { position: 'right', min: 0, title: { display: true, text: 'hours' }, grid: { drawOnChartArea: false } } } },
  }),
  throughput: chart('throughput', {
    type: 'line',
    data: { datasets: [] },
    options: { ...common, scales: { x: timeAxis(wallTime, 'wall-clock time'), y: { min: 0, title: { display: true, text: 'records/s' } } } },
  }),
  lag: chart('lag', {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'lag (end offset − committed)', data: [], backgroundColor: color(3) }] },
    options: { ...common, parsing: true, indexAxis: 'y', scales: { x: { min: 0, title: { display: true, text: 'records' } } } },
  }),
  deadLetters: chart('deadLetters', {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'dead letters', data: [], backgroundColor: color(1) }] },
    options: { ...common, parsing: true, indexAxis: 'y', scales: { x: { min: 0, ticks: { precision: 0 } } } },
  }),
};
window.looplineCharts = charts;
window.looplineUpdates = 0;

async function get(path) {
  const res = await fetch(path, { cache: 'no-store' });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `${path}: HTTP ${res.status}`);
  return body;
}

const MARKER_STYLE = { promote: ['triangle', '#0b6b3a', 0], rollback: ['triangle', '#b3261e', 180], alarm: ['crossRot', '#ff7f0e', 0] };

function drawQuality(q) {
  const datasets = q.series.map((s, i) => ({
    label: s.label, data: s.points, borderColor: color(i), backgroundColor: color(i), pointRadius: 2, borderWidth: s.variant === 'champion' ? 2 : 1,
    borderDash: s.variant === 'shadow' ? [2, 2] : [],
  }));
  q.baselines.forEach((b, i) => datasets.push({ label: b.name, data: b.points, borderColor: color(q.series.length + i + 2), borderDash: [6, 4], pointRadius: 0, borderWidth: 2 }));
  for (const kind of ['promote', 'rollback', 'alarm']) {
    const pts = q.markers.filter((m) => m.kind === kind);
    if (pts.length === 0) continue;
    const [style, c, rotation] = MARKER_STYLE[kind];
    datasets.push({ type: 'scatter', label: kind === 'promote' ? 'promotion' : kind, data: pts, pointStyle: style, rotation, pointRadius: 8, borderColor: c, backgroundColor: c, showLine: false });
  }
  charts.quality.data.datasets = datasets;
  charts.quality.options.scales.y.title.text = q.metric;
  charts.quality.update();
}

function psiColor(v, threshold) {
  const t = Math.max(0, Math.min(1, v / (threshold * 2)));
  const r = Math.round(255 * Math.min(1, 2 * t));
  const g = Math.round(200 * Math.min(1, 2 * (1 - t)));
  return `rgba(${r},${g},60,0.85)`;
}

function drawDrift(d) {
  const ds = charts.drift.data.datasets[0];
  ds.data = d.cells;
  ds.backgroundColor = (ctx) => (ctx.raw ? psiColor(ctx.raw.v, d.threshold) : '#ccc');
  ds.width = ({ chart }) => (chart.chartArea || {}).width / Math.max(1, d.windows.length) - 1;
  ds.height = ({ chart }) => (chart.chartArea || {}).height / Math.max(1, d.features.length) - 1;
  charts.drift.options.scales.y.labels = d.features;
  charts.drift.options.scales.x.min = -0.5;
  charts.drift.options.scales.x.max = Math.max(0.5, d.windows.length - 0.5);
  charts.drift.update();
  document.getElementById('drift-note').textContent = d.windows.length
    ? `${d.windows.length} windows, ${eventTime(d.windows[0])} → ${eventTime(d.windows.at(-1))}; green 0, red ≥ ${2 * d.threshold} (drift threshold ${d.threshold})`
    : 'no drift reports yet';
}

function drawLabels(l) {
  const [cov, p50, mean] = charts.labels.data.datasets;
  cov.data = l.coverage;
  p50.data = l.delayP50Hours;
  mean.data = l.delayMeanHours;
  charts.labels.update();
  document.getElementById('labels-note').textContent = l.source ? `from ${l.source}: ${l.joined} served predictions joined with their label, ${l.late} labels late (past the horizon)` : 'no metrics source: start the dashboard with --metrics-url to chart label coverage and delay';
}

function drawFlow(f) {
  charts.throughput.data.datasets = f.groups.map((g, i) => ({ label: g.worker, data: g.rate, borderColor: color(i), backgroundColor: color(i), pointRadius: 0, borderWidth: 1.5 }));
  charts.throughput.update();
  charts.lag.data.labels = f.partitions.map((p) => p.label);
  charts.lag.data.datasets[0].data = f.partitions.map((p) => p.lag);
  charts.lag.update();
}

function drawDeadLetters(d) {
  charts.deadLetters.data.labels = d.byReason.map((r) => `${r.dlqTopic} ${r.code}`);
  charts.deadLetters.data.datasets[0].data = d.byReason.map((r) => r.count);
  charts.deadLetters.update();
  const latest = d.recent[0];
  document.getElementById('dlq-note').textContent = `${d.total} dead letters` + (latest ? `; newest: ${latest.dlqTopic} ${latest.partition}/${latest.offset} ${latest.code}: ${latest.message.slice(0, 160)}` : '');
}

function drawRegistry(r) {
  const rows = r.versions.map((v) => `<tr><td>v${v.version}</td><td>${esc(v.status)}${v.role ? ` <span class="tag">← ${esc(v.role)}</span>` : ''}</td><td>${v.parent ? `v${v.parent}` : '—'}</td><td>${esc(v.trainer)}</td><td>${v.trainingRows}</td>`
    + `<td>${v.trainingStart ? `${eventTime(v.trainingStart)} → ${eventTime(v.trainingEnd)}` : '—'}</td><td>${Object.entries(v.metrics).map(([k, x]) => `${esc(k)} ${fmt(x)}`).join('<br>')}</td><td class="verdict">${esc(v.verdict ?? '')}</td></tr>`);
  document.getElementById('registry').innerHTML = `<table id="registry-table"><tr><th>version</th><th>status</th><th>parent</th><th>trainer</th><th>rows</th><th>training window (event time)</th><th>training metrics</th><th>verdict</th></tr>${rows.join('')}</table>`;
  const hist = r.history.map((h) => `<tr><td>${esc(new Date(h.at).toISOString().replace('T', ' ').slice(0, 19))}</td><td>${esc(h.action)}</td><td>v${h.version}</td><td>${h.previous ? `v${h.previous}` : '—'}</td><td>${esc(h.actor)}</td><td class="verdict">${esc(h.reason)}</td></tr>`);
  document.getElementById('history').innerHTML = `<table id="history-table"><tr><th>at</th><th>action</th><th>version</th><th>previous</th><th>actor</th><th>reason</th></tr>${hist.join('')}</table>`;
}

const PANELS = [
  ['/api/quality', drawQuality, 'quality'],
  ['/api/drift', drawDrift, 'drift'],
  ['/api/labels', drawLabels, 'labels'],
  ['/api/flow', drawFlow, 'lag'],
  ['/api/dead-letters', drawDeadLetters, 'deadLetters'],
  ['/api/registry', drawRegistry, 'registry'],
];

function showError(id, err) {
  const section = document.getElementById(id).closest('section');
  let el = section.querySelector('.error');
  if (!el) {
    el = document.createElement('p');
    el.className = 'error';
    section.appendChild(el);
  }
  el.textContent = err ? String(err.message || err) : '';
}

async function poll() {
  try {
    const o = await get('/api/overview');
    const s = o.serving;
    document.getElementById('overview').textContent = `${o.pipeline} / ${o.model} · prefix ${o.topicPrefix || '(none)'} · keyspace ${o.keyspace}`
      + (s ? ` · champion v${s.champion ?? '—'}${s.shadow ? `, shadow v${s.shadow}` : ''}${s.ab ? `, A/B v${s.ab} at ${s.abShare}` : ''}` : '');
  } catch (err) {
    document.getElementById('overview').textContent = `overview: ${err.message}`;
  }
  await Promise.all(PANELS.map(async ([path, draw, id]) => {
    try {
      draw(await get(path));
      showError(id, null);
    } catch (err) {
      showError(id, err);
    }
  }));
  window.looplineUpdates++;
  document.getElementById('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  setTimeout(poll, 2000);
}
poll();
