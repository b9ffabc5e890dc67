import { describe, expect, it } from 'vitest';
import { createMemoryRegistry } from '../store/memory.js';
import { promote, promoteRollout, rejectRollout, rolloutCandidate, rolloutNeeded, startAbStage, startShadowStage } from './lifecycle.js';
import type { RegisterInput } from './registry.js';

const policy = (when: 'new-spec' | 'always' | 'never') => ({ when, shadowWindows: 1, abShare: 0.5, abWindows: 1, margin: null });
const P = 'p';
const M = 'm';
const c = { pipeline: P, modelName: M, actor: 'test', reason: 'r', at: 1 };

async function registry(n: number) {
  const r = createMemoryRegistry();
  for (let i = 0; i < n; i++) {
    await r.register({ pipeline: P, modelName: M, status: 'candidate', onnx: new Uint8Array([i]), spec: { features: [], classes: [] }, baseline: {}, metrics: {}, trainer: 't', trainerSettings: {}, trainingRows: 0 } as unknown as RegisterInput);
  }
  await promote(r, { ...c, version: 1, expected: null });
  return r;
}

describe('staged rollout in the lifecycle', () => {
  it('rolloutNeeded: new-spec stages a candidate whose inputs differ from the champion\'s, always every one, never none; none without a champion', () => {
    const v1 = 'day,period,nswdemand';
    const v2 = 'day,period,nswdemand,nswdemand_ma48';
    const table: Array<[Parameters<typeof rolloutNeeded>, boolean]> = [
      [[policy('new-spec'), v2, v1], true],
      [[policy('new-spec'), v1, v2], true],
      [[policy('new-spec'), v1, v1], false],
      [[policy('new-spec'), 'period,day,nswdemand', v1], true],
      [[policy('always'), v1, v1], true],
      [[policy('never'), v2, v1], false],
      [[policy('always'), v1, undefined], false],
    ];
    for (const [args, want] of table) expect([args, rolloutNeeded(...args)]).toEqual([args, want]);
  });

  it('rolloutCandidate: a shadow or A/B arm newer than the champion, not the previous champion', () => {
    expect(rolloutCandidate({ champion: 2, previous: 1, shadow: 1, ab: null })).toBeNull();
    expect(rolloutCandidate({ champion: 2, previous: 1, shadow: 3, ab: null })).toBe(3);
    expect(rolloutCandidate({ champion: 2, previous: null, shadow: null, ab: 4 })).toBe(4);
    expect(rolloutCandidate({ champion: null, shadow: 3 })).toBeNull();
  });

  it('each step is compare-and-set on the champion and idempotent; the registry history holds them in order', async () => {
    const r = await registry(3);
    expect(await startShadowStage(r, { ...c, cause: 'x', version: 2, expected: 3 })).toBeNull(); // the champion is v1
    expect(await r.serving(P, M)).toMatchObject({ champion: 1, shadow: null });
    const e = await startShadowStage(r, { ...c, cause: 'x', version: 2, expected: 1 });
    expect(e).toMatchObject({ event_id: 'p/m/shadow_start/x', action: 'SHADOW_START', model_version: 2 });
    expect(await startShadowStage(r, { ...c, cause: 'x', version: 2, expected: 1 })).toEqual(e); // a replay
    expect(await startAbStage(r, { ...c, cause: 'y', version: 2, expected: 3, share: 0.3 })).toBe(false);
    expect(await startAbStage(r, { ...c, cause: 'y', version: 2, expected: 1, share: 0.3 })).toBe(true);
    expect(await startAbStage(r, { ...c, cause: 'y', version: 2, expected: 1, share: 0.3 })).toBe(true);
    expect(await r.serving(P, M)).toMatchObject({ champion: 1, shadow: null, ab: 2, abShare: 0.3 });
    expect(await promoteRollout(r, { ...c, cause: 'z', version: 2, expected: 3 })).toBe(false);
    expect(await promoteRollout(r, { ...c, cause: 'z', version: 2, expected: 1 })).toBe(true);
    expect(await promoteRollout(r, { ...c, cause: 'z', version: 2, expected: 1 })).toBe(true);
    expect(await r.serving(P, M)).toMatchObject({ champion: 2, previous: 1, shadow: 1, ab: null });
    expect((await r.history(P, M)).reverse().map((h) => h.action)).toEqual(['PROMOTE', 'SHADOW_START', 'AB_START', 'SHADOW_STOP', 'AB_STOP', 'PROMOTE', 'SHADOW_START']);

    await startShadowStage(r, { ...c, cause: 'w', version: 3, expected: 2 });
    await rejectRollout(r, { ...c, reason: 'worse', version: 3, stage: 'shadow' });
    await rejectRollout(r, { ...c, reason: 'worse', version: 3, stage: 'shadow' });
    expect(await r.serving(P, M)).toMatchObject({ champion: 2, shadow: null, ab: null });
    expect((await r.list(P, M)).find((m) => m.version === 3)).toMatchObject({ status: 'rejected', verdict: 'worse' });
  });
});

