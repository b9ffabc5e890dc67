import { describe, it, expect } from 'vitest';
import { encodeRows } from './encode.js';
import type { FeatureRow } from './feature-spec.js';
import { SMALL_SPEC } from './test-support.js';

describe('encodeRows', () => {
  it.each<[string, FeatureRow, [number, number]]>([
    ['known values', { age: 30, plan: 'pro' }, [30, 1]],
    ['numeric string', { age: '41.5', plan: 'free' }, [41.5, 0]],
    ['null numeric and unknown category', { age: null, plan: 'enterprise' }, [Number.NaN, -1]],
    ['absent keys', {}, [Number.NaN, -1]],
    ['NaN numeric, null category', { age: Number.NaN, plan: null }, [Number.NaN, -1]],
    ['non-numeric text', { age: 'old', plan: 'pro' }, [Number.NaN, 1]],
  ])('encodes %s', (_, row, expected) => {
    expect(Array.from(encodeRows(SMALL_SPEC, [row]))).toEqual(expected);
  });

  it('lays rows out row-major in spec order', () => {
    const encoded = encodeRows(SMALL_SPEC, [{ plan: 'pro', age: 1 }, { plan: 'free', age: 2 }]);
    expect(Array.from(encoded)).toEqual([1, 1, 2, 0]);
  });
});
