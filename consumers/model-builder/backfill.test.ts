// Backfill of training rows for an input a later spec version added: a row that never carried the
// input gets the value the feature history held at its event time (the preprocessor's as-of rule,
// maxAgeMs included); a value served missing stays missing; a row whose history has nothing stays absent.
import { describe, expect, it } from 'vitest';
import { createMemoryFeatureStore } from '../../store/memory.js';
import type { TrainingRow } from '../../store/training-set.js';
import { elec2, withDemandMean } from '../../test/support/elec2.js';
import { backfillRows } from './backfill.js';

const T0 = Date.UTC(1997, 0, 15);
const MIN = 60_000;
const v2 = withDemandMean(elec2, { maxAgeMs: 60 * MIN });
const row = (i: number, values: TrainingRow['values'], entityId: string | null = 'nsw'): TrainingRow => ({
  eventId: `e${i}`, eventTime: T0 + i * 30 * MIN, values: { period: 0.5, ...values }, label: 'UP', labelTime: T0 + i * 30 * MIN + 1, modelVersion: 1, entityId,
});

describe('backfillRows', () => {
  it('fills an input a row never carried from the history as of its event time; leaves served-missing and unknown alone', async () => {
    const store = createMemoryFeatureStore();
    const at = (t: number, v: number) => ({ update_id: `r:${t}`, feature_set: 'rolling', entity_id: 'nsw', event_time: t, values: { nswdemand_ma48: v } });
    await store.apply([at(T0, 0.1), at(T0 + 30 * MIN, 0.2), at(T0 + 60 * MIN, 0.3)], () => 3600);
    const rows = [
      row(0, {}), // as of T0: 0.1
      row(1, {}), // as of T0 + 30 min: 0.2
      row(2, { nswdemand_ma48: null }), // served missing: stays missing
      row(5, {}), // newest value 0.3 is 90 min old, past maxAgeMs: stays absent
      row(3, {}, null), // no entity recorded (written before rows kept it): stays absent
      row(-2, {}), // before any history: stays absent
    ];
    const { rows: out, filled } = await backfillRows(v2, rows, store);
    expect(out.map((r) => r.values.nswdemand_ma48)).toEqual([0.1, 0.2, null, undefined, undefined, undefined]);
    expect(filled).toEqual({ nswdemand_ma48: 2 });
    expect(rows[0]!.values).not.toHaveProperty('nswdemand_ma48'); // the input rows are not changed
  });

  it('changes nothing for a spec whose inputs every row carries', async () => {
    const store = createMemoryFeatureStore();
    const rows = [row(0, { nswprice_prev: 0.1, nswprice_ma48: null })];
    const { rows: out, filled } = await backfillRows({ ...elec2, model: { ...elec2.model, features: ['period', 'nswprice_prev', 'nswprice_ma48'] } }, rows, store);
    expect(out).toEqual(rows);
    expect(filled).toEqual({});
  });
});
