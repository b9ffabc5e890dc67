// The retrain trigger on the in-memory harness: monitor reports in, one
// RetrainRequest per decision on control.retrain (schedule, detector alarm,
// relative drop, drift; cooldown and minimum fresh labels), and the rollback
// guard: a fresh champion doing worse live than the predecessor shadowing it
// is rolled back in the registry, announced with a ROLLBACK ModelEvent on
// control.models. A crash after a chunk replays its decisions without a second
// request or a second rollback.
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TrainedModel } from '../../models/trainer.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { DriftReport, ModelEvent, QualityReport, RetrainRequest } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2, elec2Rows, registerChampion, trainOn } from '../../test/support/elec2.js';
import { cleanAndCrashed } from '../../test/support/flows.js';
import { RETRAIN_TRIGGER, retrainTrigger } from './index.js';

const P = elec2.name;
const M = elec2.model.name;
const SCOPE = `${P}/${M}`;
/** The policy under test, spelled out: windows of 500, a request needs 1000 fresh labels. */
const spec: PipelineSpec = {
  ...elec2,
  monitoring: { ...elec2.monitoring, windowSize: 500 },
  retrain: { onDetectorAlarm: true, onEstimate: false, onDrift: true, maxRelativeDrop: 0.08, everyLabels: 2000, cooldownLabels: 1000, minFreshLabels: 1000 },
  promotion: { ...elec2.promotion, metric: 'accuracy', rollbackMargin: 0.02 },
};
let model: TrainedModel;
beforeAll(() => {
  model = trainOn(elec2Rows({ limit: 600 }));
});

const T0 = Date.UTC(1997, 0, 1);
function quality(version: number, w: number, accuracy: number, o: Partial<QualityReport> = {}): QualityReport {
  const variant = o.variant ?? 'champion';
  const alarm = o.alarm ?? null;
  return {
    report_id: `${SCOPE}@${version}/${variant}/w${w}${alarm ? '/alarm1' : ''}`, pipeline: P, model_name: M, model_version: version, variant,
    window_start: T0 + w * 1000, window_end: T0 + w * 1000 + 999, count: alarm ? 120 : 500, metrics: { accuracy, auc: 0.8 }, alarm, created_at: T0 + w * 1000 + 999, ...o,
  };
}
function drift(version: number, w: number, drifted: boolean): DriftReport {
  return {
    report_id: `${SCOPE}@${version}/champion/w${w}/drift`, pipeline: P, model_name: M, model_version: version, window_start: T0 + w * 1000, window_end: T0 + w * 1000 + 999, count: 500,
    features: [{ feature: 'nswdemand', test: 'ks', statistic: drifted ? 0.4 : 0.01, p_value: drifted ? 1e-9 : 0.9, psi: drifted ? 0.5 : 0.01, drifted }], prediction_psi: 0.01, drifted, created_at: T0 + w * 1000 + 999,
  };
}
const R = (r: QualityReport | DriftReport, partition = 0): FlowInput => ({ topic: 'monitor.reports', value: r, key: SCOPE, partition });
const requests = (outs: Array<{ topic: string; value: unknown }>) => outs.filter((o) => o.topic === 'control.retrain').map((o) => o.value as RetrainRequest);
const modelEvents = (outs: Array<{ topic: string; value: unknown }>) => outs.filter((o) => o.topic === 'control.models').map((o) => o.value as ModelEvent);

async function withChampion(stores: MemoryStores = createMemoryStores()): Promise<MemoryStores> {
  await registerChampion(stores.registry, model, { spec });
  return stores;
}

/** v1 promoted, then v2 promoted over it: v1 shadows v2 (models/lifecycle.ts keeps the old champion as shadow). */
async function withFreshChampion(stores: MemoryStores = createMemoryStores()): Promise<MemoryStores> {
  await withChampion(stores);
  await registerChampion(stores.registry, model, { spec });
  expect(await stores.registry.serving(P, M)).toMatchObject({ champion: 2, previous: 1, shadow: 1 });
  return stores;
}

describe('retrain-trigger (in-memory harness)', () => {
  it('schedule: one request after everyLabels labeled predictions of the champion, with an id derived from the report', async () => {
    const stores = await withChampion();
    const metrics = new Registry();
    const reports = [quality(1, 0, 0.8), quality(1, 1, 0.8), quality(1, 2, 0.8), quality(1, 3, 0.8), quality(1, 4, 0.8)];
    const run = await runFlow(retrainTrigger, reports.map((r) => R(r)), { spec, stores, metrics });
    const out = requests(run.outputs);
    expect(out).toEqual([{
      request_id: `${SCOPE}/retrain/${reports[3]!.report_id}`, pipeline: P, reason: 'schedule', detail: '2000 labeled predictions since the last retrain',
      champion_version: 1, window_start: 0, window_end: reports[3]!.window_end, requested_at: reports[3]!.created_at,
    }]);
    expect(run.outputs.filter((o) => o.topic === 'control.retrain').map((o) => o.key)).toEqual([P]);
    expect(modelEvents(run.outputs)).toEqual([]);
    expect(await metrics.metrics()).toMatch(/loopline_trigger_retrain_requests_total\{reason="schedule"\} 1/);
  });

  it('detector alarm: acts once enough fresh labels arrived; an alarm during the cooldown waits for its end', async () => {
    const stores = await withChampion();
    const run = await runFlow(retrainTrigger, [R(quality(1, 0, 0.8, { alarm: 'adwin: error rate rose from 0.15 to 0.40' })), R(quality(1, 0, 0.8)), R(quality(1, 1, 0.8))], { spec, stores });
    const out = requests(run.outputs);
    expect(out.map((r) => [r.reason, r.detail, r.request_id])).toEqual([['detector_alarm', 'adwin: error rate rose from 0.15 to 0.40', `${SCOPE}/retrain/${SCOPE}@1/champion/w1`]]);
  });

  it('relative drop below the champion\'s first window, then the cooldown holds the next one back', async () => {
    const stores = await withChampion();
    const run = await runFlow(retrainTrigger, [0.8, 0.79, 0.7, 0.7, 0.7].map((a, w) => R(quality(1, w, a))), { spec, stores });
    const out = requests(run.outputs);
    // w2: 0.70 is 12.5 % below w0's 0.80 with 1500 fresh labels → a request; w3: only 500 since → none; w4: 1000 → the next.
    expect(out.map((r) => [r.reason, r.request_id.split('/').at(-1)])).toEqual([['quality_drop', 'w2'], ['quality_drop', 'w4']]);
    expect(out[0]!.detail).toBe('accuracy 0.7000 vs 0.8000 in the champion\'s first window');
  });

  it('drift of the champion triggers (onDrift); reports of other versions, shadows and other pipelines do not', async () => {
    const stores = await withChampion();
    const run = await runFlow(
      retrainTrigger,
      [R(quality(1, 0, 0.8)), R(quality(1, 1, 0.8)), R(drift(7, 1, true)), R(quality(7, 2, 0.1)), R(quality(1, 2, 0.1, { variant: 'shadow' })), R({ ...quality(1, 2, 0.1), pipeline: 'sea' }), R({ ...drift(1, 1, true), model_name: 'other' }), R(drift(1, 1, false)), R(drift(1, 2, true))],
      { spec, stores },
    );
    expect(run.deadLetters).toEqual([]);
    expect(requests(run.outputs).map((r) => [r.reason, r.detail, r.request_id])).toEqual([['drift', 'nswdemand ks=0.400', `${SCOPE}/retrain/${SCOPE}@1/champion/w2/drift`]]);
  });

  it('rolls back a fresh champion doing worse than its shadowing predecessor on the same window: ROLLBACK on control.models, the registry changed', async () => {
    const stores = await withFreshChampion();
    const metrics = new Registry();
    const run = await runFlow(retrainTrigger, [R(quality(1, 0, 0.8, { variant: 'shadow' })), R(quality(2, 0, 0.7))], { spec, stores, metrics });
    const events = modelEvents(run.outputs);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event_id: `${SCOPE}/rollback/${SCOPE}@2/champion/w0`, pipeline: P, model_name: M, action: 'ROLLBACK', model_version: 1, previous_version: 2, actor: 'retrain-trigger', created_at: quality(2, 0, 0.7).created_at });
    expect(events[0]!.reason).toMatch(/live accuracy 0.7000 is worse than the previous champion's 0.8000 on the same window by 0.1000/);
    expect(run.outputs.find((o) => o.topic === 'control.models')!.key).toBe(SCOPE);
    expect(await stores.registry.serving(P, M)).toMatchObject({ champion: 1, previous: null, shadow: null });
    const v2 = (await stores.registry.list(P, M)).find((m) => m.version === 2)!;
    expect(v2.status).toBe('rejected');
    expect(v2.verdict).toMatch(/^rolled back: live accuracy/);
    expect((await stores.registry.history(P, M, 1))[0]).toMatchObject({ action: 'ROLLBACK', version: 1, previous: 2, actor: 'retrain-trigger' });
    expect(await metrics.metrics()).toMatch(/loopline_trigger_rollbacks_total 1/);
  });

  it('keeps a fresh champion within the margin, and judges each champion once', async () => {
    const stores = await withFreshChampion();
    const run = await runFlow(retrainTrigger, [R(quality(1, 0, 0.8, { variant: 'shadow' })), R(quality(2, 0, 0.79)), R(quality(1, 1, 0.9, { variant: 'shadow' })), R(quality(2, 1, 0.6))], { spec, stores });
    expect(modelEvents(run.outputs)).toEqual([]);
    expect((await stores.registry.serving(P, M)).champion).toBe(2);
  });

  it('a crash after the deciding chunk replays the same request and rollback, never a second one', async () => {
    const inputs = [R(quality(1, 0, 0.8, { variant: 'shadow' })), R(quality(2, 0, 0.7)), R(quality(1, 1, 0.8)), R(quality(1, 2, 0.8)), R(quality(1, 3, 0.8)), R(quality(1, 4, 0.8)), R(quality(1, 5, 0.8))];
    const { clean, crashed } = await cleanAndCrashed(retrainTrigger, inputs, () => ({ spec, batchMax: 2 }), [0, 1, 2], async (s) => void (await withFreshChampion(s)));
    expect(crashed.run.calls).toBe(clean.run.calls + 3);
    expect(crashed.run.outputs).toEqual(clean.run.outputs);
    // One rollback (chunk 0), then v1 serves again; the schedule request comes once 2000 champion labels arrived (v2's w0 counts: w3, chunk 2).
    expect(modelEvents(clean.run.outputs).map((e) => e.action)).toEqual(['ROLLBACK']);
    expect(requests(clean.run.outputs).map((r) => [r.reason, r.request_id.split('/').at(-1)])).toEqual([['schedule', 'w3']]);
    for (const s of [clean.stores, crashed.stores]) {
      expect((await s.registry.history(P, M)).filter((h) => h.action === 'ROLLBACK')).toHaveLength(1);
      expect((await s.registry.serving(P, M)).champion).toBe(1);
    }
    const state = (s: MemoryStores) => (s.states.get(RETRAIN_TRIGGER) as unknown as { rows: Map<string, { value: { requests: number; rollbacks: number } }> }).rows.get(SCOPE)!.value;
    expect(state(crashed.stores)).toEqual(state(clean.stores));
    expect([state(clean.stores).requests, state(clean.stores).rollbacks]).toEqual([1, 1]);
  });
});
