import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TransientError } from '../../core/errors.js';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import type { GroundTruth, LabeledPrediction, Prediction } from '../../schemas/types.js';
import { createMemoryStores } from '../../store/memory.js';
import { monthOf } from '../../store/training-set.js';
import { runFlow, type FlowInput } from '../../streams/testing.js';
import { joiner } from './index.js';
import { checkIdentity, checkLabel, isLate, isServed, labelDelaySeconds, labeledKey, toLabeledPrediction } from './join.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const spec = loadSpec(path.join(root, 'pipelines', 'elec2.json')).spec;
const regression: PipelineSpec = { ...spec, task: 'regression', label: { ...spec.label, type: 'numeric', classes: [] } };
const openClasses: PipelineSpec = { ...spec, label: { ...spec.label, classes: [] } };
const H = spec.label.horizonMs;
const T0 = Date.UTC(1997, 0, 15);

function prediction(eventId: string, patch: Partial<Prediction> = {}): Prediction {
  const variant = patch.variant ?? 'champion';
  const version = patch.model_version ?? 1;
  return {
    prediction_id: `${eventId}/elec2-updown@${version}/${variant}`,
    event_id: eventId, pipeline: 'elec2', entity_id: 'nsw', model_name: 'elec2-updown', model_version: version, variant,
    label: 'UP', score: 0.7, probabilities: { DOWN: 0.3, UP: 0.7 }, value: null,
    features: { day: '3', period: 0.5, nswprice_prev: null }, missing: ['nswprice_prev'], model_features: ['day', 'period', 'nswprice_prev'],
    event_time: T0, produced_at: T0 + 5, scored_at: T0 + 9,
    ...patch,
  };
}

describe('pure core', () => {
  it.each([
    { delay: 0, late: false },
    { delay: H - 1, late: false },
    { delay: H, late: false },
    { delay: H + 1, late: true },
    { delay: -1000, late: false },
  ])('isLate: delay $delay → $late', ({ delay, late }) => {
    expect(isLate(spec, { event_time: T0, label_time: T0 + delay })).toBe(late);
  });

  it.each([
    { delay: 86_400_000, seconds: 86_400 },
    { delay: 1500, seconds: 1.5 },
    { delay: -5000, seconds: 0 },
  ])('labelDelaySeconds: $delay ms → $seconds s', ({ delay, seconds }) => {
    expect(labelDelaySeconds({ event_time: T0, label_time: T0 + delay })).toBe(seconds);
  });

  it.each([
    { s: spec, label: 'UP', code: null },
    { s: spec, label: 'DOWN', code: null },
    { s: spec, label: 'SIDEWAYS', code: 'BAD_LABEL' },
    { s: spec, label: 1, code: 'BAD_LABEL' },
    { s: openClasses, label: 'SIDEWAYS', code: null },
    { s: openClasses, label: 0.5, code: 'BAD_LABEL' },
    { s: regression, label: 0.25, code: null },
    { s: regression, label: -3, code: null },
    { s: regression, label: Number.NaN, code: 'BAD_LABEL' },
    { s: regression, label: Number.POSITIVE_INFINITY, code: 'BAD_LABEL' },
    { s: regression, label: '0.25', code: 'BAD_LABEL' },
  ])('checkLabel($label) on a $s.label.type label with classes [$s.label.classes] → $code', ({ s, label, code }) => {
    const p = checkLabel(s, label);
    expect(p?.code ?? null).toBe(code);
    if (p) expect(p.stage).toBe('VALIDATION');
  });

  it.each([
    { l: { event_id: 'e1', pipeline: 'elec2' }, code: null },
    { l: { event_id: '', pipeline: 'elec2' }, code: 'BAD_LABEL' },
    { l: { event_id: 'e1', pipeline: 'other' }, code: 'WRONG_PIPELINE' },
  ])('checkIdentity($l) → $code', ({ l, code }) => {
    expect(checkIdentity(spec, l)?.code ?? null).toBe(code);
  });

  it.each([
    { v: 'champion', served: true },
    { v: 'ab', served: true },
    { v: 'shadow', served: false },
  ])('isServed($v) → $served', ({ v, served }) => expect(isServed(v)).toBe(served));

  it.each([
    { ms: Date.UTC(1996, 4, 7), m: '1996-05' },
    { ms: Date.UTC(1997, 11, 31, 23, 59, 59, 999), m: '1997-12' },
    { ms: Date.UTC(1998, 0, 1), m: '1998-01' },
  ])('monthOf → $m', ({ ms, m }) => expect(monthOf(ms)).toBe(m));

  it.each<{ name: string; p: Prediction; truth: string | number; correct: boolean | null; error: number | null }>([
    { name: 'classification hit', p: prediction('a'), truth: 'UP', correct: true, error: null },
    { name: 'classification miss', p: prediction('a'), truth: 'DOWN', correct: false, error: null },
    { name: 'classification, no predicted label', p: prediction('a', { label: null }), truth: 'DOWN', correct: false, error: null },
    { name: 'regression over', p: prediction('a', { label: null, value: 2.5 }), truth: 2, correct: null, error: 0.5 },
    { name: 'regression under', p: prediction('a', { label: null, value: 1 }), truth: 3, correct: null, error: -2 },
    { name: 'regression, no value', p: prediction('a', { label: null, value: null }), truth: 3, correct: null, error: null },
  ])('toLabeledPrediction: $name', ({ p, truth, correct, error }) => {
    const lp = toLabeledPrediction(p, { label: truth, label_time: T0 + 1000 }, 42);
    expect(lp).toEqual({ prediction: p, label: truth, label_time: T0 + 1000, joined_at: 42, correct, error });
    expect(labeledKey(p)).toBe('elec2/elec2-updown');
  });
});

// ---------------------------------------------------------------- the joiner on the in-memory harness

const label = (id: string, patch: Partial<GroundTruth> = {}): GroundTruth => ({ event_id: id, pipeline: 'elec2', label: 'UP', event_time: T0, label_time: T0 + 86_400_000, ...patch });
const L = (v: GroundTruth): FlowInput => ({ topic: 'labels.ground-truth', value: v, key: v.event_id });
const P = (v: Prediction): FlowInput => ({ topic: 'predictions.by-event', value: v, key: v.event_id });
const joinedIds = (outs: Array<{ topic: string; value: unknown }>) => outs.filter((o) => o.topic === 'predictions.labeled').map((o) => (o.value as LabeledPrediction).prediction.prediction_id).sort();

function setup() {
  const stores = createMemoryStores();
  const metrics = new Registry();
  let offsets = new Map<string, bigint>();
  let impl: Awaited<ReturnType<typeof runFlow>>['impl'] | undefined;
  return {
    stores,
    metrics,
    /** Runs records through the same joiner (its state kept), continuing the offsets. */
    async run(inputs: FlowInput[], o: { crashAfterChunks?: number[]; batchMax?: number } = {}) {
      const r = await runFlow(joiner, inputs, { spec, stores, metrics, offsets, ...(impl ? { impl } : {}), ...o });
      offsets = r.offsets;
      impl = r.impl;
      return r;
    },
  };
}

describe('joiner (in-memory harness)', () => {
  it('joins a label arriving after its predictions, shadow included, and absorbs duplicates of either side', async () => {
    const j = setup();
    const champ = prediction('e1');
    const shadow = prediction('e1', { variant: 'shadow', model_version: 2, label: 'DOWN' });
    expect((await j.run([P(champ), P(shadow)])).outputs).toEqual([]);
    const first = await j.run([L(label('e1'))]);
    expect(joinedIds(first.outputs)).toEqual([champ.prediction_id, shadow.prediction_id].sort());
    const byId = new Map(first.outputs.map((o) => [(o.value as LabeledPrediction).prediction.prediction_id, o]));
    expect(byId.get(champ.prediction_id)).toMatchObject({ topic: 'predictions.labeled', record: 'LabeledPrediction', key: 'elec2/elec2-updown', value: { prediction: champ, correct: true } });
    expect((byId.get(shadow.prediction_id)!.value as LabeledPrediction).correct).toBe(false);
    // A prediction seen again and a duplicate label: nothing more.
    expect((await j.run([P(champ), L(label('e1'))])).outputs).toEqual([]);
    expect(j.stores.training.rows.size).toBe(1); // one per event, from the served prediction
    expect(j.stores.training.rows.get('e1')!.modelVersion).toBe(1);
    expect(j.stores.labels.labeled.size).toBe(2);
    expect(j.stores.labels.truths.get('e1')!.label).toBe('UP');
    const text = await j.metrics.metrics();
    expect(text).toMatch(/loopline_joiner_labels_total\{outcome="joined"\} 1/);
    expect(text).toMatch(/loopline_joiner_labels_total\{outcome="duplicate"\} 1/);
    expect(text).toMatch(/loopline_joiner_predictions_total\{outcome="duplicate"\} 1/);
    expect(text).toMatch(/loopline_joiner_label_coverage 1/);
  });

  it('keeps a label that comes first pending; each prediction is joined as it arrives, with its exact values', async () => {
    const j = setup();
    expect((await j.run([L(label('e2', { label: 'DOWN' }))])).outputs).toEqual([]);
    const champ = prediction('e2');
    const shadow = prediction('e2', { variant: 'shadow', model_version: 2 });
    const out = await j.run([P(champ), P(shadow)]);
    expect(joinedIds(out.outputs)).toEqual([champ.prediction_id, shadow.prediction_id].sort());
    const lp = out.outputs.map((o) => o.value as LabeledPrediction).find((x) => x.prediction.variant === 'shadow')!;
    expect(lp.prediction).toEqual(shadow); // entity, produced_at and null features as scored
    expect(lp.label).toBe('DOWN');
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_labels_total\{outcome="pending"\} 1/);
  });

  it('does nothing for a prediction without a label', async () => {
    const j = setup();
    expect((await j.run([P(prediction('e3'))])).outputs).toEqual([]);
    expect(j.stores.labels.labeled.size).toBe(0);
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_label_coverage 0/);
  });

  it('re-emits on a replay of the completing record (its transaction was aborted), and only then', async () => {
    const j = setup();
    const p = prediction('e4');
    await j.run([P(p)]);
    // The label's chunk crashes after its side effects, before its commit: the replay emits the join again.
    const r = await j.run([L(label('e4'))], { crashAfterChunks: [0] });
    expect(r.calls).toBe(2);
    expect(joinedIds(r.outputs)).toEqual([p.prediction_id]);
    // Afterwards a duplicate label and the prediction again are absorbed.
    expect((await j.run([P(p), L(label('e4'))])).outputs).toEqual([]);
  });

  it('emits once for duplicate labels in one chunk', async () => {
    const j = setup();
    const p = prediction('e5');
    await j.run([P(p)]);
    const out = await j.run([L(label('e5')), L(label('e5')), L(label('e6'))]);
    expect(joinedIds(out.outputs)).toEqual([p.prediction_id]);
  });

  it('sends a label past the horizon to labels.late and late_labels, never joins it', async () => {
    const j = setup();
    const p = prediction('e7');
    const late = label('e7', { label_time: T0 + H + 1 });
    const out = await j.run([L(late)]);
    expect(out.outputs).toEqual([{ topic: 'labels.late', record: 'GroundTruth', key: 'e7', value: late }]);
    expect(j.stores.labels.late.map((t) => t.event_id)).toEqual(['e7']);
    expect(j.stores.labels.truths.has('e7')).toBe(false);
    expect((await j.run([P(p)])).outputs).toEqual([]);
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_labels_total\{outcome="late"\} 1/);
  });

  it('dead-letters invalid labels with BAD_LABEL, and labels of another pipeline', async () => {
    const j = setup();
    const out = await j.run([L(label('e8', { label: 'SIDEWAYS' })), L(label('e9')), L(label('e10', { label: 3 })), L(label('e11', { pipeline: 'other' }))]);
    expect(out.outputs).toEqual([]);
    expect(out.deadLetters.map((d) => [d.offset, d.failure.stage, d.failure.code])).toEqual([['0', 'VALIDATION', 'BAD_LABEL'], ['2', 'VALIDATION', 'BAD_LABEL'], ['3', 'VALIDATION', 'WRONG_PIPELINE']]);
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_labels_total\{outcome="invalid"\} 3/);
  });

  it('throws a retriable TransientError while the store is down, never a dead letter', async () => {
    const stores = createMemoryStores();
    const down = { load: async () => { throw new TransientError('state store: no host available (injected)'); }, save: async () => {} };
    stores.state = (() => down) as never;
    const err = await runFlow(joiner, [L(label('e12'))], { spec, stores }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).retriable).toBe(true);
  });
});
