/**
 * An in-memory RegistryClient that counts every call, for unit tests of the
 * codec: ids are global and shared by identical schema texts, as in a
 * Confluent registry.
 *
 *   const registry = createFakeRegistry();
 *   const id = await registry.register('events.client-value', recordSchema('ClientEvent').text);
 *   registry.calls.getSchema; // requests so far
 */
import { SchemaNotFoundError, type Compatibility, type RegistryClient } from '../../schemas/registry-client.js';

export interface FakeRegistry extends RegistryClient {
  readonly calls: Record<'register' | 'getSchema' | 'subjectVersions' | 'subjectVersion' | 'other', number>;
  /** Total calls of every kind. */
  total(): number;
  /** Makes every later call throw `err` (null to heal). */
  failWith(err: Error | null): void;
}

export function createFakeRegistry(): FakeRegistry {
  const texts: string[] = []; // id - 1 → text
  const subjects = new Map<string, number[]>(); // subject → ids by version - 1
  const compat = new Map<string, Compatibility>();
  const calls = { register: 0, getSchema: 0, subjectVersions: 0, subjectVersion: 0, other: 0 };
  let failure: Error | null = null;
  const enter = (k: keyof typeof calls) => {
    calls[k]++;
    if (failure) throw failure;
  };
  return {
    calls,
    total: () => Object.values(calls).reduce((a, b) => a + b, 0),
    failWith(err) {
      failure = err;
    },
    async register(subject, schema) {
      enter('register');
      let id = texts.indexOf(schema) + 1;
      if (id === 0) id = texts.push(schema);
      const versions = subjects.get(subject) ?? [];
      if (!versions.includes(id)) versions.push(id);
      subjects.set(subject, versions);
      return id;
    },
    async getSchema(id) {
      enter('getSchema');
      const text = texts[id - 1];
      if (text === undefined) throw new SchemaNotFoundError(id);
      return text;
    },
    async subjectVersions(subject) {
      enter('subjectVersions');
      return (subjects.get(subject) ?? []).map((_, i) => i + 1);
    },
    async subjectVersion(subject, version) {
      enter('subjectVersion');
      const id = subjects.get(subject)?.[version - 1];
      if (id === undefined) throw new Error(`no version ${version} of ${subject}`);
      return { subject, version, id, schema: texts[id - 1]! };
    },
    async setCompatibility(subject, level) {
      enter('other');
      compat.set(subject, level);
    },
    async getCompatibility(subject) {
      enter('other');
      return compat.get(subject) ?? null;
    },
    async isCompatible() {
      enter('other');
      return true;
    },
    async subjects() {
      enter('other');
      return [...subjects.keys()];
    },
    async deleteSubject(subject) {
      enter('other');
      return subjects.delete(subject);
    },
  };
}
