import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type cassandra from 'cassandra-driver';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import type { GroundTruth, LabeledPrediction, Prediction } from '../../schemas/types.js';
import type { LoggedPrediction, PredictionLog } from '../../store/prediction-log.js';
import { TransientError } from '../../streams/errors.js';
import type { InputRecord } from '../../streams/runtime.js';
import {
  checkIdentity, checkLabel, claimDecision, claimTag, createLabelJoiner, createPredictionJoiner, fromLogged, isLate, isServed, labelDelaySeconds, labeledKey, monthOf, toLabeledPrediction,
} from './joiner.js';

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
    features: { day: '3', period: 0.5, nswprice_prev: null }, missing: ['nswprice_prev'],
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
    { r: { applied: true, claimedBy: 'me' }, d: 'claimed' },
    { r: { applied: false, claimedBy: 'me' }, d: 'reclaimed' },
    { r: { applied: false, claimedBy: 'someone' }, d: 'absorbed' },
    { r: { applied: false, claimedBy: null }, d: 'absorbed' },
  ])('claimDecision($r) → $d', ({ r, d }) => {
    expect(claimDecision(r, 'me')).toBe(d);
  });

  it('claimTag names worker, topic, partition and offset', () => {
    expect(claimTag('label-joiner', { topic: 'p.labels.ground-truth', partition: 2, offset: '41' })).toBe('label-joiner:p.labels.ground-truth:2:41');
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

  it('fromLogged restores null features from `missing`', () => {
    const p = prediction('e9', { variant: 'shadow' });
    const logged: LoggedPrediction = { ...p, features: { day: '3', period: 0.5 } };
    expect(fromLogged(logged)).toEqual(p);
  });
});

// ---------------------------------------------------------------- the claim protocol on an in-memory store

interface FakeDb {
  truth: Map<string, { pipeline: string; label_str: string | null; label_num: number | null; event_time: Date; label_time: Date; joined?: boolean }>;
  late: Map<string, unknown[]>;
  claims: Map<string, string>;
  labeled: Map<string, unknown[]>;
  training: Map<string, unknown[]>;
  months: Set<string>;
  down: boolean;
}

function fakeCassandra(log: Map<string, Prediction[]>): { cql: cassandra.Client; db: FakeDb } {
  const db: FakeDb = { truth: new Map(), late: new Map(), claims: new Map(), labeled: new Map(), training: new Map(), months: new Set(), down: false };
  const rs = (rows: Array<Record<string, unknown>>, applied = true) => ({
    rows: rows.map((r) => ({ get: (k: string) => r[k] })),
    wasApplied: () => applied,
  });
  const execute = async (q: string, p: unknown[]) => {
    if (db.down) throw new Error('NoHostAvailableError: All host(s) tried for query failed');
    if (q.startsWith('INSERT INTO ground_truth')) {
      const [id, pipeline, s, n, et, lt] = p as [string, string, string | null, number | null, Date, Date];
      db.truth.set(id, { ...db.truth.get(id), pipeline, label_str: s, label_num: n, event_time: et, label_time: lt });
      return rs([]);
    }
    if (q.startsWith('SELECT pipeline, label_str')) {
      const t = db.truth.get(p[0] as string);
      return rs(t ? [t] : []);
    }
    if (q.startsWith('UPDATE ground_truth SET joined')) {
      const t = db.truth.get(p[0] as string);
      if (t) t.joined = true;
      return rs([]);
    }
    if (q.startsWith('INSERT INTO late_labels')) return (db.late.set(p[2] as string, p), rs([]));
    if (q.startsWith('INSERT INTO labeled_claims')) {
      const [id, by] = p as [string, string];
      const had = db.claims.get(id);
      if (had !== undefined) return rs([{ '[applied]': false, claimed_by: had }], false);
      db.claims.set(id, by);
      return rs([{ '[applied]': true }]);
    }
    if (q.startsWith('INSERT INTO labeled_by_time')) return (db.labeled.set(`${p[4] as string}/${p[5] as string}/${p[2] as number}`, p), rs([]));
    if (q.startsWith('INSERT INTO training_rows')) return (db.training.set(p[3] as string, p), rs([]));
    if (q.startsWith('INSERT INTO training_months')) return (db.months.add(`${p[0] as string}/${p[1] as string}`), rs([]));
    if (q.startsWith('SELECT model_name, model_version, variant, entity_id, produced_at')) {
      return rs((log.get(p[0] as string) ?? []).map((x) => ({ ...x, produced_at: new Date(x.produced_at) })));
    }
    throw new Error(`fake cassandra: unexpected query ${q}`);
  };
  return { cql: { execute } as unknown as cassandra.Client, db };
}

function fakeLog(log: Map<string, Prediction[]>, down: () => boolean): PredictionLog {
  return {
    async write(ps) {
      for (const p of ps) log.set(p.event_id, [...(log.get(p.event_id) ?? []).filter((x) => x.prediction_id !== p.prediction_id), p]);
    },
    async byEvent(id) {
      if (down()) throw new Error('NoHostAvailableError');
      // As the real log returns them: null features dropped.
      return (log.get(id) ?? []).map((p) => ({ ...p, features: Object.fromEntries(Object.entries(p.features).filter(([, v]) => v !== null)) as Record<string, number | string> }));
    },
  };
}

function setup() {
  const log = new Map<string, Prediction[]>();
  const { cql, db } = fakeCassandra(log);
  const plog = fakeLog(log, () => db.down);
  const metrics = new Registry();
  const deps = { spec, cql, log: plog, metrics, now: () => 1_000_000 };
  return { log: plog, db, metrics, labels: createLabelJoiner(deps), predictions: createPredictionJoiner(deps) };
}

let offset = 0;
function rec<V>(topic: string, value: V, partition = 0): InputRecord<V> {
  return { topic, partition, offset: String(offset++), key: null, timestamp: 0, headers: {}, value };
}
const label = (id: string, patch: Partial<GroundTruth> = {}): GroundTruth => ({ event_id: id, pipeline: 'elec2', label: 'UP', event_time: T0, label_time: T0 + 86_400_000, ...patch });
const L = (v: GroundTruth) => rec('labels.ground-truth', v);
const P = (v: Prediction) => rec('predictions', v);
const ids = (outs: Array<{ value: unknown }>) => outs.map((o) => (o.value as LabeledPrediction).prediction.prediction_id).sort();

describe('label and prediction joiners (in-memory store)', () => {
  it('joins a label arriving after its predictions, shadow included, and absorbs the other side and duplicates', async () => {
    const j = setup();
    const champ = prediction('e1');
    const shadow = prediction('e1', { variant: 'shadow', model_version: 2, label: 'DOWN' });
    await j.log.write([champ, shadow]);
    const first = await j.labels.process([L(label('e1'))]);
    expect(ids(first.outputs)).toEqual([champ.prediction_id, shadow.prediction_id].sort());
    const byId = new Map(first.outputs.map((o) => [(o.value as LabeledPrediction).prediction.prediction_id, o]));
    expect(byId.get(champ.prediction_id)).toMatchObject({ topic: 'predictions.labeled', record: 'LabeledPrediction', key: 'elec2/elec2-updown', value: { prediction: champ, correct: true, joined_at: 1_000_000 } });
    expect((byId.get(shadow.prediction_id)!.value as LabeledPrediction).correct).toBe(false);
    // The prediction joiner sees the label too: absorbed. A duplicate label: absorbed.
    expect((await j.predictions.process([P(champ)])).outputs).toEqual([]);
    expect((await j.labels.process([L(label('e1'))])).outputs).toEqual([]);
    expect(j.db.training.size).toBe(1); // one per event, from the served prediction
    expect(j.db.training.get('e1')![4]).toBe(1);
    expect(j.db.labeled.size).toBe(2);
    expect(j.db.truth.get('e1')!.joined).toBe(true);
    const text = await j.metrics.metrics();
    expect(text).toMatch(/loopline_joiner_labels_total\{outcome="joined"\} 1/);
    expect(text).toMatch(/loopline_joiner_labels_total\{outcome="duplicate"\} 1/);
    expect(text).toMatch(/loopline_joiner_claims_total\{worker="prediction-joiner",result="absorbed"\} 2/);
    expect(text).toMatch(/loopline_joiner_label_coverage 1/);
  });

  it('keeps a label that comes first pending; the prediction joiner joins it with every logged variant', async () => {
    const j = setup();
    expect((await j.labels.process([L(label('e2', { label: 'DOWN' }))])).outputs).toEqual([]);
    const champ = prediction('e2');
    const shadow = prediction('e2', { variant: 'shadow', model_version: 2 });
    await j.log.write([champ, shadow]);
    const out = await j.predictions.process([P(champ)]);
    expect(ids(out.outputs)).toEqual([champ.prediction_id, shadow.prediction_id].sort());
    const lp = out.outputs.map((o) => o.value as LabeledPrediction).find((x) => x.prediction.variant === 'shadow')!;
    expect(lp.prediction).toEqual(shadow); // entity, produced_at and null features restored
    expect(lp.label).toBe('DOWN');
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_labels_total\{outcome="pending"\} 1/);
  });

  it('does nothing for a prediction without a label', async () => {
    const j = setup();
    const p = prediction('e3');
    await j.log.write([p]);
    expect((await j.predictions.process([P(p)])).outputs).toEqual([]);
    expect(j.db.claims.size).toBe(0);
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_label_coverage 0/);
  });

  it('re-emits on a replay of the claiming record (its transaction was aborted), and only then', async () => {
    const j = setup();
    const p = prediction('e4');
    await j.log.write([p]);
    const r = L(label('e4'));
    expect(ids((await j.labels.process([r])).outputs)).toEqual([p.prediction_id]);
    // crash before commit: the runtime replays the same record
    expect(ids((await j.labels.process([r])).outputs)).toEqual([p.prediction_id]);
    // meanwhile the other joiner and a duplicate label are absorbed
    expect((await j.predictions.process([P(p)])).outputs).toEqual([]);
    expect((await j.labels.process([L(label('e4'))])).outputs).toEqual([]);
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_claims_total\{worker="label-joiner",result="reclaimed"\} 1/);
  });

  it('emits once for duplicate labels in one chunk', async () => {
    const j = setup();
    const p = prediction('e5');
    await j.log.write([p]);
    const out = await j.labels.process([L(label('e5')), L(label('e5')), L(label('e6'))]);
    expect(ids(out.outputs)).toEqual([p.prediction_id]);
  });

  it('sends a label past the horizon to labels.late and late_labels, never joins it', async () => {
    const j = setup();
    const p = prediction('e7');
    await j.log.write([p]);
    const late = label('e7', { label_time: T0 + H + 1 });
    const out = await j.labels.process([L(late)]);
    expect(out.outputs).toEqual([{ topic: 'labels.late', record: 'GroundTruth', key: 'e7', value: late }]);
    expect(j.db.late.get('e7')?.[7]).toBe('past_horizon');
    expect(j.db.truth.has('e7')).toBe(false);
    expect((await j.predictions.process([P(p)])).outputs).toEqual([]);
    expect(j.db.claims.size).toBe(0);
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_labels_total\{outcome="late"\} 1/);
  });

  it('dead-letters invalid labels with BAD_LABEL, and labels of another pipeline', async () => {
    const j = setup();
    const out = await j.labels.process([L(label('e8', { label: 'SIDEWAYS' })), L(label('e9')), L(label('e10', { label: 3 })), L(label('e11', { pipeline: 'other' }))]);
    expect(out.outputs).toEqual([]);
    expect(out.deadLetters?.map((d) => [d.index, d.stage, d.code])).toEqual([[0, 'VALIDATION', 'BAD_LABEL'], [2, 'VALIDATION', 'BAD_LABEL'], [3, 'VALIDATION', 'WRONG_PIPELINE']]);
    expect(await j.metrics.metrics()).toMatch(/loopline_joiner_labels_total\{outcome="invalid"\} 3/);
  });

  it('throws a retriable TransientError while Cassandra is down, never a dead letter', async () => {
    const j = setup();
    j.db.down = true;
    const err = await j.labels.process([L(label('e12'))]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect((err as TransientError).retriable).toBe(true);
    await expect(j.predictions.process([P(prediction('e12'))])).rejects.toBeInstanceOf(TransientError);
  });
});
