import { describe, expect, it } from 'vitest';
import { evolutionStages } from './demo-report.js';

describe('demo report: the evolution\'s stages', () => {
  it('lists shadow, A/B arm and champion of the models on the new version, by the first event each was logged there', () => {
    const firstAt = new Map([['1/champion', 0], ['7/shadow', 2300], ['7/ab', 2900], ['7/champion', 3500], ['1/shadow', 3500], ['8/champion', 3900], ['6/shadow', 2100]]);
    expect(evolutionStages(firstAt, new Set([7, 8]))).toEqual([
      { stage: 'shadow', version: 7, atEvent: 2300 },
      { stage: 'ab', version: 7, atEvent: 2900 },
      { stage: 'champion', version: 7, atEvent: 3500 },
      { stage: 'champion', version: 8, atEvent: 3900 },
    ]);
    expect(evolutionStages(new Map(), new Set([7]))).toEqual([]);
  });
});
