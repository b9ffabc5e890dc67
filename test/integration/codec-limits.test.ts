// The codec's limits and per-topic schema ids against the real registry
// (Apicurio's Confluent API locally): what a flood of random ids costs in
// registry requests, how the registry's own answers are classified, and
// that bombs are refused before the body is decoded. Subjects get a fresh
// prefix per run; nothing else on the shared registry is touched.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { recordSchema } from '../../schemas/catalogue.js';
import { createCodec, frame } from '../../schemas/codec.js';
import {
  createRegistryClient, IncompatibleSchemaError, InvalidSchemaError, RegistryError, type RegistryClient,
} from '../../schemas/registry-client.js';
import { avroString, zigzag } from '../support/avro-bytes.js';

const config = loadConfig();
const prefix = `t-limits-${crypto.randomBytes(4).toString('hex')}.`;
const SUBJECT = `${prefix}events.client-value`;
const OTHER = `${prefix}labels.ground-truth-value`;

/** The real client, with every request counted. */
function counting(inner: RegistryClient): RegistryClient & { requests: () => number; byMethod: Record<string, number> } {
  const byMethod: Record<string, number> = {};
  const wrapped = Object.fromEntries(
    Object.entries(inner).map(([k, fn]) => [k, (...args: unknown[]) => {
      byMethod[k] = (byMethod[k] ?? 0) + 1;
      return (fn as (...a: unknown[]) => unknown)(...args);
    }]),
  ) as unknown as RegistryClient;
  return Object.assign(wrapped, { byMethod, requests: () => Object.values(byMethod).reduce((a, b) => a + b, 0) });
}

const event = { event_id: 'e1', pipeline: 'p', entity_id: 'x', event_time: 1, produced_at: 2, fields: { a: 1.5 } };

describe('codec limits against the real registry', () => {
  it('a topic carries only its subjects\' ids; 500 random ids cost at most 2 registry requests', async () => {
    const registry = counting(createRegistryClient(config.registry));
    const codec = createCodec(registry, { subjectRefreshMs: 200 });
    const topic = { subjects: [SUBJECT] };
    const good = await codec.encode('ClientEvent', SUBJECT, event);
    const otherId = await registry.register(OTHER, recordSchema('GroundTruth').text);
    expect((await codec.decode('ClientEvent', good, topic))).toMatchObject({ ok: true, value: event });

    const gt = frame(otherId, recordSchema('GroundTruth').type.toBuffer({ event_id: 'e', pipeline: 'p', label: 'UP', event_time: 1, label_time: 2 }));
    const before = registry.requests();
    const refused = await codec.decode('GroundTruth', gt, topic);
    expect(refused.ok ? null : refused.error.code).toBe('SCHEMA_NOT_ALLOWED');

    const ids = Array.from({ length: 500 }, () => 100_000_000 + crypto.randomInt(1_000_000_000));
    const started = performance.now();
    const flood = await Promise.all(ids.map((id) => codec.decode('ClientEvent', frame(id, good.subarray(5)), topic)));
    const ms = performance.now() - started;
    expect(flood.every((d) => !d.ok && d.error.code === 'SCHEMA_NOT_ALLOWED')).toBe(true);
    const cost = registry.requests() - before;
    console.log(`other subject's id + 500 random ids: ${cost} registry requests (${JSON.stringify(registry.byMethod)}), ${ms.toFixed(0)} ms`);
    expect(cost).toBeLessThanOrEqual(2);
    expect(registry.byMethod.getSchema ?? 0).toBe(0);
  });

  it('a version registered after the list was read decodes (the miss re-reads the list)', async () => {
    const registry = createRegistryClient(config.registry);
    const codec = createCodec(registry, { subjectRefreshMs: 0 });
    const subject = `${prefix}evolving.events-value`;
    const topic = { subjects: [subject] };
    expect((await codec.decode('ClientEvent', await codec.encode('ClientEvent', subject, event), topic)).ok).toBe(true);
    const evolved = structuredClone(recordSchema('ClientEvent').schema) as { fields: unknown[] };
    evolved.fields.push({ name: 'source', type: ['null', 'string'], default: null });
    const newId = await registry.register(subject, JSON.stringify(evolved));
    const body = Buffer.concat([recordSchema('ClientEvent').type.toBuffer(event), zigzag(1n), avroString('web')]);
    expect(await codec.decode('ClientEvent', frame(newId, body), topic)).toEqual({ ok: true, value: event, schemaId: newId });
  });

  it('an id the registry does not know is UNKNOWN_SCHEMA, asked once per TTL', async () => {
    const registry = counting(createRegistryClient(config.registry));
    const codec = createCodec(registry);
    const bytes = frame(2_000_000_001, Buffer.from([2, 0x65]));
    for (let i = 0; i < 50; i++) {
      const d = await codec.decode('ClientEvent', bytes);
      expect(d.ok ? null : d.error.code).toBe('UNKNOWN_SCHEMA');
    }
    expect(registry.byMethod.getSchema).toBe(1);
  });

  it('a 20-byte map bomb is LIMIT_EXCEEDED in milliseconds', async () => {
    const codec = createCodec(createRegistryClient(config.registry));
    const good = await codec.encode('ClientEvent', SUBJECT, event);
    const id = good.readUInt32BE(1);
    const topic = { subjects: [SUBJECT] };
    expect((await codec.decode('ClientEvent', good, topic)).ok).toBe(true); // schema and version list cached
    const bomb = frame(id, Buffer.concat([avroString('e'), avroString('p'), avroString('x'), zigzag(1n), zigzag(1n), zigzag(2n ** 31n), zigzag(0n)]));
    expect(bomb.length).toBeLessThanOrEqual(20);
    const started = performance.now();
    const d = await codec.decode('ClientEvent', bomb, topic);
    const ms = performance.now() - started;
    console.log(`map bomb (${bomb.length} bytes, count 2^31) refused in ${ms.toFixed(2)} ms (printed; speed is the benchmark's business)`);
    expect(d.ok ? null : d.error).toMatchObject({ code: 'LIMIT_EXCEEDED', limit: 'maxCollectionItems' });

  });

  it("the registry's own refusals: 409 and 422 name the subject and its rule; a wrong base URL is not UNKNOWN_SCHEMA", async () => {
    const registry = createRegistryClient(config.registry);
    const subject = `${prefix}strict-value`;
    await registry.setCompatibility(subject, 'FULL_TRANSITIVE');
    await registry.register(subject, recordSchema('GroundTruth').text);
    const broken = structuredClone(recordSchema('GroundTruth').schema) as { fields: Array<{ name: string; type: unknown }> };
    broken.fields[0]!.type = 'int';
    const incompatible = await registry.register(subject, JSON.stringify(broken)).catch((e: unknown) => e);
    expect(incompatible).toBeInstanceOf(IncompatibleSchemaError);
    expect((incompatible as Error).message).toMatch(new RegExp(`^registering a schema under subject ${subject.replace(/\./g, '\\.')}: .*FULL_TRANSITIVE compatibility rule \\(409\\)`));
    const invalid = await registry.register(subject, '{"type":"recor').catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(InvalidSchemaError);
    expect((invalid as Error).message).toMatch(/FULL_TRANSITIVE/);

    const wrongBase = createRegistryClient({ ...config.registry, url: config.registry.url.replace(/\/v7$/, '/v9') });
    const err = await wrongBase.getSchema(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).message).toMatch(/without a registry error code/);
  });
});
