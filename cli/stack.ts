import type { Command } from 'commander';
import { createLocalStack } from '../infra/local-stack/local-stack.js';
import { createProgress } from './progress.js';

export function registerStackCommands(program: Command): void {
  const stack = program
    .command('stack')
    .description('the embedded local stack: Kafka (KRaft), Cassandra and a schema registry as real JVM processes on loopback');

  stack
    .command('up')
    .description('fetch artifacts from Maven Central if needed (first run: a few hundred MB), start every server, wait until each answers')
    .action(async () => {
      const started = Date.now();
      const s = createLocalStack({ progress: createProgress() });
      const a = await s.up();
      console.log(`local stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      console.log(`  LOOPLINE_KAFKA_BROKERS=${a.kafkaBrokers.join(',')}`);
      console.log(`  LOOPLINE_CASSANDRA_CONTACT_POINTS=${a.cassandraContactPoints.join(',')}`);
      console.log(`  LOOPLINE_SCHEMA_REGISTRY_URL=${a.schemaRegistryUrl}`);
    });

  stack
    .command('down')
    .description('stop every server (SIGTERM, SIGKILL after 20 s)')
    .option('--wipe', 'also delete their data and logs')
    .action(async (opts: { wipe?: boolean }) => {
      const s = createLocalStack({ progress: createProgress() });
      const stopped = await s.down({ wipe: Boolean(opts.wipe) });
      console.log(stopped.length ? `stopped: ${stopped.join(', ')}` : 'nothing was running');
    });

  stack
    .command('status')
    .description('which servers run and answer a client round trip')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const status = await createLocalStack().status();
      if (opts.json) {
        console.log(JSON.stringify(status, null, 2));
        return;
      }
      for (const s of status) {
        const state = s.ready ? 'ready' : s.running ? 'running, not answering' : 'stopped';
        console.log(`${s.name.padEnd(16)} ${state.padEnd(24)} ${s.pid ? `pid ${s.pid}`.padEnd(12) : ''.padEnd(12)} ${s.address}`);
      }
      if (!status.every((s) => s.ready)) process.exitCode = 3;
    });
}
