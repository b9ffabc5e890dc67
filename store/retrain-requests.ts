/**
 * Retrain requests and their builds (`retrain_requests`): one row per
 * request id, claimed by the builder that builds it under a lease it renews
 * while it trains. A second builder — a zombie that lost the partition but
 * has not noticed yet — finds the lease held and waits instead of building the
 * same request at once; a lease that is not renewed (its builder died)
 * expires and can be taken over. Claims and take-overs are lightweight
 * transactions: retrains are rare, so this is off the hot path.
 */
import type cassandra from 'cassandra-driver';
import type { RetrainRequest } from '../schemas/types.js';
import { IDEMPOTENT, storeCall } from './errors.js';

export type RequestStatus = 'building' | 'built' | 'skipped';

export type Claim =
  | { outcome: 'mine' }
  | { outcome: 'held'; owner: string; leaseUntil: number }
  | { outcome: 'done'; status: 'built' | 'skipped'; modelVersion: number | null };

export interface RequestRow {
  requestId: string;
  reason: string;
  detail: string;
  requestedAt: number;
  status: RequestStatus;
  modelVersion: number | null;
  verdict: string | null;
}

export interface RetrainRequestStore {
  claim(r: RetrainRequest, owner: string, leaseMs: number): Promise<Claim>;
  /** Extends the lease; false when another builder holds it now. */
  renew(pipeline: string, requestId: string, owner: string, leaseMs: number): Promise<boolean>;
  finish(pipeline: string, requestId: string, status: 'built' | 'skipped', modelVersion: number | null, verdict: string): Promise<void>;
  list(pipeline: string): Promise<RequestRow[]>;
}

export function createRetrainRequestStore(cql: cassandra.Client): RetrainRequestStore {
  const lwt = { prepare: true } as const;
  const store: RetrainRequestStore = {
    claim(r, owner, leaseMs) {
      return storeCall(`claiming retrain request ${r.request_id}`, async () => {
        const until = new Date(Date.now() + leaseMs);
        const rs = await cql.execute(
          'INSERT INTO retrain_requests (pipeline, request_id, reason, detail, window_start, window_end, requested_at, status, owner, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS',
          [r.pipeline, r.request_id, r.reason, r.detail, new Date(r.window_start), new Date(r.window_end), new Date(r.requested_at), 'building', owner, until],
          lwt,
        );
        if (rs.wasApplied()) return { outcome: 'mine' as const };
        const row = rs.first();
        const status = row?.get('status') as RequestStatus | null;
        if (status === 'built' || status === 'skipped') return { outcome: 'done' as const, status, modelVersion: (row?.get('model_version') as number | null) ?? null };
        const holder = (row?.get('owner') as string | null) ?? null;
        const leaseUntil = (row?.get('lease_until') as Date | null)?.getTime() ?? 0;
        if (holder === owner) return (await store.renew(r.pipeline, r.request_id, owner, leaseMs)) ? { outcome: 'mine' as const } : { outcome: 'held' as const, owner: holder, leaseUntil };
        if (leaseUntil > Date.now()) return { outcome: 'held' as const, owner: holder ?? '?', leaseUntil };
        // The holder let its lease lapse (it died): take over, unless someone else just did.
        const take = await cql.execute(
          'UPDATE retrain_requests SET owner = ?, lease_until = ? WHERE pipeline = ? AND request_id = ? IF status = ? AND owner = ?',
          [owner, until, r.pipeline, r.request_id, 'building', holder],
          lwt,
        );
        return take.wasApplied() ? { outcome: 'mine' as const } : { outcome: 'held' as const, owner: (take.first()?.get('owner') as string | null) ?? '?', leaseUntil: Date.now() + leaseMs };
      });
    },
    renew(pipeline, requestId, owner, leaseMs) {
      return storeCall(`renewing the lease of ${requestId}`, async () => {
        const rs = await cql.execute('UPDATE retrain_requests SET lease_until = ? WHERE pipeline = ? AND request_id = ? IF owner = ?', [new Date(Date.now() + leaseMs), pipeline, requestId, owner], lwt);
        return rs.wasApplied();
      });
    },
    finish(pipeline, requestId, status, modelVersion, verdict) {
      return storeCall(`finishing retrain request ${requestId}`, async () => {
        await cql.execute('UPDATE retrain_requests SET status = ?, model_version = ?, verdict = ?, lease_until = null WHERE pipeline = ? AND request_id = ?', [status, modelVersion, verdict, pipeline, requestId], IDEMPOTENT);
      });
    },
    list(pipeline) {
      return storeCall(`listing retrain requests of ${pipeline}`, async () => {
        const rs = await cql.execute('SELECT request_id, reason, detail, requested_at, status, model_version, verdict FROM retrain_requests WHERE pipeline = ?', [pipeline], { ...IDEMPOTENT, fetchSize: 10_000 });
        return rs.rows.map((r) => ({
          requestId: r.get('request_id') as string,
          reason: r.get('reason') as string,
          detail: r.get('detail') as string,
          requestedAt: (r.get('requested_at') as Date).getTime(),
          status: r.get('status') as RequestStatus,
          modelVersion: (r.get('model_version') as number | null) ?? null,
          verdict: (r.get('verdict') as string | null) ?? null,
        }));
      });
    },
  };
  return store;
}
