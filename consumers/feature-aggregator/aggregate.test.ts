import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadSpec, parseSpec, type FeatureSetSpec } from '../../pipelines/spec.js';
import { ConfigError } from '../../core/errors.js';
import { aggregateEvent, type AggregateState } from './aggregate.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const elec2 = () => structuredClone(loadSpec(path.join(here, '..', '..', 'pipelines', 'elec2.json')).spec) as Record<string, any>;

const set = {
  name: 'demand', source: 'events', availableAfterMs: 0, pointInTime: true, waitForWatermarkMs: 0, ttlSeconds: 60, features: {},
  aggregates: {
    mean3: { field: 'x', op: 'mean', window: 3 },
    sum2: { field: 'x', op: 'sum', window: 2 },
    last: { field: 'kind', op: 'last', window: 1 },
    n: { field: 'x', op: 'count', window: 5 },
    lo: { field: 'x', op: 'min', window: 3 },
    hi: { field: 'x', op: 'max', window: 3 },
  },
} as unknown as FeatureSetSpec;

describe('aggregateEvent', () => {
  it('keeps just the windows it needs and computes every op over the entity’s recent events', () => {
    const state: AggregateState = { values: {} };
    const out = [1, 2, null, 4, 5].map((x, i) => aggregateEvent(set, state, { x, kind: `k${i}` }));
    expect(out[0]).toEqual({ mean3: 1, sum2: 1, last: 'k0', n: 1, lo: 1, hi: 1 });
    expect(out[2]).toEqual({ mean3: 1.5, sum2: 2, last: 'k2', n: 3, lo: 1, hi: 2 }); // a missing value is skipped by mean/sum/min/max, counted by count
    expect(out[4]).toEqual({ mean3: 4.5, sum2: 9, last: 'k4', n: 5, lo: 4, hi: 5 });
    expect(state.values.x).toHaveLength(5);
    expect(state.values.kind).toEqual(['k4']);
  });
});

describe('events-sourced feature sets in the spec', () => {
  const withSet = (s: Record<string, any>, extra: Record<string, unknown>) => {
    s.featureSets.push({ name: 'demand', source: 'events', features: { demand_mean: 'numeric' }, aggregates: { demand_mean: { field: 'nswdemand', op: 'mean', window: 4 } }, ...extra });
    return s;
  };
  it('accepts a valid one', () => {
    expect(parseSpec(withSet(elec2(), {})).featureSets[1]!.aggregates.demand_mean!.window).toBe(4);
  });
  it.each([
    ['a feature without aggregate', { features: { demand_mean: 'numeric', other: 'numeric' } }, /aggregates\.other: every feature of an events-sourced set needs an aggregate/],
    ['an unknown field', { aggregates: { demand_mean: { field: 'nope', op: 'mean' } } }, /aggregates\.demand_mean\.field: "nope" is not an event field/],
    ['mean of a category', { aggregates: { demand_mean: { field: 'day', op: 'mean' } } }, /mean needs a numeric field/],
  ])('names the field: %s', (_n, extra, message) => {
    expect(() => parseSpec(withSet(elec2(), extra))).toThrow(ConfigError);
    expect(() => parseSpec(withSet(elec2(), extra))).toThrow(message);
  });
});
