// The evaluator on the in-memory harness, with real Elec2 models in the memory
// registry and the held-out rows (served values with their truth, after the
// judged model's training window) in the memory training set: under the
// default `not-worse` gate a better or equal candidate is promoted (PROMOTE
// ModelEvent on control.models, the old champion kept as shadow) and a worse
// one rejected with its verdict; the `better` gate needs the interval above
// minImprovement; a refitted candidate is judged by its validation model; an
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
const spec: PipelineSpec = { ...elec2, promotion: { ...elec2.promotion, metric: 'accuracy', gate: 'not-worse', tolerance: 0, minImprovement: 0, confidence: 0.9, holdoutRows: HOLDOUT } };
/** The same with the `better` gate: promoted only when the interval's lower bound clears minImprovement. */
const betterBy = (minImprovement: number): PipelineSpec => ({ ...spec, promotion: { ...spec.promotion, gate: 'better', minImprovement } });
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
    expect(await info(s, 2)).toMatchObject({ status: 'rejected', verdict: expect.stringMatching(/^rejected: accuracy on 400 held-out rows: candidate 0\.\d{4} vs champion 0\.\d{4}, difference -0\.\d{4} \[-0\.\d{4}, -0\.\d{4}\] at 0\.9; gate not worse by more than 0$/) });
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 1, shadow: null });
    expect(await metrics.metrics()).toMatch(/loopline_evaluator_verdicts_total\{verdict="reject"\} 1/);
  });

  it('promotes a candidate equal to the champion under the default not-worse gate', async () => {
    expect(elec2.promotion.gate).toBe('not-worse');
    const s = await stores(good);
    const cand = await registerModel(s.registry, good, { spec, rows: train, parentVersion: 1 });
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec, stores: s });
    const reason = events(run.outputs).map((e) => [e.action, e.model_version, e.previous_version, e.reason]);
    expect(reason).toEqual([['PROMOTE', 2, 1, expect.stringMatching(/^promoted: accuracy on 400 held-out rows: candidate (0\.\d{4}) vs champion \1, difference 0\.0000 \[0\.0000, 0\.0000\] at 0\.9; gate not worse by more than 0$/)]]);
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 2, previous: 1, shadow: 1 });
  });

  it('not-worse: a worse candidate within the tolerance is promoted, one worse by more is rejected', async () => {
    // bad against good: the interval of the difference lies well below zero (about -0.64), inside -0.7.
    const within: PipelineSpec = { ...spec, promotion: { ...spec.promotion, tolerance: 0.7 } };
    const s = await stores(good);
    const cand = await registerModel(s.registry, bad, { spec, rows: train, parentVersion: 1 });
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec: within, stores: s });
    expect(events(run.outputs).map((e) => [e.action, e.model_version, e.reason])).toEqual([['PROMOTE', 2, expect.stringMatching(/difference -0\.\d{4} \[-0\.\d{4}, -0\.\d{4}\] at 0\.9; gate not worse by more than 0\.7$/)]]);
    const s2 = await stores(good);
    const cand2 = await registerModel(s2.registry, bad, { spec, rows: train, parentVersion: 1 });
    const strict: PipelineSpec = { ...spec, promotion: { ...spec.promotion, tolerance: 0.5 } };
    expect((await runFlow(evaluator, [C(candidateOf(cand2))], { spec: strict, stores: s2 })).outputs).toEqual([]);
    expect(await info(s2, 2)).toMatchObject({ status: 'rejected', verdict: expect.stringMatching(/^rejected: .*; gate not worse by more than 0\.5$/) });
  });

  it('better: does not promote a candidate identical to the champion (the interval must clear minImprovement)', async () => {
    const s = await stores(good);
    const cand = await registerModel(s.registry, good, { spec, rows: train, parentVersion: 1 });
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec: betterBy(0), stores: s });
    expect(run.outputs).toEqual([]);
    expect(await info(s, 2)).toMatchObject({ status: 'rejected', verdict: expect.stringMatching(/difference 0\.0000 \[0\.0000, 0\.0000\] at 0\.9; gate better by more than 0$/) });
    expect((await s.registry.serving(P, M)).champion).toBe(1);
  });

  it('better: promotes only when the lower bound of the interval clears minImprovement, not the mean difference', async () => {
    // good against bad: the difference is about 0.635 with an interval of about [0.57, 0.70] at 0.9.
    const judge = async (minImprovement: number) => {
      const s = await stores(bad);
      const cand = await registerModel(s.registry, good, { spec, rows: train, parentVersion: 1 });
      const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec: betterBy(minImprovement), stores: s });
      const v = (await info(s, 2)).verdict!;
      const [, mean, lower] = /difference (-?\d\.\d{4}) \[(-?\d\.\d{4}),/.exec(v)!.map(Number);
      return { promoted: events(run.outputs).length === 1, status: (await info(s, 2)).status, verdict: v, mean: mean!, lower: lower! };
    };
    const low = await judge(0.5);
    expect(low).toMatchObject({ promoted: true, status: 'champion', verdict: expect.stringMatching(/^promoted: .*; gate better by more than 0\.5$/) });
    expect(low.lower).toBeGreaterThan(0.5);
    // A minImprovement between the interval's lower bound and the mean difference: not clearly better by that much.
    const between = Number(((low.lower + low.mean) / 2).toFixed(3));
    expect(between).toBeGreaterThan(low.lower);
    expect(between).toBeLessThan(low.mean);
    const high = await judge(between);
    expect(high).toMatchObject({ promoted: false, status: 'rejected', verdict: expect.stringMatching(new RegExp(`^rejected: .*; gate better by more than ${between}$`)) });
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
    // The judged model's training window, as the registry holds it, ends 19 rows before the newest label.
    const cand = await registerModel(s.registry, good, { spec, rows: [...train, ...holdout.slice(0, -19)] });
    expect(cand.trainingEnd).toBe(holdout.at(-20)!.event.event_time);
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec, stores: s });
    expect(run.outputs).toEqual([]);
    expect(await info(s, 2)).toMatchObject({ status: 'rejected', verdict: 'rejected: the held-out window has 19 rows, too few to judge' });
  });

  it('judges only on rows the champion did not learn from either: a champion trained into the window is not scored on its own training rows', async () => {
    const s = createMemoryStores();
    await registerChampion(s.registry, bad, { spec, rows: [...train, ...holdout.slice(0, 300)] });
    for (const r of holdout) await s.training.write(predictionOf(r, 1, spec), r.label!, r.event.event_time + spec.label.delayMs);
    const cand = await registerModel(s.registry, good, { spec, rows: train, parentVersion: 1 });
    const run = await runFlow(evaluator, [C(candidateOf(cand))], { spec, stores: s });
    expect(events(run.outputs).map((e) => e.reason)).toEqual([expect.stringMatching(/^promoted: accuracy on 100 held-out rows: /)]);
  });

  describe('a refitted candidate (validate, then refit): its validation model is judged on the held-out rows', () => {
    /** A validation model trained on `train` and the refit registered after it, its window covering the held-out rows. */
    async function refitted(s: MemoryStores, validationModel: TrainedModel, refitModel: TrainedModel): Promise<ModelCandidate> {
      const validation = await registerModel(s.registry, validationModel, { spec, rows: train, parentVersion: 1, extra: { requestId: 'r#validation' } });
      const refit = await registerModel(s.registry, refitModel, { spec, rows: [...train.slice(HOLDOUT), ...holdout], parentVersion: 1, extra: { requestId: 'r' } });
      return candidateOf(refit, { validation_version: validation.version });
    }

    it('promotes the refit when its validation model passes on the rows after the validation model\'s window; the validation model retires', async () => {
      const s = await stores(bad);
      const c = await refitted(s, good, good);
      expect(c.window_end).toBe(holdout.at(-1)!.event.event_time);
      const run = await runFlow(evaluator, [C(c)], { spec, stores: s });
      const [e, ...more] = events(run.outputs);
      expect(more).toEqual([]);
      expect(e).toMatchObject({ action: 'PROMOTE', model_version: 3, previous_version: 1, reason: expect.stringMatching(/^promoted: accuracy on 400 held-out rows: candidate \(validated by v2\) 0\.\d{4} vs champion 0\.\d{4}, difference 0\.\d{4} .*; gate not worse by more than 0$/) });
      expect(await s.registry.serving(P, M)).toMatchObject({ champion: 3, previous: 1, shadow: 1 });
      expect(await info(s, 3)).toMatchObject({ status: 'champion', verdict: e!.reason });
      expect(await info(s, 2)).toMatchObject({ status: 'retired', verdict: `validation model of v3: ${e!.reason.replace(/^promoted: /, '')}` });
    });

    it('rejects the refit when its validation model is worse, whatever the refit itself would score', async () => {
      const s = await stores(good);
      // The refit is the champion's equal (it would pass not-worse); the validation model is the bad one.
      const c = await refitted(s, bad, good);
      const run = await runFlow(evaluator, [C(c)], { spec, stores: s });
      expect(run.outputs).toEqual([]);
      const v3 = await info(s, 3);
      expect(v3).toMatchObject({ status: 'rejected', verdict: expect.stringMatching(/^rejected: accuracy on 400 held-out rows: candidate \(validated by v2\) 0\.\d{4} vs champion 0\.\d{4}, difference -0\.\d{4} /) });
      expect(await info(s, 2)).toMatchObject({ status: 'retired', verdict: `validation model of v3: ${v3.verdict!.replace(/^rejected: /, '')}` });
      expect((await s.registry.serving(P, M)).champion).toBe(1);
    });
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
