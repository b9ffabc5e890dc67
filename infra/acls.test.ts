import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { WORKER_NAMES, WORKERS } from '../consumers/index.js';
import { loadSpec } from '../pipelines/spec.js';
import { accessOf, allWorkerAcls, describeWorkerAcls, SECURED_WORKERS, WORKER_ACCESS, workerAcls, workerPrincipal } from './acls.js';
import { compileWorkerConfig, type WorkerImpl } from '../streams/definition.js';
import { createLogger } from '../streams/logger.js';
import type { RecordName } from '../schemas/catalogue.js';
import { TOPICS, topicSpec } from '../streams/topics.js';

const { AclOperationTypes: Op, AclResourceTypes: Res, ResourcePatternTypes: Pattern, AclPermissionTypes: Perm } = kafkajs;
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { spec } = loadSpec(path.join(root, 'pipelines', 'elec2.json'));
const summary = (prefix: string, worker: (typeof SECURED_WORKERS)[number]) => workerAcls(prefix, worker).map((a) => [a.resourceType, a.resourceName, a.resourcePatternType, a.operation]);

describe('worker ACLs', () => {
  it('cover exactly the workers the pipeline runs', () => {
    expect([...SECURED_WORKERS]).toEqual([...WORKER_NAMES]);
    expect(Object.keys(WORKER_ACCESS).sort()).toEqual([...WORKER_NAMES].sort());
  });

  it("follow each definition: its input topics, its outputs and its inputs' dead-letter topics, only catalogue topics", () => {
    for (const d of WORKERS) {
      const access = WORKER_ACCESS[d.name as keyof typeof WORKER_ACCESS];
      expect(access.reads).toEqual(d.input.topics.map((t: { topic: string }) => t.topic));
      const deadLetters = d.input.topics.map((t: { topic: string }) => topicSpec(t.topic).deadLetter).filter(Boolean);
      expect(new Set(access.writes)).toEqual(new Set([...d.outputs, ...deadLetters]));
      expect(access.follows).toEqual(d.broadcasts ?? []);
    }
    const catalogue = new Set(TOPICS.map((t) => t.name));
    for (const a of allWorkerAcls('')) if (a.resourceType === Res.TOPIC) expect(catalogue).toContain(a.resourceName);
  });

  it("declare every broadcast the worker's implementation follows (the ACLs read the definitions, not the implementations)", () => {
    // Implementations are built with inert stores, only to read what they subscribe to.
    const inert: object = new Proxy(() => inert, { get: () => inert, apply: () => inert });
    const logger = createLogger({ level: 'silent' });
    for (const d of WORKERS) {
      const impl = d.create(compileWorkerConfig(d, {}).settings, { spec, logger, stores: inert as never, now: Date.now }, d.createMetrics(new Registry())) as WorkerImpl<RecordName>;
      expect({ worker: d.name, follows: (impl.broadcasts ?? []).map((b) => b.topic) }).toEqual({ worker: d.name, follows: [...(d.broadcasts ?? [])] });
    }
  });

  it('grant the scorer its input, its three outputs, its dead letters, its tasks and its control.models and control.candidates broadcasts, under the topic prefix', () => {
    const p = 'staging.';
    expect(summary(p, 'scorer')).toEqual([
      [Res.TOPIC, 'staging.features.vectors', Pattern.LITERAL, Op.READ],
      [Res.GROUP, 'staging.loopline-scorer', Pattern.LITERAL, Op.READ],
      [Res.GROUP, 'staging.loopline-scorer', Pattern.LITERAL, Op.DESCRIBE],
      [Res.TOPIC, 'staging.predictions', Pattern.LITERAL, Op.WRITE],
      [Res.TOPIC, 'staging.predictions.by-event', Pattern.LITERAL, Op.WRITE],
      [Res.TOPIC, 'staging.predictions.by-model', Pattern.LITERAL, Op.WRITE],
      [Res.TOPIC, 'staging.features.vectors.dlq', Pattern.LITERAL, Op.WRITE],
      [Res.TRANSACTIONAL_ID, 'staging.loopline-scorer-', Pattern.PREFIXED, Op.WRITE],
      [Res.TRANSACTIONAL_ID, 'staging.loopline-scorer-', Pattern.PREFIXED, Op.DESCRIBE],
      [Res.CLUSTER, 'kafka-cluster', Pattern.LITERAL, Op.IDEMPOTENT_WRITE],
      [Res.TOPIC, 'staging.control.models', Pattern.LITERAL, Op.READ],
      [Res.TOPIC, 'staging.control.candidates', Pattern.LITERAL, Op.READ],
      [Res.GROUP, 'staging.loopline-scorer-broadcast-', Pattern.PREFIXED, Op.READ],
    ]);
    const acls = workerAcls(p, 'scorer');
    expect(new Set(acls.map((a) => a.principal))).toEqual(new Set([`User:${workerPrincipal('scorer')}`]));
    expect(acls.every((a) => a.permissionType === Perm.ALLOW && a.host === '*')).toBe(true);
    // The runtime's ids fall under the prefixed bindings: `<group>-<topic>-<partition>` and `<group>-broadcast-<uuid>`.
    expect('staging.loopline-scorer-staging.features.vectors-2'.startsWith(acls[7]!.resourceName)).toBe(true);
    expect(`staging.loopline-scorer-broadcast-${crypto.randomUUID()}`.startsWith(acls[12]!.resourceName)).toBe(true);
  });

  it('grant the joiner both co-partitioned inputs, both dead-letter topics and its task ids', () => {
    expect(summary('', 'joiner')).toEqual([
      [Res.TOPIC, 'labels.ground-truth', Pattern.LITERAL, Op.READ],
      [Res.TOPIC, 'predictions.by-event', Pattern.LITERAL, Op.READ],
      [Res.GROUP, 'loopline-joiner', Pattern.LITERAL, Op.READ],
      [Res.GROUP, 'loopline-joiner', Pattern.LITERAL, Op.DESCRIBE],
      [Res.TOPIC, 'predictions.labeled', Pattern.LITERAL, Op.WRITE],
      [Res.TOPIC, 'labels.late', Pattern.LITERAL, Op.WRITE],
      [Res.TOPIC, 'labels.ground-truth.dlq', Pattern.LITERAL, Op.WRITE],
      [Res.TOPIC, 'predictions.by-event.dlq', Pattern.LITERAL, Op.WRITE],
      [Res.TRANSACTIONAL_ID, 'loopline-joiner-', Pattern.PREFIXED, Op.WRITE],
      [Res.TRANSACTIONAL_ID, 'loopline-joiner-', Pattern.PREFIXED, Op.DESCRIBE],
      [Res.CLUSTER, 'kafka-cluster', Pattern.LITERAL, Op.IDEMPOTENT_WRITE],
    ]);
    expect('loopline-joiner-task-2'.startsWith(workerAcls('', 'joiner')[8]!.resourceName)).toBe(true);
  });

  it("never grant a wildcard, a topic prefix, another worker's ids or an operation beyond read, write, describe and idempotent write", () => {
    for (const a of allWorkerAcls('t.')) {
      expect(a.resourceName).not.toBe('*');
      if (a.resourceType === Res.TOPIC) expect(a.resourcePatternType).toBe(Pattern.LITERAL);
      expect([Op.READ, Op.WRITE, Op.DESCRIBE, Op.IDEMPOTENT_WRITE]).toContain(a.operation);
    }
    // A prefixed grant `loopline-<w>-` must not cover another worker's group or ids (no worker is named `<w>-…`).
    for (const w of WORKER_NAMES) for (const other of WORKER_NAMES) if (other !== w) expect(other.startsWith(`${w}-`)).toBe(false);
  });

  it('give broadcast groups only to workers that follow a topic', () => {
    const followers = SECURED_WORKERS.filter((w) => workerAcls('', w).some((a) => a.resourceType === Res.GROUP && a.resourcePatternType === Pattern.PREFIXED));
    expect(followers).toEqual(['scorer']);
    expect(accessOf({ input: { topics: [{ topic: 'labels.late', record: 'GroundTruth' }] }, outputs: [] })).toEqual({ reads: ['labels.late'], writes: [], follows: [] });
  });

  it('describe themselves for people', () => {
    expect(describeWorkerAcls('')[0]).toBe(
      'loopline-feature-writer: READ topic features.updates; READ group loopline-feature-writer; DESCRIBE group loopline-feature-writer; WRITE topic features.updates.dlq; WRITE transactional_id loopline-feature-writer-*; DESCRIBE transactional_id loopline-feature-writer-*; IDEMPOTENT_WRITE cluster kafka-cluster',
    );
  });
});
