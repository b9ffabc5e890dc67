import { describe, expect, it } from 'vitest';
import { abArm, predictionId } from './scorer.js';

describe('scorer ids and arms', () => {
  it('derives the prediction id from event, model version and variant', () => {
    expect(predictionId('e1', 'm', 3, 'champion')).toBe('e1/m@3/champion');
  });
  it('assigns A/B arms stably and in proportion', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `e${i}`);
    const share = ids.filter((id) => abArm(id, 0.2) === 'ab').length / ids.length;
    expect(share).toBeGreaterThan(0.18);
    expect(share).toBeLessThan(0.22);
    expect(ids.map((id) => abArm(id, 0.2))).toEqual(ids.map((id) => abArm(id, 0.2)));
    expect(abArm('e1', 0)).toBe('champion');
  });
});
