import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';
import { WORKER_NAMES, WORKERS } from '../../consumers/index.js';
import { loadSpec, parseSpec } from '../../pipelines/spec.js';
import { topicSpec } from '../../streams/topics.js';
import { EXAMPLE_OVERLAY, K8S_DIR, OVERLAYS, generateFiles, generatedFilesOnDisk } from './generate.js';
import { KustomizeError, renderKustomization, renderWithKustomize } from './kustomize.js';
import {
  DRAIN_SECONDS, ENV_CONFIGMAP, ENV_DEFAULTS, IMAGE, KEDA_SASL, METRICS_PORT, SECRETS, SPEC_CONFIGMAP, SPEC_KEY, deploymentName,
  type K8sObject, type OverlayOptions,
} from './manifests.js';
import { describeWorkers, type WorkerDeployment } from './workers.js';

const ROOT = path.resolve(K8S_DIR, '../..');
const workers = describeWorkers();

interface Rendering {
  label: string;
  dir: string;
  overlay: OverlayOptions | null;
  objects: K8sObject[];
}

const dirs = [{ dir: 'base', overlay: null }, ...OVERLAYS.map((o) => ({ dir: `overlays/${o.name}`, overlay: o }))];
const ours: Rendering[] = dirs.map((d) => ({ label: `${d.dir} (test renderer)`, ...d, objects: renderKustomization(path.join(K8S_DIR, d.dir)) }));
const real: Rendering[] = dirs.flatMap((d) => {
  const r = renderWithKustomize(path.join(K8S_DIR, d.dir));
  return r ? [{ label: `${d.dir} (${r.tool})`, ...d, objects: r.objects }] : [];
});

// ---- reading rendered objects ----

type Container = {
  name: string; image: string; args?: string[]; ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } } }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: Probe; readinessProbe?: Probe; startupProbe?: Probe;
  securityContext?: Record<string, unknown>; volumeMounts?: Array<{ name: string; mountPath: string }>;
};
type Probe = { httpGet?: { path: string; port: string | number } };
type PodSpec = {
  containers: Container[]; terminationGracePeriodSeconds?: number; securityContext?: Record<string, unknown>;
  volumes?: Array<{ name: string; configMap?: { name: string }; secret?: { secretName: string }; emptyDir?: unknown }>;
};
type Trigger = { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } };

const ofKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const named = (objects: K8sObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
const podSpec = (d: K8sObject) => (d.spec as { template: { spec: PodSpec } }).template.spec;
const podLabels = (d: K8sObject) => (d.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
const labelsOf = (o: K8sObject) => (o.metadata.labels ?? {}) as Record<string, string>;
const subset = (want: Record<string, string>, have: Record<string, string>) => Object.entries(want).every(([k, v]) => have[k] === v);

function container(d: K8sObject): Container {
  const cs = podSpec(d).containers;
  expect(cs, `${d.metadata.name}: one container`).toHaveLength(1);
  return cs[0]!;
}

function argValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

function secretData(s: K8sObject): Record<string, string> {
  const data = Object.fromEntries(Object.entries((s.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  return { ...data, ...((s.stringData ?? {}) as Record<string, string>) };
}
const configMapData = (c: K8sObject) => (c.data ?? {}) as Record<string, string>;

/** The worker Deployment of each worker present. */
function deploymentsByWorker(objects: K8sObject[]): Map<string, K8sObject> {
  return new Map(ofKind(objects, 'Deployment').map((d) => [labelsOf(d)['app.kubernetes.io/component'] ?? d.metadata.name, d]));
}

/** The names and keys of every Secret and ConfigMap the objects read. */
function references(objects: K8sObject[]) {
  const refs: Array<{ kind: 'Secret' | 'ConfigMap'; name: string; key: string | null; from: string }> = [];
  for (const d of ofKind(objects, 'Deployment')) {
    const spec = podSpec(d);
    for (const c of spec.containers) {
      const from = `${d.metadata.name}/${c.name}`;
      for (const e of c.env ?? []) {
        if (e.valueFrom?.secretKeyRef) refs.push({ kind: 'Secret', ...e.valueFrom.secretKeyRef, from });
        if (e.valueFrom?.configMapKeyRef) refs.push({ kind: 'ConfigMap', ...e.valueFrom.configMapKeyRef, from });
      }
      for (const e of c.envFrom ?? []) {
        if (e.configMapRef) refs.push({ kind: 'ConfigMap', name: e.configMapRef.name, key: null, from });
        if (e.secretRef) refs.push({ kind: 'Secret', name: e.secretRef.name, key: null, from });
      }
    }
    for (const v of spec.volumes ?? []) {
      if (v.configMap) refs.push({ kind: 'ConfigMap', name: v.configMap.name, key: null, from: `${d.metadata.name} volume ${v.name}` });
      if (v.secret) refs.push({ kind: 'Secret', name: v.secret.secretName, key: null, from: `${d.metadata.name} volume ${v.name}` });
    }
  }
  for (const t of ofKind(objects, 'TriggerAuthentication')) {
    for (const r of ((t.spec as { secretTargetRef?: Array<{ name: string; key: string }> }).secretTargetRef ?? [])) {
      refs.push({ kind: 'Secret', name: r.name, key: r.key, from: `TriggerAuthentication ${t.metadata.name}` });
    }
  }
  return refs;
}

function resolves(objects: K8sObject[], ref: ReturnType<typeof references>[number]): boolean {
  const o = named(objects, ref.kind, ref.name);
  if (!o) return false;
  return ref.key === null || ref.key in (ref.kind === 'Secret' ? secretData(o) : configMapData(o));
}

/** A container's environment as the kubelet would give it, from the rendered ConfigMaps and Secrets (absent ones left out). */
function containerEnv(objects: K8sObject[], c: Container): Record<string, string> {
  const env: Record<string, string> = {};
  const secret = (name: string) => { const o = named(objects, 'Secret', name); return o ? secretData(o) : {}; };
  const configMap = (name: string) => { const o = named(objects, 'ConfigMap', name); return o ? configMapData(o) : {}; };
  for (const e of c.envFrom ?? []) {
    if (e.configMapRef) Object.assign(env, configMap(e.configMapRef.name));
    if (e.secretRef) Object.assign(env, secret(e.secretRef.name));
  }
  for (const e of c.env ?? []) {
    const value = e.value ?? (e.valueFrom?.secretKeyRef
      ? secret(e.valueFrom.secretKeyRef.name)[e.valueFrom.secretKeyRef.key]
      : e.valueFrom?.configMapKeyRef ? configMap(e.valueFrom.configMapKeyRef.name)[e.valueFrom.configMapKeyRef.key] : undefined);
    if (value !== undefined) env[e.name] = value;
  }
  return env;
}

/** The topic prefix the workers of a Deployment run with (from its environment ConfigMap). */
function topicPrefixOf(objects: K8sObject[], d: K8sObject): string {
  const ref = container(d).envFrom?.find((e) => e.configMapRef)?.configMapRef?.name;
  const cm = ref ? named(objects, 'ConfigMap', ref) : undefined;
  // In the base the ConfigMap is rendered too; its value is the base's.
  return (cm && configMapData(cm).LOOPLINE_TOPIC_PREFIX) ?? '';
}

function expectedWorkers(r: Rendering): WorkerDeployment[] {
  if (!r.overlay) return workers;
  const { spec } = loadSpec(path.join(ROOT, r.overlay.specFile));
  return workers.filter((w) => w.runsFor(spec));
}

const SENSITIVE = /pass(word)?|secret|token|auth|credential|user(name)?|sasl_(user|pass)/i;
const SECRET_ENV = new Set(SECRETS.flatMap((s) => s.keys.flatMap((k) => (k.env ? [k.env] : []))));

// ---- the invariants, for each rendering ----

describe.each([...ours, ...real])('$label', (r) => {
  const { objects } = r;
  const expected = expectedWorkers(r);
  const deployments = deploymentsByWorker(objects);

  it('renders only parsed, named objects, each once', () => {
    const ids = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
    expect(objects.length).toBeGreaterThan(expected.length * 4);
  });

  it('has one Deployment per worker the pipeline runs, each running exactly that worker', () => {
    expect([...deployments.keys()].sort()).toEqual(expected.map((w) => w.name).sort());
    for (const w of expected) {
      const d = deployments.get(w.name)!;
      expect(d.metadata.name).toBe(deploymentName(w.name));
      const c = container(d);
      expect(c.args?.[0], `${w.name}: runs \`loopline run\``).toBe('run');
      expect(argValue(c.args ?? [], '--workers'), `${w.name}: --workers`).toBe(w.name);
      expect(c.image).toBe(r.overlay ? `${r.overlay.image.newName}:${r.overlay.image.newTag}` : IMAGE);
      // KEDA's HPA owns the replica count; a manifest that sets it would reset it on every apply.
      expect((d.spec as { replicas?: number }).replicas, `${w.name}: no spec.replicas`).toBeUndefined();
      expect(subset((d.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels, podLabels(d))).toBe(true);
    }
  });

  it('probes /healthz (startup, liveness) and /readyz (readiness) at the metrics port', () => {
    for (const w of expected) {
      const c = container(deployments.get(w.name)!);
      const port = Number(argValue(c.args ?? [], '--metrics-port'));
      expect(port, `${w.name}: --metrics-port`).toBe(METRICS_PORT);
      const declared = (c.ports ?? []).find((p) => p.containerPort === port);
      expect(declared?.name, `${w.name}: the metrics port is declared and named`).toBe('metrics');
      const at = (probe: Probe | undefined) => {
        const p = probe?.httpGet?.port;
        return typeof p === 'number' ? p : (c.ports ?? []).find((x) => x.name === p)?.containerPort;
      };
      expect([c.livenessProbe?.httpGet?.path, at(c.livenessProbe)], `${w.name}: liveness`).toEqual(['/healthz', port]);
      expect([c.readinessProbe?.httpGet?.path, at(c.readinessProbe)], `${w.name}: readiness`).toEqual(['/readyz', port]);
      expect([c.startupProbe?.httpGet?.path, at(c.startupProbe)], `${w.name}: startup`).toEqual(['/healthz', port]);
    }
  });

  it('outlasts the drain, runs locked down with a writable /tmp, and sets requests and limits', () => {
    for (const w of expected) {
      const d = deployments.get(w.name)!;
      const spec = podSpec(d);
      const c = container(d);
      expect(spec.terminationGracePeriodSeconds, `${w.name}: grace period`).toBeGreaterThan(DRAIN_SECONDS);
      expect(spec.securityContext?.runAsNonRoot).toBe(true);
      expect(spec.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
      expect(spec.volumes?.find((v) => v.name === tmp?.name)?.emptyDir, `${w.name}: /tmp is an emptyDir`).toBeDefined();
      for (const kind of ['requests', 'limits'] as const) {
        expect(Object.keys(c.resources?.[kind] ?? {}).sort(), `${w.name}: ${kind}`).toEqual(['cpu', 'memory']);
      }
      // The spec file is in a ConfigMap volume mounted at its folder.
      const specPath = argValue(c.args ?? [], '--spec')!;
      const mount = c.volumeMounts?.find((m) => m.mountPath === path.posix.dirname(specPath));
      const volume = spec.volumes?.find((v) => v.name === mount?.name);
      expect(volume?.configMap?.name, `${w.name}: spec volume`).toBeDefined();
      expect(path.posix.basename(specPath)).toBe(SPEC_KEY);
      if (r.overlay) expect(configMapData(named(objects, 'ConfigMap', volume!.configMap!.name)!)).toHaveProperty(SPEC_KEY);
    }
  });

  it('scales each consumer group with one ScaledObject on its input topic, capped at the partition count', () => {
    const scaled = ofKind(objects, 'ScaledObject');
    expect(scaled).toHaveLength(expected.length);
    for (const w of expected) {
      const d = deployments.get(w.name)!;
      const so = scaled.filter((s) => (s.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === d.metadata.name);
      expect(so, `${w.name}: one ScaledObject`).toHaveLength(1);
      const spec = so[0]!.spec as { scaleTargetRef: { kind?: string }; minReplicaCount: number; maxReplicaCount: number; triggers: Trigger[] };
      expect(spec.scaleTargetRef.kind ?? 'Deployment').toBe('Deployment');
      const counts = w.inputs.map((i) => topicSpec(i.topic).partitions);
      // One member per task: a co-partitioned join has one task per partition number.
      const partitions = WORKERS.find((x) => x.name === w.name)!.input.copartitioned ? Math.max(...counts) : counts.reduce((n, c) => n + c, 0);
      expect(spec.maxReplicaCount, `${w.name}: maxReplicaCount`).toBe(partitions);
      expect(spec.minReplicaCount).toBeGreaterThanOrEqual(1);
      expect(spec.minReplicaCount).toBeLessThanOrEqual(spec.maxReplicaCount);
      const prefix = topicPrefixOf(objects, d);
      const env = containerEnv(objects, container(d));
      expect(spec.triggers.map((t) => t.metadata.topic).sort()).toEqual(w.inputs.map((i) => `${prefix}${i.topic}`).sort());
      for (const t of spec.triggers) {
        expect(t.type).toBe('kafka');
        expect(t.metadata.consumerGroup, `${w.name}: consumer group`).toBe(`${prefix}loopline-${w.name}`);
        expect(Number(t.metadata.lagThreshold)).toBeGreaterThan(0);
        expect(t.metadata.offsetResetPolicy).toBe('earliest');
        const brokersVar = t.metadata.bootstrapServersFromEnv;
        expect(brokersVar && env[brokersVar], `${w.name}: KEDA reads the brokers from the container's ${brokersVar}`).toBeTruthy();
        expect(named(objects, 'TriggerAuthentication', t.authenticationRef?.name ?? ''), `${w.name}: TriggerAuthentication`).toBeDefined();
      }
    }
    // The single-partition control topics.
    for (const name of ['model-builder', 'evaluator'] as const) {
      if (!deployments.has(name)) continue;
      const so = scaled.find((s) => (s.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === deployments.get(name)!.metadata.name)!;
      expect((so.spec as { maxReplicaCount: number }).maxReplicaCount).toBe(1);
    }
  });

  it('references only Secrets and ConfigMaps that exist with the key (the base: only those an overlay provides)', () => {
    const refs = references(objects);
    expect(refs.length).toBeGreaterThan(0);
    const missing = refs.filter((ref) => !resolves(objects, ref));
    if (r.overlay) {
      expect(missing, 'unresolved references').toEqual([]);
    } else {
      // Everything the base leaves out is in the contract an overlay meets.
      expect(ofKind(objects, 'Secret')).toEqual([]);
      const contract = new Set([...SECRETS.flatMap((s) => s.keys.map((k) => `Secret/${s.name}/${k.key}`)), `ConfigMap/${SPEC_CONFIGMAP}/`]);
      for (const ref of missing) expect(contract, `${ref.from} reads ${ref.kind} ${ref.name} ${ref.key ?? ''}`).toContain(`${ref.kind}/${ref.name}/${ref.key ?? ''}`);
      expect(new Set(missing.map((m) => m.name))).toEqual(new Set([...SECRETS.map((s) => s.name), SPEC_CONFIGMAP]));
    }
  });

  it('keeps every credential out of ConfigMaps and literal env values', () => {
    const secretValues = ofKind(objects, 'Secret').flatMap((s) => Object.values(secretData(s))).filter((v) => v.length >= 6 && !/^(none|enable|disable|plaintext|scram[-_]sha[-_]?(256|512)|loopline)$/.test(v));
    if (r.overlay) expect(secretValues.length).toBeGreaterThan(0);
    for (const cm of ofKind(objects, 'ConfigMap')) {
      for (const [key, value] of Object.entries(configMapData(cm))) {
        expect(SENSITIVE.test(key), `ConfigMap ${cm.metadata.name} key ${key}`).toBe(false);
        for (const s of secretValues) expect(value.includes(s), `ConfigMap ${cm.metadata.name} key ${key} holds a Secret's value`).toBe(false);
      }
    }
    for (const d of ofKind(objects, 'Deployment')) {
      const c = container(d);
      for (const e of c.env ?? []) {
        if (SECRET_ENV.has(e.name) || SENSITIVE.test(e.name)) expect(e.valueFrom?.secretKeyRef, `${d.metadata.name}: ${e.name} from a Secret`).toBeDefined();
      }
      expect((c.env ?? []).map((e) => e.name).filter((n) => SECRET_ENV.has(n)).sort()).toEqual([...SECRET_ENV].sort());
    }
  });

  it('lets the ServiceMonitor select every worker Service by its labels and port name', () => {
    const monitors = ofKind(objects, 'ServiceMonitor');
    expect(monitors).toHaveLength(1);
    const m = monitors[0]!.spec as { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path?: string }>; namespaceSelector?: unknown };
    expect(m.namespaceSelector, 'selects in its own namespace').toBeUndefined();
    const services = ofKind(objects, 'Service');
    expect(services).toHaveLength(expected.length);
    for (const w of expected) {
      const d = deployments.get(w.name)!;
      const selected = services.filter((s) => subset((s.spec as { selector: Record<string, string> }).selector, podLabels(d)));
      expect(selected, `${w.name}: one Service selects its pods`).toHaveLength(1);
      const s = selected[0]!;
      expect(subset(m.selector.matchLabels, labelsOf(s)), `ServiceMonitor selects ${s.metadata.name}`).toBe(true);
      const ports = (s.spec as { ports: Array<{ name: string; port: number; targetPort: string | number }> }).ports;
      for (const e of m.endpoints) expect(ports.map((p) => p.name), `${s.metadata.name}: port ${e.port}`).toContain(e.port);
      const target = ports.find((p) => p.name === m.endpoints[0]!.port)!.targetPort;
      expect(typeof target === 'number' ? target : container(d).ports?.find((p) => p.name === target)?.containerPort).toBe(METRICS_PORT);
      // A worker's Service selects no other worker's pods.
      for (const [other, od] of deployments) {
        if (other !== w.name) expect(subset((s.spec as { selector: Record<string, string> }).selector, podLabels(od))).toBe(false);
      }
    }
    expect(m.endpoints.map((e) => e.path ?? '/metrics')).toEqual(['/metrics']);
  });

  it('has a PodDisruptionBudget per worker that allows one eviction at a time', () => {
    const pdbs = ofKind(objects, 'PodDisruptionBudget');
    expect(pdbs).toHaveLength(expected.length);
    for (const w of expected) {
      const d = deployments.get(w.name)!;
      const pdb = pdbs.filter((p) => subset((p.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels, podLabels(d)));
      expect(pdb, `${w.name}: one PDB`).toHaveLength(1);
      expect(pdb[0]!.spec).toMatchObject({ maxUnavailable: 1 });
    }
  });

  it.runIf(r.overlay)('puts everything in the overlay namespace', () => {
    expect(named(objects, 'Namespace', r.overlay!.namespace)).toBeDefined();
    for (const o of objects) if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(r.overlay!.namespace);
  });

  it.runIf(r.overlay)('gives every worker an environment that loadConfig compiles, and KEDA the same Kafka credentials', () => {
    const auth = ofKind(objects, 'TriggerAuthentication');
    for (const w of expected) {
      const d = deployments.get(w.name)!;
      const env = containerEnv(objects, container(d));
      const config = loadConfig(env);
      expect(config.kafka.brokers).toEqual(r.overlay!.env.LOOPLINE_KAFKA_BROKERS!.split(','));
      expect(config.kafka.topicPrefix).toBe(topicPrefixOf(objects, d));
      const so = ofKind(objects, 'ScaledObject').find((s) => (s.spec as { scaleTargetRef: { name: string } }).scaleTargetRef.name === d.metadata.name)!;
      for (const t of (so.spec as { triggers: Trigger[] }).triggers) {
        const ta = auth.find((a) => a.metadata.name === t.authenticationRef?.name)!;
        const params = Object.fromEntries(((ta.spec as { secretTargetRef: Array<{ parameter: string; name: string; key: string }> }).secretTargetRef)
          .map((p) => [p.parameter, secretData(named(objects, 'Secret', p.name)!)[p.key]]));
        expect(params.sasl).toBe(KEDA_SASL[config.kafka.sasl?.mechanism ?? '']);
        expect(params.tls).toBe(config.kafka.ssl ? 'enable' : 'disable');
        expect([params.username, params.password]).toEqual([config.kafka.sasl?.username ?? '', config.kafka.sasl?.password ?? '']);
      }
    }
  });

  it.runIf(r.overlay)('mounts the pipeline spec from the ConfigMap, as committed in pipelines/', () => {
    const d = [...deployments.values()][0]!;
    const volume = podSpec(d).volumes!.find((v) => v.name === 'spec')!;
    const text = configMapData(named(objects, 'ConfigMap', volume.configMap!.name)!)[SPEC_KEY]!;
    expect(text).toBe(fs.readFileSync(path.join(ROOT, r.overlay!.specFile), 'utf8'));
    expect(() => parseSpec(JSON.parse(text))).not.toThrow();
  });

  it.runIf(r.overlay)('holds only placeholder credentials', () => {
    for (const s of ofKind(objects, 'Secret')) {
      for (const [key, value] of Object.entries(secretData(s))) {
        if (/pass|auth/i.test(key) && value !== '') expect(value, `Secret ${s.metadata.name} key ${key}`).toContain('CHANGE-ME');
      }
    }
  });
});

// ---- the files and their sources ----

describe('infra/k8s files', () => {
  it('are what `npm run gen:k8s` writes', () => {
    const files = generateFiles();
    const stale = [...files].filter(([rel, text]) => !fs.existsSync(path.join(K8S_DIR, rel)) || fs.readFileSync(path.join(K8S_DIR, rel), 'utf8') !== text).map(([rel]) => rel);
    const extra = generatedFilesOnDisk().filter((rel) => !files.has(rel));
    expect({ stale, extra }, 'run `npm run gen:k8s`').toEqual({ stale: [], extra: [] });
  });

  it('describe every worker definition with its input topics', () => {
    expect(workers.map((w) => w.name)).toEqual([...WORKER_NAMES]);
    for (const d of WORKERS) {
      expect(workers.find((w) => w.name === d.name)!.inputs.map((i) => i.topic), d.name).toEqual(d.input.topics.map((t) => t.topic));
    }
  });

  it('set only variables that config/config.ts reads', () => {
    const source = fs.readFileSync(path.join(ROOT, 'config/config.ts'), 'utf8');
    const names = new Set([...Object.keys(ENV_DEFAULTS), ...SECRET_ENV, ...OVERLAYS.flatMap((o) => Object.keys(o.env)), ...workers.flatMap((w) => Object.keys(w.env))]);
    for (const name of names) expect(source, name).toMatch(new RegExp(`^\\s+${name}: `, 'm'));
    expect(Object.keys(ENV_DEFAULTS)).toContain('LOOPLINE_TOPIC_PREFIX');
    expect(ENV_CONFIGMAP).toBe('loopline-env');
  });

  it.each([
    ['a minimum above the partitions', { minReplicas: { 'model-builder': 2 } }, /minReplicas.model-builder must be an integer in 1..1/],
    ['a minimum for a worker the spec does not run', { minReplicas: { 'feature-aggregator': 1 } }, /minReplicas.feature-aggregator: not a worker/],
    ['a missing Secret key', { secrets: { ...EXAMPLE_OVERLAY.secrets, 'loopline-cassandra': { username: '' } } }, /secrets.loopline-cassandra.password is missing/],
    ['limits for an unknown worker', { limits: { nope: { memory: '1Gi' } } }, /limits.nope: not a worker/],
  ])('refuse an overlay with %s', (_, change, error) => {
    expect(() => generateFiles(workers, [{ ...EXAMPLE_OVERLAY, ...change }])).toThrow(error);
  });
});

describe('the test renderer', () => {
  const deploymentYaml = 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec:\n  template:\n    spec:\n      containers: [{name: worker, image: loopline:latest}]\n';
  function render(kustomization: string): K8sObject[] {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopline-kustomize-'));
    try {
      fs.writeFileSync(path.join(dir, 'd.yaml'), deploymentYaml);
      fs.writeFileSync(path.join(dir, 'kustomization.yaml'), `resources: [d.yaml]\n${kustomization}`);
      return renderKustomization(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  it.each([
    ['a field it does not implement', 'namePrefix: x-\n', /namePrefix not supported/],
    ['a strategic merge of a list', 'patches:\n- patch: "{apiVersion: apps/v1, kind: Deployment, metadata: {name: w}, spec: {template: {spec: {containers: []}}}}"\n', /list containers is not supported/],
    ['a JSON patch of a missing path', 'patches:\n- target: {kind: Deployment}\n  patch: "[{op: replace, path: /spec/nope/x, value: 1}]"\n', /no nope/],
    ['a patch that matches nothing', 'patches:\n- target: {kind: Service}\n  patch: "[{op: remove, path: /spec}]"\n', /matches nothing/],
  ])('refuses %s', (_, kustomization, error) => {
    expect(() => render(kustomization)).toThrow(KustomizeError);
    expect(() => render(kustomization)).toThrow(error);
  });

  it('sets images by name and keeps the tag it does not change', () => {
    const [d] = render('images: [{name: loopline, newName: r.example.com/team/loopline}]\n');
    expect((d!.spec as { template: { spec: PodSpec } }).template.spec.containers[0]!.image).toBe('r.example.com/team/loopline:latest');
  });
});

describe.runIf(real.length > 0)('the test renderer, next to kustomize,', () => {
  /** kustomize's output with the hash suffixes of generated names taken off, everywhere they are referenced. */
  function unhashed(objects: K8sObject[], plain: K8sObject[]): K8sObject[] {
    const names = new Map<string, string>();
    for (const o of objects) {
      const m = /^(.*)-[a-z0-9]{10}$/.exec(o.metadata.name);
      if ((o.kind === 'ConfigMap' || o.kind === 'Secret') && m && named(plain, o.kind, m[1]!)) names.set(o.metadata.name, m[1]!);
    }
    return JSON.parse(JSON.stringify(objects), (_, v: unknown) => (typeof v === 'string' && names.has(v) ? names.get(v) : v)) as K8sObject[];
  }
  const sorted = (objects: K8sObject[]) => [...objects].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));

  it.each(real.map((r) => [r.label, r] as const))('agrees with %s', (_, r) => {
    const mine = ours.find((o) => o.dir === r.dir)!.objects;
    expect(sorted(unhashed(r.objects, mine))).toEqual(sorted(mine));
  });
});
