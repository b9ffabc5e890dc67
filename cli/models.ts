/**
 * `loopline train` and `loopline models …`: the bootstrap model and the
 * registry by hand. Every change goes through models/lifecycle.ts (the same
 * path the evaluator and the retrain trigger take: a promotion keeps the old
 * champion as shadow for the rollback guard) and is announced on
 * control.models so scorers swap at once.
 */
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { ConfigError, LooplineError } from '../core/errors.js';
import * as lifecycle from '../models/lifecycle.js';
import type { ModelRegistry } from '../models/registry.js';
import { loadSpec, type LoadedSpec } from '../pipelines/spec.js';
import { trainBootstrap } from '../producers/bootstrap.js';
import { createCodec } from '../schemas/codec.js';
import { registryClientOf } from '../ops/clients.js';
import { createCassandraClient } from '../store/cassandra.js';
import { createTrainingSet, type TrainingSet } from '../store/training-set.js';
import { createModelRegistry } from '../store/model-registry.js';
import { createKafka } from '../streams/kafka.js';
import { createLogger } from '../streams/logger.js';
import { createTopicNames } from '../streams/topics.js';
import { createModelAnnouncer, type ModelAnnouncer } from './announce.js';
import { createProgress } from './progress.js';
import { DEFAULT_SPEC } from './workers.js';
import { intOption } from './options.js';

async function withRegistry<T>(specFile: string, fn: (ctx: { registry: ModelRegistry; training: TrainingSet; spec: LoadedSpec; announce: ModelAnnouncer }) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const spec = loadSpec(specFile);
  const cql = createCassandraClient(config.cassandra);
  const logger = createLogger({ level: 'warn' });
  const announce = createModelAnnouncer(createKafka(config.kafka, logger, 'cli'), createCodec(registryClientOf(config)), createTopicNames(config.kafka.topicPrefix));
  try {
    await cql.connect();
    return await fn({ registry: createModelRegistry(cql), training: createTrainingSet(cql), spec, announce });
  } finally {
    await announce.close();
    await cql.shutdown();
  }
}

const actor = () => process.env.USER ?? 'operator';
const manual = (spec: LoadedSpec, reason: string) => ({ pipeline: spec.spec.name, modelName: spec.spec.model.name, actor: actor(), reason, cause: `manual-${Date.now()}` });

function version(raw: string, option = 'version'): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${option} must be a positive integer (got ${JSON.stringify(raw)})`);
  return n;
}

function share(raw: string): number {
  const n = Number(raw);
  if (!(n >= 0 && n <= 1)) throw new ConfigError(`--share must be a number in 0..1 (got ${JSON.stringify(raw)})`);
  return n;
}

const fmtMetrics = (m: Record<string, number>) => Object.entries(m).map(([k, v]) => `${k}=${v.toFixed(3)}`).join(' ');

export function registerModelCommands(program: Command): void {
  program
    .command('train')
    .description('train the bootstrap model on the first rows of the replay dataset and make it champion if there is none')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .action(async (opts: { spec: string }) => {
      const progress = createProgress();
      await withRegistry(opts.spec, async ({ registry, training, spec, announce }) => {
        progress(`training ${spec.spec.model.name} on the first ${spec.spec.trainer.bootstrapRows} rows`);
        const r = await trainBootstrap(spec.spec, spec.dir, registry, actor(), training);
        if (r.promoted) await announce.announce(lifecycle.modelEvent({ ...manual(spec, 'bootstrap model'), cause: 'bootstrap' }, 'PROMOTE', r.model.version, null));
        console.log(`registered ${r.model.modelName}@${r.model.version} (${r.rows} rows, ${r.seconds.toFixed(1)} s, training ${fmtMetrics(r.model.metrics)})${r.promoted ? ', now champion' : ''}`);
      });
    });

  const models = program.command('models').description('the model registry: list, show, promote, roll back, shadow, A/B');
  models
    .command('list')
    .description('every version with its status, training metrics and verdict')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .action(async (opts: { spec: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec }) => {
        const { name } = spec.spec;
        const serving = await registry.serving(name, spec.spec.model.name);
        for (const m of await registry.list(name, spec.spec.model.name)) {
          const tag = m.version === serving.champion ? ' ← champion' : m.version === serving.shadow ? ' ← shadow' : m.version === serving.ab ? ` ← A/B ${serving.abShare}` : '';
          const lineage = `${m.parentVersion ? `parent v${m.parentVersion}` : 'no parent'}, spec ${m.specVersion === null ? 'unversioned' : `v${m.specVersion}`}, ${m.trainer}${m.trainingStart ? `, trained on ${new Date(m.trainingStart).toISOString().slice(0, 16)} → ${new Date(m.trainingEnd ?? m.trainingStart).toISOString().slice(0, 16)}` : ''}`;
          console.log(`${String(m.version).padStart(4)}  ${m.status.padEnd(10)} ${new Date(m.createdAt).toISOString()}  rows=${m.trainingRows}  ${fmtMetrics(m.metrics)}${tag}`);
          console.log(`      ${lineage}`);
          // The verdict: the evaluator's numbers for a promoted or rejected candidate, a rollback's reason.
          console.log(`      verdict: ${m.verdict ?? (m.status === 'candidate' ? '(not judged yet)' : '(none recorded)')}`);
        }
      });
    });
  models
    .command('history')
    .description('promotions, rollbacks, shadow and A/B changes, newest first, each with who and why (a rollback\'s reason, the evaluator\'s numbers)')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--limit <n>', 'how many', intOption('--limit', 1, 10_000), 50)
    .option('--json', 'print one JSON object alone on stdout')
    .action(async (opts: { spec: string; limit: number; json?: boolean }) => {
      await withRegistry(opts.spec, async ({ registry, spec }) => {
        const history = await registry.history(spec.spec.name, spec.spec.model.name, opts.limit);
        if (opts.json) {
          console.log(JSON.stringify({ history: history.map((h) => ({ ...h, at: new Date(h.at).toISOString() })) }));
          return;
        }
        for (const h of history) console.log(`${new Date(h.at).toISOString()}  ${h.action.padEnd(12)} v${h.version}${h.previous ? ` (was v${h.previous})` : ''}  by ${h.actor}: ${h.reason}`);
        if (history.length === 0) console.log('no changes recorded');
      });
    });
  models
    .command('show <version>')
    .description('one version: lineage, metrics, verdict')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .action(async (v: string, opts: { spec: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec }) => {
        const m = (await registry.list(spec.spec.name, spec.spec.model.name)).find((x) => x.version === version(v));
        if (!m) throw new LooplineError(`${spec.spec.model.name}@${v} is not in the registry; \`loopline models list\` shows the versions`, { code: 'NOT_FOUND', retriable: false });
        console.log(JSON.stringify({ ...m, baseline: undefined }, null, 2));
      });
    });
  models
    .command('promote <version>')
    .description('make a version champion (compare-and-set), keep the old one as shadow, and announce it to the scorers')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--reason <text>', 'why', 'manual promotion')
    .action(async (v: string, opts: { spec: string; reason: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec, announce }) => {
        const before = await registry.serving(spec.spec.name, spec.spec.model.name);
        const event = await lifecycle.promote(registry, { ...manual(spec, opts.reason), version: version(v), expected: before.champion });
        if (!event) throw new LooplineError('the champion changed while promoting; look again with `loopline models list`', { code: 'CONFLICT', retriable: false });
        await announce.announce(event);
        console.log(`${spec.spec.model.name}@${v} is champion (was ${before.champion ?? 'none'}${before.champion ? `, now shadow` : ''})`);
      });
    });
  models
    .command('shadow <version>')
    .description('score every event with a version side by side (logged as variant "shadow", never served); "off" stops it')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .action(async (v: string, opts: { spec: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec, announce }) => {
        const n = v === 'off' ? null : version(v);
        await announce.announce(await lifecycle.setShadow(registry, { ...manual(spec, 'manual shadow'), version: n }));
        console.log(n === null ? 'shadow scoring stopped' : `${spec.spec.model.name}@${n} now scores every event in shadow`);
      });
    });
  models
    .command('ab <version>')
    .description('serve a share of events with a version as A/B arm (logged and published with variant "ab"); "off" stops it')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--share <fraction>', 'share of events, 0..1, chosen by a stable hash of the event id', '0.1')
    .action(async (v: string, opts: { spec: string; share: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec, announce }) => {
        const n = v === 'off' ? null : version(v);
        const s = share(opts.share);
        await announce.announce(await lifecycle.setAb(registry, { ...manual(spec, 'manual A/B test'), version: n, share: s }));
        console.log(n === null ? 'A/B test stopped' : `${spec.spec.model.name}@${n} now serves ${(s * 100).toFixed(1)}% of events`);
      });
    });
  models
    .command('rollback')
    .description('restore the previous champion and announce it')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--reason <text>', 'why', 'manual rollback')
    .action(async (opts: { spec: string; reason: string }) => {
      await withRegistry(opts.spec, async ({ registry, spec, announce }) => {
        const before = await registry.serving(spec.spec.name, spec.spec.model.name);
        if (before.champion === null) throw new LooplineError('no champion to roll back; `loopline train` trains and promotes one', { code: 'NO_CHAMPION', retriable: false });
        const event = await lifecycle.rollback(registry, { ...manual(spec, opts.reason), expected: before.champion });
        if (!event) throw new LooplineError('nothing to roll back to (no previous champion), or the champion changed meanwhile', { code: 'CONFLICT', retriable: false });
        await announce.announce(event);
        console.log(`${spec.spec.model.name}@${event.model_version} is champion again (rolled back from ${before.champion})`);
      });
    });
}
