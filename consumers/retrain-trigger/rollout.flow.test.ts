// A staged rollout across two workers on the in-memory harness: a candidate
// trained on a newer spec version passes the evaluator's offline gate and is
// staged as shadow (SHADOW_START), the retrain trigger follows its live
// windows against the champion's over the same event time and takes it to
// A/B (AB_START, SHADOW_STOP), then champion (AB_STOP, PROMOTE), the old
// champion shadowing it for the rollback guard; a worse one is rejected at
// its stage; a candidate arriving meanwhile is rejected. The registry's
// history holds every step; a crash replays them without a second change.
import { beforeAll, describe, expect, it } from 'vitest';
import { promote } from '../../models/lifecycle.js';
import type { TrainedModel } from '../../models/trainer.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { ModelCandidate, ModelEvent, QualityReport } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2, elec2Rows, predictionOf, registerModel, trainOn, type PointInTimeRow } from '../../test/support/elec2.js';
import { cleanAndCrashed } from '../../test/support/flows.js';
import { evaluator } from '../evaluator/index.js';
import { retrainTrigger } from './index.js';

const P = elec2.name;
const M = elec2.model.name;
const SCOPE = `${P}/${M}`;
const HOLDOUT = 400;
const spec: PipelineSpec = {
  ...elec2,
  retrain: { ...elec2.retrain, everyLabels: null },
  promotion: { ...elec2.promotion, metric: 'accuracy', gate: 'not-worse', tolerance: 0, holdoutRows: HOLDOUT, rollbackMargin: 0.02, rollout: { when: 'new-spec', shadowWindows: 1, abShare: 0.5, abWindows: 1, margin: null } },
};
const AT = Date.UTC(2024, 0, 1);
let train: PointInTimeRow[];
let holdout: PointInTimeRow[];
let good: TrainedModel;
/** The champion's model on the first spec version: every input but the last (the candidate's spec version adds it). */
let narrow: TrainedModel;
const older: PipelineSpec = { ...spec, model: { ...spec.model, features: spec.model.features.slice(0, -1) } };

beforeAll(() => {
  const rows = elec2Rows({ limit: 1500 + HOLDOUT });
  train = rows.slice(0, 1500);
  holdout = rows.slice(1500);
  good = trainOn(train);
  narrow = trainOn(train, { spec: older });
});

/**
 * v1 champion on spec version 1, the held-out rows, and v2 (on spec version `candidateSpec`) as candidate:
 * on version 2 the candidate takes one input more than the champion; on version 1 the same inputs.
 */
async function staged(s: MemoryStores, candidateSpec = 2): Promise<ModelCandidate> {
  const v1 = await registerModel(s.registry, candidateSpec === 1 ? good : narrow, { spec, rows: train, extra: { specVersion: 1 } });
  await promote(s.registry, { pipeline: P, modelName: M, version: v1.version, expected: null, actor: 'test', reason: 'test champion' });
  for (const r of holdout) await s.training.write(predictionOf(r, 1, spec), r.label!, r.event.event_time + spec.label.delayMs);
  const m = await registerModel(s.registry, good, { spec, rows: train, parentVersion: 1, extra: { specVersion: candidateSpec } });
  return {
    pipeline: P, model_name: M, model_version: m.version, request_id: m.requestId, trainer: m.trainer, training_rows: m.trainingRows,
    window_start: m.trainingStart ?? 0, window_end: m.trainingEnd ?? 0, metrics: m.metrics, sha256: m.sha256, created_at: AT, validation_version: null,
  };
}

const T0 = Date.UTC(2024, 0, 2);
/** A full window of `version`/`variant` (its own index `w`) over event time slot `t`. */
function win(version: number, variant: 'champion' | 'shadow' | 'ab', w: number, t: number, accuracy: number): QualityReport {
  return {
    report_id: `${SCOPE}@${version}/${variant}/w${w}`, pipeline: P, model_name: M, model_version: version, variant,
    window_start: T0 + t * 1000, window_end: T0 + t * 1000 + 999, count: 500, metrics: { accuracy, auc: 0.8 }, alarm: null, created_at: T0 + t * 1000 + 999,
  };
}
const R = (r: QualityReport): FlowInput => ({ topic: 'monitor.reports', value: r, key: SCOPE });
const events = (outs: Array<{ topic: string; value: unknown }>) => outs.filter((o) => o.topic === 'control.models').map((o) => o.value as ModelEvent);
const info = async (s: MemoryStores, v: number) => (await s.registry.list(P, M)).find((m) => m.version === v)!;

/** The champion v1 is at its window 10 when the rollout starts; the candidate's windows count from 0. */
const passing = [R(win(1, 'champion', 10, 10, 0.8)), R(win(2, 'shadow', 0, 10, 0.81)), R(win(1, 'champion', 11, 11, 0.8)), R(win(2, 'ab', 0, 11, 0.79))];

describe('staged rollout (evaluator, then retrain-trigger, in-memory harness)', () => {
  it('a candidate on a new spec version goes shadow → A/B → champion, each step on control.models and in the registry history', async () => {
    const s = createMemoryStores();
    const c = await staged(s);
    const judged = await runFlow(evaluator, [{ topic: 'control.candidates', value: c, key: P }], { spec, stores: s });
    const [shadowStart, ...none] = events(judged.outputs);
    expect(none).toEqual([]);
    expect(shadowStart).toMatchObject({ event_id: `${SCOPE}/shadow_start/v2-rollout`, action: 'SHADOW_START', model_version: 2, actor: 'evaluator', created_at: AT });
    expect(shadowStart!.reason).toMatch(/^rollout: shadow stage \(spec v2 vs the champion's v1; 1 window\(s\) as shadow, then 1 as A\/B arm at 0\.5\); offline: accuracy on 400 held-out rows: /);
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 1, shadow: 2, ab: null });
    expect(await info(s, 2)).toMatchObject({ status: 'shadow', verdict: shadowStart!.reason });

    const run = await runFlow(retrainTrigger, passing, { spec, stores: s });
    const out = events(run.outputs);
    expect(out.map((e) => [e.action, e.model_version, e.previous_version, e.traffic_share, e.actor])).toEqual([
      ['AB_START', 2, null, 0.5, 'retrain-trigger'],
      ['SHADOW_STOP', 2, null, null, 'retrain-trigger'],
      ['AB_STOP', 2, null, null, 'retrain-trigger'],
      ['PROMOTE', 2, 1, null, 'retrain-trigger'],
    ]);
    expect(out.map((e) => e.event_id)).toEqual([
      `${SCOPE}/ab_start/${SCOPE}@2/shadow/w0`, `${SCOPE}/shadow_stop/${SCOPE}@2/shadow/w0`, `${SCOPE}/ab_stop/${SCOPE}@2/ab/w0`, `${SCOPE}/promote/${SCOPE}@2/ab/w0`,
    ]);
    expect(out[0]!.reason).toMatch(/^rollout: A\/B stage at 0\.5 after 1 shadow window\(s\) not worse; last: live accuracy of v2 as shadow 0\.8100 vs the champion v1's 0\.8000/);
    expect(out[3]!.reason).toMatch(/^promoted: rollout passed .* worse by 0\.0100 \(margin 0\.02 \+ sampling allowance 0\.04\d\d\)$/);
    // Promoted like any champion: the old one shadows it for the rollback guard.
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 2, previous: 1, shadow: 1, ab: null, abShare: 0 });
    expect(await info(s, 2)).toMatchObject({ status: 'champion', verdict: out[3]!.reason });
    const history = (await s.registry.history(P, M)).reverse().map((h) => [h.action, h.version, h.actor]);
    expect(history).toEqual([
      ['PROMOTE', 1, 'test'],
      ['SHADOW_START', 2, 'evaluator'],
      ['AB_START', 2, 'retrain-trigger'],
      ['SHADOW_STOP', 0, 'retrain-trigger'],
      ['AB_STOP', 0, 'retrain-trigger'],
      ['PROMOTE', 2, 'retrain-trigger'],
      ['SHADOW_START', 1, 'retrain-trigger'],
    ]);

    // The rollback guard then watches the new champion against the old one (over the same event time).
    const guard = await runFlow(retrainTrigger, [R(win(1, 'shadow', 1, 12, 0.8)), R(win(2, 'champion', 0, 12, 0.7))], { spec, stores: s, offsets: run.offsets });
    expect(events(guard.outputs).map((e) => [e.action, e.model_version, e.previous_version])).toEqual([['ROLLBACK', 1, 2]]);
    expect((await s.registry.serving(P, M)).champion).toBe(1);
  });

  it('rejects at the A/B stage a candidate worse live than the champion: its arm stops, the champion stays', async () => {
    const s = createMemoryStores();
    await runFlow(evaluator, [{ topic: 'control.candidates', value: await staged(s), key: P }], { spec, stores: s });
    const run = await runFlow(retrainTrigger, [...passing.slice(0, 3), R(win(2, 'ab', 0, 11, 0.7))], { spec, stores: s });
    const out = events(run.outputs);
    expect(out.map((e) => [e.action, e.model_version])).toEqual([['AB_START', 2], ['SHADOW_STOP', 2], ['AB_STOP', 2]]);
    expect(out[2]!.reason).toMatch(/^rollout rejected at the A\/B arm stage: live accuracy of v2 as A\/B arm 0\.7000 vs the champion v1's 0\.8000 .* worse by 0\.1000 \(margin 0\.02 \+ sampling allowance 0\.0447\)$/);
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 1, shadow: null, ab: null });
    expect(await info(s, 2)).toMatchObject({ status: 'rejected', verdict: out[2]!.reason });
  });

  it('a candidate on the champion\'s spec version is promoted straight away, as before (when new-spec)', async () => {
    const s = createMemoryStores();
    const judged = await runFlow(evaluator, [{ topic: 'control.candidates', value: await staged(s, 1), key: P }], { spec, stores: s });
    expect(events(judged.outputs).map((e) => [e.action, e.model_version])).toEqual([['PROMOTE', 2]]);
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 2, previous: 1, shadow: 1 });
  });

  it('the evaluator: a crash after the staging chunk re-announces the same SHADOW_START; a candidate arriving during a rollout is rejected (one change at a time)', async () => {
    let candidate: ModelCandidate | null = null;
    const prepare = async (st: MemoryStores) => {
      candidate = await staged(st);
    };
    await prepare(createMemoryStores());
    const { clean, crashed } = await cleanAndCrashed(evaluator, [{ topic: 'control.candidates', value: candidate!, key: P }], () => ({ spec }), [0], prepare);
    expect(crashed.run.calls).toBe(2);
    expect(crashed.run.outputs).toEqual(clean.run.outputs);
    expect(events(clean.run.outputs).map((e) => [e.action, e.model_version])).toEqual([['SHADOW_START', 2]]);
    for (const st of [clean.stores, crashed.stores]) expect((await st.registry.history(P, M)).filter((h) => h.action === 'SHADOW_START')).toHaveLength(1);

    const s = clean.stores;
    await runFlow(retrainTrigger, passing.slice(0, 2), { spec, stores: s });
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 1, shadow: null, ab: 2 });
    const v3 = await registerModel(s.registry, good, { spec, rows: train, parentVersion: 1, extra: { specVersion: 2 } });
    const next = await runFlow(evaluator, [{ topic: 'control.candidates', value: { ...candidate!, model_version: v3.version, sha256: v3.sha256 }, key: P }], { spec, stores: s });
    expect(next.outputs).toEqual([]);
    expect(await s.registry.serving(P, M)).toMatchObject({ champion: 1, shadow: null, ab: 2 });
    expect(await info(s, 3)).toMatchObject({ status: 'rejected', verdict: "rejected: v2's staged rollout is in progress (one change of what serves at a time)" });
  });

  it('a crash after each trigger chunk replays the same steps, and the registry changes once', async () => {
    const prepare = async (st: MemoryStores) => {
      await runFlow(evaluator, [{ topic: 'control.candidates', value: await staged(st), key: P }], { spec, stores: st });
    };
    const { clean, crashed } = await cleanAndCrashed(retrainTrigger, passing, () => ({ spec, batchMax: 2 }), [0, 1], prepare);
    expect(crashed.run.outputs).toEqual(clean.run.outputs);
    expect(events(clean.run.outputs).map((e) => e.action)).toEqual(['AB_START', 'SHADOW_STOP', 'AB_STOP', 'PROMOTE']);
    for (const st of [clean.stores, crashed.stores]) {
      expect(await st.registry.serving(P, M)).toMatchObject({ champion: 2, previous: 1, shadow: 1, ab: null });
      expect((await st.registry.history(P, M)).filter((h) => h.action === 'AB_START' || (h.action === 'PROMOTE' && h.version === 2))).toHaveLength(2);
    }
  });
});
