// The scorer on the in-memory harness, with real ONNX models trained on Elec2
// rows and kept in the memory registry: served predictions on `predictions`,
// every prediction (shadow included) on `predictions.by-event` and in the
// prediction log; an A/B arm chosen by a stable hash of the event id; a model
// needing an input the pipeline does not serve refused at reload while the
// current one keeps serving (a model taking fewer of the served inputs is
// accepted); no champion yet is a retriable NO_CHAMPION; a crash after a chunk
// changes nothing a reader sees.
import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TransientError } from '../../core/errors.js';
import { setAb, setShadow } from '../../models/lifecycle.js';
import { loadOnnxModel } from '../../models/onnx-model.js';
import { artifactOf } from '../../models/registry.js';
import { trainModel, type TrainedModel } from '../../models/trainer.js';
import type { FeatureVector, ModelEvent, Prediction } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import type { WorkerImpl } from '../../streams/definition.js';
import type { OutputRecord } from '../../streams/runtime.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2 as spec, elec2Rows, registerChampion, registerModel, trainOn, vectorOf, withDemandMean, type PointInTimeRow } from '../../test/support/elec2.js';
import { cleanAndCrashed } from '../../test/support/flows.js';
import { scorer } from './index.js';
import { abArm, NoChampionError, type Scorer } from './scorer.js';

const NOW = Date.UTC(2024, 0, 1);
const P = spec.name;
const M = spec.model.name;
let rows: PointInTimeRow[];
let v1Model: TrainedModel;
let v2Model: TrainedModel;
let scoreRows: PointInTimeRow[];

beforeAll(() => {
  rows = elec2Rows({ limit: 2600 });
  v1Model = trainOn(rows.slice(0, 1200));
  // Deliberately different from v1 (the opposite labels), so which model scored an event shows in its output.
  v2Model = trainOn(rows.slice(0, 1200), { flip: true });
  scoreRows = rows.slice(2000, 2600);
});

const V = (v: FeatureVector, partition = 0): FlowInput => ({ topic: 'features.vectors', value: v, key: v.entity_id, partition });
const inputs = (from: number, to: number) => scoreRows.slice(from, to).map((r, i) => V(vectorOf(r), i % 2));
const on = (outs: OutputRecord[], topic: string) => outs.filter((o) => o.topic === topic).map((o) => o.value as Prediction);

/** What `m` itself predicts for the rows (its positive-class score per event), to tell which model scored a prediction. */
async function scoresOf(m: TrainedModel, rs: readonly PointInTimeRow[]): Promise<Map<string, number>> {
  const model = await loadOnnxModel(m.onnx, m.spec);
  try {
    const outs = await model.predict(rs.map((r) => r.values));
    return new Map(rs.map((r, i) => [r.event.event_id, outs[i]!.score]));
  } finally {
    await model.close();
  }
}

/** One scorer kept across runs (its loaded models and offsets), like a live process. */
function setup(stores: MemoryStores = createMemoryStores()) {
  const metrics = new Registry();
  let offsets = new Map<string, bigint>();
  let impl: WorkerImpl<never> | undefined;
  const s = {
    stores,
    metrics,
    scorer: () => impl as unknown as Scorer,
    async run(xs: FlowInput[], o: { batchMax?: number; crashAfterChunks?: number[] } = {}) {
      const r = await runFlow(scorer, xs, { spec, stores, metrics, offsets, now: () => NOW, ...(impl ? { impl: impl as never } : {}), ...o });
      offsets = r.offsets;
      impl = r.impl as never;
      return r;
    },
    async close() {
      await (impl as WorkerImpl<never> | undefined)?.close?.();
    },
  };
  opened.push(s);
  return s;
}
const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});

describe('scorer (in-memory harness)', () => {
  it('scores with the champion: served predictions on predictions (by entity), all on predictions.by-event (by event), every one logged', async () => {
    const s = setup();
    const v1 = await registerChampion(s.stores.registry, v1Model);
    const run = await s.run(inputs(0, 100), { batchMax: 30 });
    expect(run.deadLetters).toEqual([]);
    const served = on(run.outputs, 'predictions');
    const byEvent = on(run.outputs, 'predictions.by-event');
    expect(served).toHaveLength(100);
    expect(byEvent).toEqual(expect.arrayContaining(served));
    expect(byEvent).toHaveLength(100);
    // monitoring.estimate (default on): every prediction also on predictions.by-model, keyed by model.
    expect(on(run.outputs, 'predictions.by-model')).toEqual(byEvent);
    for (const o of run.outputs) expect(o.key).toBe(o.topic === 'predictions' ? (o.value as Prediction).entity_id : o.topic === 'predictions.by-model' ? `${P}/${M}` : (o.value as Prediction).event_id);
    const expected = await scoresOf(v1Model, scoreRows.slice(0, 100));
    const byId = new Map(scoreRows.map((r) => [r.event.event_id, r]));
    for (const p of served) {
      const r = byId.get(p.event_id)!;
      expect(p).toMatchObject({ prediction_id: `${p.event_id}/${M}@${v1.version}/champion`, pipeline: P, model_name: M, model_version: v1.version, variant: 'champion', entity_id: 'nsw', event_time: r.event.event_time, scored_at: NOW, value: null });
      expect(p.features).toEqual(r.values);
      expect(p.score).toBeCloseTo(expected.get(p.event_id)!, 6);
      expect(Object.keys(p.probabilities).sort()).toEqual(['DOWN', 'UP']);
      expect(p.probabilities.UP! + p.probabilities.DOWN!).toBeCloseTo(1, 6);
      expect(p.label).toBe(p.probabilities.UP! >= 0.5 ? 'UP' : 'DOWN');
    }
    expect(s.stores.predictions.rows.size).toBe(100);
    for (const p of byEvent) expect(s.stores.predictions.rows.get(`${p.event_id}/${M}/champion`)).toEqual(p);
    expect(await s.metrics.metrics()).toMatch(/loopline_scorer_champion_version\{pipeline="elec2"\} 1/);
  });

  it('serves an A/B arm by a stable hash of the event id, on both topics and in the log', async () => {
    const s = setup();
    await registerChampion(s.stores.registry, v1Model);
    const v2 = await registerModel(s.stores.registry, v2Model);
    await setAb(s.stores.registry, { pipeline: P, modelName: M, version: v2.version, share: 0.3, actor: 'test', reason: 'test' });
    const run = await s.run(inputs(0, 400), { batchMax: 100 });
    expect(s.scorer().serving()).toEqual({ champion: 1, shadow: null, ab: v2.version });
    const served = on(run.outputs, 'predictions');
    expect(served).toHaveLength(400);
    const v1Scores = await scoresOf(v1Model, scoreRows.slice(0, 400));
    const v2Scores = await scoresOf(v2Model, scoreRows.slice(0, 400));
    for (const p of served) {
      const arm = abArm(p.event_id, 0.3);
      expect(p.variant).toBe(arm);
      expect(p.model_version).toBe(arm === 'ab' ? v2.version : 1);
      expect(p.score).toBeCloseTo((arm === 'ab' ? v2Scores : v1Scores).get(p.event_id)!, 6);
    }
    const share = served.filter((p) => p.variant === 'ab').length / served.length;
    expect(share).toBeGreaterThan(0.2);
    expect(share).toBeLessThan(0.4);
    expect(on(run.outputs, 'predictions.by-event').sort((a, b) => a.prediction_id.localeCompare(b.prediction_id))).toEqual([...served].sort((a, b) => a.prediction_id.localeCompare(b.prediction_id)));
    // A replay of the same events picks the same arms.
    const again = await runFlow(scorer, inputs(0, 400), { spec, stores: s.stores, now: () => NOW });
    await again.impl.close?.();
    expect(on(again.outputs, 'predictions').map((p) => p.prediction_id).sort()).toEqual(served.map((p) => p.prediction_id).sort());
    expect(await s.metrics.metrics()).toMatch(/loopline_scorer_ab_version\{pipeline="elec2"\} 2/);
  });

  it('logs a shadow and puts it on predictions.by-event, never on predictions', async () => {
    const s = setup();
    await registerChampion(s.stores.registry, v1Model);
    const v2 = await registerModel(s.stores.registry, v2Model);
    await setShadow(s.stores.registry, { pipeline: P, modelName: M, version: v2.version, actor: 'test', reason: 'test' });
    const run = await s.run(inputs(0, 50));
    const served = on(run.outputs, 'predictions');
    const byEvent = on(run.outputs, 'predictions.by-event');
    expect(served.map((p) => p.variant)).toEqual(Array(50).fill('champion'));
    expect(byEvent).toHaveLength(100);
    const shadows = byEvent.filter((p) => p.variant === 'shadow');
    expect(shadows).toHaveLength(50);
    expect(new Set(shadows.map((p) => p.model_version))).toEqual(new Set([v2.version]));
    expect(new Set(shadows.map((p) => p.event_id))).toEqual(new Set(served.map((p) => p.event_id)));
    const v2Scores = await scoresOf(v2Model, scoreRows.slice(0, 50));
    for (const p of shadows) {
      expect(p.prediction_id).toBe(`${p.event_id}/${M}@${v2.version}/shadow`);
      expect(p.score).toBeCloseTo(v2Scores.get(p.event_id)!, 6);
      expect(s.stores.predictions.rows.get(`${p.event_id}/${M}/shadow`)).toEqual(p);
    }
    expect(s.stores.predictions.rows.size).toBe(100);
    expect(await s.metrics.metrics()).toMatch(/loopline_scorer_shadow_version\{pipeline="elec2"\} 2/);
  });

  it('refuses at reload a model needing an input the pipeline does not serve (the current one keeps serving), accepts one with fewer of the served inputs', async () => {
    const s = setup();
    await registerChampion(s.stores.registry, v1Model);
    await s.run(inputs(0, 10));
    const train = rows.slice(0, 800);
    const needsUnserved = trainModel({
      spec: { task: 'binary', features: [{ name: 'period', kind: 'numeric' }, { name: 'nswprice', kind: 'numeric' }], classes: ['DOWN', 'UP'] },
      rows: train.map((r) => ({ period: r.values.period ?? null, nswprice: r.values.nswdemand ?? null })),
      labels: train.map((r) => r.label!),
    });
    const odd = await s.stores.registry.register({ pipeline: P, modelName: M, status: 'candidate', ...artifactOf(needsUnserved) });
    expect(await s.stores.registry.promote({ pipeline: P, modelName: M, version: odd.version, expected: 1, actor: 'test', reason: 'mismatch' })).toBe(true);
    expect(await s.scorer().reload()).toBe(1);
    expect(s.scorer().serving().champion).toBe(1);
    const still = await s.run(inputs(10, 20));
    expect(new Set(on(still.outputs, 'predictions').map((p) => p.model_version))).toEqual(new Set([1]));
    expect(still.outputs).toHaveLength(30); // predictions, by-event, by-model

    const fewer = trainModel({
      spec: { task: 'binary', features: [{ name: 'period', kind: 'numeric' }, { name: 'nswdemand', kind: 'numeric' }, { name: 'day', kind: 'categorical', categories: spec.model.categories.day! }], classes: ['DOWN', 'UP'] },
      rows: train.map((r) => ({ period: r.values.period ?? null, nswdemand: r.values.nswdemand ?? null, day: r.values.day ?? null })),
      labels: train.map((r) => r.label!),
    });
    const subset = await s.stores.registry.register({ pipeline: P, modelName: M, status: 'candidate', ...artifactOf(fewer) });
    expect(await s.stores.registry.promote({ pipeline: P, modelName: M, version: subset.version, expected: odd.version, actor: 'test', reason: 'subset' })).toBe(true);
    expect(await s.scorer().reload()).toBe(subset.version);
    const after = await s.run(inputs(20, 40));
    const served = on(after.outputs, 'predictions');
    expect(new Set(served.map((p) => p.model_version))).toEqual(new Set([subset.version]));
    const expected = await scoresOf(fewer, scoreRows.slice(20, 40));
    for (const p of served) expect(p.score).toBeCloseTo(expected.get(p.event_id)!, 6);
    // The prediction records what the pipeline served, all of it, whatever the model used, and which of it the model took.
    expect(served[0]!.features).toEqual(scoreRows[20]!.values);
    expect(served[0]!.model_features).toEqual(['period', 'nswdemand', 'day']);
  });

  it('gives each live model its own inputs and records them per prediction: a shadow taking fewer inputs than the champion', async () => {
    const s = setup();
    await registerChampion(s.stores.registry, v1Model);
    const train = rows.slice(0, 800);
    const fewer = trainModel({
      spec: { task: 'binary', features: [{ name: 'nswdemand', kind: 'numeric' }, { name: 'period', kind: 'numeric' }], classes: ['DOWN', 'UP'] },
      rows: train.map((r) => ({ nswdemand: r.values.nswdemand ?? null, period: r.values.period ?? null })),
      labels: train.map((r) => r.label!),
    });
    const shadow = await s.stores.registry.register({ pipeline: P, modelName: M, status: 'candidate', ...artifactOf(fewer) });
    await setShadow(s.stores.registry, { pipeline: P, modelName: M, version: shadow.version, actor: 'test', reason: 'fewer inputs' });
    const run = await s.run(inputs(0, 30));
    const byEvent = on(run.outputs, 'predictions.by-event');
    const expected = await scoresOf(fewer, scoreRows.slice(0, 30));
    for (const p of byEvent) {
      expect(p.model_features).toEqual(p.variant === 'shadow' ? ['nswdemand', 'period'] : spec.model.features);
      if (p.variant === 'shadow') expect(p.score).toBeCloseTo(expected.get(p.event_id)!, 6);
      expect(s.stores.predictions.rows.get(`${p.event_id}/${M}/${p.variant}`)!.model_features).toEqual(p.model_features);
    }
    expect(byEvent.filter((p) => p.variant === 'shadow')).toHaveLength(30);
  });

  it('picks up a spec version on reload: a model needing its new feature, refused before, serves once the version is applied', async () => {
    const s = setup();
    await s.stores.specs.record(P, JSON.stringify(spec), 'first', NOW);
    await registerChampion(s.stores.registry, v1Model);
    await s.run(inputs(0, 10));
    const evolved = withDemandMean(spec);
    const withDemand = (r: PointInTimeRow): PointInTimeRow => ({ ...r, values: { ...r.values, nswdemand_ma48: r.values.nswdemand ?? null } });
    const v2 = await registerModel(s.stores.registry, trainOn(rows.slice(0, 1200).map(withDemand), { spec: evolved }), { spec: evolved });
    expect(await s.stores.registry.promote({ pipeline: P, modelName: M, version: v2.version, expected: 1, actor: 'test', reason: 'new feature' })).toBe(true);
    expect(await s.scorer().reload()).toBe(1);
    expect(s.scorer().refused()).toEqual([v2.version]);

    await s.stores.specs.record(P, JSON.stringify(evolved), 'added inputs nswdemand_ma48', NOW);
    expect(await s.scorer().reload()).toBe(v2.version);
    expect(s.scorer().refused()).toEqual([]);
    const after = await s.run(scoreRows.slice(10, 30).map((r) => V(vectorOf(withDemand(r)))));
    const served = on(after.outputs, 'predictions');
    expect(served).toHaveLength(20);
    for (const p of served) {
      expect(p.model_version).toBe(v2.version);
      expect(p.model_features).toEqual(evolved.model.features);
      expect(p.model_features.at(-1)).toBe('nswdemand_ma48');
      expect(p.missing).not.toContain('nswdemand_ma48');
    }
    // A vector served under the old version (no such key at all), scored by the new model: recorded as missing to it.
    const old = on((await s.run(inputs(30, 35))).outputs, 'predictions');
    for (const p of old) expect(p).toMatchObject({ model_version: v2.version, missing: expect.arrayContaining(['nswdemand_ma48']) });
  });

  it('hot-swaps between chunks on a control.models announcement, ignoring other pipelines\' events', async () => {
    const s = setup();
    await registerChampion(s.stores.registry, v1Model);
    const first = await s.run(inputs(0, 20));
    const v2 = await registerModel(s.stores.registry, v2Model);
    expect(await s.stores.registry.promote({ pipeline: P, modelName: M, version: v2.version, expected: 1, actor: 'test', reason: 'swap' })).toBe(true);
    const broadcast = s.scorer().broadcasts!.find((b) => b.topic === 'control.models')!;
    const event = (patch: Partial<ModelEvent>): ModelEvent => ({ event_id: 'x', pipeline: P, model_name: M, action: 'PROMOTE', model_version: v2.version, previous_version: 1, traffic_share: null, reason: 'r', actor: 'test', created_at: NOW, ...patch });
    await broadcast.onRecord(event({ pipeline: 'sea' }));
    expect(s.scorer().serving().champion).toBe(1);
    await broadcast.onRecord(event({}));
    expect(s.scorer().serving().champion).toBe(v2.version);
    const second = await s.run(inputs(20, 40));
    expect(new Set(on(first.outputs, 'predictions').map((p) => p.model_version))).toEqual(new Set([1]));
    expect(new Set(on(second.outputs, 'predictions').map((p) => p.model_version))).toEqual(new Set([v2.version]));
    expect(await s.metrics.metrics()).toMatch(/loopline_scorer_champion_version\{pipeline="elec2"\} 2/);
  });


  it('loads a candidate announced on control.candidates before its promotion, so the swap reads nothing; unloads versions that stop serving', async () => {
    const s = setup();
    await registerChampion(s.stores.registry, v1Model);
    await s.run(inputs(0, 10));
    const reads: number[] = [];
    const get = s.stores.registry.get.bind(s.stores.registry);
    s.stores.registry.get = (p, m, v) => (reads.push(v), get(p, m, v));
    const v2 = await registerModel(s.stores.registry, v2Model);
    const candidates = s.scorer().broadcasts!.find((b) => b.topic === 'control.candidates')!;
    const models = s.scorer().broadcasts!.find((b) => b.topic === 'control.models')!;
    const announced = (version: number, pipeline = P) => ({ pipeline, model_name: M, model_version: version }) as never;
    await candidates.onRecord(announced(v2.version, 'sea'));
    expect(reads).toEqual([]);
    await candidates.onRecord(announced(v2.version));
    expect(reads).toEqual([v2.version]);
    expect(s.scorer().serving().champion).toBe(1); // loaded, not serving
    expect(await s.stores.registry.promote({ pipeline: P, modelName: M, version: v2.version, expected: 1, actor: 'test', reason: 'swap' })).toBe(true);
    const event = (version: number, previous: number): ModelEvent => ({ event_id: 'x', pipeline: P, model_name: M, action: 'PROMOTE', model_version: version, previous_version: previous, traffic_share: null, reason: 'r', actor: 'test', created_at: NOW });
    await models.onRecord(event(v2.version, 1));
    expect(s.scorer().serving().champion).toBe(v2.version);
    expect(reads).toEqual([v2.version]); // the swap used the preloaded model
    const swapped = await s.run(inputs(10, 20));
    expect(new Set(on(swapped.outputs, 'predictions').map((p) => p.model_version))).toEqual(new Set([v2.version]));
    // v1 stopped serving and was no candidate of late: unloaded, so serving it again reads it again.
    expect(await s.stores.registry.promote({ pipeline: P, modelName: M, version: 1, expected: v2.version, actor: 'test', reason: 'back' })).toBe(true);
    await models.onRecord(event(1, v2.version));
    expect(s.scorer().serving().champion).toBe(1);
    expect(reads).toEqual([v2.version, 1]);
  });
  it('throws a retriable NO_CHAMPION while nothing is promoted, and scores once a champion is', async () => {
    const stores = createMemoryStores();
    await registerModel(stores.registry, v1Model); // a candidate only
    const err = await runFlow(scorer, inputs(0, 5), { spec, stores }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoChampionError);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).retriable).toBe(true);
    expect((err as TransientError).code).toBe('NO_CHAMPION');
    await stores.registry.promote({ pipeline: P, modelName: M, version: 1, expected: null, actor: 'test', reason: 'now' });
    const run = await runFlow(scorer, inputs(0, 5), { spec, stores });
    await run.impl.close?.();
    expect(on(run.outputs, 'predictions')).toHaveLength(5);
  });

  it('dead-letters a vector whose model input is non-finite or of the wrong type, and scores the rest of the chunk', async () => {
    const s = setup();
    await registerChampion(s.stores.registry, v1Model);
    const [a, b, c, d] = scoreRows.slice(0, 4).map((r) => vectorOf(r));
    const run = await s.run([V(a!), V({ ...b!, values: { ...b!.values, nswdemand: Number.NaN } }), V({ ...c!, values: { ...c!.values, day: 3 } }), V({ ...d!, values: { ...d!.values, period: 'noon' } })]);
    expect(run.deadLetters.map((x) => [x.offset, x.failure.stage, x.failure.code])).toEqual([['1', 'VALIDATION', 'NON_FINITE'], ['2', 'VALIDATION', 'WRONG_TYPE'], ['3', 'VALIDATION', 'WRONG_TYPE']]);
    expect(on(run.outputs, 'predictions').map((p) => p.event_id)).toEqual([a!.event_id]);
    expect(s.stores.predictions.rows.size).toBe(1);
  });

  it('gives the same outputs and log with a crash after a chunk', async () => {
    const prepare = async (st: MemoryStores) => {
      await registerChampion(st.registry, v1Model);
      const v2 = await registerModel(st.registry, v2Model);
      await setShadow(st.registry, { pipeline: P, modelName: M, version: v2.version, actor: 'test', reason: 'test' });
    };
    const { clean, crashed } = await cleanAndCrashed(scorer, inputs(0, 120), () => ({ spec, now: () => NOW, batchMax: 25 }), [0, 3], prepare);
    expect(crashed.run.calls).toBe(clean.run.calls + 2);
    expect(crashed.run.outputs).toEqual(clean.run.outputs);
    expect([...crashed.stores.predictions.rows]).toEqual([...clean.stores.predictions.rows]);
    expect(on(clean.run.outputs, 'predictions.by-event')).toHaveLength(240);
  });
});
