// Every shipped pipeline (pipelines/*.json) through the whole loop, briefly, on real Kafka, Cassandra
// and registry: its bootstrap model trained from its own replay dataset, every worker running, and one
// monitoring window of the rows after the bootstrap replayed. The feature updates go first and the
// feature-writer is let catch up, so every served value is known before its event and the served
// features must equal the bootstrap's point-in-time rows exactly, keyed sets included. Then each event
// has one prediction, each label one join, the monitor one quality report, and nothing is dead-lettered.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { loadSpec } from '../../pipelines/spec.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan, pointInTimeRows } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import type { LabeledPrediction, Prediction, QualityReport } from '../../schemas/types.js';
import { isProgressReport } from '../../consumers/drift-monitor/monitor-core.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { groupCaughtUp, readToEnd, workersCaughtUp } from '../support/read-topic.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'pipelines');
const shipped = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

describe.each(shipped)('shipped pipeline %s', (file) => {
  const { spec, dir: specDir } = loadSpec(path.join(dir, file));
  const csv = readCsv(path.join(specDir, spec.replay!.csv));
  const rows = spec.monitoring.windowSize;
  const plan = buildReplayPlan(spec, csv, { offset: spec.trainer.bootstrapRows, limit: rows });
  const expected = new Map(pointInTimeRows(spec, plan).map((r) => [r.event.event_id, r]));

  let env: TestEnv;
  let pipeline: RunningPipeline | undefined;
  beforeAll(async () => {
    env = await createTestEnv(`shipped-${spec.name}`);
    const boot = await trainBootstrap(spec, specDir, createModelRegistry(env.cql));
    expect(boot.promoted).toBe(true);
    pipeline = await startPipeline(env.config, spec, env.logger, { env: { ...process.env, LOOPLINE_SCORER_RELOAD_INTERVAL_MS: '60000' }, runtime: { batchMax: 200 } });
  });
  afterAll(async () => {
    await pipeline?.stop();
    await env?.cleanup();
  });

  it('scores every event with exactly its point-in-time features, joins every label and reports one window', async () => {
    const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
    await producer.connect();
    const replayer = createReplayer({ producer, logger: env.logger });
    const group = (w: string) => `${env.names.prefix}loopline-${w}`;
    try {
      const features = plan.filter((a) => a.kind === 'feature');
      if (features.length > 0) {
        await replayer.run(features, { speed: 'max' });
        await waitFor('the feature-writer to apply every update', () => groupCaughtUp(env.admin, group('feature-writer'), env.names.physical('features.updates')), 120_000, 500);
      }
      await replayer.run(plan.filter((a) => a.kind !== 'feature'), { speed: 'max', eventsPerSecond: 500 });
    } finally {
      await producer.disconnect();
    }

    // Everything read to its end once every worker has consumed all its input.
    await waitFor('every worker to consume all its input', () => workersCaughtUp(env.kafka, env.admin, pipeline!.workers, env.names.prefix), 180_000, 500);
    const predictions: Prediction[] = [];
    for (const m of await readToEnd(env.kafka, env.admin, env.names.physical('predictions'))) {
      const d = await env.codec.decode('Prediction', m.value);
      if (d.ok) predictions.push(d.value);
    }
    expect(predictions).toHaveLength(rows);
    expect(new Set(predictions.map((p) => p.event_id))).toEqual(new Set(expected.keys()));
    for (const p of predictions) {
      const want = expected.get(p.event_id)!;
      expect(p.model_version).toBe(1);
      const served = Object.fromEntries(spec.model.features.map((f) => [f, p.features[f] ?? null]));
      expect(served, p.event_id).toEqual(Object.fromEntries(spec.model.features.map((f) => [f, want.values[f] ?? null])));
      if (spec.task === 'regression') expect(Number.isFinite(p.value)).toBe(true);
      else expect(spec.label.classes).toContain(p.label);
    }

    const labeled: LabeledPrediction[] = [];
    for (const m of await readToEnd(env.kafka, env.admin, env.names.physical('predictions.labeled'))) {
      const d = await env.codec.decode('LabeledPrediction', m.value);
      if (d.ok) labeled.push(d.value);
    }
    expect(labeled).toHaveLength(rows);
    for (const l of labeled) expect(l.label).toEqual(expected.get(l.prediction.event_id)!.label);

    const windows: QualityReport[] = [];
    const progress: QualityReport[] = [];
    for (const m of await readToEnd(env.kafka, env.admin, env.names.physical('monitor.reports'))) {
      const d = await env.codec.decodeAny(['QualityReport', 'DriftReport'] as const, m.value);
      expect(d.ok).toBe(true);
      const r = d.ok && d.record === 'QualityReport' ? (d.value as QualityReport) : null;
      if (r && isProgressReport(r.report_id)) progress.push(r);
      else if (r && r.variant === 'champion' && r.alarm === null) windows.push(r);
    }
    // The label progress the retrain trigger counts by: one report every windowSize / 10 served labels.
    const every = Math.max(1, Math.round(spec.monitoring.windowSize / 10));
    expect(progress.map((r) => r.metrics.labels_total)).toEqual(Array.from({ length: Math.floor(rows / every) }, (_, i) => (i + 1) * every));
    // Beside the realised window, a classifier's window is estimated before its labels (e0) and compared once they are in (e0/realised).
    const base = `${spec.name}/${spec.model.name}@1/champion`;
    const estimates = windows.filter((w) => /\/e\d+(\/realised)?$/.test(w.report_id));
    expect(estimates.map((w) => w.report_id)).toEqual(spec.task === 'regression' || !spec.monitoring.estimate ? [] : [`${base}/e0`, `${base}/e0/realised`]);
    windows.splice(0, windows.length, ...windows.filter((w) => !estimates.includes(w)));
    expect(windows.map((w) => w.report_id)).toEqual([`${base}/w0`]);
    const champion = windows[0]!;
    expect(champion.count).toBe(rows);
    expect(Number.isFinite(champion.metrics[spec.promotion.metric])).toBe(true);
    console.log(`[shipped] ${spec.name}: ${rows} events, window ${spec.promotion.metric} ${champion.metrics[spec.promotion.metric]!.toFixed(4)}`);

    for (const topic of ['events.client.dlq', 'features.updates.dlq', 'features.vectors.dlq', 'predictions.dlq', 'labels.ground-truth.dlq']) {
      const offsets = await env.admin.fetchTopicOffsets(env.names.physical(topic));
      expect(offsets.reduce((n, o) => n + Number(o.high), 0), topic).toBe(0);
    }
  }, 600_000);
});
