import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../core/errors.js';
import { loadSpec, modelFeatureDefs, parseSpec } from './spec.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const elec2 = () => structuredClone(loadSpec(path.join(here, 'elec2.json')).spec) as Record<string, any>;

describe('pipeline spec', () => {
  it('defaults promotion.rollout: staged when the spec version is new, one shadow and one A/B window at 0.5, the margin of rollbackMargin', () => {
    const s = elec2();
    delete s.promotion.rollout;
    expect(parseSpec(s, 'test').promotion.rollout).toEqual({ when: 'new-spec', shadowWindows: 1, abShare: 0.5, abWindows: 1, margin: null });
  });

  it('loads the bundled Elec2 spec', () => {
    const { spec } = loadSpec(path.join(here, 'elec2.json'));
    expect(spec.task).toBe('binary');
    expect(modelFeatureDefs(spec).map((f) => f.name)).toEqual(spec.model.features);
    expect(modelFeatureDefs(spec)[0]).toEqual({ name: 'day', kind: 'categorical', categories: ['1', '2', '3', '4', '5', '6', '7'] });
  });

  it.each([
    ['unknown model feature', (s: any) => s.model.features.push('nope'), /model\.features\.8: "nope" is neither/],
    ['bad name', (s: any) => (s.name = 'Elec 2'), /name: must be lower-case/],
    ['clash', (s: any) => (s.featureSets[0].features.period = 'numeric'), /featureSets\.0\.features\.period: name clashes with an event field/],
    ['binary classes', (s: any) => (s.label.classes = ['A', 'B', 'C']), /label\.classes: a binary task has exactly 2 classes/],
    ['horizon', (s: any) => (s.label.horizonMs = 1000), /label\.horizonMs: must be at least label\.delayMs/],
    ['feed set', (s: any) => (s.replay.feeds[0].featureSet = 'weather'), /replay\.feeds\.0\.featureSet: no feature set named "weather"/],
    ['wrong type', (s: any) => (s.monitoring.windowSize = 'big'), /monitoring\.windowSize: Expected number/],
    ['rollout when', (s: any) => (s.promotion.rollout = { when: 'sometimes' }), /promotion\.rollout\.when: Invalid enum value\. Expected 'new-spec' \| 'always' \| 'never'/],
    ['rollout share', (s: any) => (s.promotion.rollout = { abShare: 0 }), /promotion\.rollout\.abShare: Number must be greater than 0/],
    ['rollout windows', (s: any) => (s.promotion.rollout = { shadowWindows: 0 }), /promotion\.rollout\.shadowWindows: Number must be greater than or equal to 1/],
    ['command trainer', (s: any) => (s.trainer.kind = 'command'), /trainer\.command: required/],
    ['unknown algorithm', (s: any) => (s.trainer.algorithm = 'forest'), /trainer\.algorithm: Invalid discriminator value\. Expected 'linear' \| 'gbdt'/],
    ['gbdt setting on linear', (s: any) => (s.trainer = { algorithm: 'linear', settings: { maxDepth: 4 } }), /trainer\.settings: Unrecognized key\(s\) in object: 'maxDepth'/],
    ['linear setting on gbdt', (s: any) => (s.trainer = { algorithm: 'gbdt', settings: { epochs: 3 } }), /trainer\.settings: Unrecognized key\(s\) in object: 'epochs'/],
    ['gbdt depth', (s: any) => (s.trainer = { algorithm: 'gbdt', settings: { maxDepth: 20 } }), /trainer\.settings\.maxDepth: Number must be less than or equal to 12/],
    ['gbdt subsample', (s: any) => (s.trainer = { algorithm: 'gbdt', settings: { subsample: 0 } }), /trainer\.settings\.subsample: Number must be greater than 0/],
    ['class weight', (s: any) => (s.trainer.settings.classWeight = 'auto'), /trainer\.settings\.classWeight: Invalid enum value/],
  ])('names the field: %s', (_n, mutate, message) => {
    const s = elec2();
    mutate(s);
    expect(() => parseSpec(s)).toThrow(ConfigError);
    expect(() => parseSpec(s)).toThrow(message);
  });

  it('parses a spec it produced to the same spec', () => {
    const once = loadSpec(path.join(here, 'elec2.json')).spec;
    expect(parseSpec(structuredClone(once))).toEqual(once);
  });
});

describe('replay.eventTime', () => {
  const withTime = (eventTime: unknown) => {
    const s = elec2();
    s.replay.eventTime = eventTime;
    return s;
  };

  it.each([
    ['a column name (ISO)', 'event_time', { column: 'event_time', format: 'iso', plus: [] }],
    ['ISO', { column: 'ts', format: 'iso' }, { column: 'ts', format: 'iso', plus: [] }],
    ['format defaults to ISO', { column: 'ts' }, { column: 'ts', format: 'iso', plus: [] }],
    ['epoch seconds', { column: 'ts', format: 'epoch-s' }, { column: 'ts', format: 'epoch-s', plus: [] }],
    ['epoch milliseconds', { column: 'ts', format: 'epoch-ms' }, { column: 'ts', format: 'epoch-ms', plus: [] }],
    ['a date plus an hour column', { column: 'dteday', plus: [{ column: 'hr', unit: 'h' }] }, { column: 'dteday', format: 'iso', plus: [{ column: 'hr', unit: 'h' }] }],
    ['row order with a step', { rowOrder: { start: '2016-12-01T00:00:00Z', stepMs: 1000 } }, { rowOrder: { start: '2016-12-01T00:00:00Z', stepMs: 1000 } }],
  ])('accepts %s', (_n, given, compiled) => {
    const spec = parseSpec(withTime(given));
    expect(spec.replay!.eventTime).toEqual(compiled);
    expect(parseSpec(structuredClone(spec)).replay!.eventTime).toEqual(compiled);
  });

  it.each([
    ['an unknown format', { column: 'ts', format: 'unix' }, /replay\.eventTime\.format: Invalid enum value\. Expected 'iso' \| 'epoch-s' \| 'epoch-ms', received 'unix'/],
    ['neither column nor rowOrder', { format: 'iso' }, /replay\.eventTime\.column: required: the time column \(or rowOrder for data without one\)/],
    ['both column and rowOrder', { column: 'ts', rowOrder: { start: '2024-01-01', stepMs: 1 } }, /replay\.eventTime\.rowOrder: give either column or rowOrder, not both/],
    ['a rowOrder with a format', { rowOrder: { start: '2024-01-01', stepMs: 1 }, format: 'epoch-s' }, /replay\.eventTime\.format: a rowOrder time has no format/],
    ['a rowOrder with plus', { rowOrder: { start: '2024-01-01', stepMs: 1 }, plus: [] }, /replay\.eventTime\.plus: a rowOrder time has no plus columns/],
    ['a start that is not a date-time', { rowOrder: { start: 'Monday', stepMs: 1000 } }, /replay\.eventTime\.rowOrder\.start: must be an ISO 8601 date-time/],
    ['a step of zero', { rowOrder: { start: '2024-01-01T00:00:00Z', stepMs: 0 } }, /replay\.eventTime\.rowOrder\.stepMs: Number must be greater than 0/],
    ['a missing step', { rowOrder: { start: '2024-01-01T00:00:00Z' } }, /replay\.eventTime\.rowOrder\.stepMs: Required/],
    ['an unknown unit', { column: 'dteday', plus: [{ column: 'hr', unit: 'hours' }] }, /replay\.eventTime\.plus\.0\.unit: Invalid enum value\. Expected 'ms' \| 's' \| 'min' \| 'h' \| 'd'/],
    ['a misspelt key', { column: 'dteday', plusHoursFrom: 'hr' }, /replay\.eventTime: Unrecognized key\(s\) in object: 'plusHoursFrom'/],
    ['a number', 5, /replay\.eventTime: must be a column name or an object/],
  ])('names the field: %s', (_n, given, message) => {
    expect(() => parseSpec(withTime(given))).toThrow(ConfigError);
    expect(() => parseSpec(withTime(given))).toThrow(message);
  });
});

describe('replay.columns', () => {
  it('maps event fields to columns whose names are not field names; default none', () => {
    expect(parseSpec(elec2()).replay!.columns).toEqual({});
    const s = elec2();
    s.replay.columns = { nswdemand: 'nsw.demand' };
    expect(parseSpec(s).replay!.columns).toEqual({ nswdemand: 'nsw.demand' });
  });

  it.each([
    ['a key that is no event field', { nope: 'x' }, /replay\.columns\.nope: "nope" is not an event field/],
    ['a key that is no valid name', { 'emp.var.rate': 'x' }, /replay\.columns\.emp\.var\.rate: must be a letter then letters/],
    ['an empty column', { day: '' }, /replay\.columns\.day: String must contain at least 1 character/],
  ])('names the field: %s', (_n, columns, message) => {
    const s = elec2();
    s.replay.columns = columns;
    expect(() => parseSpec(s)).toThrow(message);
  });
});

describe('featureSets[].key', () => {
  it('defaults to the entity; a set may be keyed by an event field of either kind', () => {
    expect(parseSpec(elec2()).featureSets[0]!.key).toBeUndefined();
    for (const field of ['day', 'period']) {
      const s = elec2();
      s.featureSets[0].key = { field };
      expect(parseSpec(s).featureSets[0]!.key).toEqual({ field });
    }
  });

  it.each([
    ['a field that is no event field', (s: any) => (s.featureSets[0].key = { field: 'region' }), /featureSets\.0\.key\.field: "region" is not an event field/],
    ['a feature-set feature', (s: any) => (s.featureSets[0].key = { field: 'nswprice_prev' }), /featureSets\.0\.key\.field: "nswprice_prev" is not an event field/],
    ['an Object property name', (s: any) => (s.featureSets[0].key = { field: 'constructor' }), /featureSets\.0\.key\.field: "constructor" is not an event field/],
    ['a column instead of a field', (s: any) => (s.featureSets[0].key = { column: 'day' }), /featureSets\.0\.key: Unrecognized key\(s\) in object: 'column'/],
    [
      'an events-sourced set',
      (s: any) => s.featureSets.push({ name: 'demand', source: 'events', key: { field: 'day' }, features: { demand_mean: 'numeric' }, aggregates: { demand_mean: { field: 'nswdemand', op: 'mean', window: 4 } } }),
      /featureSets\.1\.key: only a set with source "stream" can be keyed by an event field/,
    ],
  ])('names the field: %s', (_n, mutate, message) => {
    const s = elec2();
    mutate(s);
    expect(() => parseSpec(s)).toThrow(message);
  });
});

describe('replay feeds that read the label', () => {
  it('must not publish before the label is known', () => {
    const s = elec2();
    s.featureSets[0].features.class_prev = 'categorical';
    s.replay.feeds[0].features.class_prev = { lag: { column: 'class', rows: 0 } };
    expect(() => parseSpec(s)).toThrow(/replay\.feeds\.0\.availableAfterMs: feature "class_prev" reads the label column "class", so it is known only label\.delayMs \(86400000\) after its event; must be at least that/);
    s.replay.feeds[0].availableAfterMs = s.label.delayMs;
    expect(parseSpec(s).replay!.feeds[0]!.availableAfterMs).toBe(86_400_000);
  });
});

describe('the trainer section', () => {
  it('defaults the trainer to the built-in linear algorithm', () => {
    const s = elec2();
    delete s.trainer;
    const spec = parseSpec(s);
    expect(spec.trainer).toEqual({ kind: 'builtin', algorithm: 'linear', settings: {}, bootstrapRows: 5000, windowRows: 2000 });
    const kept = elec2();
    kept.trainer = { settings: { epochs: 30, learningRate: 0.05, seed: 7 } }; // no algorithm: linear
    expect(parseSpec(kept).trainer).toMatchObject({ algorithm: 'linear', settings: { epochs: 30, learningRate: 0.05, seed: 7 } });
  });

  it('takes gbdt with its own settings', () => {
    const s = elec2();
    s.trainer = { algorithm: 'gbdt', settings: { trees: 50, maxDepth: 3, classWeight: 'balanced' }, windowRows: 4000 };
    expect(parseSpec(s).trainer).toEqual({ kind: 'builtin', algorithm: 'gbdt', settings: { trees: 50, maxDepth: 3, classWeight: 'balanced' }, bootstrapRows: 5000, windowRows: 4000 });
  });
});
