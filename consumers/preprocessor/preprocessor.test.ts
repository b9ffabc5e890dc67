import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadSpec } from '../../pipelines/spec.js';
import type { ClientEvent } from '../../schemas/types.js';
import { valueAt, type EntityFeatures } from '../../store/feature-store.js';
import { checkUpdate } from '../../pipelines/validate.js';
import { buildVector, checkEvent } from './preprocessor.js';

const { spec } = loadSpec(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'pipelines', 'elec2.json'));
const T = Date.UTC(1996, 6, 1, 12);
const event = (fields: Partial<ClientEvent['fields']> = {}, extra: Partial<ClientEvent> = {}): ClientEvent => ({
  event_id: 'e1', pipeline: 'elec2', entity_id: 'nsw', event_time: T, produced_at: 1,
  fields: { day: '2', period: 0.5, nswdemand: 0.4, vicprice: 0.003, vicdemand: 0.4, transfer: 0.4, ...fields } as ClientEvent['fields'], ...extra,
});

describe('checkEvent', () => {
  it.each([
    ['valid', event(), null],
    ['NaN', event({ nswdemand: Number.NaN }), 'NON_FINITE'],
    ['-Infinity', event({ transfer: Number.NEGATIVE_INFINITY }), 'NON_FINITE'],
    ['string for numeric', event({ period: 'noon' }), 'WRONG_TYPE'],
    ['number for categorical', event({ day: 2 }), 'WRONG_TYPE'],
    ['other pipeline', event({}, { pipeline: 'sea' }), 'WRONG_PIPELINE'],
    ['empty entity', event({}, { entity_id: '' }), 'MISSING_ENTITY'],
  ])('%s', (_n, e, code) => {
    expect(checkEvent(spec, e)?.code ?? null).toBe(code);
  });
});

describe('point-in-time serving', () => {
  const f = { value: 0.7, asOf: T, prevValue: 0.6, prevAsOf: T - 1_800_000 };
  it.each([
    ['latest known at event time', T, undefined, 0.7],
    ['latest is in the future: the one before', T - 1, undefined, 0.6],
    ['both in the future', T - 1_800_001, undefined, null],
    ['too old for maxAge', T + 10_000_000, 7_200_000, null],
  ])('%s', (_n, at, maxAge, want) => {
    expect(valueAt(f, at, maxAge)?.value ?? null).toBe(want);
  });
});

describe('buildVector', () => {
  it('serves event fields and feature-set values, flagging what is missing', () => {
    const rows = new Map<string, EntityFeatures | undefined>([['market', new Map([['nswprice_prev', { value: 0.05, asOf: T, prevValue: null, prevAsOf: null }]])]]);
    const v = buildVector(spec, event({ vicprice: null }), rows, 99)!;
    expect(v.values.nswprice_prev).toBe(0.05);
    expect(v.values.nswprice_ma48).toBeNull();
    expect(v.missing.sort()).toEqual(['nswprice_ma48', 'vicprice']);
    expect(v.feature_age_ms).toEqual({ market: 0 });
    expect(v.processed_at).toBe(99);
  });

  it('imputes an unknown entity, or dead-letters it when the spec says so', () => {
    const none = new Map<string, EntityFeatures | undefined>([['market', undefined]]);
    expect(buildVector(spec, event(), none, 0)!.missing).toEqual(expect.arrayContaining(['nswprice_prev', 'nswprice_ma48']));
    expect(buildVector({ ...spec, missingEntity: 'dead-letter' }, event(), none, 0)).toBeNull();
  });
});

describe('checkUpdate', () => {
  const u = (values: Record<string, number | string | null>, feature_set = 'market') => ({ update_id: 'u', feature_set, entity_id: 'nsw', event_time: T, values });
  it.each([
    ['valid', u({ nswprice_prev: 0.1 }), null],
    ['unknown set', u({ x: 1 }, 'weather'), 'UNKNOWN_FEATURE_SET'],
    ['unknown feature', u({ price: 1 }), 'UNKNOWN_FIELD'],
    ['non-finite', u({ nswprice_ma48: Number.POSITIVE_INFINITY }), 'NON_FINITE'],
  ])('%s', (_n, update, code) => {
    expect(checkUpdate(spec, update)?.code ?? null).toBe(code);
  });
});
