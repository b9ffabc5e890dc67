// The evaluator on the in-memory harness, with real Elec2 models in the memory
// registry and the held-out rows (served values with their truth, after the
// candidate's training window) in the memory training set: a better candidate
// is promoted (PROMOTE ModelEvent on control.models, the old champion kept as
// shadow), a worse or identical one is rejected with its verdict, an
// unloadable one is rejected with the reason; a crash after the promoting
// chunk re-announces the same promotion and promotes nothing twice.
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ModelInfo } from '../../models/registry.js';
import type { TrainedModel } from '../../models/trainer.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { ModelCandidate, ModelEvent } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2, elec2Rows, predictionOf, registerChampion, registerModel, trainOn, type PointInTimeRow } from '../../test/support/elec2.js';
import { cleanAndCrashed } from '../../test/support/flows.js';
import { evaluator } from './index.js';

const P = elec2.name;
const M = elec2.model.name;
const HOLDOUT = 400;
const spec: PipelineSpec = { ...elec2, promotion: { ...elec2.promotion, metric: 'accuracy', minImprovement: 0, confidence: 0.9, holdoutRows: HOLDOUT } };
const AT = Date.UTC(2024, 0, 1);
let train: PointInTimeRow[];
let holdout: PointInTimeRow[];
let good: TrainedModel;
let bad: TrainedModel;

beforeAll(() => {
  const rows = elec2Rows({ limit: 1500 + HOLDOUT });
  train = rows.slice(0, 1500);
  holdout = rows.slice(1500);
  good = trainOn(train);
  // The same rows with every label flipped: it predicts the opposite of the good model.
  bad = trainOn(train, { flip: true });
});

async function stores(champion: TrainedModel | null): Promise<MemoryStores> {
  const s = createMemoryStores();
  if (champion) await registerChampion(s.registry, champion, { spec, rows: train });
  for (const r of holdout) await s.training.write(predictionOf(r, 1, spec), r.label!, r.event.event_time + spec.label.delayMs);
  return s;
}

function candidateOf(m: ModelInfo, patch: Partial<ModelCandidate> = {}): ModelCandidate {
  return {
    pipeline: m.pipeline, model_name: m.modelName, model_version: m.version, request_id: m.requestId, trainer: m.trainer, training_rows: m.trainingRows,
    window_start: m.trainingStart ?? 0, window_end: m.trainingEnd ?? 0, metrics: m.metrics, sha256: m.sha256, created_at: AT, validation_version: null, ...patch,
  };
}
const C = (c: ModelCandidate): FlowInput => ({ topic: 'control.candidates', value: c, key: c.pipeline });
const events = (outs: Array<{ topic: string; value: unknown }>) => outs.filter((o) => o.topic === 'control.models').map((o) => o.value as ModelEvent);
const info = async (s: MemoryStores, v: number) => (await s.registry.list(P, M)).find((m) => m.version === v)!;

describe('evaluator (in-memory harness)', () => {
  it('promotes a better candidate: PROMOTE on control.models, the old champion shadows it, the verdict is stored', async () => {
    const s = await stores(bad);
    const metrics = new Registry();
    const cand = await registerModel(s.registry, good, { spec, rows: train, parentVersion: 1 });
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec, stores: s, metrics });
    expect(events(run.outputs)).toEqual([{ event_id: `${P}/${M}/promote/2`, pipeline: P, model_name: M, action: 'PROMOTE', model_version: 2, previous_version: 1, traffic_share: null, reason: expect.stringMatching(/^promoted: accuracy on 400 held-out rows: candidate 0\.\d{4} vs champion 0\.\d{4}/), actor: 'evaluator', created_at: AT }]);
    expect(run.outputs[0]!.key).toBe(`${P}/${M}`);
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 2, previous: 1, shadow: 1 });
    expect(await info(s, 2)).toMatchObject({ status: 'champion', verdict: events(run.outputs)[0]!.reason });
    expect((await info(s, 1)).status).toBe('shadow');
    expect(await metrics.metrics()).toMatch(/loopline_evaluator_verdicts_total\{verdict="promote"\} 1/);
  });

  it('rejects a worse candidate with its verdict, announcing nothing', async () => {
    const s = await stores(good);
    const metrics = new Registry();
    const cand = await registerModel(s.registry, bad, { spec, rows: train, parentVersion: 1 });
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec, stores: s, metrics });
    expect(run.outputs).toEqual([]);
    expect(await info(s, 2)).toMatchObject({ status: 'rejected', verdict: expect.stringMatching(/^rejected: accuracy on 400 held-out rows: candidate 0\.\d{4} vs champion 0\.\d{4}, difference -0\.\d{4}/) });
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 1, shadow: null });
    expect(await metrics.metrics()).toMatch(/loopline_evaluator_verdicts_total\{verdict="reject"\} 1/);
  });

  it('does not promote a candidate identical to the champion (the interval must clear minImprovement)', async () => {
    const s = await stores(good);
    const cand = await registerModel(s.registry, good, { spec, rows: train, parentVersion: 1 });
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec, stores: s });
    expect(run.outputs).toEqual([]);
    expect(await info(s, 2)).toMatchObject({ status: 'rejected', verdict: expect.stringContaining('difference 0.0000 [0.0000, 0.0000]') });
    expect((await s.registry.serving(P, M)).champion).toBe(1);
  });

  it('rejects a candidate that cannot be loaded, with the reason', async () => {
    const s = await stores(good);
    const cand = await registerModel(s.registry, good, { spec, rows: train, extra: { onnx: new Uint8Array([8, 1, 18, 4, 106, 117, 110, 107]) } });
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec, stores: s });
    expect(run.outputs).toEqual([]);
    expect(await info(s, 2)).toMatchObject({ status: 'rejected', verdict: expect.stringMatching(/^rejected: v2 cannot be loaded: /) });
    expect((await s.registry.serving(P, M)).champion).toBe(1);
  });

  it('rejects when the held-out window after the training window is too small to judge', async () => {
    const s = await stores(bad);
    const cand = await registerModel(s.registry, good, { spec, rows: train });
    const run = await runFlow(evaluator, [C(candidateOf(cand, { window_end: holdout.at(-20)!.event.event_time }))], { spec, stores: s });
    expect(run.outputs).toEqual([]);
    expect(await info(s, 2)).toMatchObject({ status: 'rejected', verdict: 'rejected: the held-out window has 19 rows, too few to judge' });
  });

  it('promotes the first candidate when there is no champion; ignores other pipelines and candidates judged before', async () => {
    const s = await stores(null);
    const cand = await registerModel(s.registry, good, { spec, rows: train });
    const run = await runFlow(evaluator, [C(candidateOf(cand, { pipeline: 'sea' })), C(candidateOf(cand)), C(candidateOf(cand))], { spec, stores: s });
    // The second copy finds v1 serving and re-announces the same promotion (what a replay after a crash does).
    expect(events(run.outputs).map((e) => [e.event_id, e.action, e.model_version, e.previous_version, e.reason])).toEqual([
      [`${P}/${M}/promote/1`, 'PROMOTE', 1, null, 'promoted: no champion'],
      [`${P}/${M}/promote/1`, 'PROMOTE', 1, null, 'promoted: no champion'],
    ]);
    const rejected = await registerModel(s.registry, bad, { spec, rows: train });
    await s.registry.setStatus(P, M, rejected.version, 'rejected');
    expect((await runFlow(evaluator, [C(candidateOf(rejected))], { spec, stores: s })).outputs).toEqual([]);
  });

  it('a crash after the promoting chunk re-announces the same PROMOTE, and the registry changes once', async () => {
    let candidate: ModelCandidate | null = null;
    const prepare = async (st: MemoryStores) => {
      await registerChampion(st.registry, bad, { spec, rows: train });
      for (const r of holdout) await st.training.write(predictionOf(r, 1, spec), r.label!, r.event.event_time + spec.label.delayMs);
      candidate = candidateOf(await registerModel(st.registry, good, { spec, rows: train, parentVersion: 1 }));
    };
    await prepare(createMemoryStores());
    const { clean, crashed } = await cleanAndCrashed(evaluator, [C(candidate!)], () => ({ spec }), [0], prepare);
    expect(crashed.run.calls).toBe(2);
    expect(crashed.run.outputs).toEqual(clean.run.outputs);
    expect(events(clean.run.outputs).map((e) => [e.action, e.model_version])).toEqual([['PROMOTE', 2]]);
    for (const s of [clean.stores, crashed.stores]) {
      expect(await s.registry.serving(P, M)).toMatchObject({ champion: 2, previous: 1, shadow: 1 });
      expect((await s.registry.history(P, M)).filter((h) => h.action === 'PROMOTE' && h.version === 2)).toHaveLength(1);
    }
  });
});
