// The drift monitor on the in-memory harness, on predictions of a real Elec2
// model joined with their true labels: tumbling windows per model version and
// variant become QualityReports (and DriftReports against the version's
// training baseline from the memory registry) on monitor.reports and in the
// report store; a rising error raises an alarm report at once; records it
// cannot use are dead-lettered; other pipelines' records are ignored; a crash
// after a chunk re-emits exactly what the first attempt emitted.
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadOnnxModel } from '../../models/onnx-model.js';
import type { TrainedModel } from '../../models/trainer.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { DriftReport, LabeledPrediction, Prediction, QualityReport } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2, elec2Rows, registerChampion, registerModel, trainOn, vectorOf, type PointInTimeRow } from '../../test/support/elec2.js';
import { cleanAndCrashed } from '../../test/support/flows.js';
import { toPrediction } from '../scorer/scorer.js';
import { DRIFT_MONITOR, driftMonitor } from './index.js';
import { isProgressReport } from './monitor-core.js';

const WINDOW = 50;
const spec: PipelineSpec = { ...elec2, monitoring: { ...elec2.monitoring, windowSize: WINDOW } };
const SCOPE = `${spec.name}/${spec.model.name}`;
let model: TrainedModel;
let rows: PointInTimeRow[];
/** v1's predictions of the rows after its training window, labeled with the truth. */
let labeled: LabeledPrediction[];

async function predict(m: TrainedModel, rs: readonly PointInTimeRow[], version: number, variant: string): Promise<LabeledPrediction[]> {
  const onnx = await loadOnnxModel(m.onnx, m.spec);
  try {
    const outs = await onnx.predict(rs.map((r) => r.values));
    return rs.map((r, i) => {
      const p = toPrediction(vectorOf(r), outs[i]!, { name: spec.model.name, version, variant, classes: m.spec.classes, features: m.spec.features.map((f) => f.name) }, r.event.event_time + 5);
      return { prediction: p, label: r.label!, label_time: r.event.event_time + spec.label.delayMs, joined_at: r.event.event_time + spec.label.delayMs + 1, correct: p.label === r.label, error: null };
    });
  } finally {
    await onnx.close();
  }
}

beforeAll(async () => {
  rows = elec2Rows({ limit: 1500 });
  model = trainOn(rows.slice(0, 1000));
  labeled = await predict(model, rows.slice(1000, 1400), 1, 'champion');
});

const L = (lp: LabeledPrediction, partition = 0): FlowInput => ({ topic: 'predictions.labeled', value: lp, key: SCOPE, partition });
/** The quality and drift reports on monitor.reports (label-progress reports have their own test). */
const reportsOf = <O extends { topic: string; record: string; key: string; value: unknown }>(outs: O[]) => outs.filter((o) => o.topic === 'monitor.reports' && !isProgressReport((o.value as { report_id: string }).report_id));
const ids = (outs: Array<{ value: unknown }>) => outs.map((o) => (o.value as { report_id: string }).report_id);

async function withChampion(): Promise<MemoryStores> {
  const stores = createMemoryStores();
  await registerChampion(stores.registry, model, { spec });
  return stores;
}

describe('drift-monitor (in-memory harness)', () => {
  it('closes a window every windowSize records: a QualityReport and a DriftReport against the training baseline, on monitor.reports and in the report store', async () => {
    const stores = await withChampion();
    const metrics = new Registry();
    const records = labeled.slice(0, 2 * WINDOW + 10);
    const run = await runFlow(driftMonitor, records.map((r) => L(r)), { spec, stores, metrics, batchMax: 30 });
    expect(run.deadLetters).toEqual([]);
    const reports = reportsOf(run.outputs);
    const base = `${SCOPE}@1/champion`;
    expect(ids(reports)).toEqual([`${base}/w0`, `${base}/w0/drift`, `${base}/w1`, `${base}/w1/drift`]);
    expect(reports.map((o) => [o.record, o.key])).toEqual([['QualityReport', SCOPE], ['DriftReport', SCOPE], ['QualityReport', SCOPE], ['DriftReport', SCOPE]]);
    const w0 = reports[0]!.value as QualityReport;
    const first = records.slice(0, WINDOW);
    expect(w0).toMatchObject({ pipeline: 'elec2', model_name: spec.model.name, model_version: 1, variant: 'champion', count: WINDOW, alarm: null });
    expect(w0.window_start).toBe(first[0]!.prediction.event_time);
    expect(w0.window_end).toBe(first.at(-1)!.prediction.event_time);
    expect(w0.created_at).toBe(first.at(-1)!.prediction.event_time);
    expect(w0.metrics.accuracy).toBeCloseTo(first.filter((r) => r.correct).length / WINDOW, 10);
    expect(Object.keys(w0.metrics).sort()).toEqual(['accuracy', 'auc', 'ece', 'log_loss']);
    const drift = reports[1]!.value as DriftReport;
    expect(drift.count).toBe(WINDOW);
    expect(drift.features.map((f) => f.feature).sort()).toEqual(expect.arrayContaining(['day', 'nswdemand', 'period']));
    expect(drift.prediction_psi).not.toBeNull();
    // The report store holds the same reports, with their kind and variant.
    expect(stores.reports.reports.map((r) => [r.kind, r.variant, r.report.report_id])).toEqual([
      ['quality', 'champion', `${base}/w0`], ['drift', 'champion', `${base}/w0/drift`], ['quality', 'champion', `${base}/w1`], ['drift', 'champion', `${base}/w1/drift`],
    ]);
    expect(stores.reports.reports.map((r) => r.report)).toEqual(reports.map((o) => o.value));
    expect(await metrics.metrics()).toMatch(new RegExp(`loopline_monitor_metric\\{pipeline="elec2",model_version="1",variant="champion",metric="accuracy"\\} ${(reports[2]!.value as QualityReport).metrics.accuracy}`));
    // Label progress (every windowSize / 10 = 5 served labels) goes to the topic for the retrain trigger, not to the store.
    const progress = run.outputs.filter((o) => o.topic === 'monitor.reports' && isProgressReport((o.value as QualityReport).report_id));
    expect(ids(progress)).toEqual(Array.from({ length: 22 }, (_, i) => `${SCOPE}/labels/${5 * (i + 1)}`));
    expect(progress.map((o) => [o.record, o.key, (o.value as QualityReport).count])).toEqual(progress.map(() => ['QualityReport', SCOPE, 5]));
    expect(stores.reports.reports.some((r) => isProgressReport(r.report.report_id))).toBe(false);
  });

  it('keeps windows per version and variant, and monitors a version missing from the registry for quality only', async () => {
    const stores = await withChampion();
    const shadowModel = trainOn(rows.slice(0, 1000), { flip: true });
    await registerModel(stores.registry, shadowModel, { spec });
    const shadow = await predict(shadowModel, rows.slice(1000, 1000 + WINDOW), 2, 'shadow');
    const ghost = await predict(model, rows.slice(1000, 1000 + WINDOW), 9, 'champion');
    const inputs = labeled.slice(0, WINDOW).flatMap((r, i) => [L(r), L(shadow[i]!), L(ghost[i]!)]);
    const run = await runFlow(driftMonitor, inputs, { spec, stores });
    expect(ids(reportsOf(run.outputs)).sort()).toEqual([`${SCOPE}@1/champion/w0`, `${SCOPE}@1/champion/w0/drift`, `${SCOPE}@2/shadow/w0`, `${SCOPE}@2/shadow/w0/drift`, `${SCOPE}@9/champion/w0`].sort());
    const shadowQ = reportsOf(run.outputs).find((o) => ids([o])[0] === `${SCOPE}@2/shadow/w0`)!.value as QualityReport;
    const champQ = reportsOf(run.outputs).find((o) => ids([o])[0] === `${SCOPE}@1/champion/w0`)!.value as QualityReport;
    expect(shadowQ.metrics.accuracy).toBeLessThan(champQ.metrics.accuracy!); // the flipped model
  });

  it('raises an alarm report at once when the error rate rises', async () => {
    const stores = await withChampion();
    const long: PipelineSpec = { ...spec, monitoring: { ...spec.monitoring, windowSize: 10_000 } };
    // 300 predictions as they were, then 150 whose truth is the opposite of the prediction.
    const good = labeled.slice(0, 300).map((r) => ({ ...r, label: r.prediction.label!, correct: true }));
    const bad = labeled.slice(0, 150).map((r, i) => ({ ...r, prediction: { ...r.prediction, event_id: `bad${i}`, prediction_id: `bad${i}/x`, event_time: r.prediction.event_time + 1e9 }, label: r.prediction.label === 'UP' ? 'DOWN' : 'UP', correct: false }));
    const run = await runFlow(driftMonitor, [...good, ...bad].map((r) => L(r)), { spec: long, stores });
    const alarms = reportsOf(run.outputs).map((o) => o.value as QualityReport).filter((q) => q.alarm !== null);
    expect(alarms.length).toBeGreaterThanOrEqual(1);
    expect(alarms[0]!.report_id).toBe(`${SCOPE}@1/champion/w0/alarm1`);
    expect(alarms[0]!.alarm).toMatch(/^adwin: error rate rose/);
    expect(alarms[0]!.count).toBeGreaterThan(300);
    expect(alarms[0]!.count).toBeLessThan(450);
  });

  it('dead-letters records it cannot use, without counting them, and ignores other pipelines and models', async () => {
    const stores = await withChampion();
    const p = (i: number, patch: Partial<Prediction>): LabeledPrediction => ({ ...labeled[i]!, prediction: { ...labeled[i]!.prediction, ...patch } });
    const inputs = [
      L(p(0, { label: null })),
      L(p(1, { score: Number.NaN })),
      L(p(2, { probabilities: { DOWN: Number.POSITIVE_INFINITY, UP: 0.5 } })),
      L(p(3, { pipeline: 'sea' })),
      L(p(4, { model_name: 'another-model' })),
      ...labeled.slice(0, WINDOW).map((r) => L(r)),
    ];
    const run = await runFlow(driftMonitor, inputs, { spec, stores });
    expect(run.deadLetters.map((d) => [d.offset, d.failure.stage, d.failure.code])).toEqual([['0', 'VALIDATION', 'NO_PREDICTED_LABEL'], ['1', 'VALIDATION', 'NON_FINITE'], ['2', 'VALIDATION', 'NON_FINITE']]);
    // Exactly one window, of the WINDOW valid records: neither the invalid nor the foreign ones counted.
    const q = reportsOf(run.outputs).map((o) => o.value as QualityReport);
    expect(q.map((r) => r.report_id)).toEqual([`${SCOPE}@1/champion/w0`, `${SCOPE}@1/champion/w0/drift`]);
    expect(q[0]!.window_start).toBe(labeled[0]!.prediction.event_time);
    expect([...(stores.states.get(DRIFT_MONITOR) as unknown as { rows: Map<string, unknown> }).rows.keys()]).toEqual([SCOPE]);
  });

  it('gives the same reports, in the topic and the store, with a crash after chunks (a window closing in a crashed chunk included)', async () => {
    const inputs = labeled.slice(0, 3 * WINDOW + 7).map((r, i) => L(r, i % 2));
    const prepare = async (s: MemoryStores) => void (await registerChampion(s.registry, model, { spec }));
    // Partitions alternate, so every record is a chunk of its own: chunks 49, 99 and 149 close the three windows.
    const { clean, crashed } = await cleanAndCrashed(driftMonitor, inputs, () => ({ spec, batchMax: 1 }), [0, 49, 50, 99, 149], prepare);
    expect(crashed.run.calls).toBe(clean.run.calls + 5);
    expect(crashed.run.outputs).toEqual(clean.run.outputs);
    expect(crashed.stores.reports.reports).toEqual(clean.stores.reports.reports);
    expect(ids(reportsOf(clean.run.outputs))).toHaveLength(6);
  });
});
