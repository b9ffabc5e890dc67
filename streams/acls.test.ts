import path from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { WORKER_NAMES } from '../consumers/pipeline.js';
import { createDriftMonitor } from '../consumers/drift-monitor/drift-monitor.js';
import { createEvaluator } from '../consumers/evaluator/evaluator.js';
import { createEventAggregator } from '../consumers/feature-writer/event-aggregator.js';
import { createFeatureWriter } from '../consumers/feature-writer/feature-writer.js';
import { createLabelJoiner, createPredictionJoiner } from '../consumers/joiner/joiner.js';
import { createModelBuilder } from '../consumers/model-builder/model-builder.js';
import { createPreprocessor } from '../consumers/preprocessor/preprocessor.js';
import { createRetrainTrigger } from '../consumers/retrain-trigger/retrain-trigger.js';
import { createScorer } from '../consumers/scorer/scorer.js';
import { loadSpec } from '../pipelines/spec.js';
import { allWorkerAcls, describeWorkerAcls, SECURED_WORKERS, WORKER_ACCESS, workerAcls, workerPrincipal } from './acls.js';
import { createLogger } from './logger.js';
import { TOPICS } from './topics.js';

const { AclOperationTypes: Op, AclResourceTypes: Res, ResourcePatternTypes: Pattern, AclPermissionTypes: Perm } = kafkajs;
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { spec } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));

describe('worker ACLs', () => {
  it('cover exactly the workers the pipeline runs', () => {
    expect([...SECURED_WORKERS].sort()).toEqual([...WORKER_NAMES].sort());
  });

  it("name each worker's real input topic (its handler's), and only catalogue topics", () => {
    // Handlers are pure factories: built with inert dependencies only to read their name and input.
    const inert = {} as never;
    const logger = createLogger({ level: 'silent' });
    const metrics = new Registry();
    const handlers = [
      createFeatureWriter({ spec, store: inert }),
      createEventAggregator({ spec, store: inert, cql: inert }),
      createPreprocessor({ spec, store: inert }),
      createScorer({ spec, registry: inert, log: inert, logger }),
      createLabelJoiner({ spec, cql: inert, log: inert, metrics, logger }),
      createPredictionJoiner({ spec, cql: inert, log: inert, metrics, logger }),
      createDriftMonitor({ spec, cql: inert, registry: inert, logger, metrics }),
      createRetrainTrigger({ spec, registry: inert, checkpoints: inert, logger }),
      createModelBuilder({ spec, cql: inert, registry: inert, logger }),
      createEvaluator({ spec, cql: inert, registry: inert, logger }),
    ];
    expect(Object.fromEntries(handlers.map((h) => [h.name, h.input.topic]))).toEqual(
      Object.fromEntries(SECURED_WORKERS.map((w) => [w, WORKER_ACCESS[w].input])),
    );
    const catalogue = new Set(TOPICS.map((t) => t.name));
    for (const a of allWorkerAcls('')) if (a.resourceType === Res.TOPIC) expect(catalogue).toContain(a.resourceName);
  });

  it('grant the scorer only what it needs, under the topic prefix', () => {
    const p = 'staging.';
    const acls = workerAcls(p, 'scorer');
    const summary = acls.map((a) => [a.resourceType, a.resourceName, a.resourcePatternType, a.operation]);
    expect(summary).toEqual([
      [Res.TOPIC, 'staging.features.vectors', Pattern.LITERAL, Op.READ],
      [Res.GROUP, 'staging.loopline-scorer', Pattern.LITERAL, Op.READ],
      [Res.TOPIC, 'staging.predictions', Pattern.LITERAL, Op.WRITE],
      [Res.TOPIC, 'staging.features.vectors.dlq', Pattern.LITERAL, Op.WRITE],
      [Res.TRANSACTIONAL_ID, 'staging.loopline-scorer-', Pattern.PREFIXED, Op.WRITE],
      [Res.TRANSACTIONAL_ID, 'staging.loopline-scorer-', Pattern.PREFIXED, Op.DESCRIBE],
      [Res.CLUSTER, 'kafka-cluster', Pattern.LITERAL, Op.IDEMPOTENT_WRITE],
      [Res.TOPIC, 'staging.control.models', Pattern.LITERAL, Op.READ],
      [Res.GROUP, 'staging.loopline-scorer-control-', Pattern.PREFIXED, Op.READ],
    ]);
    expect(new Set(acls.map((a) => a.principal))).toEqual(new Set([`User:${workerPrincipal('scorer')}`]));
    expect(acls.every((a) => a.permissionType === Perm.ALLOW && a.host === '*')).toBe(true);
    // The runtime's transactional ids, `<group>-<topic>-<partition>`, fall under the prefixed binding.
    expect('staging.loopline-scorer-staging.features.vectors-2'.startsWith(acls[4]!.resourceName)).toBe(true);
  });

  it('never grant a wildcard, a topic prefix or an operation beyond read, write, describe and idempotent write', () => {
    for (const a of allWorkerAcls('t.')) {
      expect(a.resourceName).not.toBe('*');
      if (a.resourceType === Res.TOPIC) expect(a.resourcePatternType).toBe(Pattern.LITERAL);
      expect([Op.READ, Op.WRITE, Op.DESCRIBE, Op.IDEMPOTENT_WRITE]).toContain(a.operation);
    }
  });

  it('describe themselves for people', () => {
    expect(describeWorkerAcls('')[0]).toBe(
      'loopline-feature-writer: READ topic features.updates; READ group loopline-feature-writer; WRITE topic features.updates.dlq; WRITE transactional_id loopline-feature-writer-*; DESCRIBE transactional_id loopline-feature-writer-*; IDEMPOTENT_WRITE cluster kafka-cluster',
    );
  });
});
