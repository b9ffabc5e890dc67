/**
 * `loopline replay`: streams a pipeline's replay dataset into the loop —
 * events, feature-store feeds and delayed ground truth, paced in event time
 * or as fast as the brokers take it. Assumes `loopline setup` has created the
 * topics. Progress goes to stderr, the summary to stdout; Ctrl-C stops after
 * the batch in flight and still prints the summary.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { createProgress } from './progress.js';
import { intOption, numberOption } from './options.js';
import { loadConfig } from '../config/config.js';
import { loadSpec } from '../pipelines/spec.js';
import { createCodec } from '../schemas/codec.js';
import { registryClientOf } from '../ops/clients.js';
import { ConfigError } from '../core/errors.js';
import { createKafka } from '../streams/kafka.js';
import { createLogger } from '../streams/logger.js';
import { createTopicNames } from '../streams/topics.js';
import { createLooplineProducer } from '../producers/client.js';
import { readCsv } from '../producers/csv.js';
import { buildReplayPlan } from '../producers/replay-plan.js';
import { createReplayer, type ReplayProgress } from '../producers/replayer.js';

interface ReplayCommandOptions {
  spec: string;
  limit?: number;
  offset: number;
  speed: number | 'max';
  eventsPerSecond?: number;
}

export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .description("stream a pipeline spec's replay CSV as events, feature updates and delayed labels (run `loopline setup` first)")
    .requiredOption('--spec <file>', 'pipeline spec JSON (its replay.csv is relative to the spec file)')
    .option('--limit <n>', 'replay at most n rows', intOption('--limit', 0))
    .option('--offset <n>', 'skip the first n rows', intOption('--offset', 0), 0)
    .option('--speed <x>', "event-time ms per wall-clock ms (60000 = a minute per ms), or 'max'", speedArg, 'max')
    .option('--events-per-second <n>', 'cap on events sent per second', numberOption('--events-per-second', 0, 1_000_000, true))
    .action(async (opts: ReplayCommandOptions) => {
      const config = loadConfig();
      const logger = createLogger({ level: 'warn', name: 'replay' });
      const { spec, dir } = loadSpec(opts.spec);
      if (!spec.replay) throw new ConfigError(`pipeline spec ${opts.spec} has no replay section`);
      const rows = readCsv(path.resolve(dir, spec.replay.csv));
      const plan = buildReplayPlan(spec, rows, { offset: opts.offset, ...(opts.limit === undefined ? {} : { limit: opts.limit }) });
      const total = plan.filter((a) => a.kind === 'event').length;

      const registry = registryClientOf(config);
      const producer = createLooplineProducer({
        kafka: createKafka(config.kafka, logger, 'replay'),
        codec: createCodec(registry),
        names: createTopicNames(config.kafka.topicPrefix),
        logger,
      });
      const progress = createProgress();
      const started = Date.now();
      const line = (p: ReplayProgress) => {
        const rate = p.events / Math.max((Date.now() - started) / 1000, 0.001);
        return `${fmt(p.events)}/${fmt(total)} events (${fmt(rate)}/s), ${fmt(p.features)} features, ${fmt(p.labels)} labels`;
      };

      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGINT', stop);
      await producer.connect();
      try {
        const r = await createReplayer({ producer, logger }).run(plan, {
          speed: opts.speed,
          ...(opts.eventsPerSecond === undefined ? {} : { eventsPerSecond: opts.eventsPerSecond }),
          signal: abort.signal,
          onProgress: (p) => progress(line(p)),
        });
        const seconds = (r.finishedAt - r.startedAt) / 1000;
        console.log(
          `${r.aborted ? 'stopped after' : 'replayed'} ${fmt(r.events)} events, ${fmt(r.features)} feature updates, ${fmt(r.labels)} labels ` +
            `of ${spec.name} in ${seconds.toFixed(1)}s (${fmt(r.events / Math.max(seconds, 0.001))} events/s)`,
        );
      } finally {
        process.off('SIGINT', stop);
        await producer.disconnect();
      }
    });
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function speedArg(value: string): number | 'max' {
  return value === 'max' ? 'max' : numberOption('--speed', 0, Number.MAX_VALUE, true)(value);
}
