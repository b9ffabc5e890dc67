import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { estimateRecordBytes, planSends, RECORD_BATCH_OVERHEAD, type SizedMessage } from './batch-bytes.js';

// kafkajs's own v2 encoder, to check the estimate is an upper bound of the real bytes.
const require = createRequire(import.meta.url);
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as { RecordBatch: (o: { records: unknown[] }) => Promise<{ buffer: Buffer }> };
const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (o: { offsetDelta: number; timestampDelta: number; key: Buffer | null; value: Buffer | null; headers: Record<string, unknown> }) => unknown;

const toBuffer = (v: Buffer | string | null | undefined) => (v == null ? null : Buffer.from(v));

async function realBatchBytes(messages: SizedMessage[]): Promise<number> {
  const records = messages.map((m, i) => Record({
    offsetDelta: i,
    timestampDelta: 1_700_000_000_000, // worst case: a large delta
    key: toBuffer(m.key),
    value: toBuffer(m.value),
    headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, Array.isArray(v) ? v.map(toBuffer) : toBuffer(v)])),
  }));
  return (await RecordBatch({ records })).buffer.length;
}

const msg = (valueBytes: number, extra: Partial<SizedMessage> = {}): SizedMessage => ({ key: 'entity-1', value: Buffer.alloc(valueBytes, 1), ...extra });

describe('estimateRecordBytes', () => {
  it.each([
    ['tiny', msg(1)],
    ['no key', { key: null, value: Buffer.alloc(100) }],
    ['null value (tombstone)', { key: 'k', value: null }],
    ['1 KiB', msg(1024)],
    ['300 KiB', msg(300 * 1024)],
    ['dead-letter headers', msg(200, { headers: { '__connect.errors.topic': 'events.client', '__connect.errors.exception.message': 'x'.repeat(2000), 'error.code': 'LIMIT_EXCEEDED', multi: ['a', 'b'] } })],
  ])('%s: an upper bound within 16 bytes of what kafkajs writes', async (_n, m) => {
    const real = (await realBatchBytes([m])) - RECORD_BATCH_OVERHEAD;
    const est = estimateRecordBytes(m);
    expect(est).toBeGreaterThanOrEqual(real);
    expect(est - real).toBeLessThanOrEqual(16);
  });
});

describe('planSends', () => {
  it('keeps everything in one send when it fits', () => {
    const plan = planSends([{ topic: 'a', messages: [msg(10), msg(10)] }, { topic: 'b', messages: [msg(10)] }], { maxBatchBytes: 10_000 });
    expect(plan.sends).toHaveLength(1);
    expect(plan.sends[0]!.map((t) => [t.topic, t.messages.length])).toEqual([['a', 2], ['b', 1]]);
    expect(plan.oversized).toEqual([]);
  });

  it('splits under maxBatchBytes, keeping order within a topic, and every send really fits', async () => {
    const messages = Array.from({ length: 50 }, (_, i) => msg(1000, { key: `k${i}` }));
    const plan = planSends([{ topic: 'out', messages }, { topic: 'dlq', messages: messages.slice(0, 5) }], { maxBatchBytes: 10_000 });
    expect(plan.sends.length).toBeGreaterThan(5);
    const outKeys = plan.sends.flatMap((s) => s.filter((t) => t.topic === 'out').flatMap((t) => t.messages.map((m) => m.key)));
    expect(outKeys).toEqual(messages.map((m) => m.key));
    for (const send of plan.sends) {
      let real = 0;
      for (const t of send) real += await realBatchBytes(t.messages);
      expect(real).toBeLessThanOrEqual(10_000);
    }
    expect(plan.sends.flat().reduce((n, t) => n + t.messages.length, 0)).toBe(55);
  });

  it('flags a message over maxMessageBytes instead of sending it', () => {
    const plan = planSends([{ topic: 'out', messages: [msg(10), msg(2_000_000), msg(10)] }], { maxBatchBytes: 900_000, maxMessageBytes: 1_000_000 });
    expect(plan.oversized).toEqual([{ topic: 'out', index: 1, bytes: expect.any(Number) }]);
    expect(plan.oversized[0]!.bytes).toBeGreaterThan(2_000_000);
    expect(plan.sends.flat()[0]!.messages).toHaveLength(2);
  });

  it('a message over maxBatchBytes but under maxMessageBytes is also flagged (it could never be sent)', () => {
    const plan = planSends([{ topic: 'out', messages: [msg(5000)] }], { maxBatchBytes: 1000, maxMessageBytes: 10_000 });
    expect(plan.oversized).toHaveLength(1);
    expect(plan.sends).toEqual([]);
  });

  it('validates its limits', () => {
    expect(() => planSends([], { maxBatchBytes: 10 })).toThrow(/maxBatchBytes must be an integer above 61/);
  });
});
