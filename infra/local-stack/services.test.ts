import { describe, expect, it } from 'vitest';
import { kafkaClusterId } from './services.js';

describe('kafkaClusterId', () => {
  it('never begins with a dash (kafka-storage would read it as an option)', () => {
    // 0xf8 as the first byte encodes to a leading '-' in base64url.
    const draws = [Buffer.alloc(16, 0xf8), Buffer.alloc(16, 0xf8), Buffer.alloc(16, 0x01)];
    expect(Buffer.alloc(16, 0xf8).toString('base64url').startsWith('-')).toBe(true);
    const id = kafkaClusterId(() => draws.shift()!);
    expect(id).toBe(Buffer.alloc(16, 0x01).toString('base64url'));
    expect(draws).toHaveLength(0);
  });
  it('is 22 base64url characters', () => {
    for (let i = 0; i < 200; i++) expect(kafkaClusterId()).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
  });
});
