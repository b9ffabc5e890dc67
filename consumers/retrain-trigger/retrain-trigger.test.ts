import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import type { QualityReport } from '../../schemas/types.js';
import { progressReportId } from '../drift-monitor/monitor-core.js';
import { decide, initialTriggerState, type TriggerState } from './retrain-trigger.js';

const base = loadSpec(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'pipelines', 'elec2.json')).spec;
const spec: PipelineSpec = { ...base, retrain: { ...base.retrain, everyLabels: null, maxRelativeDrop: 0.1, cooldownLabels: 1000, minFreshLabels: 1000, onDetectorAlarm: true, onDrift: false } };

let n = 0;
function q(version: number, accuracy: number, o: Partial<QualityReport> = {}): QualityReport {
  n++;
  return {
    report_id: `elec2/elec2-updown@${version}/${o.variant ?? 'champion'}/w${o.report_id ?? n}`, pipeline: 'elec2', model_name: 'elec2-updown', model_version: version,
    variant: 'champion', window_start: 0, window_end: n * 1000, count: 500, metrics: { accuracy }, alarm: null, created_at: n, ...o,
  } as QualityReport;
}

function feed(reports: QualityReport[], serving = { champion: 1, shadow: null as number | null }, s: TriggerState = initialTriggerState()) {
  const requests: string[] = [];
  const rollbacks: number[] = [];
  for (const r of reports) {
    const d = decide(spec, s, r, serving);
    s = d.state;
    if (d.request) requests.push(d.request.reason);
    if (d.rollback) rollbacks.push(d.rollback.from);
  }
  return { s, requests, rollbacks };
}

describe('retrain policy', () => {
  it('fires on a relative drop once enough fresh labels arrived, then cools down', () => {
    const { requests } = feed([q(1, 0.8), q(1, 0.79), q(1, 0.6), q(1, 0.6), q(1, 0.6)]);
    expect(requests).toEqual(['quality_drop', 'quality_drop']);
  });

  it('remembers an alarm raised during the cooldown and acts when it ends', () => {
    const { requests, s } = feed([q(1, 0.8, { alarm: 'adwin: error rose' }), q(1, 0.8)]);
    expect(requests).toEqual([]);
    expect(s.pending?.reason).toBe('detector_alarm');
    const after = feed([q(1, 0.8)], undefined, s);
    expect(after.requests).toEqual(['detector_alarm']);
  });

  it('ignores reports of versions that do not serve, and shadows', () => {
    const { requests } = feed([q(7, 0.1), q(7, 0.1), q(1, 0.8, { variant: 'shadow' }), q(1, 0.1, { variant: 'shadow' })]);
    expect(requests).toEqual([]);
  });

  it('derives the request id from the report, so a replay yields the same request', () => {
    const r = [q(1, 0.8), q(1, 0.8), q(1, 0.5)];
    const a = decide(spec, feed(r.slice(0, 2)).s, r[2]!, { champion: 1, shadow: null });
    const b = decide(spec, feed(r.slice(0, 2)).s, r[2]!, { champion: 1, shadow: null });
    expect(a.request?.request_id).toBe(b.request?.request_id);
    expect(a.request?.request_id).toContain(r[2]!.report_id);
  });

  it('rolls back a new champion that does worse than its shadowing predecessor on the same window', () => {
    const serving = { champion: 2, shadow: 1 };
    const worse = feed([q(1, 0.75, { variant: 'shadow', report_id: '0' }), q(2, 0.6, { report_id: '0' })], serving);
    expect(worse.rollbacks).toEqual([2]);
    const better = feed([q(1, 0.7, { variant: 'shadow', report_id: '0' }), q(2, 0.72, { report_id: '0' })], serving);
    expect(better.rollbacks).toEqual([]);
  });

  it('counts fresh labels by the monitor\'s label progress once it comes: every everyLabels served labels, whichever version served them', () => {
    const scheduled: PipelineSpec = { ...spec, retrain: { ...spec.retrain, everyLabels: 500, cooldownLabels: 250, minFreshLabels: 250, maxRelativeDrop: undefined } };
    let total = 0;
    const tick = (version: number, end: number): QualityReport => {
      total += 50;
      return { report_id: progressReportId('elec2', 'elec2-updown', total), pipeline: 'elec2', model_name: 'elec2-updown', model_version: version, variant: 'champion', window_start: end - 10, window_end: end, count: 50, metrics: { labels_total: total }, alarm: null, created_at: end } as QualityReport;
    };
    let s = initialTriggerState();
    const requests: Array<{ at: number; end: number; id: string }> = [];
    const step = (r: QualityReport, serving: { champion: number; shadow: number | null }) => {
      const d = decide(scheduled, s, r, serving);
      s = d.state;
      if (d.request) requests.push({ at: total, end: d.request.window_end, id: d.request.request_id });
    };
    // 450 labels served by v1, then v2 is promoted: its labels continue the count, no window of either version needed.
    for (let i = 0; i < 9; i++) step(tick(1, 100 + i), { champion: 1, shadow: null });
    // A full window of the champion counts nothing once progress counts (it would double the labels).
    step(q(1, 0.8), { champion: 1, shadow: null });
    expect(requests).toEqual([]);
    for (let i = 0; i < 11; i++) step(tick(2, 200 + i), { champion: 2, shadow: 1 });
    expect(requests.map((r) => [r.at, r.end])).toEqual([[500, 200], [1000, 210]]);
    expect(requests[0]!.id).toBe(`elec2/elec2-updown/retrain/${progressReportId('elec2', 'elec2-updown', 500)}`);
    expect(s.labelsSinceRetrain).toBe(0);
    // An alarm after 100 fresh labels waits for the cooldown (250), then fires at the tick that reaches it.
    step(tick(2, 300), { champion: 2, shadow: null });
    step(tick(2, 301), { champion: 2, shadow: null });
    step(q(2, 0.8, { alarm: 'adwin: error rose' }), { champion: 2, shadow: null });
    step(tick(2, 302), { champion: 2, shadow: null });
    step(tick(2, 303), { champion: 2, shadow: null });
    expect(requests.map((r) => r.at)).toEqual([500, 1000]);
    step(tick(2, 304), { champion: 2, shadow: null });
    expect(requests.map((r) => r.at)).toEqual([500, 1000, 1250]);
  });
});

describe('staged rollout (promotion.rollout)', () => {
  /** Shadow 1 window, A/B at 0.5 for 1 window, margin 0.02 (rollbackMargin's). */
  const staged: PipelineSpec = { ...spec, promotion: { ...spec.promotion, metric: 'accuracy', rollbackMargin: 0.02, rollout: { when: 'new-spec', shadowWindows: 1, abShare: 0.5, abWindows: 1, margin: null } } };
  const inputs = { '1': 'a,b', '2': 'a,b,c' };
  const asShadow = { champion: 1, previous: null, shadow: 2, ab: null, inputs };
  const asArm = { champion: 1, previous: null, shadow: null, ab: 2, inputs };
  /** A full window report of `version`/`variant`, index `w`, over event time [w·1000, w·1000+999] (or `span`). */
  function win(version: number, variant: 'champion' | 'shadow' | 'ab', w: number, accuracy: number, span: [number, number] = [w * 1000, w * 1000 + 999]): QualityReport {
    return {
      report_id: `elec2/elec2-updown@${version}/${variant}/w${w}`, pipeline: 'elec2', model_name: 'elec2-updown', model_version: version, variant,
      window_start: span[0], window_end: span[1], count: 500, metrics: { accuracy }, alarm: null, created_at: span[1],
    } as QualityReport;
  }
  function run(steps: Array<[QualityReport, Parameters<typeof decide>[3]]>, s: TriggerState = initialTriggerState(), o: PipelineSpec = staged) {
    const decisions: Array<[string, number, string]> = [];
    for (const [r, serving] of steps) {
      const d = decide(o, s, r, serving);
      s = d.state;
      if (d.rollout) decisions.push([d.rollout.action, d.rollout.version, d.rollout.reason]);
      expect(d.rollback).toBeNull();
    }
    return { s, decisions };
  }

  it('passes: shadow window not worse → A/B; arm window not worse → promote; every step kept with its numbers', () => {
    // The champion is at its window 7 when the candidate's shadow starts at its window 0: same event time, other indexes.
    const { s, decisions } = run([
      [win(2, 'shadow', 0, 0.81, [7000, 7999]), asShadow], // waits: the champion's window over that time is not in yet
      [win(1, 'champion', 7, 0.8), asShadow],
      [win(1, 'champion', 8, 0.8), asArm],
      [win(2, 'ab', 0, 0.79, [8000, 8999]), asArm], // worse by 0.01, within the margin
    ]);
    expect(decisions.map(([a, v]) => [a, v])).toEqual([['ab', 2], ['promote', 2]]);
    expect(decisions[0]![2]).toBe("rollout: A/B stage at 0.5 after 1 shadow window(s) not worse; last: live accuracy of v2 as shadow 0.8100 vs the champion v1's 0.8000 over the same event time (1 window(s)), not worse (margin 0.02 + sampling allowance 0.0412)");
    expect(decisions[1]![2]).toMatch(/^promoted: rollout passed \(1 shadow, 1 A\/B window\(s\) not worse\); last: live accuracy of v2 as A\/B arm 0\.7900 vs the champion v1's 0\.8000 .*worse by 0\.0100 \(margin 0\.02 \+ sampling allowance 0\.04\d\d\)$/);
    expect(s.rollout).toBeNull();
    expect(s.rollouts.map((r) => [r.version, r.champion, r.outcome])).toEqual([[2, 1, 'promoted']]);
    expect(s.rollouts[0]!.steps.map((x) => [x.stage, x.cause, x.candidate, x.champion, x.passed])).toEqual([
      ['shadow', win(2, 'shadow', 0, 0).report_id, null, null, true],
      ['shadow', win(2, 'shadow', 0, 0).report_id, 0.81, 0.8, true],
      ['ab', win(2, 'ab', 0, 0).report_id, 0.79, 0.8, true],
    ]);
  });

  it('compares an arm window with the count-weighted champion windows over its event time', () => {
    const { decisions } = run([
      [win(1, 'champion', 3, 0.8), asShadow],
      [win(2, 'shadow', 0, 0.8, [3000, 3999]), asShadow],
      [win(2, 'ab', 0, 0.7, [4000, 5999]), asArm],
      [win(1, 'champion', 4, 0.74), asArm],
      [win(1, 'champion', 5, 0.66), asArm], // mean 0.70 over [4000, 5999]: the arm is not worse
    ]);
    expect(decisions.map(([a]) => a)).toEqual(['ab', 'promote']);
    expect(decisions[1]![2]).toMatch(/0\.7000 vs the champion v1's 0\.7000 over the same event time \(2 window\(s\)\)/);
  });

  it('rejects at the shadow stage a candidate worse than the champion by more than the margin', () => {
    const { s, decisions } = run([[win(1, 'champion', 7, 0.8), asShadow], [win(2, 'shadow', 0, 0.7, [7000, 7999]), asShadow]]);
    expect(decisions).toEqual([['reject', 2, "rollout rejected at the shadow stage: live accuracy of v2 as shadow 0.7000 vs the champion v1's 0.8000 over the same event time (1 window(s)), worse by 0.1000 (margin 0.02 + sampling allowance 0.0447)"]]);
    expect(s.rollout).toBeNull();
    expect(s.rollouts.map((r) => [r.version, r.stage, r.outcome])).toEqual([[2, 'shadow', 'rejected']]);
    // Rejected once: its later reports (the scorer not yet swapped) start nothing.
    expect(run([[win(2, 'shadow', 1, 0.9, [8000, 8999]), asShadow], [win(1, 'champion', 8, 0.8), asShadow]], s).decisions).toEqual([]);
  });

  it('rejects at the A/B stage, with its own margin when set (plus the sampling allowance of accuracy)', () => {
    const strict: PipelineSpec = { ...staged, promotion: { ...staged.promotion, rollout: { ...staged.promotion.rollout, margin: 0.005 } } };
    const { s, decisions } = run([
      [win(1, 'champion', 7, 0.8), asShadow],
      [win(2, 'shadow', 0, 0.8, [7000, 7999]), asShadow],
      [win(1, 'champion', 8, 0.8), asArm],
      [win(2, 'ab', 0, 0.72, [8000, 8999]), asArm],
    ], undefined, strict);
    expect(decisions.map(([a, v]) => [a, v])).toEqual([['ab', 2], ['reject', 2]]);
    // 0.08 worse: past the margin of 0.005 and the sampling allowance of two windows of 500 (0.044).
    expect(decisions[1]![2]).toMatch(/^rollout rejected at the A\/B arm stage: .* worse by 0\.0800 \(margin 0\.005 \+ sampling allowance 0\.04\d\d\)$/);
    expect(s.rollouts[0]!.outcome).toBe('rejected');
  });

  it('resumes after a restart mid-rollout (state through JSON), and counts a window delivered twice once', () => {
    const first = run([[win(1, 'champion', 7, 0.8), asShadow], [win(2, 'shadow', 0, 0.8, [7000, 7999]), asShadow]]);
    expect(first.decisions.map(([a]) => a)).toEqual(['ab']);
    const twoWindows: PipelineSpec = { ...staged, promotion: { ...staged.promotion, rollout: { ...staged.promotion.rollout, abWindows: 2 } } };
    const restored = JSON.parse(JSON.stringify(first.s)) as TriggerState;
    expect(restored.rollout).toMatchObject({ version: 2, champion: 1, stage: 'ab', passed: 0 });
    const armW0 = win(2, 'ab', 0, 0.8, [8000, 8999]);
    const { s, decisions } = run([[win(1, 'champion', 8, 0.8), asArm], [armW0, asArm], [armW0, asArm], [win(1, 'champion', 9, 0.8), asArm], [win(2, 'ab', 1, 0.8, [9000, 9999]), asArm]], restored, twoWindows);
    expect(decisions.map(([a]) => a)).toEqual(['promote']);
    expect(s.rollouts[0]!.steps.filter((x) => x.stage === 'ab').map((x) => x.cause)).toEqual([armW0.report_id, win(2, 'ab', 1, 0).report_id]);
  });

  it('a state saved before rollouts (no rollout fields) takes one on', () => {
    const old = initialTriggerState() as Partial<TriggerState>;
    delete old.rollout;
    delete old.rollouts;
    delete old.spans;
    const { decisions } = run([[win(1, 'champion', 7, 0.8), asShadow], [win(2, 'shadow', 0, 0.8, [7000, 7999]), asShadow]], old as TriggerState);
    expect(decisions.map(([a]) => a)).toEqual(['ab']);
  });

  it('a shadow on the champion\'s spec version (when new-spec), or any with when never, is no rollout; the guard leaves a newer shadow alone', () => {
    const sameSpec = { ...asShadow, inputs: { '1': 'a,b', '2': 'a,b' } };
    const same = run([[win(1, 'champion', 0, 0.8), sameSpec], [win(2, 'shadow', 0, 0.9), sameSpec]]);
    expect([same.s.rollout, same.decisions]).toEqual([null, []]);
    const never: PipelineSpec = { ...staged, promotion: { ...staged.promotion, rollout: { ...staged.promotion.rollout, when: 'never' } } };
    expect(run([[win(1, 'champion', 0, 0.8), asShadow], [win(2, 'shadow', 0, 0.5), asShadow]], undefined, never).decisions).toEqual([]);
    // 'always' stages a candidate on the same spec version too.
    const always: PipelineSpec = { ...staged, promotion: { ...staged.promotion, rollout: { ...staged.promotion.rollout, when: 'always' } } };
    expect(run([[win(1, 'champion', 0, 0.8), sameSpec], [win(2, 'shadow', 0, 0.8)]].map(([r]) => [r, sameSpec] as [QualityReport, typeof sameSpec]), undefined, always).decisions.map(([a]) => a)).toEqual(['ab']);
  });

  it('a rollout whose candidate lost its stage ends as superseded; one whose champion changed is rejected, its stage stopped', () => {
    const started = run([[win(1, 'champion', 7, 0.8), asShadow]]);
    expect(started.s.rollout?.version).toBe(2);
    const byV3 = { ...asShadow, shadow: 3, inputs: { '1': 'a,b', '3': 'a,b,c' } };
    const { s, decisions } = run([[win(1, 'champion', 8, 0.8), byV3]], started.s);
    expect(decisions).toEqual([]);
    expect(s.rollouts.map((r) => [r.version, r.outcome])).toEqual([[2, 'superseded']]);
    expect(s.rollout?.version).toBe(3);
    // v4 promoted by hand while v2 serves its A/B arm.
    const promotedByHand = { champion: 4, previous: 1, shadow: 1, ab: 2, inputs: { '1': 'a,b', '2': 'a,b,c', '4': 'a,b' } };
    const atAb = run([[win(1, 'champion', 7, 0.8), asShadow], [win(2, 'shadow', 0, 0.8, [7000, 7999]), asShadow]]);
    const changed = decide(staged, atAb.s, win(4, 'champion', 0, 0.8, [8000, 8999]), promotedByHand);
    expect(changed.rollout).toEqual({ action: 'reject', version: 2, champion: 1, stage: 'ab', reason: 'rollout rejected at the A/B arm stage: the champion changed from v1 to v4 during the rollout' });
    expect(changed.state.rollouts.at(-1)?.outcome).toBe('rejected');
  });

  it('holds a retrain trigger while a rollout runs, and fires it once the rollout ends', () => {
    const eager: PipelineSpec = { ...staged, retrain: { ...staged.retrain, cooldownLabels: 0, minFreshLabels: 1, maxRelativeDrop: 0.1 } };
    const requests: string[] = [];
    let s = initialTriggerState();
    const steps: Array<[QualityReport, Parameters<typeof decide>[3]]> = [
      [win(1, 'champion', 7, 0.8), asShadow],
      [win(1, 'champion', 8, 0.6), asShadow], // a relative drop: held, v2's rollout runs
      [win(2, 'shadow', 0, 0.5, [8000, 8999]), asShadow], // v2 rejected: the held trigger fires
    ];
    for (const [r, serving] of steps) {
      const d = decide(eager, s, r, serving);
      s = d.state;
      requests.push(d.request ? `${d.request.reason}@${r.report_id.split('/').at(-1)}` : '-');
    }
    expect(requests).toEqual(['-', '-', 'quality_drop@w0']);
  });

  it('rejects a stalled stage: the champion fills more windows than the stage needs without one of the candidate\'s', () => {
    const champ = [7, 8, 9].map((w) => [win(1, 'champion', w, 0.8), asShadow] as [QualityReport, typeof asShadow]);
    expect(run(champ).decisions).toEqual([]); // shadowWindows 1 + 2 windows of slack
    const { s, decisions } = run([...champ, [win(1, 'champion', 10, 0.8), asShadow]]);
    expect(decisions).toEqual([['reject', 2, 'rollout rejected at the shadow stage: stalled: 4 full windows of the champion v1 and 0 of v2 as shadow since the stage started']]);
    expect(s.rollouts[0]!.outcome).toBe('rejected');
  });

  it('after the rollout\'s promotion the guard judges the new champion against the old one by event time, not window index', () => {
    const promoted = { champion: 2, previous: 1, shadow: 1, ab: null, inputs };
    // v1 resumes an old shadow count (w3) while v2 starts its champion windows at w0; an ancient v1/shadow/w0 must not count.
    const d0 = decide(staged, initialTriggerState(), win(1, 'shadow', 0, 0.99, [0, 999]), promoted);
    const d1 = decide(staged, d0.state, win(2, 'champion', 0, 0.7, [20000, 20999]), promoted);
    expect(d1.rollback).toBeNull();
    const d2 = decide(staged, d1.state, win(1, 'shadow', 3, 0.8, [20000, 20999]), promoted);
    expect(d2.rollback?.reason).toMatch(/live accuracy 0\.7000 is worse than the previous champion's 0\.8000/);
  });
});
