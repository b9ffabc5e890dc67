import { describe, expect, it } from 'vitest';
import { splitByTime } from './model-builder.js';

describe('time-based split', () => {
  it('holds out the newest rows and trains on the window before them', () => {
    const rows = Array.from({ length: 10 }, (_, i) => ({ eventTime: 100 - i })); // newest first
    const { holdout, train } = splitByTime(rows, 3, 4);
    expect(holdout.map((r) => r.eventTime)).toEqual([100, 99, 98]);
    expect(train.map((r) => r.eventTime)).toEqual([97, 96, 95, 94]);
    expect(Math.min(...holdout.map((r) => r.eventTime))).toBeGreaterThan(Math.max(...train.map((r) => r.eventTime)));
  });
});
