// The model builder on the in-memory harness, with its definition's built-in
// trainer (on its training thread) and Elec2 rows in the memory training set:
// a request builds a candidate on the newest rows before the request's window
// end (the newest holdoutRows held out), registered with its lineage and
// announced on control.candidates; a replayed request reuses the registered
// model; too few rows or a TrainingError skip the request with a verdict in
// the request store; a lease held by another builder makes it wait.
import { beforeAll, describe, expect, it } from 'vitest';
import { TrainingError, type Artifact, type LabeledRow } from '../../models/training.js';
import type { PipelineSpec } from '../../pipelines/spec.js';
import type { ModelCandidate, RetrainRequest } from '../../schemas/types.js';
import { createMemoryStores, type MemoryStores } from '../../store/memory.js';
import type { Stores } from '../../store/stores.js';
import { defineWorker, type WorkerContext } from '../../streams/definition.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { elec2, elec2Rows, predictionOf, registerChampion, registerModel, trainOn, withDemandMean, type PointInTimeRow } from '../../test/support/elec2.js';
import { modelBuilder } from './index.js';
import { createModelBuilder, type ModelBuilderDeps } from './model-builder.js';

const P = elec2.name;
const M = elec2.model.name;
const HOLDOUT = 100;
const WINDOW = 400;
const spec: PipelineSpec = { ...elec2, trainer: { ...elec2.trainer, windowRows: WINDOW }, promotion: { ...elec2.promotion, holdoutRows: HOLDOUT } };
let rows: PointInTimeRow[];
beforeAll(() => {
  rows = elec2Rows({ limit: 700 });
});

/** The joiner's training rows: what champion v1 was served, with the truth. */
async function withRows(rs: readonly PointInTimeRow[], stores: MemoryStores = createMemoryStores(), label?: (r: PointInTimeRow) => string | number): Promise<MemoryStores> {
  if ((await stores.registry.serving(P, M)).champion === null) await registerChampion(stores.registry, trainOn(rows.slice(0, 200)), { spec });
  for (const r of rs) await stores.training.write(predictionOf(r, 1, spec), label ? label(r) : r.label!, r.event.event_time + spec.label.delayMs);
  return stores;
}

const request = (id: string, windowEnd: number, patch: Partial<RetrainRequest> = {}): RetrainRequest => ({
  request_id: `${P}/${M}/retrain/${id}`, pipeline: P, reason: 'schedule', detail: 'test', champion_version: 1, window_start: 0, window_end: windowEnd, requested_at: windowEnd, ...patch,
});
const Q = (r: RetrainRequest): FlowInput => ({ topic: 'control.retrain', value: r, key: r.pipeline });
const candidates = (outs: Array<{ topic: string; value: unknown }>) => outs.filter((o) => o.topic === 'control.candidates').map((o) => o.value as ModelCandidate);

/** The model builder with another trainer: the definition's own shape, built with the core factory. */
function builderWith(trainer: NonNullable<ModelBuilderDeps['trainer']>) {
  return defineWorker({
    ...modelBuilder,
    create: (settings, ctx: WorkerContext<Pick<Stores, 'registry' | 'training' | 'requests'>>, metrics) =>
      createModelBuilder({ spec: ctx.spec, registry: ctx.stores.registry, training: ctx.stores.training, requests: ctx.stores.requests, logger: ctx.logger, ...settings, trainer, onBuilt: (_m, _r, s) => metrics.seconds.observe(s) }),
  });
}

describe('model-builder (in-memory harness)', () => {
  it('builds a candidate from the newest rows before the window end, the newest holdoutRows held out; registers it with its lineage', async () => {
    // Validate, then refit (promotion.refitOnHoldout, on in the shipped spec): a validation model trained
    // without the held-out rows, for the evaluator to judge on them, then the model that would serve,
    // refitted on the newest windowRows, held-out rows included. Both trained with Elec2's gbdt trainer.
    expect(spec.promotion.refitOnHoldout).toBe(true);
    const stores = await withRows(rows.slice(0, 700));
    // The request's window ends at row 649: rows 550..649 are held out, 150..549 train the validation
    // model; the refit trains on the newest 400, 250..649.
    const end = rows[649]!.event.event_time;
    const r = request('a', end);
    const run = await runFlow(modelBuilder, [Q(r)], { spec, stores });
    const [c, ...more] = candidates(run.outputs);
    expect(more).toEqual([]);
    const models = await stores.registry.list(P, M);
    expect(models.map((m) => [m.version, m.requestId])).toEqual([[3, r.request_id], [2, `${r.request_id}#validation`], [1, null]]);
    const validation = models.find((x) => x.version === 2)!;
    const m = models.find((x) => x.version === 3)!;
    expect(validation).toMatchObject({
      status: 'candidate', parentVersion: 1, trainingRows: WINDOW, trainer: 'builtin-gbdt',
      trainingStart: rows[150]!.event.event_time, trainingEnd: rows[549]!.event.event_time,
      verdict: `validation model of request ${r.request_id}: judged on the ${HOLDOUT} held-out rows for the refitted model`,
    });
    expect(m).toMatchObject({
      status: 'candidate', parentVersion: 1, trainingRows: WINDOW, trainer: 'builtin-gbdt', verdict: null,
      trainingStart: rows[250]!.event.event_time, trainingEnd: rows[649]!.event.event_time,
    });
    expect(c).toEqual({
      pipeline: P, model_name: M, model_version: 3, validation_version: 2, request_id: r.request_id, trainer: 'builtin-gbdt', training_rows: WINDOW,
      window_start: rows[250]!.event.event_time, window_end: rows[649]!.event.event_time, metrics: m.metrics, sha256: m.sha256, created_at: m.createdAt,
    });
    expect(run.outputs[0]!.key).toBe(P);
    expect(stores.requests.rows.get(r.request_id)).toMatchObject({
      status: 'built', modelVersion: 3,
      verdict: expect.stringMatching(/^built v3 from the newest 400 rows, validated by v2 trained on the 400 before the 100 held out, in .* s \(builtin-gbdt\)$/),
    });
    // The registered models are the ones the built-in trainer makes of exactly those rows.
    const reference = createMemoryStores().registry;
    expect(validation.sha256).toBe((await registerModel(reference, trainOn(rows.slice(150, 550), { spec }), { spec })).sha256);
    expect(m.sha256).toBe((await registerModel(reference, trainOn(rows.slice(250, 650), { spec }), { spec })).sha256);
  }, 60_000);

  it('without refitOnHoldout, registers one candidate trained on the window before the held-out rows, judged itself', async () => {
    const once: PipelineSpec = { ...spec, promotion: { ...spec.promotion, refitOnHoldout: false } };
    const stores = await withRows(rows.slice(0, 700));
    const r = request('a2', rows[649]!.event.event_time);
    const run = await runFlow(modelBuilder, [Q(r)], { spec: once, stores });
    const [c, ...more] = candidates(run.outputs);
    expect(more).toEqual([]);
    expect((await stores.registry.list(P, M)).map((x) => x.version)).toEqual([2, 1]);
    const m = (await stores.registry.list(P, M)).find((x) => x.requestId === r.request_id)!;
    expect(m).toMatchObject({
      version: 2, status: 'candidate', parentVersion: 1, requestId: r.request_id, trainingRows: WINDOW, trainer: 'builtin-gbdt',
      trainingStart: rows[150]!.event.event_time, trainingEnd: rows[549]!.event.event_time,
    });
    expect(c).toEqual({
      pipeline: P, model_name: M, model_version: 2, validation_version: null, request_id: r.request_id, trainer: 'builtin-gbdt', training_rows: WINDOW,
      window_start: rows[150]!.event.event_time, window_end: rows[549]!.event.event_time, metrics: m.metrics, sha256: m.sha256, created_at: m.createdAt,
    });
    expect(stores.requests.rows.get(r.request_id)).toMatchObject({ status: 'built', modelVersion: 2, verdict: expect.stringMatching(/^built v2 from 400 rows in .* s \(builtin-gbdt\)$/) });
    expect(m.sha256).toBe((await registerModel(createMemoryStores().registry, trainOn(rows.slice(150, 550), { spec }), { spec })).sha256);
  }, 60_000);

  it('reuses the model registered for a replayed request (and after a crash), training nothing again', async () => {
    const stores = await withRows(rows.slice(0, 700));
    const r = request('b', rows[699]!.event.event_time);
    const first = await runFlow(modelBuilder, [Q(r)], { spec, stores });
    // A crash after the chunk: the build was recorded, so the replay announces the same candidate.
    const crashed = await runFlow(modelBuilder, [Q(r)], { spec, stores, crashAfterChunks: [0] });
    const replayed = await runFlow(modelBuilder, [Q(r)], { spec, stores });
    expect(crashed.calls).toBe(2);
    expect(candidates(crashed.outputs)).toEqual(candidates(first.outputs));
    expect(candidates(replayed.outputs)).toEqual(candidates(first.outputs));
    expect((await stores.registry.list(P, M)).filter((m) => m.requestId === r.request_id)).toHaveLength(1);
    expect((await stores.registry.list(P, M)).filter((m) => m.requestId === `${r.request_id}#validation`)).toHaveLength(1);
    expect(candidates(first.outputs).map((c) => [c.model_version, c.validation_version])).toEqual([[3, 2]]);
  }, 60_000);

  it('completes a build registered just before a restart (the request still building, its lease lapsed) without training again', async () => {
    const stores = await withRows(rows.slice(0, 700));
    const r = request('c', rows[699]!.event.event_time);
    const registered = await registerModel(stores.registry, trainOn(rows.slice(0, 300), { spec }), { spec, extra: { requestId: r.request_id, parentVersion: 1 } });
    stores.requests.rows.set(r.request_id, { requestId: r.request_id, reason: r.reason, detail: r.detail, requestedAt: r.requested_at, status: 'building', modelVersion: null, verdict: null, owner: 'a builder that died', leaseUntil: 0 });
    const trainer = () => Promise.reject(new Error('must not train'));
    const run = await runFlow(builderWith(trainer), [Q(r)], { spec, stores });
    expect(candidates(run.outputs).map((c) => c.model_version)).toEqual([registered.version]);
    expect(stores.requests.rows.get(r.request_id)).toMatchObject({ status: 'built', modelVersion: registered.version, verdict: `built v${registered.version} (registered before a restart)` });
  });

  it('completes a validated refit registered just before a restart: announces it with its validation model, training nothing', async () => {
    const stores = await withRows(rows.slice(0, 700));
    const r = request('c2', rows[699]!.event.event_time);
    const validation = await registerModel(stores.registry, trainOn(rows.slice(0, 300), { spec }), { spec, extra: { requestId: `${r.request_id}#validation`, parentVersion: 1 } });
    const refit = await registerModel(stores.registry, trainOn(rows.slice(100, 400), { spec }), { spec, extra: { requestId: r.request_id, parentVersion: 1 } });
    stores.requests.rows.set(r.request_id, { requestId: r.request_id, reason: r.reason, detail: r.detail, requestedAt: r.requested_at, status: 'building', modelVersion: null, verdict: null, owner: 'a builder that died', leaseUntil: 0 });
    const run = await runFlow(builderWith(() => Promise.reject(new Error('must not train'))), [Q(r)], { spec, stores });
    expect(candidates(run.outputs).map((c) => [c.model_version, c.validation_version])).toEqual([[refit.version, validation.version]]);
    expect(stores.requests.rows.get(r.request_id)).toMatchObject({ status: 'built', modelVersion: refit.version, verdict: `built v${refit.version} (registered before a restart)` });
  });

  it('after a restart between the validation model and the refit, trains only the refit, on the newest rows', async () => {
    const stores = await withRows(rows.slice(0, 700));
    const r = request('c3', rows[699]!.event.event_time);
    const validation = await registerModel(stores.registry, trainOn(rows.slice(200, 600), { spec }), { spec, rows: rows.slice(200, 600), extra: { requestId: `${r.request_id}#validation`, parentVersion: 1 } });
    stores.requests.rows.set(r.request_id, { requestId: r.request_id, reason: r.reason, detail: r.detail, requestedAt: r.requested_at, status: 'building', modelVersion: null, verdict: null, owner: 'a builder that died', leaseUntil: 0 });
    const trained: LabeledRow[][] = [];
    const trainer = async (_s: PipelineSpec, rs: readonly LabeledRow[]): Promise<Artifact> => {
      trained.push(rs.map((x) => ({ values: x.values, label: x.label })));
      const t = trainOn(rows.slice(300, 700), { spec });
      return { onnx: t.onnx, spec: t.spec, baseline: t.baseline, metrics: t.metrics, trainer: 'test', trainerSettings: {}, trainingRows: t.trainedRows };
    };
    const run = await runFlow(builderWith(trainer), [Q(r)], { spec, stores });
    // One training, oldest first: the newest 400 rows (300..699), the held-out rows included.
    expect(trained).toEqual([rows.slice(300, 700).map((x) => ({ values: x.values, label: x.label }))]);
    const refit = (await stores.registry.list(P, M)).find((m) => m.requestId === r.request_id)!;
    expect(refit).toMatchObject({ version: validation.version + 1, trainer: 'test', parentVersion: 1, trainingStart: rows[300]!.event.event_time, trainingEnd: rows[699]!.event.event_time });
    expect(candidates(run.outputs).map((c) => [c.model_version, c.validation_version])).toEqual([[refit.version, validation.version]]);
    expect(stores.requests.rows.get(r.request_id)).toMatchObject({ status: 'built', modelVersion: refit.version, verdict: expect.stringMatching(new RegExp(`^built v${refit.version} from the newest 400 rows, validated by v${validation.version} trained on the 400 before the 100 held out, in .* s \\(test\\)$`)) });
  }, 60_000);


  it('fits the validation model and the refit at once, and registers the validation model first', async () => {
    const stores = await withRows(rows.slice(0, 700));
    const r = request('c4', rows[699]!.event.event_time);
    // Each fit waits a macrotask before it returns: fits begun one after the other never overlap.
    let active = 0;
    let most = 0;
    const windows: Array<[number, number]> = [];
    const trainer = async (_s: PipelineSpec, rs: readonly LabeledRow[]): Promise<Artifact> => {
      active += 1;
      most = Math.max(most, active);
      await new Promise((res) => setTimeout(res, 0));
      active -= 1;
      const from = rows.findIndex((x) => JSON.stringify(x.values) === JSON.stringify(rs[0]!.values));
      windows.push([from, rs.length]);
      const t = trainOn(rows.slice(from, from + rs.length), { spec });
      return { onnx: t.onnx, spec: t.spec, baseline: t.baseline, metrics: t.metrics, trainer: 'test', trainerSettings: {}, trainingRows: t.trainedRows };
    };
    const run = await runFlow(builderWith(trainer), [Q(r)], { spec, stores });
    expect(most).toBe(2);
    expect(windows.sort((a, b) => a[0] - b[0])).toEqual([[200, WINDOW], [300, WINDOW]]);
    const models = await stores.registry.list(P, M);
    expect(models.map((m) => [m.version, m.requestId, m.trainingStart])).toEqual([
      [3, r.request_id, rows[300]!.event.event_time],
      [2, `${r.request_id}#validation`, rows[200]!.event.event_time],
      [1, null, null],
    ]);
    expect(candidates(run.outputs).map((c) => [c.model_version, c.validation_version])).toEqual([[3, 2]]);
  }, 60_000);
  it('skips a request with too few training rows, with the verdict in the request store', async () => {
    const stores = await withRows(rows.slice(0, 150));
    const r = request('d', rows[149]!.event.event_time);
    const run = await runFlow(modelBuilder, [Q(r)], { spec, stores });
    expect(run.outputs).toEqual([]);
    expect(stores.requests.rows.get(r.request_id)).toMatchObject({ status: 'skipped', modelVersion: null, verdict: 'skipped: 50 training rows (150 labeled in all) is under the minimum of 100' });
    expect((await stores.registry.list(P, M)).map((m) => m.version)).toEqual([1]);
    // The minimum is a setting.
    const lower = await runFlow(modelBuilder, [Q(request('e', rows[149]!.event.event_time))], { spec, stores, settings: { minRows: 50 } });
    expect(candidates(lower.outputs)).toHaveLength(1);
  }, 60_000);

  it('skips a request the trainer cannot train (TrainingError), with the reason', async () => {
    // The built-in trainer refuses a label outside the pipeline's classes.
    const stores = await withRows(rows.slice(0, 600), createMemoryStores(), (r) => (r.event.event_id === rows[300]!.event.event_id ? 'SIDEWAYS' : r.label!));
    const r = request('f', rows[599]!.event.event_time);
    const run = await runFlow(modelBuilder, [Q(r)], { spec, stores });
    expect(run.outputs).toEqual([]);
    expect(stores.requests.rows.get(r.request_id)).toMatchObject({ status: 'skipped', verdict: expect.stringMatching(/^skipped: built-in trainer: .*SIDEWAYS/) });
    // Any trainer's TrainingError is a skip; another error is not (the runtime retries or dead-letters it).
    const failing = builderWith(() => Promise.reject(new TrainingError('one class only')));
    const r2 = request('g', rows[599]!.event.event_time);
    expect((await runFlow(failing, [Q(r2)], { spec, stores })).outputs).toEqual([]);
    expect(stores.requests.rows.get(r2.request_id)).toMatchObject({ status: 'skipped', verdict: 'skipped: one class only' });
    const broken = builderWith(() => Promise.reject(new Error('disk full')));
    await expect(runFlow(broken, [Q(request('h', rows[599]!.event.event_time))], { spec, stores })).rejects.toThrow('disk full');
  }, 60_000);

  it('builds only the newest of requests that queued together; the older ones are skipped as superseded, once', async () => {
    const stores = await withRows(rows.slice(0, 700));
    const [a, b, c] = [request('q1', rows[600]!.event.event_time), request('q2', rows[640]!.event.event_time), request('q3', rows[649]!.event.event_time)];
    const run = await runFlow(modelBuilder, [Q(a), Q(b), Q(c)], { spec, stores });
    expect(candidates(run.outputs).map((x) => x.request_id)).toEqual([c.request_id]);
    for (const older of [a, b]) {
      const claim = await stores.requests.claim(older, 'someone-else', 1000);
      expect(claim).toMatchObject({ outcome: 'done', status: 'skipped' });
    }
    // Replayed on their own later, the superseded requests build nothing.
    const again = await runFlow(modelBuilder, [Q(a)], { spec, stores });
    expect(candidates(again.outputs)).toEqual([]);
    expect((await stores.registry.list(P, M)).filter((m) => m.requestId?.startsWith(a.request_id))).toEqual([]);
  });

  it('waits while another builder holds the lease, then builds once it lapses', async () => {
    const stores = await withRows(rows.slice(0, 700));
    const r = request('i', rows[699]!.event.event_time);
    const leaseMs = 1000;
    expect(await stores.requests.claim(r, 'another builder', leaseMs)).toEqual({ outcome: 'mine' });
    const heldUntil = stores.requests.rows.get(r.request_id)!.leaseUntil;
    let trainedAt = 0;
    const trainer = async (_s: PipelineSpec, rs: readonly unknown[]): Promise<Artifact> => {
      trainedAt = Date.now();
      const t = trainOn(rows.slice(0, rs.length), { spec });
      return { onnx: t.onnx, spec: t.spec, baseline: t.baseline, metrics: t.metrics, trainer: 'test', trainerSettings: {}, trainingRows: t.trainedRows };
    };
    const run = await runFlow(builderWith(trainer), [Q(r)], { spec, stores, settings: { leaseMs } });
    expect(trainedAt).toBeGreaterThanOrEqual(heldUntil);
    expect(candidates(run.outputs)).toHaveLength(1);
    expect(stores.requests.rows.get(r.request_id)).toMatchObject({ status: 'built', owner: expect.not.stringMatching(/^another builder$/) });
  });

  it('waits while another builder holds the lease, and announces its model when it finishes', async () => {
    const stores = await withRows(rows.slice(0, 700));
    const r = request('j', rows[699]!.event.event_time);
    await stores.requests.claim(r, 'another builder', 1000);
    const theirs = await registerModel(stores.registry, trainOn(rows.slice(0, 300), { spec }), { spec, extra: { requestId: r.request_id } });
    const finishing = new Promise<void>((resolve) => setTimeout(() => void stores.requests.finish(P, r.request_id, 'built', theirs.version, `built v${theirs.version}`).then(resolve), 100));
    const run = await runFlow(builderWith(() => Promise.reject(new Error('must not train'))), [Q(r)], { spec, stores, settings: { leaseMs: 1000 } });
    await finishing;
    expect(candidates(run.outputs).map((c) => c.model_version)).toEqual([theirs.version]);
  });

  it('trains on the newest applied spec version (its new feature among the inputs) and records the version in the lineage', async () => {
    const evolved = withDemandMean(spec);
    const stores = createMemoryStores();
    await stores.specs.record(P, JSON.stringify(spec), 'first', 0);
    // The preprocessor served the new feature from row 300 on (spec version 2); the rows before have it missing.
    const served = rows.slice(0, 700).map((r, i) => (i < 300 ? r : { ...r, values: { ...r.values, nswdemand_ma48: r.values.nswdemand ?? null } }));
    await withRows(served, stores);
    const first = await runFlow(modelBuilder, [Q(request('v1', rows[400]!.event.event_time))], { spec, stores });
    const onV1 = (await stores.registry.list(P, M)).find((m) => m.version === candidates(first.outputs)[0]!.model_version)!;
    expect(onV1.specVersion).toBe(1);
    expect(onV1.spec.features.map((f) => f.name)).toEqual(spec.model.features);

    await stores.specs.record(P, JSON.stringify(evolved), 'added inputs nswdemand_ma48', 0);
    const second = await runFlow(modelBuilder, [Q(request('v2', rows[649]!.event.event_time))], { spec, stores, impl: first.impl, offsets: first.offsets });
    const onV2 = (await stores.registry.list(P, M)).find((m) => m.version === candidates(second.outputs)[0]!.model_version)!;
    expect(onV2.specVersion).toBe(2);
    expect(onV2.spec.features.map((f) => f.name)).toEqual(evolved.model.features);
  });

  it('ignores requests of another pipeline', async () => {
    const stores = await withRows(rows.slice(0, 300));
    const run = await runFlow(modelBuilder, [Q(request('k', rows[299]!.event.event_time, { pipeline: 'sea' }))], { spec, stores });
    expect(run.outputs).toEqual([]);
    expect(stores.requests.rows.size).toBe(0);
  });
});
