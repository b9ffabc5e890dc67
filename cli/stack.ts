import path from 'node:path';
import type { Command } from 'commander';
import { createLocalStack, type ServiceStatus } from '../infra/local-stack/local-stack.js';
import { projectRoot } from '../infra/local-stack/paths.js';
import { describeWorkerAcls } from '../infra/acls.js';
import { createProgress } from './progress.js';

/** Secrets stay in the env files; the terminal (and CI logs) only get their location. */
const SECRET = /(PASSWORD|TOKEN)$/;

export function registerStackCommands(program: Command): void {
  const stack = program
    .command('stack')
    .description('the embedded local stack: Kafka (KRaft), Cassandra and a schema registry as real JVM processes on loopback');

  stack
    .command('up')
    .description('fetch artifacts from Maven Central if needed (first run: a few hundred MB), start every server, wait until each answers')
    .option('--secure', 'the secured stack: Kafka SASL_SSL + SCRAM-SHA-512 with per-worker ACLs, Cassandra auth + TLS, registry on HTTPS with bearer tokens (own ports and data)')
    .option('--cluster', 'three Kafka nodes (replication 3, min.insync.replicas 2) and three Cassandra nodes (replication 3, LOCAL_QUORUM) on 127.0.0.1-3, and one registry (own ports and data)')
    .action(async (opts: { secure?: boolean; cluster?: boolean }) => {
      const started = Date.now();
      const s = createLocalStack({ progress: createProgress(), secure: Boolean(opts.secure), cluster: Boolean(opts.cluster) });
      await s.up();
      console.log(`${s.mode === 'secure' ? 'secure ' : ''}local ${s.topology === 'cluster' ? 'cluster' : 'stack'} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      const env = s.clientEnv('admin');
      if (s.mode === 'plain') {
        if (s.topology === 'cluster') console.log('A client\'s environment (e.g. `env $(npm start -s -- stack env --cluster) npm start -- demo`):');
        for (const [k, v] of Object.entries(env)) if (k !== 'LOOPLINE_CASSANDRA_LOCAL_DC') console.log(`  ${k}=${v}`);
        return;
      }
      const envDir = path.relative(projectRoot, path.dirname(s.writeEnvFiles()[0] ?? '.')) || '.';
      console.log(`\nA client's environment, as the admin (setup, tests); passwords are in ${envDir}/admin.env:`);
      for (const [k, v] of Object.entries(env)) console.log(`  ${k}=${SECRET.test(k) ? `<in ${envDir}/admin.env>` : v}`);
      console.log(`\nEach worker has its own principal and env file, ${envDir}/<worker>.env, e.g.`);
      console.log(`  set -a; . ${envDir}/admin.env; set +a; npm start -- setup                        # topics, tables, schemas, worker ACLs`);
      console.log(`  (set -a; . ${envDir}/scorer.env; set +a; npm start -- run --workers scorer)      # the scorer as loopline-scorer`);
      console.log(`  (set -a; . ${envDir}/workers.env; set +a; npm start -- run)                      # every worker in one process, each as its own principal`);
      const prefix = process.env.LOOPLINE_TOPIC_PREFIX ?? '';
      console.log(`\nWorker ACLs that \`setup\` grants for the topic prefix "${prefix}" (LOOPLINE_TOPIC_PREFIX):`);
      for (const line of describeWorkerAcls(prefix)) console.log(`  ${line}`);
    });

  stack
    .command('env')
    .description("print a client's LOOPLINE_* variables for the stack, one per line (plain or cluster; the secure stack writes env files instead)")
    .option('--cluster', 'the cluster')
    .action((opts: { cluster?: boolean }) => {
      const s = createLocalStack({ cluster: Boolean(opts.cluster) });
      for (const [k, v] of Object.entries(s.clientEnv('admin'))) console.log(`${k}=${v}`);
    });

  stack
    .command('down')
    .description('stop every server (SIGTERM, SIGKILL after 20 s)')
    .option('--wipe', 'also delete their data and logs')
    .option('--secure', 'the secured stack')
    .option('--cluster', 'the cluster')
    .action(async (opts: { wipe?: boolean; secure?: boolean; cluster?: boolean }) => {
      const s = createLocalStack({ progress: createProgress(), secure: Boolean(opts.secure), cluster: Boolean(opts.cluster) });
      const stopped = await s.down({ wipe: Boolean(opts.wipe) });
      const which = s.mode === 'secure' ? ' (secure)' : s.topology === 'cluster' ? ' (cluster)' : '';
      console.log(stopped.length ? `stopped${which}: ${stopped.join(', ')}` : `nothing was running${which}`);
    });

  stack
    .command('status')
    .description('which servers run and answer a client round trip, in which mode (plain, secure) and topology (single, cluster); every stack unless --secure, --plain or --cluster')
    .option('--json', 'print JSON')
    .option('--secure', 'only the secured stack')
    .option('--plain', 'only the plain stack')
    .option('--cluster', 'only the cluster')
    .action(async (opts: { json?: boolean; secure?: boolean; plain?: boolean; cluster?: boolean }) => {
      const all = [{ secure: false }, { secure: true }, { cluster: true }];
      const modes = opts.secure ? [all[1]!] : opts.plain ? [all[0]!] : opts.cluster ? [all[2]!] : all;
      const stacks = await Promise.all(modes.map((m) => createLocalStack(m).status()));
      // Without a flag, a stack with nothing running is left out, unless nothing runs at all (then: the plain one).
      const shown = modes.length === 1 ? stacks : stacks.filter((st) => st.some((x) => x.running)).concat(stacks.every((st) => !st.some((x) => x.running)) ? [stacks[0]!] : []);
      const status: ServiceStatus[] = shown.flat();
      if (opts.json) {
        console.log(JSON.stringify(status, null, 2));
      } else {
        for (const s of status) {
          const state = s.ready ? 'ready' : s.needsSetup ? 'needs `stack up --secure`' : s.running ? 'running, not answering' : 'stopped';
          console.log(`${s.name.padEnd(16)} ${s.mode.padEnd(7)} ${s.topology.padEnd(8)} ${state.padEnd(24)} ${s.pid ? `pid ${s.pid}`.padEnd(12) : ''.padEnd(12)} ${s.address}`);
        }
      }
      if (!shown.some((st) => st.every((s) => s.ready))) process.exitCode = 3;
    });
}
