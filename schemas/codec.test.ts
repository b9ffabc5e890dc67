/**
 * The codec over a counting in-memory registry: limits before allocation,
 * per-topic schema ids, bounded caches, and registry failures thrown (not
 * turned into dead letters).
 *
 * Measured (`npx vitest run schemas/codec.test.ts`, 2-core box under load):
 * 1000 random schema ids on a topic with an allow-list cost 1 version-list
 * request and 0 schema fetches; without an allow-list each distinct id costs
 * one fetch, and a repeated unknown id costs one fetch per TTL.
 */
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { avroString, zigzag } from '../test/support/avro-bytes.js';
import { createFakeRegistry } from '../test/support/fake-registry.js';
import { ConfigError, TransientError } from '../core/errors.js';
import { RECORD_NAMES, recordSchema } from './catalogue.js';
import { createCodec, frame, type DecodeOptions } from './codec.js';
import { RegistryAuthError } from './registry-client.js';

const SUBJECT = 'events.client-value';

async function setup(options: Parameters<typeof createCodec>[1] = {}) {
  const registry = createFakeRegistry();
  const id = await registry.register(SUBJECT, recordSchema('ClientEvent').text);
  const otherId = await registry.register('labels.ground-truth-value', recordSchema('GroundTruth').text);
  const codec = createCodec(registry, options);
  return { registry, codec, id, otherId };
}

const event = { event_id: 'e1', pipeline: 'p', entity_id: 'x', event_time: 1, produced_at: 2, fields: { a: 1.5, b: 'up', c: null } };
const topic: DecodeOptions = { subjects: [SUBJECT] };

/** A ClientEvent frame whose `fields` map declares `count` entries (a negative count is followed by a block size of 0). */
function mapBomb(id: number, count: bigint): Buffer {
  const prefix = Buffer.concat([avroString('e'), avroString('p'), avroString('x'), zigzag(1n), zigzag(1n)]);
  return frame(id, Buffer.concat([prefix, zigzag(count), ...(count < 0n ? [zigzag(0n)] : []), zigzag(0n)]));
}

describe('codec: limits before allocation', () => {
  it('rejects the 19-byte map bombs as LIMIT_EXCEEDED in milliseconds', async () => {
    const { codec, id } = await setup();
    expect((await codec.decode('ClientEvent', await codec.encode('ClientEvent', SUBJECT, event), topic)).ok).toBe(true); // schema cached
    for (const count of [2n ** 31n, 2n ** 62n, -(2n ** 31n)]) {
      const bytes = mapBomb(id, count);
      expect(bytes.length).toBeLessThanOrEqual(25);
      const started = performance.now();
      const d = await codec.decode('ClientEvent', bytes, topic);
      expect(performance.now() - started).toBeLessThan(25);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.error).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'maxCollectionItems', schemaId: id });
    }
  });

  it('applies per-topic limits over the codec defaults', async () => {
    const { codec, registry, id } = await setup({ limits: { maxCollectionItems: 2 } });
    const bytes = await codec.encode('ClientEvent', SUBJECT, event);
    const strict = await codec.decode('ClientEvent', bytes);
    expect(strict.ok ? null : strict.error.limit).toBe('maxCollectionItems');
    const lax = await codec.decode('ClientEvent', bytes, { ...topic, maxCollectionItems: 10 });
    expect(lax).toEqual({ ok: true, value: event, schemaId: id });
    expect(registry.calls.getSchema).toBe(1);
  });

  it('caps the bytes of a record per topic: TOO_LARGE before anything else', async () => {
    const { codec, registry } = await setup();
    const big = await codec.encode('ClientEvent', SUBJECT, { ...event, event_id: 'x'.repeat(5000) });
    const before = registry.total();
    const d = await codec.decode('ClientEvent', big, { ...topic, maxRecordBytes: 4096 });
    expect(d.ok ? null : d.error).toMatchObject({ code: 'TOO_LARGE', limit: 'maxRecordBytes' });
    expect(registry.total()).toBe(before); // not even the allow-list was consulted
    expect((await codec.decode('ClientEvent', big, topic)).ok).toBe(true);
  });

  it('rejects invalid limits as a ConfigError naming the key', async () => {
    const { codec, id } = await setup();
    await expect(codec.decode('ClientEvent', mapBomb(id, 1n), { maxDepth: -3 })).rejects.toThrow(ConfigError);
    await expect(codec.decode('ClientEvent', mapBomb(id, 1n), { maxDepth: -3 })).rejects.toThrow(/maxDepth/);
  });

  it.each(RECORD_NAMES.map((n) => [n]))('%s still round-trips (100 random values, allow-listed)', async (name) => {
    const registry = createFakeRegistry();
    const codec = createCodec(registry);
    const subject = `t-${name}-value`;
    const options = { subjects: [subject] };
    const type = recordSchema(name).type;
    for (let i = 0; i < 100; i++) {
      const value = type.random();
      const d = await codec.decode(name, await codec.encode(name, subject, value as never), options);
      expect(d.ok, d.ok ? '' : d.error.message).toBe(true);
      if (d.ok) expect(type.toBuffer(d.value).equals(type.toBuffer(value))).toBe(true);
    }
  });
});

describe('codec: schema ids per topic', () => {
  it("refuses another subject's id as SCHEMA_NOT_ALLOWED without fetching it", async () => {
    const { codec, registry, otherId } = await setup();
    const gt = recordSchema('GroundTruth').type.toBuffer({ event_id: 'e', pipeline: 'p', label: 'UP', event_time: 1, label_time: 2 });
    const d = await codec.decode('ClientEvent', frame(otherId, gt), topic);
    expect(d.ok ? null : d.error).toMatchObject({ code: 'SCHEMA_NOT_ALLOWED', schemaId: otherId });
    expect(registry.calls.getSchema).toBe(0);
  });

  it('a flood of 1000 random ids costs one version-list request, no schema fetch', async () => {
    const { codec, registry, id } = await setup({ subjectRefreshMs: 200 });
    expect((await codec.decode('ClientEvent', await codec.encode('ClientEvent', SUBJECT, event), topic)).ok).toBe(true);
    const before = { ...registry.calls };
    const ids = Array.from({ length: 1000 }, (_, i) => 1_000_000 + i * 7919);
    const started = performance.now();
    const results = await Promise.all(ids.map((x) => codec.decode('ClientEvent', mapBomb(x, 1n), topic)));
    const ms = performance.now() - started;
    expect(results.every((r) => !r.ok && r.error.code === 'SCHEMA_NOT_ALLOWED')).toBe(true);
    expect(registry.calls.getSchema).toBe(before.getSchema);
    expect(registry.calls.subjectVersions - before.subjectVersions).toBeLessThanOrEqual(1);
    console.log(`1000 random ids: ${registry.total() - Object.values(before).reduce((a, b) => a + b, 0)} registry calls, ${ms.toFixed(1)} ms`);
    // The known id still decodes from cache.
    expect((await codec.decode('ClientEvent', await codec.encode('ClientEvent', SUBJECT, event), topic)).ok).toBe(true);
    expect(id).toBeGreaterThan(0);
  });

  it('sequential misses refresh the version list at most once per subjectRefreshMs', async () => {
    const { codec, registry } = await setup({ subjectRefreshMs: 40 });
    const started = Date.now();
    for (let i = 0; i < 20; i++) await codec.decode('ClientEvent', mapBomb(5000 + i, 1n), topic);
    const elapsed = Date.now() - started;
    // 20 distinct misses in `elapsed` ms: at most one refresh per 40 ms window (plus the first).
    expect(registry.calls.subjectVersions).toBeLessThanOrEqual(Math.floor(elapsed / 40) + 2);
    expect(registry.calls.getSchema).toBe(0);
  });

  it('a version registered after the list was read is accepted: a miss re-reads the list', async () => {
    const { codec, registry } = await setup({ subjectRefreshMs: 0 });
    expect((await codec.decode('ClientEvent', await codec.encode('ClientEvent', SUBJECT, event), topic)).ok).toBe(true);
    // A producer evolves the schema (adds an optional field) and writes with the new id.
    const evolved = structuredClone(recordSchema('ClientEvent').schema) as { fields: unknown[] };
    evolved.fields.push({ name: 'source', type: ['null', 'string'], default: null });
    const newId = await registry.register(SUBJECT, JSON.stringify(evolved));
    const bytes = frame(newId, avro.Type.forSchema(evolved as avro.Schema).toBuffer({ ...event, source: 'web' }));
    const d = await codec.decode('ClientEvent', bytes, topic);
    expect(d).toEqual({ ok: true, value: event, schemaId: newId });
    expect(registry.calls.getSchema).toBe(0); // the version list carried the schema
  });

  it('explicit schemaIds allow exactly those ids', async () => {
    const { codec, id, otherId } = await setup();
    const ok = await codec.decode('ClientEvent', await codec.encode('ClientEvent', SUBJECT, event), { schemaIds: [id] });
    expect(ok.ok).toBe(true);
    const no = await codec.decode('GroundTruth', frame(otherId, Buffer.from([0])), { schemaIds: [id] });
    expect(no.ok ? null : no.error.code).toBe('SCHEMA_NOT_ALLOWED');
  });

  it('decodeAny honours the allow-list too', async () => {
    const { codec, otherId } = await setup();
    const d = await codec.decodeAny(['ClientEvent', 'GroundTruth'], frame(otherId, Buffer.from([2, 0x65])), topic);
    expect(d.ok ? null : d.error.code).toBe('SCHEMA_NOT_ALLOWED');
  });
});

describe('codec: bounded caches', () => {
  it('remembers an unknown id for the TTL, then asks again', async () => {
    let now = 1_000;
    const { codec, registry } = await setup({ unknownSchemaTtlMs: 5_000, now: () => now });
    const bytes = mapBomb(424242, 1n);
    for (let i = 0; i < 50; i++) {
      const d = await codec.decode('ClientEvent', bytes);
      expect(d.ok ? null : d.error.code).toBe('UNKNOWN_SCHEMA');
    }
    expect(registry.calls.getSchema).toBe(1);
    now += 5_001;
    await codec.decode('ClientEvent', bytes);
    expect(registry.calls.getSchema).toBe(2);
  });

  it('concurrent decodes of one new id share one fetch', async () => {
    const { codec, registry } = await setup();
    const bytes = await codec.encode('ClientEvent', SUBJECT, event);
    await Promise.all(Array.from({ length: 100 }, () => codec.decode('ClientEvent', bytes)));
    expect(registry.calls.getSchema).toBe(1);
  });

  it('keeps at most maxCachedSchemas writer schemas (LRU)', async () => {
    const registry = createFakeRegistry();
    const codec = createCodec(registry, { maxCachedSchemas: 2 });
    const ids: number[] = [];
    const type = recordSchema('ClientEvent').type;
    for (let i = 0; i < 3; i++) {
      const s = structuredClone(recordSchema('ClientEvent').schema) as { fields: unknown[] };
      s.fields.push({ name: `extra${i}`, type: ['null', 'string'], default: null });
      ids.push(await registry.register(SUBJECT, JSON.stringify(s)));
    }
    const body = (id: number) => frame(id, Buffer.concat([type.toBuffer(event), Buffer.from([0])]));
    for (const id of ids) expect((await codec.decode('ClientEvent', body(id))).ok).toBe(true);
    expect(registry.calls.getSchema).toBe(3);
    await codec.decode('ClientEvent', body(ids[2]!)); // most recent: cached
    await codec.decode('ClientEvent', body(ids[1]!));
    expect(registry.calls.getSchema).toBe(3);
    await codec.decode('ClientEvent', body(ids[0]!)); // evicted: fetched again
    expect(registry.calls.getSchema).toBe(4);
  });
});

describe('codec: registry failures are thrown, not dead letters', () => {
  it('401/403 is a RegistryAuthError (a ConfigError), never UNKNOWN_SCHEMA', async () => {
    const { codec, registry, id } = await setup();
    registry.failWith(new RegistryAuthError('fetching schema id 1: schema registry answered 401', 401));
    const bytes = mapBomb(id, 1n);
    await expect(codec.decode('ClientEvent', bytes)).rejects.toBeInstanceOf(RegistryAuthError);
    await expect(codec.decodeAny(['ClientEvent'], bytes)).rejects.toBeInstanceOf(ConfigError);
    await expect(codec.decode('ClientEvent', bytes, topic)).rejects.toMatchObject({ code: 'REGISTRY_AUTH', retriable: false });
  });

  it('an outage is a TransientError, and is not remembered', async () => {
    const { codec, registry, id } = await setup({ subjectRefreshMs: 0 });
    registry.failWith(new TransientError('registry down', undefined, 'REGISTRY_UNAVAILABLE'));
    const bytes = await codec.encode('ClientEvent', SUBJECT, event).catch(() => frame(id, recordSchema('ClientEvent').type.toBuffer(event)));
    await expect(codec.decode('ClientEvent', bytes)).rejects.toBeInstanceOf(TransientError);
    await expect(codec.decode('ClientEvent', bytes, topic)).rejects.toMatchObject({ retriable: true });
    registry.failWith(null);
    expect((await codec.decode('ClientEvent', bytes, topic)).ok).toBe(true);
  });
});
