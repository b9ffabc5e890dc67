import { describe, expect, it } from 'vitest';
import type { ClientEvent } from '../schemas/types.js';
import { featureKeyOf, keyTimes, renderKey } from './feature-keys.js';

describe('renderKey', () => {
  it.each([
    ['a category as it is', 'admin.', 'admin.'],
    ['an integer', 35, '35'],
    ['a fraction', 0.5, '0.5'],
    ['minus zero', -0, '0'],
    ['a large number', 1e21, '1e+21'],
    ['null', null, null],
    ['absent', undefined, null],
    ['an empty string', '', null],
    ['a non-finite number', Number.NaN, null],
  ])('%s', (_n, value, key) => {
    expect(renderKey(value)).toBe(key);
  });
});

describe('featureKeyOf and keyTimes', () => {
  const e = (entity: string, age: number | null, t: number): Pick<ClientEvent, 'entity_id' | 'fields' | 'event_time'> => ({ entity_id: entity, fields: { age }, event_time: t });
  it('keys by the entity by default and by the key field when the set has one', () => {
    expect(featureKeyOf({}, e('c1', 35, 0))).toBe('c1');
    expect(featureKeyOf({ key: { field: 'age' } }, e('c1', 35, 0))).toBe('35');
    expect(featureKeyOf({ key: { field: 'age' } }, e('c1', null, 0))).toBeNull();
  });
  it("gives each key its events' newest and oldest time, leaving keyless events out", () => {
    const r = keyTimes({ key: { field: 'age' } }, [e('c1', 35, 5), e('c2', 40, 3), e('c3', 35, 1), e('c4', null, 9)]);
    expect(r.keys).toEqual(['35', '40', '35', null]);
    expect([...r.newest]).toEqual([['35', 5], ['40', 3]]);
    expect([...r.oldest]).toEqual([['35', 1], ['40', 3]]);
  });
});
