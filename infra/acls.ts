/**
 * Least-privilege Kafka access, one principal per worker, computed from the
 * worker definitions (consumers/index.ts) and the runtime's naming rules
 * (streams/runtime.ts), so a worker that changes its inputs or outputs changes
 * its ACLs with it.
 *
 * A worker `w` under topic prefix `p` runs as `User:loopline-w` and may:
 * - read each of its `input.topics`, and write each one's dead-letter topic
 *   (streams/topics.ts) and each of its `outputs`;
 * - read and describe its consumer group `<p>loopline-w` (JoinGroup, the
 *   transactional offset commit, and the admin OffsetFetch the runtime does
 *   after fencing a task);
 * - use the transactional ids `<p>loopline-w-…` of its per-task producers
 *   (`<group>-<topic>-<partition>`, or `<group>-task-<i>` for the
 *   co-partitioned joiner): one prefixed binding;
 * - for each topic it follows with a broadcast consumer (the definition's
 *   `broadcasts`; the scorer on control.models): read it, with groups
 *   prefixed `<p>loopline-w-broadcast-` (the runtime adds a uuid).
 * `loopline setup` (bootstrapInfra) applies the bindings as the admin whenever
 * Kafka is reached over SASL, so every prefix (a test run's too) gets exactly
 * its own bindings.
 *
 *   const bindings = workerAcls('staging.', 'scorer');   // pure
 *   await grantWorkerAcls(admin, 'staging.');            // createAcls, idempotent
 */
import kafkajs, { type AclEntry, type Admin } from 'kafkajs';
import { WORKER_NAMES, WORKERS, type WorkerName } from '../consumers/index.js';
import type { WorkerDefinition } from '../streams/definition.js';
import { topicSpec, type TopicName } from '../streams/topics.js';

// Node's ESM loader cannot see these CommonJS exports by name.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
type AclOperationTypes = kafkajs.AclOperationTypes;
type AclResourceTypes = kafkajs.AclResourceTypes;
type ResourcePatternTypes = kafkajs.ResourcePatternTypes;

/** What one worker touches in Kafka (logical topic names, without the prefix). */
export interface WorkerAccess {
  /** Its input topics, read by its consumer group. */
  reads: readonly TopicName[];
  /** Its outputs, then the dead-letter topics of its inputs: written in its transactions. */
  writes: readonly string[];
  /** Topics read by its broadcast consumers (groups `<group>-broadcast-<uuid>`). */
  follows: readonly TopicName[];
}

/** A definition's Kafka access: inputs, outputs, the inputs' dead-letter topics, broadcasts. */
export function accessOf(d: Pick<WorkerDefinition, 'input' | 'outputs' | 'broadcasts'>): WorkerAccess {
  const reads = d.input.topics.map((t) => t.topic);
  const deadLetters = reads.map((t) => topicSpec(t).deadLetter).filter((t): t is string => t !== null);
  return { reads, writes: [...new Set([...d.outputs, ...deadLetters])], follows: [...(d.broadcasts ?? [])] };
}

/** Every worker and what it may touch, from its definition. */
export const WORKER_ACCESS: Readonly<Record<WorkerName, WorkerAccess>> = Object.fromEntries(WORKERS.map((d) => [d.name, accessOf(d)])) as Record<WorkerName, WorkerAccess>;

export type SecuredWorker = WorkerName;
export const SECURED_WORKERS: readonly SecuredWorker[] = WORKER_NAMES as SecuredWorker[];

/** The SASL user (and ACL principal `User:<name>`) a worker runs as. */
export function workerPrincipal(worker: string): string {
  return `loopline-${worker}`;
}

/** The cluster resource's fixed name in the Kafka protocol. */
const CLUSTER = 'kafka-cluster';

/** One worker's ACL bindings under a topic prefix: literal topics and group, prefixed transactional ids and broadcast groups. */
export function workerAcls(prefix: string, worker: SecuredWorker): AclEntry[] {
  const access = WORKER_ACCESS[worker];
  if (!access) throw new Error(`unknown worker ${worker}; the workers are ${SECURED_WORKERS.join(', ')}`);
  const principal = `User:${workerPrincipal(worker)}`;
  const group = `${prefix}loopline-${worker}`;
  const allow = (resourceType: AclResourceTypes, resourceName: string, resourcePatternType: ResourcePatternTypes, operation: AclOperationTypes): AclEntry => ({
    resourceType, resourceName, resourcePatternType, principal, host: '*', operation, permissionType: AclPermissionTypes.ALLOW,
  });
  const topic = (name: string, op: AclOperationTypes) => allow(AclResourceTypes.TOPIC, `${prefix}${name}`, ResourcePatternTypes.LITERAL, op);
  return [
    ...access.reads.map((t) => topic(t, AclOperationTypes.READ)),
    // READ implies DESCRIBE; both are spelled out: OffsetFetch (the runtime's admin after fencing) checks DESCRIBE.
    allow(AclResourceTypes.GROUP, group, ResourcePatternTypes.LITERAL, AclOperationTypes.READ),
    allow(AclResourceTypes.GROUP, group, ResourcePatternTypes.LITERAL, AclOperationTypes.DESCRIBE),
    ...access.writes.map((t) => topic(t, AclOperationTypes.WRITE)),
    // Transactional ids are `<group>-<topic>-<partition>` or `<group>-task-<i>`: a prefixed binding covers every task.
    allow(AclResourceTypes.TRANSACTIONAL_ID, `${group}-`, ResourcePatternTypes.PREFIXED, AclOperationTypes.WRITE),
    allow(AclResourceTypes.TRANSACTIONAL_ID, `${group}-`, ResourcePatternTypes.PREFIXED, AclOperationTypes.DESCRIBE),
    allow(AclResourceTypes.CLUSTER, CLUSTER, ResourcePatternTypes.LITERAL, AclOperationTypes.IDEMPOTENT_WRITE),
    ...access.follows.map((t) => topic(t, AclOperationTypes.READ)),
    ...(access.follows.length > 0 ? [allow(AclResourceTypes.GROUP, `${group}-broadcast-`, ResourcePatternTypes.PREFIXED, AclOperationTypes.READ)] : []),
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
