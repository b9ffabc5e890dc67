/**
 * The `pipeline_specs` table: each accepted version of a pipeline's spec
 * (text, SHA-256, what changed), newest first. `record` claims the next
 * version with IF NOT EXISTS; the same text as the latest is not a new version.
 */
import { createHash } from 'node:crypto';
import type cassandra from 'cassandra-driver';
import { IDEMPOTENT, storeCall } from './errors.js';

export interface StoredSpec {
  pipeline: string;
  version: number;
  sha256: string;
  spec: string;
  change: string;
  appliedAt: number;
}

export interface PipelineSpecStore {
  latest(pipeline: string): Promise<StoredSpec | null>;
  /** Records `spec` as the next version unless it is the latest's text; returns the version and whether it is new. */
  record(pipeline: string, spec: string, change: string, at: number): Promise<{ version: number; created: boolean }>;
}

export const specSha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export function createPipelineSpecStore(cql: cassandra.Client): PipelineSpecStore {
  const latest = (pipeline: string): Promise<StoredSpec | null> =>
    storeCall(`reading the latest spec of ${pipeline}`, async () => {
      const rs = await cql.execute('SELECT pipeline, version, sha256, spec, change, applied_at FROM pipeline_specs WHERE pipeline = ? LIMIT 1', [pipeline], IDEMPOTENT);
      const r = rs.first();
      return r ? { pipeline: r.get('pipeline'), version: r.get('version'), sha256: r.get('sha256'), spec: r.get('spec'), change: r.get('change'), appliedAt: (r.get('applied_at') as Date).getTime() } : null;
    });
  return {
    latest,
    async record(pipeline, spec, change, at) {
      const sha = specSha256(spec);
      for (;;) {
        const last = await latest(pipeline);
        if (last && last.sha256 === sha) return { version: last.version, created: false };
        const version = (last?.version ?? 0) + 1;
        const applied = await storeCall(`recording spec version ${version} of ${pipeline}`, async () => {
          const rs = await cql.execute(
            'INSERT INTO pipeline_specs (pipeline, version, sha256, spec, change, applied_at) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS',
            [pipeline, version, sha, spec, change, new Date(at)],
            { prepare: true },
          );
          return rs.wasApplied();
        });
        if (applied) return { version, created: true };
      }
    },
  };
}
