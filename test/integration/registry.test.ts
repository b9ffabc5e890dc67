// Schemas in a real Confluent-compatible registry: every subject registered
// with its compatibility level, an incompatible change refused, a compatible
// evolution read by the old reader.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSchema } from '../../schemas/catalogue.js';
import { frame } from '../../schemas/codec.js';
import { IncompatibleSchemaError } from '../../schemas/registry-client.js';
import { TOPICS } from '../../streams/topics.js';
import avro from 'avsc';
import { createTestEnv, type TestEnv } from '../support/fixtures.js';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('registry');
});
afterAll(async () => env?.cleanup());

describe('schema registry', () => {
  it('registers every topic subject with its compatibility level', async () => {
    const expected = TOPICS.flatMap((t) => t.values.map((v) => ({ subject: env.names.subject(t.name, v), level: t.compatibility })));
    expect(expected.length).toBeGreaterThan(10);
    for (const { subject, level } of expected) {
      // Asked per subject: a registry shared with many runs lists its subjects a page at a time.
      expect((await env.registry.subjectVersions(subject)).length, subject).toBeGreaterThan(0);
      expect(await env.registry.getCompatibility(subject), subject).toBe(level);
    }
    // Registering again is idempotent: same id.
    const s = env.names.subject('predictions', 'Prediction');
    const first = env.bootstrap.subjects.find((x) => x.subject === s)?.id;
    expect(await env.registry.register(s, recordSchema('Prediction').text)).toBe(first);
  });

  it('refuses an incompatible change under FULL_TRANSITIVE', async () => {
    const subject = env.names.subject('labels.ground-truth', 'GroundTruth');
    const evolved = structuredClone(recordSchema('GroundTruth').schema) as { fields: unknown[] };
    evolved.fields.push({ name: 'source', type: 'string' }); // required, no default
    const text = JSON.stringify(evolved);
    expect(await env.registry.isCompatible(subject, text)).toBe(false);
    await expect(env.registry.register(subject, text)).rejects.toBeInstanceOf(IncompatibleSchemaError);
  });

  it('accepts a compatible evolution, and the old reader decodes the new writer', async () => {
    const subject = env.names.subject('labels.ground-truth', 'GroundTruth');
    const evolved = structuredClone(recordSchema('GroundTruth').schema) as { fields: unknown[] };
    evolved.fields.push({ name: 'source', type: ['null', 'string'], default: null });
    const text = JSON.stringify(evolved);
    expect(await env.registry.isCompatible(subject, text)).toBe(true);
    const id = await env.registry.register(subject, text);
    const writer = avro.Type.forSchema(evolved as avro.Schema);
    const bytes = frame(id, writer.toBuffer({ event_id: 'e1', pipeline: 'p', label: 'UP', event_time: 1, label_time: 2, source: 'crm' }));
    const d = await env.codec.decode('GroundTruth', bytes);
    expect(d).toEqual({ ok: true, schemaId: id, value: { event_id: 'e1', pipeline: 'p', label: 'UP', event_time: 1, label_time: 2 } });
  });
});
