/**
 * `loopline dashboard`: the live dashboard of the configured cluster (see
 * dashboard/server.ts for the endpoints), until Ctrl-C.
 *
 *   npm start -- dashboard --port 18700 --metrics-url http://127.0.0.1:9464/metrics
 */
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { followDemo } from '../ops/demo-run.js';
import { startDashboard } from '../dashboard/server.js';
import { metricsFromUrl } from '../ops/metrics-source.js';
import { loadSpec } from '../pipelines/spec.js';
import { createLogger } from '../streams/logger.js';
import { DEFAULT_SPEC, intOption } from './workers.js';

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description('serve the live dashboard of the configured cluster: quality, drift, labels, throughput, lag, dead letters, registry (Ctrl-C stops)')
    .option('--spec <file>', 'pipeline spec', DEFAULT_SPEC)
    .option('--port <port>', 'port to listen on (0 = any free port)', intOption('--port', 0, 65535), 18700)
    .option('--host <host>', 'address to listen on; the page has no authentication, so loopback unless you trust the network', '127.0.0.1')
    .option('--metrics-url <url>', "a worker process's /metrics (e.g. http://127.0.0.1:9464/metrics of `loopline run`), for label coverage and delay")
    .action(async (o: { spec: string; port: number; host: string; metricsUrl?: string }) => {
      const config = loadConfig(followDemo());
      const { spec } = loadSpec(o.spec);
      const logger = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel, name: 'dashboard' });
      const d = await startDashboard({ config, spec, logger, port: o.port, host: o.host, ...(o.metricsUrl ? { metrics: metricsFromUrl(o.metricsUrl) } : {}) });
      console.log(`dashboard at ${d.url} (pipeline ${spec.name}, prefix ${config.kafka.topicPrefix || '(none)'}, keyspace ${config.cassandra.keyspace}); Ctrl-C stops`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await d.close();
    });
}
