import { describe, it, expect } from 'vitest';
import { checkFeatureSpec, featureSpecDifference, featureSpecsEqual } from './feature-spec.js';
import type { FeatureSpec } from './feature-spec.js';
import { SMALL_SPEC } from './test-support.js';

const withChange = (change: Partial<FeatureSpec>): FeatureSpec => ({ ...SMALL_SPEC, ...change });

describe('checkFeatureSpec', () => {
  it('accepts a valid spec', () => {
    expect(checkFeatureSpec(SMALL_SPEC)).toEqual([]);
  });

  it.each<[string, FeatureSpec, RegExp]>([
    ['no features', withChange({ features: [] }), /no features/],
    ['duplicate feature', withChange({ features: [{ name: 'a', kind: 'numeric' }, { name: 'a', kind: 'numeric' }] }), /duplicate feature "a"/],
    ['categorical without categories', withChange({ features: [{ name: 'c', kind: 'categorical' }] }), /"c" has no categories/],
    ['duplicate categories', withChange({ features: [{ name: 'c', kind: 'categorical', categories: ['x', 'x'] }] }), /duplicates/],
    ['reserved category', withChange({ features: [{ name: 'c', kind: 'categorical', categories: ['__other__'] }] }), /reserved/],
    ['numeric with categories', withChange({ features: [{ name: 'n', kind: 'numeric', categories: ['x'] }] }), /must not have categories/],
    ['binary with 3 classes', withChange({ classes: ['a', 'b', 'c'] }), /exactly 2 classes/],
    ['multiclass with 1 class', withChange({ task: 'multiclass', classes: ['a'] }), /at least 2 classes/],
    ['regression with classes', withChange({ task: 'regression' }), /no classes/],
    ['duplicate classes', withChange({ classes: ['a', 'a'] }), /classes contain duplicates/],
  ])('rejects %s', (_, spec, problem) => {
    expect(checkFeatureSpec(spec).join('\n')).toMatch(problem);
  });
});

describe('featureSpecsEqual', () => {
  it('treats a missing categories list as empty', () => {
    const explicit = withChange({ features: [{ name: 'age', kind: 'numeric', categories: [] }] });
    const implicit = withChange({ features: [{ name: 'age', kind: 'numeric' }] });
    expect(featureSpecsEqual(explicit, implicit)).toBe(true);
  });

  it.each<[string, FeatureSpec, RegExp]>([
    ['task', withChange({ task: 'multiclass' }), /task/],
    ['class order', withChange({ classes: ['yes', 'no'] }), /classes/],
    ['feature order', withChange({ features: [...SMALL_SPEC.features].reverse() }), /feature 0 is "plan"/],
    ['category order', withChange({ features: [SMALL_SPEC.features[0]!, { name: 'plan', kind: 'categorical', categories: ['pro', 'free'] }] }), /categories/],
  ])('detects a different %s', (_, other, message) => {
    expect(featureSpecsEqual(SMALL_SPEC, other)).toBe(false);
    expect(featureSpecDifference(SMALL_SPEC, other)).toMatch(message);
  });
});
