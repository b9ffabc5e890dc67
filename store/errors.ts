/**
 * Cassandra driver errors, classified once for every store module: what an
 * outage looks like (no host, timeouts, unavailable replicas, overload,
 * a node bootstrapping) is a TransientError, retried by the runtime and never
 * dead-lettered; credentials or permissions refused stop the worker
 * (FatalError); anything else — a bad query is a bug — is not retried.
 */
import cassandra from 'cassandra-driver';
import { FatalError, LooplineError, TransientError } from '../core/errors.js';

const codes = cassandra.types.responseErrorCodes;
const TRANSIENT_CODES = new Set<number>([codes.unavailableException, codes.overloaded, codes.isBootstrapping, codes.truncateError, codes.writeTimeout, codes.readTimeout, codes.readFailure, codes.writeFailure, codes.serverError]);
const FATAL_CODES = new Set<number>([codes.badCredentials, codes.unauthorized]);

export function classifyCassandraError(err: unknown, doing: string): LooplineError {
  if (err instanceof LooplineError) return err;
  const e = err as { name?: string; code?: number; message?: string; innerErrors?: Record<string, unknown> };
  const message = `${doing}: ${e?.message ?? String(err)}`;
  if (e?.name === 'NoHostAvailableError') {
    const inner = Object.values(e.innerErrors ?? {});
    if (inner.length > 0 && inner.every((x) => FATAL_CODES.has((x as { code?: number }).code ?? -1) || (x as { name?: string }).name === 'AuthenticationError')) return new FatalError(message, 'CASSANDRA_AUTH', err);
    return new TransientError(message, err, 'STORE_UNAVAILABLE');
  }
  if (e?.name === 'OperationTimedOutError' || e?.name === 'BusyConnectionError' || e?.name === 'DriverInternalError') return new TransientError(message, err, 'STORE_UNAVAILABLE');
  // A connection that closed under a request ('Socket was closed'): the driver retries it on another host
  // only when the request is idempotent, and surfaces it as it is for the rest, e.g. a lease's LWT (seen in
  // the fault suite's cassandra-kill-restart: a model-builder's lease renewal was dead-lettered).
  if ((err as { isSocketError?: unknown })?.isSocketError === true) return new TransientError(message, err, 'STORE_UNAVAILABLE');
  if (e?.name === 'AuthenticationError' || (typeof e?.code === 'number' && FATAL_CODES.has(e.code))) return new FatalError(message, 'CASSANDRA_AUTH', err);
  if (typeof e?.code === 'number' && TRANSIENT_CODES.has(e.code)) return new TransientError(message, err, 'STORE_UNAVAILABLE');
  if (e?.name === 'ResponseError') return new LooplineError(message, { code: 'CASSANDRA_REQUEST', retriable: false, cause: err });
  // The driver sometimes surfaces socket errors directly.
  if (typeof (err as { code?: unknown })?.code === 'string' && /^E(CONN|PIPE|TIMEDOUT|HOSTUNREACH|NETUNREACH)/.test(String((err as { code: string }).code))) return new TransientError(message, err, 'STORE_UNAVAILABLE');
  return new LooplineError(message, { code: 'UNKNOWN', retriable: false, cause: err });
}

/** Runs a store call, classifying whatever it throws with `doing` as context. */
export async function storeCall<T>(doing: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw classifyCassandraError(err, doing);
  }
}

/** Prepared and idempotent: the options of every immutable or keyed write and every read. */
export const IDEMPOTENT = { prepare: true, isIdempotent: true } as const;
