import { describe, expect, it } from 'vitest';
import { cassandraToken, CLUSTER_HOSTS, kafkaClusterId, stackPorts, stackServices } from './services.js';

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

describe('the cluster topology', () => {
  it('has three Kafka and three Cassandra nodes on 127.0.0.1-3 and one registry', () => {
    const names = stackServices('cluster').map((s) => `${s.name}@${s.host}`);
    expect(names).toEqual([
      'kafka-1@127.0.0.1', 'kafka-2@127.0.0.2', 'kafka-3@127.0.0.3',
      'cassandra-1@127.0.0.1', 'cassandra-2@127.0.0.2', 'cassandra-3@127.0.0.3',
      'schema-registry@127.0.0.1',
    ]);
    expect(stackServices('single').map((s) => s.name)).toEqual(['kafka', 'cassandra', 'schema-registry']);
    expect(CLUSTER_HOSTS).toHaveLength(3);
  });
  it('spaces the Cassandra tokens evenly over the Murmur3 range', () => {
    const tokens = [1, 2, 3].map((i) => BigInt(cassandraToken(i, 3)));
    expect(tokens[0]).toBe(-(2n ** 63n));
    expect(tokens[1]! - tokens[0]!).toBe(tokens[2]! - tokens[1]!);
    expect(tokens[2]! < 2n ** 63n - 1n).toBe(true);
    expect(cassandraToken(1, 1)).toBe('0');
  });
  it('defaults to ports 5000 above the plain stack, below the ephemeral range', () => {
    const p = stackPorts({}, 'plain', 'cluster');
    expect(p).toEqual({ kafka: 24092, kafkaController: 24093, cassandra: 24042, cassandraStorage: 22000, registry: 23081 });
    expect(Math.max(...Object.values(p))).toBeLessThan(32768);
  });
});
