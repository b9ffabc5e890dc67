import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import type { QualityReport } from '../../schemas/types.js';
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
});
