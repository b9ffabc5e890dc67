// The operator's view on a short real run (bootstrap model, every worker, a few hundred Elec2
// events with labels, on real servers under a fresh prefix and keyspace): `dlq replay` re-delivers
// a fixed dead letter once, `status --json` prints one object with the champion and the lag per
// group, and the dashboard's charts draw live data in headless Chromium (screenshot kept in
// test-output/dashboard.png).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type RunningPipeline } from '../../consumers/pipeline.js';
import { startDashboard, type DashboardServer } from '../../dashboard/server.js';
import { readDeadLetters } from '../../ops/dead-letters.js';
import { metricsFromRegistry } from '../../ops/metrics-source.js';
import { headerText, readToEnd } from '../../ops/read-to-end.js';
import { loadSpec, type PipelineSpec } from '../../pipelines/spec.js';
import { trainBootstrap } from '../../producers/bootstrap.js';
import { createLooplineProducer } from '../../producers/client.js';
import { readCsv } from '../../producers/csv.js';
import { buildReplayPlan } from '../../producers/replay-plan.js';
import { createReplayer } from '../../producers/replayer.js';
import type { ClientEvent } from '../../schemas/types.js';
import { createModelRegistry } from '../../store/model-registry.js';
import { createPredictionLog } from '../../store/prediction-log.js';
import { createTestEnv, waitFor, type TestEnv } from '../support/fixtures.js';

const run = promisify(execFile);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const loaded = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
// Small monitoring windows, so a few hundred labeled events make several quality and drift reports.
const spec: PipelineSpec = { ...loaded.spec, monitoring: { ...loaded.spec.monitoring, windowSize: 100 } };
const csv = readCsv(path.join(loaded.dir, spec.replay!.csv));
const ROWS = 700;
const CHROMIUM = '/usr/bin/chromium';

let env: TestEnv;
let pipeline: RunningPipeline;
let dashboard: DashboardServer;
let specFile: string;

function cli(args: string[]) {
  return run(process.execPath, ['--import', 'tsx', path.join(root, 'cli', 'main.ts'), ...args], {
    cwd: root,
    env: { ...process.env, LOOPLINE_TOPIC_PREFIX: env.config.kafka.topicPrefix, LOOPLINE_CASSANDRA_KEYSPACE: env.config.cassandra.keyspace, LOOPLINE_LOG_LEVEL: 'warn' },
    maxBuffer: 10_000_000,
  });
}

function event(id: string, fields: ClientEvent['fields']): ClientEvent {
  return { event_id: id, pipeline: 'elec2', entity_id: 'nsw', event_time: Date.UTC(1997, 0, 1), produced_at: Date.now(), fields };
}
const GOOD_FIELDS = { day: '3', period: 0.5, nswdemand: 0.4, vicprice: 0.003, vicdemand: 0.4, transfer: 0.4 };

beforeAll(async () => {
  env = await createTestEnv('operator');
  specFile = path.join(loaded.dir, `.operator-view-${env.id}.json`);
  fs.writeFileSync(specFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(loaded.file, 'utf8')), monitoring: spec.monitoring }));
  await trainBootstrap(spec, loaded.dir, createModelRegistry(env.cql));
  pipeline = await startPipeline(env.config, spec, env.logger, { runtime: { batchMax: 200 } });
  dashboard = await startDashboard({ config: env.config, spec, logger: env.logger, port: 0, metrics: metricsFromRegistry(pipeline.metrics), sampleMs: 1000 });

  const producer = createLooplineProducer({ kafka: env.kafka, codec: env.codec, names: env.names, logger: env.logger });
  await producer.connect();
  // Bad input first (dead letters by reason), then the replay.
  await producer.sendEvents([event('dlq-fix-1', { ...GOOD_FIELDS, period: 'noon' }), event('bad-nan-1', { ...GOOD_FIELDS, nswdemand: Number.NaN })]);
  await producer.sendRaw('events.client', [{ key: 'nsw', value: Buffer.from('not avro') }]);
  const plan = buildReplayPlan(spec, csv, { offset: spec.trainer.bootstrapRows, limit: ROWS });
  await createReplayer({ producer, logger: env.logger }).run(plan, { speed: 'max', eventsPerSecond: 400 });
  await producer.disconnect();
}, 300_000);

afterAll(async () => {
  await dashboard?.close();
  await pipeline?.stop();
  await env?.cleanup();
  if (specFile) fs.rmSync(specFile, { force: true });
});

describe('dead letters as a workflow', () => {
  it('`dlq replay` re-delivers a fixed record once: scored exactly once, and a second replay changes nothing', async () => {
    const letters = await waitFor('the bad event in events.client.dlq', async () => {
      const { letters } = await readDeadLetters(env.kafka, env.admin, env.names, { only: ['events.client.dlq'] });
      return letters.some((l) => l.code === 'WRONG_TYPE') && letters.length >= 3 ? letters : undefined;
    }, 60_000, 1000);
    expect(letters.map((l) => l.code).sort()).toEqual(['BAD_MAGIC', 'NON_FINITE', 'WRONG_TYPE']);

    const list = JSON.parse((await cli(['dlq', 'list', '--json'])).stdout) as { total: number; byReason: Array<{ code: string; count: number }> };
    expect(list.total).toBe(3);
    expect(list.byReason.map((r) => r.code).sort()).toEqual(['BAD_MAGIC', 'NON_FINITE', 'WRONG_TYPE']);

    const wrong = letters.find((l) => l.code === 'WRONG_TYPE')!;
    const show = JSON.parse((await cli(['dlq', 'show', 'events.client.dlq', `${wrong.partition}/${wrong.offset}`, '--json'])).stdout) as { headers: Record<string, string>; decoded: { value: ClientEvent } };
    expect(show.headers['__connect.errors.stage']).toBe('VALIDATION');
    expect(show.decoded.value.event_id).toBe('dlq-fix-1');

    const patch = JSON.stringify({ fields: { period: 0.5 } });
    const first = JSON.parse((await cli(['dlq', 'replay', 'events.client.dlq', '--reason', 'WRONG_TYPE', '--patch', patch, '--json'])).stdout) as { replayed: number; alreadyReplayed: number };
    expect(first).toMatchObject({ replayed: 1, alreadyReplayed: 0 });
    const log = createPredictionLog(env.cql);
    const rows = await waitFor('the fixed event to be scored', async () => {
      const r = await log.byEvent('dlq-fix-1');
      return r.length > 0 ? r : undefined;
    }, 60_000, 500);
    expect(rows).toHaveLength(1);

    const second = JSON.parse((await cli(['dlq', 'replay', 'events.client.dlq', '--reason', 'WRONG_TYPE', '--patch', patch, '--json'])).stdout) as { replayed: number; alreadyReplayed: number };
    expect(second).toMatchObject({ replayed: 0, alreadyReplayed: 1 });
    // The source topic holds exactly one replayed copy, and the log one row for the event.
    const { messages } = await readToEnd(env.kafka, env.admin, [env.names.physical('events.client')]);
    const copies = messages.filter((m) => headerText(m.headers, 'loopline.replayed-from'));
    expect(copies).toHaveLength(1);
    expect(headerText(copies[0]!.headers, 'loopline.replayed-from')).toBe(`${env.names.physical('events.client.dlq')}/${wrong.partition}/${wrong.offset}`);
    expect(await log.byEvent('dlq-fix-1')).toHaveLength(1);
  }, 240_000);
});

describe('loopline status', () => {
  it('--json prints one object alone on stdout with the champion and the lag per group and partition', async () => {
    const { stdout } = await cli(['status', '--spec', specFile, '--json', '--interval-ms', '500']);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const s = JSON.parse(lines[0]!) as { serving: { champion: number }; groups: Array<{ worker: string; lag: number; partitions: Array<{ partition: number; lag: number }> }>; stack: Array<{ ok: boolean }>; deadLetters: { byReason: Array<{ code: string }> } };
    expect(s.serving.champion).toBeGreaterThanOrEqual(1);
    expect(s.stack.every((h) => h.ok)).toBe(true);
    const workers = s.groups.map((g) => g.worker);
    expect(workers).toEqual(expect.arrayContaining(['preprocessor', 'scorer', 'joiner', 'drift-monitor']));
    for (const g of s.groups) expect(g.partitions.length).toBeGreaterThan(0);
    expect(s.deadLetters.byReason.map((r) => r.code)).toContain('WRONG_TYPE');
  }, 120_000);
});

describe.runIf(fs.existsSync(CHROMIUM))('the dashboard in headless Chromium', () => {
  it('draws live data in every chart and lists the registry with verdicts', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1700 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(dashboard.url);
      // Evaluated in the page (strings: this file is compiled without the DOM library).
      const counts = () =>
        page.evaluate(`(() => {
          const c = window.looplineCharts;
          const points = (name) => c[name].data.datasets.reduce((a, d) => a + d.data.length, 0);
          return {
            quality: points('quality'), drift: points('drift'), labels: points('labels'), throughput: points('throughput'), lag: points('lag'), deadLetters: points('deadLetters'),
            registryRows: document.querySelectorAll('#registry-table tr').length - 1,
            historyRows: document.querySelectorAll('#history-table tr').length - 1,
          };
        })()`) as Promise<Record<string, number>>;
      let last: Awaited<ReturnType<typeof counts>> | undefined;
      await waitFor('every chart to draw data', async () => {
        last = await counts();
        return Object.values(last).every((n) => n > 0);
      }, 180_000, 1000).catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(last)}`);
      });
      // Canvas pixels too: the quality chart is not blank.
      const inked = (await page.evaluate(`(() => {
        const canvas = document.getElementById('quality');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
        return n;
      })()`)) as number;
      expect(inked).toBeGreaterThan(1000);
      fs.mkdirSync(path.join(root, 'test-output'), { recursive: true });
      await page.screenshot({ path: path.join(root, 'test-output', 'dashboard.png'), fullPage: true });
      console.log(`[dashboard] ${JSON.stringify(last)}; screenshot test-output/dashboard.png`);
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 240_000);
});

describe.runIf(!fs.existsSync(CHROMIUM))('the dashboard in headless Chromium', () => {
  it.skip(`needs Chromium at ${CHROMIUM} (apt-get install -y chromium); not found, so the browser test did not run`, () => {});
});
