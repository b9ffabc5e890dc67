import { describe, expect, it } from 'vitest';
import { countKafkaLog, countLogLine, DeliveryTracker, logCounts, percentile, summarize, table } from './stats.js';

describe('bench stats', () => {
  it('takes nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(summarize([3, 1, 2])).toMatchObject({ count: 3, p50: 2, max: 3, mean: 2 });
  });

  it('accounts lost, duplicated and unexpected ids, measuring latency from the first delivery', () => {
    const t = new DeliveryTracker();
    t.record('a', { readAt: 110, sentAt: 100 });
    t.record('b', { readAt: 130, sentAt: 100 });
    t.record('b', { readAt: 190, sentAt: 100 });
    t.record('stray', { readAt: 120, sentAt: 100 });
    t.record('earlier-run', { readAt: 50, sentAt: 40 });
    const r = t.account(['a', 'b', 'c'], new Set(['earlier-run']));
    expect(r).toMatchObject({ expected: 3, delivered: 2, lost: 1, duplicated: 1, unexpected: 1, lostExamples: ['c'], duplicatedExamples: ['b x2'], lastReadAt: 130 });
    expect(r.latencies.sort()).toEqual([10, 30]);
    expect(t.countOf(['a', 'b', 'c'])).toBe(2);
    const w = t.watch(['a', 'c', 'd']);
    expect(w.count).toBe(1);
    t.record('c', { readAt: 200, sentAt: 100 });
    t.record('c', { readAt: 201, sentAt: 100 });
    expect(w.count).toBe(2);
    expect(t.records).toBe(7);
  });

  it('aligns a table, numbers to the right', () => {
    expect(table([['run', 'n'], ['x', '1,000'], ['longer', '5']]).split('\n')).toEqual(['run     n', '------  -----', 'x       1,000', 'longer      5']);
  });

  it('counts CONCURRENT_TRANSACTIONS answers from log lines and from debug calls', () => {
    const before = logCounts.concurrentTransactions;
    const error = 'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing';
    countLogLine(JSON.stringify({ level: 50, error, msg: 'Response AddPartitionsToTxn(key: 24, version: 1)' }));
    countKafkaLog({ component: 'kafkajs', error }, 'Response EndTxn(key: 26, version: 0)');
    countKafkaLog({ component: 'kafkajs', error: 'The coordinator is loading' }, 'Response EndTxn(key: 26, version: 0)');
    countKafkaLog({ error }, 'worker retrying');
    expect(logCounts.concurrentTransactions - before).toBe(2);
  });
});

