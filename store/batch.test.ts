import { describe, expect, it } from 'vitest';
import { approxBytes, chunkRows, routingKey } from './batch.js';

describe('batched writes', () => {
  it('encodes a text partition key as Cassandra hashes it', () => {
    expect(routingKey(['ev-1'])).toEqual(Buffer.from('ev-1'));
    // composite: [len16][bytes][0] per component
    expect(routingKey(['ab', 'c'])).toEqual(Buffer.from([0, 2, 0x61, 0x62, 0, 0, 1, 0x63, 0]));
  });

  it('splits rows by count and by size, keeping their order', () => {
    const rows = Array.from({ length: 7 }, (_, i) => ({ params: [`r${i}`] }));
    expect(chunkRows(rows, 3, 1e9).map((c) => c.map((r) => r.params[0]))).toEqual([['r0', 'r1', 'r2'], ['r3', 'r4', 'r5'], ['r6']]);
    const big = [{ params: ['x'.repeat(500)] }, { params: ['y'.repeat(500)] }, { params: ['z'] }];
    // 548 bytes each with overhead: two do not fit in 1000, the second and third do
    expect(chunkRows(big, 50, 1000).map((c) => c.length)).toEqual([1, 2]);
    // a row larger than the limit still goes, alone
    expect(chunkRows([{ params: ['x'.repeat(5000)] }], 50, 1000)).toHaveLength(1);
  });

  it('sizes values roughly: strings, buffers, maps', () => {
    expect(approxBytes(['abc'])).toBe(32 + 19);
    expect(approxBytes([Buffer.alloc(10)])).toBe(32 + 26);
    expect(approxBytes([{ a: 1 }])).toBe(32 + (1 + 16) + 24);
  });
});
