import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { createModelAnnouncer } from '../models/control.js';
import { trainBootstrap } from '../models/pipeline-training.js';
import { createModelRegistry } from '../models/registry.js';
import { loadSpec } from '../pipelines/spec.js';
import { createCodec } from '../schemas/codec.js';
import { createRegistryClient } from '../schemas/registry-client.js';
import { createCassandraClient } from '../store/cassandra.js';
import { createKafka } from '../streams/kafka.js';
import { createLogger } from '../streams/logger.js';
import { createTopicNames } from '../streams/topics.js';
import { createProgress } from './progress.js';
import { DEFAULT_SPEC } from './workers.js';

async function withRegistry<T>(specFile: string, fn: (ctx: { registry: ReturnType<typeof createModelRegistry>; spec: ReturnType<typeof loadSpec>; announce: ReturnType<typeof createModelAnnouncer> }) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const spec = loadSpec(specFile);
  const cql = createCassandraClient(config.cassandra);
  const logger = createLogger({ level: 'warn' });
  const announce = createModelAnnouncer(createKafka(config.kafka, logger, 'cli'), createCodec(createRegistryClient(config.registry)), createTopicNames(config.kafka.topicPrefix));
  try {
    await cql.connect();
    return await fn({ registry: createModelRegistry(cql), spec, announce });
  } finally {
    await announce.close();
    await cql.shutdown();
  }
}

export function registerModelCommands(program: Command): void {
  program
    .command('train')
    .description('train the bootstrap model on the first rows of the replay dataset and make it champion if there is none')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .action(async (opts: { spec: string }) => {
      const progress = createProgress();
      await withRegistry(opts.spec, async ({ registry, spec }) => {
        progress(`training ${spec.spec.model.name} on the first ${spec.spec.trainer.bootstrapRows} rows`);
        const r = await trainBootstrap(spec.spec, spec.dir, registry);
        console.log(`registered ${r.model.modelName}@${r.model.version} (${r.rows} rows, ${r.seconds.toFixed(1)} s, training ${Object.entries(r.model.metrics).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(' ')})${r.promoted ? ', now champion' : ''}`);
      });
    });

  const models = program.command('models').description('the model registry: list, promote, roll back');
  models
    .command('list')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .action(async (opts: { spec: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec }) => {
        const { name } = spec.spec;
        const serving = await registry.serving(name, spec.spec.model.name);
        for (const m of await registry.list(name, spec.spec.model.name)) {
          const tag = m.version === serving.champion ? ' ← champion' : m.version === serving.shadow ? ' ← shadow' : '';
          console.log(`${String(m.version).padStart(4)}  ${m.status.padEnd(10)} ${new Date(m.createdAt).toISOString()}  rows=${m.trainingRows}  ${Object.entries(m.metrics).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(' ')}${tag}`);
        }
      });
    });
  models
    .command('promote <version>')
    .description('make a version champion (compare-and-set) and announce it to the scorers')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--reason <text>', 'why', 'manual promotion')
    .action(async (version: string, opts: { spec: string; reason: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec, announce }) => {
        const p = spec.spec.name;
        const m = spec.spec.model.name;
        const before = await registry.serving(p, m);
        const ok = await registry.promote({ pipeline: p, modelName: m, version: Number(version), expected: before.champion, actor: process.env.USER ?? 'operator', reason: opts.reason });
        if (!ok) throw new Error('the champion changed while promoting; look again with `models list`');
        await announce.announce({ pipeline: p, modelName: m, action: 'PROMOTE', version: Number(version), previous: before.champion, reason: opts.reason, actor: process.env.USER ?? 'operator' });
        console.log(`${m}@${version} is champion (was ${before.champion ?? 'none'})`);
      });
    });
  models
    .command('shadow <version>')
    .description('score every event with a version side by side (logged as variant "shadow", never served); "off" stops it')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .action(async (version: string, opts: { spec: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec, announce }) => {
        const p = spec.spec.name;
        const m = spec.spec.model.name;
        const v = version === 'off' ? null : Number(version);
        await registry.setShadow({ pipeline: p, modelName: m, version: v, actor: process.env.USER ?? 'operator', reason: 'manual shadow' });
        await announce.announce({ pipeline: p, modelName: m, action: v === null ? 'SHADOW_STOP' : 'SHADOW_START', version: v ?? 0, previous: null, reason: 'manual shadow', actor: process.env.USER ?? 'operator' });
        console.log(v === null ? 'shadow scoring stopped' : `${m}@${v} now scores every event in shadow`);
      });
    });
  models
    .command('ab <version>')
    .description('serve a share of events with a version as A/B arm (logged and published with variant "ab"); "off" stops it')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--share <fraction>', 'share of events, 0..1, chosen by a stable hash of the event id', '0.1')
    .action(async (version: string, opts: { spec: string; share: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec, announce }) => {
        const p = spec.spec.name;
        const m = spec.spec.model.name;
        const v = version === 'off' ? null : Number(version);
        await registry.setAb({ pipeline: p, modelName: m, version: v, share: Number(opts.share), actor: process.env.USER ?? 'operator', reason: 'manual A/B test' });
        await announce.announce({ pipeline: p, modelName: m, action: v === null ? 'AB_STOP' : 'AB_START', version: v ?? 0, previous: null, reason: 'manual A/B test', actor: process.env.USER ?? 'operator', share: Number(opts.share) });
        console.log(v === null ? 'A/B test stopped' : `${m}@${v} now serves ${(Number(opts.share) * 100).toFixed(1)}% of events`);
      });
    });
  models
    .command('rollback')
    .description('restore the previous champion and announce it')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--reason <text>', 'why', 'manual rollback')
    .action(async (opts: { spec: string; reason: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec, announce }) => {
        const p = spec.spec.name;
        const m = spec.spec.model.name;
        const before = await registry.serving(p, m);
        if (before.champion === null) throw new Error('no champion to roll back');
        const restored = await registry.rollback({ pipeline: p, modelName: m, expected: before.champion, actor: process.env.USER ?? 'operator', reason: opts.reason });
        if (restored === null) throw new Error('nothing to roll back to (no previous champion), or the champion changed meanwhile');
        await announce.announce({ pipeline: p, modelName: m, action: 'ROLLBACK', version: restored, previous: before.champion, reason: opts.reason, actor: process.env.USER ?? 'operator' });
        console.log(`${m}@${restored} is champion again (rolled back from ${before.champion})`);
      });
    });
}
