/**
 * startPipeline's checks that fail before any connection opens: per-worker
 * Kafka credentials must name real workers, and with no shared pair every
 * worker started needs its own.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/config.js';
import { ConfigError } from '../core/errors.js';
import { loadSpec } from '../pipelines/spec.js';
import { createLogger } from '../streams/logger.js';
import { chainWorkers } from '../streams/chain.js';
import { compileWorkerConfig } from '../streams/definition.js';
import { startPipeline } from './pipeline.js';
import { preprocessor } from './preprocessor/index.js';
import { scorer } from './scorer/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { spec } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const logger = createLogger({ level: 'silent' });
// Nothing listens there: a check that let the start go on would fail differently (and slowly).
const base = { LOOPLINE_KAFKA_BROKERS: '127.0.0.1:1', LOOPLINE_CASSANDRA_CONTACT_POINTS: '127.0.0.1:1', LOOPLINE_KAFKA_SASL_MECHANISM: 'scram-sha-512' };

describe('startPipeline: per-worker Kafka credentials', () => {
  it('refuses credentials for a worker that does not exist', async () => {
    const config = loadConfig({ ...base, LOOPLINE_KAFKA_SASL_SCORRER_USERNAME: 'x', LOOPLINE_KAFKA_SASL_SCORRER_PASSWORD: 'y' });
    const p = startPipeline(config, spec, logger, { workers: ['scorer'] });
    await expect(p).rejects.toThrow(ConfigError);
    await expect(startPipeline(config, spec, logger, { workers: ['scorer'] })).rejects.toThrow(/LOOPLINE_KAFKA_SASL_SCORRER_USERNAME names no worker/);
  });

  it('without a shared pair, names every worker started without its own', async () => {
    const config = loadConfig({ ...base, LOOPLINE_KAFKA_SASL_SCORER_USERNAME: 'loopline-scorer', LOOPLINE_KAFKA_SASL_SCORER_PASSWORD: 'p' });
    await expect(startPipeline(config, spec, logger, { workers: ['preprocessor', 'scorer', 'joiner'] })).rejects.toThrow(
      /^preprocessor, joiner have no Kafka credentials: set LOOPLINE_KAFKA_SASL_PREPROCESSOR_USERNAME \/ _PASSWORD, or the shared/,
    );
  });
});

describe('chained workers\' settings', () => {
  it('reads each part\'s own variables (LOOPLINE_SCORER_…), the chain\'s name first', () => {
    const chained = chainWorkers(preprocessor, scorer);
    const own = compileWorkerConfig(chained, { LOOPLINE_SCORER_RELOAD_INTERVAL_MS: '500', LOOPLINE_PREPROCESSOR_SPEC_POLL_INTERVAL_MS: '200' });
    expect(own.settings).toMatchObject({ reloadIntervalMs: 500, specPollIntervalMs: 200 });
    const chain = compileWorkerConfig(chained, { LOOPLINE_SCORER_RELOAD_INTERVAL_MS: '500', LOOPLINE_PREPROCESSOR_SCORER_RELOAD_INTERVAL_MS: '700' });
    expect(chain.settings).toMatchObject({ reloadIntervalMs: 700, specPollIntervalMs: 5000 });
  });
});
