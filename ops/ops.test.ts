import { describe, expect, it } from 'vitest';
import { createTopicNames } from '../streams/topics.js';
import { demoRunOf } from './clean.js';
import { mergePatch, parseDeadLetter, sourceOf, summarize } from './dead-letters.js';
import { histogramQuantile, parsePrometheusText, sumOf } from './metrics-source.js';
import { byGroup, lagRows, workerGroups } from './offsets.js';
import { loadSpec } from '../pipelines/spec.js';

const headers = (code: string, offset: string) => ({
  '__connect.errors.topic': Buffer.from('p.events.client'),
  '__connect.errors.partition': Buffer.from('1'),
  '__connect.errors.offset': Buffer.from(offset),
  '__connect.errors.stage': Buffer.from('VALIDATION'),
  '__connect.errors.exception.message': Buffer.from(`bad ${code}`),
  '__connect.errors.connector.name': Buffer.from('preprocessor'),
  'error.code': Buffer.from(code),
});
const letter = (code: string, offset: string) => parseDeadLetter('events.client.dlq', { partition: 0, offset, key: Buffer.from('nsw'), value: Buffer.from([0]), headers: headers(code, offset), timestamp: 1 });

describe('dead letters', () => {
  it('read their reason and source from the __connect.errors.* headers', () => {
    const l = letter('WRONG_TYPE', '7');
    expect(l).toMatchObject({ sourceTopic: 'events.client', source: { topic: 'p.events.client', partition: 1, offset: '7' }, stage: 'VALIDATION', code: 'WRONG_TYPE', worker: 'preprocessor', replayedFrom: null });
    expect(l.headers['error.code']).toBe('WRONG_TYPE');
  });

  it('are counted by topic and reason, most frequent first, with first and last offsets', () => {
    const s = summarize([letter('A', '1'), letter('B', '2'), letter('B', '5')]);
    expect(s.map((r) => [r.code, r.count, r.first, r.last])).toEqual([['B', 2, '0/2', '0/5'], ['A', 1, '0/1', '0/1']]);
  });

  it('know the source topic of each dead-letter topic and refuse others', () => {
    expect(sourceOf('features.updates.dlq').name).toBe('features.updates');
    expect(() => sourceOf('events.client')).toThrow(/not a dead-letter topic/);
  });

  it.each([
    [{ a: 1, b: { c: 2 } }, { b: { c: 3 } }, { a: 1, b: { c: 3 } }],
    [{ a: 1, b: 2 }, { b: null }, { a: 1 }],
    [{ a: [1, 2] }, { a: [3] }, { a: [3] }],
    [{ fields: { period: 'noon', day: '3' } }, { fields: { period: 0.5 } }, { fields: { period: 0.5, day: '3' } }],
  ])('merge-patch %j with %j', (target, patch, expected) => {
    expect(mergePatch(target, patch)).toEqual(expected);
  });
});

describe('prometheus text', () => {
  const text = [
    '# HELP loopline_worker_records_total Input records by outcome.',
    '# TYPE loopline_worker_records_total counter',
    'loopline_worker_records_total{worker="scorer",topic="features.vectors",outcome="processed"} 120',
    'loopline_worker_records_total{worker="scorer",topic="features.vectors",outcome="dead_letter"} 3',
    'loopline_worker_records_total{worker="joiner",topic="x",outcome="processed"} 5',
    'loopline_joiner_label_coverage 0.75',
    'loopline_joiner_label_delay_seconds_bucket{le="3600"} 1',
    'loopline_joiner_label_delay_seconds_bucket{le="86400"} 8',
    'loopline_joiner_label_delay_seconds_bucket{le="+Inf"} 10',
    'weird{msg="a \\"quoted\\" value"} 1',
  ].join('\n');
  const samples = parsePrometheusText(text);

  it('parses samples with labels and sums them by label', () => {
    expect(sumOf(samples, 'loopline_worker_records_total', { worker: 'scorer' })).toBe(123);
    expect(sumOf(samples, 'loopline_worker_records_total')).toBe(128);
    expect(samples.find((s) => s.name === 'loopline_joiner_label_coverage')?.value).toBe(0.75);
    expect(samples.find((s) => s.name === 'weird')?.labels.msg).toBe('a "quoted" value');
  });

  it('reads a quantile from cumulative buckets', () => {
    expect(histogramQuantile(samples, 'loopline_joiner_label_delay_seconds', 0.5)).toBe(86400);
    expect(histogramQuantile(samples, 'loopline_joiner_label_delay_seconds', 0.1)).toBe(3600);
    expect(histogramQuantile([], 'nothing', 0.5)).toBeNull();
  });
});

describe('lag and throughput', () => {
  const row = (partition: number, end: number, committed: number | null) => ({ worker: 'scorer', group: 'p.loopline-scorer', topic: 'features.vectors', partition, end, committed });
  it('is end minus committed per partition, with records/s between two samples', () => {
    const before = { at: 1000, rows: [row(0, 100, 40), row(1, 50, null)] };
    const now = { at: 3000, rows: [row(0, 200, 140), row(1, 60, 20)] };
    const rows = lagRows(now, before);
    expect(rows.map((r) => [r.partition, r.lag, r.perSecond])).toEqual([[0, 60, 50], [1, 40, 10]]);
    expect(byGroup(rows)).toMatchObject([{ worker: 'scorer', lag: 100, perSecond: 60 }]);
    expect(lagRows(now).every((r) => r.perSecond === null)).toBe(true);
  });

  it('names each worker group as the runtime does', () => {
    const { spec } = loadSpec('pipelines/elec2.json');
    const groups = workerGroups(spec, createTopicNames('demo-x.'));
    expect(groups.find((g) => g.worker === 'scorer')).toEqual({ worker: 'scorer', groupId: 'demo-x.loopline-scorer', topics: ['features.vectors'] });
    expect(groups.map((g) => g.worker)).not.toContain('feature-aggregator'); // elec2 has no events-sourced set
  });
});

describe('clean', () => {
  it('recognises a demo run prefix', () => {
    expect(demoRunOf('demo-20261201211530ab12.')).toBe('20261201211530ab12');
    expect(demoRunOf('staging.')).toBeNull();
  });
});
