// Crash recovery of real worker processes: the scoring workers run as a
// child `loopline run` process which is killed with SIGKILL twice while a
// replay streams through it, then restarted on the same consumer group and
// transactional ids. Every event still ends with exactly one committed
// prediction and one log row: aborted transactions are never read, and
// the replayed chunks rewrite identical rows.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { loadSpec } from '../../pipelines/spec.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import { createPredictionLog } from '../../store/prediction-log.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';
import { scoringGroup, groupCaughtUp, readToEnd } from '../support/read-topic.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const specFile = path.join(root, 'pipelines', 'elec2.json');
const { spec, dir } = loadSpec(specFile);
const EVENTS = 3000;

let env: TestEnv;
let child: ChildProcess | null = null;
beforeAll(async () => {
  env = await createTestEnv('crash');
  await trainBootstrap(spec, dir, createModelRegistry(env.cql));
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await env?.cleanup();
});

function startWorkers(): ChildProcess {
  const p = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(root, 'cli', 'main.ts'), 'run', '--spec', specFile, '--workers', 'feature-writer,preprocessor,scorer', '--metrics-port', '0', '--batch-max', '100', '--session-timeout-ms', '10000'],
    {
      cwd: root,
      env: { ...process.env, LOOPLINE_TOPIC_PREFIX: env.config.kafka.topicPrefix, LOOPLINE_CASSANDRA_KEYSPACE: env.config.cassandra.keyspace, LOOPLINE_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  return p;
}

async function committedPredictions(): Promise<number> {
  const { groupId, topic } = scoringGroup(env.names.prefix); // the preprocessor and scorer chained: one event committed = one prediction committed
  const offsets = await env.admin.fetchOffsets({ groupId, topics: [topic] });
  return (offsets[0]?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
}

describe('crash recovery', () => {
  it('loses and duplicates nothing when the scoring workers are SIGKILLed twice mid-stream', async () => {
    child = startWorkers();
    const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
    await producer.connect();
    const plan = buildReplayPlan(spec, readCsv(path.join(dir, spec.replay!.csv)), { offset: 5000, limit: EVENTS }).filter((a) => a.kind !== 'label');
    const replay = createReplayer({ producer, logger: env.logger }).run(plan, { speed: 'max', eventsPerSecond: 150 });

    let kills = 0;
    for (const share of [0.25, 0.55]) {
      await waitFor(`${share * 100}% of the vectors scored`, async () => (await committedPredictions()) >= EVENTS * share, 180_000, 200);
      child.kill('SIGKILL');
      kills++;
      await new Promise((r) => child!.once('exit', r));
      child = startWorkers();
    }
    const sent = await replay;
    await producer.disconnect();
    expect(kills).toBe(2);
    const scoring = scoringGroup(env.names.prefix);
    await waitFor('the scoring group to consume every event', () => groupCaughtUp(env.admin, scoring.groupId, scoring.topic), 240_000, 500);

    const messages = await readToEnd(env.kafka, env.admin, env.names.physical('predictions'));
    const ids: string[] = [];
    for (const m of messages) {
      const d = await env.codec.decode('Prediction', m.value);
      if (d.ok) ids.push(d.value.event_id);
    }
    expect(ids.length).toBe(sent.events); // nothing committed twice
    expect(new Set(ids)).toEqual(new Set(sent.eventIds)); // nothing lost

    const log = createPredictionLog(env.cql);
    const perEvent: number[] = [];
    for (let i = 0; i < sent.eventIds.length; i += 200) {
      perEvent.push(...(await Promise.all(sent.eventIds.slice(i, i + 200).map(async (id) => (await log.byEvent(id)).length))));
    }
    expect(perEvent.every((n) => n === 1)).toBe(true);
  }, 900_000);
});
