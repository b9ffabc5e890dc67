/**
 * preprocessor: validates each client event against the spec, joins it with
 * the entity's online features (point-in-time where the set asks for it,
 * after a bounded wait for the writers to catch up) and records exactly
 * which values it served and which were missing.
 *
 *   npm start -- run --workers preprocessor
 */
import { Histogram, type Registry } from 'prom-client';
import type { Stores } from '../../store/stores.js';
import { defineWorker, setting, type WorkerContext } from '../../streams/definition.js';
import { FEATURE_AGGREGATOR } from '../feature-aggregator/index.js';
import { createLiveSpec } from '../live-spec.js';
import { createPreprocessor } from './preprocessor.js';

function preprocessorMetrics(registry: Registry) {
  return {
    waited: new Histogram({
      name: 'loopline_preprocessor_watermark_wait_seconds',
      help: 'Time spent waiting for the feature writers to reach the events\' time.',
      labelNames: ['feature_set', 'caught_up'],
      buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}

export const preprocessor = defineWorker({
  name: 'preprocessor',
  doc: 'validates the event against the spec, joins it with the entity\'s online features and records exactly which values it served and which were missing',
  input: { topics: [{ topic: 'events.client', record: 'ClientEvent' }] },
  outputs: ['features.vectors'],
  tables: { reads: ['features_online', 'features_history', 'feature_watermarks', 'worker_progress', 'pipeline_specs'], writes: [] },
  state: 'none',
  settings: {
    specPollIntervalMs: setting.integer(5000, 100, 3_600_000, 'how often the applied spec versions are read: a new version (setup --spec) is served from the next chunk'),
  },
  createMetrics: preprocessorMetrics,
  create: (settings, ctx: WorkerContext<Pick<Stores, 'features' | 'progress' | 'specs'>>, metrics) =>
    createPreprocessor({
      spec: ctx.spec,
      live: createLiveSpec({ initial: ctx.spec, store: ctx.stores.specs, pollMs: settings.specPollIntervalMs, logger: ctx.logger }),
      store: ctx.stores.features,
      aggregatorProgress: ctx.stores.progress(FEATURE_AGGREGATOR),
      now: ctx.now,
      onWait: (set, ms, caughtUp) => metrics.waited.observe({ feature_set: set, caught_up: String(caughtUp) }, ms / 1000),
    }),
});
