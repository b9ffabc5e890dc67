/**
 * The Kubernetes objects of Loopline, as pure functions of the worker
 * description (`workers.ts`) and an overlay's options. No I/O: `generate.ts`
 * writes what these return.
 *
 * Per worker: a Deployment (one `loopline run --workers <name>` container), a
 * headless Service for scraping, a PodDisruptionBudget and a KEDA ScaledObject
 * on its consumer group's lag, capped at its input partitions. Shared: the
 * environment ConfigMap, the KEDA TriggerAuthentication and the ServiceMonitor.
 * Not in the base, provided by every overlay: the pipeline spec ConfigMap and
 * the credential Secrets (`SECRETS`).
 */
import type { WorkerDeployment, WorkerResources } from './workers.js';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; [k: string]: unknown }; [k: string]: unknown };

/** Port of /metrics, /healthz and /readyz (`loopline run --metrics-port`), named `metrics` everywhere. */
export const METRICS_PORT = 9464;
export const METRICS_PORT_NAME = 'metrics';
/** The runtime drains on SIGTERM and exits after at most this long (cli/workers.ts). */
export const DRAIN_SECONDS = 30;
/** Longer than the drain, so the kubelet never SIGKILLs a drain in progress. */
export const TERMINATION_GRACE_SECONDS = DRAIN_SECONDS + 15;
export const IMAGE_NAME = 'loopline';
export const IMAGE = `${IMAGE_NAME}:latest`;
export const SPEC_DIR = '/etc/loopline';
export const SPEC_KEY = 'spec.json';
export const ENV_CONFIGMAP = 'loopline-env';
export const SPEC_CONFIGMAP = 'loopline-spec';
export const KAFKA_TRIGGER_AUTH = 'loopline-kafka';
/** The image's non-root user (Dockerfile `USER 1000:1000`), numeric so `runAsNonRoot` can be verified. */
export const RUN_AS_USER = 1000;

/** Non-secret settings of every worker (config/config.ts), the base's values; an overlay merges its own. */
export const ENV_DEFAULTS: Readonly<Record<string, string>> = {
  LOOPLINE_KAFKA_BROKERS: 'kafka:9092',
  LOOPLINE_KAFKA_SSL: 'false',
  LOOPLINE_TOPIC_PREFIX: '',
  LOOPLINE_KAFKA_REPLICATION_FACTOR: '1',
  LOOPLINE_CASSANDRA_CONTACT_POINTS: 'cassandra:9042',
  LOOPLINE_CASSANDRA_LOCAL_DC: 'datacenter1',
  LOOPLINE_CASSANDRA_KEYSPACE: 'loopline',
  LOOPLINE_CASSANDRA_REPLICATION: 'SimpleStrategy:1',
  LOOPLINE_CASSANDRA_SSL: 'false',
  LOOPLINE_SCHEMA_REGISTRY_URL: 'http://schema-registry:8081',
  LOOPLINE_LOG_LEVEL: 'info',
};

export interface SecretKey {
  key: string;
  /** The worker environment variable it feeds, if any. */
  env?: string;
  /** The KEDA Kafka scaler parameter it feeds, if any. */
  keda?: string;
  doc: string;
}

/**
 * The credential Secrets every overlay provides (empty values mean "not used": the config ignores empty
 * variables). The KEDA scaler names SASL and TLS its own way, so the Kafka Secret carries both spellings.
 */
export const SECRETS: ReadonlyArray<{ name: string; keys: readonly SecretKey[] }> = [
  {
    name: 'loopline-kafka',
    keys: [
      { key: 'sasl-mechanism', env: 'LOOPLINE_KAFKA_SASL_MECHANISM', doc: '`plain`, `scram-sha-256`, `scram-sha-512`, or empty for no SASL' },
      { key: 'sasl-username', env: 'LOOPLINE_KAFKA_SASL_USERNAME', keda: 'username', doc: 'SASL user' },
      { key: 'sasl-password', env: 'LOOPLINE_KAFKA_SASL_PASSWORD', keda: 'password', doc: 'SASL password' },
      { key: 'keda-sasl', keda: 'sasl', doc: 'the mechanism as KEDA spells it: `none`, `plaintext`, `scram_sha256`, `scram_sha512`' },
      { key: 'keda-tls', keda: 'tls', doc: '`enable` when `LOOPLINE_KAFKA_SSL` is true, else `disable`' },
    ],
  },
  {
    name: 'loopline-cassandra',
    keys: [
      { key: 'username', env: 'LOOPLINE_CASSANDRA_USERNAME', doc: 'PasswordAuthenticator user, or empty' },
      { key: 'password', env: 'LOOPLINE_CASSANDRA_PASSWORD', doc: 'its password, or empty' },
    ],
  },
  {
    name: 'loopline-schema-registry',
    keys: [{ key: 'basic-auth', env: 'LOOPLINE_SCHEMA_REGISTRY_AUTH', doc: '`user:password` for the registry, or empty' }],
  },
];

/** Loopline's SASL mechanism (LOOPLINE_KAFKA_SASL_MECHANISM) in KEDA's words. */
export const KEDA_SASL: Readonly<Record<string, string>> = { '': 'none', plain: 'plaintext', 'scram-sha-256': 'scram_sha256', 'scram-sha-512': 'scram_sha512' };

export const deploymentName = (worker: string) => `loopline-${worker}`;

/** Labels of everything; the ServiceMonitor selects Services by `app.kubernetes.io/name`. */
export function labels(worker?: string): Record<string, string> {
  return worker
    ? { 'app.kubernetes.io/name': 'loopline', 'app.kubernetes.io/component': worker, 'app.kubernetes.io/part-of': 'loopline' }
    : { 'app.kubernetes.io/name': 'loopline', 'app.kubernetes.io/part-of': 'loopline' };
}

/** Pod selector of one worker (a subset of its labels, never changed after the first apply). */
export function selector(worker: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'loopline', 'app.kubernetes.io/component': worker };
}

function resources(r: WorkerResources) {
  return { requests: { ...r.requests }, limits: { ...r.limits } };
}

export function deployment(w: WorkerDeployment): K8sObject {
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: METRICS_PORT_NAME },
    periodSeconds,
    timeoutSeconds: 3,
    failureThreshold,
  });
  const secretEnv = SECRETS.flatMap((s) =>
    s.keys.filter((k) => k.env).map((k) => ({ name: k.env!, valueFrom: { secretKeyRef: { name: s.name, key: k.key } } })),
  );
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: deploymentName(w.name), labels: labels(w.name) },
    spec: {
      // No `replicas`: the ScaledObject's HPA owns it, and an apply must not reset it.
      revisionHistoryLimit: 5,
      selector: { matchLabels: selector(w.name) },
      // A new member joins the group before the old one leaves; partitions move once per pod.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: labels(w.name) },
        spec: {
          terminationGracePeriodSeconds: TERMINATION_GRACE_SECONDS,
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: RUN_AS_USER, runAsGroup: RUN_AS_USER, fsGroup: RUN_AS_USER, seccompProfile: { type: 'RuntimeDefault' } },
          topologySpreadConstraints: [
            { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector(w.name) } },
          ],
          containers: [
            {
              name: 'worker',
              image: IMAGE,
              imagePullPolicy: 'IfNotPresent',
              // The image's entrypoint is the loopline CLI (Dockerfile).
              args: ['run', '--workers', w.name, '--spec', `${SPEC_DIR}/${SPEC_KEY}`, '--metrics-port', String(METRICS_PORT), '--metrics-host', '0.0.0.0'],
              ports: [{ name: METRICS_PORT_NAME, containerPort: METRICS_PORT, protocol: 'TCP' }],
              envFrom: [{ configMapRef: { name: ENV_CONFIGMAP } }],
              env: [...Object.entries(w.env).map(([name, value]) => ({ name, value })), ...secretEnv],
              resources: resources(w.resources),
              // The HTTP endpoint starts once every worker has connected; allow up to 5 minutes for that.
              startupProbe: probe('/healthz', 5, 60),
              livenessProbe: probe('/healthz', 10, 3),
              readinessProbe: probe('/readyz', 5, 3),
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [
                { name: 'spec', mountPath: SPEC_DIR, readOnly: true },
                // tsx's compile cache and the model builder's training files.
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            { name: 'spec', configMap: { name: SPEC_CONFIGMAP } },
            { name: 'tmp', emptyDir: { sizeLimit: '1Gi' } },
          ],
        },
      },
    },
  };
}

/** Headless: nothing is load-balanced to a worker; Prometheus scrapes each pod through the endpoints. */
export function service(w: WorkerDeployment): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: deploymentName(w.name), labels: labels(w.name) },
    spec: {
      clusterIP: 'None',
      selector: selector(w.name),
      ports: [{ name: METRICS_PORT_NAME, port: METRICS_PORT, targetPort: METRICS_PORT_NAME, protocol: 'TCP' }],
    },
  };
}

/** One voluntary eviction at a time per worker: never blocks a node drain, limits rebalances to one member. */
export function podDisruptionBudget(w: WorkerDeployment): K8sObject {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: deploymentName(w.name), labels: labels(w.name) },
    spec: { maxUnavailable: 1, selector: { matchLabels: selector(w.name) } },
  };
}

export function scaledObject(w: WorkerDeployment, topicPrefix: string): K8sObject {
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: deploymentName(w.name), labels: labels(w.name) },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deploymentName(w.name), envSourceContainerName: 'worker' },
      pollingInterval: 15,
      minReplicaCount: 1,
      maxReplicaCount: w.partitionCap,
      advanced: {
        // Every scale step is a group rebalance: scale down slowly.
        horizontalPodAutoscalerConfig: { behavior: { scaleDown: { stabilizationWindowSeconds: 300 } } },
      },
      triggers: w.inputs.map((input) => ({
        type: 'kafka',
        metadata: {
          // The brokers come from the same ConfigMap as the workers', through the container's environment.
          bootstrapServersFromEnv: 'LOOPLINE_KAFKA_BROKERS',
          consumerGroup: `${topicPrefix}${w.consumerGroup}`,
          topic: `${topicPrefix}${input.topic}`,
          lagThreshold: String(w.lagThreshold),
          // A new group starts from the beginning (the runtime subscribes fromBeginning), so its lag is the whole topic.
          offsetResetPolicy: 'earliest',
        },
        authenticationRef: { name: KAFKA_TRIGGER_AUTH },
      })),
    },
  };
}

export function triggerAuthentication(): K8sObject {
  const kafka = SECRETS.find((s) => s.name === 'loopline-kafka')!;
  return {
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'TriggerAuthentication',
    metadata: { name: KAFKA_TRIGGER_AUTH, labels: labels() },
    spec: { secretTargetRef: kafka.keys.filter((k) => k.keda).map((k) => ({ parameter: k.keda!, name: kafka.name, key: k.key })) },
  };
}

export function serviceMonitor(): K8sObject {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: 'loopline', labels: labels() },
    spec: {
      // job="loopline", as in infra/prometheus/prometheus.yml; the worker is the `worker` label of every metric.
      jobLabel: 'app.kubernetes.io/name',
      selector: { matchLabels: { 'app.kubernetes.io/name': 'loopline' } },
      endpoints: [{ port: METRICS_PORT_NAME, path: '/metrics', interval: '15s' }],
    },
  };
}

/**
 * Teaches kustomize the KEDA references, so generated (hash-suffixed) Secret names and an overlay's
 * namePrefix reach the TriggerAuthentication and the ScaledObjects.
 */
export function kustomizeConfig() {
  return {
    nameReference: [
      { kind: 'Secret', fieldSpecs: [{ kind: 'TriggerAuthentication', path: 'spec/secretTargetRef/name' }] },
      { kind: 'Deployment', fieldSpecs: [{ kind: 'ScaledObject', path: 'spec/scaleTargetRef/name' }] },
      { kind: 'TriggerAuthentication', fieldSpecs: [{ kind: 'ScaledObject', path: 'spec/triggers/authenticationRef/name' }] },
    ],
  };
}

/** An example or real deployment of one pipeline: what its overlay changes in the base. */
export interface OverlayOptions {
  /** Folder under infra/k8s/overlays/. */
  name: string;
  namespace: string;
  image: { newName: string; newTag: string };
  /** The pipeline spec to run (copied into the overlay: kustomize reads files only below the overlay). */
  specFile: string;
  /** Environment merged over ENV_DEFAULTS; its LOOPLINE_TOPIC_PREFIX also goes into the ScaledObjects. */
  env: Record<string, string>;
  /** Placeholder Secret values, every key of SECRETS (never real credentials in git). */
  secrets: Record<string, Record<string, string>>;
  /** KEDA's minReplicaCount per worker (default 1), at most the partition cap. */
  minReplicas: Record<string, number>;
  /** Container limits per worker, replacing the base's. */
  limits: Record<string, Partial<WorkerResources['limits']>>;
}
