/**
 * Least-privilege Kafka access, one principal per worker, from one table.
 *
 * Each worker reads its input topic with its own consumer group
 * (`<prefix>loopline-<worker>`), writes its outputs and the dead-letter topic of
 * its input, and owns the transactional ids `<group>-…` of its per-partition
 * transactional producers. `workerAcls(prefix)` turns the table into ACL
 * bindings for one topic prefix; `loopline setup` (bootstrapInfra) applies them
 * as the admin principal whenever Kafka is reached over SASL, so every prefix
 * (a test run's too) gets exactly its own bindings.
 *
 *   const bindings = workerAcls('staging.');       // pure
 *   await grantWorkerAcls(admin, 'staging.');      // createAcls, idempotent
 */
import kafkajs, { type AclEntry, type Admin } from 'kafkajs';
import { topicSpec } from './topics.js';

// Node's ESM loader cannot see these CommonJS exports by name.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
type AclOperationTypes = kafkajs.AclOperationTypes;
type AclResourceTypes = kafkajs.AclResourceTypes;
type ResourcePatternTypes = kafkajs.ResourcePatternTypes;

export interface WorkerAccess {
  /** The runtime's input topic (logical name); its dead-letter topic is writable too. */
  input: string;
  /** Topics written by the worker's transactions (logical names). */
  writes: readonly string[];
  /** Topics read by a side consumer whose group id starts with `<group>-<groupSuffix>` (e.g. the scorer following control.models). */
  follows?: readonly { topic: string; groupSuffix: string }[];
}

/**
 * Every worker and what it may touch. Keep in step with the workers'
 * handlers (`consumers/*`): a unit test checks the names and inputs.
 */
export const WORKER_ACCESS = {
  'feature-writer': { input: 'features.updates', writes: [] },
  'feature-aggregator': { input: 'events.client', writes: [] },
  preprocessor: { input: 'events.client', writes: ['features.vectors'] },
  scorer: { input: 'features.vectors', writes: ['predictions'], follows: [{ topic: 'control.models', groupSuffix: 'control-' }] },
  'label-joiner': { input: 'labels.ground-truth', writes: ['predictions.labeled', 'labels.late'] },
  'prediction-joiner': { input: 'predictions', writes: ['predictions.labeled'] },
  'drift-monitor': { input: 'predictions.labeled', writes: ['monitor.reports'] },
  'retrain-trigger': { input: 'monitor.reports', writes: ['control.retrain', 'control.models'] },
  'model-builder': { input: 'control.retrain', writes: ['control.candidates'] },
  evaluator: { input: 'control.candidates', writes: ['control.models'] },
} as const satisfies Record<string, WorkerAccess>;

export type SecuredWorker = keyof typeof WORKER_ACCESS;
export const SECURED_WORKERS = Object.keys(WORKER_ACCESS) as SecuredWorker[];

/** The SASL user (and ACL principal `User:<name>`) a worker runs as. */
export function workerPrincipal(worker: string): string {
  return `loopline-${worker}`;
}

/** The cluster resource's fixed name in the Kafka protocol. */
const CLUSTER = 'kafka-cluster';

/** One worker's ACL bindings under a topic prefix: literal topics and group, prefixed transactional ids. */
export function workerAcls(prefix: string, worker: SecuredWorker): AclEntry[] {
  const access: WorkerAccess = WORKER_ACCESS[worker];
  const principal = `User:${workerPrincipal(worker)}`;
  const group = `${prefix}loopline-${worker}`;
  const allow = (resourceType: AclResourceTypes, resourceName: string, resourcePatternType: ResourcePatternTypes, operation: AclOperationTypes): AclEntry => ({
    resourceType, resourceName, resourcePatternType, principal, host: '*', operation, permissionType: AclPermissionTypes.ALLOW,
  });
  const topic = (name: string, op: AclOperationTypes) => allow(AclResourceTypes.TOPIC, `${prefix}${name}`, ResourcePatternTypes.LITERAL, op);
  const dlq = topicSpec(access.input).deadLetter;
  return [
    topic(access.input, AclOperationTypes.READ),
    allow(AclResourceTypes.GROUP, group, ResourcePatternTypes.LITERAL, AclOperationTypes.READ),
    ...access.writes.map((t) => topic(t, AclOperationTypes.WRITE)),
    ...(dlq ? [topic(dlq, AclOperationTypes.WRITE)] : []),
    // Transactional ids are `<group>-<topic>-<partition>`: a prefixed binding covers every partition.
    allow(AclResourceTypes.TRANSACTIONAL_ID, `${group}-`, ResourcePatternTypes.PREFIXED, AclOperationTypes.WRITE),
    allow(AclResourceTypes.TRANSACTIONAL_ID, `${group}-`, ResourcePatternTypes.PREFIXED, AclOperationTypes.DESCRIBE),
    allow(AclResourceTypes.CLUSTER, CLUSTER, ResourcePatternTypes.LITERAL, AclOperationTypes.IDEMPOTENT_WRITE),
    ...(access.follows ?? []).flatMap((f) => [
      topic(f.topic, AclOperationTypes.READ),
      allow(AclResourceTypes.GROUP, `${group}-${f.groupSuffix}`, ResourcePatternTypes.PREFIXED, AclOperationTypes.READ),
    ]),
  ];
}

/** Every worker's bindings under a prefix. */
export function allWorkerAcls(prefix: string): AclEntry[] {
  return SECURED_WORKERS.flatMap((w) => workerAcls(prefix, w));
}

/** Creates the bindings of every worker under `prefix` (creating an existing binding is a no-op). */
export async function grantWorkerAcls(admin: Admin, prefix: string): Promise<number> {
  const acl = allWorkerAcls(prefix);
  await admin.createAcls({ acl });
  return acl.length;
}

/** Deletes exactly the bindings `grantWorkerAcls` made for `prefix` (a test run's cleanup). The cluster binding stays for other prefixes. */
export async function revokeWorkerAcls(admin: Admin, prefix: string): Promise<void> {
  const filters = allWorkerAcls(prefix).filter((a) => a.resourceType !== AclResourceTypes.CLUSTER);
  await admin.deleteAcls({ filters });
}

/** A human-readable table of one prefix's bindings (README, `stack up --secure`). */
export function describeWorkerAcls(prefix: string): string[] {
  // kafkajs's enums are plain objects at run time, without TypeScript's reverse mapping.
  const nameOf = (values: object, v: number) => Object.entries(values).find(([, x]) => x === v)?.[0] ?? String(v);
  return SECURED_WORKERS.map((w) => {
    const by = new Map<string, string[]>();
    for (const a of workerAcls(prefix, w)) {
      const key = `${nameOf(AclOperationTypes, a.operation)} ${nameOf(AclResourceTypes, a.resourceType).toLowerCase()}`;
      const name = a.resourcePatternType === ResourcePatternTypes.PREFIXED ? `${a.resourceName}*` : a.resourceName;
      by.set(key, [...(by.get(key) ?? []), name]);
    }
    return `${workerPrincipal(w)}: ${[...by].map(([k, names]) => `${k} ${names.join(', ')}`).join('; ')}`;
  });
}
