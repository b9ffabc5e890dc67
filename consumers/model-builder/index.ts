/**
 * model-builder: trains a candidate for each retrain request on the newest
 * labeled rows of what was served (the newest `holdoutRows` held out for the
 * evaluator), with the built-in or the spec's external trainer, and registers
 * it with its lineage. Training runs off the event loop while the builder
 * heartbeats; a lease on each request keeps two builders from building it.
 *
 *   npm start -- run --workers model-builder
 */
import { Histogram, type Registry } from 'prom-client';
import type { Stores } from '../../store/stores.js';
import { defineWorker, setting, type WorkerContext } from '../../streams/definition.js';
import { createLiveSpec } from '../live-spec.js';
import { createModelBuilder } from './model-builder.js';

function builderMetrics(registry: Registry) {
  return {
    seconds: new Histogram({ name: 'loopline_builder_train_seconds', help: 'Time to train and register a candidate.', buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800], registers: [registry] }),
  };
}

export const modelBuilder = defineWorker({
  name: 'model-builder',
  doc: 'trains on the newest labeled rows of what was served (time split: the newest holdoutRows are held out), built-in or external trainer, registers a candidate with its lineage',
  input: { topics: [{ topic: 'control.retrain', record: 'RetrainRequest' }] },
  outputs: ['control.candidates'],
  tables: { reads: ['training_rows', 'training_months', 'models', 'pipeline_specs', 'features_history'], writes: ['models', 'retrain_requests'] },
  state: 'none (each request\'s build is claimed and recorded in retrain_requests)',
  settings: {
    minRows: setting.integer(100, 2, 10_000_000, 'fewest training rows worth a model; a request with fewer is skipped'),
    leaseMs: setting.integer(30_000, 1000, 3_600_000, 'a builder\'s claim on a request lapses this long after its last renewal'),
    trainTimeoutMs: setting.integer(30 * 60_000, 1000, 24 * 3_600_000, 'longest an external trainer may run'),
  },
  runtime: { sessionTimeoutMs: 60_000 },
  createMetrics: builderMetrics,
  create(settings, ctx: WorkerContext<Pick<Stores, 'registry' | 'training' | 'requests' | 'specs' | 'features'>>, metrics) {
    return createModelBuilder({
      spec: ctx.spec,
      // Read before each request: a candidate is trained on the newest applied spec version's inputs.
      live: createLiveSpec({ initial: ctx.spec, store: ctx.stores.specs, pollMs: 0, logger: ctx.logger }),
      registry: ctx.stores.registry,
      training: ctx.stores.training,
      features: ctx.stores.features,
      requests: ctx.stores.requests,
      logger: ctx.logger.child({ worker: 'model-builder' }),
      ...settings,
      onBuilt: (_m, _r, seconds) => metrics.seconds.observe(seconds),
    });
  },
});
