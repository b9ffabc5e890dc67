import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { startPipeline, WORKER_NAMES, type WorkerName } from '../consumers/pipeline.js';
import { loadSpec } from '../pipelines/spec.js';
import { startOpsServer } from '../streams/http.js';
import { createLogger } from '../streams/logger.js';

export const DEFAULT_SPEC = 'pipelines/elec2.json';

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run workers of a pipeline in this process until SIGTERM/SIGINT (drains: finishes the batch in hand, commits, closes)')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--workers <list>', `comma-separated subset of ${WORKER_NAMES.join(',')}`, WORKER_NAMES.join(','))
    .option('--metrics-port <port>', 'port of /metrics, /healthz and /readyz (0 = any free port)', '9464')
    .option('--metrics-host <host>', 'address /metrics, /healthz and /readyz listen on; loopback unless you need a remote scraper (e.g. 0.0.0.0 for the docker compose Prometheus)', '127.0.0.1')
    .option('--batch-max <n>', 'records per chunk and transaction', '500')
    .option('--session-timeout-ms <ms>', 'consumer session timeout: how soon a dead member\'s partitions move', '30000')
    .action(async (opts: { spec: string; workers: string; metricsPort: string; metricsHost: string; batchMax: string; sessionTimeoutMs: string }) => {
      const config = loadConfig();
      const { spec } = loadSpec(opts.spec);
      const workers = opts.workers.split(',').map((w) => w.trim()) as WorkerName[];
      const unknown = workers.filter((w) => !(WORKER_NAMES as readonly string[]).includes(w));
      if (unknown.length) throw new Error(`--workers: unknown ${unknown.join(', ')}; choose from ${WORKER_NAMES.join(', ')}`);
      const logger = createLogger({ level: config.logLevel, name: `loopline-${spec.name}` });
      const pipeline = await startPipeline(config, spec, logger, { workers, worker: { batchMax: Number(opts.batchMax), sessionTimeoutMs: Number(opts.sessionTimeoutMs) } });
      const ops = await startOpsServer(pipeline.metrics, () => pipeline.workers, Number(opts.metricsPort), opts.metricsHost);
      logger.info({ workers, metricsHost: opts.metricsHost, metricsPort: ops.port }, 'workers running; SIGTERM or Ctrl-C to drain and stop');
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'draining');
        const force = setTimeout(() => {
          logger.error('drain took over 30 s; exiting');
          process.exit(1);
        }, 30_000);
        await pipeline.stop();
        await ops.close();
        clearTimeout(force);
        process.exit(0);
      };
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
      const watchdog = setInterval(() => {
        if (pipeline.workers.some((w) => w.health().state === 'failed')) {
          logger.error({ health: pipeline.workers.map((w) => w.health()) }, 'a worker failed and will not restart; exiting for the supervisor to restart this process');
          process.exit(2);
        }
      }, 2000);
      watchdog.unref();
    });
}
