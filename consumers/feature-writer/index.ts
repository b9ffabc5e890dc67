/**
 * feature-writer: applies streamed feature values (features.updates) to the
 * online feature store — latest value, history for as-of reads, and the
 * per-entity watermark the preprocessor waits on.
 *
 *   npm start -- run --workers feature-writer
 */
import type { Stores } from '../../store/stores.js';
import { defineWorker, type WorkerContext } from '../../streams/definition.js';
import { createFeatureWriter } from './feature-writer.js';

export const featureWriter = defineWorker({
  name: 'feature-writer',
  doc: 'applies streamed feature values to the online store (latest, history, watermark); an update older than the stored one changes nothing; bad names, types or non-finite numbers are dead-lettered',
  input: { topics: [{ topic: 'features.updates', record: 'FeatureUpdate' }] },
  outputs: [],
  tables: { reads: ['features_online'], writes: ['features_online', 'features_history', 'feature_watermarks'] },
  state: 'none (the store itself: writes are idempotent by as-of time)',
  settings: {},
  enabled: (spec) => spec.featureSets.some((s) => s.source === 'stream'),
  createMetrics: () => null,
  create: (_settings, ctx: WorkerContext<Pick<Stores, 'features'>>) => createFeatureWriter({ spec: ctx.spec, store: ctx.stores.features }),
});
