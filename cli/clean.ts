/**
 * `loopline clean`: removes what a run left on the cluster — topics and
 * registry subjects under a topic prefix, and a keyspace. Prints what it
 * would remove unless `--yes`.
 *
 *   npm start -- clean --demo-runs --yes          # every demo run's topics, subjects and keyspace
 *   LOOPLINE_TOPIC_PREFIX=staging. LOOPLINE_CASSANDRA_KEYSPACE=staging npm start -- clean --yes
 */
import type { Command } from 'commander';
import { loadConfig, type LooplineConfig } from '../config/config.js';
import { LooplineError } from '../core/errors.js';
import { openClients } from '../ops/clients.js';
import { findDemoRuns, findLeftovers, removeLeftovers, type RunLeftovers } from '../ops/clean.js';
import { createLogger } from '../streams/logger.js';

/** Removes one run's topics, subjects and keyspace (the demo calls this at its end unless --keep). */
export async function cleanRun(config: LooplineConfig, prefix = config.kafka.topicPrefix, keyspace: string | null = config.cassandra.keyspace): Promise<RunLeftovers> {
  const c = openClients(config, createLogger({ level: 'error', name: 'clean' }), 'clean');
  try {
    const l = await findLeftovers(c, prefix, keyspace);
    await removeLeftovers(c, l);
    return l;
  } finally {
    await c.close();
  }
}

const describe = (l: RunLeftovers) => `${l.prefix}: ${l.topics.length} topics, ${l.subjects.length} subjects, keyspace ${l.keyspace ?? '(none)'}`;

export function registerCleanCommand(program: Command): void {
  program
    .command('clean')
    .description('remove the topics and registry subjects under a topic prefix and its keyspace (prints what it would remove unless --yes)')
    .option('--prefix <prefix>', 'topic and subject prefix (default LOOPLINE_TOPIC_PREFIX; never empty)')
    .option('--keyspace <name>', 'keyspace to drop (default LOOPLINE_CASSANDRA_KEYSPACE; `loopline` is dropped only when named here)')
    .option('--demo-runs', 'every demo run instead: demo-<run>. topics and subjects, demo_<run> keyspaces')
    .option('--yes', 'remove; without it, only print what would go')
    .action(async (o: { prefix?: string; keyspace?: string; demoRuns?: boolean; yes?: boolean }) => {
      const config = loadConfig();
      const c = openClients(config, createLogger({ level: 'error', name: 'clean' }), 'clean');
      try {
        let targets: RunLeftovers[];
        if (o.demoRuns) {
          if (o.prefix || o.keyspace) throw new LooplineError('--demo-runs finds the prefixes itself; leave out --prefix and --keyspace', { code: 'USAGE', retriable: false });
          targets = [];
          for (const r of await findDemoRuns(c)) targets.push(await findLeftovers(c, r.prefix, r.keyspace));
        } else {
          const prefix = o.prefix ?? config.kafka.topicPrefix;
          const keyspace = o.keyspace ?? (config.cassandra.keyspace === 'loopline' ? null : config.cassandra.keyspace);
          targets = [await findLeftovers(c, prefix, keyspace)];
        }
        if (targets.length === 0) console.log('nothing to clean');
        for (const t of targets) {
          if (o.yes) {
            await removeLeftovers(c, t);
            console.log(`removed ${describe(t)}`);
          } else console.log(`would remove ${describe(t)}`);
        }
        if (!o.yes && targets.length > 0) console.log('run again with --yes to remove them');
      } finally {
        await c.close();
      }
    });
}
