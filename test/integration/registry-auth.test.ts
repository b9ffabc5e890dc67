// A registry that refuses the worker's credentials (401) must stop the
// worker, not dead-letter good records: nothing reaches the dead-letter
// topic, no offset is committed, the reason names the variable to fix, and
// the credentials in the registry URL appear in no log line.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCodec } from '../../schemas/codec.js';
import { createRegistryClient } from '../../schemas/registry-client.js';
import type { ClientEvent } from '../../schemas/types.js';
import { createLogger } from '../../streams/logger.js';
import { createWorkerMetrics } from '../../streams/metrics.js';
import { createWorker, type WorkerHandler } from '../../streams/runtime.js';
import { decodeOptionsFor } from '../../streams/topics.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';

const SENTINEL = 'S3ntinel-auth-pw';

let env: TestEnv;
let refusing: http.Server;
let refusingUrl: string;
beforeAll(async () => {
  env = await createTestEnv('regauth');
  refusing = http.createServer((_req, res) => {
    res.writeHead(401, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ error_code: 40101, message: 'Unauthorized' }));
  });
  await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', () => r()));
  refusingUrl = `http://svc:${SENTINEL}@127.0.0.1:${(refusing.address() as AddressInfo).port}/apis/ccompat/v7`;
});
afterAll(async () => {
  await new Promise<void>((r) => refusing?.close(() => r()));
  await env?.cleanup();
});

describe('registry credentials refused', () => {
  it('stops the worker with REGISTRY_AUTH and dead-letters nothing', async () => {
    const subject = env.names.subject('events.client', 'ClientEvent');
    const events: ClientEvent[] = Array.from({ length: 5 }, (_, i) => ({ event_id: `e-${i}`, pipeline: 'auth', entity_id: `k-${i}`, event_time: i, produced_at: i, fields: { x: i } }));
    const producer = env.kafka.producer();
    await producer.connect();
    await producer.send({ topic: env.names.physical('events.client'), messages: await Promise.all(events.map(async (e) => ({ key: e.entity_id, value: await env.codec.encode('ClientEvent', subject, e) }))) });
    await producer.disconnect();

    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', name: 'regauth', destination: new Writable({ write: (c: Buffer, _e, cb) => { lines.push(c.toString()); cb(); } }) });
    const processed: string[] = [];
    const handler: WorkerHandler<'ClientEvent'> = {
      name: 'auth-probe',
      input: { topics: [{ topic: 'events.client', record: 'ClientEvent' }] },
      async process(records) {
        processed.push(...records.map((r) => r.value.event_id));
        return { outputs: [] };
      },
    };
    // What the runtime is asked to pass once the rewrite lands; today's runtime decodes without options.
    expect(decodeOptionsFor(env.names, 'events.client').subjects).toEqual([subject]);
    const codec = createCodec(createRegistryClient({ url: refusingUrl, timeoutMs: 2000 }));
    const worker = createWorker(handler, { kafka: env.kafka, codec, names: env.names, logger, metrics: createWorkerMetrics(new Registry()) }, { batchMax: 50 });
    await worker.start();
    try {
      const health = await waitFor('the worker to fail', () => (worker.health().state === 'failed' ? worker.health() : undefined), 90_000);
      expect(health.error).toMatch(/answered 401 Unauthorized; check LOOPLINE_SCHEMA_REGISTRY_AUTH/);
    } finally {
      await worker.stop();
    }

    expect(processed).toEqual([]);
    const dlq = await env.admin.fetchTopicOffsets(env.names.physical('events.client.dlq'));
    expect(dlq.reduce((n, p) => n + Number(p.high) - Number(p.low), 0)).toBe(0);
    const committed = await env.admin.fetchOffsets({ groupId: `${env.names.prefix}loopline-auth-probe`, topics: [env.names.physical('events.client')] });
    expect(committed.flatMap((t) => t.partitions).every((p) => p.offset === '-1')).toBe(true);
    const log = lines.join('');
    expect(log).not.toContain(SENTINEL);
    expect(log).toContain('REGISTRY_AUTH');
  });
});
