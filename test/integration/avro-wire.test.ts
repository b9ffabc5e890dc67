// Confluent-framed Avro through a real broker and a real registry: records
// round-trip, and every kind of bad message comes back from the decoder as a
// typed error with its reason.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frame } from '../../schemas/codec.js';
import type { ClientEvent } from '../../schemas/types.js';
import { createTestEnv, type TestEnv } from '../support/fixtures.js';
import { readToEnd } from '../support/read-topic.js';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('wire');
});
afterAll(async () => env?.cleanup());

function event(i: number): ClientEvent {
  return {
    event_id: `e-${i}`,
    pipeline: 'wire',
    entity_id: `entity-${i % 7}`,
    event_time: Date.UTC(2026, 0, 1) + i * 1000,
    produced_at: Date.now(),
    fields: { x: i * 0.5, kind: i % 2 === 0 ? 'even' : 'odd', gap: null },
  };
}

/** Every message of `topic`, read to its end offsets (the sends have completed, so that is all of them). */
async function consumeAll(topic: string): Promise<Array<{ key: string | null; value: Buffer | null }>> {
  return readToEnd(env.kafka, env.admin, topic);
}

describe('Avro on the wire', () => {
  it('produces and consumes Confluent-framed records through the broker', async () => {
    const topic = env.names.physical('events.client');
    const subject = env.names.subject('events.client', 'ClientEvent');
    const producer = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const sent = Array.from({ length: 50 }, (_, i) => event(i));
    await producer.send({
      topic,
      messages: await Promise.all(sent.map(async (e) => ({ key: e.entity_id, value: await env.codec.encode('ClientEvent', subject, e) }))),
    });
    await producer.disconnect();

    const received = await consumeAll(topic);
    expect(received).toHaveLength(sent.length);
    const id = await env.codec.schemaId('ClientEvent', subject);
    const decoded = await Promise.all(received.map((m) => env.codec.decode('ClientEvent', m.value)));
    for (const d of decoded) {
      expect(d.ok).toBe(true);
      if (d.ok) expect(d.schemaId).toBe(id);
    }
    const byId = new Map(decoded.flatMap((d) => (d.ok ? [[d.value.event_id, d.value] as const] : [])));
    for (const e of sent) expect(byId.get(e.event_id)).toEqual(e);
    // Every message starts with magic byte 0 and the registry's id for the subject.
    for (const m of received) {
      expect(m.value?.[0]).toBe(0);
      expect(m.value?.readUInt32BE(1)).toBe(id);
    }
  });

  it('returns a typed error, not an exception, for each kind of bad message', async () => {
    const topic = env.names.physical('events.client.dlq'); // any topic: the broker carries bytes
    const subject = env.names.subject('events.client', 'ClientEvent');
    const good = await env.codec.encode('ClientEvent', subject, event(1));
    const id = good.readUInt32BE(1);
    const otherId = await env.codec.schemaId('Prediction', env.names.subject('predictions', 'Prediction'));
    const cases: Array<[string, Buffer, string]> = [
      ['too-short', Buffer.from([0, 0, 0, 1]), 'TOO_SHORT'],
      ['empty', Buffer.alloc(0), 'TOO_SHORT'],
      ['json', Buffer.from('{"event_id":"e-1"}'), 'BAD_MAGIC'],
      ['unknown-id', frame(987_654_321, good.subarray(5)), 'UNKNOWN_SCHEMA'],
      ['truncated', good.subarray(0, good.length - 3), 'BAD_BODY'],
      ['garbage-body', frame(id, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])), 'BAD_BODY'],
      ['trailing-bytes', Buffer.concat([good, Buffer.from([1, 2, 3])]), 'BAD_BODY'],
      ['wrong-record', await env.codec.encode('Prediction', env.names.subject('predictions', 'Prediction'), {
        prediction_id: 'p', event_id: 'e', pipeline: 'p', entity_id: 'x', model_name: 'm', model_version: 1, variant: 'champion',
        label: null, score: 0.5, probabilities: {}, value: null, features: {}, missing: [], model_features: [], event_time: 0, produced_at: 0, scored_at: 0,
      }), 'SCHEMA_MISMATCH'],
    ];
    expect(otherId).not.toBe(id);
    const producer = env.kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: cases.map(([key, value]) => ({ key, value })) });
    await producer.disconnect();

    const received = await consumeAll(topic);
    expect(received).toHaveLength(cases.length);
    for (const [key, , code] of cases) {
      const m = received.find((r) => r.key === key);
      const d = await env.codec.decode('ClientEvent', m?.value ?? null);
      expect(d.ok, key).toBe(false);
      if (!d.ok) {
        expect(d.error.code, key).toBe(code);
        expect(d.error.message.length, key).toBeGreaterThan(10);
      }
    }
  });
});
