/**
 * The demo's report, measured from what the loop wrote, never assumed:
 * predictions read back from the topic and the prediction log and counted
 * against the replayed event ids, dead letters read from every dead-letter
 * topic, joined labels from predictions.labeled, retrains and promotions from
 * the registry, and quality recomputed from the joined labels. The static
 * baseline is the bootstrap model scoring the very feature values that were
 * served during the run, i.e. the same replay without any retraining.
 */
import fs from 'node:fs';
import path from 'node:path';
import type cassandra from 'cassandra-driver';
import type { Kafka } from 'kafkajs';
import { loadOnnxModel } from '../models/onnx-model.js';
import type { ModelRegistry } from '../models/registry.js';
import type { PipelineSpec } from '../pipelines/spec.js';
import type { Codec } from '../schemas/codec.js';
import type { LabeledPrediction, Prediction } from '../schemas/types.js';
import { TOPICS, type TopicNames } from '../streams/topics.js';

export interface DemoReport {
  pipeline: string;
  events: number;
  predictionsLogged: number;
  duplicates: number;
  lost: number;
  deadLettered: number;
  labelsSent: number;
  labelsJoined: number;
  labelsLate: number;
  retrains: number;
  promotions: number;
  rollbacks: number;
  champion: number | null;
  metric: { name: string; closedLoop: number | null; staticBaseline: number | null; rows: number };
  latencyMs: { p50: number | null; p99: number | null; max: number | null };
  eventsPerSecond: number | null;
  wallSeconds: number;
  timeline: Array<{ fromEvent: number; closedLoop: number; staticBaseline: number; version: number }>;
  promotionsAt: Array<{ event: number; version: number }>;
}

interface Read {
  value: Buffer | null;
  timestamp: number;
  partition: number;
}

/**
 * Reads whole topics (read_committed) until every partition is at its high
 * watermark (a transactional topic's last offset is a commit marker no
 * consumer is handed, hence the allowance of one) or nothing arrived for `idleMs`.
 */
export async function drainTopic(kafka: Kafka, topic: string | string[], idleMs = 3000): Promise<Read[]> {
  const topics = Array.isArray(topic) ? topic : [topic];
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<string, number>();
  for (const t of topics) for (const p of await admin.fetchTopicOffsets(t)) ends.set(`${t}/${p.partition}`, Number(p.high));
  await admin.disconnect();
  const position = new Map<string, number>();
  const done = () => [...ends].every(([k, high]) => high === 0 || (position.get(k) ?? -1) >= high - 2);
  const consumer = kafka.consumer({ groupId: `report-${process.hrtime.bigint()}`, maxBytes: 50 * 1024 * 1024 });
  const got: Read[] = [];
  let last = Date.now();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) got.push({ value: m.value, timestamp: Number(m.timestamp), partition: batch.partition });
        const lastMessage = batch.messages.at(-1);
        if (lastMessage) position.set(`${batch.topic}/${batch.partition}`, Number(lastMessage.offset));
        last = Date.now();
      },
    });
    if (ends.size > 0 && [...ends.values()].every((h) => h === 0)) return got;
    const started = Date.now();
    while (!done() && (Date.now() - last < idleMs || (got.length === 0 && Date.now() - started < idleMs * 3))) await new Promise((r) => setTimeout(r, 100));
    return got;
  } finally {
    await consumer.disconnect();
  }
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export interface ReportInput {
  spec: PipelineSpec;
  kafka: Kafka;
  codec: Codec;
  names: TopicNames;
  cql: cassandra.Client;
  registry: ModelRegistry;
  replayedIds: string[];
  labelsSent: number;
  bootstrapVersion: number;
  wallSeconds: number;
  progress: (m: string) => void;
}

export async function buildReport(r: ReportInput): Promise<DemoReport> {
  const { spec, kafka, codec, names, cql, registry, progress } = r;
  const replayed = new Set(r.replayedIds);

  progress('reading predictions back from the topic');
  const onTopic = await drainTopic(kafka, names.physical('predictions'));
  const preds: Array<{ p: Prediction; t: number }> = [];
  for (const m of onTopic) {
    const d = await codec.decode('Prediction', m.value);
    if (d.ok) preds.push({ p: d.value, t: m.timestamp });
  }
  const perEvent = new Map<string, number>();
  for (const { p } of preds) if (replayed.has(p.event_id)) perEvent.set(p.event_id, (perEvent.get(p.event_id) ?? 0) + 1);

  progress(`checking the prediction log for ${replayed.size} events`);
  const ids = [...replayed];
  const loggedPerEvent = new Map<string, number>();
  for (let i = 0; i < ids.length; i += 256) {
    const slice = ids.slice(i, i + 256);
    const counts = await Promise.all(
      slice.map(async (id) => {
        const rs = await cql.execute('SELECT variant FROM prediction_log WHERE event_id = ?', [id], { prepare: true });
        return rs.rows.filter((row) => row.get('variant') !== 'shadow').length;
      }),
    );
    slice.forEach((id, j) => loggedPerEvent.set(id, counts[j]!));
  }

  progress('counting dead letters');
  const deadLettered = (await drainTopic(kafka, TOPICS.filter((x) => x.name.endsWith('.dlq')).map((t) => names.physical(t.name)), 1000)).length;

  progress('reading joined labels');
  const labeled: LabeledPrediction[] = [];
  for (const m of await drainTopic(kafka, names.physical('predictions.labeled'))) {
    const d = await codec.decode('LabeledPrediction', m.value);
    if (d.ok) labeled.push(d.value);
  }
  const late = (await drainTopic(kafka, names.physical('labels.late'), 1000)).length;
  const served = labeled.filter((l) => l.prediction.variant !== 'shadow' && replayed.has(l.prediction.event_id));
  served.sort((a, b) => a.prediction.event_time - b.prediction.event_time);

  progress('scoring the served features with the bootstrap model for the static baseline');
  const v1 = await registry.get(spec.name, spec.model.name, r.bootstrapVersion);
  const model = await loadOnnxModel(v1.onnx, v1.spec);
  const baselineOut = await model.predict(served.map((l) => l.prediction.features));
  await model.close();
  const correct = served.map((l) => (l.prediction.label === String(l.label) ? 1 : 0));
  const baseCorrect = baselineOut.map((o, i) => (o.label === String(served[i]!.label) ? 1 : 0));
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

  const bucket = Math.max(500, Math.round(served.length / 40));
  const timeline: DemoReport['timeline'] = [];
  for (let i = 0; i < served.length; i += bucket) {
    timeline.push({
      fromEvent: i,
      closedLoop: mean(correct.slice(i, i + bucket))!,
      staticBaseline: mean(baseCorrect.slice(i, i + bucket))!,
      version: served[Math.min(served.length - 1, i + bucket - 1)]!.prediction.model_version,
    });
  }
  const promotionsAt: DemoReport['promotionsAt'] = [];
  served.forEach((l, i) => {
    const prev = served[i - 1]?.prediction.model_version;
    if (prev !== undefined && prev !== l.prediction.model_version) promotionsAt.push({ event: i, version: l.prediction.model_version });
  });

  const events = await registry.history(spec.name, spec.model.name, 1000);
  const retrains = (await cql.execute('SELECT request_id FROM retrain_requests WHERE pipeline = ?', [spec.name], { prepare: true })).rowLength;
  const latencies = preds.filter(({ p }) => replayed.has(p.event_id)).map(({ p, t }) => t - p.produced_at).sort((a, b) => a - b);
  const firstProduced = Math.min(...preds.map(({ p }) => p.produced_at));
  const lastOut = Math.max(...preds.map(({ t }) => t));

  let lost = 0;
  let duplicates = 0;
  let logged = 0;
  for (const id of replayed) {
    const nTopic = perEvent.get(id) ?? 0;
    const nLog = loggedPerEvent.get(id) ?? 0;
    logged += Math.min(nLog, 1);
    if (nTopic === 0 || nLog === 0) lost++;
    duplicates += Math.max(0, nTopic - 1) + Math.max(0, nLog - 1);
  }
  // An event can be lost only if it was not dead-lettered: the replayed ids are all valid, so none should be.
  const serving = await registry.serving(spec.name, spec.model.name);
  return {
    pipeline: spec.name,
    events: replayed.size,
    predictionsLogged: logged,
    duplicates,
    lost,
    deadLettered,
    labelsSent: r.labelsSent,
    labelsJoined: new Set(served.map((l) => l.prediction.event_id)).size,
    labelsLate: late,
    retrains,
    promotions: events.filter((e) => e.action === 'PROMOTE' && e.actor !== 'bootstrap').length,
    rollbacks: events.filter((e) => e.action === 'ROLLBACK').length,
    champion: serving.champion,
    metric: { name: 'accuracy', closedLoop: mean(correct), staticBaseline: mean(baseCorrect), rows: served.length },
    latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max: latencies.at(-1) ?? null },
    eventsPerSecond: preds.length ? replayed.size / ((lastOut - firstProduced) / 1000) : null,
    wallSeconds: r.wallSeconds,
    timeline,
    promotionsAt,
  };
}

/** A small text chart of accuracy over the replay: closed loop (█) against the static baseline (·). */
export function textChart(report: DemoReport): string {
  const rows = report.timeline;
  if (rows.length === 0) return '(no labeled predictions to chart)';
  const lo = Math.min(...rows.flatMap((r) => [r.closedLoop, r.staticBaseline]));
  const hi = Math.max(...rows.flatMap((r) => [r.closedLoop, r.staticBaseline]));
  const width = 40;
  const pos = (v: number) => Math.round(((v - lo) / Math.max(1e-9, hi - lo)) * width);
  const lines = [`accuracy per ${rows[1] ? rows[1].fromEvent - rows[0]!.fromEvent : rows.length} labeled events   ${lo.toFixed(2)}${' '.repeat(width - 4)}${hi.toFixed(2)}`];
  for (const r of rows) {
    const line = Array.from({ length: width + 1 }, () => ' ');
    line[pos(r.staticBaseline)] = '·';
    for (let i = 0; i <= pos(r.closedLoop); i++) if (line[i] === ' ') line[i] = i === pos(r.closedLoop) ? '█' : '─';
    lines.push(`${String(r.fromEvent).padStart(7)}  v${String(r.version).padEnd(3)} ${line.join('')}  ${r.closedLoop.toFixed(3)} vs ${r.staticBaseline.toFixed(3)}`);
  }
  return lines.join('\n');
}

/** The same chart as an HTML page with an inline SVG, for people who would rather look than read. */
export function writeHtmlReport(report: DemoReport, file: string): void {
  const w = 900;
  const h = 320;
  const pad = 40;
  const rows = report.timeline;
  const ys = rows.flatMap((r) => [r.closedLoop, r.staticBaseline]);
  const lo = Math.min(...ys, 0.5);
  const hi = Math.max(...ys, 0.9);
  const x = (i: number) => pad + (i / Math.max(1, rows.length - 1)) * (w - 2 * pad);
  const y = (v: number) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);
  const line = (key: 'closedLoop' | 'staticBaseline') => rows.map((r, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(r[key]).toFixed(1)}`).join(' ');
  const last = rows.at(-1)?.fromEvent ?? 1;
  const markers = report.promotionsAt
    .map((p) => {
      const px = pad + (p.event / Math.max(1, last)) * (w - 2 * pad);
      return `<line x1="${px}" x2="${px}" y1="${pad}" y2="${h - pad}" stroke="#999" stroke-dasharray="4"/><text x="${px + 3}" y="${pad + 12}" font-size="11">v${p.version}</text>`;
    })
    .join('');
  const html = `<!doctype html><meta charset="utf-8"><title>Loopline demo: ${report.pipeline}</title>
<body style="font-family:system-ui,sans-serif;max-width:960px;margin:2em auto">
<h1>Loopline demo: ${report.pipeline}</h1>
<p>${report.events} events replayed; ${report.predictionsLogged} predictions logged, ${report.lost} lost, ${report.duplicates} duplicates, ${report.deadLettered} dead letters;
${report.labelsJoined} labels joined; ${report.retrains} retrains, ${report.promotions} promotions, ${report.rollbacks} rollbacks.</p>
<p>Prequential accuracy: closed loop <b>${report.metric.closedLoop?.toFixed(4)}</b>, bootstrap model alone ${report.metric.staticBaseline?.toFixed(4)}.
Latency event → logged prediction p50 ${report.latencyMs.p50} ms, p99 ${report.latencyMs.p99} ms.</p>
<svg width="${w}" height="${h}" style="border:1px solid #ddd">
<path d="${line('staticBaseline')}" fill="none" stroke="#bbb" stroke-width="2"/>
<path d="${line('closedLoop')}" fill="none" stroke="#1565c0" stroke-width="2.5"/>
${markers}
<text x="${pad}" y="${h - 10}" font-size="12">labeled events →</text>
<text x="4" y="${y(hi)}" font-size="11">${hi.toFixed(2)}</text><text x="4" y="${y(lo)}" font-size="11">${lo.toFixed(2)}</text>
<text x="${w - 260}" y="${pad - 10}" font-size="12"><tspan fill="#1565c0">━ closed loop</tspan>  <tspan fill="#999">━ bootstrap model alone</tspan></text>
</svg>
<pre>${JSON.stringify({ ...report, timeline: undefined }, null, 2)}</pre></body>`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, html);
}
