/**
 * Every worker of the loop, in the order data flows through them. The
 * composition root (consumers/pipeline.ts), the README's topology tables
 * (`npm run gen:docs`), the Kubernetes manifests and the flow tests all read
 * this list.
 */
import { ConfigError } from '../core/errors.js';
import type { AnyWorkerDefinition } from '../streams/definition.js';
import { driftMonitor } from './drift-monitor/index.js';
import { evaluator } from './evaluator/index.js';
import { featureAggregator } from './feature-aggregator/index.js';
import { featureWriter } from './feature-writer/index.js';
import { joiner } from './joiner/index.js';
import { modelBuilder } from './model-builder/index.js';
import { preprocessor } from './preprocessor/index.js';
import { retrainTrigger } from './retrain-trigger/index.js';
import { scorer } from './scorer/index.js';

export type { AnyWorkerDefinition };

export const WORKERS: readonly AnyWorkerDefinition[] = [featureWriter, featureAggregator, preprocessor, scorer, joiner, driftMonitor, retrainTrigger, modelBuilder, evaluator];

export const WORKER_NAMES = WORKERS.map((w) => w.name);
export type WorkerName = 'feature-writer' | 'feature-aggregator' | 'preprocessor' | 'scorer' | 'joiner' | 'drift-monitor' | 'retrain-trigger' | 'model-builder' | 'evaluator';

/** The online scoring path alone. */
export const SCORING_WORKERS: readonly WorkerName[] = ['feature-writer', 'feature-aggregator', 'preprocessor', 'scorer'];

export function workerDefinition(name: string): AnyWorkerDefinition {
  const d = WORKERS.find((w) => w.name === name);
  if (!d) throw new ConfigError(`unknown worker ${name}; the workers are ${WORKER_NAMES.join(', ')}`);
  return d;
}
