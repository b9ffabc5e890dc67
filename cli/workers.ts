import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { startPipeline, WORKER_NAMES } from '../consumers/pipeline.js';
import { loadSpec } from '../pipelines/spec.js';
import { startOpsServer } from '../streams/http.js';
import { intOption } from './options.js';
import { createLogger } from '../streams/logger.js';

export const DEFAULT_SPEC = 'pipelines/elec2.json';

export { intOption } from './options.js';

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run workers of a pipeline in this process until SIGTERM/SIGINT (drains: finishes the batch in hand, commits, closes)')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--workers <list>', `comma-separated subset of ${WORKER_NAMES.join(',')}`, WORKER_NAMES.join(','))
    .option('--metrics-port <port>', 'port of /metrics, /healthz and /readyz (0 = any free port)', intOption('--metrics-port', 0, 65535), 9464)
    .option('--metrics-host <host>', 'address /metrics, /healthz and /readyz listen on; loopback unless you need a remote scraper (e.g. 0.0.0.0 for the docker compose Prometheus or a Kubernetes probe)', '127.0.0.1')
    .option('--batch-max <n>', 'records per chunk (LOOPLINE_WORKER_BATCH_MAX)', intOption('--batch-max', 1, 10_000))
    .option('--session-timeout-ms <ms>', 'consumer session timeout: how soon a dead member\'s partitions move (LOOPLINE_WORKER_SESSION_TIMEOUT_MS)', intOption('--session-timeout-ms', 6000, 1_800_000))
    .action(async (opts: { spec: string; workers: string; metricsPort: number; metricsHost: string; batchMax?: number; sessionTimeoutMs?: number }) => {
      const config = loadConfig();
      const { spec } = loadSpec(opts.spec);
      const workers = opts.workers.split(',').map((w) => w.trim()).filter(Boolean);
      const unknown = workers.filter((w) => !WORKER_NAMES.includes(w));
      if (unknown.length) throw new InvalidArgumentError(`--workers: unknown ${unknown.join(', ')}; choose from ${WORKER_NAMES.join(', ')}`);
      const logger = createLogger({ level: config.logLevel, name: `loopline-${spec.name}` });
      const runtime = { ...(opts.batchMax ? { batchMax: opts.batchMax } : {}), ...(opts.sessionTimeoutMs ? { sessionTimeoutMs: opts.sessionTimeoutMs } : {}) };
      const pipeline = await startPipeline(config, spec, logger, { workers, runtime });
      const ops = await startOpsServer(pipeline.metrics, () => pipeline.workers, opts.metricsPort, opts.metricsHost);
      logger.info({ workers, metrics: `http://${opts.metricsHost}:${ops.port}/metrics` }, 'workers running; SIGTERM or Ctrl-C to drain and stop');
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
