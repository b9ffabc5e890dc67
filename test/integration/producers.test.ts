// The replay through a real broker and registry: 300 Elec2 rows at full
// speed arrive on the three input topics, keyed as the catalogue says, and
// decode to exactly the records of the plan.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSpec } from '../../pipelines/spec.js';
import { createLooplineProducer, type LooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import { createTestEnv, type TestEnv } from '../support/fixtures.js';
import { readToEnd, type ReadMessage } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

let env: TestEnv;
let producer: LooplineProducer;
beforeAll(async () => {
  env = await createTestEnv('producers');
  producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
  await producer.connect();
});
afterAll(async () => {
  await producer?.disconnect();
  await env?.cleanup();
});

/** Every message of each logical topic, read to its end offsets (the sends have completed, so that is all of them). */
async function consume(topics: string[]): Promise<Map<string, ReadMessage[]>> {
  return new Map(await Promise.all(topics.map(async (t) => [t, await readToEnd(env.kafka, env.admin, env.names.physical(t))] as const)));
}

describe('replay producer', () => {
  it('replays 300 Elec2 rows onto events, feature updates and labels, keyed and decodable', async () => {
    const { spec, dir } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
    const plan = buildReplayPlan(spec, readCsv(path.join(dir, spec.replay!.csv)), { limit: 300 });
    const before = Date.now();
    const result = await createReplayer({ producer, logger: env.logger }).run(plan, { speed: 'max' });
    expect(result).toMatchObject({ events: 300, features: 300, labels: 300, aborted: false });

    const got = await consume(['events.client', 'features.updates', 'labels.ground-truth']);
    const decode = async <N extends 'ClientEvent' | 'FeatureUpdate' | 'GroundTruth'>(name: N, messages: ReadMessage[]) =>
      Promise.all(
        messages.map(async (m) => {
          const d = await env.codec.decode(name, m.value);
          if (!d.ok) throw new Error(`${name} did not decode: ${d.error.message}`);
          return { key: m.key?.toString(), value: d.value };
        }),
      );

    // One entity: every event is on one partition, in plan order, stamped with its send time.
    const events = await decode('ClientEvent', got.get('events.client')!);
    expect(events).toHaveLength(300);
    const planned = plan.flatMap((a) => (a.kind === 'event' ? [a.record] : []));
    expect(events.map((e) => ({ ...e.value, produced_at: 0 }))).toEqual(planned);
    for (const e of events) {
      expect(e.key).toBe('nsw');
      expect(e.value.produced_at).toBeGreaterThanOrEqual(before);
    }

    const updates = await decode('FeatureUpdate', got.get('features.updates')!);
    expect(updates.map((u) => u.value)).toEqual(plan.flatMap((a) => (a.kind === 'feature' ? [a.record] : [])));
    for (const u of updates) expect(u.key).toBe('nsw');

    // Labels are keyed by event id, so spread over partitions: compare as sets.
    const labels = await decode('GroundTruth', got.get('labels.ground-truth')!);
    const plannedLabels = plan.flatMap((a) => (a.kind === 'label' ? [a.record] : []));
    expect(labels).toHaveLength(plannedLabels.length); // none twice
    expect(new Map(labels.map((l) => [l.value.event_id, l.value]))).toEqual(new Map(plannedLabels.map((l) => [l.event_id, l])));
    for (const l of labels) expect(l.key).toBe(l.value.event_id);
  });

  it('sendRaw delivers bytes as given, for injecting malformed records', async () => {
    const bytes = Buffer.from([0, 0, 0, 0, 9, 1, 2]);
    await producer.sendRaw('events.client.dlq', [{ key: 'bad', value: bytes }]);
    const got = await consume(['events.client.dlq']);
    expect(got.get('events.client.dlq')).toHaveLength(1);
    expect(got.get('events.client.dlq')?.[0]?.value).toEqual(bytes);
    await expect(producer.sendRaw('no.such.topic', [])).rejects.toThrow(/unknown topic/);
  });
});
