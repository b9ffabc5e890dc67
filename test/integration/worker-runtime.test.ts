// The worker runtime's conformance suite on a real broker: every record
// processed exactly once, garbage and poison records dead-lettered with the
// reason while the partition moves on, transient faults retried (never
// dead-lettered), and a stop/restart that neither loses nor repeats output.
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientEvent, FeatureVector } from '../../schemas/types.js';
import { PoisonRecordError, TransientError } from '../../core/errors.js';
import { createWorkerMetrics } from '../../streams/metrics.js';
import { createWorker, type InputRecord, type WorkerHandler } from '../../streams/runtime.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { groupCaughtUp, header, readToEnd } from '../support/read-topic.js';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv('runtime');
});
afterAll(async () => env?.cleanup());

function event(i: number, fields: ClientEvent['fields'] = { x: i }): ClientEvent {
  return { event_id: `e-${i}`, pipeline: 'rt', entity_id: `k-${i % 5}`, event_time: 1_000 + i, produced_at: 1, fields };
}

/** Echo: event → vector; a `poison` field makes a record fail for good, `flaky` fails transiently a few times. */
function echoHandler(state: { calls: number; transientLeft: number }): WorkerHandler<'ClientEvent'> {
  return {
    name: 'echo',
    input: { topics: [{ topic: 'events.client', record: 'ClientEvent' }] },
    async process(records: Array<InputRecord<ClientEvent>>) {
      state.calls++;
      if (records.some((r) => r.value.fields.flaky !== undefined) && state.transientLeft > 0) {
        state.transientLeft--;
        throw new TransientError('store timed out (injected)');
      }
      if (records.some((r) => r.value.fields.poison !== undefined)) {
        throw new PoisonRecordError('VALIDATION', 'POISON', 'poison field present (injected)');
      }
      return {
        outputs: records.map((r) => ({
          topic: 'features.vectors',
          record: 'FeatureVector' as const,
          key: r.value.entity_id,
          value: { event_id: r.value.event_id, pipeline: r.value.pipeline, entity_id: r.value.entity_id, event_time: r.value.event_time, produced_at: r.value.produced_at, processed_at: Date.now(), values: r.value.fields, missing: [], feature_age_ms: {} } satisfies FeatureVector,
        })),
      };
    },
  };
}

async function produce(events: Array<ClientEvent | Buffer>): Promise<void> {
  const producer = env.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const subject = env.names.subject('events.client', 'ClientEvent');
  await producer.send({
    topic: env.names.physical('events.client'),
    messages: await Promise.all(
      events.map(async (e, i) => (Buffer.isBuffer(e) ? { key: `garbage-${i}`, value: e } : { key: e.entity_id, value: await env.codec.encode('ClientEvent', subject, e) })),
    ),
  });
  await producer.disconnect();
}

describe('worker runtime', () => {
  it('processes each record once, dead-letters garbage and poison, retries transient faults, and resumes after stop without loss or repeat', async () => {
    const registry = new Registry();
    const metrics = createWorkerMetrics(registry);
    const state = { calls: 0, transientLeft: 3 };
    const deps = { kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger, metrics };
    const garbage = [Buffer.from('not avro at all'), Buffer.from([0, 0, 0]), Buffer.from([0, 0x7f, 0xff, 0xff, 0xff, 1, 2])];
    const first = [
      ...Array.from({ length: 300 }, (_, i) => event(i)),
      event(300, { poison: 1 }),
      event(301, { flaky: 1 }),
      ...garbage,
      ...Array.from({ length: 200 }, (_, i) => event(302 + i)),
    ];
    await produce(first);

    let worker = createWorker(echoHandler(state), deps, { batchMax: 50 });
    await worker.start();
    const vectors = env.names.physical('features.vectors');
    const dlq = env.names.physical('events.client.dlq');
    const group = `${env.names.prefix}loopline-echo`;
    const input = env.names.physical('events.client');
    await waitFor('the first 505 inputs committed', () => groupCaughtUp(env.admin, group, input), 90_000, 500);
    await worker.stop();
    expect(worker.health().state).toBe('stopped');

    // A second run after a stop: new records only, nothing re-emitted.
    await produce(Array.from({ length: 100 }, (_, i) => event(600 + i)));
    worker = createWorker(echoHandler(state), deps, { batchMax: 50 });
    await worker.start();
    await waitFor('all 605 inputs committed', () => groupCaughtUp(env.admin, group, input), 90_000, 500);
    await worker.stop();

    const out = await readToEnd(env.kafka, env.admin, vectors);
    const ids = await Promise.all(out.map(async (m) => {
      const d = await env.codec.decode('FeatureVector', m.value);
      return d.ok ? d.value.event_id : 'undecodable';
    }));
    const expected = [...Array.from({ length: 300 }, (_, i) => `e-${i}`), 'e-301', ...Array.from({ length: 200 }, (_, i) => `e-${302 + i}`), ...Array.from({ length: 100 }, (_, i) => `e-${600 + i}`)];
    expect(ids.length).toBe(expected.length); // no duplicates committed
    expect(new Set(ids)).toEqual(new Set(expected)); // none lost

    const dead = await readToEnd(env.kafka, env.admin, dlq);
    expect(dead).toHaveLength(4);
    const codes = dead.map((m) => header(m.headers, '__connect.errors.class.name')).sort();
    expect(codes).toEqual(['BAD_MAGIC', 'POISON', 'SCHEMA_NOT_ALLOWED', 'TOO_SHORT']); // id 2147483647 is not an id of the topic's subject
    for (const m of dead) {
      expect(header(m.headers, '__connect.errors.topic')).toBe(env.names.physical('events.client'));
      expect(header(m.headers, '__connect.errors.exception.message')?.length).toBeGreaterThan(5);
      expect(header(m.headers, '__connect.errors.offset')).toMatch(/^\d+$/);
    }
    // The dead letter keeps the original bytes.
    const poison = dead.find((m) => header(m.headers, 'error.code') === 'POISON')!;
    const decoded = await env.codec.decode('ClientEvent', poison.value);
    expect(decoded.ok && decoded.value.event_id).toBe('e-300');
    expect(dead.find((m) => header(m.headers, 'error.code') === 'BAD_MAGIC')?.value?.toString()).toBe('not avro at all');

    const text = await registry.metrics();
    expect(text).toMatch(/loopline_worker_retries_total\{worker="echo",code="TRANSIENT"\} 3/);
    expect(text).toMatch(/loopline_worker_dead_letters_total\{worker="echo",code="POISON"\} 1/);
    expect(state.transientLeft).toBe(0);
  });
});
