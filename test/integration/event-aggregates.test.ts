// Features computed from the entities' own events, on the real stack: the
// feature-aggregator keeps windows per entity and the preprocessor serves
// each event the aggregates of the events before it (as-of time = event time
// + availableAfterMs), never its own value.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import { loadSpec, parseSpec } from '../../pipelines/spec.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import type { ClientEvent, FeatureVector } from '../../schemas/types.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { workersCaughtUp, readToEnd } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const loaded = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const raw = structuredClone(loaded.spec) as Record<string, any>;
raw.featureSets.push({
  name: 'demand',
  source: 'events',
  features: { nswdemand_mean4: 'numeric', transfer_last: 'numeric', events_seen: 'numeric' },
  aggregates: {
    nswdemand_mean4: { field: 'nswdemand', op: 'mean', window: 4 },
    transfer_last: { field: 'transfer', op: 'last' },
    events_seen: { field: 'nswdemand', op: 'count', window: 10 },
  },
  availableAfterMs: 1_800_000,
  pointInTime: true,
  waitForWatermarkMs: 3000,
});
const spec = parseSpec(raw);
const csv = readCsv(path.join(loaded.dir, spec.replay!.csv));

let env: TestEnv;
let pipeline: RunningPipeline | null = null;
beforeAll(async () => {
  env = await createTestEnv('aggregates');
});
afterAll(async () => {
  await pipeline?.stop();
  await env?.cleanup();
});

describe('event aggregates', () => {
  it('serves each event the aggregates of the entity’s earlier events', async () => {
    pipeline = await startPipeline(env.config, spec, env.logger, { workers: ['feature-writer', 'feature-aggregator', 'preprocessor'], runtime: { batchMax: 100 } });
    const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
    await producer.connect();
    const plan = buildReplayPlan(spec, csv, { offset: 8000, limit: 400 }).filter((a) => a.kind !== 'label');
    const events = plan.filter((a) => a.kind === 'event').map((a) => a.record as ClientEvent);
    await createReplayer({ producer, logger: env.logger }).run(plan, { speed: 'max', eventsPerSecond: 1000 });
    await producer.disconnect();
    await waitFor('every worker to consume all its input', () => workersCaughtUp(env.kafka, env.admin, pipeline!.workers, env.names.prefix), 120_000, 500);

    const vectors = new Map<string, FeatureVector>();
    const messages = await readToEnd(env.kafka, env.admin, env.names.physical('features.vectors'));
    for (const m of messages) {
      const d = await env.codec.decode('FeatureVector', m.value);
      if (d.ok) vectors.set(d.value.event_id, d.value);
    }
    expect(messages).toHaveLength(events.length); // one vector per event, none twice
    expect(vectors.size).toBe(events.length);
    const demand = events.map((e) => e.fields.nswdemand as number);
    events.forEach((e, t) => {
      const v = vectors.get(e.event_id)!.values;
      if (t === 0) {
        expect(v.nswdemand_mean4).toBeNull(); // nothing before the first event of the replay
        return;
      }
      const prev = demand.slice(Math.max(0, t - 4), t);
      expect(v.nswdemand_mean4 as number).toBeCloseTo(prev.reduce((a, b) => a + b, 0) / prev.length, 12);
      expect(v.transfer_last).toBe(events[t - 1]!.fields.transfer);
      expect(v.events_seen).toBe(Math.min(t, 10));
    });
  }, 300_000);
});
