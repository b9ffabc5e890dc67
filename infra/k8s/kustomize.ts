/**
 * A small kustomize, for the features infra/k8s uses, so the test renders the
 * manifests without a binary:
 *
 *   renderKustomization('infra/k8s/overlays/example')   // → K8sObject[]
 *
 * Supported: `resources` (files and kustomization folders), `namespace`,
 * `images`, `configMapGenerator` and `secretGenerator` (literals and files;
 * behavior create, merge, replace), `patches` (inline or file; JSON 6902 with a
 * `target`, or strategic merge of maps and `$patch: delete`), `configurations`
 * and `generatorOptions` (accepted; they only matter for renaming). Generated
 * names get no hash suffix, which changes no reference. Anything else is
 * refused by name, so a new feature in the files fails the test instead of
 * being silently ignored; `renderWithKustomize` runs the real thing.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { K8sObject } from './manifests.js';

const KNOWN_FIELDS = new Set([
  'apiVersion', 'kind', 'resources', 'namespace', 'images', 'configMapGenerator', 'secretGenerator', 'generatorOptions', 'patches', 'configurations',
]);
const CLUSTER_SCOPED = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass', 'PriorityClass']);

interface Generator {
  name: string;
  behavior?: 'create' | 'merge' | 'replace';
  literals?: string[];
  files?: string[];
  type?: string;
  options?: unknown;
}
interface Target { kind?: string; name?: string; labelSelector?: string }
interface Patch { patch?: string; path?: string; target?: Target }
interface Kustomization {
  resources?: string[];
  namespace?: string;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
  configMapGenerator?: Generator[];
  secretGenerator?: Generator[];
  patches?: Patch[];
}

export class KustomizeError extends Error {
  override name = 'KustomizeError';
}

/** Every YAML document of a file, empty ones dropped. */
export function parseYamlDocuments(text: string, source: string): K8sObject[] {
  return YAML.parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new KustomizeError(`${source}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as unknown;
    if (value == null) return [];
    if (typeof value !== 'object' || Array.isArray(value)) throw new KustomizeError(`${source}: a document is not a mapping`);
    const obj = value as K8sObject;
    if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) throw new KustomizeError(`${source}: a document lacks apiVersion, kind or metadata.name`);
    return [obj];
  });
}

export function renderKustomization(dir: string): K8sObject[] {
  const file = path.join(dir, 'kustomization.yaml');
  const k = YAML.parse(fs.readFileSync(file, 'utf8')) as Kustomization & Record<string, unknown>;
  const unknown = Object.keys(k).filter((f) => !KNOWN_FIELDS.has(f));
  if (unknown.length > 0) throw new KustomizeError(`${file}: ${unknown.join(', ')} not supported by this renderer (supported: ${[...KNOWN_FIELDS].join(', ')})`);

  let objects: K8sObject[] = [];
  for (const entry of k.resources ?? []) {
    const p = path.join(dir, entry);
    objects.push(...(fs.statSync(p).isDirectory() ? renderKustomization(p) : parseYamlDocuments(fs.readFileSync(p, 'utf8'), p)));
  }
  for (const g of k.configMapGenerator ?? []) objects = generate(objects, 'ConfigMap', g, dir);
  for (const g of k.secretGenerator ?? []) objects = generate(objects, 'Secret', g, dir);
  for (const p of k.patches ?? []) objects = applyPatch(objects, p, dir);
  if (k.namespace) {
    for (const o of objects) {
      if (o.kind === 'Namespace') o.metadata.name = k.namespace;
      else if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
    }
  }
  for (const image of k.images ?? []) {
    for (const c of objects.flatMap(containersOf)) {
      const at = c.image.search(/[@:][^/]*$/);
      const name = at < 0 ? c.image : c.image.slice(0, at);
      if (name !== image.name) continue;
      const tag = image.newTag !== undefined ? `:${image.newTag}` : at < 0 ? '' : c.image.slice(at);
      c.image = `${image.newName ?? name}${tag}`;
    }
  }
  return objects;
}

function containersOf(o: K8sObject): Array<{ image: string }> {
  const spec = (o.spec as { template?: { spec?: { containers?: Array<{ image: string }>; initContainers?: Array<{ image: string }> } } } | undefined)?.template?.spec;
  return [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])];
}

function generate(objects: K8sObject[], kind: 'ConfigMap' | 'Secret', g: Generator, dir: string): K8sObject[] {
  const data: Record<string, string> = {};
  for (const literal of g.literals ?? []) {
    const eq = literal.indexOf('=');
    if (eq < 1) throw new KustomizeError(`${kind} ${g.name}: literal ${JSON.stringify(literal)} is not key=value`);
    data[literal.slice(0, eq)] = literal.slice(eq + 1);
  }
  for (const entry of g.files ?? []) {
    const eq = entry.indexOf('=');
    const [key, file] = eq < 0 ? [path.basename(entry), entry] : [entry.slice(0, eq), entry.slice(eq + 1)];
    data[key] = fs.readFileSync(path.join(dir, file), 'utf8');
  }
  const encoded = kind === 'Secret' ? Object.fromEntries(Object.entries(data).map(([key, v]) => [key, Buffer.from(v).toString('base64')])) : data;
  const index = objects.findIndex((o) => o.kind === kind && o.metadata.name === g.name);
  const behavior = g.behavior ?? 'create';
  if (behavior === 'create') {
    if (index >= 0) throw new KustomizeError(`${kind} ${g.name} exists already; use behavior merge or replace`);
    const created: K8sObject = { apiVersion: 'v1', kind, metadata: { name: g.name }, data: encoded };
    if (kind === 'Secret') created.type = g.type ?? 'Opaque';
    return [...objects, created];
  }
  if (index < 0) throw new KustomizeError(`${kind} ${g.name}: behavior ${behavior} needs an existing one`);
  const existing = objects[index]!;
  const merged = { ...existing, data: behavior === 'merge' ? { ...(existing.data as Record<string, string>), ...encoded } : encoded };
  return objects.map((o, i) => (i === index ? merged : o));
}

function matches(o: K8sObject, t: Target): boolean {
  if (t.kind && o.kind !== t.kind) return false;
  if (t.name && o.metadata.name !== t.name) return false;
  if (t.labelSelector) {
    const have = (o.metadata.labels ?? {}) as Record<string, string>;
    for (const term of t.labelSelector.split(',')) {
      const [key, value] = term.split('=').map((s) => s.trim()) as [string, string | undefined];
      if (value === undefined ? !(key in have) : have[key] !== value) return false;
    }
  }
  return true;
}

function applyPatch(objects: K8sObject[], p: Patch, dir: string): K8sObject[] {
  const text = p.patch ?? (p.path ? fs.readFileSync(path.join(dir, p.path), 'utf8') : undefined);
  if (text === undefined) throw new KustomizeError('a patch has neither patch nor path');
  const body = YAML.parse(text) as unknown;
  if (Array.isArray(body)) {
    if (!p.target) throw new KustomizeError('a JSON 6902 patch needs a target');
    const hit = objects.filter((o) => matches(o, p.target!));
    if (hit.length === 0) throw new KustomizeError(`patch target ${JSON.stringify(p.target)} matches nothing`);
    for (const o of hit) for (const op of body as JsonPatchOp[]) applyJsonPatchOp(o, op);
    return objects;
  }
  const smp = body as K8sObject & { $patch?: string };
  const target: Target = p.target ?? { kind: smp.kind, name: smp.metadata?.name };
  const hit = objects.filter((o) => matches(o, target));
  if (hit.length === 0) throw new KustomizeError(`patch target ${JSON.stringify(target)} matches nothing`);
  if (smp.$patch === 'delete') return objects.filter((o) => !hit.includes(o));
  if (smp.$patch !== undefined) throw new KustomizeError(`$patch: ${smp.$patch} not supported by this renderer`);
  const { apiVersion: _a, kind: _k, metadata: _m, ...rest } = smp;
  for (const o of hit) mergeMaps(o, rest, `${o.kind}/${o.metadata.name}`);
  return objects;
}

/** Strategic merge restricted to maps: lists would need the merge keys of each schema, so they are refused. */
function mergeMaps(into: Record<string, unknown>, patch: Record<string, unknown>, where: string): void {
  for (const [key, value] of Object.entries(patch)) {
    if (Array.isArray(value)) throw new KustomizeError(`${where}: strategic merge of the list ${key} is not supported by this renderer; use a JSON 6902 patch`);
    if (value === null) delete into[key];
    else if (typeof value === 'object' && typeof into[key] === 'object' && into[key] !== null && !Array.isArray(into[key])) {
      mergeMaps(into[key] as Record<string, unknown>, value as Record<string, unknown>, `${where}.${key}`);
    } else into[key] = value;
  }
}

interface JsonPatchOp { op: 'add' | 'replace' | 'remove'; path: string; value?: unknown }

function applyJsonPatchOp(doc: Record<string, unknown>, op: JsonPatchOp): void {
  const parts = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = parts.pop();
  if (last === undefined) throw new KustomizeError(`JSON patch path ${op.path} is empty`);
  let node: unknown = doc;
  for (const part of parts) {
    node = Array.isArray(node) ? node[Number(part)] : (node as Record<string, unknown> | undefined)?.[part];
    if (node === undefined || node === null || typeof node !== 'object') throw new KustomizeError(`JSON patch path ${op.path}: no ${part}`);
  }
  if (Array.isArray(node)) {
    const i = last === '-' ? node.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > node.length || (op.op !== 'add' && i >= node.length)) throw new KustomizeError(`JSON patch path ${op.path}: no index ${last}`);
    if (op.op === 'add') node.splice(i, 0, op.value);
    else if (op.op === 'replace') node[i] = op.value;
    else node.splice(i, 1);
    return;
  }
  const map = node as Record<string, unknown>;
  if (op.op !== 'add' && !(last in map)) throw new KustomizeError(`JSON patch ${op.op} ${op.path}: no ${last}`);
  if (op.op === 'remove') delete map[last];
  else if (op.op === 'add' || op.op === 'replace') map[last] = op.value;
  else throw new KustomizeError(`JSON patch op ${String((op as { op: unknown }).op)} not supported by this renderer`);
}

/**
 * The real kustomize, when there is one: `$KUSTOMIZE` (a kustomize binary), else `kustomize` or `kubectl`
 * on the PATH. Returns null when none can run; throws when one runs and refuses the files.
 */
export function renderWithKustomize(dir: string): { tool: string; objects: K8sObject[] } | null {
  const candidates: Array<[string, string[], string[]]> = process.env.KUSTOMIZE
    ? [[process.env.KUSTOMIZE, ['version'], ['build', dir]]]
    : [['kustomize', ['version'], ['build', dir]], ['kubectl', ['version', '--client'], ['kustomize', dir]]];
  for (const [tool, probe, args] of candidates) {
    try {
      execFileSync(tool, probe, { stdio: 'ignore', timeout: 30_000 });
    } catch {
      continue; // absent, or not a working kustomize: the test renderer still runs
    }
    let out: string;
    try {
      out = execFileSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new KustomizeError(`${tool} ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
    }
    return { tool, objects: parseYamlDocuments(out, `${tool} ${args.join(' ')}`) };
  }
  return null;
}
